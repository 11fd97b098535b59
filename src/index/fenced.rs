//! An index handle for one lease term: every write and freeze through it
//! carries the term's [`Fence`], so a role that was frozen past its lease
//! cannot write behind its successor's back, whichever code path it is in.
//! Reads, trims and the rest pass straight through (see `docs/decisions.md`,
//! "Fencing tokens on state writes", for why trims need no fence).

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    ChangeIndex, EncodedEntries, EntryId, EntryRef, Fence, FrozenWindow, IndexError, IndexLayout,
    IndexStats, SourceMarker, Watermark, WriteBatch, Written,
};

/// An index whose every write and freeze carries one lease term's fence.
pub struct FencedIndex {
    inner: Arc<dyn ChangeIndex>,
    fence: Fence,
}

impl FencedIndex {
    /// `inner`, with `fence` on every write and freeze.
    pub fn new(inner: Arc<dyn ChangeIndex>, fence: Fence) -> Self {
        FencedIndex { inner, fence }
    }
}

#[async_trait]
impl ChangeIndex for FencedIndex {
    fn layout(&self) -> IndexLayout {
        self.inner.layout()
    }

    async fn write(&self, batch: WriteBatch) -> Result<Vec<Written>, IndexError> {
        let fence = batch.fence.clone().unwrap_or_else(|| self.fence.clone());
        self.inner.write(batch.fenced(Some(fence))).await
    }

    async fn read_shard_encoded(
        &self,
        shard: u32,
        from: EntryId,
        to: EntryId,
        limit: usize,
    ) -> Result<EncodedEntries, IndexError> {
        self.inner.read_shard_encoded(shard, from, to, limit).await
    }

    async fn read_shard_ids(
        &self,
        shard: u32,
        from: EntryId,
        to: EntryId,
        limit: usize,
    ) -> Result<Vec<EntryId>, IndexError> {
        self.inner.read_shard_ids(shard, from, to, limit).await
    }

    async fn trim(&self, entries: &[EntryRef]) -> Result<u64, IndexError> {
        self.inner.trim(entries).await
    }

    async fn trim_covered(
        &self,
        shard: u32,
        to: EntryId,
        watermark: Watermark,
    ) -> Result<u64, IndexError> {
        self.inner.trim_covered(shard, to, watermark).await
    }

    async fn marker(&self, name: &str) -> Result<Option<Vec<u8>>, IndexError> {
        self.inner.marker(name).await
    }

    async fn markers(&self, prefix: &str) -> Result<Vec<SourceMarker>, IndexError> {
        self.inner.markers(prefix).await
    }

    async fn stats(&self) -> Result<IndexStats, IndexError> {
        self.inner.stats().await
    }

    async fn watermark(&self) -> Result<Watermark, IndexError> {
        self.inner.watermark().await
    }

    async fn freeze(
        &self,
        window: Option<FrozenWindow>,
        fence: Option<&Fence>,
    ) -> Result<(), IndexError> {
        self.inner
            .freeze(window, Some(fence.unwrap_or(&self.fence)))
            .await
    }

    async fn recover(&self) -> Result<u64, IndexError> {
        self.inner.recover().await
    }
}
