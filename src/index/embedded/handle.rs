//! The handle: options, opening (or creating) the file, starting the
//! writer thread, and closing it on drop.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use redb::Database;
use tokio::sync::{mpsc, oneshot};

use super::meta::{count_entries, init_meta};
use super::request::{PreparedBatch, PreparedEntry, Request};
use super::writer::Writer;
use super::{backend, backend_doing, backend_msg, INDEX_FILE};
use crate::index::codec::encode_record;
use crate::index::db_slot::DbSlot;
use crate::index::{shard_of, IndexError, IndexLayout, WriteBatch};

/// Requests waiting for the writer; callers wait (back-pressure) beyond it.
const QUEUE_DEPTH: usize = 1024;

/// Tuning of the embedded index; the defaults suit production.
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
    /// At most this many entries in one block.
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
    pub(super) layout: IndexLayout,
    pub(super) location: PathBuf,
    pub(super) db: Arc<DbSlot>,
    pub(super) requests: Option<mpsc::Sender<Request>>,
    pub(super) writer: Option<JoinHandle<()>>,
    pub(super) counters: Arc<Mutex<Vec<ShardCounter>>>,
    /// The highest seq committed; seqs grow in commit order because only
    /// the writer thread hands them out, and each open starts a new session.
    pub(super) committed_seq: Arc<AtomicU64>,
    pub(super) trim_span: usize,
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ShardCounter {
    pub(super) entries: u64,
    pub(super) bytes: u64,
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
        Err(e) => return Err(backend_doing(&fresh, "cannot remove", e)),
    }
    {
        let db = Database::create(&fresh).map_err(|e| backend(&fresh, e))?;
        init_meta(&db, &fresh, layout)?;
    }
    std::fs::File::open(&fresh)
        .and_then(|f| f.sync_all())
        .map_err(|e| backend_doing(&fresh, "cannot sync", e))?;
    std::fs::rename(&fresh, location)
        .map_err(|e| backend_doing(location, "cannot rename into place", e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| backend_doing(dir, "cannot sync", e))?;
    Ok(())
}

impl EmbeddedIndex {
    /// Opens the index in `dir`, creating it with `layout` on first use. An
    /// existing index keeps the layout it was created with; asking for
    /// another one is an error rather than a silent reshard.
    pub fn open(dir: &Path, layout: IndexLayout) -> Result<Self, IndexError> {
        Self::open_with(dir, layout, EmbeddedOptions::default())
    }

    /// [`EmbeddedIndex::open`] with tuning.
    pub fn open_with(
        dir: &Path,
        layout: IndexLayout,
        options: EmbeddedOptions,
    ) -> Result<Self, IndexError> {
        layout.validate()?;
        std::fs::create_dir_all(dir).map_err(|e| backend_doing(dir, "cannot create", e))?;
        let location = dir.join(INDEX_FILE);
        if !location.exists() {
            create_whole(dir, &location, layout)?;
        }
        let db = Database::builder()
            .set_cache_size(options.cache_bytes.max(1 << 20))
            .create(&location)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => backend_msg(
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
            .map_err(|e| backend_doing(&location, "cannot start the writer thread", e))?;
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

    /// The index file.
    pub fn location(&self) -> &Path {
        &self.location
    }

    pub(super) fn prepare(&self, batch: &WriteBatch) -> Result<PreparedBatch, IndexError> {
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

    pub(super) async fn submit<T>(
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

    pub(super) fn check_shard(&self, shard: u32) -> Result<(), IndexError> {
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
