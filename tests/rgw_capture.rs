//! The RGW source against the dev zone: a scripted workload per op type,
//! asserting the exact records in the index, the filter's effect, and that
//! a restart resumes from the committed markers without doubling anything.

#[path = "rgw_capture/bilog_trims.rs"]
mod bilog_trims;
mod common;
#[path = "rgw_capture/datalog_trims.rs"]
mod datalog_trims;
#[path = "rgw_capture/enrich.rs"]
mod enrich;
#[path = "rgw_capture/full_sync.rs"]
mod full_sync;
#[path = "rgw_capture/ops.rs"]
mod ops;
#[path = "rgw_capture/positions.rs"]
mod positions;
#[path = "rgw_capture/probes.rs"]
mod probes;
#[path = "rgw_capture/record_fields.rs"]
mod record_fields;
#[path = "rgw_capture/removals.rs"]
mod removals;
#[path = "rgw_capture/reshards.rs"]
mod reshards;
#[path = "rgw_capture/restarts.rs"]
mod restarts;
#[path = "rgw_capture/unsharded.rs"]
mod unsharded;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{dev_zone, radosgw_admin, unique_bucket, DevZone, S3};
use futures::stream::{self, StreamExt};
use tempfile::TempDir;
use zonelog::capture::rgw::probe::{BilogProbe, DatalogProbe, Sweep};
use zonelog::capture::rgw::{BucketShard, RgwAdmin, RgwCapture};
use zonelog::config::{FilterConfig, InitialSync, RgwSourceConfig, Secret};
use zonelog::filter::Filter;
use zonelog::index::conformance::read_all;
use zonelog::index::embedded::EmbeddedIndex;
use zonelog::index::{ChangeIndex, IndexLayout, IndexMode, WriteBatch};
use zonelog::rados::{Cluster, IoCtx, WriteOp};
use zonelog::record::{ChangeRecord, Op, Provenance};

type Change = (String, String, Option<String>, Op);

/// `trim_source` trims RGW's data log, which every capture in this file
/// reads: a trim while another test's capture has not yet read its buckets'
/// entries would make that test miss them. The trimming test takes this
/// lock exclusively, every other test shares it.
static DATA_LOG: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn source_config(zone: &DevZone) -> RgwSourceConfig {
    RgwSourceConfig {
        endpoint: zone.endpoint.clone(),
        access_key: zone.admin_access_key.clone(),
        secret_key: Secret::new(zone.admin_secret_key.clone()),
        region: "us-east-1".into(),
        poll_interval: Duration::from_millis(200),
        concurrency: 8,
        enrich: false,
        enrich_tags: false,
        initial: InitialSync::Now,
        trim_source: false,
        trim_interval: Duration::from_secs(60),
        check_interval: Duration::from_secs(300),
        rados: None,
    }
}

fn open(dir: &TempDir) -> Arc<dyn ChangeIndex> {
    Arc::new(
        EmbeddedIndex::open(
            dir.path(),
            IndexLayout {
                shards: 16,
                mode: IndexMode::EveryWrite,
            },
        )
        .expect("open index"),
    )
}

fn capture(zone: &DevZone, index: Arc<dyn ChangeIndex>, filter: &FilterConfig) -> RgwCapture {
    RgwCapture::new(
        RgwAdmin::new(zone.admin_client()),
        index,
        Filter::new(filter),
        source_config(zone),
    )
}

async fn changes(index: &Arc<dyn ChangeIndex>) -> Vec<Change> {
    let mut out: Vec<Change> = read_all(index)
        .await
        .into_iter()
        .map(|e| {
            (
                e.record.bucket,
                e.record.key,
                e.record.version_id,
                e.record.op,
            )
        })
        .collect();
    out.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    out
}

