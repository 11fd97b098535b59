//! RADOS index benchmark against a running cluster (the dev zone's memstore
//! OSD): ingest with concurrent writers and batched omap writes, the
//! collector's merged read, and exact trims. Prints a markdown table.
//!
//! ```sh
//! eval "$(scripts/ceph-dev env)"   # CEPH_CONF, ZONELOG_DEV_RADOS_POOL
//! cargo bench --bench index_rados
//! ```
//!
//! `ZONELOG_BENCH_SECS` seconds per ingest cell (default 3),
//! `ZONELOG_BENCH_ENTRIES` size of the read/trim set (default 300000),
//! `ZONELOG_BENCH_CELLS` (e.g. `16x1000,4x100`) the ingest cells,
//! `ZONELOG_BENCH_SHARDS` shards (default 64). Every cell writes into a
//! namespace of its own; the trim phase empties the read set again.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zonelog::index::conformance::record;
use zonelog::index::rados::{RadosIndex, RadosOptions};
use zonelog::index::{
    ChangeIndex, EntryId, EntryRef, IndexLayout, IndexMode, MergedReader, WriteBatch,
};
use zonelog::record::{ChangeRecord, Op, Provenance};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn options(label: &str) -> RadosOptions {
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    RadosOptions {
        ceph_conf: PathBuf::from(
            std::env::var("CEPH_CONF").expect("CEPH_CONF: eval \"$(scripts/ceph-dev env)\""),
        ),
        user: "admin".into(),
        keyring: None,
        pool: std::env::var("ZONELOG_DEV_RADOS_POOL").expect("ZONELOG_DEV_RADOS_POOL"),
        namespace: format!("bench-{label}-{run}"),
        zone: "bench".into(),
        op_timeout: Duration::from_secs(60),
    }
}

/// Shaped like a real RGW capture record (as in benches/index.rs).
fn realistic(n: u64) -> ChangeRecord {
    let mut r = record(
        "photos-prod",
        &format!("2026/11/25/camera-{:04}/IMG_{n:08}.jpg", n % 977),
        None,
        Op::Put,
        1_764_000_000_000_000_000 + n * 1_000,
    );
    r.etag = Some(format!(
        "{:032x}",
        u128::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    ));
    r.source = Provenance::Rgw {
        bucket_shard: "photos-prod:6297e187-fc92.4163.2:7".into(),
        marker: format!("00000000001.{n}.6"),
    };
    r
}

async fn ingest(
    index: Arc<dyn ChangeIndex>,
    writers: usize,
    batch: usize,
    secs: Option<f64>,
    total: u64,
) -> (u64, f64) {
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (index, next, stop) = (index.clone(), next.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let first = next.fetch_add(batch as u64, Ordering::Relaxed);
                if first >= total {
                    break;
                }
                let mut b = WriteBatch::new();
                for n in first..(first + batch as u64).min(total) {
                    b = b.record(realistic(n));
                }
                done += b.records.len() as u64;
                index.write(b).await.expect("write");
            }
            done
        }));
    }
    if let Some(secs) = secs {
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        stop.store(true, Ordering::Relaxed);
    }
    let mut entries = 0;
    for t in tasks {
        entries += t.await.expect("writer");
    }
    (entries, started.elapsed().as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: f64 = env_or("ZONELOG_BENCH_SECS", 3.0);
    let total: u64 = env_or("ZONELOG_BENCH_ENTRIES", 300_000);
    let shards: u32 = env_or("ZONELOG_BENCH_SHARDS", 64);
    let cells: String = env_or(
        "ZONELOG_BENCH_CELLS",
        "1x1000,4x1000,16x1000,4x100".to_string(),
    );
    let layout = IndexLayout {
        shards,
        mode: IndexMode::EveryWrite,
    };
    println!("rados index, {shards} shards, every-write, memstore OSD of the dev zone; {secs} s per ingest cell\n");
    println!("| writers | batch | entries | entries/s |\n|---:|---:|---:|---:|");
    for cell in cells.split(',') {
        let Some((w, b)) = cell.split_once('x') else {
            continue;
        };
        let (w, b): (usize, usize) = (w.parse().expect("writers"), b.parse().expect("batch"));
        let index: Arc<dyn ChangeIndex> = Arc::new(
            RadosIndex::open(options(&format!("ingest-{cell}")), layout)
                .await
                .expect("open"),
        );
        let (entries, elapsed) = ingest(index.clone(), w, b, Some(secs), u64::MAX).await;
        println!(
            "| {w} | {b} | {entries} | {:.0} |",
            entries as f64 / elapsed
        );
        // Empty it again: the memstore OSD keeps everything in RAM.
        let all: Vec<EntryRef> = {
            let mut r = MergedReader::new(index.clone(), EntryId::MIN, EntryId::MAX, 4096);
            let mut v = Vec::new();
            while let Some(e) = r.next().await.expect("read") {
                v.push(e.entry_ref());
            }
            v
        };
        for chunk in all.chunks(10_000) {
            index.trim(chunk).await.expect("trim");
        }
    }
    let index: Arc<dyn ChangeIndex> = Arc::new(
        RadosIndex::open(options("collector"), layout)
            .await
            .expect("open"),
    );
    let (entries, elapsed) = ingest(index.clone(), 16, 1000, None, total).await;
    println!(
        "\nfill: {entries} entries in {elapsed:.2} s ({:.0} entries/s, 16 writers, batch 1000)",
        entries as f64 / elapsed
    );
    let started = Instant::now();
    let mut reader = MergedReader::new(index.clone(), EntryId::MIN, EntryId::MAX, 512);
    let mut refs = Vec::with_capacity(entries as usize);
    while let Some(e) = reader.next().await.expect("read") {
        refs.push(e.entry_ref());
    }
    let t = started.elapsed().as_secs_f64();
    println!("merged read (collector, pages of 512 per shard, decoded): {} entries in {t:.2} s = {:.0} entries/s", refs.len(), refs.len() as f64 / t);
    let started = Instant::now();
    let mut removed = 0;
    for chunk in refs.chunks(10_000) {
        removed += index.trim(chunk).await.expect("trim");
    }
    let t = started.elapsed().as_secs_f64();
    println!(
        "trim (10000 per call, as the collector): {removed} entries in {t:.2} s = {:.0} entries/s",
        removed as f64 / t
    );
    let stats = index.stats().await.expect("stats");
    assert_eq!(stats.entries(), 0);
}
