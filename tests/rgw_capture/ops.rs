//! Each op type, bursts, null versions and suspended versioning, and the
//! time a change is given: the records a scripted workload leaves.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_op_type_becomes_the_expected_record() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let prefix = unique_bucket("zlcap");
    let (plain, versioned, keyed, pre) = (
        format!("{prefix}-a"),
        format!("{prefix}-v"),
        format!("{prefix}-k"),
        format!("{prefix}-pre"),
    );
    let outside = format!("other-{prefix}");
    let filter = FilterConfig {
        buckets: vec![],
        bucket_prefixes: vec![prefix.clone()],
        key_prefixes: [(keyed.clone(), vec!["keep/".to_string()])].into(),
    };
    // A bucket with history before the first start: only later changes count.
    s3.create_bucket(&pre).await;
    s3.put(&pre, "before", b"old").await;

    let dir = tempfile::tempdir().expect("temp dir");
    let index = open(&dir);
    let cap = capture(&zone, index.clone(), &filter);
    cap.poll_once()
        .await
        .expect("first poll records the starting positions");
    assert!(changes(&index).await.is_empty());

    s3.put(&pre, "after", b"new").await;
    s3.create_bucket(&plain).await;
    s3.put(&plain, "plain", b"1").await;
    s3.put(&plain, "plain", b"22").await;
    s3.copy(&plain, "plain", "copied").await;
    s3.multipart(&plain, "multi", 2).await;
    s3.tag(&plain, "plain").await;
    let before_delete = chrono::Utc::now();
    s3.delete(&plain, "plain").await;
    let odd_keys = common::ODD_KEYS;
    for key in odd_keys {
        s3.put(&plain, key, b"odd").await;
    }
    s3.create_bucket(&versioned).await;
    s3.enable_versioning(&versioned).await;
    let v1 = s3.put(&versioned, "obj", b"1").await.expect("version 1");
    let v2 = s3.put(&versioned, "obj", b"2").await.expect("version 2");
    let marker = s3.delete(&versioned, "obj").await.expect("delete marker");
    s3.delete_version(&versioned, "obj", Some(&v1)).await;
    s3.create_bucket(&keyed).await;
    s3.put(&keyed, "keep/x", b"k").await;
    s3.put(&keyed, "drop/y", b"d").await;
    s3.create_bucket(&outside).await;
    s3.put(&outside, "x", b"o").await;

    let mut want = vec![
        change(&pre, "after", None, Op::Put),
        change(&plain, "plain", None, Op::Put),
        change(&plain, "plain", None, Op::Put),
        change(&plain, "copied", None, Op::Put),
        change(&plain, "multi", None, Op::Put),
        // Tagging rewrites the index entry like a put; RGW's bilog does not
        // tell the two apart.
        change(&plain, "plain", None, Op::Put),
        change(&plain, "plain", None, Op::Delete),
        change(&versioned, "obj", Some(&v1), Op::Put),
        change(&versioned, "obj", Some(&v2), Op::Put),
        change(&versioned, "obj", Some(&marker), Op::DeleteMarker),
        change(&versioned, "obj", Some(&v1), Op::Delete),
        change(&keyed, "keep/x", None, Op::Put),
    ];
    for key in odd_keys {
        want.push(change(&plain, key, None, Op::Put));
    }
    poll_until(&cap, &index, want.clone()).await;

    // A delete's time is the delete's, not the removed object's mtime that
    // RGW puts in the bilog entry.
    let deleted = read_all(&index)
        .await
        .into_iter()
        .find(|e| e.record.key == "plain" && e.record.op == Op::Delete)
        .expect("the delete");
    assert!(
        deleted.record.time >= before_delete,
        "Ceph {}: delete at {} before it was asked for at {before_delete}",
        zone.release,
        deleted.record.time
    );

    // Every record says where in which bilog it came from.
    for e in read_all(&index).await {
        match &e.record.source {
            Provenance::Rgw {
                bucket_shard,
                marker,
            } => {
                assert!(bucket_shard.starts_with(&e.record.bucket), "{bucket_shard}");
                assert!(!marker.is_empty());
            }
            other => panic!("unexpected provenance {other:?}"),
        }
    }

    // Restart: resume from the committed markers.
    drop(cap);
    drop(index);
    restart_resumes_exactly(&zone, &dir, &filter, &plain, want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_1000_objects_over_50_buckets_arrives_exactly_once() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let prefix = unique_bucket("zlburst");
    let filter = prefix_filter(&prefix);
    let (_dir, index, cap) = started(&zone, &filter).await;
    let buckets: Vec<String> = (0..50).map(|b| format!("{prefix}-{b:02}")).collect();
    stream::iter(&buckets)
        .for_each_concurrent(8, |b| {
            let client = client.clone();
            async move { S3(&client).create_bucket(b).await }
        })
        .await;
    let mut want = Vec::new();
    let mut puts = Vec::new();
    for n in 0..1000 {
        let bucket = buckets[n % 50].clone();
        let key = format!("burst/{n:04}");
        want.push(change(&bucket, &key, None, Op::Put));
        puts.push((bucket, key));
    }
    stream::iter(puts)
        .for_each_concurrent(16, |(bucket, key)| {
            let client = client.clone();
            async move {
                S3(&client).put(&bucket, &key, b"burst").await;
            }
        })
        .await;
    poll_until(&cap, &index, want).await;
}

