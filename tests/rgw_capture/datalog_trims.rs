//! Data-log trims by someone else (RGW's autotrim in a realm): found and
//! caught up on, whenever they happen, and RGW's hash of bucket shards to
//! data-log shards that the catch-up relies on.

use super::*;

/// RGW in a realm trims its data log to its peers' lowest position, all of
/// it when there is no peer, and zonelog is no peer: the entries naming an
/// idle bucket's change and a new bucket are trimmed before zonelog reads
/// them. The trim is found and both changes arrive, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_log_trimmed_past_our_position_is_caught_up() {
    let Some(zone) = dev_zone() else { return };
    // Trims the data log every other capture of this file reads.
    let _data_log = DATA_LOG.write().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let prefix = unique_bucket("zldltrim");
    let (idle, new) = (format!("{prefix}-idle"), format!("{prefix}-new"));
    let grown = format!("{prefix}-grown");
    // RGW reports its one log as one shard, and answers for it as shard 0
    // too: the catch-up must not read it again under that name.
    let unsharded = "zonelog-unsharded-a";
    s3.create_bucket(&idle).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let index = open(&dir);
    let cap = RgwCapture::new(
        RgwAdmin::new(zone.admin_client()),
        index.clone(),
        Filter::new(&FilterConfig {
            buckets: vec![unsharded.to_string()],
            ..prefix_filter(&prefix)
        }),
        RgwSourceConfig {
            check_interval: Duration::from_millis(1),
            ..source_config(&zone)
        },
    );
    cap.poll_once().await.expect("first poll");
    // A bucket zonelog has read one shard of, then changes on its other
    // shards and (Reef and later) in a new log generation, all named only
    // by data-log entries that the trim below removes.
    s3.create_bucket(&grown).await;
    s3.put(&grown, "first", b"0").await;
    poll_until(&cap, &index, vec![change(&grown, "first", None, Op::Put)]).await;
    let mut want = vec![change(&grown, "first", None, Op::Put)];
    for n in 0..20 {
        let key = format!("k{n}");
        s3.put(&grown, &key, b"g").await;
        want.push(change(&grown, &key, None, Op::Put));
    }
    if zone.newer_than_pacific() {
        reshard(&grown, 13).await;
        s3.put(&grown, "after-reshard", b"r").await;
        want.push(change(&grown, "after-reshard", None, Op::Put));
    }
    s3.put(&idle, "x", b"1").await;
    s3.put(unsharded, &prefix, b"u").await;
    s3.create_bucket(&new).await;
    s3.put(&new, "y", b"2").await;
    let admin = RgwAdmin::new(zone.admin_client());
    for shard in 0..admin.datalog_shard_count().await.expect("shards") {
        let last = admin.datalog_info(shard).await.expect("info").marker;
        if !last.is_empty() {
            admin
                .datalog_trim(shard, &last)
                .await
                .expect("datalog trim");
        }
    }
    want.push(change(&idle, "x", None, Op::Put));
    want.push(change(unsharded, &prefix, None, Op::Put));
    want.push(change(&new, "y", None, Op::Put));
    want.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    poll_until(&cap, &index, want).await;
    assert!(
        cap.counters
            .datalog_trims
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0,
        "Ceph {}: the trim was seen",
        zone.release
    );
}

