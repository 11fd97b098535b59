//! Stop the RGW capture (`zonelog run`) at random moments while a workload
//! writes to the dev zone, 20 times — alternately kill -9 and SIGTERM (which
//! must exit 0) — and at the end every change of the workload is in the
//! index exactly once.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{dev_zone, put_delete_changes, spawn_put_delete_workload, unique_bucket, S3};
use futures::stream::{self, StreamExt};
use zonelog::index::conformance::read_all;
use zonelog::index::embedded::EmbeddedIndex;
use zonelog::index::{ChangeIndex, IndexLayout, IndexMode};

const RUNS: u32 = 20;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A random generator seeded from the clock; the seed is printed so that a
/// failing run can be told apart.
fn seeded_rng(what: &str) -> Rng {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    eprintln!("{what} seed {seed}");
    Rng(seed | 1)
}

/// Starts `zonelog run -c config`, its log (warnings) to `stderr`.
fn start_run(config: &std::path::Path, stderr: Stdio) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_zonelog"))
        .args(["run", "-c"])
        .arg(config)
        .env("ZONELOG_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start zonelog run")
}

/// The capture's index in `dir/index`, opened once the run has stopped.
fn open_index(dir: &std::path::Path) -> Arc<dyn ChangeIndex> {
    Arc::new(
        EmbeddedIndex::open(
            &dir.join("index"),
            IndexLayout {
                shards: 8,
                mode: IndexMode::EveryWrite,
            },
        )
        .expect("open index"),
    )
}

async fn wait_ready(port: u16) {
    let ready_url = format!("http://127.0.0.1:{port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(r) = reqwest::get(&ready_url).await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "zonelog run never became ready");
    }
}

