//! Tails a zone's data log and bucket-index logs into the index, like a
//! multisite sync peer.
//!
//! Positions live in the index as source markers, committed in the same
//! atomic write as the records they cover:
//! - `rgw/bilog/<bucket>:<instance>[:<shard>]`: the last bilog entry of that
//!   bucket shard whose records are in the index;
//! - `rgw/datalog/<NNN>`: the data-log position up to which every listed
//!   bucket shard has been drained (written only after the drains);
//! - `rgw/initialized`: the starting positions were recorded.
//!
//! So a crash anywhere replays at most a data-log page, whose bucket shards
//! then resume from their own bilog markers: nothing is skipped and nothing
//! is indexed twice. One bucket shard is only ever drained by one task at a
//! time, because a record's marker check and write must not interleave with
//! another drain of the same shard.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::admin::AdminError;
use super::api::RgwAdmin;
use super::probe::{BilogProbe, DatalogProbe};
use super::probing::SafetyNet;
use crate::config::RgwSourceConfig;
use crate::filter::Filter;
use crate::index::{ChangeIndex, IndexError};

pub(super) const INITIALIZED: &str = "rgw/initialized";
pub(super) const BILOG_PREFIX: &str = "rgw/bilog/";
pub(super) const DATALOG_PREFIX: &str = "rgw/datalog/";
/// `rgw/bilog-trimmed/<bucket>:<instance>[:<shard>]`: the position up to
/// which zonelog itself trimmed that bilog (`trim_source`), so the log
/// starting right after it is known not to be a trim by someone else.
const TRIMMED_PREFIX: &str = "rgw/bilog-trimmed/";
/// The position of a generation of a bucket shard whose log a reshard
/// ended and that we read to its end: nothing more will come from it.
/// Never an RGW marker, which is digits and dots.
pub(super) const FINISHED: &str = "finished";

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Rgw(#[from] AdminError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("stored marker {name:?} is not UTF-8")]
    BadMarker { name: String },
}

impl CaptureError {
    pub fn is_transient(&self) -> bool {
        match self {
            CaptureError::Rgw(e) => e.is_transient(),
            _ => false,
        }
    }
}

pub use super::api::BucketShard;
pub use super::counters::{CaptureCounters, LagHistogram, PollReport};
pub use super::probing::SAFETY_NET_INTERVAL;

/// The index marker holding our position in one generation of one bucket
/// shard's log.
pub(super) fn position_name(bs: &BucketShard) -> String {
    format!("{BILOG_PREFIX}{}", bs.log_name())
}

pub(super) fn trimmed_marker_name(bs: &BucketShard) -> String {
    format!("{TRIMMED_PREFIX}{}", bs.log_name())
}

