//! Collector benchmark: entries/s from the index into log objects, bytes per
//! entry before and after compression, peak RSS during the round.
//!
//! `cargo bench --bench collector` writes to a local directory target;
//! with the dev zone's variables set (`eval "$(scripts/ceph-dev env)"`) and
//! `ZONELOG_BENCH_TARGET=rgw` it writes to a bucket on the dev zone's RGW.
//! `ZONELOG_BENCH_ENTRIES` (default 5000000), `ZONELOG_BENCH_FORMAT`
//! (jsonl|parquet, default jsonl), `ZONELOG_BENCH_COMPRESSION`
//! (none|gzip|zstd, default zstd; JSON Lines only), part size 5 MiB,
//! threshold 8 MiB.
//! `ZONELOG_BENCH_PHASE=fill` only fills the index and keeps it;
//! `ZONELOG_BENCH_PHASE=round` only runs the round on a kept index, in a
//! fresh process, so its RSS is the collector's alone
//! (`scripts/bench-collector` runs both).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytesize::ByteSize;
use zonelog::collector::Collector;
use zonelog::config::{CollectorConfig, Compression, Format, Secret, TargetConfig};
use zonelog::index::conformance::record;
use zonelog::index::embedded::EmbeddedIndex;
use zonelog::index::{ChangeIndex, IndexLayout, IndexMode, WriteBatch};
use zonelog::lease::LeaseStore;
use zonelog::record::{Op, Provenance};
use zonelog::target::Target;

fn rss_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    // As the zonelog binary does, before any thread starts.
    zonelog::ops::limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench());
}

