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
    Some(DevZone {
        endpoint: Url::parse(&endpoint).expect("ZONELOG_DEV_RGW_ENDPOINT is a URL"),
        zone: var("ZONELOG_DEV_ZONE"),
        admin_access_key: var("ZONELOG_DEV_ADMIN_ACCESS_KEY"),
        admin_secret_key: var("ZONELOG_DEV_ADMIN_SECRET_KEY"),
        user_access_key: var("ZONELOG_DEV_USER_ACCESS_KEY"),
        user_secret_key: var("ZONELOG_DEV_USER_SECRET_KEY"),
    })
}

impl DevZone {
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

/// Plain S3 calls the tests use to make a workload.
pub struct S3<'a>(pub &'a SignedClient);

impl S3<'_> {
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

    pub async fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        let url = self.0.url(
            &format!("/{}/{}", encode_path(bucket), encode_path(key)),
            &[],
        );
        self.0
            .send(
                Method::PUT,
                url,
                body.to_vec(),
                &format!("put {bucket}/{key}"),
            )
            .await
            .expect("put object");
    }

    pub async fn delete(&self, bucket: &str, key: &str) {
        let url = self.0.url(
            &format!("/{}/{}", encode_path(bucket), encode_path(key)),
            &[],
        );
        self.0
            .send(
                Method::DELETE,
                url,
                Vec::new(),
                &format!("delete {bucket}/{key}"),
            )
            .await
            .expect("delete object");
    }
}