/// A data-log shard that held nothing when zonelog first started (its
/// position is empty), then named a new bucket, and was trimmed whole
/// before zonelog read it (RGW's autotrim, every 20 min, while zonelog
/// was down): that a shard wrote something and holds nothing now is a
/// trim past us, and the new bucket is read from its start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_log_shard_empty_at_the_start_then_trimmed_whole_is_caught_up() {
    let Some(zone) = dev_zone() else { return };
    // Trims data-log shards every other capture of this file reads.
    let _data_log = DATA_LOG.write().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let admin = RgwAdmin::new(zone.admin_client());
    let bucket = unique_bucket("zlemptytrim");
    let filter = bucket_filter(&bucket);
    let config = RgwSourceConfig {
        check_interval: Duration::from_millis(1),
        ..source_config(&zone)
    };
    let (dir, index, cap) = started(&zone, &filter).await;
    drop(cap);
    s3.create_bucket(&bucket).await;
    s3.put(&bucket, "k", b"1").await;
    // The shards that name the bucket, found after our positions, are made
    // to look as they did had they held nothing at the first start (a
    // used dev zone has few such shards left), and then trimmed whole.
    let naming = data_log_shards_naming(&admin, &index, &bucket).await;
    for (shard, name) in &naming {
        index
            .write(WriteBatch::new().marker(name.clone(), Vec::new()))
            .await
            .expect("empty position");
        let last = admin.datalog_info(*shard).await.expect("info").marker;
        admin.datalog_trim(*shard, &last).await.expect("trim");
        assert_eq!(admin.datalog_oldest(*shard).await.expect("oldest"), None);
    }
    let cap = RgwCapture::new(
        RgwAdmin::new(zone.admin_client()),
        index.clone(),
        Filter::new(&filter),
        config,
    );
    poll_until(&cap, &index, vec![change(&bucket, "k", None, Op::Put)]).await;
    drop(cap);
    drop(index);
    restart_resumes_exactly(
        &zone,
        &dir,
        &filter,
        &bucket,
        vec![change(&bucket, "k", None, Op::Put)],
    )
    .await;
}

