//! Shared by the integration tests: the dev Ceph zone started by
//! `scripts/ceph-dev up`, found through the variables `scripts/ceph-dev env`
//! prints. A test that needs the zone fails when it is missing — it never
//! silently passes. Outside CI, `ZONELOG_SKIP_CEPH_TESTS=1` lets a developer
//! without Ceph run the rest; under `CI=true` that switch is refused.
#![allow(dead_code)]

use reqwest::Method;
use url::Url;
use zonelog::capture::rgw::admin::{encode_path, SignedClient};
use zonelog::config::Secret;

pub struct DevZone {
    pub endpoint: Url,
    pub zone: String,
    pub admin_access_key: String,
    pub admin_secret_key: String,
    pub user_access_key: String,
    pub user_secret_key: String,
    /// `pacific`, `reef` or `tentacle`: the release `scripts/ceph-dev` runs.
    pub release: String,
}

/// The dev zone, or `None` when the developer asked to skip Ceph tests.
pub fn dev_zone() -> Option<DevZone> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let skip = std::env::var("ZONELOG_SKIP_CEPH_TESTS").is_ok_and(|v| v == "1");
    let endpoint = match std::env::var("ZONELOG_DEV_RGW_ENDPOINT") {
        Ok(e) => e,
        Err(_) if skip && !ci => {
            eprintln!("ZONELOG_SKIP_CEPH_TESTS=1: skipping a test that needs the dev Ceph zone");
            return None;
        }
        Err(_) => panic!(
            "this test needs the dev Ceph zone: run `scripts/ceph-dev up && eval \"$(scripts/ceph-dev env)\"` \
             (or use scripts/test, which does both)"
        ),
    };
    let var = |name: &str| {
        std::env::var(name)
            .unwrap_or_else(|_| panic!("{name} is not set; eval \"$(scripts/ceph-dev env)\""))
    };
    let release = var("ZONELOG_DEV_CEPH_RELEASE");
    // Shown with a failing test's output, so a failure names its release.
    eprintln!(
        "dev zone: Ceph {release} {}",
        std::env::var("ZONELOG_DEV_CEPH_VERSION").unwrap_or_default()
    );
    Some(DevZone {
        release,
        endpoint: Url::parse(&endpoint).expect("ZONELOG_DEV_RGW_ENDPOINT is a URL"),
        zone: var("ZONELOG_DEV_ZONE"),
        admin_access_key: var("ZONELOG_DEV_ADMIN_ACCESS_KEY"),
        admin_secret_key: var("ZONELOG_DEV_ADMIN_SECRET_KEY"),
        user_access_key: var("ZONELOG_DEV_USER_ACCESS_KEY"),
        user_secret_key: var("ZONELOG_DEV_USER_SECRET_KEY"),
    })
}

impl DevZone {
    /// Reef and later: bilog generations, unlogged operations that still
    /// take a number, the FIFO data log.
    pub fn newer_than_pacific(&self) -> bool {
        self.release != "pacific"
    }

    pub fn admin_client(&self) -> SignedClient {
        SignedClient::new(
            self.endpoint.clone(),
            &self.admin_access_key,
            Secret::new(self.admin_secret_key.clone()),
            "us-east-1",
        )
        .expect("client")
    }

    pub fn user_client(&self) -> SignedClient {
        SignedClient::new(
            self.endpoint.clone(),
            &self.user_access_key,
            Secret::new(self.user_secret_key.clone()),
            "us-east-1",
        )
        .expect("client")
    }
}

/// A bucket name no other test run uses.
pub fn unique_bucket(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("{prefix}-{}-{:x}", std::process::id(), nanos & 0xffff_ffff)
}

/// Keys that need escaping in URLs, XML or zonelog's own index names.
pub const ODD_KEYS: [&str; 7] = [
    "unicode ü/ß",
    "with space",
    "per%cent",
    "plus+sign",
    "new\nline",
    "_leading",
    "q?x=1&y#h",
];

/// Plain S3 calls the tests use to make a workload.
pub struct S3<'a>(pub &'a SignedClient);

