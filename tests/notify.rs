//! Push capture against the dev zone's RGW: `zonelog rgw
//! setup-notifications` creates a persistent topic and the buckets'
//! notifications (dry run first, then for real, then again as a no-op),
//! RGW pushes a workload to `zonelog run`, and the records arrive in the
//! index exactly once; with zonelog stopped RGW keeps the events in its
//! persistent queue and delivers them when it is back — nothing missing,
//! nothing twice.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{dev_zone, unique_bucket, DevZone, S3};
use zonelog::capture::notify::setup::NotifySetup;
use zonelog::config::Secret;
use zonelog::logs::LogRecord;
use zonelog::record::Op;

const TOKEN: &str = "notify-test-token";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("port")
        .port()
}

struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    topic: String,
    notify_port: u16,
    http_port: u16,
    /// The receiver's socket, held here the way systemd holds a socket
    /// unit's: it outlives each `zonelog run`, so RGW's pushes during a
    /// restart wait in the backlog (RGW 16 stalls a queue whose push is
    /// refused; docs/decisions.md).
    socket: std::net::TcpListener,
}

fn write_config(zone: &DevZone, buckets: &[&str]) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("notify socket");
    let notify_port = socket.local_addr().expect("port").port();
    let http_port = free_port();
    let topic = format!("zl-test-{}", &unique_bucket("t")[2..]);
    let config = dir.path().join("zonelog.toml");
    let list: Vec<String> = buckets.iter().map(|b| format!("{b:?}")).collect();
    std::fs::write(
        &config,
        format!(
            r#"zone = "notify-zone"
[sources.notify]
listen = "127.0.0.1:{notify_port}"
token = "{TOKEN}"
topic = "{topic}"
[sources.notify.rgw]
endpoint = "{endpoint}"
access_key = "{ak}"
secret_key = "{sk}"
[filter]
buckets = [{list}]
[index]
path = "{dir}/index"
shards = 8
[collector]
# Nothing is collected (and trimmed) while a test reads the pending changes.
period = "1h"
cutoff_margin = "1h"
[target]
directory = "{dir}/logs"
[http]
listen = "127.0.0.1:{http_port}"
"#,
            endpoint = zone.endpoint,
            ak = zone.admin_access_key,
            sk = zone.admin_secret_key,
            list = list.join(", "),
            dir = dir.path().display(),
        ),
    )
    .expect("config");
    Setup {
        _dir: dir,
        config,
        topic,
        notify_port,
        http_port,
        socket,
    }
}

use common::zonelog_ok as zonelog;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// Starts `zonelog run` with the held socket as fd 3 (`LISTEN_FDS=1`, as
/// systemd socket activation passes it).
async fn start_run(setup: &Setup) -> Running {
    use std::os::fd::AsRawFd as _;
    use std::os::unix::process::CommandExt as _;
    let fd = setup.socket.as_raw_fd();
    let mut command = Command::new(env!("CARGO_BIN_EXE_zonelog"));
    command
        .args(["run", "-c"])
        .arg(&setup.config)
        .env("ZONELOG_LOG", "warn")
        .env("LISTEN_FDS", "1")
        .env_remove("LISTEN_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: between fork and exec only async-signal-safe calls (dup2,
    // fcntl) on a descriptor this process owns.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(move || {
            if fd == 3 {
                let flags = libc::fcntl(3, libc::F_GETFD);
                if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let run = Running(Some(command.spawn().expect("start zonelog run")));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{}/readyz", setup.http_port)).await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "zonelog run never became ready");
    }
    run
}

/// A `zonelog run` child that is killed if the test fails midway, so it
/// does not outlive the test holding its output pipe.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn stop(mut run: Running, signal: &str) {
    let Some(mut child) = run.0.take() else {
        return;
    };
    Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    let status = child.wait().expect("reap");
    if signal == "-TERM" {
        assert!(status.success(), "SIGTERM exits 0: {status}");
    }
}

/// The pending records of `bucket`, from the running service.
fn changes(setup: &Setup, bucket: &str) -> Vec<LogRecord> {
    stdout(&zonelog(
        &setup.config,
        &["changes", "--json", "--bucket", bucket],
    ))
    .lines()
    .map(|l| serde_json::from_str(l).expect("record JSON"))
    .collect()
}

