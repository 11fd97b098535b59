//! The embedded index backend: one redb file on local disk.
//!
//! Why redb and why this shape: see docs/decisions.md ("Embedded store").
//! redb allows one write transaction at a time and pays one fdatasync per
//! commit, so every change to the file goes through a single writer thread
//! that gathers whatever writes, trims and lease calls are waiting and
//! commits them together (group commit): concurrent callers share one
//! fsync, and each caller's batch is still all-or-nothing because a group
//! commits or fails as a whole. Reads use redb's MVCC snapshots and never
//! wait for the writer.
//!
//! Tables:
//! - `blocks`: shard (u32 BE) ‖ first EntryId (16 B BE) → a block of that
//!   shard's entries ([`super::block`], records encoded by
//!   [`super::codec`]). The blocks of a shard never overlap: every id
//!   between a block's first and last entry belongs to that block, so a
//!   shard is one contiguous key range in time order and a read finds its
//!   start with one lookup. A commit group adds each shard's new entries as
//!   one block (or merges them into the shard's small tail block), which is
//!   what makes batched ingest fast: a commit writes a few rows per shard
//!   instead of one B-tree insert per entry;
//! - `latest` (latest mode only): object version key → shard ‖ EntryId of
//!   its pending entry;
//! - `markers`: source marker name → value;
//! - `leases`: lease name → holder, token, expiry;
//! - `meta`: the layout, the last writer session, the last lease token.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redb::{
    Database, Durability, ReadableDatabase as _, ReadableTable as _, TableDefinition,
    WriteTransaction,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::block::{block_size, write_block, Block};
use super::codec::{encode_record, encoded_version_key};
use super::db_slot::DbSlot;
use super::{
    shard_of, ChangeIndex, EncodedEntries, EntryId, EntryRef, Fence, FrozenWindow, IndexError,
    IndexLayout, IndexStats, ShardStats, SourceMarker, Watermark, WriteBatch, Written,
};
use crate::lease::{validate_request, Lease, LeaseError, LeaseStore};

const BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blocks");
const LATEST: TableDefinition<&[u8], &[u8]> = TableDefinition::new("latest");
/// The window `freeze` holds, in `markers` (empty: none).
const FROZEN_MARKER: &str = "index/frozen-window";
const MARKERS: TableDefinition<&str, &[u8]> = TableDefinition::new("markers");
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const META_LAYOUT: &str = "layout";
const META_SESSION: &str = "session";
const META_LEASE_TOKEN: &str = "lease_token";

/// The index file inside the configured directory.
pub const INDEX_FILE: &str = "index.redb";

/// Version of the table layout, kept in the stored layout record. 1 was one
/// row per entry; 2 stores blocks.
const STORE_FORMAT: u32 = 2;

const ENTRY_KEY_BYTES: usize = 4 + super::key::ENTRY_ID_BYTES;

/// A group stops taking more requests at this many entries, so one commit
/// (and the memory it dirties) stays bounded under any backlog.
const GROUP_MAX_ENTRIES: usize = 50_000;
/// Requests waiting for the writer; callers wait (back-pressure) beyond it.
const QUEUE_DEPTH: usize = 1024;

#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// redb's page cache.
    pub cache_bytes: usize,
    /// Bounds of one block: large enough that a commit group writes a few
    /// rows per shard, small enough that rewriting one (for a late entry in
    /// its range, or a trim that leaves part of it) stays cheap and a
    /// reader that wants one entry does not parse much. Tests shrink them
    /// to exercise splits and merges.
    pub block_max_bytes: usize,
    pub block_max_entries: usize,
    /// A tail block below this size takes the next group's appends by being
    /// rewritten, so that writers with small commits do not leave one tiny
    /// block per commit; above it, appends start a new block.
    pub block_small_bytes: usize,
    /// Entries one `trim_covered` commit spans at most, so the removals it
    /// remembers entry by entry (from blocks that do not go whole) stay
    /// bounded. Tests shrink it to exercise spans that start mid-block.
    pub trim_span: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            cache_bytes: 64 << 20,
            block_max_bytes: 128 << 10,
            block_max_entries: 2048,
            block_small_bytes: 4 << 10,
            trim_span: 100_000,
        }
    }
}

/// The embedded index and lease store at one directory.
pub struct EmbeddedIndex {
    layout: IndexLayout,
    location: PathBuf,
    db: Arc<DbSlot>,
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    counters: Arc<Mutex<Vec<ShardCounter>>>,
    /// The highest seq committed; seqs grow in commit order because only
    /// the writer thread hands them out, and each open starts a new session.
    committed_seq: Arc<AtomicU64>,
    trim_span: usize,
}

#[derive(Debug, Clone, Copy, Default)]
struct ShardCounter {
    entries: u64,
    bytes: u64,
}

/// A validated batch, encoded by the caller (so that the writer thread only
/// does store work) into one buffer (so that a batch costs one allocation
/// and one free, not one per record).
struct PreparedBatch {
    entries: Vec<PreparedEntry>,
    data: Vec<u8>,
}

/// A record of a prepared batch: `data[start..end]`.
struct PreparedEntry {
    shard: u32,
    time_ns: u64,
    start: usize,
    end: usize,
}

enum Request {
    Write {
        batch: PreparedBatch,
        markers: Vec<SourceMarker>,
        fence: Option<Fence>,
        reply: oneshot::Sender<Result<Vec<Written>, IndexError>>,
    },
    Trim {
        entries: Vec<EntryRef>,
        reply: oneshot::Sender<Result<u64, IndexError>>,
    },
    TrimCovered {
        shard: u32,
        from: EntryId,
        to: EntryId,
        watermark: Watermark,
        reply: oneshot::Sender<Result<u64, IndexError>>,
    },
    Lease {
        op: LeaseOp,
        reply: oneshot::Sender<Result<Option<Lease>, LeaseError>>,
    },
}

