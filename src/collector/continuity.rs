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
//!
//! The numbering is the zone's, not a layout's: the newest object is looked
//! for in the folders of both layouts (`[collector] layout` may have been
//! switched), and objects are compared by window number, which orders them
//! across layouts as the names order them within one.

use super::{Collector, CollectorError, LastWindow, LAST};
use crate::index::{Fence, WriteBatch};
use crate::logs::{Layout, LogObjectName, Manifest};

const INDEX_ID: &str = "collector/index-id";

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
        let Some((newest, name)) = self.newest_log_object().await? else {
            return Ok(last.unwrap_or_default());
        };
        match last {
            Some(last) if name.number <= last.number => Ok(last),
            Some(last) => Err(CollectorError::AnotherIndex {
                target: self.target.describe().to_string(),
                newest,
                ours: last.object,
            }),
            None => {
                let (number, cutoff_ns) = (name.number, name.cutoff_ns);
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
        object: &LogObjectName,
        index_id: &str,
    ) -> Result<(), CollectorError> {
        let path = self.target.path(&object.manifest_name());
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
    /// the target prefix, as listed, and what it says), in either layout.
    async fn newest_log_object(&self) -> Result<Option<(String, LogObjectName)>, CollectorError> {
        let mut newest: Option<(String, LogObjectName)> = None;
        for layout in Layout::ALL {
            if let Some(found) = self.newest_in(layout).await? {
                if newest.as_ref().is_none_or(|n| found.1.number > n.1.number) {
                    newest = Some(found);
                }
            }
        }
        Ok(newest)
    }

    /// The newest log object of this zone in one layout's folder, found by
    /// descending the newest date level (an empty folder costs one LIST).
    async fn newest_in(
        &self,
        layout: Layout,
    ) -> Result<Option<(String, LogObjectName)>, CollectorError> {
        let mut level = self.target.path(&layout.zone_dir(&self.zone));
        for _ in 0..layout.date_levels() {
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
            .filter_map(|o| {
                let name = LogObjectName::from_key(&o.key, prefix).ok()?;
                (name.layout == layout && name.zone == self.zone).then_some((o.key, name))
            })
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(key, name)| match prefix {
                "" => (key, name),
                _ => (key[prefix.len() + 1..].to_string(), name),
            }))
    }
}
