//! Bucket-index logs: the name of one generation of one bucket shard's
//! log, its pages, info and trims, and the JSON shapes RGW answers them
//! with.

use reqwest::Method;
use serde::Deserialize;

use super::{instance_key, RgwAdmin};
use crate::capture::rgw::admin::AdminError;

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

/// Entries per bilog page; RGW caps a page at 1000 as well.
pub const BILOG_PAGE: usize = 1000;

impl RgwAdmin {
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