enum LeaseOp {
    Acquire {
        name: String,
        holder: String,
        ttl: Duration,
    },
    Renew {
        lease: Lease,
        ttl: Duration,
    },
    Release {
        lease: Lease,
    },
}

#[derive(Serialize, Deserialize)]
struct StoredLayout {
    format: u32,
    #[serde(flatten)]
    layout: IndexLayout,
}

#[derive(Serialize, Deserialize)]
struct StoredLease {
    holder: String,
    token: u64,
    expires_unix_ms: u64,
}

fn backend(location: &Path, e: impl std::fmt::Display) -> IndexError {
    IndexError::Backend(format!("{}: {e}", location.display()))
}

/// Makes a new index file under a temporary name and renames it into
/// place once redb has written it whole, so a kill -9 while it is being
/// made leaves either no index or a complete empty one, never a file redb
/// cannot open (seen: "magic number mismatch" after a kill during the
/// first open). The temporary file never held an acknowledged change.
fn create_whole(dir: &Path, location: &Path, layout: IndexLayout) -> Result<(), IndexError> {
    let fresh = dir.join(format!("{INDEX_FILE}.new"));
    match std::fs::remove_file(&fresh) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(backend(&fresh, format!("cannot remove: {e}"))),
    }
    {
        let db = Database::create(&fresh).map_err(|e| backend(&fresh, e))?;
        init_meta(&db, &fresh, layout)?;
    }
    std::fs::File::open(&fresh)
        .and_then(|f| f.sync_all())
        .map_err(|e| backend(&fresh, format!("cannot sync: {e}")))?;
    std::fs::rename(&fresh, location)
        .map_err(|e| backend(location, format!("cannot rename into place: {e}")))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| backend(dir, format!("cannot sync: {e}")))?;
    Ok(())
}

impl EmbeddedIndex {
    /// Opens the index in `dir`, creating it with `layout` on first use. An
    /// existing index keeps the layout it was created with; asking for
    /// another one is an error rather than a silent reshard.
    pub fn open(dir: &Path, layout: IndexLayout) -> Result<Self, IndexError> {
        Self::open_with(dir, layout, EmbeddedOptions::default())
    }

    pub fn open_with(
        dir: &Path,
        layout: IndexLayout,
        options: EmbeddedOptions,
    ) -> Result<Self, IndexError> {
        layout.validate()?;
        std::fs::create_dir_all(dir).map_err(|e| backend(dir, format!("cannot create: {e}")))?;
        let location = dir.join(INDEX_FILE);
        if !location.exists() {
            create_whole(dir, &location, layout)?;
        }
        let db = Database::builder()
            .set_cache_size(options.cache_bytes.max(1 << 20))
            .create(&location)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => backend(
                    &location,
                    "the index is open in another zonelog process (the embedded index has one \
                     owner; use the rados backend to share an index)",
                ),
                other => backend(&location, other),
            })?;
        let session = init_meta(&db, &location, layout)?;
        let counters = Arc::new(Mutex::new(count_entries(&db, &location, layout.shards)?));
        let db = Arc::new(DbSlot::new(&location, options.cache_bytes, db));
        let (requests, inbox) = mpsc::channel(QUEUE_DEPTH);
        let committed_seq = Arc::new(AtomicU64::new(session << 32));
        let trim_span = options.trim_span.max(1);
        let writer = Writer {
            db: db.clone(),
            reopen: false,
            location: location.clone(),
            layout,
            session,
            counter: 0,
            counters: counters.clone(),
            committed_seq: committed_seq.clone(),
            options,
        };
        let writer = std::thread::Builder::new()
            .name("zonelog-index-writer".into())
            .spawn(move || writer.run(inbox))
            .map_err(|e| backend(&location, format!("cannot start the writer thread: {e}")))?;
        Ok(EmbeddedIndex {
            layout,
            location,
            db,
            requests: Some(requests),
            writer: Some(writer),
            counters,
            committed_seq,
            trim_span,
        })
    }

    pub fn location(&self) -> &Path {
        &self.location
    }

    fn prepare(&self, batch: &WriteBatch) -> Result<PreparedBatch, IndexError> {
        batch.validate()?;
        let mut prepared = PreparedBatch {
            entries: Vec::with_capacity(batch.records.len()),
            data: Vec::with_capacity(batch.records.len() * 160),
        };
        for (position, record) in batch.records.iter().enumerate() {
            let time_ns = record
                .time_ns()
                .map_err(|reason| IndexError::InvalidRecord { position, reason })?;
            let start = prepared.data.len();
            encode_record(record, &mut prepared.data);
            prepared.entries.push(PreparedEntry {
                shard: shard_of(&record.bucket, &record.key, self.layout.shards),
                time_ns,
                start,
                end: prepared.data.len(),
            });
        }
        Ok(prepared)
    }

    async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, IndexError> {
        let requests = self.requests.as_ref().ok_or(IndexError::Closed)?;
        let (reply, answer) = oneshot::channel();
        requests
            .send(make(reply))
            .await
            .map_err(|_| IndexError::Closed)?;
        answer.await.map_err(|_| IndexError::Closed)
    }

    async fn lease_op(&self, op: LeaseOp) -> Result<Option<Lease>, LeaseError> {
        self.submit(|reply| Request::Lease { op, reply })
            .await
            .map_err(|e| LeaseError::Backend(e.to_string()))?
    }

    /// [`scan_range`] on a blocking thread, after the checks every read
    /// shares.
    /// Up to `limit` entries of a shard in `[from, to)`, each handed with
    /// its encoded record to `push`, which gathers them in `out`.
    async fn scan_blocking<T: Send + 'static>(
        &self,
        shard: u32,
        from: EntryId,
        to: EntryId,
        limit: usize,
        out: T,
        push: impl FnMut(&mut T, EntryId, &[u8]) + Send + 'static,
    ) -> Result<T, IndexError> {
        self.check_shard(shard)?;
        if from >= to || limit == 0 {
            return Ok(out);
        }
        let db = self.db.get().map_err(|e| backend(&self.location, e))?;
        let location = self.location.clone();
        tokio::task::spawn_blocking(move || {
            scan_range(&db, &location, shard, (from, to, limit), out, push)
        })
        .await
        .map_err(|e| backend(&self.location, e))?
    }

    fn check_shard(&self, shard: u32) -> Result<(), IndexError> {
        if shard >= self.layout.shards {
            return Err(IndexError::NoSuchShard {
                shard,
                shards: self.layout.shards,
            });
        }
        Ok(())
    }
}

