//! The temporary, sharded, time-ordered change index (DESIGN.md, "Index").
//!
//! [`ChangeIndex`] is the seam every backend implements; `conformance`
//! holds the one test suite they all must pass (compiled for tests only,
//! through the `conformance` feature that `cargo test` turns on). Merging
//! shards by time is written once here ([`MergedReader`]) on top of
//! per-shard pages, so backends only need ordered per-shard reads.

#![warn(missing_docs)]

mod batch;
// Storage encodings, described by their module docs; not part of the seam.
#[allow(missing_docs)]
pub mod block;
#[allow(missing_docs)]
pub mod codec;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod db_slot;
pub mod embedded;
mod entries;
pub mod fenced;
pub mod key;
mod layout;
mod merge;
pub mod rados;
pub mod shard;
mod stats;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use batch::{Fence, SourceMarker, WriteBatch, Written, MAX_MARKER_BYTES};
pub use entries::{decode_entry, EncodedEntries, EntryRef, IndexedEntry};
pub use key::EntryId;
pub use layout::{IndexLayout, IndexMode, MAX_SHARDS};
pub use merge::MergedReader;
pub use shard::shard_of;
pub use stats::{IndexStats, ShardStats};

use crate::error::BackendError;
use crate::record::InvalidRecord;

/// Why an index call failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A record of the batch breaks the record rules; nothing was written.
    #[error("record {position} of the batch is invalid: {reason}")]
    InvalidRecord {
        /// Its place in the batch, from 0.
        position: usize,
        /// The rule it breaks.
        reason: InvalidRecord,
    },
    /// A source marker of the batch is invalid; nothing was written.
    #[error("marker {name:?} is invalid: {reason}")]
    InvalidMarker {
        /// The marker's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A read or trim named a shard the index does not have.
    #[error("shard {shard} does not exist (the index has {shards} shards)")]
    NoSuchShard {
        /// The shard asked for.
        shard: u32,
        /// How many shards the index has.
        shards: u32,
    },
    /// The stored layout is not the configured one.
    #[error(
        "the index at {location} was created with {stored}, but the configuration asks for {requested}; \
         use the stored layout or point the index at a new location"
    )]
    LayoutMismatch {
        /// Where the index is.
        location: String,
        /// The layout it was created with.
        stored: String,
        /// The layout the configuration asks for.
        requested: String,
    },
    /// A layout that cannot be created (why).
    #[error("invalid index layout: {0}")]
    InvalidLayout(String),
    /// Stored data that does not decode (what and where).
    #[error("the index data is corrupt: {0}")]
    Corrupt(String),
    /// The storage failed underneath (redb, librados, I/O); the cause is
    /// the source.
    #[error("index backend error: {0}")]
    Backend(#[from] BackendError),
    /// The index was closed (shut down, or the writer thread is gone).
    #[error("the index is closed")]
    Closed,
    /// A fenced write of a superseded lease term; nothing of it was
    /// written.
    #[error(
        "write refused: lease {lease:?} was taken over by a newer holder (ours had token {token}); \
         this instance no longer holds it"
    )]
    Fenced {
        /// The lease the write was fenced with.
        lease: String,
        /// Our term of it, which a newer holder superseded.
        token: u64,
    },
}

