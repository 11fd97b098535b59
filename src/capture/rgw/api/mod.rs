//! Typed calls of RGW's admin log and metadata API — the calls a multisite
//! sync peer makes — with the JSON shapes RGW (16.2) answers.

mod bilog;
mod buckets;
mod datalog;

pub use bilog::{BilogEntry, BilogInfo, BilogPage, BucketShard};
pub use buckets::BucketInstance;
pub use datalog::{DatalogEntry, DatalogInfo, DatalogPage};

use super::admin::SignedClient;

/// Read access to a zone's data log, bucket-index logs and bucket metadata.
#[derive(Clone)]
pub struct RgwAdmin {
    client: SignedClient,
    s3: crate::s3::S3,
}

impl RgwAdmin {
    pub fn new(client: SignedClient) -> Self {
        let s3 = client.s3("rgw");
        RgwAdmin { client, s3 }
    }

    pub fn client(&self) -> &SignedClient {
        &self.client
    }

    /// The zone's S3 API with the same keys: listings and HEADs.
    pub fn s3(&self) -> &crate::s3::S3 {
        &self.s3
    }
}

/// `bucket:instance[:shard]`, as the admin API names a bucket shard. The
/// query encoder turns `:` into `%3A`, which RGW requires.
pub fn instance_key(bucket: &str, instance_id: &str, shard: Option<u32>) -> String {
    match shard {
        Some(s) => format!("{bucket}:{instance_id}:{s}"),
        None => format!("{bucket}:{instance_id}"),
    }
}
