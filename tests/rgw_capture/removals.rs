//! Removed buckets: one `bucket_removed` record, and a bucket made again
//! under the same name read from its start.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_bucket_is_recorded_once_and_its_successor_read_from_its_start() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let bucket = unique_bucket("zlremove");
    let filter = bucket_filter(&bucket);
    let (dir, index, cap) = started(&zone, &filter).await;
    s3.create_bucket(&bucket).await;
    s3.put(&bucket, "a", b"1").await;
    poll_until(&cap, &index, vec![change(&bucket, "a", None, Op::Put)]).await;
    // Changes zonelog has not read when the bucket goes: RGW removes the
    // bucket's index with it, so only the removal record can tell.
    s3.put(&bucket, "b", b"2").await;
    s3.delete(&bucket, "a").await;
    s3.delete(&bucket, "b").await;
    s3.delete_bucket(&bucket).await;
    let removed = change(&bucket, "", None, Op::BucketRemoved);
    let mut want = vec![change(&bucket, "a", None, Op::Put), removed.clone()];
    poll_until(&cap, &index, want.clone()).await;
    // The same name again: a new bucket, read from its log's start.
    s3.create_bucket(&bucket).await;
    s3.put(&bucket, "c", b"3").await;
    want.push(change(&bucket, "c", None, Op::Put));
    poll_until(&cap, &index, want.clone()).await;
    let entries = read_all(&index).await;
    assert!(
        entries
            .iter()
            .all(|e| matches!(e.record.source, Provenance::Rgw { .. })),
        "Ceph {}: nothing was listed",
        zone.release
    );
    let time_of = |key: &str, op: Op| {
        entries
            .iter()
            .find(|e| e.record.key == key && e.record.op == op)
            .map(|e| e.id)
            .expect("record")
    };
    assert!(
        time_of("a", Op::Put) < time_of("", Op::BucketRemoved)
            && time_of("", Op::BucketRemoved) < time_of("c", Op::Put),
        "Ceph {}: the removal is ordered between the old bucket's changes and the new one's",
        zone.release
    );
    // Removed again after everything in it was read.
    s3.delete(&bucket, "c").await;
    want.push(change(&bucket, "c", None, Op::Delete));
    poll_until(&cap, &index, want.clone()).await;
    s3.delete_bucket(&bucket).await;
    want.push(removed);
    poll_until(&cap, &index, want.clone()).await;
    drop(cap);
    drop(index);
    let index = open(&dir);
    let cap = capture(&zone, index.clone(), &filter);
    for _ in 0..3 {
        cap.poll_once().await.expect("poll after restart");
    }
    want.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    assert_eq!(
        changes(&index).await,
        want,
        "Ceph {}: a restart records no removal twice",
        zone.release
    );
}

/// A bucket made, written and removed while zonelog was down, then made
/// again under its name and written. The data log names both instances,
/// and which is drained first depends on the data-log shards they hash
/// to. Replayed in log order, as `zonelog backup` applies it, the log must
/// leave exactly what the new bucket holds: a removal ordered after the
/// new bucket's changes would empty it. (It is timed at the new bucket's
/// creation, which orders it before them however late it is found.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_removed_and_made_again_while_zonelog_was_down_ends_as_the_new_one() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let bucket = unique_bucket("zlremade");
    let filter = bucket_filter(&bucket);
    let (dir, index, cap) = started(&zone, &filter).await;
    drop(cap);
    drop(index);
    s3.create_bucket(&bucket).await;
    s3.put(&bucket, "old", b"1").await;
    s3.delete(&bucket, "old").await;
    s3.delete_bucket(&bucket).await;
    s3.create_bucket(&bucket).await;
    let new_keys: Vec<String> = (0..30).map(|n| format!("new-{n}")).collect();
    for key in &new_keys {
        s3.put(&bucket, key, b"n").await;
    }
    let index = open(&dir);
    let cap = capture(&zone, index.clone(), &filter);
    let mut keys: Vec<&str> = new_keys.iter().map(String::as_str).collect();
    // The removal record names no key.
    keys.push("");
    poll_until_keys(&zone, &cap, &index, &keys, "after a removal while down").await;
    for _ in 0..2 {
        cap.poll_once().await.expect("poll");
    }
    let replayed = |entries: Vec<zonelog::index::IndexedEntry>| {
        let mut held = std::collections::BTreeSet::new();
        for e in entries {
            match e.record.op {
                Op::Put | Op::Metadata => {
                    held.insert(e.record.key);
                }
                Op::BucketRemoved => held.clear(),
                _ => {
                    held.remove(&e.record.key);
                }
            }
        }
        held
    };
    let entries = read_all(&index).await;
    assert_eq!(
        replayed(entries.clone()),
        new_keys.iter().cloned().collect(),
        "Ceph {}: replayed in order, the log leaves the new bucket's objects: {:?}",
        zone.release,
        entries
            .iter()
            .map(|e| (e.record.key.as_str(), e.record.op))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.record.op == Op::BucketRemoved)
            .count(),
        1,
        "Ceph {}: one removal",
        zone.release
    );
    let settled = changes(&index).await;
    drop(cap);
    drop(index);
    let index = open(&dir);
    let cap = capture(&zone, index.clone(), &filter);
    for _ in 0..3 {
        cap.poll_once().await.expect("poll after restart");
    }
    assert_eq!(
        changes(&index).await,
        settled,
        "Ceph {}: a restart adds nothing",
        zone.release
    );
}