impl Drop for EmbeddedIndex {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what it holds; joining it
        // releases the file, so the index can be reopened at once.
        self.requests.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn entry_key(shard: u32, id: EntryId) -> [u8; ENTRY_KEY_BYTES] {
    let mut key = [0u8; ENTRY_KEY_BYTES];
    key[..4].copy_from_slice(&shard.to_be_bytes());
    key[4..].copy_from_slice(&id.to_bytes());
    key
}

fn split_entry_key(key: &[u8]) -> Option<(u32, EntryId)> {
    if key.len() != ENTRY_KEY_BYTES {
        return None;
    }
    let shard = u32::from_be_bytes(key[..4].try_into().ok()?);
    Some((shard, EntryId::from_bytes(&key[4..])?))
}

/// Checks or records the layout and hands out this open's writer session.
fn init_meta(db: &Database, location: &Path, layout: IndexLayout) -> Result<u64, IndexError> {
    let err = |e: &dyn std::fmt::Display| backend(location, e);
    let tx = db.begin_write().map_err(|e| err(&e))?;
    let session;
    {
        let mut meta = tx.open_table(META).map_err(|e| err(&e))?;
        let stored = meta
            .get(META_LAYOUT)
            .map_err(|e| err(&e))?
            .map(|v| v.value().to_vec());
        match stored {
            Some(bytes) => {
                let stored: StoredLayout = serde_json::from_slice(&bytes).map_err(|e| {
                    IndexError::Corrupt(format!("{}: layout record: {e}", location.display()))
                })?;
                if stored.format != STORE_FORMAT {
                    return Err(backend(
                        location,
                        format!(
                            "the index was written in store format {} and this zonelog reads \
                             format {STORE_FORMAT}; drain it with the zonelog that wrote it, \
                             or point the index at a new location",
                            stored.format
                        ),
                    ));
                }
                if stored.layout != layout {
                    return Err(IndexError::LayoutMismatch {
                        location: location.display().to_string(),
                        stored: stored.layout.describe(),
                        requested: layout.describe(),
                    });
                }
            }
            None => {
                let bytes = serde_json::to_vec(&StoredLayout {
                    format: STORE_FORMAT,
                    layout,
                })
                .map_err(|e| err(&e))?;
                meta.insert(META_LAYOUT, bytes.as_slice())
                    .map_err(|e| err(&e))?;
            }
        }
        session = read_u64(&meta, META_SESSION, location)? + 1;
        meta.insert(META_SESSION, session.to_le_bytes().as_slice())
            .map_err(|e| err(&e))?;
        tx.open_table(BLOCKS).map_err(|e| err(&e))?;
        tx.open_table(LATEST).map_err(|e| err(&e))?;
        tx.open_table(MARKERS).map_err(|e| err(&e))?;
        tx.open_table(LEASES).map_err(|e| err(&e))?;
    }
    tx.commit().map_err(|e| err(&e))?;
    Ok(session)
}

fn read_u64(
    table: &impl redb::ReadableTable<&'static str, &'static [u8]>,
    name: &str,
    location: &Path,
) -> Result<u64, IndexError> {
    match table.get(name).map_err(|e| backend(location, e))? {
        None => Ok(0),
        Some(v) => {
            let bytes: [u8; 8] = v.value().try_into().map_err(|_| {
                IndexError::Corrupt(format!(
                    "{}: meta {name} is not 8 bytes",
                    location.display()
                ))
            })?;
            Ok(u64::from_le_bytes(bytes))
        }
    }
}

/// Entry and byte counts per shard, rebuilt at open so that stats never
/// cost a scan later.
fn count_entries(
    db: &Database,
    location: &Path,
    shards: u32,
) -> Result<Vec<ShardCounter>, IndexError> {
    let err = |e: &dyn std::fmt::Display| backend(location, e);
    let mut counters = vec![ShardCounter::default(); shards as usize];
    let tx = db.begin_read().map_err(|e| err(&e))?;
    let blocks = tx.open_table(BLOCKS).map_err(|e| err(&e))?;
    for item in blocks.iter().map_err(|e| err(&e))? {
        let (k, v) = item.map_err(|e| err(&e))?;
        let (shard, block) = check_block(k.value(), v.value(), location)?;
        let c = counters
            .get_mut(shard as usize)
            .ok_or_else(|| IndexError::Corrupt(format!("block in shard {shard}")))?;
        c.entries += block.len() as u64;
        c.bytes += (k.value().len() + v.value().len()) as u64;
    }
    Ok(counters)
}

/// Parses a stored block and checks that its key names its first entry.
fn check_block<'a>(
    key: &[u8],
    value: &'a [u8],
    location: &Path,
) -> Result<(u32, Block<'a>), IndexError> {
    let corrupt = |what: String| IndexError::Corrupt(format!("{}: {what}", location.display()));
    let (shard, first) =
        split_entry_key(key).ok_or_else(|| corrupt(format!("bad block key {key:02x?}")))?;
    let block = Block::parse(value).map_err(|e| corrupt(format!("block {shard}/{first}: {e}")))?;
    if block.first() != first {
        return Err(corrupt(format!(
            "block {shard}/{first} starts at {}",
            block.first()
        )));
    }
    Ok((shard, block))
}

