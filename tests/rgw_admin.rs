//! Proves the dev zone and the signed admin client: a workload made with the
//! test user's keys shows up in the bucket-index log and the data log, read
//! through the admin API exactly as the RGW source reads them.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{dev_zone, unique_bucket, S3};
use zonelog::capture::rgw::admin::AdminError;
use zonelog::capture::rgw::{BucketShard, RgwAdmin};

#[tokio::test]
async fn bilog_and_datalog_show_a_put_and_a_delete() {
    let Some(zone) = dev_zone() else { return };
    let client = zone.admin_client();
    let s3 = S3(&client);
    let admin = RgwAdmin::new(client.clone());
    let bucket = unique_bucket("zl-admin");
    s3.create_bucket(&bucket).await;
    s3.put(&bucket, "dir/first object", b"hello").await;
    s3.delete(&bucket, "dir/first object").await;

    let instance = admin.bucket_instance(&bucket).await.expect("bucket info");
    assert!(!instance.instance_id.is_empty());
    assert!(admin
        .list_buckets()
        .await
        .expect("bucket list")
        .contains(&bucket));

    // The object is in exactly one index shard; read them all.
    let shards: Vec<Option<u32>> = if instance.num_shards == 0 {
        vec![None]
    } else {
        (0..instance.num_shards).map(Some).collect()
    };
    let mut ops = Vec::new();
    let mut object_shard = None;
    for shard in &shards {
        let entries = admin
            .bilog_list(
                &BucketShard::first(&bucket, &instance.instance_id, *shard),
                None,
            )
            .await
            .expect("bilog")
            .entries;
        for e in entries.iter().filter(|e| e.state == "complete") {
            assert_eq!(e.object, "dir/first object");
            ops.push(e.op.clone());
            object_shard = Some(*shard);
        }
    }
    assert_eq!(ops, ["write", "del"], "bilog ops of the workload");
    let object_shard = object_shard.expect("the object's shard");
    let info = admin
        .bilog_info(&BucketShard::first(
            &bucket,
            &instance.instance_id,
            object_shard,
        ))
        .await
        .expect("bilog info");
    assert!(!info.max_marker.is_empty(), "{info:?}");

    // Scan every data-log shard for the bucket shard that changed.
    let datalog_shards = admin.datalog_shard_count().await.expect("datalog size");
    assert_eq!(datalog_shards, 128);
    let mut seen = BTreeSet::new();
    for attempt in 0..20 {
        for shard in 0..datalog_shards {
            let mut marker: Option<String> = None;
            loop {
                let page = admin
                    .datalog_list(shard, marker.as_deref())
                    .await
                    .expect("datalog");
                for e in &page.entries {
                    if let Some((b, inst, s)) = e.bucket_shard() {
                        if b == bucket {
                            assert_eq!(inst, instance.instance_id);
                            seen.insert(s);
                        }
                    }
                }
                if !page.truncated || page.marker.is_empty() {
                    break;
                }
                marker = Some(page.marker);
            }
        }
        if seen.contains(&object_shard) {
            break;
        }
        // RGW writes the data log asynchronously, in windows of seconds.
        assert!(
            attempt < 19,
            "bucket shard {object_shard:?} never appeared in the data log"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(seen.contains(&object_shard));
}

#[tokio::test]
async fn a_user_without_caps_gets_an_error_naming_the_cap() {
    let Some(zone) = dev_zone() else { return };
    let admin = RgwAdmin::new(zone.user_client());
    let err = admin
        .datalog_list(0, None)
        .await
        .expect_err("the plain user has no datalog cap");
    assert!(matches!(err, AdminError::MissingCap { .. }), "{err}");
    assert!(err.to_string().contains("datalog=read"), "{err}");
}

#[tokio::test]
async fn wrong_keys_are_reported_as_credentials_not_caps() {
    let Some(zone) = dev_zone() else { return };
    let client = zonelog::capture::rgw::admin::SignedClient::new(
        zone.endpoint.clone(),
        &zone.admin_access_key,
        zonelog::config::Secret::new("not-the-secret"),
        "us-east-1",
    )
    .expect("client");
    let err = RgwAdmin::new(client)
        .datalog_shard_count()
        .await
        .expect_err("wrong secret");
    assert!(matches!(err, AdminError::BadCredentials { .. }), "{err}");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_transient_error() {
    let client = zonelog::capture::rgw::admin::SignedClient::new(
        "http://127.0.0.1:9".parse().expect("url"),
        "ak",
        zonelog::config::Secret::new("sk"),
        "us-east-1",
    )
    .expect("client");
    let err = RgwAdmin::new(client)
        .datalog_shard_count()
        .await
        .expect_err("nothing listens on port 9");
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
}
