//! Embedded index benchmark: durable ingest with 1/4/16 concurrent writers
//! and batches of 1/100/1000, merged and per-shard read rates, trim rate,
//! bytes on disk per entry, peak memory. Prints a markdown table.
//!
//! `cargo bench --bench index` (data in target/bench-index, removed after).
//! `ZONELOG_BENCH_SECS` sets seconds per ingest cell (default 3),
//! `ZONELOG_BENCH_ENTRIES` the size of the read/trim set (default 1000000),
//! `ZONELOG_BENCH_CELLS` (e.g. `16x1000,4x100`) runs only those ingest cells.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zonelog::index::codec::view_record;
use zonelog::index::conformance::record;
use zonelog::index::embedded::EmbeddedIndex;
use zonelog::index::{
    ChangeIndex, EntryId, EntryRef, IndexLayout, IndexMode, MergedReader, WriteBatch,
};
use zonelog::record::{ChangeRecord, Op, Provenance};

fn layout() -> IndexLayout {
    IndexLayout {
        shards: 64,
        mode: IndexMode::EveryWrite,
    }
}

/// A record shaped like a real RGW capture: bucket, a path-like key, size,
/// etag, provenance with a bilog marker.
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

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn ingest_cell(dir: &Path, writers: usize, batch: usize, secs: f64) -> (u64, f64) {
    let _ = std::fs::remove_dir_all(dir);
    let index: Arc<dyn ChangeIndex> = Arc::new(EmbeddedIndex::open(dir, layout()).expect("open"));
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (index, next, stop) = (index.clone(), next.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let first = next.fetch_add(batch as u64, Ordering::Relaxed);
                let mut b = WriteBatch::new().marker(format!("bench/{w}"), first.to_string());
                b.records = (first..first + batch as u64).map(realistic).collect();
                index.write(b).await.expect("write");
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("writer");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let entries = index.stats().await.expect("stats").entries();
    (entries, entries as f64 / elapsed)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: f64 = std::env::var("ZONELOG_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let total: u64 = std::env::var("ZONELOG_BENCH_ENTRIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-index");
    let _ = std::fs::remove_dir_all(&base);
    let mut value_bytes = Vec::new();
    zonelog::index::codec::encode_record(&realistic(12345), &mut value_bytes);
    println!("embedded index (redb), 64 shards, every-write; record {} bytes encoded; {secs} s per ingest cell\n", value_bytes.len());
    println!("| writers | batch | entries | durable entries/s |");
    println!("|---:|---:|---:|---:|");
    // e.g. "16x1000,4x100": only these ingest cells (for profiling one).
    let cells = std::env::var("ZONELOG_BENCH_CELLS").ok();
    for writers in [1usize, 4, 16] {
        for batch in [1usize, 100, 1000] {
            if cells
                .as_deref()
                .is_some_and(|c| !c.split(',').any(|c| c == format!("{writers}x{batch}")))
            {
                continue;
            }
            let (entries, rate) = ingest_cell(
                &base.join(format!("ingest-{writers}-{batch}")),
                writers,
                batch,
                secs,
            )
            .await;
            println!("| {writers} | {batch} | {entries} | {rate:.0} |");
        }
    }
    let _ = std::fs::remove_dir_all(&base);

    // Fill, then read and trim a fixed set.
    let dir = base.join("read-trim");
    let index: Arc<dyn ChangeIndex> = Arc::new(EmbeddedIndex::open(&dir, layout()).expect("open"));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let per_writer = total / 4;
    for w in 0..4u64 {
        let index = index.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = w * per_writer;
            while n < (w + 1) * per_writer {
                let end = (n + 1000).min((w + 1) * per_writer);
                let mut b = WriteBatch::new();
                b.records = (n..end).map(realistic).collect();
                index.write(b).await.expect("write");
                n = end;
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let fill = started.elapsed().as_secs_f64();
    let entries = index.stats().await.expect("stats").entries();
    let file_bytes = std::fs::metadata(dir.join("index.redb"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "\nfill: {entries} entries in {fill:.2} s ({:.0} entries/s, 4 writers, batch 1000)",
        entries as f64 / fill
    );
    println!(
        "bytes on disk: {file_bytes} = {:.0} bytes/entry",
        file_bytes as f64 / entries as f64
    );

    // Read in the stored form, each record checked and viewed in place:
    // what the collector does.
    let started = Instant::now();
    let mut refs: Vec<EntryRef> = Vec::with_capacity(entries as usize);
    for shard in 0..64 {
        let mut from = EntryId::MIN;
        loop {
            let page = index
                .read_shard_encoded(shard, from, EntryId::MAX, 10_000)
                .await
                .expect("read");
            let Some(last) = page.last_ref() else { break };
            from = last.id.successor().expect("successor");
            for (entry, stored) in page.iter() {
                std::hint::black_box(view_record(stored).expect("view"));
                refs.push(entry);
            }
        }
    }
    let per_shard = started.elapsed().as_secs_f64();
    println!("per-shard read (pages of 10000, viewed in place): {} entries in {per_shard:.2} s = {:.0} entries/s", refs.len(), refs.len() as f64 / per_shard);

    let started = Instant::now();
    let mut decoded = 0u64;
    for shard in 0..64 {
        let mut from = EntryId::MIN;
        loop {
            let page = index
                .read_shard(shard, from, EntryId::MAX, 10_000)
                .await
                .expect("read");
            let Some(last) = page.last() else { break };
            from = last.id.successor().expect("successor");
            decoded += page.len() as u64;
        }
    }
    let per_shard = started.elapsed().as_secs_f64();
    println!("per-shard read (pages of 10000, decoded into owned records): {decoded} entries in {per_shard:.2} s = {:.0} entries/s", decoded as f64 / per_shard);

    let started = Instant::now();
    let mut reader = MergedReader::new(index.clone(), EntryId::MIN, EntryId::MAX, 10_000);
    let mut merged = 0u64;
    while let Some(viewed) = reader
        .next_with(|_, stored| view_record(stored).is_ok())
        .await
        .expect("merged")
    {
        assert!(viewed, "stored record does not decode");
        merged += 1;
    }
    let merged_secs = started.elapsed().as_secs_f64();
    println!(
        "merged read of all shards (viewed in place): {merged} entries in {merged_secs:.2} s = {:.0} entries/s",
        merged as f64 / merged_secs
    );

    let started = Instant::now();
    let mut reader = MergedReader::new(index.clone(), EntryId::MIN, EntryId::MAX, 10_000);
    let mut merged = 0u64;
    while reader.next().await.expect("merged").is_some() {
        merged += 1;
    }
    let merged_secs = started.elapsed().as_secs_f64();
    println!(
        "merged read of all shards (decoded): {merged} entries in {merged_secs:.2} s = {:.0} entries/s",
        merged as f64 / merged_secs
    );

    let started = Instant::now();
    for chunk in refs.chunks(10_000) {
        index.trim(chunk).await.expect("trim");
    }
    let trim = started.elapsed().as_secs_f64();
    println!(
        "trim (10000 per durable call): {} entries in {trim:.2} s = {:.0} entries/s",
        refs.len(),
        refs.len() as f64 / trim
    );
    println!("peak RSS (VmHWM) of the whole run: {:.0} MB", peak_rss_mb());
    drop(reader);
    drop(index);
    let _ = std::fs::remove_dir_all(&base);
}
