//! Bucket metadata: the zone's buckets, the instance that backs a bucket
//! name, and when an instance was created.

use serde::Deserialize;

use super::RgwAdmin;
use crate::capture::rgw::admin::AdminError;

/// Which bucket instance currently backs a bucket name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInstance {
    pub bucket: String,
    pub instance_id: String,
    pub num_shards: u32,
    /// When the bucket was created, as RGW reports it. A reshard that
    /// gives the bucket a new instance (Pacific) keeps it; a bucket
    /// removed and created again under its name gets a new one.
    pub creation_time: Option<String>,
    /// RGW's bucket marker: the prefix of the bucket's objects in RADOS,
    /// so a reshard keeps it, while a new bucket's is the id of its first
    /// instance. It names a bucket's lineage through reshards.
    pub marker: Option<String>,
}

impl BucketInstance {
    /// `creation_time` as a time, when RGW gave one zonelog can read.
    pub fn created(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let raw = self.creation_time.as_deref()?;
        chrono::DateTime::parse_from_rfc3339(raw)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    }
}

#[derive(Deserialize)]
struct BucketStats {
    id: String,
    #[serde(default)]
    num_shards: Option<u32>,
    #[serde(default)]
    creation_time: Option<String>,
    #[serde(default)]
    marker: Option<String>,
}

#[derive(Deserialize)]
struct InstanceMetadata {
    data: InstanceData,
}

#[derive(Deserialize)]
struct InstanceData {
    bucket_info: InstanceInfo,
}

#[derive(Deserialize)]
struct InstanceInfo {
    #[serde(default)]
    creation_time: Option<String>,
}

impl RgwAdmin {
    /// The names of every bucket of the zone.
    pub async fn list_buckets(&self) -> Result<Vec<String>, AdminError> {
        self.client
            .get_json("/admin/metadata/bucket", &[], "metadata bucket list")
            .await
    }

    /// When a bucket instance was created, in ns since the epoch, from its
    /// metadata (`None` when RGW no longer has it, or gives no time).
    pub async fn instance_created_ns(
        &self,
        bucket: &str,
        instance_id: &str,
    ) -> Result<Option<u64>, AdminError> {
        let key = format!("{bucket}:{instance_id}");
        let meta: Result<InstanceMetadata, _> = self
            .client
            .get_json(
                "/admin/metadata/bucket.instance",
                &[("key", Some(&key))],
                &format!("bucket instance metadata of {key}"),
            )
            .await;
        let meta = match meta {
            Ok(meta) => meta,
            Err(AdminError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(meta
            .data
            .bucket_info
            .creation_time
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .and_then(|t| t.timestamp_nanos_opt())
            .and_then(|ns| u64::try_from(ns).ok()))
    }

    /// The instance that currently backs `bucket`, and its index shards.
    pub async fn bucket_instance(&self, bucket: &str) -> Result<BucketInstance, AdminError> {
        let stats: BucketStats = self
            .client
            .get_json(
                "/admin/bucket",
                &[("bucket", Some(bucket)), ("stats", Some("true"))],
                &format!("bucket info of {bucket}"),
            )
            .await?;
        Ok(BucketInstance {
            bucket: bucket.to_string(),
            instance_id: stats.id,
            num_shards: stats.num_shards.unwrap_or(0),
            creation_time: stats.creation_time,
            marker: stats.marker.filter(|m| !m.is_empty()),
        })
    }
}
