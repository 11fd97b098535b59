//! What a commit group adds to and removes from the shards before `flush`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::index::EntryId;

/// What a group adds to and removes from the shards. It is applied to the
/// blocks once, just before the commit, so that concurrent small writes
/// cost one block write per shard per group rather than one per request;
/// the requests of the group see each other's changes here.
pub(super) struct Group {
    /// The batches' record buffers; `Pending` entries point into them.
    pub(super) buffers: Vec<Vec<u8>>,
    pub(super) shards: BTreeMap<u32, ShardEdits>,
    /// Every id minted in this group has a larger seq, every stored id a
    /// smaller or equal one.
    pub(super) minted_after: u64,
}

#[derive(Default)]
pub(super) struct ShardEdits {
    /// New entries in arrival order; sorted once, at flush.
    pub(super) inserts: Vec<Pending>,
    /// New entries that a later request of the group removed again.
    pub(super) dropped: HashSet<EntryId>,
    /// Stored entries the group removes (each known to be stored).
    pub(super) removes: BTreeSet<EntryId>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Pending {
    pub(super) id: EntryId,
    pub(super) buffer: usize,
    pub(super) start: usize,
    pub(super) end: usize,
}

impl Group {
    pub(super) fn record(&self, p: &Pending) -> &[u8] {
        &self.buffers[p.buffer][p.start..p.end]
    }

    pub(super) fn is_minted(&self, id: EntryId) -> bool {
        id.seq > self.minted_after
    }

    /// Removes a live entry minted in this group. A linear search, but only
    /// a trim naming an id the group itself just minted gets here, and no
    /// caller can have read such an id yet.
    pub(super) fn take_pending(&mut self, shard: u32, id: EntryId) -> Option<Pending> {
        let edits = self.shards.get_mut(&shard)?;
        if edits.dropped.contains(&id) {
            return None;
        }
        let found = *edits.inserts.iter().find(|p| p.id == id)?;
        edits.dropped.insert(id);
        Some(found)
    }
}
pub(super) type Deltas = HashMap<u32, (i64, i64)>;
pub(super) type BytesTable<'t> = redb::Table<'t, &'static [u8], &'static [u8]>;