async fn bench() {
    let total: u64 = std::env::var("ZONELOG_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000);
    let format = match std::env::var("ZONELOG_BENCH_FORMAT").as_deref() {
        Ok("parquet") => Format::Parquet,
        _ => Format::Jsonl,
    };
    let compression = match std::env::var("ZONELOG_BENCH_COMPRESSION").as_deref() {
        Ok("none") => Compression::None,
        Ok("gzip") => Compression::Gzip,
        _ => Compression::Zstd,
    };
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-collector");
    let phase = std::env::var("ZONELOG_BENCH_PHASE").unwrap_or_else(|_| "all".into());
    if phase != "round" {
        let _ = std::fs::remove_dir_all(&base);
    }
    let index = Arc::new(
        EmbeddedIndex::open(
            &base.join("index"),
            IndexLayout {
                shards: 64,
                mode: IndexMode::EveryWrite,
            },
        )
        .expect("open"),
    );
    let now_ns = 1_764_000_000_000_000_000u64;
    if phase != "round" {
        fill(&index, total, now_ns).await;
    }
    if phase == "fill" {
        return;
    }
    round(index, &base, format, compression, now_ns).await;
    if phase == "all" {
        let _ = std::fs::remove_dir_all(&base);
    }
}

async fn fill(index: &Arc<EmbeddedIndex>, total: u64, now_ns: u64) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let index = index.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = w;
            while n < total {
                let mut batch = WriteBatch::new();
                while batch.records.len() < 2000 && n < total {
                    let mut r = record(
                        "photos-prod",
                        &format!("2026/11/25/camera-{:04}/IMG_{n:08}.jpg", n % 977),
                        None,
                        Op::Put,
                        now_ns + n * 1000,
                    );
                    r.size = Some(1_000_000 + n % 5_000_000);
                    r.etag = Some(format!(
                        "{:032x}",
                        u128::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    ));
                    r.source = Provenance::Rgw {
                        bucket_shard: "photos-prod:6297e187.4163.2:7".into(),
                        marker: format!("00000000001.{n}.6"),
                    };
                    batch.records.push(r);
                    n += 4;
                }
                index.write(batch).await.expect("write");
            }
        }));
    }
    for t in tasks {
        t.await.expect("fill");
    }
    println!(
        "fill: {total} entries in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

async fn round(
    index: Arc<EmbeddedIndex>,
    base: &std::path::Path,
    format: Format,
    compression: Compression,
    now_ns: u64,
) {
    let target_config = if std::env::var("ZONELOG_BENCH_TARGET").as_deref() == Ok("rgw") {
        let var = |n: &str| {
            std::env::var(n).unwrap_or_else(|_| panic!("{n}: eval \"$(scripts/ceph-dev env)\""))
        };
        let bucket = format!("zl-bench-{}", std::process::id());
        let endpoint: url::Url = var("ZONELOG_DEV_RGW_ENDPOINT").parse().expect("endpoint");
        let client = zonelog::capture::rgw::admin::SignedClient::new(
            endpoint.clone(),
            &var("ZONELOG_DEV_ADMIN_ACCESS_KEY"),
            Secret::new(var("ZONELOG_DEV_ADMIN_SECRET_KEY")),
            "us-east-1",
        )
        .expect("client");
        let url = client.url(&format!("/{bucket}"), &[]);
        client
            .send(reqwest::Method::PUT, url, Vec::new(), "create bucket")
            .await
            .expect("create bucket");
        TargetConfig {
            endpoint: Some(endpoint),
            region: "us-east-1".into(),
            access_key: Some(var("ZONELOG_DEV_ADMIN_ACCESS_KEY")),
            secret_key: Some(Secret::new(var("ZONELOG_DEV_ADMIN_SECRET_KEY"))),
            bucket: Some(bucket),
            prefix: "bench".into(),
            directory: None,
        }
    } else {
        TargetConfig {
            endpoint: None,
            region: "us-east-1".into(),
            access_key: None,
            secret_key: None,
            bucket: None,
            prefix: "bench".into(),
            directory: Some(base.join("logs")),
        }
    };
    let target = Target::from_config(&target_config).expect("target");
    let collector = Collector::new(
        index.clone() as Arc<dyn ChangeIndex>,
        index.clone() as Arc<dyn LeaseStore>,
        target,
        "bench-zone",
        CollectorConfig {
            period: Duration::from_secs(60),
            cutoff_margin: Duration::from_secs(1),
            lease_duration: Duration::from_secs(30),
            multipart_threshold: ByteSize::mib(8),
            part_size: ByteSize::mib(5),
            compression,
            max_entries_per_object: u64::MAX,
            write_empty_windows: false,
            layout: Default::default(),
            format,
        },
        "bench".into(),
    );
    let rss_before = rss_kb("VmRSS:");
    let peak = Arc::new(AtomicU64::new(rss_before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kb("VmRSS:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let started = Instant::now();
    let report = collector.round().await.expect("round");
    let secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let entries: u64 = report.windows.iter().map(|w| w.entries).sum();
    let bytes: u64 = report.windows.iter().map(|w| w.bytes).sum();
    // Uncompressed size of the same lines, for bytes per entry before compression.
    let mut raw = 0u64;
    let mut line = Vec::new();
    let sample = zonelog::index::IndexedEntry {
        shard: 0,
        id: zonelog::index::EntryId::new(now_ns, 1),
        record: {
            let mut r = record(
                "photos-prod",
                "2026/11/25/camera-0001/IMG_00001234.jpg",
                None,
                Op::Put,
                now_ns,
            );
            r.size = Some(1_234_567);
            r.etag = Some(format!("{:032x}", 1234u128));
            r.source = Provenance::Rgw {
                bucket_shard: "photos-prod:6297e187.4163.2:7".into(),
                marker: "00000000001.1234.6".into(),
            };
            r
        },
    };
    zonelog::logs::format::encode_line("bench-zone", &sample, &mut line);
    raw += line.len() as u64;
    println!(
        "target: {}",
        if target_config.directory.is_some() {
            "local directory"
        } else {
            "dev zone RGW"
        }
    );
    match format {
        Format::Jsonl => println!("format: JSON Lines, compression {compression:?}, part size 5 MiB, threshold 8 MiB"),
        Format::Parquet => println!("format: Parquet (zstd inside), row groups of about a part, part size 5 MiB, threshold 8 MiB"),
    }
    println!("round: {entries} entries, {} objects, {bytes} bytes in {secs:.1} s = {:.0} entries/s (read, encode, upload, verify, trim)", report.windows.len(), entries as f64 / secs);
    println!(
        "bytes/entry: {raw} uncompressed (one line), {:.1} stored",
        bytes as f64 / entries.max(1) as f64
    );
    println!(
        "RSS: {} MB before the round, peak {} MB during it (the index's page cache included)",
        rss_before / 1024,
        peak.load(Ordering::Relaxed) / 1024
    );
    drop(collector);
    drop(index);
}
