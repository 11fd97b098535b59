//! Typed calls of RGW's admin log and metadata API — the calls a multisite
//! sync peer makes — with the JSON shapes RGW (16.2) answers.

use reqwest::Method;
use serde::Deserialize;

use super::admin::{AdminError, SignedClient};

/// Read access to a zone's data log, bucket-index logs and bucket metadata.
#[derive(Clone)]
pub struct RgwAdmin {
    client: SignedClient,
}

/// One data-log entry: a bucket shard that changed.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct DatalogEntry {
    pub entity_type: String,
    /// `bucket:instance_id[:shard]`.
    pub key: String,
    #[serde(default)]
    pub timestamp: String,
}

impl DatalogEntry {
    /// Splits the key into (bucket, instance id, shard); an unsharded
    /// bucket has no shard part.
    pub fn bucket_shard(&self) -> Option<(&str, &str, Option<u32>)> {
        let mut parts = self.key.splitn(3, ':');
        let bucket = parts.next().filter(|s| !s.is_empty())?;
        let instance = parts.next().filter(|s| !s.is_empty())?;
        let shard = match parts.next() {
            Some(s) => Some(s.parse().ok()?),
            None => None,
        };
        Some((bucket, instance, shard))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatalogPage {
    #[serde(default)]
    pub marker: String,
    #[serde(default)]
    pub truncated: bool,
    #[serde(default)]
    pub entries: Vec<DatalogEntry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatalogInfo {
    #[serde(default)]
    pub marker: String,
    #[serde(default)]
    pub last_update: String,
}

/// One bucket-index log entry (`rgw_bi_log_entry`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct BilogEntry {
    /// The entry's marker, e.g. `00000000001.2.6` (`id` in RGW's JSON).
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub op_id: String,
    pub op: String,
    pub object: String,
    #[serde(default)]
    pub instance: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub versioned: bool,
    #[serde(default)]
    pub ver: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BilogInfo {
    #[serde(default)]
    pub bucket_ver: String,
    #[serde(default)]
    pub master_ver: String,
    /// Per shard `N#marker`, comma separated, or a single marker for an
    /// unsharded bucket or when one shard was asked.
    #[serde(default)]
    pub max_marker: String,
    /// RGW 16 sends this as the string `"false"`/`"true"`.
    #[serde(default, deserialize_with = "bool_or_string")]
    pub syncstopped: bool,
}

fn bool_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    match Flag::deserialize(d)? {
        Flag::Bool(b) => Ok(b),
        Flag::Text(t) => t
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("expected true or false, got {t:?}"))),
    }
}

/// Which bucket instance currently backs a bucket name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInstance {
    pub bucket: String,
    pub instance_id: String,
    pub num_shards: u32,
}

#[derive(Deserialize)]
struct DatalogCount {
    num_objects: u32,
}

#[derive(Deserialize)]
struct BucketStats {
    id: String,
    #[serde(default)]
    num_shards: Option<u32>,
}

/// Entries per bilog page; RGW caps a page at 1000 as well.
pub const BILOG_PAGE: usize = 1000;

impl RgwAdmin {
    pub fn new(client: SignedClient) -> Self {
        RgwAdmin { client }
    }

    pub fn client(&self) -> &SignedClient {
        &self.client
    }

    /// The number of data-log shards (128 by default).
    pub async fn datalog_shard_count(&self) -> Result<u32, AdminError> {
        let count: DatalogCount = self
            .client
            .get_json("/admin/log", &[("type", Some("data"))], "data log size")
            .await?;
        Ok(count.num_objects)
    }

    /// One page of a data-log shard after `marker` (from the start when
    /// `None`).
    pub async fn datalog_list(
        &self,
        shard: u32,
        marker: Option<&str>,
    ) -> Result<DatalogPage, AdminError> {
        let id = shard.to_string();
        let mut query = vec![("type", Some("data")), ("id", Some(id.as_str()))];
        if let Some(m) = marker.filter(|m| !m.is_empty()) {
            query.push(("marker", Some(m)));
        }
        self.client
            .get_json("/admin/log", &query, &format!("data log shard {shard}"))
            .await
    }

    pub async fn datalog_info(&self, shard: u32) -> Result<DatalogInfo, AdminError> {
        let id = shard.to_string();
        self.client
            .get_json(
                "/admin/log",
                &[
                    ("type", Some("data")),
                    ("id", Some(id.as_str())),
                    ("info", None),
                ],
                &format!("data log shard {shard} info"),
            )
            .await
    }

    /// One page (at most [`BILOG_PAGE`] entries) of a bucket shard's index
    /// log after `marker`. A page shorter than the limit is the last one.
    pub async fn bilog_list(
        &self,
        bucket: &str,
        instance_id: &str,
        shard: Option<u32>,
        marker: Option<&str>,
    ) -> Result<Vec<BilogEntry>, AdminError> {
        self.bilog_list_max(bucket, instance_id, shard, marker, BILOG_PAGE)
            .await
    }