pub(super) fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// `bucket:instance[:shard][@gen]` back into its parts (bucket names and
/// instance ids contain neither `:` nor `@`).
pub(super) fn parse_bucket_shard(name: &str) -> Option<BucketShard> {
    let (name, gen) = match name.split_once('@') {
        Some((name, gen)) => (name, gen.parse().ok().filter(|g| *g > 0)?),
        None => (name, 0),
    };
    let mut parts = name.split(':');
    let bucket = parts.next().filter(|b| !b.is_empty())?.to_string();
    let instance = parts.next().filter(|i| !i.is_empty())?.to_string();
    let shard = match parts.next() {
        Some(s) => Some(s.parse().ok()?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(BucketShard {
        bucket,
        instance,
        shard,
        gen,
    })
}

pub(super) fn datalog_marker_name(shard: u32) -> String {
    format!("{DATALOG_PREFIX}{shard:03}")
}

pub struct RgwCapture {
    pub(super) admin: RgwAdmin,
    pub(super) index: Arc<dyn ChangeIndex>,
    pub(super) filter: Filter,
    pub(super) config: RgwSourceConfig,
    pub(super) active: Mutex<HashMap<BucketShard, Instant>>,
    pub(super) caught_up: AtomicBool,
    pub(super) last_trim: Mutex<Option<Instant>>,
    pub(super) last_bucket_check: Mutex<Option<Instant>>,
    pub(super) last_datalog_check: Mutex<Option<Instant>>,
    /// Held while a replaced or removed instance is settled.
    pub(super) settling: tokio::sync::Mutex<()>,
    pub counters: Arc<CaptureCounters>,
    /// Tells which data-log shards changed, so that only those are read.
    pub(super) probe: Option<Arc<DatalogProbe>>,
    /// Tells which recently active bucket shards changed, likewise.
    pub(super) index_probe: Option<Arc<BilogProbe>>,
    /// The data log's shard count and when it was asked for: it changes
    /// only with RGW's configuration, so it is asked every `check_interval`.
    pub(super) shard_count: Mutex<Option<(u32, Instant)>>,
    /// The probe's safety net: one more shard read on schedule, in turn.
    pub(super) safety_net: Mutex<SafetyNet>,
    /// With a probe: the data-log shards it reported changed since the last
    /// trim check; `None` until a sweep has seen them all (check all).
    pub(super) changed_since_trim_check: Mutex<Option<BTreeSet<u32>>>,
    /// A data-log entry was found in another shard than `datalog_shard_of`
    /// gives: catch-ups after a trim then drain every bucket shard.
    pub(super) shard_map_wrong: AtomicBool,
    /// Each bucket instance's creation time (ns), the first part of a
    /// record's `sequence`; asked once per instance.
    pub(super) instance_created: Mutex<HashMap<String, u64>>,
}

impl RgwCapture {
    pub fn new(
        admin: RgwAdmin,
        index: Arc<dyn ChangeIndex>,
        filter: Filter,
        config: RgwSourceConfig,
    ) -> Self {
        RgwCapture {
            admin,
            index,
            filter,
            config,
            active: Mutex::new(HashMap::new()),
            caught_up: AtomicBool::new(false),
            last_trim: Mutex::new(None),
            last_bucket_check: Mutex::new(None),
            last_datalog_check: Mutex::new(None),
            settling: tokio::sync::Mutex::new(()),
            counters: Arc::new(CaptureCounters::default()),
            probe: None,
            index_probe: None,
            shard_count: Mutex::new(None),
            safety_net: Mutex::new(SafetyNet::default()),
            changed_since_trim_check: Mutex::new(None),
            shard_map_wrong: AtomicBool::new(false),
            instance_created: Mutex::new(HashMap::new()),
        }
    }

    /// Reads only the data-log shards `probe` says changed, plus one shard
    /// in turn every [`SAFETY_NET_INTERVAL`] in case the probe is wrong.
    pub fn with_probe(mut self, probe: Arc<DatalogProbe>) -> Self {
        self.probe = Some(probe);
        self
    }

    /// Both probes, fresh from `source`.
    pub fn with_probes(self, source: &super::probe::ProbeSource) -> Self {
        let (datalog, index) = source.probes();
        self.with_probe(datalog).with_index_probe(index)
    }

    /// Drains only the recently active bucket shards whose index object
    /// `probe` says changed.
    pub fn with_index_probe(mut self, probe: Arc<BilogProbe>) -> Self {
        self.index_probe = Some(probe);
        self
    }

    pub(super) async fn stored_marker(&self, name: &str) -> Result<Option<String>, CaptureError> {
        match self.index.marker(name).await? {
            None => Ok(None),
            Some(bytes) => {
                String::from_utf8(bytes)
                    .map(Some)
                    .map_err(|_| CaptureError::BadMarker {
                        name: name.to_string(),
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::drain::{follows_directly, still_holds};
    use super::*;

    #[test]
    fn marker_names() {
        let bs = BucketShard::first("b", "id.1", Some(3));
        assert_eq!(position_name(&bs), "rgw/bilog/b:id.1:3");
        assert_eq!(parse_bucket_shard("b:id.1:3"), Some(bs.clone()));
        let next = BucketShard { gen: 2, ..bs };
        assert_eq!(position_name(&next), "rgw/bilog/b:id.1:3@2");
        assert_eq!(parse_bucket_shard("b:id.1:3@2"), Some(next));
        assert_eq!(parse_bucket_shard("b:id.1:3@0"), None);
        assert_eq!(parse_bucket_shard("b:id.1:3@x"), None);
        assert_eq!(parse_bucket_shard("b:id.1").map(|b| b.shard), Some(None));
        assert_eq!(parse_bucket_shard("b"), None);
        assert!(follows_directly("00000000002.15.6", "00000000003.17.6"));
        assert!(!follows_directly("00000000002.15.6", "00000000009.30.6"));
        assert!(!follows_directly("junk", "00000000004.5.6"));
        assert!(still_holds("00000000009.30.6", Some("00000000002.15.6")));
        assert!(still_holds("00000000009.30.6", Some("00000000009.30.6")));
        assert!(!still_holds("00000000009.30.6", Some("00000000011.31.6")));
        assert!(!still_holds("00000000009.30.6", None));
        let h = LagHistogram::default();
        for s in [0.005, 0.02, 0.02, 0.3, 7.0] {
            h.observe(s);
        }
        assert_eq!(h.quantile_bound(0.5), Some(0.025));
        assert_eq!(h.quantile_bound(0.99), Some(10.0));
        assert_eq!(parse_bucket_shard("b:i:x"), None);
        assert_eq!(datalog_marker_name(7), "rgw/datalog/007");
    }
}