impl S3<'_> {
    /// Sets (or with `None` removes) the bucket's policy.
    pub async fn bucket_policy(&self, bucket: &str, policy: Option<&serde_json::Value>) {
        let url = self
            .0
            .url(&format!("/{}", encode_path(bucket)), &[("policy", None)]);
        let (method, body) = match policy {
            Some(p) => (Method::PUT, p.to_string().into_bytes()),
            None => (Method::DELETE, Vec::new()),
        };
        self.0
            .send(method, url, body, &format!("bucket policy of {bucket}"))
            .await
            .expect("bucket policy");
    }

    pub async fn create_bucket(&self, bucket: &str) {
        let url = self.0.url(&format!("/{}", encode_path(bucket)), &[]);
        self.0
            .send(
                Method::PUT,
                url,
                Vec::new(),
                &format!("create bucket {bucket}"),
            )
            .await
            .expect("create bucket");
    }

    /// Removes an (empty) bucket.
    pub async fn delete_bucket(&self, bucket: &str) {
        let url = self.0.url(&format!("/{}", encode_path(bucket)), &[]);
        self.0
            .send(
                Method::DELETE,
                url,
                Vec::new(),
                &format!("delete bucket {bucket}"),
            )
            .await
            .expect("delete bucket");
    }

    /// Puts an object with extra headers (metadata, tags, class).
    pub async fn put_with(
        &self,
        bucket: &str,
        key: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Option<String> {
        let url = self.object_url(bucket, key, &[]);
        let reply = self
            .0
            .send_with_headers(
                Method::PUT,
                url,
                headers,
                body.to_vec(),
                &format!("put {bucket}/{key}"),
            )
            .await
            .expect("put object");
        version_header(&reply)
    }

    /// Sets a canned ACL on an object.
    pub async fn acl(&self, bucket: &str, key: &str, canned: &str) {
        let url = self.object_url(bucket, key, &[("acl", None)]);
        self.0
            .send_with_headers(
                Method::PUT,
                url,
                // RGW wants a length even for an empty body.
                &[("x-amz-acl", canned), ("content-length", "0")],
                Vec::new(),
                &format!("acl of {bucket}/{key}"),
            )
            .await
            .expect("object acl");
    }

    /// Puts an object; returns its version id in a versioned bucket.
    pub async fn put(&self, bucket: &str, key: &str, body: &[u8]) -> Option<String> {
        let url = self.object_url(bucket, key, &[]);
        let reply = self
            .0
            .send(
                Method::PUT,
                url,
                body.to_vec(),
                &format!("put {bucket}/{key}"),
            )
            .await
            .expect("put object");
        version_header(&reply)
    }

    /// Deletes an object; returns the version id RGW reports (the delete
    /// marker's, in a versioned bucket).
    pub async fn delete(&self, bucket: &str, key: &str) -> Option<String> {
        self.delete_version(bucket, key, None).await
    }

    pub async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Option<String> {
        let query: Vec<(&str, Option<&str>)> = version
            .map(|v| ("versionId", Some(v)))
            .into_iter()
            .collect();
        let url = self.object_url(bucket, key, &query);
        let reply = self
            .0
            .send(
                Method::DELETE,
                url,
                Vec::new(),
                &format!("delete {bucket}/{key}"),
            )
            .await
            .expect("delete object");
        version_header(&reply)
    }

    pub async fn copy(&self, bucket: &str, from_key: &str, to_key: &str) {
        let url = self.object_url(bucket, to_key, &[]);
        let source = format!("/{}/{}", encode_path(bucket), encode_path(from_key));
        self.0
            .send_with_headers(
                Method::PUT,
                url,
                &[("x-amz-copy-source", source.as_str())],
                Vec::new(),
                &format!("copy to {bucket}/{to_key}"),
            )
            .await
            .expect("copy object");
    }

    pub async fn enable_versioning(&self, bucket: &str) {
        self.set_versioning(bucket, "Enabled").await;
    }

    pub async fn suspend_versioning(&self, bucket: &str) {
        self.set_versioning(bucket, "Suspended").await;
    }

    async fn set_versioning(&self, bucket: &str, status: &str) {
        let url = self.0.url(
            &format!("/{}", encode_path(bucket)),
            &[("versioning", None)],
        );
        let body = format!(
            r#"<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>{status}</Status></VersioningConfiguration>"#
        );
        self.0
            .send(
                Method::PUT,
                url,
                body.into_bytes(),
                &format!("versioning of {bucket}"),
            )
            .await
            .expect("set versioning");
    }

    pub async fn tag(&self, bucket: &str, key: &str) {
        let url = self.object_url(bucket, key, &[("tagging", None)]);
        let body =
            br#"<Tagging><TagSet><Tag><Key>team</Key><Value>blue</Value></Tag></TagSet></Tagging>"#;
        self.0
            .send(
                Method::PUT,
                url,
                body.to_vec(),
                &format!("tag {bucket}/{key}"),
            )
            .await
            .expect("tag object");
    }

    /// A multipart upload of `parts` parts (all but the last 5 MiB).
    pub async fn multipart(&self, bucket: &str, key: &str, parts: usize) {
        let url = self.object_url(bucket, key, &[("uploads", None)]);
        let reply = self
            .0
            .send(Method::POST, url, Vec::new(), "create multipart upload")
            .await
            .expect("create multipart upload");
        let text = String::from_utf8_lossy(&reply.body).to_string();
        let upload_id = between(&text, "<UploadId>", "</UploadId>")
            .expect("UploadId")
            .to_string();
        let mut complete = String::from("<CompleteMultipartUpload>");
        for n in 1..=parts {
            let size = if n < parts { 5 << 20 } else { 1000 };
            let part = n.to_string();
            let url = self.object_url(
                bucket,
                key,
                &[
                    ("partNumber", Some(part.as_str())),
                    ("uploadId", Some(upload_id.as_str())),
                ],
            );
            let reply = self
                .0
                .send(Method::PUT, url, vec![b'p'; size], "upload part")
                .await
                .expect("upload part");
            let etag = reply
                .headers
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .expect("part etag")
                .to_string();
            complete.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
            ));
        }
        complete.push_str("</CompleteMultipartUpload>");
        let url = self.object_url(bucket, key, &[("uploadId", Some(upload_id.as_str()))]);
        self.0
            .send(
                Method::POST,
                url,
                complete.into_bytes(),
                "complete multipart upload",
            )
            .await
            .expect("complete multipart upload");
    }

    fn object_url(&self, bucket: &str, key: &str, query: &[(&str, Option<&str>)]) -> Url {
        self.0.url(
            &format!("/{}/{}", encode_path(bucket), encode_path(key)),
            query,
        )
    }
}

