//! Bucket-index log trims: zonelog's own (`trim_source`), someone else's
//! past our position, and numbering skips that are no trim.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trim_source_trims_the_bilog_up_to_the_committed_position() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.write().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let bucket = unique_bucket("zltrim");
    let filter = bucket_filter(&bucket);
    let dir = tempfile::tempdir().expect("temp dir");
    let index = open(&dir);
    let cap = RgwCapture::new(
        RgwAdmin::new(zone.admin_client()),
        index.clone(),
        Filter::new(&filter),
        RgwSourceConfig {
            trim_source: true,
            trim_interval: Duration::from_millis(1),
            ..source_config(&zone)
        },
    );
    cap.poll_once().await.expect("first poll");
    s3.create_bucket(&bucket).await;
    let mut want = Vec::new();
    for n in 0..3 {
        s3.put(&bucket, &format!("t{n}"), b"x").await;
        want.push(change(&bucket, &format!("t{n}"), None, Op::Put));
    }
    poll_until(&cap, &index, want.clone()).await;
    // Everything captured is gone from RGW's bucket-index logs.
    let admin = RgwAdmin::new(zone.admin_client());
    let instance = admin.bucket_instance(&bucket).await.expect("bucket info");
    let shards: Vec<Option<u32>> = if instance.num_shards == 0 {
        vec![None]
    } else {
        (0..instance.num_shards).map(Some).collect()
    };
    let mut left = 0;
    for shard in shards {
        left += admin
            .bilog_list(
                &BucketShard::first(&bucket, &instance.instance_id, shard),
                None,
            )
            .await
            .expect("bilog")
            .entries
            .len();
    }
    assert_eq!(left, 0, "bilog entries left after trim_source");
    // zonelog's own data-log trims are told from someone else's: once the
    // data-log window (30 s) has passed, new entries follow the trimmed
    // positions, and reading them catches up on nothing. (Other shards may
    // be caught up on: a first start after an earlier test's trim cannot
    // tell, and RGW renews other buckets' entries meanwhile.)
    cap.counters
        .caught_up_shards
        .lock()
        .expect("counters")
        .clear();
    tokio::time::sleep(Duration::from_secs(31)).await;
    for n in 0..3 {
        s3.put(&bucket, &format!("t{n}"), b"y").await;
        want.push(change(&bucket, &format!("t{n}"), None, Op::Put));
    }
    poll_until(&cap, &index, want).await;
    let datalog_shards = admin.datalog_shard_count().await.expect("shards");
    let ours: std::collections::BTreeSet<u32> = (0..instance.num_shards.max(1))
        .map(|s| zonelog::capture::rgw::datalog_shard_of(&bucket, Some(s), datalog_shards))
        .collect();
    let caught_up = cap
        .counters
        .caught_up_shards
        .lock()
        .expect("counters")
        .clone();
    assert!(
        caught_up.is_disjoint(&ours),
        "Ceph {}: reads after zonelog's own trims caught up on {caught_up:?} (the bucket's: {ours:?})",
        zone.release
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bilog_trimmed_past_our_position_resyncs_the_bucket_by_listing() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let bucket = unique_bucket("zlgap");
    let filter = bucket_filter(&bucket);
    let (_dir, index, cap) = started(&zone, &filter).await;
    s3.create_bucket(&bucket).await;
    s3.put(&bucket, "k", b"1").await;
    poll_until(&cap, &index, vec![change(&bucket, "k", None, Op::Put)]).await;
    // Two more changes that someone else trims from RGW's log before we
    // read them, then one more after the trim.
    s3.put(&bucket, "k", b"22").await;
    s3.put(&bucket, "k", b"333").await;
    trim_whole_bilog(&RgwAdmin::new(zone.admin_client()), &bucket).await;
    s3.put(&bucket, "k", b"4444").await;
    poll_until(
        &cap,
        &index,
        vec![
            change(&bucket, "k", None, Op::Put),
            change(&bucket, "k", None, Op::Put),
            change(&bucket, "k", None, Op::Put),
        ],
    )
    .await;
    let listed = read_all(&index)
        .await
        .into_iter()
        .filter(|e| matches!(e.record.source, Provenance::Listing { .. }))
        .count();
    assert_eq!(listed, 1, "the bucket's current state came from a listing");
    assert_eq!(
        cap.counters
            .resyncs
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// Reef and later number index operations they never log (a multipart
/// upload's meta entry, a pending or cancelled operation), so a bucket
/// shard's log can skip numbers with nothing trimmed. Polling after every
/// operation puts each skip at the start of a listing page, where an
/// earlier capture took it for a trim and listed the whole bucket again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbering_skips_are_not_trims_one_record_per_change() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let bucket = unique_bucket("zlskip");
    let filter = bucket_filter(&bucket);
    let (_dir, index, cap) = started(&zone, &filter).await;
    s3.create_bucket(&bucket).await;
    let mut want = Vec::new();
    for n in 0..12 {
        let multi = format!("multi-{n}");
        s3.multipart(&bucket, &multi, 2).await;
        want.push(change(&bucket, &multi, None, Op::Put));
        cap.poll_once().await.expect("poll");
        for key in [format!("small-{n}"), multi] {
            s3.put(&bucket, &key, b"s").await;
            want.push(change(&bucket, &key, None, Op::Put));
            cap.poll_once().await.expect("poll");
        }
    }
    poll_until(&cap, &index, want).await;
    let counters = &cap.counters;
    let skips = counters
        .numbering_skips
        .load(std::sync::atomic::Ordering::Relaxed);
    if zone.newer_than_pacific() {
        assert!(
            skips > 0,
            "Ceph {}: the workload made no numbering skip, so it proves nothing",
            zone.release
        );
    }
    assert_eq!(
        counters.resyncs.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "Ceph {}: {skips} numbering skips were taken for trims",
        zone.release
    );
}