    /// The oldest entry still held in a bucket shard's index log: RGW
    /// trims a log only from its start, so an entry at or before a
    /// position proves that nothing after the position was trimmed.
    pub async fn bilog_oldest(
        &self,
        bucket: &str,
        instance_id: &str,
        shard: Option<u32>,
    ) -> Result<Option<BilogEntry>, AdminError> {
        Ok(self
            .bilog_list_max(bucket, instance_id, shard, None, 1)
            .await?
            .into_iter()
            .next())
    }

    async fn bilog_list_max(
        &self,
        bucket: &str,
        instance_id: &str,
        shard: Option<u32>,
        marker: Option<&str>,
        max_entries: usize,
    ) -> Result<Vec<BilogEntry>, AdminError> {
        let instance = instance_key(bucket, instance_id, shard);
        let max = max_entries.to_string();
        let mut query = vec![
            ("type", Some("bucket-index")),
            ("bucket-instance", Some(instance.as_str())),
            ("max-entries", Some(max.as_str())),
        ];
        if let Some(m) = marker.filter(|m| !m.is_empty()) {
            query.push(("marker", Some(m)));
        }
        self.client
            .get_json(
                "/admin/log",
                &query,
                &format!("bucket-index log of {instance}"),
            )
            .await
    }

    pub async fn bilog_info(
        &self,
        bucket: &str,
        instance_id: &str,
        shard: Option<u32>,
    ) -> Result<BilogInfo, AdminError> {
        let instance = instance_key(bucket, instance_id, shard);
        self.client
            .get_json(
                "/admin/log",
                &[
                    ("type", Some("bucket-index")),
                    ("bucket-instance", Some(instance.as_str())),
                    ("info", None),
                ],
                &format!("bucket-index log info of {instance}"),
            )
            .await
    }

    /// Trims a data-log shard up to and including `end_marker` (needs the
    /// `datalog=write` cap).
    pub async fn datalog_trim(&self, shard: u32, end_marker: &str) -> Result<(), AdminError> {
        let id = shard.to_string();
        let url = self.client.url(
            "/admin/log",
            &[
                ("type", Some("data")),
                ("id", Some(id.as_str())),
                ("end-marker", Some(end_marker)),
            ],
        );
        self.client
            .send(
                Method::DELETE,
                url,
                Vec::new(),
                &format!("data log trim of shard {shard}"),
            )
            .await
            .map(|_| ())
    }

    /// Trims a bucket shard's index log up to and including `end_marker`
    /// (needs the `bilog=write` cap).
    pub async fn bilog_trim(
        &self,
        bucket: &str,
        instance_id: &str,
        shard: Option<u32>,
        end_marker: &str,
    ) -> Result<(), AdminError> {
        let instance = instance_key(bucket, instance_id, shard);
        let url = self.client.url(
            "/admin/log",
            &[
                ("type", Some("bucket-index")),
                ("bucket-instance", Some(instance.as_str())),
                ("end-marker", Some(end_marker)),
            ],
        );
        self.client
            .send(
                Method::DELETE,
                url,
                Vec::new(),
                &format!("bucket-index log trim of {instance}"),
            )
            .await
            .map(|_| ())
    }

    /// The names of every bucket of the zone.
    pub async fn list_buckets(&self) -> Result<Vec<String>, AdminError> {
        self.client
            .get_json("/admin/metadata/bucket", &[], "metadata bucket list")
            .await
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
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datalog_keys_split_into_bucket_shards() {
        let e = |key: &str| DatalogEntry {
            entity_type: "bucket".into(),
            key: key.into(),
            timestamp: String::new(),
        };
        assert_eq!(
            e("photos:abc.123.4:7").bucket_shard(),
            Some(("photos", "abc.123.4", Some(7)))
        );
        assert_eq!(
            e("photos:abc.123.4").bucket_shard(),
            Some(("photos", "abc.123.4", None))
        );
        assert_eq!(e("photos").bucket_shard(), None);
        assert_eq!(e("photos:abc:x").bucket_shard(), None);
    }

    #[test]
    fn bilog_entries_decode_as_rgw_sends_them() {
        let json = r#"[{"op_id":"4#00000000001.2.6","op_tag":"t","op":"write","object":"a","instance":"","state":"complete","index_ver":1,"timestamp":"2026-11-25T10:00:00.123Z","ver":{"pool":2,"epoch":1},"bilog_flags":0,"versioned":false,"owner":"","owner_display_name":"","zones_trace":[],"id":"00000000001.2.6"}]"#;
        let entries: Vec<BilogEntry> = serde_json::from_str(json).unwrap();
        assert_eq!(entries[0].op, "write");
        assert_eq!(entries[0].id, "00000000001.2.6");
    }
}
