//! High availability on the RADOS index: two `zonelog run` processes share
//! one RADOS index and one RGW zone while a workload runs; the collector
//! leader is killed with SIGKILL; the other instance takes the collector
//! (and, if needed, the capture) over within the lease duration; at the end
//! every change of the workload is in exactly one log object. And the same
//! for the push receiver: one instance receives, the other takes over when
//! it dies and still drops what the dead one already stored.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::target::{fresh, read_logs};
use common::{
    dev_zone, is_stopped, put_delete_changes, spawn_put_delete_workload, unique_bucket, DevZone, S3,
};
use zonelog::capture::leased::{CAPTURE_LEASE, NOTIFY_LEASE};
use zonelog::index::rados::{RadosIndex, RadosOptions};
use zonelog::index::{ChangeIndex, EntryId, IndexLayout, IndexMode, MergedReader};
use zonelog::lease::{LeaseStore, CONTROL_LEASE};
use zonelog::logs::LogRecord;
use zonelog::target::Target;

const LEASE: Duration = Duration::from_secs(3);
const PERIOD: Duration = Duration::from_secs(1);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("port")
        .port()
}

fn start(config: &Path, log: &Path) -> Child {
    start_with(config, log, &[])
}

fn start_with(config: &Path, log: &Path, env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_zonelog"))
        .args(["run", "-c"])
        .arg(config)
        .env("ZONELOG_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("start zonelog run")
}

async fn wait_http(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(url).await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{url} never answered 200");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `[index]` section of the instances' config: the shared RADOS index
/// that [`shared_index`] opens too.
fn rados_index_toml(ceph_conf: &Path, pool: &str, namespace: &str) -> String {
    format!(
        "[index]\nbackend = \"rados\"\nshards = 8\n[index.rados]\nceph_conf = \"{}\"\n\
         user = \"admin\"\npool = \"{pool}\"\nnamespace = \"{namespace}\"\n",
        ceph_conf.display()
    )
}

/// One instance's config: capture of `bucket`, the shared index, fast
/// rounds and short leases, logs to `target_bucket`, HTTP on `port`.
fn instance_config(
    zone: &DevZone,
    bucket: &str,
    index_toml: &str,
    target_bucket: &str,
    port: u16,
) -> String {
    format!(
        r#"zone = "{zone_name}"
[sources.rgw]
endpoint = "{endpoint}"
access_key = "{ak}"
secret_key = "{sk}"
poll_interval = "200ms"
[filter]
buckets = ["{bucket}"]
{index_toml}[collector]
period = "{period}ms"
cutoff_margin = "300ms"
lease_duration = "{lease}s"
compression = "none"
[target]
endpoint = "{endpoint}"
access_key = "{ak}"
secret_key = "{sk}"
bucket = "{target_bucket}"
prefix = "ha"
[http]
listen = "127.0.0.1:{port}"
"#,
        zone_name = zone.zone,
        endpoint = zone.endpoint,
        ak = zone.admin_access_key,
        sk = zone.admin_secret_key,
        period = PERIOD.as_millis(),
        lease = LEASE.as_secs(),
    )
}

/// Every change of the put/delete workload is in exactly one log object,
/// and nothing else is in the logs.
fn assert_each_change_once(records: &[(String, LogRecord)], written: u64) {
    let mut seen: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (object, r) in records {
        seen.entry((r.key.clone(), r.op.as_str().to_string()))
            .or_default()
            .push(object.clone());
    }
    let mut missing = Vec::new();
    for (key, op) in put_delete_changes(written) {
        match seen.get(&(key.clone(), op.to_string())).map(Vec::len) {
            Some(1) => {}
            Some(c) => panic!(
                "{key} {op} is in {c} log objects: {:?}",
                seen[&(key.clone(), op.to_string())]
            ),
            None => missing.push(format!("{key} {op}")),
        }
    }
    assert!(missing.is_empty(), "missing from the logs: {missing:?}");
    assert_eq!(
        records.len(),
        put_delete_changes(written).len(),
        "nothing else in the logs"
    );
}

/// Waits until the put/delete workload's changes are all in the logs (or
/// a deadline passes) and returns the logs' records.
async fn settled_logs(target: &Target, written: u64) -> Vec<(String, LogRecord)> {
    let expected = put_delete_changes(written).len();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let records = read_logs(target).await;
        if records.len() >= expected || Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn sigterm(child: &mut Child, who: &str) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    let status = child.wait().expect("reap");
    assert!(status.success(), "{who} exits 0 on SIGTERM: {status}");
}

/// The RADOS index the instances of a test share (8 shards, every-write),
/// opened by the test itself to watch leases and read entries.
async fn shared_index(
    ceph_conf: PathBuf,
    pool: String,
    namespace: String,
    zone: &str,
) -> RadosIndex {
    RadosIndex::open(
        RadosOptions {
            ceph_conf,
            user: "admin".into(),
            keyring: None,
            pool,
            namespace,
            zone: zone.to_string(),
            op_timeout: Duration::from_secs(30),
        },
        IndexLayout {
            shards: 8,
            mode: IndexMode::EveryWrite,
        },
    )
    .await
    .expect("open the shared index")
}

/// The pid inside a holder id (`host:pid:start_ms`).
fn pid_of(holder: &str) -> Option<u32> {
    holder.split(':').nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_hands_over_and_loses_or_doubles_nothing() {
    let Some(zone) = dev_zone() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let bucket = unique_bucket("zlha");
    let namespace = unique_bucket("ha");
    let ceph_conf = PathBuf::from(std::env::var("CEPH_CONF").expect("CEPH_CONF"));
    let pool = std::env::var("ZONELOG_DEV_RADOS_POOL").expect("ZONELOG_DEV_RADOS_POOL");
    let (target_cfg, target) = fresh(&zone, "ha").await;
    let target_bucket = target_cfg.bucket.clone().expect("target bucket");
    let index_toml = rados_index_toml(&ceph_conf, &pool, &namespace);
    let config = |port: u16| instance_config(&zone, &bucket, &index_toml, &target_bucket, port);
    let (port_a, port_b) = (free_port(), free_port());
    let (config_a, config_b) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    std::fs::write(&config_a, config(port_a)).expect("config a");
    std::fs::write(&config_b, config(port_b)).expect("config b");
    let client = zone.admin_client();
    S3(&client).create_bucket(&bucket).await;

    let mut a = start(&config_a, &dir.path().join("a.log"));
    wait_http(&format!("http://127.0.0.1:{port_a}/readyz")).await;
    let mut b = start(&config_b, &dir.path().join("b.log"));
    wait_http(&format!("http://127.0.0.1:{port_b}/healthz")).await;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_put_delete_workload(client.clone(), bucket.clone(), stop.clone());

    // The lease store the instances share, to watch who leads.
    let leases = shared_index(ceph_conf, pool, namespace, &zone.zone).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let leader = leases
        .holder(CONTROL_LEASE)
        .await
        .expect("holder")
        .expect("a collector leads");
    let leader_pid = pid_of(&leader.holder).expect("pid in holder id");
    let (dead, mut survivor, survivor_port) = if leader_pid == a.id() {
        (&mut a, b, port_b)
    } else {
        assert_eq!(leader_pid, b.id(), "the leader is one of the two");
        (&mut b, a, port_a)
    };
    dead.kill().expect("SIGKILL the leader");
    dead.wait().expect("reap");
    let killed = Instant::now();
    let takeover = loop {
        if let Some(l) = leases.holder(CONTROL_LEASE).await.expect("holder") {
            // Token 0: the lock is taken and its token not recorded yet
            // (the next step of the acquire); wait for it.
            if pid_of(&l.holder) == Some(survivor.id()) && l.token != 0 {
                assert!(l.token > leader.token, "the new leader has a larger token");
                break killed.elapsed();
            }
        }
        assert!(
            killed.elapsed() < LEASE + PERIOD + Duration::from_secs(3),
            "no takeover {:?} after the kill",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        takeover <= LEASE + PERIOD + Duration::from_millis(500),
        "takeover took {takeover:?} (lease {LEASE:?}, round period {PERIOD:?})"
    );
    eprintln!(
        "collector leader (pid {leader_pid}) killed; pid {} took over after {takeover:?}",
        survivor.id()
    );

    // The survivor also captures now, and its status says so.
    let deadline = Instant::now() + LEASE + Duration::from_secs(10);
    loop {
        let status: serde_json::Value =
            reqwest::get(format!("http://127.0.0.1:{survivor_port}/status"))
                .await
                .expect("status")
                .json()
                .await
                .expect("status JSON");
        let holder = status["capture_lease"]["holder"].as_str().map(pid_of);
        if holder == Some(Some(survivor.id())) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "capture not taken over: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.expect("writer");
    // Wait until the survivor has written everything out.
    let records = settled_logs(&target, written).await;
    sigterm(&mut survivor, "the survivor");
    assert_each_change_once(&records, written);
    eprintln!("{written} puts and their deletes, each in exactly one log object; takeover after {takeover:?}");
}

fn last_window(value: Option<Vec<u8>>) -> u64 {
    value
        .filter(|v| !v.is_empty())
        .and_then(|v| serde_json::from_slice::<serde_json::Value>(&v).ok())
        .and_then(|v| v["number"].as_u64())
        .unwrap_or(0)
}

/// Issue 16 item 5: instance A leads both roles and stops itself (SIGSTOP,
/// as a VM pause would) at `point`, with its lease checks passed and a
/// state write next. B takes both roles over and finishes windows; then A
/// continues. Its next writes must be refused: the last window never goes
/// back, no window number names two objects, every change is in exactly
/// one log object, and A says why it stopped.
async fn a_leader_frozen_past_its_lease_moves_nothing_back(point: &str) {
    let Some(zone) = dev_zone() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let bucket = unique_bucket("zlfz");
    let namespace = unique_bucket("fz");
    let ceph_conf = PathBuf::from(std::env::var("CEPH_CONF").expect("CEPH_CONF"));
    let pool = std::env::var("ZONELOG_DEV_RADOS_POOL").expect("ZONELOG_DEV_RADOS_POOL");
    let (target_cfg, target) = fresh(&zone, "ha").await;
    let target_bucket = target_cfg.bucket.clone().expect("target bucket");
    let index_toml = rados_index_toml(&ceph_conf, &pool, &namespace);
    let (port_a, port_b) = (free_port(), free_port());
    let (config_a, config_b) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    for (path, port) in [(&config_a, port_a), (&config_b, port_b)] {
        std::fs::write(
            path,
            instance_config(&zone, &bucket, &index_toml, &target_bucket, port),
        )
        .expect("config");
    }
    let client = zone.admin_client();
    S3(&client).create_bucket(&bucket).await;
    let index = Arc::new(shared_index(ceph_conf, pool, namespace, &zone.zone).await);

    let log_a = dir.path().join("a.log");
    let mut a = start_with(&config_a, &log_a, &[("ZLTEST_STOP_AT", point)]);
    let ready = tokio::time::timeout(
        Duration::from_secs(30),
        wait_http(&format!("http://127.0.0.1:{port_a}/readyz")),
    )
    .await;
    assert!(
        ready.is_ok(),
        "A never got ready (stopped: {}); its log:\n{}",
        is_stopped(a.id()),
        std::fs::read_to_string(&log_a).unwrap_or_default()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_put_delete_workload(client.clone(), bucket.clone(), stop.clone());

    // The last window, sampled all along: it must never go back.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (index, sampling) = (index.clone(), sampling.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while sampling.load(Ordering::Relaxed) {
                if let Ok(v) = index.marker("collector/last").await {
                    let n = last_window(v);
                    if seen.last() != Some(&n) {
                        seen.push(n);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        })
    };

    let deadline = Instant::now() + Duration::from_secs(60);
    while !is_stopped(a.id()) {
        assert!(Instant::now() < deadline, "A never reached {point}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let frozen_at = last_window(index.marker("collector/last").await.expect("last"));
    let old = index
        .holder(CONTROL_LEASE)
        .await
        .expect("holder")
        .expect("A held the control lease");
    eprintln!(
        "A (pid {}) stopped at {point}; last window {frozen_at}",
        a.id()
    );

    let mut b = start(&config_b, &dir.path().join("b.log"));
    let deadline = Instant::now() + LEASE * 10;
    loop {
        let last = last_window(index.marker("collector/last").await.expect("last"));
        let leader = index.holder(CONTROL_LEASE).await.expect("holder");
        let capturer = index.holder(CAPTURE_LEASE).await.expect("holder");
        let b_leads = |l: &Option<zonelog::lease::Lease>| {
            l.as_ref().and_then(|l| pid_of(&l.holder)) == Some(b.id())
        };
        if b_leads(&leader) && b_leads(&capturer) && last >= frozen_at + 3 {
            assert!(leader.expect("leader").token > old.token);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B did not take over and finish windows (last {last}, frozen at {frozen_at})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Command::new("kill")
        .args(["-CONT", &a.id().to_string()])
        .status()
        .expect("kill -CONT");
    tokio::time::sleep(LEASE + PERIOD * 2).await;
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.expect("writer");
    let records = settled_logs(&target, written).await;
    sampling.store(false, Ordering::Relaxed);
    let seen = sampler.await.expect("sampler");
    sigterm(&mut b, "B");
    sigterm(&mut a, "A");

    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "the last window went back: {seen:?}"
    );
    let mut numbers: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for (object, _) in &records {
        let file = object.rsplit('/').next().unwrap_or(object);
        let number = file.split('_').next().and_then(|n| n.parse().ok());
        numbers
            .entry(number.expect("a numbered log object"))
            .or_default()
            .insert(object.clone());
    }
    for (number, objects) in &numbers {
        assert_eq!(objects.len(), 1, "window {number} names {objects:?}");
    }
    assert_each_change_once(&records, written);
    let log = std::fs::read_to_string(&log_a).expect("A's log");
    assert!(
        log.contains("write refused: lease"),
        "A resumed without a refused write; its log:\n{log}"
    );
    eprintln!(
        "{written} puts and deletes once each; last windows {seen:?}; A's stale write refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_frozen_before_its_commit_moves_nothing_back() {
    a_leader_frozen_past_its_lease_moves_nothing_back("collector-before-done").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_frozen_before_its_write_doubles_nothing() {
    a_leader_frozen_past_its_lease_moves_nothing_back("capture-before-write").await;
}

/// An event as RGW 16 pushes it, for the receiver test below.
fn pushed(key: &str, sequencer: &str) -> serde_json::Value {
    serde_json::json!({ "Records": [{
        "eventVersion": "2.2", "eventSource": "ceph:s3", "awsRegion": "",
        "eventTime": "2026-11-25T17:02:25.069098Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "u"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "zonelog",
               "bucket": {"name": "photos-ha", "arn": "arn:aws:s3:::photos-ha"},
               "object": {"key": key, "size": 5, "eTag": "5d41402abc4b2a76b9719d911017c592",
                          "versionId": "", "sequencer": sequencer, "metadata": [], "tags": []}},
        "eventId": format!("1795626145.071137.{sequencer}"), "opaqueData": ""
    }]})
}

/// Waits until the notify lease has a recorded holder other than `not`.
async fn notify_holder(leases: &RadosIndex, not: Option<u32>) -> (u32, u64) {
    let deadline = Instant::now() + LEASE * 4;
    loop {
        if let Some(l) = leases.holder(NOTIFY_LEASE).await.expect("holder") {
            // Token 0: taken, its token not recorded yet.
            let pid = pid_of(&l.holder).expect("pid in holder id");
            if l.token != 0 && Some(pid) != not {
                return (pid, l.token);
            }
        }
        assert!(Instant::now() < deadline, "nobody took the notify lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_receiver_fails_over_and_remembers_what_it_took() {
    let Some(zone) = dev_zone() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let namespace = unique_bucket("hanotify");
    let ceph_conf = PathBuf::from(std::env::var("CEPH_CONF").expect("CEPH_CONF"));
    let pool = std::env::var("ZONELOG_DEV_RADOS_POOL").expect("ZONELOG_DEV_RADOS_POOL");
    const TOKEN: &str = "ha-token-7c1e";
    let config = |http: u16, notify: u16| {
        format!(
            r#"zone = "{zone_name}"
[sources.notify]
listen = "127.0.0.1:{notify}"
token = "{TOKEN}"
[filter]
bucket_prefixes = ["photos"]
{index}[collector]
lease_duration = "{lease}s"
[http]
listen = "127.0.0.1:{http}"
"#,
            zone_name = zone.zone,
            index = rados_index_toml(&ceph_conf, &pool, &namespace),
            lease = LEASE.as_secs(),
        )
    };
    let ports = [(free_port(), free_port()), (free_port(), free_port())];
    let mut children = Vec::new();
    for (n, (http, notify)) in ports.iter().enumerate() {
        let path = dir.path().join(format!("{n}.toml"));
        std::fs::write(&path, config(*http, *notify)).expect("config");
        children.push(start(&path, &dir.path().join(format!("{n}.log"))));
        wait_http(&format!("http://127.0.0.1:{http}/healthz")).await;
    }
    let index = shared_index(ceph_conf, pool, namespace, &zone.zone).await;
    let (holder_pid, first_token) = notify_holder(&index, None).await;
    let holder = children
        .iter()
        .position(|c| c.id() == holder_pid)
        .expect("the holder is one of the two");
    let standby = 1 - holder;
    let url = |i: usize| format!("http://127.0.0.1:{}/v1/events", ports[i].1);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let post = |i: usize, event: serde_json::Value| {
        let (client, url) = (client.clone(), url(i));
        async move {
            let response = client
                .post(url)
                .bearer_auth(TOKEN)
                .json(&event)
                .send()
                .await
                .expect("post");
            response.status().as_u16()
        }
    };
    assert_eq!(post(holder, pushed("a", "S1")).await, 200);
    assert_eq!(post(holder, pushed("b", "S2")).await, 200);

    // A sender that reaches the standby is not refused: it waits until that
    // instance receives.
    let early = tokio::spawn(post(standby, pushed("c", "S3")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!early.is_finished(), "the standby does not answer yet");

    children[holder].kill().expect("SIGKILL the receiver");
    children[holder].wait().expect("reap");
    let killed = Instant::now();
    let (new_pid, new_token) = notify_holder(&index, Some(holder_pid)).await;
    eprintln!(
        "receiver (pid {holder_pid}) killed; pid {new_pid} took over after {:?}",
        killed.elapsed()
    );
    assert_eq!(new_pid, children[standby].id(), "the survivor receives now");
    assert!(new_token > first_token, "the new holder has a larger token");
    assert_eq!(early.await.expect("early post"), 200);
    // Redeliveries of what the dead receiver took are dropped; new ones are
    // stored.
    assert_eq!(post(standby, pushed("a", "S1")).await, 200);
    assert_eq!(post(standby, pushed("b", "S2")).await, 200);
    assert_eq!(post(standby, pushed("d", "S4")).await, 200);

    let mut reader = MergedReader::new(
        Arc::new(index) as Arc<dyn ChangeIndex>,
        EntryId::MIN,
        EntryId::MAX,
        100,
    );
    let mut keys = Vec::new();
    while let Some(e) = reader.next().await.expect("read") {
        keys.push(e.record.key);
    }
    keys.sort();
    assert_eq!(keys, ["a", "b", "c", "d"], "each notification stored once");

    let survivor = &mut children[standby];
    Command::new("kill")
        .args(["-TERM", &survivor.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(survivor.wait().expect("reap").success());
}