/// Polls until the index holds `want` (sorted), failing after 60 s, then
/// polls twice more to show nothing else arrives.
async fn poll_until(capture: &RgwCapture, index: &Arc<dyn ChangeIndex>, mut want: Vec<Change>) {
    want.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    let started = Instant::now();
    loop {
        capture.poll_once().await.expect("poll");
        let got = changes(index).await;
        if got == want {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            assert_eq!(got, want, "records in the index after 60 s of polling");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for _ in 0..2 {
        capture.poll_once().await.expect("poll");
    }
    assert_eq!(changes(index).await, want, "nothing more arrives");
}

/// Polls until the index holds a record of each of `keys` (from the logs
/// or a listing, however many), failing after 60 s.
async fn poll_until_keys(
    zone: &DevZone,
    capture: &RgwCapture,
    index: &Arc<dyn ChangeIndex>,
    keys: &[&str],
    what: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        capture.poll_once().await.expect("poll");
        let have: std::collections::BTreeSet<String> =
            changes(index).await.into_iter().map(|c| c.1).collect();
        if keys.iter().all(|k| have.contains(*k)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Ceph {}: changes missing {what}: have {have:?}",
            zone.release
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Reopens the index with a fresh capture, as after a restart: capture
/// resumes from the committed markers, doubles nothing, and a later change
/// to `bucket` still arrives.
async fn restart_resumes_exactly(
    zone: &DevZone,
    dir: &TempDir,
    filter: &FilterConfig,
    bucket: &str,
    mut want: Vec<Change>,
) {
    let index = open(dir);
    let cap = capture(zone, index.clone(), filter);
    for _ in 0..3 {
        cap.poll_once().await.expect("poll after restart");
    }
    assert_eq!(
        changes(&index).await.len(),
        want.len(),
        "a restart doubles nothing"
    );
    let client = zone.admin_client();
    S3(&client).put(bucket, "after-restart", b"r").await;
    want.push(change(bucket, "after-restart", None, Op::Put));
    poll_until(&cap, &index, want).await;
}

fn prefix_filter(prefix: &str) -> FilterConfig {
    FilterConfig {
        buckets: vec![],
        bucket_prefixes: vec![prefix.to_string()],
        key_prefixes: BTreeMap::new(),
    }
}

fn bucket_filter(bucket: &str) -> FilterConfig {
    FilterConfig {
        buckets: vec![bucket.to_string()],
        bucket_prefixes: vec![],
        key_prefixes: BTreeMap::new(),
    }
}

/// A capture into a new index that has polled once, so its starting
/// positions are taken: what it records from here on is what follows.
async fn started(
    zone: &DevZone,
    filter: &FilterConfig,
) -> (TempDir, Arc<dyn ChangeIndex>, RgwCapture) {
    let dir = tempfile::tempdir().expect("temp dir");
    let index = open(&dir);
    let cap = capture(zone, index.clone(), filter);
    cap.poll_once().await.expect("first poll");
    (dir, index, cap)
}

fn change(bucket: &str, key: &str, version: Option<&str>, op: Op) -> Change {
    (
        bucket.to_string(),
        key.to_string(),
        version.map(str::to_string),
        op,
    )
}

/// `radosgw-admin bucket reshard` to `shards` shards, off the runtime
/// (fewer shards than now too, which radosgw-admin wants confirmed).
async fn reshard(bucket: &str, shards: u32) {
    let (bucket, shards) = (bucket.to_string(), shards.to_string());
    tokio::task::spawn_blocking(move || {
        radosgw_admin(&[
            "bucket",
            "reshard",
            "--bucket",
            &bucket,
            "--num-shards",
            &shards,
            "--yes-i-really-mean-it",
        ])
    })
    .await
    .expect("reshard thread");
}

/// Trims every shard of `bucket`'s index log through its last entry.
async fn trim_whole_bilog(admin: &RgwAdmin, bucket: &str) {
    let instance = admin.bucket_instance(bucket).await.expect("bucket info");
    for shard in zonelog_shards(instance.num_shards) {
        let bs = BucketShard::first(bucket, &instance.instance_id, shard);
        let info = admin.bilog_info(&bs).await.expect("bilog info");
        if !info.max_marker.is_empty() {
            admin.bilog_trim(&bs, &info.max_marker).await.expect("trim");
        }
    }
}

fn zonelog_shards(num_shards: u32) -> Vec<Option<u32>> {
    match num_shards {
        0 => vec![None],
        n => (0..n).map(Some).collect(),
    }
}

fn dev_cluster() -> Arc<Cluster> {
    let conf = std::env::var("CEPH_CONF").expect("CEPH_CONF (from scripts/ceph-dev env)");
    Cluster::connect(
        std::path::Path::new(&conf),
        "admin",
        None,
        Duration::from_secs(30),
    )
    .expect("connect to the dev cluster")
}

/// A probe of the dev zone's data log, read from RADOS as `client.admin`.
fn data_log_probe() -> Arc<DatalogProbe> {
    let io = IoCtx::new(&dev_cluster(), "default.rgw.log", "").expect("the zone's log pool");
    Arc::new(DatalogProbe::new(Arc::new(io), "data_log"))
}