struct Writer {
    db: Arc<DbSlot>,
    /// The last commit failed with an I/O error: reopen before the next.
    reopen: bool,
    location: PathBuf,
    layout: IndexLayout,
    session: u64,
    counter: u32,
    counters: Arc<Mutex<Vec<ShardCounter>>>,
    committed_seq: Arc<AtomicU64>,
    options: EmbeddedOptions,
}

/// Why a group did not commit; every request in it gets this answer.
#[derive(Debug)]
struct Failure {
    corrupt: bool,
    /// redb refuses everything after it until the file is reopened.
    io: bool,
    message: String,
}

impl Failure {
    fn corrupt(message: impl Into<String>) -> Self {
        Failure {
            corrupt: true,
            io: false,
            message: message.into(),
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure {
            corrupt: false,
            io: false,
            message,
        }
    }
}

/// The storage error inside a redb error, if it has one.
trait StorageCause {
    fn storage(&self) -> Option<&redb::StorageError>;
}

impl StorageCause for redb::StorageError {
    fn storage(&self) -> Option<&redb::StorageError> {
        Some(self)
    }
}

impl StorageCause for redb::TableError {
    fn storage(&self) -> Option<&redb::StorageError> {
        match self {
            redb::TableError::Storage(s) => Some(s),
            _ => None,
        }
    }
}

impl StorageCause for redb::TransactionError {
    fn storage(&self) -> Option<&redb::StorageError> {
        match self {
            redb::TransactionError::Storage(s) => Some(s),
            _ => None,
        }
    }
}

impl StorageCause for redb::CommitError {
    fn storage(&self) -> Option<&redb::StorageError> {
        match self {
            redb::CommitError::Storage(s) => Some(s),
            _ => None,
        }
    }
}

impl StorageCause for redb::SetDurabilityError {
    fn storage(&self) -> Option<&redb::StorageError> {
        None
    }
}

macro_rules! failure_from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                let io = e.storage().is_some_and(super::db_slot::needs_reopen);
                Failure { io, ..Failure::from(e.to_string()) }
            }
        }
    )*};
}
failure_from_redb!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// What a group adds to and removes from the shards. It is applied to the
/// blocks once, just before the commit, so that concurrent small writes
/// cost one block write per shard per group rather than one per request;
/// the requests of the group see each other's changes here.
struct Group {
    /// The batches' record buffers; `Pending` entries point into them.
    buffers: Vec<Vec<u8>>,
    shards: BTreeMap<u32, ShardEdits>,
    /// Every id minted in this group has a larger seq, every stored id a
    /// smaller or equal one.
    minted_after: u64,
}

#[derive(Default)]
struct ShardEdits {
    /// New entries in arrival order; sorted once, at flush.
    inserts: Vec<Pending>,
    /// New entries that a later request of the group removed again.
    dropped: HashSet<EntryId>,
    /// Stored entries the group removes (each known to be stored).
    removes: BTreeSet<EntryId>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    id: EntryId,
    buffer: usize,
    start: usize,
    end: usize,
}

impl Group {
    fn record(&self, p: &Pending) -> &[u8] {
        &self.buffers[p.buffer][p.start..p.end]
    }

    fn is_minted(&self, id: EntryId) -> bool {
        id.seq > self.minted_after
    }

    /// Removes a live entry minted in this group. A linear search, but only
    /// a trim naming an id the group itself just minted gets here, and no
    /// caller can have read such an id yet.
    fn take_pending(&mut self, shard: u32, id: EntryId) -> Option<Pending> {
        let edits = self.shards.get_mut(&shard)?;
        if edits.dropped.contains(&id) {
            return None;
        }
        let found = *edits.inserts.iter().find(|p| p.id == id)?;
        edits.dropped.insert(id);
        Some(found)
    }
}
type Deltas = HashMap<u32, (i64, i64)>;
type BytesTable<'t> = redb::Table<'t, &'static [u8], &'static [u8]>;

/// What one request did inside the group's transaction, answered only
/// after the group committed.
enum Outcome {
    Write(
        Vec<Written>,
        oneshot::Sender<Result<Vec<Written>, IndexError>>,
    ),
    Trim(u64, oneshot::Sender<Result<u64, IndexError>>),
    /// A request refused on its own (a stale fence); the rest of the group
    /// commits.
    Refused(IndexError, PendingReply),
    Lease(
        Result<Option<Lease>, LeaseError>,
        oneshot::Sender<Result<Option<Lease>, LeaseError>>,
    ),
}

