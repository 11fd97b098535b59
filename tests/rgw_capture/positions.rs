//! Positions: where a first start puts them, and how a poll moves them.

use super::*;

/// `scripts/ceph-dev up` wrote 40 objects to `zonelog-before-logs` while
/// the zone's logs were off, then turned them on: the bucket's log starts
/// past numbers it never held (Reef and later number unlogged index
/// operations too). A capture started then lists nothing and gives one
/// record per change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_turned_on_after_a_bucket_was_written_list_nothing() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let bucket = "zonelog-before-logs";
    let (_dir, index, cap) = started(&zone, &bucket_filter(bucket)).await;
    let key = unique_bucket("after-logs");
    s3.put(bucket, &key, b"1").await;
    s3.put(bucket, "old-3", b"overwritten").await;
    s3.delete(bucket, &key).await;
    poll_until(
        &cap,
        &index,
        vec![
            change(bucket, &key, None, Op::Put),
            change(bucket, "old-3", None, Op::Put),
            change(bucket, &key, None, Op::Delete),
        ],
    )
    .await;
    assert_eq!(
        cap.counters
            .resyncs
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "Ceph {}: nothing listed",
        zone.release
    );
}

/// A first start positions each bucket from the bucket-index log info of
/// the whole bucket, one request: RGW's joined markers name the same
/// position for each shard as asking that shard, in a sharded bucket, in
/// the new generation of a resharded one (Reef and later) and in an
/// unsharded one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_bucket_info_names_each_shards_position() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let admin = RgwAdmin::new(zone.admin_client());
    let bucket = unique_bucket("zlwholeinfo");
    s3.create_bucket(&bucket).await;
    positions_agree(&zone, &admin, &bucket).await;
    for n in 0..30 {
        s3.put(&bucket, &format!("k{n}"), b"1").await;
    }
    positions_agree(&zone, &admin, &bucket).await;
    reshard(&bucket, 5).await;
    for n in 0..10 {
        s3.put(&bucket, &format!("r{n}"), b"2").await;
    }
    positions_agree(&zone, &admin, &bucket).await;
    // Shared with tests that write to it: compared while it stands still.
    positions_agree(&zone, &admin, "zonelog-unsharded-a").await;
}

async fn positions_agree(zone: &DevZone, admin: &RgwAdmin, bucket: &str) {
    for _ in 0..20 {
        let instance = admin.bucket_instance(bucket).await.expect("bucket info");
        let whole = admin
            .bilog_info_of_bucket(bucket, &instance.instance_id)
            .await
            .expect("whole-bucket info");
        let positions = whole
            .shard_positions(instance.num_shards)
            .unwrap_or_else(|| {
                panic!(
                    "Ceph {}: {bucket} ({} shards): max_marker {:?} names each shard once",
                    zone.release, instance.num_shards, whole.max_marker
                )
            });
        let mut asked = Vec::new();
        for (shard, _) in &positions {
            let bs = BucketShard {
                gen: whole.latest_gen,
                ..BucketShard::first(bucket, &instance.instance_id, *shard)
            };
            let info = admin.bilog_info(&bs).await.expect("shard info");
            asked.push((*shard, info.position().to_string()));
        }
        let again = admin
            .bilog_info_of_bucket(bucket, &instance.instance_id)
            .await
            .expect("whole-bucket info");
        if again.max_marker != whole.max_marker {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        assert_eq!(
            positions, asked,
            "Ceph {}: {bucket}: positions from the whole bucket and shard by shard",
            zone.release
        );
        return;
    }
    panic!("Ceph {}: {bucket} never stood still", zone.release);
}

/// A poll moves every data-log position past what it read, so the next
/// poll does not read (and drain for) the same entries again. Tentacle's
/// FIFO data log names no marker on a shard's last page: taken at its
/// word, no position ever moved, and every poll re-read the whole data log
/// since the first start, growing until a poll took seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_moves_the_data_log_positions_past_what_it_read() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let bucket = unique_bucket("zlpos");
    let dir = tempfile::tempdir().expect("temp dir");
    let index = open(&dir);
    let cap = capture(&zone, index.clone(), &bucket_filter(&bucket));
    cap.poll_once().await.expect("first poll");
    s3.create_bucket(&bucket).await;
    let mut want = Vec::new();
    for n in 0..12 {
        s3.put(&bucket, &format!("p{n}"), b"x").await;
        want.push(change(&bucket, &format!("p{n}"), None, Op::Put));
    }
    poll_until(&cap, &index, want).await;
    let before_last_poll = chrono::Utc::now() - chrono::Duration::seconds(1);
    cap.poll_once().await.expect("poll");
    // From the stored positions on, the data log names none of the
    // bucket's shards again (but for RGW's renewals written since).
    let admin = RgwAdmin::new(zone.admin_client());
    let mut named_again = Vec::new();
    for shard in 0..admin.datalog_shard_count().await.expect("shards") {
        let name = format!("rgw/datalog/{shard:03}");
        let position = index
            .marker(&name)
            .await
            .expect("marker")
            .map(|m| String::from_utf8(m).expect("utf-8"));
        let mut marker = position.clone();
        loop {
            let page = admin
                .datalog_list(shard, marker.as_deref())
                .await
                .expect("data log");
            for e in &page.entries {
                let written = chrono::DateTime::parse_from_rfc3339(&e.timestamp)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .unwrap_or(before_last_poll);
                if e.key.starts_with(&format!("{bucket}:")) && written < before_last_poll {
                    named_again.push(format!("shard {shard} at {position:?}: {}", e.key));
                }
            }
            if !page.truncated {
                break;
            }
            marker = Some(page.marker);
        }
    }
    assert!(
        named_again.is_empty(),
        "{} entries read again after the position: {named_again:#?}",
        named_again.len()
    );
}
