//! The temporary, sharded, time-ordered change index (DESIGN.md, "Index").
//!
//! [`ChangeIndex`] is the seam every backend implements; [`conformance`]
//! holds the one test suite they all must pass. Merging shards by time is
//! written once here ([`MergedReader`]) on top of per-shard pages, so backends
//! only need ordered per-shard reads.

pub mod block;
pub mod codec;
pub mod conformance;
mod db_slot;
pub mod embedded;
pub mod fenced;
pub mod key;
pub mod rados;
pub mod shard;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use key::EntryId;
pub use shard::shard_of;

use crate::record::{ChangeRecord, InvalidRecord};

/// How changes to the same object are kept until the collector writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IndexMode {
    /// One entry per change: the log shows every write.
    EveryWrite,
    /// One entry per (bucket, key, version_id): a newer change replaces the
    /// pending older one, for consumers that only need the latest state.
    Latest,
}

impl IndexMode {
    pub fn as_str(self) -> &'static str {
        match self {
            IndexMode::EveryWrite => "every-write",
            IndexMode::Latest => "latest",
        }
    }
}

impl fmt::Display for IndexMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IndexMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "every-write" => Ok(IndexMode::EveryWrite),
            "latest" => Ok(IndexMode::Latest),
            other => Err(format!(
                "unknown index mode {other:?} (expected every-write or latest)"
            )),
        }
    }
}

/// The fixed shape of an index, stored in it when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexLayout {
    pub shards: u32,
    pub mode: IndexMode,
}

pub const MAX_SHARDS: u32 = 4096;
/// Source markers are positions such as RGW bilog markers; a few KiB is
/// plenty, and the bound keeps a bad caller from bloating every commit.
pub const MAX_MARKER_BYTES: usize = 64 * 1024;
const MAX_MARKER_NAME_BYTES: usize = 512;

/// An opaque capture position, committed atomically with the entries it
/// covers so that a restart resumes exactly after the last commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMarker {
    pub name: String,
    pub value: Vec<u8>,
}

/// Entries and markers that become durable together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub records: Vec<ChangeRecord>,
    pub markers: Vec<SourceMarker>,
    /// The lease the writer holds: the batch is refused, as a whole, once
    /// a newer holder took that lease (see [`Fence`]).
    pub fence: Option<Fence>,
}

/// A lease term, carried by every state write of a leased role (collector,
/// capture): the backend refuses the write, in the same atomic step that
/// would apply it, once another holder got a newer token for the lease. So
/// a holder frozen past its lease (SIGSTOP, a VM pause) cannot move state
/// back or write twice what its successor wrote when it resumes: a renewal
/// loop can only notice the loss after the fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub lease: String,
    pub token: u64,
}

impl Fence {
    pub fn of(lease: &crate::lease::Lease) -> Fence {
        Fence {
            lease: lease.name.clone(),
            token: lease.token,
        }
    }
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(mut self, record: ChangeRecord) -> Self {
        self.records.push(record);
        self
    }

