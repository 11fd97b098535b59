//! The log-target seam's conformance suite: every `LogStore` (a directory,
//! and an S3 bucket on the dev zone) gives the collector, `zonelog logs`
//! and backup the same answers.

mod common;

use tokio::io::AsyncReadExt as _;
use zonelog::config::TargetConfig;
use zonelog::target::{Target, TargetError};

/// Each suite function, on a fresh target of each kind.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod directory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let target = super::directory_target(dir.path());
                    super::$name(&target).await;
                }
            )*
        }
        mod rgw {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(zone) = super::common::dev_zone() else { return };
                    let (_, target) = super::common::target::fresh(&zone, "logs").await;
                    super::$name(&target).await;
                }
            )*
        }
    };
}

conformance!(
    a_written_object_reads_back_whole,
    an_absent_object_reads_as_none_and_get_says_missing,
    a_listing_is_below_a_directory_in_key_order,
    a_level_lists_its_directories_and_objects,
    a_small_upload_is_one_put_with_its_digest,
    a_big_upload_goes_in_parts_with_its_id_known_before_the_first,
    an_aborted_upload_leaves_nothing_listed,
    an_upload_left_behind_is_aborted_by_its_id,
);

fn directory_target(dir: &std::path::Path) -> Target {
    Target::from_config(&TargetConfig {
        endpoint: None,
        region: "us-east-1".into(),
        access_key: None,
        secret_key: None,
        bucket: None,
        prefix: "logs".into(),
        directory: Some(dir.to_path_buf()),
    })
    .expect("directory target")
}

const MIB: usize = 1 << 20;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

async fn read_stream(target: &Target, key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    target
        .open_key(key)
        .await
        .expect("open")
        .read_to_end(&mut out)
        .await
        .expect("read");
    out
}

async fn keys(target: &Target, dir: &str) -> Vec<String> {
    target
        .list(dir, None)
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect()
}

async fn a_written_object_reads_back_whole(target: &Target) {
    target
        .put_small("z/a.json", b"{\"n\":1}".to_vec())
        .await
        .expect("put");
    let key = target.path("z/a.json");
    assert_eq!(key, "logs/z/a.json");
    assert_eq!(
        &target.get("z/a.json").await.expect("get")[..],
        b"{\"n\":1}"
    );
    assert_eq!(read_stream(target, &key).await, b"{\"n\":1}");
    let head = target
        .store()
        .head(&key)
        .await
        .expect("head")
        .expect("there");
    assert_eq!(head.size, 7);
    // A second write replaces the first whole.
    target
        .put_small("z/a.json", b"{}".to_vec())
        .await
        .expect("put again");
    assert_eq!(&target.get("z/a.json").await.expect("get")[..], b"{}");
    target.make_durable(&["z/a.json"]).await.expect("durable");
}

async fn an_absent_object_reads_as_none_and_get_says_missing(target: &Target) {
    let key = target.path("z/none.json");
    assert!(target.read_key(&key).await.expect("read").is_none());
    assert!(target.store().head(&key).await.expect("head").is_none());
    assert!(matches!(
        target.get("z/none.json").await,
        Err(TargetError::Missing { .. })
    ));
    assert!(matches!(
        target.open_key(&key).await,
        Err(TargetError::Missing { .. })
    ));
}

async fn a_listing_is_below_a_directory_in_key_order(target: &Target) {
    for name in ["z/2026/b", "z/2026/a", "z/1999/c", "zz/d", "z-e"] {
        target.put_small(name, name.into()).await.expect("put");
    }
    let z = target.path("z");
    assert_eq!(
        keys(target, &z).await,
        ["logs/z/1999/c", "logs/z/2026/a", "logs/z/2026/b"],
        "z lists z/… only, in key order"
    );
    let after: Vec<String> = target
        .list(&z, Some("logs/z/2026/a"))
        .await
        .expect("list after")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(after, ["logs/z/2026/b"]);
    let all = target.list(target.prefix(), None).await.expect("list all");
    assert_eq!(all.len(), 5);
    assert!(all.iter().all(|o| o.size == o.key.len() as u64 - 5));
}