/// The durable, sharded change index.
#[async_trait]
pub trait ChangeIndex: Send + Sync + 'static {
    /// The shard count and mode the index was created with.
    fn layout(&self) -> IndexLayout;

    /// Stores the records and the markers in one atomic commit that is
    /// durable on disk (or on the cluster) before this returns. Nothing of an
    /// invalid batch is written.
    async fn write(&self, batch: WriteBatch) -> Result<Vec<Written>, IndexError>;

    /// Up to `limit` entries of `shard` with `from <= id < to`, in key order,
    /// as stored. Callers page by passing the successor of the last id as
    /// `from`.
    async fn read_shard_encoded(
        &self,
        shard: u32,
        from: EntryId,
        to: EntryId,
        limit: usize,
    ) -> Result<EncodedEntries, IndexError>;

    /// [`ChangeIndex::read_shard_encoded`], decoded.
    async fn read_shard(
        &self,
        shard: u32,
        from: EntryId,
        to: EntryId,
        limit: usize,
    ) -> Result<Vec<IndexedEntry>, IndexError> {
        let page = self.read_shard_encoded(shard, from, to, limit).await?;
        (0..page.len()).map(|i| page.decode(i)).collect()
    }

    /// The ids of up to `limit` entries of `shard` with `from <= id < to`,
    /// in key order: what a trim needs, so a backend that can list ids
    /// without decoding the records should.
    async fn read_shard_ids(
        &self,
        shard: u32,
        from: EntryId,
        to: EntryId,
        limit: usize,
    ) -> Result<Vec<EntryId>, IndexError> {
        Ok(self
            .read_shard(shard, from, to, limit)
            .await?
            .into_iter()
            .map(|e| e.id)
            .collect())
    }

    /// Removes exactly these entries (ones that were read and uploaded) and
    /// nothing else; entries already gone are ignored. Atomic and durable.
    /// Returns how many were removed.
    async fn trim(&self, entries: &[EntryRef]) -> Result<u64, IndexError>;

    /// Removes the entries of `shard` with `id < to` that `watermark`
    /// covers: exactly the ones a window that read `[MIN, to)` under that
    /// watermark holds, never a late entry committed after it. Returns how
    /// many. What the collector calls after an upload; a backend that can
    /// drop whole runs of entries without naming each one should.
    async fn trim_covered(
        &self,
        shard: u32,
        to: EntryId,
        watermark: Watermark,
    ) -> Result<u64, IndexError> {
        const PAGE: usize = 10_000;
        let mut removed = 0;
        let mut from = EntryId::MIN;
        loop {
            let ids = self.read_shard_ids(shard, from, to, PAGE).await?;
            let Some(&last) = ids.last() else {
                break;
            };
            let full = ids.len() == PAGE;
            let covered: Vec<EntryRef> = ids
                .into_iter()
                .filter(|id| watermark.covers(id))
                .map(|id| EntryRef { shard, id })
                .collect();
            if !covered.is_empty() {
                removed += self.trim(&covered).await?;
            }
            match last.successor() {
                Some(next) if full => from = next,
                _ => break,
            }
        }
        Ok(removed)
    }

    /// The last committed value of a source marker.
    async fn marker(&self, name: &str) -> Result<Option<Vec<u8>>, IndexError>;

    /// All committed markers whose name starts with `prefix`, by name.
    async fn markers(&self, prefix: &str) -> Result<Vec<SourceMarker>, IndexError>;

    /// The backlog per shard: entries, bytes, oldest entry.
    async fn stats(&self) -> Result<IndexStats, IndexError>;

    /// What has been committed so far: every entry whose write returned
    /// before this call is covered, and no entry committed after it is. The
    /// collector records it with a planned window, so that reading the
    /// window again after a crash yields exactly the same entries even when
    /// late changes (with older times) arrived meanwhile.
    async fn watermark(&self) -> Result<Watermark, IndexError>;

    /// Latest mode: freezes the window the collector planned (`None` lifts
    /// it). An entry the window covers is kept when a newer change of its
    /// object version arrives; the newer one is stored beside it, and is
    /// the one later changes replace. So a window resumed after a crash
    /// holds exactly the entries it held when it was planned, and its
    /// object name always means the same bytes. Every-write mode keeps
    /// every entry anyway and ignores it.
    /// Refused like a fenced write once `fence`'s lease has a newer holder.
    async fn freeze(
        &self,
        window: Option<FrozenWindow>,
        fence: Option<&Fence>,
    ) -> Result<(), IndexError>;

    /// Finishes batches that a writer which stopped mid-way left half
    /// written, where a batch is not one atomic commit (the RADOS backend);
    /// returns how many. An instance calls it when it takes over the
    /// capture, before capturing. Backends whose commits are atomic have
    /// nothing to do.
    async fn recover(&self) -> Result<u64, IndexError> {
        Ok(0)
    }
}

/// See [`ChangeIndex::freeze`]: the entries a planned window covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrozenWindow {
    /// Entries below this id…
    pub cutoff: EntryId,
    /// …that this watermark covers.
    pub watermark: Watermark,
}

impl FrozenWindow {
    /// Whether the window holds the entry `id`.
    pub fn covers(&self, id: &EntryId) -> bool {
        *id < self.cutoff && self.watermark.covers(id)
    }

    /// `<cutoff id> <watermark>`, as the backends store it.
    pub fn encode(&self) -> Vec<u8> {
        format!("{} {}", self.cutoff, self.watermark.0).into_bytes()
    }

    /// The window [`FrozenWindow::encode`] stored; `None` if `bytes` is not one.
    pub fn decode(bytes: &[u8]) -> Option<FrozenWindow> {
        let (cutoff, watermark) = std::str::from_utf8(bytes).ok()?.split_once(' ')?;
        Some(FrozenWindow {
            cutoff: cutoff.parse().ok()?,
            watermark: Watermark(watermark.parse().ok()?),
        })
    }
}

/// See [`ChangeIndex::watermark`]. Backends hand out `seq` values that grow
/// in commit order, so one number is enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Watermark(pub u64);

impl Watermark {
    /// Whether the entry `id` was committed when this was taken.
    pub fn covers(&self, id: &EntryId) -> bool {
        id.seq <= self.0
    }
}
