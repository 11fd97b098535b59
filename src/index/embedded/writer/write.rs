//! A write batch (and its markers) applied inside a group.

use redb::{ReadableTable as _, WriteTransaction};

use super::group::{Group, Pending};
use super::Writer;
use crate::index::codec::encoded_version_key;
use crate::index::embedded::failure::Failure;
use crate::index::embedded::keys::{entry_key, split_entry_key, ENTRY_KEY_BYTES};
use crate::index::embedded::request::PreparedBatch;
use crate::index::embedded::{FROZEN_MARKER, MARKERS};
use crate::index::{EntryRef, FrozenWindow, SourceMarker, Written};

impl Writer {
    pub(super) fn apply_write(
        &mut self,
        tx: &WriteTransaction,
        batch: PreparedBatch,
        markers: &[SourceMarker],
        group: &mut Group,
    ) -> Result<Vec<Written>, Failure> {
        let mut latest = self.latest_table(tx)?;
        let frozen = match latest {
            Some(_) => tx
                .open_table(MARKERS)?
                .get(FROZEN_MARKER)?
                .and_then(|v| FrozenWindow::decode(v.value())),
            None => None,
        };
        let buffer = group.buffers.len();
        let mut written = Vec::with_capacity(batch.entries.len());
        for entry in &batch.entries {
            let record = &batch.data[entry.start..entry.end];
            let mut version_key = None;
            if let Some(latest) = latest.as_mut() {
                // The caller encoded this record; it always has a version key.
                let key = encoded_version_key(record).map_err(|e| Failure::from(e.to_string()))?;
                let existing: Option<[u8; ENTRY_KEY_BYTES]> = match latest.get(key)? {
                    Some(v) => Some(
                        v.value()
                            .try_into()
                            .map_err(|_| Failure::corrupt("bad latest-index value"))?,
                    ),
                    None => None,
                };
                if let Some(existing) = existing {
                    let (shard, id) = split_entry_key(&existing)
                        .ok_or_else(|| Failure::corrupt("bad latest-index value"))?;
                    if id.time_ns > entry.time_ns {
                        written.push(Written::Superseded(EntryRef { shard, id }));
                        continue;
                    }
                    // Same or newer time: the later arrival is the newer
                    // change; an entry a planned window holds stays.
                    let minted = group.is_minted(id);
                    let edits = group.shards.entry(shard).or_default();
                    if minted {
                        edits.dropped.insert(id);
                    } else if !frozen.is_some_and(|w| w.covers(&id)) {
                        edits.removes.insert(id);
                    }
                }
                version_key = Some(key);
            }
            let id = self.next_id(entry.time_ns);
            if let (Some(latest), Some(key)) = (latest.as_mut(), version_key) {
                latest.insert(key, entry_key(entry.shard, id).as_slice())?;
            }
            group
                .shards
                .entry(entry.shard)
                .or_default()
                .inserts
                .push(Pending {
                    id,
                    buffer,
                    start: entry.start,
                    end: entry.end,
                });
            written.push(Written::Stored(EntryRef {
                shard: entry.shard,
                id,
            }));
        }
        group.buffers.push(batch.data);
        if !markers.is_empty() {
            let mut table = tx.open_table(MARKERS)?;
            for m in markers {
                table.insert(m.name.as_str(), m.value.as_slice())?;
            }
        }
        Ok(written)
    }
}