/// kill -9, or SIGTERM through the kill command as an operator would;
/// waits for the exit.
/// A SIGTERM is sent once the process has reached zonelog's own code
/// (SIGTERM held or caught: SigBlk/SigCgt in /proc), not while the binary
/// is still being loaded, when no program can act on it.
fn stop_child(child: &mut std::process::Child, sigkill: bool) -> std::process::ExitStatus {
    if sigkill {
        child.kill().expect("SIGKILL");
    } else {
        let sigterm_bit = 1u64 << (15 - 1);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status =
                std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
            let mask = |field: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(field))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                    .unwrap_or(0)
            };
            if (mask("SigBlk:") | mask("SigCgt:")) & sigterm_bit != 0 || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
    }
    child.wait().expect("reap")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_capture_loses_and_doubles_nothing() {
    let Some(zone) = dev_zone() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let bucket = unique_bucket("zlkill");
    let port = common::free_port();
    let config = capture_config(
        &zone,
        dir.path(),
        &format!("buckets = [\"{bucket}\"]"),
        port,
        "",
    );
    let client = zone.admin_client();
    S3(&client).create_bucket(&bucket).await;

    let start = |_: &mut Rng| start_run(&config, Stdio::null());
    let mut rng = seeded_rng("capture crash test");
    // The first start records the positions; the workload begins once the
    // service says it is ready.
    let mut child = start(&mut rng);
    wait_ready(port).await;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_put_delete_workload(client.clone(), bucket.clone(), stop.clone());
    for run in 0..RUNS {
        std::thread::sleep(Duration::from_millis(100 + rng.next() % 1500));
        // SIGTERM in the middle of capturing: it finishes the batch in
        // flight and exits 0.
        let status = stop_child(&mut child, run % 2 == 0);
        assert!(
            run % 2 == 0 || status.success(),
            "SIGTERM while capturing exits 0: {status}"
        );
        child = start(&mut rng);
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.expect("writer");
    // Let the last child catch up, then stop it cleanly.
    std::thread::sleep(Duration::from_secs(8));
    let status = stop_child(&mut child, false);
    assert!(status.success(), "zonelog run exits 0 on SIGTERM: {status}");

    let index = open_index(dir.path());
    let mut seen: BTreeMap<(String, String), u32> = BTreeMap::new();
    for e in read_all(&index).await {
        *seen
            .entry((e.record.key.clone(), e.record.op.as_str().to_string()))
            .or_default() += 1;
    }
    let mut missing = Vec::new();
    for (key, op) in put_delete_changes(written) {
        match seen.get(&(key.clone(), op.to_string())) {
            Some(1) => {}
            Some(c) => panic!("{key} {op} is in the index {c} times"),
            None => missing.push(format!("{key} {op}")),
        }
    }
    assert!(
        missing.is_empty(),
        "missing after {RUNS} kills: {missing:?}"
    );
    eprintln!("{RUNS} stops (SIGKILL and SIGTERM); {written} puts and their deletes, each in the index exactly once");
}

/// Buckets written at once at the end, and puts into each.
const BURST_BUCKETS: usize = 50;
const BURST_PUTS: usize = 4;

/// Writes the config of a capture whose `[filter]` is `filter` (one TOML
/// line) and whose `[sources.rgw]` has `rgw_extra` (TOML lines) besides
/// the zone's endpoint and keys, with its index in `dir/index`.
fn capture_config(
    zone: &common::DevZone,
    dir: &std::path::Path,
    filter: &str,
    port: u16,
    rgw_extra: &str,
) -> std::path::PathBuf {
    let config = dir.join("zonelog.toml");
    std::fs::write(
        &config,
        format!(
            r#"zone = "{zone_name}"
[sources.rgw]
endpoint = "{endpoint}"
access_key = "{ak}"
secret_key = "{sk}"
poll_interval = "100ms"
{rgw_extra}
[filter]
{filter}
[index]
path = "{index}"
shards = 8
[http]
listen = "127.0.0.1:{port}"
"#,
            zone_name = zone.zone,
            endpoint = zone.endpoint,
            ak = zone.admin_access_key,
            sk = zone.admin_secret_key,
            index = dir.join("index").display(),
        ),
    )
    .expect("write config");
    config
}

/// Stops `zonelog run` at random moments, kill -9 and SIGTERM in turn,
/// while the zone goes through what production zones do: a steady writer,
/// a reshard under it, a versioned bucket, a multipart upload, odd keys,
/// a copy and a tagging, a bucket emptied, removed and created again, a
/// bucket's sync disabled and enabled, another user's bucket, one whose
/// listing is refused (403), and a burst over fifty buckets. At the end
/// every change is in the index once (a removed bucket's changes at most
/// once: what its log held unread when it was removed is covered by its
/// one `bucket_removed` record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_through_reshard_removal_and_bursts_loses_and_doubles_nothing() {
    let Some(zone) = dev_zone() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let prefix = unique_bucket("zlmix");
    let port = common::free_port();
    let config = capture_config(
        &zone,
        dir.path(),
        &format!("bucket_prefixes = [\"{prefix}\"]"),
        port,
        "",
    );
    let log_path = dir.path().join("zonelog.log");
    let start = || {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("log file");
        start_run(&config, log.into())
    };
    let log_tail = || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    let mut child = start();
    wait_ready(port).await;
    let client = zone.admin_client();
    let (main, ver, gone) = (
        format!("{prefix}-main"),
        format!("{prefix}-ver"),
        format!("{prefix}-gone"),
    );
    let bursts: Vec<String> = (0..BURST_BUCKETS)
        .map(|n| format!("{prefix}-burst-{n}"))
        .collect();
    let (sync, other) = (format!("{prefix}-sync"), format!("{prefix}-other"));
    let (odd, refused) = (format!("{prefix}-odd"), format!("{prefix}-refused"));
    // Another user's buckets: zonelog reads their logs with admin caps,
    // but S3 refuses it their listing (403).
    let user = zone.user_client();
    S3(&user).create_bucket(&other).await;
    S3(&user).create_bucket(&refused).await;
    for bucket in [&main, &ver, &gone, &sync, &odd].into_iter().chain(&bursts) {
        S3(&client).create_bucket(bucket).await;
    }
    S3(&client).enable_versioning(&ver).await;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_put_delete_workload(client.clone(), main.clone(), stop.clone());
    let events = {
        let (client, main, ver, gone, bursts) = (
            client.clone(),
            main.clone(),
            ver.clone(),
            gone.clone(),
            bursts.clone(),
        );
        let (sync, other, user) = (sync.clone(), other.clone(), user.clone());
        let (odd, refused) = (odd.clone(), refused.clone());
        tokio::spawn(async move {
            let s3 = S3(&client);
            for n in 0..5 {
                S3(&user).put(&other, &format!("o{n}"), b"o").await;
            }
            for key in common::ODD_KEYS {
                s3.put(&odd, key, b"odd").await;
            }
            s3.copy(&odd, "with space", "copy of with space").await;
            s3.tag(&odd, "plus+sign").await;
            // A resync of a bucket zonelog may not list: what changed
            // while its sync was disabled cannot be found, and the bucket
            // is reported; every other bucket goes on.
            S3(&user).put(&refused, "r-before", b"r").await;
            let bucket = refused.clone();
            tokio::task::spawn_blocking(move || {
                common::radosgw_admin(&["bucket", "sync", "disable", "--bucket", &bucket]);
                common::radosgw_admin(&["bucket", "sync", "enable", "--bucket", &bucket]);
            })
            .await
            .expect("sync disable and enable");
            S3(&user).put(&refused, "r-after", b"r").await;
            s3.put(&sync, "s-before", b"s").await;
            let bucket = sync.clone();
            tokio::task::spawn_blocking(move || {
                common::radosgw_admin(&["bucket", "sync", "disable", "--bucket", &bucket])
            })
            .await
            .expect("sync disable");
            s3.put(&sync, "s-while-disabled", b"s").await;
            let bucket = sync.clone();
            tokio::task::spawn_blocking(move || {
                common::radosgw_admin(&["bucket", "sync", "enable", "--bucket", &bucket])
            })
            .await
            .expect("sync enable");
            s3.put(&sync, "s-after", b"s").await;
            for n in 0..3 {
                s3.put(&ver, "doc", format!("v{n}").as_bytes()).await;
            }
            s3.delete(&ver, "doc").await;
            s3.multipart(&main, "big", 3).await;
            for n in 0..5 {
                s3.put(&gone, &format!("g{n}"), b"g").await;
            }
            tokio::time::sleep(Duration::from_millis(700)).await;
            let reshard = main.clone();
            let resharded = tokio::task::spawn_blocking(move || {
                common::radosgw_admin(&[
                    "bucket",
                    "reshard",
                    "--bucket",
                    &reshard,
                    "--num-shards",
                    "13",
                ])
            });
            for n in 0..5 {
                s3.delete(&gone, &format!("g{n}")).await;
            }
            s3.delete_bucket(&gone).await;
            s3.create_bucket(&gone).await;
            for n in 0..3 {
                s3.put(&gone, &format!("n{n}"), b"n").await;
            }
            resharded.await.expect("reshard");
            stream::iter(
                bursts
                    .iter()
                    .flat_map(|b| (0..BURST_PUTS).map(move |n| (b.clone(), n))),
            )
            .for_each_concurrent(8, |(bucket, n)| {
                let client = client.clone();
                async move {
                    S3(&client).put(&bucket, &format!("b{n}"), b"b").await;
                }
            })
            .await;
        })
    };
    let mut rng = seeded_rng("lifecycle crash test");
    let mut run = 0;
    while !events.is_finished() || run < 10 {
        std::thread::sleep(Duration::from_millis(100 + rng.next() % 1500));
        // SIGTERM at any moment, starting up included: it exits 0.
        let status = stop_child(&mut child, run % 2 == 0);
        assert!(
            run % 2 == 0 || status.success(),
            "SIGTERM exits 0: {status}; log:\n{}",
            log_tail()
        );
        child = start();
        run += 1;
    }
    events.await.expect("events");
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.expect("writer");
    // The last start catches up; one that is slower than the wait gets
    // another start (a change missing now may still arrive; a change
    // recorded twice stays twice).
    let settle_deadline = Instant::now() + Duration::from_secs(120);
    let release = &zone.release;
    let wrong = loop {
        std::thread::sleep(Duration::from_secs(8));
        assert!(stop_child(&mut child, false).success(), "SIGTERM exits 0");

        let index = open_index(dir.path());
        // (bucket, key, op) → records from the logs, and from listings.
        let mut logged: BTreeMap<(String, String, String), u32> = BTreeMap::new();
        let mut listed: BTreeMap<(String, String), u32> = BTreeMap::new();
        for e in read_all(&index).await {
            let r = e.record;
            if matches!(r.source, zonelog::record::Provenance::Listing { .. }) {
                *listed.entry((r.bucket, r.key)).or_default() += 1;
            } else {
                *logged
                    .entry((r.bucket, r.key, r.op.as_str().to_string()))
                    .or_default() += 1;
            }
        }
        let mut exact: Vec<((String, String, String), u32)> = Vec::new();
        let id = |b: &str, k: &str, op: &str| (b.to_string(), k.to_string(), op.to_string());
        for (key, op) in put_delete_changes(written) {
            exact.push((id(&main, &key, op), 1));
        }
        exact.push((id(&main, "big", "put"), 1));
        exact.push((id(&ver, "doc", "put"), 3));
        exact.push((id(&ver, "doc", "delete_marker"), 1));
        exact.push((id(&gone, "", "bucket_removed"), 1));
        for n in 0..5 {
            exact.push((id(&other, &format!("o{n}"), "put"), 1));
        }
        exact.push((id(&sync, "s-before", "put"), 1));
        exact.push((id(&sync, "s-after", "put"), 1));
        for n in 0..3 {
            exact.push((id(&gone, &format!("n{n}"), "put"), 1));
        }
        for key in common::ODD_KEYS {
            exact.push((id(&odd, key, "put"), if key == "plus+sign" { 2 } else { 1 }));
        }
        exact.push((id(&odd, "copy of with space", "put"), 1));
        exact.push((id(&refused, "r-before", "put"), 1));
        exact.push((id(&refused, "r-after", "put"), 1));
        for b in &bursts {
            for n in 0..BURST_PUTS {
                exact.push((id(b, &format!("b{n}"), "put"), 1));
            }
        }
        let mut wrong = Vec::new();
        for (change, want) in &exact {
            let got = logged.get(change).copied().unwrap_or(0);
            // Pacific reshards into a new instance: what its old log held
            // unread is found by listing the bucket instead, which shows the
            // puts of keys that still exist (the workload deletes every key
            // whose number ends in 3) and cannot show deletes.
            let pacific_main = !zone.newer_than_pacific() && change.0 == main;
            let ok = if pacific_main {
                got <= *want
                    && (got == *want
                        || change.2 != "put"
                        || listed.contains_key(&(change.0.clone(), change.1.clone()))
                        || change.1.ends_with('3'))
            } else {
                got == *want
            };
            if !ok {
                wrong.push(format!("{change:?}: {got} records, want {want}"));
            }
        }
        // The removed bucket's unread deletes went with its log.
        for n in 0..5 {
            let got = logged
                .get(&id(&gone, &format!("g{n}"), "delete"))
                .copied()
                .unwrap_or(0);
            if got > 1 {
                wrong.push(format!("{gone}/g{n} delete: {got} records"));
            }
        }
        let expected: std::collections::BTreeSet<_> =
            exact.iter().map(|(c, _)| c.clone()).collect();
        for (change, got) in &logged {
            let old_gone = change.0 == gone && change.1.starts_with('g');
            if !expected.contains(change) && !old_gone {
                wrong.push(format!("unexpected {change:?} ×{got}"));
            }
        }
        // What RGW did not log while the bucket's sync was disabled is
        // found by listing that bucket (and only that one).
        if !listed.contains_key(&(sync.clone(), "s-while-disabled".to_string())) {
            wrong.push(format!("{sync}/s-while-disabled was not listed"));
        }
        listed.retain(|(bucket, _), _| *bucket != sync);
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if !log
            .lines()
            .any(|l| l.contains("listing a bucket failed") && l.contains(refused.as_str()))
        {
            wrong.push(format!("{refused}: its refused listing was not reported"));
        }
        if zone.newer_than_pacific() && !listed.is_empty() {
            wrong.push(format!("listed on {release}: {listed:?}"));
        }
        drop(index);
        let only_missing = wrong.iter().all(|w| {
            w.contains(": 0 records")
                || w.ends_with("was not listed")
                || w.ends_with("not reported")
        });
        if wrong.is_empty() || !only_missing || Instant::now() > settle_deadline {
            break wrong;
        }
        child = start();
    };
    assert!(
        wrong.is_empty(),
        "Ceph {release}, after {run} stops: {wrong:#?}\nlog:\n{}",
        log_tail()
    );
    eprintln!("Ceph {release}: {run} stops through a reshard, a removal and bursts; {written} puts on the main bucket, every change once");
}

