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

/// A probe of the dev zone's bucket-index objects.
fn index_probe() -> Arc<BilogProbe> {
    let io = IoCtx::new(&dev_cluster(), "default.rgw.buckets.index", "").expect("index pool");
    Arc::new(BilogProbe::new(Arc::new(io)))
}

/// A probe of the dev zone's data log, read from RADOS as `client.admin`.
fn data_log_probe() -> Arc<DatalogProbe> {
    let io = IoCtx::new(&dev_cluster(), "default.rgw.log", "").expect("the zone's log pool");
    Arc::new(DatalogProbe::new(Arc::new(io), "data_log"))
}

/// A probe pointed at objects RGW never writes (a wrong pool and prefix
/// that happen to hold a data log's shape) sees no change, ever: the
/// safety net finds entries the probe missed, and the probe is turned off,
/// so every shard is read on every poll from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_that_watches_the_wrong_objects_is_caught_and_turned_off() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let prefix = unique_bucket("zlwrongprobe");
    let shards = RgwAdmin::new(zone.admin_client())
        .datalog_shard_count()
        .await
        .expect("shard count");
    // An omap data log of generation 0 with `shards` empty shard objects.
    let io = IoCtx::new(&dev_cluster(), "zonelog-test", &prefix).expect("test pool");
    let ops: Vec<(String, WriteOp)> = (0..shards)
        .map(|n| (format!("fake_log.{n}"), WriteOp::new().create(false)))
        .collect();
    for r in io.operate_many(&ops) {
        r.expect("create a fake shard object");
    }
    let generations: &[u8] = &[
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let mut put = std::process::Command::new("rados")
        .args([
            "-p",
            "zonelog-test",
            "-N",
            &prefix,
            "put",
            "fake_loggenerations_metadata",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("rados (scripts/ceph-dev env)");
    std::io::Write::write_all(&mut put.stdin.take().expect("stdin"), generations).expect("write");
    assert!(put.wait().expect("rados put").success());
    let probe = Arc::new(DatalogProbe::new(Arc::new(io), "fake_log"));
    let dir = tempfile::tempdir().expect("temp dir");
    let index = open(&dir);
    let cap = capture(&zone, index.clone(), &prefix_filter(&prefix)).with_probe(probe);
    cap.poll_once().await.expect("first poll");
    // Changes in enough buckets that every data-log shard gets entries
    // within one turn of the safety net.
    let mut expected = Vec::new();
    let buckets: Vec<String> = (0..40).map(|i| format!("{prefix}-{i}")).collect();
    for bucket in &buckets {
        s3.create_bucket(bucket).await;
        s3.put(bucket, "k", b"x").await;
        expected.push((bucket.clone(), "k".to_string(), None, Op::Put));
    }
    // The safety net reads one shard every 10 s: the probe is found out
    // by the first shard with entries, a few turns at most.
    let deadline = Instant::now() + Duration::from_secs(15 * 60);
    while cap.counters.probe_failures.load(Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "Ceph {}: the wrong probe was not caught",
            zone.release
        );
        cap.poll_once().await.expect("poll");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    poll_until(&cap, &index, expected).await;
    let before = cap.counters.datalog_shard_reads.load(Ordering::Relaxed);
    cap.poll_once().await.expect("poll");
    assert_eq!(
        cap.counters.datalog_shard_reads.load(Ordering::Relaxed) - before,
        u64::from(shards),
        "Ceph {}: with the probe off, a poll reads every shard",
        zone.release
    );
}

/// The probe's promise: every data-log shard that got an entry between two
/// sweeps is reported by the second. Checked against RGW's own view, the
/// last marker of each shard (`&info`), read after the first sweep and
/// before the second, so a change seen there lies between the sweeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_log_probe_reports_every_shard_that_changed() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let admin = RgwAdmin::new(zone.admin_client());
    let shards = admin.datalog_shard_count().await.expect("shard count");
    let probe = data_log_probe();
    let sweep = |probe: Arc<DatalogProbe>| async move {
        tokio::task::spawn_blocking(move || probe.sweep(shards))
            .await
            .expect("sweep task")
            .expect("sweep")
    };
    assert_eq!(
        sweep(probe.clone()).await,
        Sweep::All,
        "a first sweep reads all"
    );
    let buckets: Vec<String> = (0..6)
        .map(|i| unique_bucket(&format!("zlprobe{i}")))
        .collect();
    for bucket in &buckets {
        s3.create_bucket(bucket).await;
    }
    for round in 0..3 {
        let Sweep::Changed(_) = sweep(probe.clone()).await else {
            panic!("Ceph {}: the layout changed between sweeps", zone.release)
        };
        let before = datalog_markers(&admin, shards).await;
        for bucket in &buckets {
            s3.put(bucket, &format!("k{round}"), b"x").await;
        }
        // RGW adds the data-log entry right after the bilog one.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = datalog_markers(&admin, shards).await;
        let Sweep::Changed(changed) = sweep(probe.clone()).await else {
            panic!("Ceph {}: the layout changed between sweeps", zone.release)
        };
        let moved: Vec<u32> = (0..shards)
            .filter(|s| before[*s as usize] != after[*s as usize])
            .collect();
        let missed: Vec<u32> = moved
            .iter()
            .copied()
            .filter(|s| !changed.contains(s))
            .collect();
        assert!(
            missed.is_empty(),
            "Ceph {}: round {round}: shards {missed:?} moved in RGW's view ({moved:?}) but the probe \
             reported only {changed:?}",
            zone.release
        );
        // The first round always has new entries (new buckets' first
        // writes); later rounds may fall in RGW's 30 s window.
        if round == 0 {
            assert!(
                !moved.is_empty(),
                "Ceph {}: no data-log entry",
                zone.release
            );
        }
    }
}

async fn datalog_markers(admin: &RgwAdmin, shards: u32) -> Vec<String> {
    let mut markers = Vec::new();
    for shard in 0..shards {
        markers.push(admin.datalog_info(shard).await.expect("info").marker);
    }
    markers
}

/// With a probe, a capture reads only the data-log shards that changed and
/// still records every change exactly once; an idle poll reads few shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_with_a_probe_reads_only_changed_shards_and_loses_nothing() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let prefix = unique_bucket("zlprobed");
    let buckets: Vec<String> = (0..4).map(|i| format!("{prefix}-{i}")).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let index = open(&dir);
    let cap = capture(&zone, index.clone(), &prefix_filter(&prefix))
        .with_probe(data_log_probe())
        .with_index_probe(index_probe());
    cap.poll_once().await.expect("first poll");
    let shards = RgwAdmin::new(zone.admin_client())
        .datalog_shard_count()
        .await
        .expect("shard count") as u64;
    assert_eq!(
        cap.counters.datalog_shard_reads.load(Ordering::Relaxed),
        shards,
        "the first poll reads every shard"
    );
    for bucket in &buckets {
        s3.create_bucket(bucket).await;
    }
    let mut expected = Vec::new();
    for round in 0..3 {
        for bucket in &buckets {
            let key = format!("k{round}");
            s3.put(bucket, &key, b"x").await;
            expected.push((bucket.clone(), key, None, Op::Put));
        }
        poll_until(&cap, &index, expected.clone()).await;
    }
    let before = cap.counters.datalog_shard_reads.load(Ordering::Relaxed);
    let bilog_before = cap.counters.bilog_shard_reads.load(Ordering::Relaxed);
    let active = cap.counters.active_bucket_shards.load(Ordering::Relaxed);
    assert!(active > 0, "the buckets' shards are in the hot set");
    for _ in 0..5 {
        cap.poll_once().await.expect("idle poll");
    }
    let idle_reads = cap.counters.datalog_shard_reads.load(Ordering::Relaxed) - before;
    // Nothing was written to these buckets: the index probe skips every
    // hot shard (without it, 5 × `active` reads).
    assert_eq!(
        cap.counters.bilog_shard_reads.load(Ordering::Relaxed) - bilog_before,
        0,
        "Ceph {}: idle polls read bilogs of {active} hot shards",
        zone.release
    );
    // Without the probe this is 5 × shards. Other tests write meanwhile,
    // and RGW renews the entries of recently written buckets, so some
    // shards do change.
    assert!(
        idle_reads < 5 * shards / 2,
        "Ceph {}: 5 polls with little traffic read {idle_reads} data-log shards",
        zone.release
    );
    assert_eq!(cap.counters.probe_failures.load(Ordering::Relaxed), 0);
}

