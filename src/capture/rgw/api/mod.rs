//! Typed calls of RGW's admin log and metadata API — the calls a multisite
//! sync peer makes — with the JSON shapes RGW (16.2) answers.

use reqwest::Method;
use serde::Deserialize;

use super::admin::{AdminError, SignedClient};

/// Read access to a zone's data log, bucket-index logs and bucket metadata.
#[derive(Clone)]
pub struct RgwAdmin {
    client: SignedClient,
    s3: crate::s3::S3,
}

/// One data-log entry: a bucket shard that changed.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct DatalogEntry {
    pub entity_type: String,
    /// `bucket:instance_id[:shard]`.
    pub key: String,
    #[serde(default)]
    pub timestamp: String,
    /// The bilog generation that changed (Reef and later; Pacific: 0).
    #[serde(default)]
    pub gen: u64,
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

/// A data-log page as RGW answers `extra-info=true`: each entry with its
/// own marker (`log_id`). Tentacle's FIFO data log leaves the page's
/// `marker` empty on the last page, so without the entries' own markers a
/// reader could never move its position past the last page.
#[derive(Deserialize)]
struct RawDatalogPage {
    #[serde(default)]
    marker: String,
    #[serde(default)]
    truncated: bool,
    #[serde(default)]
    entries: Vec<RawDatalogEntry>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawDatalogEntry {
    WithMarker { log_id: String, entry: DatalogEntry },
    Plain(DatalogEntry),
}

impl From<RawDatalogPage> for DatalogPage {
    fn from(raw: RawDatalogPage) -> Self {
        let mut last_id = None;
        let entries = raw
            .entries
            .into_iter()
            .map(|e| match e {
                RawDatalogEntry::WithMarker { log_id, entry } => {
                    last_id = Some(log_id).filter(|id| !id.is_empty());
                    entry
                }
                RawDatalogEntry::Plain(entry) => {
                    last_id = None;
                    entry
                }
            })
            .collect();
        let marker = match (raw.marker.is_empty(), last_id) {
            (true, Some(id)) => id,
            _ => raw.marker,
        };
        DatalogPage {
            marker,
            truncated: raw.truncated,
            entries,
        }
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
    /// Who made a delete marker (`link_olh_del`); empty on other ops.
    #[serde(default)]
    pub owner: String,
}

/// One generation of one bucket-index shard's log. Pacific has only
/// generation 0; Reef and later start a new generation, with its own shard
/// count and numbering, at each reshard, and keep the bucket instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketShard {
    pub bucket: String,
    pub instance: String,
    pub shard: Option<u32>,
    pub gen: u64,
}

impl BucketShard {
    /// Generation 0: what Pacific has, and what a new bucket starts with.
    pub fn first(bucket: &str, instance: &str, shard: Option<u32>) -> Self {
        BucketShard {
            bucket: bucket.to_string(),
            instance: instance.to_string(),
            shard,
            gen: 0,
        }
    }

    /// `bucket:instance[:shard]`, as the admin API names the shard.
    pub fn name(&self) -> String {
        instance_key(&self.bucket, &self.instance, self.shard)
    }

