//! Reshards: a new log generation (Reef and later) or a new instance
//! (Pacific), seen or not, loses no change and is no removal.

use super::*;

/// A reshard while a writer keeps writing. Reef and later keep the bucket
/// instance and start a new bilog generation, read after the old one is
/// read to its end: exactly one record per change. Pacific moves the bucket
/// to a new instance whose old log is unreachable, so the bucket is listed
/// again once (listing records on top). Either way nothing is missing, and
/// two restarts afterwards list nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resharded_bucket_loses_no_change() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let bucket = unique_bucket("zlreshard");
    let filter = bucket_filter(&bucket);
    let (dir, index, cap) = started(&zone, &filter).await;
    s3.create_bucket(&bucket).await;
    s3.put(&bucket, "a", b"1").await;
    poll_until(&cap, &index, vec![change(&bucket, "a", None, Op::Put)]).await;
    // Changes zonelog has not read yet, then a reshard while a writer
    // goes on writing, then changes after it.
    s3.put(&bucket, "b", b"2").await;
    s3.put(&bucket, "c", b"3").await;
    let writer = {
        let (zone_client, bucket) = (zone.admin_client(), bucket.clone());
        tokio::spawn(async move {
            for n in 0..40 {
                S3(&zone_client)
                    .put(&bucket, &format!("during-{n}"), b"w")
                    .await;
            }
        })
    };
    reshard(&bucket, 13).await;
    writer.await.expect("writer");
    s3.put(&bucket, "d", b"4").await;
    let mut want: Vec<Change> = ["a", "b", "c", "d"]
        .iter()
        .map(|k| change(&bucket, k, None, Op::Put))
        .collect();
    want.extend((0..40).map(|n| change(&bucket, &format!("during-{n}"), None, Op::Put)));
    want.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    let from_logs = |entries: Vec<zonelog::index::IndexedEntry>| -> Vec<Change> {
        let mut out: Vec<Change> = entries
            .into_iter()
            .filter(|e| matches!(e.record.source, Provenance::Rgw { .. }))
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
    };
    let keys: Vec<&str> = want.iter().map(|c| c.1.as_str()).collect();
    poll_until_keys(&zone, &cap, &index, &keys, "after a reshard").await;
    for _ in 0..2 {
        cap.poll_once().await.expect("poll");
    }
    if zone.newer_than_pacific() {
        assert_eq!(
            changes(&index).await,
            want,
            "Ceph {}: one record per change across the reshard",
            zone.release
        );
    } else {
        // Pacific: what the logs gave is a subset of the changes, once each.
        assert!(
            !changes(&index)
                .await
                .iter()
                .any(|c| c.3 == Op::BucketRemoved),
            "Ceph {}: a reshard into a new instance is no removal",
            zone.release
        );
        let logged = from_logs(read_all(&index).await);
        assert!(
            logged.iter().all(|c| want.contains(c)),
            "Ceph {}: {logged:?}",
            zone.release
        );
    }
    // Two restarts: nothing is listed or read again.
    let settled = changes(&index).await;
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
            settled,
            "Ceph {}: a restart after a reshard adds nothing",
            zone.release
        );
    }
}

/// A bucket made, written and resharded while zonelog did not read it:
/// on Pacific the instance zonelog first hears of is already gone, and
/// only the bucket's marker (kept through a reshard) says it was no
/// removal. Nothing is missing and no `bucket_removed` is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reshard_zonelog_never_saw_is_no_removal() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let bucket = unique_bucket("zlunseen");
    let filter = bucket_filter(&bucket);
    let (_dir, index, cap) = started(&zone, &filter).await;
    s3.create_bucket(&bucket).await;
    s3.put(&bucket, "a", b"1").await;
    s3.put(&bucket, "b", b"2").await;
    reshard(&bucket, 13).await;
    s3.put(&bucket, "c", b"3").await;
    poll_until_keys(
        &zone,
        &cap,
        &index,
        &["a", "b", "c"],
        "after an unseen reshard",
    )
    .await;
    cap.poll_once().await.expect("poll");
    let got = changes(&index).await;
    assert!(
        !got.iter().any(|c| c.3 == Op::BucketRemoved),
        "Ceph {}: a reshard is no removal: {got:?}",
        zone.release
    );
    if zone.newer_than_pacific() {
        let want: Vec<Change> = ["a", "b", "c"]
            .iter()
            .map(|k| change(&bucket, k, None, Op::Put))
            .collect();
        assert_eq!(got, want, "Ceph {}: one record per change", zone.release);
    }
}