/// `initial = "full"` lists every object version page by page through the
/// S3 client; kill -9 at random moments of the listing, each restart goes
/// on from the stored position, and at the end every object (odd keys
/// among them: `..` and empty segments, a 1000-byte segment) is in the
/// index exactly once, under its exact key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_full_listing_loses_and_doubles_nothing() {
    let Some(zone) = dev_zone() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let bucket = unique_bucket("zlkilllist");
    let port = common::free_port();
    let config = capture_config(
        &zone,
        dir.path(),
        &format!("buckets = [\"{bucket}\"]"),
        port,
        "initial = \"full\"",
    );
    let client = zone.admin_client();
    S3(&client).create_bucket(&bucket).await;
    let mut keys: Vec<String> = (0..3500).map(|n| format!("obj/{n:05}")).collect();
    keys.extend(common::ODD_KEYS.iter().map(|k| k.to_string()));
    keys.extend([
        "a/../b".to_string(),
        "a//b".to_string(),
        "./dot".to_string(),
        format!("long/{}", "x".repeat(1000)),
    ]);
    // Through the SDK: it sends `.` and `..` segments as they are, where a
    // URL library would resolve them.
    let sdk = client.s3("test");
    let plain = zonelog::s3::ObjectInfo::default();
    stream::iter(keys.clone())
        .for_each_concurrent(32, |key| {
            let (sdk, bucket, plain) = (&sdk, &bucket, &plain);
            async move {
                sdk.put_bytes(bucket, &key, plain, bytes::Bytes::from_static(b"x"))
                    .await
                    .expect("put");
            }
        })
        .await;

    let start = || start_run(&config, Stdio::null());
    let mut rng = seeded_rng("listing crash test");
    let mut child = start();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(150 + rng.next() % 600));
        stop_child(&mut child, true);
        child = start();
    }
    wait_ready(port).await;
    std::thread::sleep(Duration::from_secs(3));
    let status = stop_child(&mut child, false);
    assert!(status.success(), "zonelog run exits 0 on SIGTERM: {status}");

    let index = open_index(dir.path());
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for e in read_all(&index).await {
        *seen.entry(e.record.key).or_default() += 1;
    }
    let doubled: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        doubled.is_empty(),
        "Ceph {}: listed twice: {doubled:?}",
        zone.release
    );
    let missing: Vec<_> = keys.iter().filter(|k| !seen.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "Ceph {}: never listed: {missing:?}",
        zone.release
    );
    assert_eq!(
        seen.len(),
        keys.len(),
        "Ceph {}: no other keys",
        zone.release
    );
}