/// After a reshard (a new bilog generation on Reef and later, a new bucket
/// instance on Pacific) the probes still find the bucket's index objects:
/// writes in quick rounds (within RGW's data-log window, so only the hot
/// set finds the later ones) arrive exactly once, and idle polls read no
/// bilog — an index object name the probe got wrong would be read on
/// every poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probes_follow_a_resharded_bucket() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let bucket = unique_bucket("zlprobereshard");
    s3.create_bucket(&bucket).await;
    s3.put(&bucket, "before", b"x").await;
    reshard(&bucket, 17).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let index = open(&dir);
    let cap = capture(&zone, index.clone(), &bucket_filter(&bucket))
        .with_probe(data_log_probe())
        .with_index_probe(index_probe());
    cap.poll_once().await.expect("first poll");
    let mut want = Vec::new();
    for round in 0..3 {
        for n in 0..6 {
            let key = format!("r{round}-{n}");
            s3.put(&bucket, &key, b"x").await;
            want.push(change(&bucket, &key, None, Op::Put));
        }
        poll_until(&cap, &index, want.clone()).await;
    }
    let before = cap.counters.bilog_shard_reads.load(Ordering::Relaxed);
    for _ in 0..3 {
        cap.poll_once().await.expect("idle poll");
    }
    assert_eq!(
        cap.counters.bilog_shard_reads.load(Ordering::Relaxed) - before,
        0,
        "Ceph {}: idle polls read the bilog of the resharded bucket",
        zone.release
    );
}