fn version_header(reply: &zonelog::capture::rgw::admin::Reply) -> Option<String> {
    reply
        .headers
        .get("x-amz-version-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

/// A fresh bucket on the dev zone as a collector target, and a way to read
/// back what was written there.
pub mod target {
    use super::*;
    use zonelog::config::{Compression, TargetConfig};
    use zonelog::logs::decode_object;
    use zonelog::logs::{LogObjectName, LogRecord};
    use zonelog::target::Target;

    pub async fn fresh(zone: &DevZone, prefix: &str) -> (TargetConfig, Target) {
        let bucket = unique_bucket("zl-target");
        S3(&zone.admin_client()).create_bucket(&bucket).await;
        let config = TargetConfig {
            endpoint: Some(zone.endpoint.clone()),
            region: "us-east-1".into(),
            access_key: Some(zone.admin_access_key.clone()),
            secret_key: Some(Secret::new(zone.admin_secret_key.clone())),
            bucket: Some(bucket),
            prefix: prefix.into(),
            directory: None,
        };
        let target = Target::from_config(&config).expect("target");
        (config, target)
    }

    /// Every object below the prefix, by name.
    pub async fn names(target: &Target) -> Vec<String> {
        let mut names: Vec<String> = target
            .list(target.prefix(), None)
            .await
            .expect("list target")
            .into_iter()
            .map(|o| o.key)
            .collect();
        names.sort();
        names
    }

    /// All records of all log objects, in name order, with the object each
    /// came from; checks every manifest against its object.
    pub async fn read_logs(target: &Target) -> Vec<(String, LogRecord)> {
        read_logs_with(target, false).await
    }

    /// [`read_logs`] while a collector runs: an object whose manifest is
    /// not written yet (a round between the two PUTs) is left out.
    pub async fn read_landed_logs(target: &Target) -> Vec<(String, LogRecord)> {
        read_logs_with(target, true).await
    }

    async fn read_logs_with(target: &Target, landed_only: bool) -> Vec<(String, LogRecord)> {
        let mut out = Vec::new();
        for name in names(target).await {
            let Ok(log_name) = LogObjectName::from_key(&name, target.prefix()) else {
                continue;
            };
            let bytes = target
                .read_key(&name)
                .await
                .expect("get")
                .expect("listed object exists");
            let records = decode_object(log_name.format, &bytes).expect("decode log object");
            let manifest_path = target.path(&log_name.manifest_name());
            let manifest = target
                .read_key(&manifest_path)
                .await
                .expect("manifest read");
            let Some(manifest) = manifest else {
                assert!(landed_only, "{name} has no manifest");
                continue;
            };
            let manifest: zonelog::logs::Manifest =
                serde_json::from_slice(&manifest).expect("manifest JSON");
            assert_eq!(manifest.count, records.len() as u64, "{name}");
            assert_eq!(manifest.bytes, bytes.len() as u64, "{name}");
            use sha2::Digest;
            assert_eq!(
                manifest.sha256,
                hex::encode(sha2::Sha256::digest(&bytes)),
                "{name}"
            );
            if let (Some(first), Some(last)) = (records.first(), records.last()) {
                assert_eq!(manifest.first_id, first.id);
                assert_eq!(manifest.last_id, last.id);
            }
            let _ = Compression::None;
            out.extend(records.into_iter().map(|r| (name.clone(), r)));
        }
        out
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("port")
        .port()
}

/// A whole-pipeline config for `zonelog run`: the dev zone's RGW as the
/// source of `buckets`, an 8-shard index and a directory target under
/// `dir`, a collector that only runs on `zonelog flush`, and the HTTP server
/// on `port`. `extra` is appended (e.g. a `[backup]` section).
pub fn pipeline_config(
    zone: &DevZone,
    zone_name: &str,
    buckets: &[&str],
    dir: &std::path::Path,
    port: u16,
    extra: &str,
) -> String {
    let list = buckets
        .iter()
        .map(|b| format!("{b:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"zone = "{zone_name}"
[sources.rgw]
endpoint = "{endpoint}"
access_key = "{ak}"
secret_key = "{sk}"
poll_interval = "200ms"
[filter]
buckets = [{list}]
[index]
path = "{dir}/index"
shards = 8
[collector]
period = "1h"
cutoff_margin = "1s"
[target]
directory = "{dir}/logs"
[http]
listen = "127.0.0.1:{port}"
{extra}
"#,
        endpoint = zone.endpoint,
        ak = zone.admin_access_key,
        sk = zone.admin_secret_key,
        dir = dir.display(),
    )
}

/// Random histories of writes and trims for the model check every index
/// backend runs (`zonelog::index::conformance::check_against_model`), up to
/// `max_steps` steps.
pub fn model_ops(
    max_steps: usize,
) -> impl proptest::strategy::Strategy<Value = Vec<zonelog::index::conformance::ModelOp>> {
    use proptest::prelude::*;
    use zonelog::index::conformance::ModelOp;
    let write = proptest::collection::vec(
        (0u8..3, 0u8..6, proptest::option::of(0u8..2), 1u64..40),
        1..12,
    )
    .prop_map(ModelOp::Write);
    let trim = proptest::collection::vec(any::<usize>(), 0..6).prop_map(ModelOp::Trim);
    let trim_covered =
        (any::<u32>(), 1u64..45).prop_map(|(shard, time)| ModelOp::TrimCovered(shard, time));
    proptest::collection::vec(
        prop_oneof![
            3 => write,
            2 => trim,
            1 => Just(ModelOp::Watermark),
            1 => trim_covered,
        ],
        1..max_steps,
    )
}

/// Runs `zonelog ARGS -c CONFIG` and insists that it succeeds.
pub fn zonelog_ok(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_zonelog"))
        .args(args)
        .arg("-c")
        .arg(config)
        .env("ZONELOG_LOG", "warn")
        .output()
        .expect("run zonelog");
    assert!(
        output.status.success(),
        "zonelog {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A put/delete workload on `bucket` until `stop`: puts `k/NNNNNN` and
/// deletes every tenth key again (see [`put_delete_changes`]); returns how
/// many keys it put.
#[allow(dead_code)]
pub fn spawn_put_delete_workload(
    client: SignedClient,
    bucket: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut n = 0u64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let key = format!("k/{n:06}");
            S3(&client).put(&bucket, &key, b"x").await;
            if n % 10 == 3 {
                S3(&client).delete(&bucket, &key).await;
            }
            n += 1;
        }
        n
    })
}

/// Every (key, op) change [`spawn_put_delete_workload`] made after putting
/// `written` keys, in order.
#[allow(dead_code)]
pub fn put_delete_changes(written: u64) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for n in 0..written {
        let key = format!("k/{n:06}");
        if n % 10 == 3 {
            out.push((key.clone(), "put"));
            out.push((key, "delete"));
        } else {
            out.push((key, "put"));
        }
    }
    out
}

/// `radosgw-admin ARGS` (ceph-common, found through `CEPH_CONF` from
/// `scripts/ceph-dev env`); its stdout, or a panic with its stderr.
pub fn radosgw_admin(args: &[&str]) -> String {
    let out = std::process::Command::new("radosgw-admin")
        .args(args)
        .output()
        .expect("radosgw-admin (ceph-common) runs with CEPH_CONF from scripts/ceph-dev env");
    assert!(
        out.status.success(),
        "radosgw-admin {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("radosgw-admin prints UTF-8")
}

/// A TCP proxy in front of a server, that a test can cut (every open
/// connection dropped, every new one closed at once: the server looks
/// down) and restore — a network outage without touching the server.
pub struct CutProxy {
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl CutProxy {
    pub async fn start(to: std::net::SocketAddr) -> CutProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let accepting = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !accepting.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(to).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        CutProxy { port, up, cut }
    }

    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Whether the process is stopped (SIGSTOP): state `T` in its stat.
pub fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')')?.1.trim_start().chars().next())
        == Some('T')
}

impl DevZone {
    /// The RGW's socket address, for a proxy in front of it.
    pub fn rgw_addr(&self) -> std::net::SocketAddr {
        self.endpoint
            .socket_addrs(|| None)
            .expect("rgw address")
            .into_iter()
            .next()
            .expect("an address")
    }
}
