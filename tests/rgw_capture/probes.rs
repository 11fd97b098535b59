//! The RADOS probes: a capture reads only what they report changed, and
//! the safety net catches a probe that watches the wrong objects.

use super::*;

/// A probe of the dev zone's bucket-index objects.
fn index_probe() -> Arc<BilogProbe> {
    let io = IoCtx::new(&dev_cluster(), "default.rgw.buckets.index", "").expect("index pool");
    Arc::new(BilogProbe::new(Arc::new(io)))
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