async fn a_level_lists_its_directories_and_objects(target: &Target) {
    for name in ["z/2026/12/a", "z/2025/b", "z/top"] {
        target.put_small(name, b"x".to_vec()).await.expect("put");
    }
    let level = target.list_level(&target.path("z")).await.expect("level");
    let mut prefixes = level.prefixes.clone();
    prefixes.sort();
    assert_eq!(prefixes, ["logs/z/2025", "logs/z/2026"]);
    let objects: Vec<&str> = level.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(objects, ["logs/z/top"]);
    let empty = target
        .list_level(&target.path("nothing"))
        .await
        .expect("empty level");
    assert!(empty.prefixes.is_empty() && empty.objects.is_empty());
}

async fn a_small_upload_is_one_put_with_its_digest(target: &Target) {
    let bytes = pattern(100_000);
    let mut upload = target.begin("z/small", MIB, 5 * MIB);
    for chunk in bytes.chunks(30_000) {
        upload.write(chunk).await.expect("write");
    }
    assert!(upload.upload_id().is_none());
    let done = upload.finish().await.expect("finish");
    assert_eq!((done.size, done.parts), (100_000, 1));
    assert_eq!(done.sha256, sha256(&bytes));
    assert_eq!(done.path, target.path("z/small"));
    assert_eq!(read_stream(target, &done.path).await, bytes);
}

async fn a_big_upload_goes_in_parts_with_its_id_known_before_the_first(target: &Target) {
    // 5 MiB parts: S3's smallest but the last.
    let bytes = pattern(12 * MIB + 123);
    let mut upload = target.begin("z/big", MIB, 5 * MIB);
    let mut chunks = bytes.chunks(MIB / 2);
    let mut written = 0;
    // Up to the threshold, then the write that crosses it creates the
    // upload (an S3 one has its id) and nothing is sent yet.
    while upload.upload_id().is_none() && written <= MIB {
        let chunk = chunks.next().expect("chunk");
        upload.write(chunk).await.expect("write");
        written += chunk.len();
    }
    if target.store().checks_etag() {
        assert!(upload.upload_id().is_some(), "an S3 upload's id is known");
        let listed = keys(target, &target.path("z")).await;
        assert!(listed.is_empty(), "nothing visible before it completes");
    }
    for chunk in chunks {
        upload.write(chunk).await.expect("write");
    }
    let done = upload.finish().await.expect("finish");
    assert_eq!(done.size, bytes.len() as u64);
    assert_eq!(done.parts, 3, "12 MiB and a bit in 5 MiB parts");
    assert_eq!(done.sha256, sha256(&bytes));
    assert_eq!(read_stream(target, &done.path).await, bytes);
}

async fn an_aborted_upload_leaves_nothing_listed(target: &Target) {
    let bytes = pattern(7 * MIB);
    let mut upload = target.begin("z/aborted", MIB, 5 * MIB);
    for chunk in bytes.chunks(MIB) {
        upload.write(chunk).await.expect("write");
    }
    upload.abort().await;
    assert!(keys(target, target.prefix()).await.is_empty());
    let key = target.path("z/aborted");
    assert!(target.read_key(&key).await.expect("read").is_none());
}

async fn an_upload_left_behind_is_aborted_by_its_id(target: &Target) {
    let bytes = pattern(6 * MIB);
    let mut upload = target.begin("z/left", MIB, 5 * MIB);
    for chunk in bytes.chunks(MIB) {
        upload.write(chunk).await.expect("write");
    }
    let id = upload.upload_id().map(str::to_string);
    // The round is killed: the upload is never finished nor aborted.
    drop(upload);
    if let Some(id) = id {
        target.abort_upload("z/left", &id).await.expect("abort");
        // Aborting one that is gone is fine (a resumed round may do so twice).
        target
            .abort_upload("z/left", &id)
            .await
            .expect("abort again");
    }
    assert!(keys(target, target.prefix()).await.is_empty());
}

/// A directory target's keys cannot reach outside its root.
#[tokio::test]
async fn a_directory_refuses_keys_that_leave_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    let target = directory_target(&root);
    for name in ["../escape", "z/../../escape", "z//a", "z/./a"] {
        let err = target.put_small(name, b"x".to_vec()).await.expect_err(name);
        assert!(err.to_string().contains("cannot name a file"), "{err}");
    }
    assert!(!dir.path().join("escape").exists());
    assert!(keys(&target, "").await.is_empty());
}
