//! Full syncs: `initial = "full"`, a listing RGW refuses, and the listing
//! after `bucket sync disable` and `enable`.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_full_lists_every_version_first_then_follows_the_logs() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let prefix = unique_bucket("zlfull");
    let (plain, versioned) = (format!("{prefix}-a"), format!("{prefix}-v"));
    s3.create_bucket(&plain).await;
    for n in 0..3 {
        s3.put(&plain, &format!("old-{n}"), b"x").await;
    }
    s3.create_bucket(&versioned).await;
    s3.enable_versioning(&versioned).await;
    let v1 = s3.put(&versioned, "obj", b"1").await.expect("v1");
    let v2 = s3.put(&versioned, "obj", b"2").await.expect("v2");
    let dm = s3.delete(&versioned, "obj").await.expect("delete marker");
    let filter = prefix_filter(&prefix);
    let dir = tempfile::tempdir().expect("temp dir");
    let index = open(&dir);
    let config = RgwSourceConfig {
        initial: InitialSync::Full,
        ..source_config(&zone)
    };
    let cap = RgwCapture::new(
        RgwAdmin::new(zone.admin_client()),
        index.clone(),
        Filter::new(&filter),
        config.clone(),
    );
    let mut want = vec![
        change(&plain, "old-0", None, Op::Put),
        change(&plain, "old-1", None, Op::Put),
        change(&plain, "old-2", None, Op::Put),
        change(&versioned, "obj", Some(&v1), Op::Put),
        change(&versioned, "obj", Some(&v2), Op::Put),
        change(&versioned, "obj", Some(&dm), Op::DeleteMarker),
    ];
    poll_until(&cap, &index, want.clone()).await;
    for e in read_all(&index).await {
        assert!(
            matches!(e.record.source, Provenance::Listing { .. }),
            "{:?}",
            e.record.source
        );
        if e.record.op == Op::Put {
            assert!(
                e.record.size.is_some() && e.record.etag.is_some(),
                "listing gives size and etag"
            );
        }
    }
    // Then the logs: a new change arrives once, also across a restart.
    s3.put(&plain, "new", b"y").await;
    want.push(change(&plain, "new", None, Op::Put));
    poll_until(&cap, &index, want.clone()).await;
    drop(cap);
    drop(index);
    let index = open(&dir);
    let cap = RgwCapture::new(
        RgwAdmin::new(zone.admin_client()),
        index.clone(),
        Filter::new(&filter),
        config,
    );
    poll_until(&cap, &index, want).await;
}

/// A bucket of another user: zonelog's admin keys read its bilog but RGW
/// refuses to list it (403). Its full sync is retried and reported while
/// every other bucket is captured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_whose_listing_is_refused_does_not_stop_the_others() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let admin_client = zone.admin_client();
    let user_client = zone.user_client();
    let prefix = unique_bucket("zl403");
    let (theirs, ours) = (format!("{prefix}-theirs"), format!("{prefix}-ours"));
    S3(&user_client).create_bucket(&theirs).await;
    S3(&user_client).put(&theirs, "before", b"x").await;
    S3(&admin_client).create_bucket(&ours).await;
    let filter = prefix_filter(&prefix);
    let dir = tempfile::tempdir().expect("temp dir");
    let index = open(&dir);
    let cap = RgwCapture::new(
        RgwAdmin::new(zone.admin_client()),
        index.clone(),
        Filter::new(&filter),
        RgwSourceConfig {
            initial: InitialSync::Full,
            ..source_config(&zone)
        },
    );
    cap.poll_once()
        .await
        .expect("a refused listing does not fail the poll");
    let mut want = Vec::new();
    for n in 0..5 {
        let key = format!("k{n}");
        S3(&admin_client).put(&ours, &key, b"o").await;
        want.push(change(&ours, &key, None, Op::Put));
    }
    S3(&user_client).put(&theirs, "after", b"y").await;
    want.push(change(&theirs, "after", None, Op::Put));
    poll_until(&cap, &index, want).await;
    let failing = cap.counters.failing();
    assert!(
        failing.get(&theirs).is_some_and(|e| e.contains("403")),
        "Ceph {}: the refused bucket is reported: {failing:?}",
        zone.release
    );
    assert!(!failing.contains_key(&ours), "{failing:?}");
}

/// `bucket sync disable` stops RGW logging the bucket's changes (a
/// `syncstop` entry, then nothing); `sync enable` logs `resync`. What
/// changed in between is found by listing the bucket, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_while_bucket_sync_was_disabled_are_found_by_a_listing() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let bucket = unique_bucket("zlsyncoff");
    let filter = bucket_filter(&bucket);
    let (_dir, index, cap) = started(&zone, &filter).await;
    s3.create_bucket(&bucket).await;
    s3.put(&bucket, "before", b"1").await;
    poll_until(&cap, &index, vec![change(&bucket, "before", None, Op::Put)]).await;
    radosgw_admin(&["bucket", "sync", "disable", "--bucket", &bucket]);
    s3.put(&bucket, "while-disabled", b"2").await;
    radosgw_admin(&["bucket", "sync", "enable", "--bucket", &bucket]);
    s3.put(&bucket, "after", b"3").await;
    poll_until_keys(
        &zone,
        &cap,
        &index,
        &["before", "while-disabled", "after"],
        "after sync disable/enable",
    )
    .await;
    // Every shard logs its own `resync`: still one listing, so the change
    // made while sync was disabled is listed exactly once, also after more
    // polls have drained every shard.
    for _ in 0..3 {
        cap.poll_once().await.expect("poll");
    }
    let listed: Vec<String> = read_all(&index)
        .await
        .into_iter()
        .filter(|e| matches!(e.record.source, Provenance::Listing { .. }))
        .map(|e| e.record.key)
        .collect();
    assert_eq!(
        listed.iter().filter(|k| *k == "while-disabled").count(),
        1,
        "Ceph {}: one listing for all the bucket's shards: {listed:?}",
        zone.release
    );
}
