//! Unsharded buckets (one index object), captured and resharded like
//! sharded ones.

use super::*;

/// The instance id of one of the unsharded buckets `scripts/ceph-dev up`
/// makes (a bucket index of one RADOS object, as every bucket had before
/// Ceph 16 made 11 shards the default; Reef and later refuse to reshard to
/// 0, so the dev zone creates them while its default is 0 shards), checked
/// to have no shards both through the admin API and RGW's own metadata.
async fn unsharded_instance(admin: &RgwAdmin, bucket: &str) -> String {
    let info = admin.bucket_instance(bucket).await.expect("bucket info");
    assert_eq!(info.num_shards, 0, "the admin API says unsharded: {info:?}");
    let meta: serde_json::Value = serde_json::from_str(&radosgw_admin(&[
        "metadata",
        "get",
        &format!("bucket.instance:{bucket}:{}", info.instance_id),
    ]))
    .expect("bucket instance metadata is JSON");
    assert_eq!(
        meta["data"]["bucket_info"]["num_shards"],
        serde_json::json!(0),
        "bucket.instance metadata of {bucket}: {meta}"
    );
    info.instance_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsharded_bucket_is_captured_like_a_sharded_one() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let admin = RgwAdmin::new(zone.admin_client());
    // Made by `scripts/ceph-dev up`; a later run on the same zone reuses
    // them, which changes nothing: capture starts after their history.
    let (plain, versioned) = (
        "zonelog-unsharded-a".to_string(),
        "zonelog-unsharded-v".to_string(),
    );
    let instances: BTreeMap<String, String> = [
        (plain.clone(), unsharded_instance(&admin, &plain).await),
        (
            versioned.clone(),
            unsharded_instance(&admin, &versioned).await,
        ),
    ]
    .into();
    s3.enable_versioning(&versioned).await;
    let filter = FilterConfig {
        buckets: vec![plain.clone(), versioned.clone()],
        bucket_prefixes: vec![],
        key_prefixes: BTreeMap::new(),
    };
    // The buckets exist before the first start, so their starting positions
    // are taken from their unsharded logs too.
    let (dir, index, cap) = started(&zone, &filter).await;
    assert!(changes(&index).await.is_empty());

    // From here on changes reach the capture only through data-log entries,
    // which for these buckets name `bucket:instance` without a shard.
    s3.put(&plain, "obj", b"1").await;
    s3.put(&plain, "obj", b"22").await;
    // Stored in the index as `__leading`, not in a namespace.
    s3.put(&plain, "_leading", b"u").await;
    // Its parts and upload meta (`_multipart_…`) share the one log; only the
    // completed object is a change.
    s3.multipart(&plain, "multi", 2).await;
    s3.delete(&plain, "obj").await;
    let v1 = s3.put(&versioned, "obj", b"1").await.expect("version 1");
    let v2 = s3.put(&versioned, "obj", b"2").await.expect("version 2");
    let marker = s3.delete(&versioned, "obj").await.expect("delete marker");
    s3.delete_version(&versioned, "obj", Some(&v1)).await;

    let want = vec![
        change(&plain, "obj", None, Op::Put),
        change(&plain, "obj", None, Op::Put),
        change(&plain, "_leading", None, Op::Put),
        change(&plain, "multi", None, Op::Put),
        change(&plain, "obj", None, Op::Delete),
        change(&versioned, "obj", Some(&v1), Op::Put),
        change(&versioned, "obj", Some(&v2), Op::Put),
        change(&versioned, "obj", Some(&marker), Op::DeleteMarker),
        change(&versioned, "obj", Some(&v1), Op::Delete),
    ];
    poll_until(&cap, &index, want.clone()).await;

    // Every record came from the bucket's one log, named without a shard.
    for e in read_all(&index).await {
        match &e.record.source {
            Provenance::Rgw {
                bucket_shard,
                marker,
            } => {
                let whole = format!("{}:{}", e.record.bucket, instances[&e.record.bucket]);
                assert_eq!(bucket_shard, &whole, "{:?}", e.record);
                assert!(!marker.is_empty() && !marker.contains('#'), "{marker}");
            }
            other => panic!("unexpected provenance {other:?}"),
        }
    }

    // Restart: the stored unsharded positions resume.
    drop(cap);
    drop(index);
    restart_resumes_exactly(&zone, &dir, &filter, &plain, want).await;
}

/// One of the unsharded buckets `scripts/ceph-dev up` keeps for a reshard,
/// not resharded yet by an earlier run on the same zone.
async fn spare_unsharded_bucket(admin: &RgwAdmin) -> String {
    for n in 1..=6 {
        let bucket = format!("zonelog-unsharded-reshard-{n}");
        if admin
            .bucket_instance(&bucket)
            .await
            .expect("bucket info")
            .num_shards
            == 0
        {
            return bucket;
        }
    }
    panic!(
        "every zonelog-unsharded-reshard-N bucket of this dev zone was resharded by an \
         earlier run: `scripts/ceph-dev down && scripts/ceph-dev up` makes them again"
    );
}

/// An unsharded bucket, as an upgraded zone holds, resharded while a writer
/// writes (as dynamic resharding does once it grows). On Reef and later the
/// log's generation 0 is that one unsharded log, which RGW's `bilog info`
/// reports as one shard: it is read to its end once, under the name the
/// data log gave it, and then the new generation's shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsharded_bucket_resharded_loses_and_doubles_nothing() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let admin = RgwAdmin::new(zone.admin_client());
    let bucket = spare_unsharded_bucket(&admin).await;
    let filter = bucket_filter(&bucket);
    let (dir, index, cap) = started(&zone, &filter).await;
    s3.put(&bucket, "a", b"1").await;
    poll_until(&cap, &index, vec![change(&bucket, "a", None, Op::Put)]).await;
    s3.put(&bucket, "b", b"2").await;
    let writer = {
        let (zone_client, bucket) = (zone.admin_client(), bucket.clone());
        tokio::spawn(async move {
            for n in 0..20 {
                S3(&zone_client)
                    .put(&bucket, &format!("during-{n}"), b"w")
                    .await;
            }
        })
    };
    reshard(&bucket, 5).await;
    writer.await.expect("writer");
    s3.put(&bucket, "c", b"3").await;
    let mut want: Vec<Change> = ["a", "b", "c"]
        .iter()
        .map(|k| change(&bucket, k, None, Op::Put))
        .collect();
    want.extend((0..20).map(|n| change(&bucket, &format!("during-{n}"), None, Op::Put)));
    want.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    let keys: Vec<&str> = want.iter().map(|c| c.1.as_str()).collect();
    poll_until_keys(
        &zone,
        &cap,
        &index,
        &keys,
        "after an unsharded bucket's reshard",
    )
    .await;
    for _ in 0..2 {
        cap.poll_once().await.expect("poll");
    }
    let got = changes(&index).await;
    if zone.newer_than_pacific() {
        assert_eq!(
            got, want,
            "Ceph {}: one record per change across the reshard of an unsharded bucket",
            zone.release
        );
    } else {
        // Pacific: a new instance, listed once; never a removal.
        assert!(
            !got.iter().any(|c| c.3 == Op::BucketRemoved),
            "Ceph {}: {got:?}",
            zone.release
        );
    }
    drop(cap);
    drop(index);
    for _ in 0..2 {
        let index = open(&dir);
        let cap = capture(&zone, index.clone(), &filter);
        for _ in 0..3 {
            cap.poll_once().await.expect("poll after restart");
        }
        assert_eq!(
            changes(&index).await,
            got,
            "Ceph {}: a restart after the reshard adds nothing",
            zone.release
        );
    }
}
