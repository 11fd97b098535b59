//! `enrich`: size, ETag and mtime from a HEAD, and never another put's.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrich_adds_size_etag_and_mtime() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let bucket = unique_bucket("zlenrich");
    let filter = bucket_filter(&bucket);
    let dir = tempfile::tempdir().expect("temp dir");
    let index = open(&dir);
    let cap = RgwCapture::new(
        RgwAdmin::new(zone.admin_client()),
        index.clone(),
        Filter::new(&filter),
        RgwSourceConfig {
            enrich: true,
            ..source_config(&zone)
        },
    );
    cap.poll_once().await.expect("first poll");
    s3.create_bucket(&bucket).await;
    s3.put(&bucket, "five", b"hello").await;
    poll_until(&cap, &index, vec![change(&bucket, "five", None, Op::Put)]).await;
    let entry = read_all(&index).await.remove(0);
    assert_eq!(entry.record.size, Some(5));
    use md5::Digest;
    assert_eq!(
        entry.record.etag.as_deref(),
        Some(hex::encode(md5::Md5::digest(b"hello")).as_str())
    );
    assert!(entry.record.mtime.is_some());

    // A put overwritten (a second later) before capture reads it: its own
    // size and ETag are gone, the overwrite's must not be attached to it.
    s3.put(&bucket, "over", b"first").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s3.put(&bucket, "over", b"second, longer").await;
    poll_until(
        &cap,
        &index,
        vec![
            change(&bucket, "five", None, Op::Put),
            change(&bucket, "over", None, Op::Put),
            change(&bucket, "over", None, Op::Put),
        ],
    )
    .await;
    let mut overs: Vec<_> = read_all(&index)
        .await
        .into_iter()
        .filter(|e| e.record.key == "over")
        .collect();
    overs.sort_by_key(|e| e.record.time);
    assert_eq!(
        overs[0].record.size, None,
        "Ceph {}: the first put got the overwrite's size",
        zone.release
    );
    assert_eq!(overs[1].record.size, Some(14), "the overwrite's own size");

    // Overwritten within the same second: Last-Modified (whole seconds)
    // cannot tell the two apart, the log that names both can.
    s3.put(&bucket, "same-second", b"first").await;
    s3.put(&bucket, "same-second", b"second, longer").await;
    let mut want = vec![
        change(&bucket, "five", None, Op::Put),
        change(&bucket, "over", None, Op::Put),
        change(&bucket, "over", None, Op::Put),
    ];
    want.push(change(&bucket, "same-second", None, Op::Put));
    want.push(change(&bucket, "same-second", None, Op::Put));
    poll_until(&cap, &index, want).await;
    let mut same: Vec<_> = read_all(&index)
        .await
        .into_iter()
        .filter(|e| e.record.key == "same-second")
        .collect();
    same.sort_by_key(|e| e.id);
    assert_eq!(
        same[0].record.size, None,
        "Ceph {}: the first put got the same-second overwrite's size",
        zone.release
    );
    assert_eq!(same[1].record.size, Some(14), "the overwrite's own size");
}

/// A key overwritten every few milliseconds while capture reads it with
/// `enrich`: a poll reads the log up to some put, and the next put may
/// land before that put's object is looked up, in the same second. No
/// record may carry another put's size; the last one carries its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrich_never_attaches_an_overwrite_made_in_the_same_second() {
    let Some(zone) = dev_zone() else { return };
    let _data_log = DATA_LOG.read().await;
    let client = zone.admin_client();
    let s3 = S3(&client);
    let bucket = unique_bucket("zlenrichhot");
    let filter = bucket_filter(&bucket);
    let dir = tempfile::tempdir().expect("temp dir");
    let index = open(&dir);
    let cap = RgwCapture::new(
        RgwAdmin::new(zone.admin_client()),
        index.clone(),
        Filter::new(&filter),
        RgwSourceConfig {
            enrich: true,
            ..source_config(&zone)
        },
    );
    cap.poll_once().await.expect("first poll");
    s3.create_bucket(&bucket).await;
    const PUTS: usize = 150;
    let writer = {
        let (zone_client, bucket) = (zone.admin_client(), bucket.clone());
        tokio::spawn(async move {
            for n in 1..=PUTS {
                S3(&zone_client).put(&bucket, "hot", &vec![b'x'; n]).await;
            }
        })
    };
    while !writer.is_finished() {
        cap.poll_once().await.expect("poll");
    }
    writer.await.expect("writer");
    poll_until(
        &cap,
        &index,
        vec![change(&bucket, "hot", None, Op::Put); PUTS],
    )
    .await;
    let mut hot = read_all(&index).await;
    hot.sort_by_key(|e| e.id);
    for (n, e) in hot.iter().enumerate() {
        if let Some(size) = e.record.size {
            assert_eq!(
                size,
                n as u64 + 1,
                "Ceph {}: put {} of {PUTS} carries another put's size (etag {:?}, time {})",
                zone.release,
                n + 1,
                e.record.etag,
                e.record.time
            );
        }
    }
    assert_eq!(
        hot.last().and_then(|e| e.record.size),
        Some(PUTS as u64),
        "Ceph {}: the last put, still current, carries its own size",
        zone.release
    );
}
