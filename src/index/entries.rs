//! Pending entries as read back: where each lives ([`EntryRef`]), decoded
//! ([`IndexedEntry`]) or in their stored form ([`EncodedEntries`]).

use super::{codec, EntryId, IndexError};
use crate::record::ChangeRecord;

/// Where an entry lives: enough to trim it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryRef {
    /// The shard it is in.
    pub shard: u32,
    /// Its key in the shard.
    pub id: EntryId,
}

/// One pending change as stored in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedEntry {
    /// The shard it is in.
    pub shard: u32,
    /// Its key in the shard.
    pub id: EntryId,
    /// The change.
    pub record: ChangeRecord,
}

impl IndexedEntry {
    /// Where it lives.
    pub fn entry_ref(&self) -> EntryRef {
        EntryRef {
            shard: self.shard,
            id: self.id,
        }
    }
}

/// Entries in their stored form: refs and the encoded records
/// ([`codec`](super::codec)) back to back in one buffer, so a page of
/// thousands of entries costs a few allocations and a reader that only
/// turns them into log lines never builds a [`ChangeRecord`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedEntries {
    refs: Vec<EntryRef>,
    ends: Vec<usize>,
    data: Vec<u8>,
}

impl EncodedEntries {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `entries` entries and `data` bytes of records.
    pub fn with_capacity(entries: usize, data: usize) -> Self {
        EncodedEntries {
            refs: Vec::with_capacity(entries),
            ends: Vec::with_capacity(entries),
            data: Vec::with_capacity(data),
        }
    }

    /// Appends an entry and its encoded record.
    pub fn push(&mut self, entry: EntryRef, record: &[u8]) {
        self.data.extend_from_slice(record);
        self.refs.push(entry);
        self.ends.push(self.data.len());
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.refs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// Removes all entries, keeping the memory.
    pub fn clear(&mut self) {
        self.refs.clear();
        self.ends.clear();
        self.data.clear();
    }

    /// Bytes of encoded records held.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    /// Where entry `i` lives.
    pub fn entry_ref(&self, i: usize) -> EntryRef {
        self.refs[i]
    }

    /// The encoded record of entry `i`.
    pub fn record(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[start..self.ends[i]]
    }

    /// Every entry with its encoded record, in order.
    pub fn iter(&self) -> impl Iterator<Item = (EntryRef, &[u8])> + '_ {
        (0..self.len()).map(|i| (self.refs[i], self.record(i)))
    }

    /// Where the last entry lives.
    pub fn last_ref(&self) -> Option<EntryRef> {
        self.refs.last().copied()
    }

    /// Entry `i`, decoded.
    pub fn decode(&self, i: usize) -> Result<IndexedEntry, IndexError> {
        decode_entry(self.refs[i], self.record(i))
    }
}

/// A stored entry decoded; a record that does not decode is corruption.
pub fn decode_entry(entry: EntryRef, record: &[u8]) -> Result<IndexedEntry, IndexError> {
    let EntryRef { shard, id } = entry;
    let record = codec::decode_record(record)
        .map_err(|e| IndexError::Corrupt(format!("shard {shard} entry {id}: {e}")))?;
    Ok(IndexedEntry { shard, id, record })
}
