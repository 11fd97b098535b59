//! The group's edits written into blocks just before the commit.

use std::ops::Bound;

use redb::{ReadableTable as _, WriteTransaction};

use super::group::{Deltas, Group, Pending, ShardEdits};
use super::Writer;
use crate::index::block::{block_size, write_block};
use crate::index::embedded::failure::Failure;
use crate::index::embedded::handle::EmbeddedOptions;
use crate::index::embedded::keys::{check_block, entry_key, split_entry_key};
use crate::index::embedded::BLOCKS;
use crate::index::EntryId;

impl Writer {
    /// Applies the group's edits to the blocks, shard by shard. Each change
    /// goes to the block whose range it falls in (the last block starting
    /// at or before it); changes before a shard's first block, or appends
    /// after a block that is large enough, become new blocks. Either way
    /// the blocks of a shard stay disjoint.
    pub(super) fn flush(
        &self,
        tx: &WriteTransaction,
        group: Group,
        deltas: &mut Deltas,
    ) -> Result<(), Failure> {
        let mut blocks = tx.open_table(BLOCKS)?;
        let mut floor_bytes = Vec::new();
        let Group {
            buffers, shards, ..
        } = group;
        let record = |p: &Pending| &buffers[p.buffer][p.start..p.end];
        for (shard, edits) in shards {
            let ShardEdits {
                mut inserts,
                dropped,
                removes,
            } = edits;
            if !dropped.is_empty() {
                inserts.retain(|p| !dropped.contains(&p.id));
            }
            inserts.sort_unstable_by_key(|p| p.id);
            let mut next_insert = 0;
            let mut removes = removes.into_iter().peekable();
            let delta = deltas.entry(shard).or_default();
            loop {
                let next = match (inserts.get(next_insert).map(|p| p.id), removes.peek()) {
                    (None, None) => break,
                    (Some(a), Some(b)) => a.min(*b),
                    (Some(a), None) => a,
                    (None, Some(b)) => *b,
                };
                let floor = blocks
                    .range(
                        entry_key(shard, EntryId::MIN).as_slice()
                            ..=entry_key(shard, next).as_slice(),
                    )?
                    .next_back()
                    .transpose()?
                    .map(|(k, v)| {
                        floor_bytes.clear();
                        floor_bytes.extend_from_slice(v.value());
                        k.value().to_vec()
                    });
                // Changes before the next block's first entry belong here.
                let after = match &floor {
                    Some(key) => Bound::Excluded(key.clone()),
                    None => Bound::Included(entry_key(shard, next).to_vec()),
                };
                let end = Bound::Included(entry_key(shard, EntryId::MAX).to_vec());
                let bound = match blocks
                    .range::<&[u8]>((as_slice_bound(&after), as_slice_bound(&end)))?
                    .next()
                {
                    Some(item) => {
                        let (key, _) = item?;
                        let (_, id) = split_entry_key(key.value())
                            .ok_or_else(|| Failure::corrupt("bad block key"))?;
                        Some(id)
                    }
                    None => None,
                };
                let before_bound = |id: &EntryId| bound.is_none_or(|b| *id < b);
                let region_end =
                    next_insert + inserts[next_insert..].partition_point(|p| before_bound(&p.id));
                let region_inserts = &inserts[next_insert..region_end];
                next_insert = region_end;
                let mut region_removes = Vec::new();
                while let Some(id) = removes.next_if(before_bound) {
                    region_removes.push(id);
                }
                let mut merged: Vec<(EntryId, &[u8])> = Vec::new();
                let mut rewritten = false;
                if let Some(key) = &floor {
                    let (_, block) = check_block(key, &floor_bytes, &self.location)
                        .map_err(|e| Failure::corrupt(e.to_string()))?;
                    let appends_only = region_removes.is_empty()
                        && region_inserts.first().is_some_and(|p| p.id > block.last());
                    if !(appends_only && floor_bytes.len() >= self.options.block_small_bytes) {
                        rewritten = true;
                        blocks.remove(key.as_slice())?;
                        delta.0 -= block.len() as i64;
                        delta.1 -= (key.len() + floor_bytes.len()) as i64;
                        merged.reserve(block.len() + region_inserts.len());
                        let mut gone = region_removes.iter().peekable();
                        let mut added = region_inserts.iter().peekable();
                        for (id, stored) in block.iter() {
                            while let Some(p) = added.next_if(|p| p.id < id) {
                                merged.push((p.id, record(p)));
                            }
                            while gone.next_if(|g| **g < id).is_some() {}
                            if gone.next_if(|g| **g == id).is_none() {
                                merged.push((id, stored));
                            }
                        }
                        merged.extend(added.map(|p| (p.id, record(p))));
                    }
                }
                if !rewritten {
                    merged.extend(region_inserts.iter().map(|p| (p.id, record(p))));
                }
                for chunk in chunks(&merged, &self.options) {
                    let size = block_size(chunk.len(), chunk.iter().map(|e| e.1.len()).sum());
                    let key = entry_key(shard, chunk[0].0);
                    let mut place = blocks.insert_reserve(key.as_slice(), size)?;
                    write_block(chunk, place.as_mut());
                    delta.0 += chunk.len() as i64;
                    delta.1 += (key.len() + size) as i64;
                }
            }
        }
        Ok(())
    }
}

fn as_slice_bound(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Splits entries in id order into runs that each fit one block.
fn chunks<'e, 'r>(
    entries: &'e [(EntryId, &'r [u8])],
    options: &EmbeddedOptions,
) -> impl Iterator<Item = &'e [(EntryId, &'r [u8])]> {
    let (max_bytes, max_entries) = (options.block_max_bytes, options.block_max_entries.max(1));
    let mut rest = entries;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut size = block_size(0, 0);
        let mut n = 0;
        while n < rest.len() && n < max_entries {
            let grown = size + block_size(1, rest[n].1.len()) - block_size(0, 0);
            if n > 0 && grown > max_bytes {
                break;
            }
            size = grown;
            n += 1;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}
