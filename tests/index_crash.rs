//! Crash test for the embedded index: a child process writes and trims
//! batches from several tasks and is killed with SIGKILL at random moments.
//! After each kill the index is reopened and must hold every batch whose
//! write call had returned, no batch partly, and markers no older than the
//! last acknowledged batch. The child is this same test binary, re-run with
//! `ZONELOG_CRASH_CHILD_DIR` set (see `crash_child_writer`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zonelog::index::conformance::{read_all, record};
use zonelog::index::embedded::EmbeddedIndex;
use zonelog::index::{ChangeIndex, EntryRef, IndexLayout, IndexMode, WriteBatch};
use zonelog::record::Op;

const RECORDS_PER_BATCH: usize = 20;
const WRITERS: usize = 4;
const RUNS: u32 = 60;

fn layout() -> IndexLayout {
    IndexLayout {
        shards: 8,
        mode: IndexMode::EveryWrite,
    }
}

/// The child: runs only when the parent test starts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_writer() {
    let Ok(dir) = std::env::var("ZONELOG_CRASH_CHILD_DIR") else {
        return;
    };
    let run: u32 = std::env::var("ZONELOG_CRASH_RUN")
        .expect("run number")
        .parse()
        .expect("run number");
    let index: Arc<dyn ChangeIndex> =
        Arc::new(EmbeddedIndex::open(Path::new(&dir), layout()).expect("open"));
    say("ready".into());
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let index = index.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0u64.. {
                let batch_id = format!("r{run:03}-w{writer}-{n:06}");
                let mut batch =
                    WriteBatch::new().marker(format!("writer/{writer}"), batch_id.clone());
                for i in 0..RECORDS_PER_BATCH {
                    let time = 1_000_000 + u64::from(run) * 1_000 + (n % 500) + i as u64;
                    batch = batch.record(record(
                        "crash",
                        &format!("{batch_id}/{i:02}"),
                        None,
                        Op::Put,
                        time,
                    ));
                }
                index.write(batch).await.expect("write");
                say(format!("acked {batch_id}"));
            }
        }));
    }
    // A trimmer removes whole batches of earlier runs, one batch per call.
    let trimmer = index.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            let all = read_all(&trimmer).await;
            let mut batches: BTreeMap<String, Vec<EntryRef>> = BTreeMap::new();
            for e in &all {
                let batch_id = e
                    .record
                    .key
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                batches.entry(batch_id).or_default().push(e.entry_ref());
            }
            for (batch_id, refs) in batches
                .into_iter()
                .filter(|(b, _)| !b.starts_with(&format!("r{run:03}")))
                .take(5)
            {
                say(format!("trimming {batch_id}"));
                trimmer.trim(&refs).await.expect("trim");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }));
    for t in tasks {
        t.await.expect("task");
    }
}

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A small xorshift: random kill times without another dependency.
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
async fn sigkill_at_random_moments_loses_no_acknowledged_batch() {
    if std::env::var("ZONELOG_CRASH_CHILD_DIR").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed | 1);
    let exe = std::env::current_exe().expect("test binary");
    let mut acked_total = 0usize;
    let mut trimming: BTreeSet<String> = BTreeSet::new();
    for run in 0..RUNS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("ZONELOG_CRASH_CHILD_DIR", dir.path())
            .env("ZONELOG_CRASH_RUN", run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start child");
        let stdout = child.stdout.take().expect("child stdout");
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        // Kill anywhere from during open to deep into concurrent writing.
        let delay = Duration::from_millis(5 + rng.next() % 400);
        std::thread::sleep(delay);
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let lines = reader.join().expect("reader");
        let acked: Vec<String> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("acked ").map(str::to_string))
            .collect();
        trimming.extend(
            lines
                .iter()
                .filter_map(|l| l.strip_prefix("trimming ").map(str::to_string)),
        );
        acked_total += acked.len();

        let index: Arc<dyn ChangeIndex> =
            Arc::new(EmbeddedIndex::open(dir.path(), layout()).expect("reopen after SIGKILL"));
        let all = read_all(&index).await;
        let mut present: BTreeMap<String, usize> = BTreeMap::new();
        for e in &all {
            let batch_id = e
                .record
                .key
                .split('/')
                .next()
                .expect("batch id")
                .to_string();
            *present.entry(batch_id).or_default() += 1;
        }
        for (batch_id, count) in &present {
            assert_eq!(
                *count, RECORDS_PER_BATCH,
                "run {run}: batch {batch_id} is partly present"
            );
        }
        for batch_id in &acked {
            assert!(
                present.contains_key(batch_id) || trimming.contains(batch_id),
                "run {run} (killed after {delay:?}): acknowledged batch {batch_id} is missing"
            );
        }
        for writer in 0..WRITERS {
            let last_acked = acked
                .iter()
                .filter(|b| b.contains(&format!("-w{writer}-")))
                .max();
            let marker = index
                .marker(&format!("writer/{writer}"))
                .await
                .expect("marker");
            if let Some(last) = last_acked {
                let marker =
                    String::from_utf8(marker.expect("marker after an acked batch")).expect("utf8");
                assert!(
                    marker.as_str() >= last.as_str(),
                    "run {run}: marker {marker} older than acked {last}"
                );
                assert!(
                    present.contains_key(&marker) || trimming.contains(&marker),
                    "run {run}: marker {marker} names a batch that is not there"
                );
            }
        }
        let stats = index.stats().await.expect("stats");
        assert_eq!(stats.entries(), all.len() as u64, "counts rebuilt at open");
    }
    eprintln!("{RUNS} kills, {acked_total} acknowledged batches checked");
    assert!(acked_total > 0, "the child never got a batch written");
}