impl Writer {
    fn run(mut self, mut inbox: mpsc::Receiver<Request>) {
        while let Some(first) = inbox.blocking_recv() {
            let mut group = vec![first];
            let mut size = group[0].size();
            while size < GROUP_MAX_ENTRIES {
                match inbox.try_recv() {
                    Ok(next) => {
                        size += next.size();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(group);
        }
    }

    fn commit_group(&mut self, group: Vec<Request>) {
        if self.reopen {
            match self.db.reopen() {
                Ok(()) => self.reopen = false,
                Err(message) => {
                    let failure = Failure::from(format!(
                        "{}: an I/O error (a full disk?) left the index closed: {message}",
                        self.location.display()
                    ));
                    for request in group {
                        request.into_reply().fail(&failure);
                    }
                    return;
                }
            }
        }
        let mut deltas = Deltas::new();
        let session_before = (self.session, self.counter);
        let result = self.apply_group(group, &mut deltas);
        match result {
            Ok(outcomes) => {
                self.committed_seq.store(
                    (self.session << 32) | u64::from(self.counter),
                    Ordering::Release,
                );
                if let Ok(mut counters) = self.counters.lock() {
                    for (shard, (entries, bytes)) in deltas {
                        let c = &mut counters[shard as usize];
                        c.entries = c.entries.saturating_add_signed(entries);
                        c.bytes = c.bytes.saturating_add_signed(bytes);
                    }
                }
                for outcome in outcomes {
                    // A caller that went away no longer needs the answer;
                    // its data is committed all the same.
                    match outcome {
                        Outcome::Write(w, reply) => drop(reply.send(Ok(w))),
                        Outcome::Trim(n, reply) => drop(reply.send(Ok(n))),
                        Outcome::Refused(e, reply) => {
                            tracing::warn!(error = %e, "embedded index: a write of a superseded lease term refused; nothing of it was written");
                            reply.refuse(e)
                        }
                        Outcome::Lease(l, reply) => drop(reply.send(l)),
                    }
                }
            }
            Err((error, replies)) => {
                // Nothing of the group was committed; ids handed out in it
                // were never stored, so reusing them is safe.
                (self.session, self.counter) = session_before;
                self.reopen |= error.io;
                for reply in replies {
                    reply.fail(&error);
                }
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn apply_group(
        &mut self,
        group: Vec<Request>,
        deltas: &mut Deltas,
    ) -> Result<Vec<Outcome>, (Failure, Vec<PendingReply>)> {
        let location = self.location.clone();
        let at = |f: Failure| Failure {
            message: format!("{}: {}", location.display(), f.message),
            ..f
        };
        let mut outcomes = Vec::with_capacity(group.len());
        let db = match self.db.get() {
            Ok(db) => db,
            Err(e) => {
                return Err((
                    at(e.into()),
                    group.into_iter().map(Request::into_reply).collect(),
                ))
            }
        };
        let mut tx = match db.begin_write() {
            Ok(tx) => tx,
            Err(e) => {
                return Err((
                    at(e.into()),
                    group.into_iter().map(Request::into_reply).collect(),
                ))
            }
        };
        let mut failed: Option<Failure> = None;
        if let Err(e) = tx.set_durability(Durability::Immediate) {
            failed = Some(e.into());
        }
        let mut group_edits = Group {
            buffers: Vec::new(),
            shards: BTreeMap::new(),
            minted_after: (self.session << 32) | u64::from(self.counter),
        };
        let mut pending = Vec::new();
        for request in group {
            if failed.is_some() {
                pending.push(request.into_reply());
                continue;
            }
            match request {
                Request::Write {
                    batch,
                    markers,
                    fence,
                    reply,
                } => match holds_fence(&tx, fence.as_ref()) {
                    Ok(false) => outcomes.push(Outcome::Refused(
                        fenced(fence.as_ref()),
                        PendingReply::Write(reply),
                    )),
                    Ok(true) => match self.apply_write(&tx, batch, &markers, &mut group_edits) {
                        Ok(written) => outcomes.push(Outcome::Write(written, reply)),
                        Err(e) => {
                            failed = Some(e);
                            pending.push(PendingReply::Write(reply));
                        }
                    },
                    Err(e) => {
                        failed = Some(e);
                        pending.push(PendingReply::Write(reply));
                    }
                },
                Request::Trim { entries, reply } => {
                    match self.apply_trim(&tx, &entries, &mut group_edits) {
                        Ok(n) => outcomes.push(Outcome::Trim(n, reply)),
                        Err(e) => {
                            failed = Some(e);
                            pending.push(PendingReply::Trim(reply));
                        }
                    }
                }
                Request::TrimCovered {
                    shard,
                    from,
                    to,
                    watermark,
                    reply,
                } => match self.apply_trim_covered(
                    &tx,
                    (shard, from, to, watermark),
                    &mut group_edits,
                    deltas,
                ) {
                    Ok(n) => outcomes.push(Outcome::Trim(n, reply)),
                    Err(e) => {
                        failed = Some(e);
                        pending.push(PendingReply::Trim(reply));
                    }
                },
                Request::Lease { op, reply } => match apply_lease(&tx, op) {
                    Ok(result) => outcomes.push(Outcome::Lease(result, reply)),
                    Err(e) => {
                        failed = Some(e.into());
                        pending.push(PendingReply::Lease(reply));
                    }
                },
            }
        }
        if failed.is_none() {
            if let Err(e) = self.flush(&tx, group_edits, deltas) {
                failed = Some(e);
            }
        }
        if failed.is_none() {
            if let Err(e) = self.store_session(&tx) {
                failed = Some(e.into());
            }
        }
        if let Some(e) = failed {
            drop(tx.abort());
            pending.extend(outcomes.into_iter().map(Outcome::into_reply));
            return Err((at(e), pending));
        }
        if let Err(e) = tx.commit() {
            pending.extend(outcomes.into_iter().map(Outcome::into_reply));
            let failure = Failure {
                message: format!("commit failed: {e}"),
                ..Failure::from(e)
            };
            return Err((at(failure), pending));
        }
        Ok(outcomes)
    }

    fn next_id(&mut self, time_ns: u64) -> EntryId {
        if self.counter == u32::MAX {
            self.session += 1;
            self.counter = 0;
        }
        self.counter += 1;
        EntryId::new(time_ns, (self.session << 32) | u64::from(self.counter))
    }

    /// Persists the session if the counter rolled over into a new one, so a
    /// later open never reuses it.
    fn store_session(&self, tx: &WriteTransaction) -> Result<(), String> {
        let mut meta = tx.open_table(META).map_err(|e| e.to_string())?;
        let stored = read_u64(&meta, META_SESSION, &self.location).map_err(|e| e.to_string())?;
        if stored < self.session {
            meta.insert(META_SESSION, self.session.to_le_bytes().as_slice())
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn latest_table<'t>(
        &self,
        tx: &'t WriteTransaction,
    ) -> Result<Option<BytesTable<'t>>, Failure> {
        if self.layout.mode == super::IndexMode::Latest {
            Ok(Some(tx.open_table(LATEST)?))
        } else {
            Ok(None)
        }
    }

    fn apply_write(
        &mut self,
        tx: &WriteTransaction,
        batch: PreparedBatch,
        markers: &[SourceMarker],
        group: &mut Group,
    ) -> Result<Vec<Written>, Failure> {
        let mut latest = self.latest_table(tx)?;
        let frozen = match latest {
            Some(_) => tx
                .open_table(MARKERS)?
                .get(FROZEN_MARKER)?
                .and_then(|v| FrozenWindow::decode(v.value())),
            None => None,
        };
        let buffer = group.buffers.len();
        let mut written = Vec::with_capacity(batch.entries.len());
        for entry in &batch.entries {
            let record = &batch.data[entry.start..entry.end];
            let mut version_key = None;
            if let Some(latest) = latest.as_mut() {
                // The caller encoded this record; it always has a version key.
                let key = encoded_version_key(record).map_err(|e| Failure::from(e.to_string()))?;
                let existing: Option<[u8; ENTRY_KEY_BYTES]> = match latest.get(key)? {
                    Some(v) => Some(
                        v.value()
                            .try_into()
                            .map_err(|_| Failure::corrupt("bad latest-index value"))?,
                    ),
                    None => None,
                };
                if let Some(existing) = existing {
                    let (shard, id) = split_entry_key(&existing)
                        .ok_or_else(|| Failure::corrupt("bad latest-index value"))?;
                    if id.time_ns > entry.time_ns {
                        written.push(Written::Superseded(EntryRef { shard, id }));
                        continue;
                    }
                    // Same or newer time: the later arrival is the newer
                    // change; an entry a planned window holds stays.
                    let minted = group.is_minted(id);
                    let edits = group.shards.entry(shard).or_default();
                    if minted {
                        edits.dropped.insert(id);
                    } else if !frozen.is_some_and(|w| w.covers(&id)) {
                        edits.removes.insert(id);
                    }
                }
                version_key = Some(key);
            }
            let id = self.next_id(entry.time_ns);
            if let (Some(latest), Some(key)) = (latest.as_mut(), version_key) {
                latest.insert(key, entry_key(entry.shard, id).as_slice())?;
            }
            group
                .shards
                .entry(entry.shard)
                .or_default()
                .inserts
                .push(Pending {
                    id,
                    buffer,
                    start: entry.start,
                    end: entry.end,
                });
            written.push(Written::Stored(EntryRef {
                shard: entry.shard,
                id,
            }));
        }
        group.buffers.push(batch.data);
        if !markers.is_empty() {
            let mut table = tx.open_table(MARKERS)?;
            for m in markers {
                table.insert(m.name.as_str(), m.value.as_slice())?;
            }
        }
        Ok(written)
    }

    /// Counts and records the removal of those of `refs` that exist, in
    /// stored blocks or earlier in the group; the blocks change in `flush`.
    fn apply_trim(
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
    fn apply_trim_covered(
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

    /// Applies the group's edits to the blocks, shard by shard. Each change
    /// goes to the block whose range it falls in (the last block starting
    /// at or before it); changes before a shard's first block, or appends
    /// after a block that is large enough, become new blocks. Either way
    /// the blocks of a shard stay disjoint.
    fn flush(
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

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// Whether the lease `fence` names still has its token: read in the write
/// transaction itself, so no takeover falls between the check and the
/// write. A released or expired lease keeps its token until a new holder
/// takes it.
fn holds_fence(tx: &WriteTransaction, fence: Option<&Fence>) -> Result<bool, Failure> {
    let Some(fence) = fence else { return Ok(true) };
    let leases = tx.open_table(LEASES)?;
    let Some(v) = leases.get(fence.lease.as_str())? else {
        return Ok(false);
    };
    let stored: StoredLease = serde_json::from_slice(v.value())
        .map_err(|e| Failure::corrupt(format!("lease record {}: {e}", fence.lease)))?;
    Ok(stored.token == fence.token)
}

fn fenced(fence: Option<&Fence>) -> IndexError {
    let (lease, token) = fence.map_or((String::new(), 0), |f| (f.lease.clone(), f.token));
    IndexError::Fenced { lease, token }
}

fn apply_lease(
    tx: &WriteTransaction,
    op: LeaseOp,
) -> Result<Result<Option<Lease>, LeaseError>, String> {
    let e = |e: redb::Error| e.to_string();
    let mut leases = tx.open_table(LEASES).map_err(|x| e(x.into()))?;
    let now = SystemTime::now();
    let name = match &op {
        LeaseOp::Acquire { name, .. } => name.clone(),
        LeaseOp::Renew { lease, .. } | LeaseOp::Release { lease } => lease.name.clone(),
    };
    let current: Option<StoredLease> = match leases.get(name.as_str()).map_err(|x| e(x.into()))? {
        Some(v) => Some(serde_json::from_slice(v.value()).map_err(|x| x.to_string())?),
        None => None,
    };
    let live = current
        .as_ref()
        .filter(|l| l.expires_unix_ms > unix_ms(now));
    let to_lease = |stored: &StoredLease| Lease {
        name: name.clone(),
        holder: stored.holder.clone(),
        token: stored.token,
        expires_at: UNIX_EPOCH + Duration::from_millis(stored.expires_unix_ms),
    };
    let put = |leases: &mut redb::Table<&str, &[u8]>, stored: &StoredLease| -> Result<(), String> {
        let bytes = serde_json::to_vec(stored).map_err(|x| x.to_string())?;
        leases
            .insert(name.as_str(), bytes.as_slice())
            .map_err(|x| e(x.into()))?;
        Ok(())
    };
    let expiry = |ttl: Duration| unix_ms(now + ttl);
    match op {
        LeaseOp::Acquire { holder, ttl, .. } => {
            if let Some(l) = live {
                if l.holder != holder {
                    let remaining = Duration::from_millis(l.expires_unix_ms - unix_ms(now));
                    return Ok(Err(LeaseError::Held {
                        name,
                        holder: l.holder.clone(),
                        remaining,
                    }));
                }
                let stored = StoredLease {
                    holder,
                    token: l.token,
                    expires_unix_ms: expiry(ttl),
                };
                put(&mut leases, &stored)?;
                return Ok(Ok(Some(to_lease(&stored))));
            }
            drop(leases);
            let mut meta = tx.open_table(META).map_err(|x| e(x.into()))?;
            let token = read_u64(&meta, META_LEASE_TOKEN, Path::new("leases"))
                .map_err(|x| x.to_string())?
                + 1;
            meta.insert(META_LEASE_TOKEN, token.to_le_bytes().as_slice())
                .map_err(|x| e(x.into()))?;
            drop(meta);
            let mut leases = tx.open_table(LEASES).map_err(|x| e(x.into()))?;
            let stored = StoredLease {
                holder,
                token,
                expires_unix_ms: expiry(ttl),
            };
            put(&mut leases, &stored)?;
            Ok(Ok(Some(to_lease(&stored))))
        }
        LeaseOp::Renew { lease, ttl } => match live {
            Some(l) if l.holder == lease.holder && l.token == lease.token => {
                let stored = StoredLease {
                    holder: lease.holder,
                    token: l.token,
                    expires_unix_ms: expiry(ttl),
                };
                put(&mut leases, &stored)?;
                Ok(Ok(Some(to_lease(&stored))))
            }
            _ => Ok(Err(LeaseError::Lost {
                name,
                holder: lease.holder,
                token: lease.token,
            })),
        },
        LeaseOp::Release { lease } => {
            if let Some(l) = current
                .as_ref()
                .filter(|l| l.holder == lease.holder && l.token == lease.token)
            {
                // Expired at once, but its token stays: a fenced write of
                // this term must still be told apart from a newer one.
                let stored = StoredLease {
                    holder: l.holder.clone(),
                    token: l.token,
                    expires_unix_ms: 0,
                };
                put(&mut leases, &stored)?;
            }
            Ok(Ok(None))
        }
    }
}

/// A reply channel whose request did not commit.
enum PendingReply {
    Write(oneshot::Sender<Result<Vec<Written>, IndexError>>),
    Trim(oneshot::Sender<Result<u64, IndexError>>),
    Lease(oneshot::Sender<Result<Option<Lease>, LeaseError>>),
}

impl PendingReply {
    fn refuse(self, error: IndexError) {
        match self {
            PendingReply::Write(r) => drop(r.send(Err(error))),
            PendingReply::Trim(r) => drop(r.send(Err(error))),
            PendingReply::Lease(r) => drop(r.send(Err(LeaseError::Backend(error.to_string())))),
        }
    }

    fn fail(self, failure: &Failure) {
        let index_error = || {
            let message = failure.message.clone();
            if failure.corrupt {
                IndexError::Corrupt(message)
            } else {
                IndexError::Backend(message)
            }
        };
        match self {
            PendingReply::Write(r) => drop(r.send(Err(index_error()))),
            PendingReply::Trim(r) => drop(r.send(Err(index_error()))),
            PendingReply::Lease(r) => {
                drop(r.send(Err(LeaseError::Backend(failure.message.clone()))))
            }
        }
    }
}

impl Request {
    fn size(&self) -> usize {
        match self {
            Request::Write { batch, .. } => batch.entries.len().max(1),
            Request::Trim { entries, .. } => entries.len().max(1),
            // Mostly whole blocks dropped: cheap for any number of entries.
            Request::TrimCovered { .. } => 1,
            Request::Lease { .. } => 1,
        }
    }

    fn into_reply(self) -> PendingReply {
        match self {
            Request::Write { reply, .. } => PendingReply::Write(reply),
            Request::Trim { reply, .. } | Request::TrimCovered { reply, .. } => {
                PendingReply::Trim(reply)
            }
            Request::Lease { reply, .. } => PendingReply::Lease(reply),
        }
    }
}

impl Outcome {
    fn into_reply(self) -> PendingReply {
        match self {
            Outcome::Write(_, reply) => PendingReply::Write(reply),
            Outcome::Trim(_, reply) => PendingReply::Trim(reply),
            Outcome::Refused(_, reply) => reply,
            Outcome::Lease(_, reply) => PendingReply::Lease(reply),
        }
    }
}

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
        let err = |e: &dyn std::fmt::Display| backend(&self.location, e);
        let tx = self
            .db
            .get()
            .map_err(|e| err(&e))?
            .begin_read()
            .map_err(|e| err(&e))?;
        let table = tx.open_table(MARKERS).map_err(|e| err(&e))?;
        let value = table.get(name).map_err(|e| err(&e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    async fn markers(&self, prefix: &str) -> Result<Vec<SourceMarker>, IndexError> {
        let err = |e: &dyn std::fmt::Display| backend(&self.location, e);
        let tx = self
            .db
            .get()
            .map_err(|e| err(&e))?
            .begin_read()
            .map_err(|e| err(&e))?;
        let table = tx.open_table(MARKERS).map_err(|e| err(&e))?;
        let mut out = Vec::new();
        for item in table.range(prefix..).map_err(|e| err(&e))? {
            let (k, v) = item.map_err(|e| err(&e))?;
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
            .map_err(|_| backend(&self.location, "stats lock poisoned"))?
            .clone();
        let err = |e: &dyn std::fmt::Display| backend(&self.location, e);
        let tx = self
            .db
            .get()
            .map_err(|e| err(&e))?
            .begin_read()
            .map_err(|e| err(&e))?;
        let table = tx.open_table(BLOCKS).map_err(|e| err(&e))?;
        let mut shards = Vec::with_capacity(counters.len());
        for (shard, c) in counters.iter().enumerate() {
            let shard = shard as u32;
            // Blocks are never empty and keyed by their first entry.
            let oldest = match table
                .range(
                    entry_key(shard, EntryId::MIN).as_slice()
                        ..=entry_key(shard, EntryId::MAX).as_slice(),
                )
                .map_err(|e| err(&e))?
                .next()
            {
                Some(item) => {
                    let (k, _) = item.map_err(|e| err(&e))?;
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
        if self.layout.mode != super::IndexMode::Latest {
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

/// See [`EmbeddedIndex::scan_blocking`].
fn scan_range<T>(
    db: &Database,
    location: &Path,
    shard: u32,
    (from, to, limit): (EntryId, EntryId, usize),
    mut out: T,
    mut push: impl FnMut(&mut T, EntryId, &[u8]),
) -> Result<T, IndexError> {
    let err = |e: &dyn std::fmt::Display| backend(location, e);
    let tx = db.begin_read().map_err(|e| err(&e))?;
    let table = tx.open_table(BLOCKS).map_err(|e| err(&e))?;
    let mut taken = 0;
    let mut emit = |out: &mut T, key: &[u8], value: &[u8]| -> Result<bool, IndexError> {
        let (_, block) = check_block(key, value, location)?;
        let start = block.search(from).unwrap_or_else(|at| at);
        for i in start..block.len() {
            let id = block.id(i);
            if id >= to || taken >= limit {
                return Ok(false);
            }
            push(out, id, block.record(i));
            taken += 1;
        }
        Ok(true)
    };
    // Blocks never overlap, so only the last block starting before `from`
    // can hold entries at or after it; the rest start inside the range.
    let (start, end) = (entry_key(shard, from), entry_key(shard, to));
    let floor = table
        .range(entry_key(shard, EntryId::MIN).as_slice()..start.as_slice())
        .map_err(|e| err(&e))?
        .next_back();
    if let Some(item) = floor {
        let (k, v) = item.map_err(|e| err(&e))?;
        if !emit(&mut out, k.value(), v.value())? {
            return Ok(out);
        }
    }
    for item in table
        .range(start.as_slice()..end.as_slice())
        .map_err(|e| err(&e))?
    {
        let (k, v) = item.map_err(|e| err(&e))?;
        if !emit(&mut out, k.value(), v.value())? {
            break;
        }
    }
    Ok(out)
}

#[async_trait]
impl LeaseStore for EmbeddedIndex {
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<Lease, LeaseError> {
        validate_request(name, holder, ttl)?;
        self.lease_op(LeaseOp::Acquire {
            name: name.to_string(),
            holder: holder.to_string(),
            ttl,
        })
        .await?
        .ok_or_else(|| LeaseError::Backend("acquire returned no lease".into()))
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LeaseError> {
        validate_request(&lease.name, &lease.holder, ttl)?;
        self.lease_op(LeaseOp::Renew {
            lease: lease.clone(),
            ttl,
        })
        .await?
        .ok_or_else(|| LeaseError::Backend("renew returned no lease".into()))
    }

    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        self.lease_op(LeaseOp::Release {
            lease: lease.clone(),
        })
        .await
        .map(|_| ())
    }

    async fn holder(&self, name: &str) -> Result<Option<Lease>, LeaseError> {
        let err = |e: &dyn std::fmt::Display| LeaseError::Backend(e.to_string());
        let tx = self
            .db
            .get()
            .map_err(|e| err(&e))?
            .begin_read()
            .map_err(|e| err(&e))?;
        let table = tx.open_table(LEASES).map_err(|e| err(&e))?;
        let Some(v) = table.get(name).map_err(|e| err(&e))? else {
            return Ok(None);
        };
        let stored: StoredLease = serde_json::from_slice(v.value()).map_err(|e| err(&e))?;
        if stored.expires_unix_ms <= unix_ms(SystemTime::now()) {
            return Ok(None);
        }
        Ok(Some(Lease {
            name: name.to_string(),
            holder: stored.holder,
            token: stored.token,
            expires_at: UNIX_EPOCH + Duration::from_millis(stored.expires_unix_ms),
        }))
    }
}
