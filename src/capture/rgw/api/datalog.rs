//! The data log: its shards' pages, positions and trims, and the JSON
//! shapes RGW answers them with.

use reqwest::Method;
use serde::Deserialize;

use super::RgwAdmin;
use crate::capture::rgw::admin::AdminError;

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

#[derive(Deserialize)]
struct DatalogCount {
    num_objects: u32,
}

impl RgwAdmin {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