/// Waits until `bucket` has at least `want` records (or a deadline).
async fn wait_for(setup: &Setup, bucket: &str, want: usize, within: Duration) -> Vec<LogRecord> {
    let deadline = Instant::now() + within;
    loop {
        let records = changes(setup, bucket);
        if records.len() >= want || Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn setup_client(zone: &DevZone, setup: &Setup) -> NotifySetup {
    NotifySetup::new(
        zone.admin_client(),
        &setup.topic,
        &url::Url::parse(&format!("http://127.0.0.1:{}/v1/events", setup.notify_port)).unwrap(),
        &Secret::new(TOKEN),
    )
}

/// Removes what setup-notifications created, so the shared zone keeps no
/// topic pointing at a port nobody listens on.
async fn cleanup(zone: &DevZone, setup: &Setup) {
    let _ = setup_client(zone, setup).remove(false, &mut |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_notifications_then_rgw_pushes_every_change_once() {
    let Some(zone) = dev_zone() else { return };
    let plain = unique_bucket("zlnp");
    let versioned = unique_bucket("zlnv");
    let ignored = unique_bucket("zlnx");
    let setup = write_config(&zone, &[&plain, &versioned]);
    let admin = zone.admin_client();
    let s3 = S3(&admin);
    for b in [&plain, &versioned, &ignored] {
        s3.create_bucket(b).await;
    }
    s3.enable_versioning(&versioned).await;

    // Dry run: says what it would do, changes nothing.
    let dry = stdout(&zonelog(
        &setup.config,
        &["rgw", "setup-notifications", "--dry-run"],
    ));
    assert!(
        dry.contains(&format!("topic {}: would create", setup.topic)),
        "{dry}"
    );
    assert!(
        dry.contains(&format!("bucket {plain}: notification would")),
        "{dry}"
    );
    assert!(!dry.contains(&ignored), "only buckets in the filter: {dry}");
    assert!(!dry.contains(TOKEN), "the token is never printed: {dry}");
    let client = setup_client(&zone, &setup);
    assert_eq!(
        client.find_topic().await.unwrap(),
        None,
        "dry run created nothing"
    );

    let first = stdout(&zonelog(&setup.config, &["rgw", "setup-notifications"]));
    assert!(
        first.contains(&format!("topic {}: created", setup.topic)),
        "{first}"
    );
    assert!(
        first.contains(&format!("bucket {versioned}: notification")),
        "{first}"
    );
    let topic = client.find_topic().await.unwrap().expect("topic exists");
    assert!(topic.persistent, "{topic:?}");
    assert!(
        topic.endpoint.contains(&format!("token={TOKEN}")),
        "{topic:?}"
    );
    assert!(client.bucket_configured(&plain, &topic.arn).await.unwrap());
    // Idempotent: a second run changes nothing.
    let second = stdout(&zonelog(&setup.config, &["rgw", "setup-notifications"]));
    assert!(
        second.contains(&format!("topic {}: unchanged", setup.topic)),
        "{second}"
    );
    assert!(
        second.contains(&format!("bucket {plain}: notification unchanged")),
        "{second}"
    );
    assert!(
        second.contains(&format!("bucket {versioned}: notification unchanged")),
        "{second}"
    );

    let run = start_run(&setup).await;

    // The workload: puts (a key that needs encoding), copy, multipart,
    // overwrite, delete; in the versioned bucket a put, a delete marker and
    // the delete of a version.
    let odd_key = "dir/a b+c%d/é.txt";
    s3.put(&plain, "k1", b"one").await;
    s3.put(&plain, odd_key, b"odd").await;
    s3.copy(&plain, "k1", "k1-copy").await;
    s3.multipart(&plain, "big", 2).await;
    s3.put(&plain, "k1", b"one again").await;
    s3.delete(&plain, "k1").await;
    s3.put_with(
        &plain,
        "tagged",
        b"t",
        &[("x-amz-meta-Color", "blue"), ("x-amz-tagging", "team=red")],
    )
    .await;
    s3.put(&ignored, "nobody-listens", b"x").await;
    let v1 = s3.put(&versioned, "doc", b"v1").await.expect("version id");
    s3.delete(&versioned, "doc").await;
    s3.delete_version(&versioned, "doc", Some(&v1)).await;

    let records = wait_for(&setup, &plain, 7, Duration::from_secs(90)).await;
    let mut got: Vec<(String, Op)> = records.iter().map(|r| (r.key.clone(), r.op)).collect();
    got.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.as_str().cmp(b.1.as_str())));
    let mut want = vec![
        ("big".to_string(), Op::Put),
        (odd_key.to_string(), Op::Put),
        ("k1".to_string(), Op::Delete),
        ("k1".to_string(), Op::Put),
        ("k1".to_string(), Op::Put),
        ("k1-copy".to_string(), Op::Put),
        ("tagged".to_string(), Op::Put),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.as_str().cmp(b.1.as_str())));
    assert_eq!(got, want, "{records:#?}");
    let k1_copy = records.iter().find(|r| r.key == "k1-copy").unwrap();
    assert_eq!(k1_copy.size, Some(3));
    assert!(k1_copy.etag.is_some());
    assert!(matches!(
        &k1_copy.source,
        zonelog::record::Provenance::Notify {
            sequencer: Some(_),
            event_id: Some(_)
        }
    ));
    // What RGW's events carry besides the anchors (record v3).
    let release = &zone.release;
    let tagged = records.iter().find(|r| r.key == "tagged").unwrap();
    assert_eq!(
        tagged.user_metadata,
        Some([("color".to_string(), "blue".to_string())].into()),
        "Ceph {release}: {tagged:#?}"
    );
    assert_eq!(
        tagged.tags,
        Some([("team".to_string(), "red".to_string())].into()),
        "Ceph {release}: {tagged:#?}"
    );
    assert_eq!(tagged.is_multipart, Some(false), "Ceph {release}");
    let big = records.iter().find(|r| r.key == "big").unwrap();
    assert_eq!(big.is_multipart, Some(true), "Ceph {release}: {big:#?}");
    for r in &records {
        assert!(
            r.requester.as_deref().is_some_and(|u| !u.is_empty())
                && r.request_id.as_deref().is_some_and(|u| !u.is_empty()),
            "Ceph {release}: who and which request: {r:#?}"
        );
        assert_eq!(
            r.sequence.as_ref().map(String::len),
            Some(32),
            "Ceph {release}: {r:#?}"
        );
    }
    // RGW's sequencer, decoded, orders the changes of one key.
    let mut k1: Vec<_> = records.iter().filter(|r| r.key == "k1").collect();
    k1.sort_by(|a, b| a.sequence.cmp(&b.sequence));
    let k1_ops: Vec<_> = k1.iter().map(|r| (r.op, r.size)).collect();
    assert_eq!(
        k1_ops,
        [(Op::Put, Some(3)), (Op::Put, Some(9)), (Op::Delete, None)],
        "Ceph {release}: {k1:#?}"
    );

    let records = wait_for(&setup, &versioned, 3, Duration::from_secs(60)).await;
    let got: Vec<(Op, Option<String>)> = records
        .iter()
        .map(|r| (r.op, r.version_id.clone()))
        .collect();
    assert_eq!(records.len(), 3, "{records:#?}");
    assert!(got.contains(&(Op::Put, Some(v1.clone()))), "{got:?}");
    // RGW 16 leaves the delete marker's version id out of the event.
    assert!(got.iter().any(|(op, _)| *op == Op::DeleteMarker), "{got:?}");
    assert!(got.contains(&(Op::Delete, Some(v1.clone()))), "{got:?}");
    assert!(changes(&setup, &ignored).is_empty());

    // A little later nothing more has arrived (no duplicate deliveries).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(changes(&setup, &plain).len(), 7);
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", setup.http_port))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        r#"zonelog_changes_captured_total{source="notify",op="put"} 7"#,
        r#"zonelog_changes_captured_total{source="notify",op="delete"} 2"#,
        r#"zonelog_changes_captured_total{source="notify",op="delete_marker"} 1"#,
        r#"zonelog_notify_requests_total{result="accepted"}"#,
        "zonelog_notify_request_seconds_bucket",
    ] {
        assert!(metrics.contains(series), "missing {series} in:\n{metrics}");
    }
    let status = stdout(&zonelog(&setup.config, &["status"]));
    assert!(
        status.contains("notify") && status.contains("following") && status.contains("changes 10"),
        "{status}"
    );
    stop(run, "-TERM");

    // Undo: a dry run changes nothing, the removal takes the notifications
    // and the topic away, and a second removal finds nothing to do.
    let dry = stdout(&zonelog(
        &setup.config,
        &["rgw", "remove-notifications", "--dry-run"],
    ));
    assert!(
        dry.contains(&format!(
            "bucket {plain}: notification {} would remove",
            setup.topic
        )),
        "{dry}"
    );
    assert!(
        dry.contains(&format!("topic {}: would remove", setup.topic)),
        "{dry}"
    );
    assert!(!dry.contains(TOKEN), "the token is never printed: {dry}");
    assert!(client.bucket_configured(&plain, &topic.arn).await.unwrap());
    assert!(client.find_topic().await.unwrap().is_some());
    let removed = stdout(&zonelog(&setup.config, &["rgw", "remove-notifications"]));
    for b in [&plain, &versioned] {
        assert!(
            removed.contains(&format!("bucket {b}: notification {} removed", setup.topic)),
            "{removed}"
        );
        assert!(!client.bucket_configured(b, &topic.arn).await.unwrap());
    }
    assert!(!removed.contains(&ignored), "{removed}");
    assert!(
        removed.contains(&format!("topic {}: removed", setup.topic)),
        "{removed}"
    );
    assert_eq!(client.find_topic().await.unwrap(), None);
    let again = stdout(&zonelog(&setup.config, &["rgw", "remove-notifications"]));
    assert!(
        !again.contains("bucket "),
        "nothing left to remove: {again}"
    );
    assert!(
        again.contains(&format!("topic {}: not present", setup.topic)),
        "{again}"
    );
    cleanup(&zone, &setup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rgw_redelivers_what_arrived_while_zonelog_was_down() {
    let Some(zone) = dev_zone() else { return };
    let bucket = unique_bucket("zlnr");
    let setup = write_config(&zone, &[&bucket]);
    let admin = zone.admin_client();
    let s3 = S3(&admin);
    s3.create_bucket(&bucket).await;
    zonelog(&setup.config, &["rgw", "setup-notifications"]);

    let run = start_run(&setup).await;
    for n in 0..20 {
        s3.put(&bucket, &format!("before/{n:03}"), b"x").await;
    }
    let records = wait_for(&setup, &bucket, 20, Duration::from_secs(60)).await;
    assert_eq!(records.len(), 20);

    // Killed without warning in the middle of RGW's pushes, while RGW keeps
    // writing: RGW's persistent queue holds the events (the S3 calls still
    // succeed), pushes cut off by the kill are retried, and new pushes wait
    // on the held socket until the next zonelog accepts them.
    let writer = {
        let zone_client = zone.admin_client();
        let bucket = bucket.clone();
        tokio::spawn(async move {
            let s3 = S3(&zone_client);
            for n in 0..40 {
                s3.put(&bucket, &format!("during/{n:03}"), b"y").await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            s3.delete(&bucket, "before/000").await;
        })
    };
    wait_for(&setup, &bucket, 25, Duration::from_secs(60)).await;
    stop(run, "-KILL");
    writer.await.unwrap();
    // Started again with the same index and endpoint: RGW retries and
    // everything arrives, nothing twice.
    let run = start_run(&setup).await;
    let records = wait_for(&setup, &bucket, 61, Duration::from_secs(180)).await;
    let mut count: BTreeMap<(String, &'static str), usize> = BTreeMap::new();
    for r in &records {
        *count.entry((r.key.clone(), r.op.as_str())).or_default() += 1;
    }
    for n in 0..20 {
        assert_eq!(
            count.get(&(format!("before/{n:03}"), "put")),
            Some(&1),
            "{count:?}"
        );
    }
    for n in 0..40 {
        assert_eq!(
            count.get(&(format!("during/{n:03}"), "put")),
            Some(&1),
            "{count:?}"
        );
    }
    assert_eq!(count.get(&("before/000".to_string(), "delete")), Some(&1));
    assert_eq!(records.len(), 61, "{count:?}");
    stop(run, "-TERM");
    cleanup(&zone, &setup).await;
}