/// RGW logs a null version's removal and a delete in a suspended bucket
/// as two entries each; each is one change, one record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_versions_and_suspended_versioning_give_one_record_per_change() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let bucket = unique_bucket("zlnull");
    let filter = bucket_filter(&bucket);
    let (_dir, index, cap) = started(&zone, &filter).await;
    s3.create_bucket(&bucket).await;
    s3.put(&bucket, "n", b"1").await;
    s3.enable_versioning(&bucket).await;
    s3.delete_version(&bucket, "n", Some("null")).await;
    s3.suspend_versioning(&bucket).await;
    s3.put(&bucket, "s", b"1").await;
    s3.put(&bucket, "s", b"2").await;
    s3.delete(&bucket, "s").await;
    poll_until(
        &cap,
        &index,
        vec![
            change(&bucket, "n", None, Op::Put),
            change(&bucket, "n", None, Op::Delete),
            change(&bucket, "s", None, Op::Put),
            change(&bucket, "s", None, Op::Put),
            change(&bucket, "s", None, Op::DeleteMarker),
        ],
    )
    .await;
}

/// A tag change logs a `write` stamped with the object's old mtime (Reef,
/// or the old mtime + 1 ns on Squid and Tentacle): the changes logged
/// before it in the page must keep their own times, not be pulled back to
/// that old one (Pacific stamps the tag write "now").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_change_stamped_with_an_old_mtime_does_not_pull_earlier_times_back() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    // One bilog shard, so the put and the tag change share a page (a
    // bucket of its own: other tests assert on the dev zone's unsharded
    // buckets while this one runs).
    let tag = unique_bucket("zltag");
    let bucket = tag.as_str();
    s3.create_bucket(bucket).await;
    reshard(bucket, 1).await;
    let (old, new) = (format!("{tag}-old"), format!("{tag}-new"));
    let dir = tempfile::tempdir().expect("temp dir");
    let index = open(&dir);
    let cap = capture(&zone, index.clone(), &bucket_filter(bucket));
    cap.poll_once().await.expect("first poll");
    s3.put(bucket, &old, b"o").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before_new = chrono::Utc::now();
    s3.put(bucket, &new, b"n").await;
    s3.tag(bucket, &old).await;
    // Three records: both puts and the tag change (a `put` until issue 19).
    let deadline = Instant::now() + Duration::from_secs(60);
    let records = loop {
        cap.poll_once().await.expect("poll");
        let records: Vec<_> = read_all(&index)
            .await
            .into_iter()
            .map(|e| e.record)
            .filter(|r| r.key.starts_with(&tag))
            .collect();
        if records.len() >= 3 {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "Ceph {}: {records:?}",
            zone.release
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let new_time = records
        .iter()
        .find(|r| r.key == new)
        .unwrap_or_else(|| panic!("no record of {new}: {records:?}"))
        .time;
    // 50 ms for the clocks of this process and radosgw (same machine).
    assert!(
        new_time >= before_new - chrono::Duration::milliseconds(50),
        "Ceph {}: the put of {new} made at or after {before_new} was given {new_time}",
        zone.release
    );
    let times: Vec<_> = records.iter().map(|r| r.time).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "Ceph {}: times out of log order: {records:?}",
        zone.release
    );
}
