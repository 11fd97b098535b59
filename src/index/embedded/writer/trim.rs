//! Trims applied inside a group.

use std::collections::BTreeMap;
use std::ops::Bound;

use redb::{ReadableTable as _, WriteTransaction};

use super::group::{BytesTable, Deltas, Group};
use super::Writer;
use crate::index::codec::encoded_version_key;
use crate::index::embedded::failure::Failure;
use crate::index::embedded::keys::{check_block, entry_key};
use crate::index::embedded::BLOCKS;
use crate::index::{EntryId, EntryRef, Watermark};

impl Writer {
    /// Counts and records the removal of those of `refs` that exist, in
    /// stored blocks or earlier in the group; the blocks change in `flush`.
    pub(super) fn apply_trim(
        &self,
        tx: &WriteTransaction,
        refs: &[EntryRef],
        group: &mut Group,
    ) -> Result<u64, Failure> {
        let blocks = tx.open_table(BLOCKS)?;
        let mut latest = self.latest_table(tx)?;
        let mut by_shard: BTreeMap<u32, Vec<EntryId>> = BTreeMap::new();
        let mut removed = 0;
        for r in refs {
            if group.is_minted(r.id) {
                if let Some(p) = group.take_pending(r.shard, r.id) {
                    removed += 1;
                    unlink_version(latest.as_mut(), group.record(&p), r.shard, r.id)?;
                }
            } else {
                by_shard.entry(r.shard).or_default().push(r.id);
            }
        }
        // One stored block at a time, copied so that the table stays free.
        let mut stored = Vec::new();
        for (shard, mut ids) in by_shard {
            ids.sort_unstable();
            ids.dedup();
            let removes = &mut group.shards.entry(shard).or_default().removes;
            let mut i = 0;
            while i < ids.len() {
                let id = ids[i];
                if removes.contains(&id) {
                    i += 1;
                    continue;
                }
                let floor = blocks
                    .range(
                        entry_key(shard, EntryId::MIN).as_slice()..=entry_key(shard, id).as_slice(),
                    )?
                    .next_back()
                    .transpose()?;
                let Some((key, value)) = floor else {
                    i += 1;
                    continue;
                };
                stored.clear();
                stored.extend_from_slice(value.value());
                let (_, block) = check_block(key.value(), &stored, &self.location)
                    .map_err(|e| Failure::corrupt(e.to_string()))?;
                let last = block.last();
                if id > last {
                    i += 1;
                    continue;
                }
                while i < ids.len() && ids[i] <= last {
                    let id = ids[i];
                    i += 1;
                    if removes.contains(&id) {
                        continue;
                    }
                    if let Ok(at) = block.search(id) {
                        removed += 1;
                        removes.insert(id);
                        unlink_version(latest.as_mut(), block.record(at), shard, id)?;
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Removes the covered entries of a shard before `to`. A block whose
    /// entries all go is deleted here outright, without naming each entry
    /// (which is what makes the collector's trim cheap); from the other
    /// blocks the covered entries are recorded as removals that `flush`
    /// applies, as for [`Self::apply_trim`].
    pub(super) fn apply_trim_covered(
        &self,
        tx: &WriteTransaction,
        (shard, from, to, watermark): (u32, EntryId, EntryId, Watermark),
        group: &mut Group,
        deltas: &mut Deltas,
    ) -> Result<u64, Failure> {
        let mut blocks = tx.open_table(BLOCKS)?;
        let mut latest = self.latest_table(tx)?;
        let removes = &mut group.shards.entry(shard).or_default().removes;
        let (start, end) = (entry_key(shard, from), entry_key(shard, to));
        // Blocks never overlap: the last block starting before `from` may
        // hold some of the range, the others start inside it.
        let floor = blocks
            .range(entry_key(shard, EntryId::MIN).as_slice()..start.as_slice())?
            .next_back()
            .transpose()?
            .map(|(k, _)| k.value().to_vec());
        let mut after: Option<Vec<u8>> = None;
        let mut removed = 0;
        // A few blocks at a time, copied, so that the table is free to
        // change between the reads.
        let mut stored: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        loop {
            stored.clear();
            let lower = match (&after, &floor) {
                (Some(key), _) => Bound::Excluded(key.as_slice()),
                (None, Some(key)) => Bound::Included(key.as_slice()),
                (None, None) => Bound::Included(start.as_slice()),
            };
            for item in blocks
                .range::<&[u8]>((lower, Bound::Excluded(end.as_slice())))?
                .take(64)
            {
                let (key, value) = item?;
                stored.push((key.value().to_vec(), value.value().to_vec()));
            }
            let Some((last_key, _)) = stored.last() else {
                break;
            };
            after = Some(last_key.clone());
            for (key, value) in &stored {
                let (_, block) = check_block(key, value, &self.location)
                    .map_err(|e| Failure::corrupt(e.to_string()))?;
                let whole = block.first() >= from
                    && block.last() < to
                    && block
                        .iter()
                        .all(|(id, _)| watermark.covers(&id) && !removes.contains(&id));
                if whole {
                    blocks.remove(key.as_slice())?;
                    let delta = deltas.entry(shard).or_default();
                    delta.0 -= block.len() as i64;
                    delta.1 -= (key.len() + value.len()) as i64;
                    removed += block.len() as u64;
                }
                for (id, record) in block.iter() {
                    let goes = whole
                        || (id >= from && id < to && watermark.covers(&id) && removes.insert(id));
                    if goes {
                        unlink_version(latest.as_mut(), record, shard, id)?;
                        removed += u64::from(!whole);
                    }
                }
            }
        }
        Ok(removed)
    }
}

/// Latest mode: forgets the version → entry link if it still points at
/// this entry (a newer entry for the version has its own link).
fn unlink_version(
    latest: Option<&mut BytesTable<'_>>,
    record: &[u8],
    shard: u32,
    id: EntryId,
) -> Result<(), Failure> {
    let Some(latest) = latest else {
        return Ok(());
    };
    let version_key = encoded_version_key(record)
        .map_err(|e| Failure::corrupt(format!("entry {shard}/{id}: {e}")))?;
    let key = entry_key(shard, id);
    let points_here = latest
        .get(version_key)?
        .is_some_and(|v| v.value() == key.as_slice());
    if points_here {
        latest.remove(version_key)?;
    }
    Ok(())
}
