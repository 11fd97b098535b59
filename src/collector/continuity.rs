//! One numbering per target and zone, whatever index writes it.
//!
//! Log object names are `ZONE/YYYY/MM/DD/HH/<number>_<start>_<end>`, and a
//! backup applies them in name order after its checkpoint. An index keeps
//! its window number in `collector/last`, so a new index (a new
//! `index.path`, a move from the embedded index to RADOS, a lost disk)
//! would start again at 1 and name its first windows before what the
//! backup already applied: they would be skipped. So:
//!
//! - an index with no window of its own yet continues after the newest
//!   log object in the target (its number + 1, its cutoff as the floor of
//!   the next one), so its names sort after everything there;
//! - an index whose last window is no longer the newest object there
//!   stops with an error: another index writes to this target and zone,
//!   and two numberings cannot both stay in order;
//! - every manifest names the index that wrote it (`collector/index-id`),
//!   and a window is never uploaded over another index's object.

use super::{manifest_name, Collector, CollectorError, LastWindow, LAST};
use crate::index::{Fence, WriteBatch};
use crate::logs::format::compression_of;
use crate::logs::Manifest;

const INDEX_ID: &str = "collector/index-id";

/// The date levels of a log object's name below the zone.
const DATE_LEVELS: usize = 4;

impl Collector {
    /// This index's identity, made at its first round and kept.
    pub(super) async fn index_id(&self, fence: &Fence) -> Result<String, CollectorError> {
        if let Some(id) = self.index.marker(INDEX_ID).await? {
            return String::from_utf8(id).map_err(|e| self.state_error(INDEX_ID, e));
        }
        use sha2::{Digest, Sha256};
        let seed = format!(
            "{}:{}:{:?}",
            self.holder,
            std::process::id(),
            std::time::SystemTime::now()
        );
        let id = hex::encode(&Sha256::digest(seed.as_bytes())[..12]);
        self.index
            .write(
                WriteBatch::new()
                    .marker(INDEX_ID, id.clone().into_bytes())
                    .fenced(Some(fence.clone())),
            )
            .await?;
        Ok(id)
    }

    /// Checks, before new windows are planned, that this index's numbering
    /// is the target's: adopts the target's newest log object when this
    /// index has written none, refuses when another index wrote after it.
    /// Returns the last window to number from.
    pub(super) async fn continue_numbering(
        &self,
        last: Option<LastWindow>,
        fence: &Fence,
    ) -> Result<LastWindow, CollectorError> {
        let Some(newest) = self.newest_log_object().await? else {
            return Ok(last.unwrap_or_default());
        };
        match last {
            Some(last) if newest <= last.object => Ok(last),
            Some(last) => Err(CollectorError::AnotherIndex {
                target: self.target.describe().to_string(),
                newest,
                ours: last.object,
            }),
            None => {
                let Some((number, cutoff_ns)) = parse_object_name(&newest) else {
                    return Err(CollectorError::State {
                        name: newest,
                        reason: "the target's newest log object has no window number".into(),
                    });
                };
                tracing::info!(after = %newest, "collector: a new index; numbering its windows after the target's newest log object");
                let adopted = LastWindow {
                    number,
                    cutoff_ns,
                    object: newest,
                    count: 0,
                };
                let bytes = serde_json::to_vec(&adopted).map_err(|e| self.state_error(LAST, e))?;
                self.index
                    .write(
                        WriteBatch::new()
                            .marker(LAST, bytes)
                            .fenced(Some(fence.clone())),
                    )
                    .await?;
                Ok(adopted)
            }
        }
    }

    /// Refuses to upload a window over an object another index wrote.
    pub(super) async fn check_not_foreign(
        &self,
        object: &str,
        index_id: &str,
    ) -> Result<(), CollectorError> {
        let path = self.target.path(&manifest_name(object));
        let Some(bytes) = self.target.read_key(&path).await? else {
            return Ok(());
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| self.state_error(&path, e))?;
        if !manifest.index.is_empty() && manifest.index != index_id {
            return Err(CollectorError::ForeignObject {
                target: self.target.describe().to_string(),
                object: object.to_string(),
                index: manifest.index,
            });
        }
        Ok(())
    }

    /// The newest log object of this zone in the target (its name below
    /// the target prefix), found by descending the newest date level.
    async fn newest_log_object(&self) -> Result<Option<String>, CollectorError> {
        let mut level = self.target.path(&self.zone);
        for _ in 0..DATE_LEVELS {
            match self
                .target
                .list_level(&level)
                .await?
                .prefixes
                .into_iter()
                .max()
            {
                Some(newest) => level = newest,
                None => return Ok(None),
            }
        }
        let listing = self.target.list_level(&level).await?;
        let prefix = self.target.prefix();
        Ok(listing
            .objects
            .into_iter()
            .map(|o| o.key)
            .filter(|n| compression_of(n).is_some())
            .max()
            .map(
                |n| match n.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) {
                    Some(rest) if !prefix.is_empty() => rest.to_string(),
                    _ => n,
                },
            ))
    }
}
/// The window number and cutoff of a log object name
/// (`…/<number>_<start>_<end>.jsonl…`).
fn parse_object_name(name: &str) -> Option<(u64, u64)> {
    let file = name.rsplit('/').next()?;
    let mut parts = file.split('_');
    let number = parts.next()?.parse().ok()?;
    let _start = parts.next()?;
    let end = parts.next()?.split(".jsonl").next()?;
    let cutoff = chrono::NaiveDateTime::parse_from_str(end, "%Y%m%dT%H%M%S%.fZ")
        .ok()?
        .and_utc()
        .timestamp_nanos_opt()?;
    Some((number, u64::try_from(cutoff).ok()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_log_object_name_gives_its_number_and_cutoff() {
        let name = "z/2026/12/02/07/000000000002_20251124T155950.000000200Z_20261202T070841.366187854Z.jsonl.zst";
        let (number, cutoff) = super::parse_object_name(name).expect("parsed");
        assert_eq!(number, 2);
        assert_eq!(cutoff % 1_000_000_000, 366_187_854);
        assert!(super::parse_object_name("z/2026/notes.txt").is_none());
    }
}
