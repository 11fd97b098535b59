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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_capture_loses_and_doubles_nothing() {
    let Some(zone) = dev_zone() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let bucket = unique_bucket("zlkill");
    let index_dir = dir.path().join("index");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("port")
        .port();
    let config = dir.path().join("zonelog.toml");
    std::fs::write(
        &config,
        format!(
            r#"zone = "{zone_name}"
[sources.rgw]
endpoint = "{endpoint}"
access_key = "{ak}"
secret_key = "{sk}"
poll_interval = "100ms"
[filter]
buckets = ["{bucket}"]
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
            index = index_dir.display(),
        ),
    )
    .expect("write config");
    let client = zone.admin_client();
    S3(&client).create_bucket(&bucket).await;

    let start = |rng: &mut Rng| {
        let _ = rng;
        Command::new(env!("CARGO_BIN_EXE_zonelog"))
            .args(["run", "-c"])
            .arg(&config)
            .env("ZONELOG_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start zonelog run")
    };
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    eprintln!("capture crash test seed {seed}");
    let mut rng = Rng(seed | 1);
    // The first start records the positions; the workload begins once the
    // service says it is ready.
    let mut child = start(&mut rng);
    let ready_url = format!("http://127.0.0.1:{port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(r) = reqwest::get(&ready_url).await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "zonelog run never became ready");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_put_delete_workload(client.clone(), bucket.clone(), stop.clone());
    for run in 0..RUNS {
        std::thread::sleep(Duration::from_millis(100 + rng.next() % 1500));
        if run % 2 == 0 {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
        } else {
            // SIGTERM in the middle of capturing: it finishes the batch in
            // flight and exits 0.
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("kill -TERM");
            let status = child.wait().expect("reap");
            assert!(
                status.success(),
                "SIGTERM while capturing exits 0: {status}"
            );
        }
        child = start(&mut rng);
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.expect("writer");
    // Let the last child catch up, then stop it cleanly.
    std::thread::sleep(Duration::from_secs(8));
    // SIGTERM through the kill command, as an operator would.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    let status = child.wait().expect("reap");
    assert!(status.success(), "zonelog run exits 0 on SIGTERM: {status}");

    let index: Arc<dyn ChangeIndex> = Arc::new(
        EmbeddedIndex::open(
            &index_dir,
            IndexLayout {
                shards: 8,
                mode: IndexMode::EveryWrite,
            },
        )
        .expect("open index"),
    );
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