/// The data-log shards that name `bucket` after the capture's positions in
/// `index`, with their position names. Waits up to 70 s: a bucket shard
/// logged in the last 30 s (`rgw_data_log_window`; a reshard logs its new
/// shards) is logged again only when the window renews.
async fn data_log_shards_naming(
    admin: &RgwAdmin,
    index: &Arc<dyn ChangeIndex>,
    bucket: &str,
) -> Vec<(u32, String)> {
    let deadline = Instant::now() + Duration::from_secs(70);
    let mut naming = Vec::new();
    while naming.is_empty() {
        assert!(
            Instant::now() < deadline,
            "no data-log entry names {bucket}"
        );
        for shard in 0..admin.datalog_shard_count().await.expect("shards") {
            let name = format!("rgw/datalog/{shard:03}");
            let ours = index
                .marker(&name)
                .await
                .expect("marker")
                .map(|m| String::from_utf8(m).expect("utf-8"));
            let page = admin
                .datalog_list(shard, ours.as_deref().filter(|m| !m.is_empty()))
                .await
                .expect("data log");
            if page
                .entries
                .iter()
                .any(|e| e.bucket_shard().is_some_and(|(b, _, _)| b == bucket))
            {
                naming.push((shard, name));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    naming
}

/// Writes fresh buckets zonelog does not follow until each data-log shard
/// of `after` holds an entry after its marker (any, when empty).
async fn fill_data_log_shards(zone: &DevZone, admin: &RgwAdmin, after: &[(u32, String)]) {
    let client = zone.admin_client();
    let s3 = S3(&client);
    let filler = unique_bucket("zlgapfill");
    let deadline = Instant::now() + Duration::from_secs(120);
    for n in 0.. {
        let mut bare = false;
        for (shard, last) in after {
            let listed = admin
                .datalog_list(*shard, Some(last.as_str()).filter(|m| !m.is_empty()))
                .await
                .expect("data log");
            bare |= listed.entries.is_empty();
        }
        if !bare {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Ceph {}: no entry reached data-log shards {after:?}",
            zone.release
        );
        let bucket = format!("{filler}-{n}");
        s3.create_bucket(&bucket).await;
        for k in 0..24 {
            s3.put(&bucket, &format!("f{k}"), b"f").await;
        }
    }
}

/// RGW's autotrim in a realm (every 20 min, through everything) while
/// zonelog runs: a data-log shard is trimmed past our position between two
/// polls, and RGW logs more to it before the next. Reading on from our
/// position lists only what came after the trim, so the poll itself must
/// see that the shard no longer holds our position and catch up; the
/// periodic trim check is minutes away (`check_interval`), as in
/// production.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_log_trimmed_between_two_polls_is_caught_up() {
    trimmed_between_two_polls(false).await;
}

/// The same with the data-log probe on: the shard the trim wrote is read,
/// the gap found, and the shard read again after the catch-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_log_trimmed_between_two_polls_is_caught_up_with_a_probe() {
    trimmed_between_two_polls(true).await;
}

async fn trimmed_between_two_polls(probe: bool) {
    let Some(zone) = dev_zone() else { return };
    // Trims data-log shards every other capture of this file reads.
    let _data_log = DATA_LOG.write().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let admin = RgwAdmin::new(zone.admin_client());
    let prefix = unique_bucket("zlgaptrim");
    let quiet = format!("{prefix}-quiet");
    s3.create_bucket(&quiet).await;
    // One index shard: one data-log entry, in one shard, names its change.
    reshard(&quiet, 1).await;
    // That shard holds an entry when capture starts, so our position in it
    // is one the log holds (a shard that held nothing at the first start
    // cannot tell a trim from none: docs/decisions.md).
    let shards = admin.datalog_shard_count().await.expect("shards");
    let quiet_shard = zonelog::capture::rgw::datalog_shard_of(&quiet, Some(0), shards);
    fill_data_log_shards(&zone, &admin, &[(quiet_shard, String::new())]).await;
    let filter = prefix_filter(&prefix);
    let dir = tempfile::tempdir().expect("temp dir");
    let index = open(&dir);
    let mut cap = capture(&zone, index.clone(), &filter);
    if probe {
        cap = cap.with_probe(data_log_probe());
    }
    cap.poll_once().await.expect("first poll");
    s3.put(&quiet, "k", b"1").await;
    let naming = data_log_shards_naming(&admin, &index, &quiet).await;
    let mut trimmed = Vec::new();
    for (shard, _) in &naming {
        let last = admin.datalog_info(*shard).await.expect("info").marker;
        admin.datalog_trim(*shard, &last).await.expect("trim");
        trimmed.push((*shard, last));
    }
    // Later entries in the trimmed shards, from buckets zonelog does not
    // follow: fresh buckets are written until each shard has one.
    fill_data_log_shards(&zone, &admin, &trimmed).await;
    poll_until(&cap, &index, vec![change(&quiet, "k", None, Op::Put)]).await;
    assert!(
        cap.counters.datalog_trims.load(Ordering::Relaxed) > 0,
        "Ceph {}: the trim was seen",
        zone.release
    );
}

/// After a trim, capture drains only the bucket shards the trimmed
/// data-log shards could have named, by RGW's hash: every entry of the
/// zone's data log (the dev zone's buckets, sharded and not, resharded and
/// not) sits in the shard it gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_data_log_entry_is_in_the_shard_rgws_hash_gives() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let admin = RgwAdmin::new(zone.admin_client());
    let bucket = unique_bucket("zlhash");
    s3.create_bucket(&bucket).await;
    for n in 0..40 {
        s3.put(&bucket, &format!("k{n}"), b"1").await;
    }
    let shards = admin.datalog_shard_count().await.expect("shards");
    let mut checked = 0;
    for shard in 0..shards {
        let mut marker: Option<String> = None;
        loop {
            let page = admin
                .datalog_list(shard, marker.as_deref())
                .await
                .expect("data log");
            for e in &page.entries {
                if let Some((b, _, bs)) = e.bucket_shard() {
                    assert_eq!(
                        zonelog::capture::rgw::datalog_shard_of(b, bs, shards),
                        shard,
                        "Ceph {}: {} in data-log shard {shard}",
                        zone.release,
                        e.key
                    );
                    checked += 1;
                }
            }
            if !page.truncated || page.marker.is_empty() {
                break;
            }
            marker = Some(page.marker);
        }
    }
    // Our own puts are logged at once (a trimming test waits for this
    // one's lock); a fresh zone after a whole-log trim holds little else.
    assert!(
        checked >= 1,
        "Ceph {}: no data-log entry to check",
        zone.release
    );
}
