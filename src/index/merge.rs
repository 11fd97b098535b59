//! Merging the shards by key, written once on top of per-shard pages.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use super::{
    decode_entry, ChangeIndex, EncodedEntries, EntryId, EntryRef, IndexError, IndexedEntry,
};

/// Reads all shards merged by key, one page per shard at a time, so memory
/// stays at `shards × page` entries however large the window. Pages stay in
/// their stored form; an entry is decoded only if the caller asks for it.
pub struct MergedReader {
    index: Arc<dyn ChangeIndex>,
    to: EntryId,
    page: usize,
    cursors: Vec<ShardCursor>,
    heap: BinaryHeap<Reverse<(EntryId, u32)>>,
    started: bool,
}

struct ShardCursor {
    page: EncodedEntries,
    at: usize,
    next_from: Option<EntryId>,
}

impl MergedReader {
    /// Entries with `from <= id < to`, read `page` entries per shard at a time.
    pub fn new(index: Arc<dyn ChangeIndex>, from: EntryId, to: EntryId, page: usize) -> Self {
        let shards = index.layout().shards;
        let cursors = (0..shards)
            .map(|_| ShardCursor {
                page: EncodedEntries::new(),
                at: 0,
                next_from: Some(from),
            })
            .collect();
        MergedReader {
            index,
            to,
            page: page.max(1),
            cursors,
            heap: BinaryHeap::new(),
            started: false,
        }
    }

    /// Reads a shard's next page when its current one is used up; queues
    /// the shard's next entry, if it has one.
    async fn refill(&mut self, shard: u32) -> Result<(), IndexError> {
        let cursor = &mut self.cursors[shard as usize];
        if cursor.at >= cursor.page.len() {
            let Some(from) = cursor.next_from else {
                return Ok(());
            };
            let page = self
                .index
                .read_shard_encoded(shard, from, self.to, self.page)
                .await?;
            cursor.next_from = if page.len() < self.page {
                None
            } else {
                page.last_ref().and_then(|r| r.id.successor())
            };
            cursor.page = page;
            cursor.at = 0;
        }
        if cursor.at < cursor.page.len() {
            let id = cursor.page.entry_ref(cursor.at).id;
            self.heap.push(Reverse((id, shard)));
        }
        Ok(())
    }

    /// Hands the next entry across all shards in key order, as stored, to
    /// `take`; `None` at the end.
    pub async fn next_with<T>(
        &mut self,
        take: impl FnOnce(EntryRef, &[u8]) -> T,
    ) -> Result<Option<T>, IndexError> {
        if !self.started {
            self.started = true;
            for shard in 0..self.cursors.len() as u32 {
                self.refill(shard).await?;
            }
        }
        let Some(&Reverse((_, shard))) = self.heap.peek() else {
            return Ok(None);
        };
        let cursor = &mut self.cursors[shard as usize];
        let taken = take(
            cursor.page.entry_ref(cursor.at),
            cursor.page.record(cursor.at),
        );
        cursor.at += 1;
        if cursor.at < cursor.page.len() {
            // The common case: the shard's next entry replaces it at the
            // top, one sift instead of a pop and a push.
            let id = cursor.page.entry_ref(cursor.at).id;
            if let Some(mut top) = self.heap.peek_mut() {
                *top = Reverse((id, shard));
            }
        } else {
            self.heap.pop();
            self.refill(shard).await?;
        }
        Ok(Some(taken))
    }

    /// The next entry across all shards in key order, decoded.
    pub async fn next(&mut self) -> Result<Option<IndexedEntry>, IndexError> {
        self.next_with(decode_entry).await?.transpose()
    }
}
