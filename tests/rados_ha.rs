//! High availability on the RADOS index: two `zonelog run` processes share
//! one RADOS index and one RGW zone while a workload runs; the collector
//! leader is killed with SIGKILL; the other instance takes the collector
//! (and, if needed, the capture) over within the lease duration; at the end
//! every change of the workload is in exactly one log object.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::target::{fresh, read_logs};
use common::{dev_zone, unique_bucket, S3};
use zonelog::index::rados::{RadosIndex, RadosOptions};
use zonelog::index::{IndexLayout, IndexMode};
use zonelog::lease::{LeaseStore, CONTROL_LEASE};

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
    Command::new(env!("CARGO_BIN_EXE_zonelog"))
        .args(["run", "-c"])
        .arg(config)
        .env("ZONELOG_LOG", "info")
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
    let config = |port: u16| {
        format!(
            r#"zone = "{zone_name}"
[sources.rgw]
endpoint = "{endpoint}"
access_key = "{ak}"
secret_key = "{sk}"
poll_interval = "200ms"
[filter]
buckets = ["{bucket}"]
[index]
backend = "rados"
shards = 8
[index.rados]
ceph_conf = "{conf}"
user = "admin"
pool = "{pool}"
namespace = "{namespace}"
[collector]
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
            conf = ceph_conf.display(),
            period = PERIOD.as_millis(),
            lease = LEASE.as_secs(),
            target_bucket = target_cfg.bucket.as_deref().expect("target bucket"),
        )
    };
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
    let writer = {
        let (stop, client, bucket) = (stop.clone(), client.clone(), bucket.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("k/{n:06}");
                S3(&client).put(&bucket, &key, b"x").await;
                if n % 10 == 3 {
                    S3(&client).delete(&bucket, &key).await;
                }
                n += 1;
            }
            n
        })
    };

    // The lease store the instances share, to watch who leads.
    let leases = RadosIndex::open(
        RadosOptions {
            ceph_conf,
            user: "admin".into(),
            keyring: None,
            pool,
            namespace,
            zone: zone.zone.clone(),
            op_timeout: Duration::from_secs(30),
        },
        IndexLayout {
            shards: 8,
            mode: IndexMode::EveryWrite,
        },
    )
    .await
    .expect("open the shared index");
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
    let expected = written + (0..written).filter(|n| n % 10 == 3).count() as u64;

    // Wait until the survivor has written everything out.
    let deadline = Instant::now() + Duration::from_secs(90);
    let records = loop {
        let records = read_logs(&target).await;
        if records.len() as u64 >= expected || Instant::now() > deadline {
            break records;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    Command::new("kill")
        .args(["-TERM", &survivor.id().to_string()])
        .status()
        .expect("kill -TERM");
    let status = survivor.wait().expect("reap");
    assert!(
        status.success(),
        "the survivor exits 0 on SIGTERM: {status}"
    );

    let mut seen: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (object, r) in &records {
        seen.entry((r.key.clone(), r.op.as_str().to_string()))
            .or_default()
            .push(object.clone());
    }
    let mut missing = Vec::new();
    for n in 0..written {
        let key = format!("k/{n:06}");
        let mut want = vec!["put"];
        if n % 10 == 3 {
            want.push("delete");
        }
        for op in want {
            match seen.get(&(key.clone(), op.to_string())).map(Vec::len) {
                Some(1) => {}
                Some(c) => panic!(
                    "{key} {op} is in {c} log objects: {:?}",
                    seen[&(key.clone(), op.to_string())]
                ),
                None => missing.push(format!("{key} {op}")),
            }
        }
    }
    assert!(missing.is_empty(), "missing from the logs: {missing:?}");
    assert_eq!(records.len() as u64, expected, "nothing else in the logs");
    eprintln!("{written} puts and their deletes, each in exactly one log object; takeover after {takeover:?}");
}
