//! Notify receiver benchmark: notifications/s accepted durably (answered
//! 200 after the commit) and the latency per request, with C concurrent
//! senders posting RGW-format bodies of R records each to `POST /v1/events`
//! of an in-process receiver on an embedded index (64 shards).
//!
//! `cargo bench --bench notify`; `ZONELOG_BENCH_CELLS` (default
//! `1x1,8x1,32x1,128x1,32x10`: concurrency x records per request),
//! `ZONELOG_BENCH_SECS` per cell (default 5). Senders and receiver share
//! the machine, so the figures are a lower bound for the receiver alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytesize::ByteSize;
use tokio::sync::watch;
use zonelog::capture::notify;
use zonelog::config::{FilterConfig, KeyEncoding, NotifySourceConfig, Secret};
use zonelog::filter::Filter;
use zonelog::index::embedded::EmbeddedIndex;
use zonelog::index::{ChangeIndex, IndexLayout, IndexMode};

const TOKEN: &str = "bench-token";

fn main() {
    zonelog::ops::limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench());
}

fn event(n: u64) -> serde_json::Value {
    serde_json::json!({
        "eventVersion": "2.2", "eventSource": "ceph:s3", "awsRegion": "",
        "eventTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "bench"},
        "requestParameters": {"sourceIPAddress": ""},
        "responseElements": {"x-amz-request-id": format!("req-{n}"), "x-amz-id-2": "bench"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "zonelog",
               "bucket": {"name": "bench-bucket", "ownerIdentity": {"principalId": "bench"},
                          "arn": "arn:aws:s3:::bench-bucket", "id": "bench.1"},
               "object": {"key": format!("data/{:016x}/object-{n}.bin", n.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                          "size": 4096, "eTag": "5d41402abc4b2a76b9719d911017c592",
                          "versionId": "", "sequencer": format!("{n:016X}"),
                          "metadata": [], "tags": []}},
        "eventId": format!("1795626145.{n}.5d41402abc4b2a76b9719d911017c592"),
        "opaqueData": ""
    })
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn bench() {
    let cells: Vec<(usize, usize)> = std::env::var("ZONELOG_BENCH_CELLS")
        .unwrap_or_else(|_| "1x1,8x1,32x1,128x1,32x10".into())
        .split(',')
        .filter_map(|c| {
            let (a, b) = c.trim().split_once('x')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect();
    let secs: f64 = std::env::var("ZONELOG_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-notify");
    let _ = std::fs::remove_dir_all(&dir);
    let index = Arc::new(
        EmbeddedIndex::open(
            &dir,
            IndexLayout {
                shards: 64,
                mode: IndexMode::EveryWrite,
            },
        )
        .expect("open index"),
    );
    let config = NotifySourceConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        token: Secret::new(TOKEN),
        max_body: ByteSize::mib(8),
        body_timeout: Duration::from_secs(30),
        key_encoding: KeyEncoding::Auto,
        dedup_events: 262_144,
        push_endpoint: None,
        topic: "zonelog".into(),
        rgw: None,
    };
    let filter = Filter::new(&FilterConfig {
        buckets: vec![],
        bucket_prefixes: vec!["".into()],
        key_prefixes: Default::default(),
    });
    let (stop, shutdown) = watch::channel(false);
    let server = notify::start(
        &config,
        index.clone() as Arc<dyn ChangeIndex>,
        filter,
        shutdown,
    )
    .await
    .expect("start receiver");
    let url = format!("http://{}/v1/events?token={TOKEN}", server.local_addr);
    let counters = server.counters.clone();
    let serving = tokio::spawn(server.run());
    println!(
        "notify receiver: embedded index (64 shards, every-write), in-process senders, {secs} s per cell; record ~900 bytes of JSON"
    );
    println!();
    println!("| senders | records/request | requests | notifications | notifications/s | commits | p50 ms | p99 ms | max ms |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut next = 0u64;
    for (concurrency, per_request) in cells {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .build()
            .expect("client");
        let commits_before = counters.commits.load(std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        let deadline = started + Duration::from_secs_f64(secs);
        let mut tasks = Vec::new();
        for worker in 0..concurrency as u64 {
            let client = client.clone();
            let url = url.clone();
            let base = next + worker * 100_000_000;
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = base;
                while Instant::now() < deadline {
                    let records: Vec<serde_json::Value> =
                        (0..per_request as u64).map(|i| event(n + i)).collect();
                    n += per_request as u64;
                    let body = serde_json::to_vec(&serde_json::json!({ "Records": records }))
                        .expect("json");
                    let sent = Instant::now();
                    let response = client.post(&url).body(body).send().await.expect("post");
                    assert_eq!(response.status().as_u16(), 200);
                    let _ = response.bytes().await;
                    latencies.push(sent.elapsed());
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.expect("sender"));
        }
        let elapsed = started.elapsed().as_secs_f64();
        next += concurrency as u64 * 100_000_000;
        latencies.sort();
        let requests = latencies.len();
        let notifications = requests * per_request;
        let commits = counters.commits.load(std::sync::atomic::Ordering::Relaxed) - commits_before;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "| {concurrency} | {per_request} | {requests} | {notifications} | {:.0} | {commits} | {:.1} | {:.1} | {:.1} |",
            notifications as f64 / elapsed,
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(latencies.last().copied().unwrap_or_default()),
        );
    }
    let stored = counters.stored();
    let _ = stop.send(true);
    let _ = serving.await;
    let stats = index.stats().await.expect("stats");
    println!();
    println!(
        "stored {stored} records; index holds {} entries; fdatasync-bound commits shared by the requests waiting",
        stats.entries()
    );
    drop(index);
    let _ = std::fs::remove_dir_all(&dir);
}