    /// The name plus `@gen` after generation 0: numbering restarts in each
    /// generation, so a marker alone does not say where it belongs.
    pub fn log_name(&self) -> String {
        match self.gen {
            0 => self.name(),
            gen => format!("{}@{gen}", self.name()),
        }
    }
}

/// `format-ver=2` answers an object; Pacific answers the bare entries.
#[derive(Deserialize)]
#[serde(untagged)]
enum BilogListing {
    // First: serde would also read a JSON array as a struct's fields.
    Entries(Vec<BilogEntry>),
    Page(BilogPage),
}

/// One page of a bucket shard's index log.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BilogPage {
    #[serde(default)]
    pub entries: Vec<BilogEntry>,
    #[serde(default)]
    pub truncated: bool,
    /// Set on the last page of a generation that a reshard ended: where
    /// the bucket's log continues.
    #[serde(default)]
    pub next_log: Option<NextLog>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct NextLog {
    pub generation: u64,
    pub num_shards: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct LogGeneration {
    pub gen: u64,
    pub num_shards: u32,
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
    /// Reef and later: the generations RGW still holds (Pacific: none).
    #[serde(default)]
    pub oldest_gen: u64,
    #[serde(default)]
    pub latest_gen: u64,
    #[serde(default)]
    pub generations: Vec<LogGeneration>,
}

impl BilogInfo {
    /// `max_marker` as a position in the one log that was asked for. Reef
    /// and later write it as `0#<marker>` for an unsharded bucket, in the
    /// form of a whole bucket's per-shard list, which `marker=` does not
    /// take.
    pub fn position(&self) -> &str {
        match self.max_marker.split_once('#') {
            Some((shard, marker))
                if !shard.is_empty()
                    && shard.bytes().all(|b| b.is_ascii_digit())
                    && !marker.contains(',') =>
            {
                marker
            }
            _ => &self.max_marker,
        }
    }
}

impl BilogInfo {
    /// The position of each of a bucket's `num_shards` shards, in shard
    /// order, from the info of the whole bucket (asked without a shard):
    /// RGW joins its shards' newest markers as `0#m0,1#m1,…`. `None`
    /// unless that names every shard exactly once (a reshard in between
    /// changes the count), so the caller asks shard by shard instead.
    pub fn shard_positions(&self, num_shards: u32) -> Option<Vec<(Option<u32>, String)>> {
        if num_shards == 0 {
            return Some(vec![(None, self.position().to_string())]);
        }
        let mut positions: Vec<Option<String>> = vec![None; num_shards as usize];
        for part in self.max_marker.split(',') {
            let (shard, marker) = part.split_once('#')?;
            let slot = positions.get_mut(shard.parse::<usize>().ok()?)?;
            if slot.replace(marker.to_string()).is_some() {
                return None;
            }
        }
        positions
            .into_iter()
            .zip(0..)
            .map(|(marker, shard)| Some((Some(shard), marker?)))
            .collect()
    }
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
struct DatalogCount {
    num_objects: u32,
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

/// Entries per bilog page; RGW caps a page at 1000 as well.
pub const BILOG_PAGE: usize = 1000;

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
        let raw = self
            .datalog_page(shard, marker, None, &format!("data log shard {shard}"))
            .await?;
        Ok(raw.into())
    }

    /// The marker of the oldest entry a data-log shard still holds.
    pub async fn datalog_oldest(&self, shard: u32) -> Result<Option<String>, AdminError> {
        self.datalog_first_after(shard, None).await
    }

    /// The marker of the first entry a data-log shard holds after
    /// `marker` (from its start when `None`).
    pub async fn datalog_first_after(
        &self,
        shard: u32,
        marker: Option<&str>,
    ) -> Result<Option<String>, AdminError> {
        let raw = self
            .datalog_page(
                shard,
                marker,
                Some(1),
                &format!("data log shard {shard} first entry"),
            )
            .await?;
        // The entry's own marker: the page's is the next page's start on
        // Pacific and empty on Tentacle when the shard holds one entry.
        Ok(match raw.entries.into_iter().next() {
            Some(RawDatalogEntry::WithMarker { log_id, .. }) if !log_id.is_empty() => Some(log_id),
            Some(_) if !raw.marker.is_empty() => Some(raw.marker),
            _ => None,
        })
    }

    async fn datalog_page(
        &self,
        shard: u32,
        marker: Option<&str>,
        max_entries: Option<u32>,
        what: &str,
    ) -> Result<RawDatalogPage, AdminError> {
        let id = shard.to_string();
        let max = max_entries.map(|n| n.to_string());
        let mut query = vec![
            ("type", Some("data")),
            ("id", Some(id.as_str())),
            ("extra-info", Some("true")),
        ];
        if let Some(m) = marker.filter(|m| !m.is_empty()) {
            query.push(("marker", Some(m)));
        }
        if let Some(max) = max.as_deref() {
            query.push(("max-entries", Some(max)));
        }
        self.client.get_json("/admin/log", &query, what).await
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

    /// One page (at most [`BILOG_PAGE`] entries) of one generation of a
    /// bucket shard's index log, after `marker`.
    pub async fn bilog_list(
        &self,
        bs: &BucketShard,
        marker: Option<&str>,
    ) -> Result<BilogPage, AdminError> {
        self.bilog_list_max(bs, marker, BILOG_PAGE).await
    }

    /// The oldest entry still held in a bucket shard's index log: RGW
    /// trims a log only from its start, so an entry at or before a
    /// position proves that nothing after the position was trimmed.
    pub async fn bilog_oldest(&self, bs: &BucketShard) -> Result<Option<BilogEntry>, AdminError> {
        Ok(self
            .bilog_list_max(bs, None, 1)
            .await?
            .entries
            .into_iter()
            .next())
    }

    async fn bilog_list_max(
        &self,
        bs: &BucketShard,
        marker: Option<&str>,
        max_entries: usize,
    ) -> Result<BilogPage, AdminError> {
        let instance = bs.name();
        let max = max_entries.to_string();
        let gen = bs.gen.to_string();
        // Without `generation`, Reef and later list the newest generation;
        // Pacific knows neither parameter and ignores both.
        let mut query = vec![
            ("type", Some("bucket-index")),
            ("bucket-instance", Some(instance.as_str())),
            ("max-entries", Some(max.as_str())),
            ("format-ver", Some("2")),
            ("generation", Some(gen.as_str())),
        ];
        if let Some(m) = marker.filter(|m| !m.is_empty()) {
            query.push(("marker", Some(m)));
        }
        let what = format!("bucket-index log of {}", bs.log_name());
        let listed: BilogListing = self.client.get_json("/admin/log", &query, &what).await?;
        Ok(match listed {
            BilogListing::Page(page) => page,
            BilogListing::Entries(entries) => BilogPage {
                truncated: entries.len() >= max_entries,
                entries,
                next_log: None,
            },
        })
    }

    pub async fn bilog_info(&self, bs: &BucketShard) -> Result<BilogInfo, AdminError> {
        let instance = bs.name();
        let gen = bs.gen.to_string();
        self.client
            .get_json(
                "/admin/log",
                &[
                    ("type", Some("bucket-index")),
                    ("bucket-instance", Some(instance.as_str())),
                    ("generation", Some(gen.as_str())),
                    ("info", None),
                ],
                &format!("bucket-index log info of {}", bs.log_name()),
            )
            .await
    }

    /// The bucket-index log info of a whole bucket instance: the newest
    /// generation and, in `max_marker`, every shard's newest marker, so a
    /// first start positions a bucket in one request, not one per shard.
    pub async fn bilog_info_of_bucket(
        &self,
        bucket: &str,
        instance_id: &str,
    ) -> Result<BilogInfo, AdminError> {
        let instance = instance_key(bucket, instance_id, None);
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

    /// Trims one generation of a bucket shard's index log up to and
    /// including `end_marker` (needs the `bilog=write` cap).
    pub async fn bilog_trim(&self, bs: &BucketShard, end_marker: &str) -> Result<(), AdminError> {
        let instance = bs.name();
        let gen = bs.gen.to_string();
        let url = self.client.url(
            "/admin/log",
            &[
                ("type", Some("bucket-index")),
                ("bucket-instance", Some(instance.as_str())),
                ("generation", Some(gen.as_str())),
                ("end-marker", Some(end_marker)),
            ],
        );
        self.client
            .send(
                Method::DELETE,
                url,
                Vec::new(),
                &format!("bucket-index log trim of {}", bs.log_name()),
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

    fn info(max_marker: &str) -> BilogInfo {
        BilogInfo {
            bucket_ver: String::new(),
            master_ver: String::new(),
            max_marker: max_marker.to_string(),
            syncstopped: false,
            oldest_gen: 0,
            latest_gen: 0,
            generations: Vec::new(),
        }
    }

    #[test]
    fn a_whole_bucket_max_marker_gives_each_shard_its_position_or_nothing() {
        let positions = info("1#00000000002.9.5,0#,2#00000000007.3.6").shard_positions(3);
        assert_eq!(
            positions,
            Some(vec![
                (Some(0), String::new()),
                (Some(1), "00000000002.9.5".to_string()),
                (Some(2), "00000000007.3.6".to_string()),
            ])
        );
        // Unsharded: one log, with or without RGW's `0#`.
        for m in ["0#00000000004.1.5", "00000000004.1.5"] {
            assert_eq!(
                info(m).shard_positions(0),
                Some(vec![(None, "00000000004.1.5".to_string())])
            );
        }
        // A shard missing, named twice, past the count, or no list at all:
        // asked shard by shard instead.
        for (m, n) in [
            ("0#a,1#b", 3),
            ("0#a,0#b,1#c", 2),
            ("0#a,1#b,2#c", 2),
            ("", 2),
            ("x#a,1#b", 2),
            ("00000000004.1.5", 1),
        ] {
            assert_eq!(info(m).shard_positions(n), None, "{m:?} over {n}");
        }
    }

    #[test]
    fn a_last_data_log_page_without_a_marker_ends_at_its_last_entry() {
        // Tentacle 20.2.4, `extra-info=true`, the shard's last page.
        let tentacle = r#"{"marker":"","truncated":false,"entries":[
            {"log_id":"00000000000000000000:00000000000000000512","log_timestamp":"2026-12-02T14:00:00.0Z",
             "entry":{"entity_type":"bucket","key":"b:i.1:0","timestamp":"2026-12-02T14:00:00.0Z","gen":0}},
            {"log_id":"00000000000000000000:00000000000000000900","log_timestamp":"2026-12-02T14:00:01.0Z",
             "entry":{"entity_type":"bucket","key":"b:i.1:1","timestamp":"2026-12-02T14:00:01.0Z","gen":0}}]}"#;
        let page: DatalogPage = serde_json::from_str::<RawDatalogPage>(tentacle)
            .unwrap()
            .into();
        assert_eq!(page.marker, "00000000000000000000:00000000000000000900");
        assert_eq!(page.entries[1].key, "b:i.1:1");
        // A release that ignores `extra-info` and names the page's marker.
        let plain = r#"{"marker":"1_1700000000.1_5.1","truncated":false,"entries":[
            {"entity_type":"bucket","key":"b:i.1:0","timestamp":"2023-11-14T22:13:20.0Z"}]}"#;
        let page: DatalogPage = serde_json::from_str::<RawDatalogPage>(plain)
            .unwrap()
            .into();
        assert_eq!(page.marker, "1_1700000000.1_5.1");
        assert_eq!(page.entries.len(), 1);
    }

    #[test]
    fn datalog_keys_split_into_bucket_shards() {
        let e = |key: &str| DatalogEntry {
            entity_type: "bucket".into(),
            key: key.into(),
            timestamp: String::new(),
            gen: 0,
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

    #[test]
    fn bilog_pages_decode_in_both_formats() {
        let v2 = r#"{"entries":[],"truncated":false,"next_log":{"generation":1,"num_shards":7}}"#;
        match serde_json::from_str::<BilogListing>(v2).unwrap() {
            BilogListing::Page(p) => assert_eq!(
                p.next_log,
                Some(NextLog {
                    generation: 1,
                    num_shards: 7
                })
            ),
            BilogListing::Entries(_) => panic!("a v2 page"),
        }
        assert!(matches!(
            serde_json::from_str::<BilogListing>("[]").unwrap(),
            BilogListing::Entries(e) if e.is_empty()
        ));
        let info = r#"{"bucket_ver":"1#2","master_ver":"1#0","max_marker":"","syncstopped":false,"oldest_gen":0,"latest_gen":1,"generations":[{"gen":0,"num_shards":11},{"gen":1,"num_shards":7}]}"#;
        let info: BilogInfo = serde_json::from_str(info).unwrap();
        assert_eq!(info.latest_gen, 1);
        assert_eq!(info.position(), "");
        let unsharded: BilogInfo =
            serde_json::from_str(r#"{"max_marker":"0#00000000014.388.6"}"#).unwrap();
        assert_eq!(unsharded.position(), "00000000014.388.6");
        let plain: BilogInfo =
            serde_json::from_str(r#"{"max_marker":"00000000001.4133.6"}"#).unwrap();
        assert_eq!(plain.position(), "00000000001.4133.6");
        assert_eq!(info.generations[1].num_shards, 7);
    }
}
