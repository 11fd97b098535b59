//! Crash test for the collector: a child process runs collector rounds
//! (multipart uploads to the dev zone's RGW) and is killed with SIGKILL at
//! random moments — before an upload, inside a multipart upload, after the
//! upload and before the trim, inside a trim — over 30 runs while more
//! changes keep arriving. At the end every change is in exactly one log
//! object, and every object matches its manifest. The child is this test
//! binary, re-run with `ZONELOG_COLLECTOR_CHILD` set.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytesize::ByteSize;
use common::dev_zone;
use common::target::{fresh, read_logs};
use zonelog::collector::Collector;
use zonelog::config::{CollectorConfig, Compression, Format, Layout, TargetConfig};
use zonelog::index::conformance::{read_all, record};
use zonelog::index::embedded::EmbeddedIndex;
use zonelog::index::{ChangeIndex, IndexLayout, IndexMode, WriteBatch};
use zonelog::lease::LeaseStore;
use zonelog::record::Op;
use zonelog::target::Target;

const RUNS: u32 = 30;
const PER_RUN: u64 = 8_000;

fn layout() -> IndexLayout {
    IndexLayout {
        shards: 16,
        mode: IndexMode::EveryWrite,
    }
}

/// What the collector writes: the format and the layout of its objects.
type Shape = (Format, Layout);

fn collector_config((format, layout): Shape) -> CollectorConfig {
    CollectorConfig {
        period: Duration::from_millis(50),
        cutoff_margin: Duration::from_millis(1),
        lease_duration: Duration::from_secs(2),
        multipart_threshold: ByteSize::kib(512),
        part_size: ByteSize::mib(5),
        compression: Compression::None,
        max_entries_per_object: 6_000,
        write_empty_windows: false,
        layout,
        format,
    }
}

fn collector(
    dir: &Path,
    target: &TargetConfig,
    holder: &str,
    shape: Shape,
) -> (Arc<EmbeddedIndex>, Collector) {
    let index = Arc::new(EmbeddedIndex::open(dir, layout()).expect("open index"));
    let c = Collector::new(
        index.clone() as Arc<dyn ChangeIndex>,
        index.clone() as Arc<dyn LeaseStore>,
        Target::from_config(target).expect("target"),
        "crash-zone",
        collector_config(shape),
        holder.to_string(),
    );
    (index, c)
}

/// The child: rounds until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_child() {
    let Ok(spec) = std::env::var("ZONELOG_COLLECTOR_CHILD") else {
        return;
    };
    let (dir, mut target, shape): (String, TargetConfig, Shape) =
        serde_json::from_str(&spec).expect("child spec");
    // A config serializes its secrets as "<redacted>": the child takes the
    // dev zone's own (before, every child round was refused with 403).
    target.secret_key = dev_zone().map(|z| zonelog::config::Secret::new(z.admin_secret_key));
    // Each child is a new holder: it must wait out the dead one's lease,
    // as a new leader would.
    let holder = format!("child-{}", std::process::id());
    let (_index, c) = collector(Path::new(&dir), &target, &holder, shape);
    loop {
        match c.round().await {
            Ok(_) => {}
            Err(e) => eprintln!("round failed: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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
async fn sigkill_during_rounds_puts_every_change_in_exactly_one_object() {
    sigkill_during_rounds((Format::Jsonl, Layout::Plain)).await;
}

/// The same for Parquet objects in the hive layout: a round cut short and
/// redone writes the same names, and no change twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_parquet_rounds_in_the_hive_layout_puts_every_change_in_exactly_one_object()
{
    sigkill_during_rounds((Format::Parquet, Layout::Hive)).await;
}

async fn sigkill_during_rounds(shape: Shape) {
    if std::env::var("ZONELOG_COLLECTOR_CHILD").is_ok() {
        return;
    }
    let Some(zone) = dev_zone() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let (target_config, target) = fresh(&zone, "crash").await;
    let spec = serde_json::to_string(&(dir.path().to_string_lossy(), &target_config, shape))
        .expect("spec");
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    eprintln!("collector crash test seed {seed}");
    let mut rng = Rng(seed | 1);
    let exe = std::env::current_exe().expect("test binary");
    let base_ns = 1_764_000_000_000_000_000u64;
    let mut written: BTreeMap<String, u64> = BTreeMap::new();
    for run in 0..RUNS {
        {
            let index = EmbeddedIndex::open(dir.path(), layout()).expect("open index");
            let mut batch = WriteBatch::new();
            for i in 0..PER_RUN {
                let key = format!("run{run:02}/{i:06}");
                written.insert(key.clone(), 0);
                let time = base_ns + u64::from(run) * 1_000_000_000 + i;
                batch = batch.record(record("bkt", &key, None, Op::Put, time));
                if batch.records.len() == 5000 {
                    index
                        .write(std::mem::take(&mut batch))
                        .await
                        .expect("write");
                }
            }
            index.write(batch).await.expect("write");
        }
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "collector_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("ZONELOG_COLLECTOR_CHILD", &spec)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start child");
        let delay = Duration::from_millis(50 + rng.next() % 2000);
        std::thread::sleep(delay);
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }
    // A final leader finishes whatever the last child left, once the dead
    // child's lease has expired.
    tokio::time::sleep(collector_config(shape).lease_duration + Duration::from_millis(200)).await;
    let (index, c) = collector(dir.path(), &target_config, "final", shape);
    for _ in 0..50 {
        match c.round().await {
            Ok(_) => {}
            // The 2 s lease can run out on a loaded machine (a slow fsync
            // delays its renewal); the collector stops before its next
            // write and the next round takes it again, as in production.
            Err(zonelog::collector::CollectorError::LeaseLost { window }) => {
                eprintln!("final round: lease lost at window {window}; next round");
                continue;
            }
            Err(e) => panic!("final round: {e:?}"),
        }
        if read_all(&(index.clone() as Arc<dyn ChangeIndex>))
            .await
            .is_empty()
        {
            break;
        }
    }
    assert!(
        read_all(&(index.clone() as Arc<dyn ChangeIndex>))
            .await
            .is_empty(),
        "all written and trimmed"
    );
    let logs = read_logs(&target).await;
    for (object, r) in &logs {
        let seen = written
            .get_mut(&r.key)
            .unwrap_or_else(|| panic!("{object} holds a change nobody wrote: {}", r.key));
        *seen += 1;
    }
    let doubled: Vec<_> = written.iter().filter(|(_, n)| **n > 1).take(5).collect();
    let missing: Vec<_> = written.iter().filter(|(_, n)| **n == 0).take(5).collect();
    assert!(
        doubled.is_empty(),
        "changes in more than one object: {doubled:?}"
    );
    assert!(missing.is_empty(), "changes in no object: {missing:?}");
    eprintln!(
        "{RUNS} kills; {} changes, each in exactly one of the log objects",
        written.len()
    );
}
