//! A block: several entries of one shard stored as one value.
//!
//! The embedded backend stores a commit group's entries of a shard as one
//! row instead of one row per entry, because the per-row B-tree insert was
//! what limited durable ingest (docs/decisions.md, "Embedded store"). The
//! id index sits in front of the records so that a reader can find where
//! to start with a binary search and a trim can test membership without
//! touching the records. Layout (integers little-endian unless noted):
//!
//! ```text
//! u8 format=1 | u32 count
//! | count × (EntryId, 16 B big-endian | u32 end offset of its record in data)
//! | data: the encoded records (see super::codec), concatenated in id order
//! ```
//!
//! Ids are strictly increasing and a block is never empty; [`Block::parse`]
//! checks all of it, so nothing read from disk is trusted unchecked.

use super::key::ENTRY_ID_BYTES;
use super::EntryId;

const FORMAT: u8 = 1;
const HEADER: usize = 1 + 4;
const SLOT: usize = ENTRY_ID_BYTES + 4;

/// A checked view of a stored block.
#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    slots: &'a [u8],
    data: &'a [u8],
    count: usize,
}

// Callers pass slices cut from checked bounds, so the lengths always fit.
fn be_u64(b: &[u8]) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&b[..8]);
    u64::from_be_bytes(raw)
}

fn le_u32(b: &[u8]) -> usize {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&b[..4]);
    u32::from_le_bytes(raw) as usize
}

fn id_at(slot: &[u8]) -> EntryId {
    EntryId::new(be_u64(&slot[..8]), be_u64(&slot[8..16]))
}

impl<'a> Block<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        if bytes.len() < HEADER {
            return Err(format!("block of {} bytes is truncated", bytes.len()));
        }
        if bytes[0] != FORMAT {
            return Err(format!("unknown block format {}", bytes[0]));
        }
        let count = le_u32(&bytes[1..5]);
        if count == 0 {
            return Err("empty block".into());
        }
        let slots_end = count
            .checked_mul(SLOT)
            .and_then(|n| n.checked_add(HEADER))
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| format!("block claims {count} entries but has {} bytes", bytes.len()))?;
        let block = Block {
            slots: &bytes[HEADER..slots_end],
            data: &bytes[slots_end..],
            count,
        };
        let mut previous: Option<(EntryId, usize)> = None;
        for i in 0..count {
            let (id, end) = block.slot(i);
            if let Some((prev_id, prev_end)) = previous {
                if id <= prev_id {
                    return Err(format!("block ids out of order at {i}"));
                }
                if end < prev_end {
                    return Err(format!("block offsets out of order at {i}"));
                }
            }
            previous = Some((id, end));
        }
        if previous.map(|(_, end)| end) != Some(block.data.len()) {
            return Err("block records do not fill its data".into());
        }
        Ok(block)
    }

    fn slot(&self, i: usize) -> (EntryId, usize) {
        let s = &self.slots[i * SLOT..(i + 1) * SLOT];
        (id_at(s), le_u32(&s[ENTRY_ID_BYTES..]))
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn id(&self, i: usize) -> EntryId {
        self.slot(i).0
    }

    pub fn first(&self) -> EntryId {
        self.id(0)
    }

    pub fn last(&self) -> EntryId {
        self.id(self.count - 1)
    }

    /// The encoded record of entry `i` (offsets were checked by `parse`).
    pub fn record(&self, i: usize) -> &'a [u8] {
        let start = if i == 0 { 0 } else { self.slot(i - 1).1 };
        &self.data[start..self.slot(i).1]
    }

    /// Where `id` is, or where it would be inserted.
    pub fn search(&self, id: EntryId) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.id(mid).cmp(&id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    pub fn iter(&self) -> impl Iterator<Item = (EntryId, &'a [u8])> + '_ {
        (0..self.count).map(|i| (self.id(i), self.record(i)))
    }
}

/// Encodes entries given in strictly increasing id order.
pub fn encode_block(entries: &[(EntryId, &[u8])], out: &mut Vec<u8>) {
    let data: usize = entries.iter().map(|(_, r)| r.len()).sum();
    out.clear();
    out.resize(block_size(entries.len(), data), 0);
    write_block(entries, out);
}

/// Encodes entries given in strictly increasing id order into `out`, which
/// is exactly [`block_size`] long (the writer reserves it inside the store's
/// page, so a block is copied once).
pub fn write_block(entries: &[(EntryId, &[u8])], out: &mut [u8]) {
    out[0] = FORMAT;
    out[1..HEADER].copy_from_slice(&(entries.len() as u32).to_le_bytes());
    let mut slot = HEADER;
    let mut at = HEADER + entries.len() * SLOT;
    let data_start = at;
    for (id, record) in entries {
        out[at..at + record.len()].copy_from_slice(record);
        at += record.len();
        out[slot..slot + ENTRY_ID_BYTES].copy_from_slice(&id.to_bytes());
        out[slot + ENTRY_ID_BYTES..slot + SLOT]
            .copy_from_slice(&((at - data_start) as u32).to_le_bytes());
        slot += SLOT;
    }
}

/// Stored size of a block holding `entries` entries with `data` record bytes.
pub fn block_size(entries: usize, data: usize) -> usize {
    HEADER + entries * SLOT + data
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn blocks_round_trip(
            mut ids in proptest::collection::btree_set(any::<(u64, u64)>(), 1..40),
            records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..30), 40),
        ) {
            let ids: Vec<EntryId> = std::mem::take(&mut ids).into_iter().map(|(t, s)| EntryId::new(t, s)).collect();
            let entries: Vec<(EntryId, &[u8])> = ids.iter().zip(&records).map(|(id, r)| (*id, r.as_slice())).collect();
            let mut buf = Vec::new();
            encode_block(&entries, &mut buf);
            prop_assert_eq!(buf.len(), block_size(entries.len(), entries.iter().map(|e| e.1.len()).sum()));
            let block = Block::parse(&buf).unwrap();
            prop_assert_eq!(block.iter().collect::<Vec<_>>(), entries.clone());
            for (i, (id, _)) in entries.iter().enumerate() {
                prop_assert_eq!(block.search(*id), Ok(i));
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(block) = Block::parse(&bytes) {
                for i in 0..block.len() {
                    let _ = block.record(i);
                }
            }
        }
    }

    #[test]
    fn corrupt_blocks_are_refused() {
        let a: &[u8] = b"aaa";
        let mut buf = Vec::new();
        encode_block(
            &[(EntryId::new(1, 1), a), (EntryId::new(2, 1), a)],
            &mut buf,
        );
        assert!(Block::parse(&buf).is_ok());
        for cut in 0..buf.len() {
            assert!(Block::parse(&buf[..cut]).is_err(), "cut at {cut}");
        }
        let mut swapped = Vec::new();
        encode_block(
            &[(EntryId::new(2, 1), a), (EntryId::new(1, 1), a)],
            &mut swapped,
        );
        assert!(Block::parse(&swapped).is_err());
        assert!(Block::parse(&[FORMAT, 0, 0, 0, 0]).is_err());
    }
}
