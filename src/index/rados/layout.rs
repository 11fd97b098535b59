//! Object names, omap keys, the stored layout and the small encodings of
//! the index objects (module docs, "Objects").

use serde::{Deserialize, Serialize};

use super::Inner;
use crate::error::BackendError;
use crate::index::key::ENTRY_ID_TEXT_LEN;
use crate::index::{EntryId, IndexError, IndexLayout, IndexMode};
use crate::rados::WriteOp;

const FORMAT: u32 = 1;
const LAYOUT_KEY: &str = "layout";
pub(super) const SESSION_KEY: &str = "session";
pub(super) const FLOOR_KEY: &str = "floor";
pub(super) const REV_KEY: &str = "rev";
/// Latest mode: the window `freeze` holds (see `ChangeIndex::freeze`).
pub(super) const FROZEN_KEY: &str = "frozen";
pub(super) const ENTRY_PREFIX: &str = "e.";
const VERSION_PREFIX: &[u8] = b"v.";
pub(super) const MARKER_PREFIX: &str = "m.";
pub(super) const LEASE_PREFIX: &str = "lease.";
/// Control object: `fence.<lease>` → the lease's current token, alone, so
/// a fenced op compares it exactly (`lease.<name>` changes with renewals).
const FENCE_PREFIX: &str = "fence.";
/// Control object: a batch with entries and markers, before its markers.
pub(super) const INTENT_PREFIX: &str = "i.";
/// Shard object: this shard's part of that batch is applied.
pub(super) const APPLIED_PREFIX: &str = "t.";
/// Guarded writes retry on a lost compare; contention is between a few
/// instances, so a bound this large is only hit when something is wrong.
pub(super) const MAX_ATTEMPTS: usize = 64;
/// Pairs per omap read request (the OSD's own cap is 131072).
pub(super) const READ_PAGE: usize = 4096;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct StoredLayout {
    format: u32,
    shards: u32,
    mode: IndexMode,
}

pub(super) fn num(n: u64) -> String {
    format!("{n:020}")
}

pub(super) fn parse_num(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

pub(super) fn entry_key(id: EntryId) -> String {
    format!("{ENTRY_PREFIX}{id}")
}

pub(super) fn version_key(vkey: &[u8]) -> Vec<u8> {
    let mut out = VERSION_PREFIX.to_vec();
    out.extend_from_slice(vkey);
    out
}

pub(super) fn fence_key(lease: &str) -> String {
    format!("{FENCE_PREFIX}{lease}")
}

pub(super) fn parse_entry_key(key: &[u8]) -> Option<EntryId> {
    let text = std::str::from_utf8(key).ok()?.strip_prefix(ENTRY_PREFIX)?;
    if text.len() != ENTRY_ID_TEXT_LEN {
        return None;
    }
    text.parse().ok()
}

impl Inner {
    pub(super) fn create_or_check(&self) -> Result<(), IndexError> {
        let wanted = StoredLayout {
            format: FORMAT,
            shards: self.layout.shards,
            mode: self.layout.mode,
        };
        let json = serde_json::to_vec(&wanted)
            .map_err(|e| IndexError::Backend(BackendError::new("layout encoding", e)))?;
        let mut create = WriteOp::new().create(true);
        create.set(LAYOUT_KEY, json).set(SESSION_KEY, num(0));
        match self.io.operate(&self.control, &create) {
            Ok(()) => {}
            Err(e) if e.is_exists() => {
                let stored = self
                    .get(&self.control, LAYOUT_KEY.as_bytes())?
                    .ok_or_else(|| {
                        IndexError::Corrupt(format!(
                            "{}: the control object has no layout",
                            self.location
                        ))
                    })?;
                let stored: StoredLayout = serde_json::from_slice(&stored).map_err(|e| {
                    IndexError::Corrupt(format!("{}: stored layout: {e}", self.location))
                })?;
                if stored.format != FORMAT {
                    return Err(IndexError::Corrupt(format!(
                        "{}: stored format {} is not {FORMAT}",
                        self.location, stored.format
                    )));
                }
                if stored != wanted {
                    return Err(IndexError::LayoutMismatch {
                        location: self.location.clone(),
                        stored: IndexLayout {
                            shards: stored.shards,
                            mode: stored.mode,
                        }
                        .describe(),
                        requested: self.layout.describe(),
                    });
                }
            }
            Err(e) => return Err(self.err(e)),
        }
        // The shard objects exist before anyone writes to them; a crash
        // half-way through is repaired by the next open.
        let ops: Vec<(String, WriteOp)> = self
            .shards
            .iter()
            .map(|oid| {
                let mut op = WriteOp::new().create(true);
                op.set(FLOOR_KEY, num(0)).set(REV_KEY, num(0));
                (oid.clone(), op)
            })
            .collect();
        for result in self.io.operate_many(&ops) {
            match result {
                Ok(()) => {}
                Err(e) if e.is_exists() => {}
                Err(e) => return Err(self.err(e)),
            }
        }
        Ok(())
    }
}