    pub fn marker(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.markers.push(SourceMarker {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    pub fn fenced(mut self, fence: Option<Fence>) -> Self {
        self.fence = fence;
        self
    }

    /// Refuses the whole batch if any part is invalid, so that nothing of a
    /// bad batch is ever written.
    pub fn validate(&self) -> Result<(), IndexError> {
        for (position, record) in self.records.iter().enumerate() {
            record
                .validate()
                .map_err(|reason| IndexError::InvalidRecord { position, reason })?;
        }
        for marker in &self.markers {
            if marker.name.is_empty() || marker.name.len() > MAX_MARKER_NAME_BYTES {
                return Err(IndexError::InvalidMarker {
                    name: marker.name.clone(),
                    reason: format!("name must be 1 to {MAX_MARKER_NAME_BYTES} bytes"),
                });
            }
            if marker.value.len() > MAX_MARKER_BYTES {
                return Err(IndexError::InvalidMarker {
                    name: marker.name.clone(),
                    reason: format!(
                        "value is {} bytes, more than {MAX_MARKER_BYTES}",
                        marker.value.len()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Where an entry lives: enough to trim it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryRef {
    pub shard: u32,
    pub id: EntryId,
}

/// One pending change as stored in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedEntry {
    pub shard: u32,
    pub id: EntryId,
    pub record: ChangeRecord,
}

impl IndexedEntry {
    pub fn entry_ref(&self) -> EntryRef {
        EntryRef {
            shard: self.shard,
            id: self.id,
        }
    }
}

/// Entries in their stored form: refs and the encoded records ([`codec`])
/// back to back in one buffer, so a page of thousands of entries costs a
/// few allocations and a reader that only turns them into log lines never
/// builds a [`ChangeRecord`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedEntries {
    refs: Vec<EntryRef>,
    ends: Vec<usize>,
    data: Vec<u8>,
}

impl EncodedEntries {
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

    pub fn push(&mut self, entry: EntryRef, record: &[u8]) {
        self.data.extend_from_slice(record);
        self.refs.push(entry);
        self.ends.push(self.data.len());
    }

    pub fn len(&self) -> usize {
        self.refs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    pub fn clear(&mut self) {
        self.refs.clear();
        self.ends.clear();
        self.data.clear();
    }

    /// Bytes of encoded records held.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    pub fn entry_ref(&self, i: usize) -> EntryRef {
        self.refs[i]
    }

    pub fn record(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[start..self.ends[i]]
    }

    pub fn iter(&self) -> impl Iterator<Item = (EntryRef, &[u8])> + '_ {
        (0..self.len()).map(|i| (self.refs[i], self.record(i)))
    }

    pub fn last_ref(&self) -> Option<EntryRef> {
        self.refs.last().copied()
    }

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

/// What a write did with each record, in batch order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Stored under this key.
    Stored(EntryRef),
    /// Latest mode: a pending entry for the same object version is newer, so
    /// this older change adds nothing.
    Superseded(EntryRef),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShardStats {
    pub shard: u32,
    pub entries: u64,
    /// Bytes of keys and values stored for this shard's entries.
    pub bytes: u64,
    /// Source time of the oldest pending entry, nanoseconds since the epoch.
    pub oldest_time_ns: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IndexStats {
    pub shards: Vec<ShardStats>,
}

impl IndexStats {
    pub fn entries(&self) -> u64 {
        self.shards.iter().map(|s| s.entries).sum()
    }
    pub fn bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.bytes).sum()
    }
    pub fn oldest_time_ns(&self) -> Option<u64> {
        self.shards.iter().filter_map(|s| s.oldest_time_ns).min()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("record {position} of the batch is invalid: {reason}")]
    InvalidRecord {
        position: usize,
        reason: InvalidRecord,
    },
    #[error("marker {name:?} is invalid: {reason}")]
    InvalidMarker { name: String, reason: String },
    #[error("shard {shard} does not exist (the index has {shards} shards)")]
    NoSuchShard { shard: u32, shards: u32 },
    #[error(
        "the index at {location} was created with {stored}, but the configuration asks for {requested}; \
         use the stored layout or point the index at a new location"
    )]
    LayoutMismatch {
        location: String,
        stored: String,
        requested: String,
    },
    #[error("invalid index layout: {0}")]
    InvalidLayout(String),
    #[error("the index data is corrupt: {0}")]
    Corrupt(String),
    #[error("index backend error: {0}")]
    Backend(String),
    #[error("the index is closed")]
    Closed,
    #[error(
        "write refused: lease {lease:?} was taken over by a newer holder (ours had token {token}); \
         this instance no longer holds it"
    )]
    Fenced { lease: String, token: u64 },
}

impl IndexLayout {
    pub fn validate(&self) -> Result<(), IndexError> {
        if self.shards == 0 || self.shards > MAX_SHARDS {
            return Err(IndexError::InvalidLayout(format!(
                "shards must be 1 to {MAX_SHARDS}, not {}",
                self.shards
            )));
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        format!("{} shards in {} mode", self.shards, self.mode)
    }
}

/// The durable, sharded change index.
#[async_trait]
pub trait ChangeIndex: Send + Sync + 'static {
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
    pub cutoff: EntryId,
    pub watermark: Watermark,
}

impl FrozenWindow {
    pub fn covers(&self, id: &EntryId) -> bool {
        *id < self.cutoff && self.watermark.covers(id)
    }

    /// `<cutoff id> <watermark>`, as the backends store it.
    pub fn encode(&self) -> Vec<u8> {
        format!("{} {}", self.cutoff, self.watermark.0).into_bytes()
    }

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
    pub fn covers(&self, id: &EntryId) -> bool {
        id.seq <= self.0
    }
}

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
