//! [`ChangeIndex`] for the embedded index.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use redb::ReadableDatabase as _;

use super::handle::EmbeddedIndex;
use super::keys::{entry_key, split_entry_key};
use super::request::Request;
use super::{backend, backend_msg, BLOCKS, FROZEN_MARKER, MARKERS};
use crate::error::BoxError;
use crate::index::{
    ChangeIndex, EncodedEntries, EntryId, EntryRef, Fence, FrozenWindow, IndexError, IndexLayout,
    IndexStats, ShardStats, SourceMarker, Watermark, WriteBatch, Written,
};

#[async_trait]
impl ChangeIndex for EmbeddedIndex {
    fn layout(&self) -> IndexLayout {
        self.layout
    }

    async fn write(&self, batch: WriteBatch) -> Result<Vec<Written>, IndexError> {
        let prepared = self.prepare(&batch)?;
        if prepared.entries.is_empty() && batch.markers.is_empty() {
            return Ok(Vec::new());
        }
        let (markers, fence) = (batch.markers, batch.fence);
        self.submit(|reply| Request::Write {
            batch: prepared,
            markers,
            fence,
            reply,
        })
        .await?
    }

    async fn read_shard_encoded(
        &self,
        shard: u32,
        from: EntryId,
        to: EntryId,
        limit: usize,
    ) -> Result<EncodedEntries, IndexError> {
        self.scan_blocking(
            shard,
            from,
            to,
            limit,
            // Room for a page of small records; capped, as `limit` may be huge.
            EncodedEntries::with_capacity(limit.min(16_384), limit.min(256) * 256),
            move |page, id, record| page.push(EntryRef { shard, id }, record),
        )
        .await
    }

    async fn read_shard_ids(
        &self,
        shard: u32,
        from: EntryId,
        to: EntryId,
        limit: usize,
    ) -> Result<Vec<EntryId>, IndexError> {
        // A block's id index answers this without touching a record.
        self.scan_blocking(shard, from, to, limit, Vec::new(), |ids, id, _| {
            ids.push(id)
        })
        .await
    }

    async fn trim(&self, entries: &[EntryRef]) -> Result<u64, IndexError> {
        for r in entries {
            self.check_shard(r.shard)?;
        }
        if entries.is_empty() {
            return Ok(0);
        }
        let entries = entries.to_vec();
        self.submit(|reply| Request::Trim { entries, reply })
            .await?
    }

    async fn trim_covered(
        &self,
        shard: u32,
        to: EntryId,
        watermark: Watermark,
    ) -> Result<u64, IndexError> {
        self.check_shard(shard)?;
        // In spans of at most `trim_span` entries, each one commit: entries
        // that cannot go with their whole block are remembered one by one
        // until the commit, and that memory stays bounded.
        let mut removed = 0;
        let mut from = EntryId::MIN;
        while from < to {
            let ids = self.read_shard_ids(shard, from, to, self.trim_span).await?;
            let end = match ids.last() {
                Some(last) if ids.len() == self.trim_span => {
                    last.successor().unwrap_or(EntryId::MAX).min(to)
                }
                Some(_) => to,
                None => break,
            };
            removed += self
                .submit(|reply| Request::TrimCovered {
                    shard,
                    from,
                    to: end,
                    watermark,
                    reply,
                })
                .await??;
            from = end;
        }
        Ok(removed)
    }

    async fn marker(&self, name: &str) -> Result<Option<Vec<u8>>, IndexError> {
        let err = |e: BoxError| backend(&self.location, e);
        let tx = self
            .db
            .get()
            .map_err(|e| err(e.into()))?
            .begin_read()
            .map_err(|e| err(e.into()))?;
        let table = tx.open_table(MARKERS).map_err(|e| err(e.into()))?;
        let value = table.get(name).map_err(|e| err(e.into()))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    async fn markers(&self, prefix: &str) -> Result<Vec<SourceMarker>, IndexError> {
        let err = |e: BoxError| backend(&self.location, e);
        let tx = self
            .db
            .get()
            .map_err(|e| err(e.into()))?
            .begin_read()
            .map_err(|e| err(e.into()))?;
        let table = tx.open_table(MARKERS).map_err(|e| err(e.into()))?;
        let mut out = Vec::new();
        for item in table.range(prefix..).map_err(|e| err(e.into()))? {
            let (k, v) = item.map_err(|e| err(e.into()))?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push(SourceMarker {
                name: k.value().to_string(),
                value: v.value().to_vec(),
            });
        }
        Ok(out)
    }

    async fn stats(&self) -> Result<IndexStats, IndexError> {
        let counters = self
            .counters
            .lock()
            .map_err(|_| backend_msg(&self.location, "stats lock poisoned"))?
            .clone();
        let err = |e: BoxError| backend(&self.location, e);
        let tx = self
            .db
            .get()
            .map_err(|e| err(e.into()))?
            .begin_read()
            .map_err(|e| err(e.into()))?;
        let table = tx.open_table(BLOCKS).map_err(|e| err(e.into()))?;
        let mut shards = Vec::with_capacity(counters.len());
        for (shard, c) in counters.iter().enumerate() {
            let shard = shard as u32;
            // Blocks are never empty and keyed by their first entry.
            let oldest = match table
                .range(
                    entry_key(shard, EntryId::MIN).as_slice()
                        ..=entry_key(shard, EntryId::MAX).as_slice(),
                )
                .map_err(|e| err(e.into()))?
                .next()
            {
                Some(item) => {
                    let (k, _) = item.map_err(|e| err(e.into()))?;
                    let (_, id) = split_entry_key(k.value()).ok_or_else(|| {
                        IndexError::Corrupt(format!("{}: bad block key", self.location.display()))
                    })?;
                    Some(id.time_ns)
                }
                None => None,
            };
            shards.push(ShardStats {
                shard,
                entries: c.entries,
                bytes: c.bytes,
                oldest_time_ns: oldest,
            });
        }
        Ok(IndexStats { shards })
    }

    async fn watermark(&self) -> Result<Watermark, IndexError> {
        Ok(Watermark(self.committed_seq.load(Ordering::Acquire)))
    }

    /// A marker of its own, written and read by the writer thread in the
    /// same transactions as the entries, so no write falls between.
    async fn freeze(
        &self,
        window: Option<FrozenWindow>,
        fence: Option<&Fence>,
    ) -> Result<(), IndexError> {
        if self.layout.mode != crate::index::IndexMode::Latest {
            return Ok(());
        }
        let value = window.map(|w| w.encode()).unwrap_or_default();
        self.write(
            WriteBatch::new()
                .marker(FROZEN_MARKER, value)
                .fenced(fence.cloned()),
        )
        .await?;
        Ok(())
    }
}
