//! The RADOS backend (DESIGN.md, "Index"): the index lives in a RADOS pool,
//! so several zonelog instances on several machines share one index and
//! one collector lease.
//!
//! Objects (all in the configured pool and namespace):
//!
//! - `zonelog.<zone>.control` — omap: `layout` (shards, mode, format),
//!   `session` (a counter that hands out writer sessions and watermark
//!   epochs), `m.<name>` (source markers and collector window records),
//!   `i.<batch>` (intents of batches in flight), `lease.<name>` (the
//!   fencing token and expiry of each lease) and `fence.<name>` (the token
//!   alone, what fenced ops compare).
//! - `zonelog.<zone>.shard.<n>` — omap: `e.<entry id text>` → the encoded
//!   record (`index::codec`), `v.<object version key>` → entry id text (the
//!   latest-mode second index, in the same object so one write op updates
//!   both), `floor` (the lowest writer session still allowed to write) and
//!   `rev` (bumped by every latest-mode write and trim, the guard of their
//!   read-modify-write) and, in latest mode, `frozen` (the collector token
//!   that froze or lifted a window, then the window).
//!
//! Atomicity: one write op per shard object, all shards of a batch in flight
//! at once. A batch with entries and markers is first recorded as an intent
//! in the control object; each shard op carries the batch's "applied" key
//! `t.<batch>` guarded by its absence; the markers follow in one op that
//! also removes the intent ("entries before markers"). A writer that dies
//! half-way leaves the intent, and [`ChangeIndex::recover`] (run by the next
//! capture holder) applies the missing shard parts and the markers: every
//! change is indexed exactly once, never skipped, never replayed.
//!
//! Watermark: a write op on a shard carries `floor < session + 1`. A
//! watermark takes a new number `E` from the control counter and raises
//! every shard's floor to `E`; from then on writes of older sessions fail
//! with ECANCELED and their writer takes a new session (> `E`) and retries.
//! So entries committed before the watermark call have sessions `< E` and
//! entries committed after it `>= E`: `Watermark((E << 32) - 1)` covers
//! exactly the former, whichever instance wrote them.
//!
//! Leases are `cls_lock` exclusive locks (name `zonelog.lease.<name>`,
//! cookie = holder id) on the control object, or on shard object `n` for the
//! lease `shard-<n>`; cls_lock drops expired holders by itself. cls_lock has
//! no counter, so the fencing token is kept in the control object's omap
//! (`lease.<name>`), raised with a compare-and-set only by the instance
//! that just took the lock.
//!
//! Fencing: the token is also kept alone under `fence.<name>`, and every
//! fenced op on the control object compares it, so a writer whose lease
//! term is over cannot move a marker. Shard ops cannot compare it (another
//! object), so [`ChangeIndex::recover`] first raises every floor: a frozen
//! writer's next shard op fails, and it must prove its fence before it may
//! take a new session and retry (docs/decisions.md, "Fencing tokens on
//! state writes").

mod freeze;
mod intent;
mod layout;
mod lease;
mod read;
mod session;
mod trim;
mod write;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{
    ChangeIndex, EncodedEntries, EntryId, EntryRef, Fence, FrozenWindow, IndexError, IndexLayout,
    IndexStats, SourceMarker, Watermark, WriteBatch, Written,
};
use crate::error::BackendError;
use crate::lease::LeaseError;
use crate::rados::{Cluster, IoCtx, OmapRead, RadosError};
use layout::MARKER_PREFIX;
use session::Session;
use write::{flush_groups, QueuedWrite, WriteQueue};

/// Where the index lives and how to reach it (see `[index.rados]`).
#[derive(Debug, Clone)]
pub struct RadosOptions {
    /// The `ceph.conf` to read.
    pub ceph_conf: PathBuf,
    /// Client name without `client.`.
    pub user: String,
    /// The keyring, if `ceph.conf` does not name it.
    pub keyring: Option<PathBuf>,
    /// The pool of the index (replicated: omap).
    pub pool: String,
    /// The namespace in the pool, one per deployment.
    pub namespace: String,
    /// Object names start with `zonelog.<zone>.`.
    pub zone: String,
    /// librados' own timeout for OSD and monitor calls.
    pub op_timeout: Duration,
}

/// The RADOS backend: one omap object per shard and a control object
/// for markers, windows and leases, shared by several instances.
pub struct RadosIndex {
    inner: Arc<Inner>,
    queue: Arc<Mutex<WriteQueue>>,
}

struct Inner {
    io: IoCtx,
    layout: IndexLayout,
    control: String,
    shards: Vec<String>,
    location: String,
    session: Mutex<Session>,
    txns: std::sync::atomic::AtomicU64,
    /// Per shard: "applied" keys of finished batches, removed by the next
    /// op on that shard.
    done_txns: Mutex<HashMap<u32, Vec<String>>>,
}

impl RadosIndex {
    /// Connects, creates the index on first use (control object, then the
    /// shard objects; both idempotent) and refuses a different stored layout.
    pub async fn open(
        options: RadosOptions,
        layout: IndexLayout,
    ) -> Result<RadosIndex, IndexError> {
        layout.validate()?;
        let inner = tokio::task::spawn_blocking(move || Inner::open(options, layout))
            .await
            .map_err(|e| IndexError::Backend(BackendError::new("rados open task", e)))??;
        Ok(RadosIndex {
            inner: Arc::new(inner),
            queue: Arc::new(Mutex::new(WriteQueue::default())),
        })
    }

    /// Pool, namespace and zone, for messages.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// librados calls block: run one on a blocking thread.
    async fn on_blocking_thread<T, E, F>(
        &self,
        f: F,
        backend: fn(BackendError) -> E,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, E> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| backend(BackendError::new("rados task", e)))?
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, IndexError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, IndexError> + Send + 'static,
    {
        self.on_blocking_thread(f, IndexError::Backend).await
    }

    async fn lease_blocking<T, F>(&self, f: F) -> Result<T, LeaseError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, LeaseError> + Send + 'static,
    {
        self.on_blocking_thread(f, LeaseError::Backend).await
    }

    fn check_shard(&self, shard: u32) -> Result<(), IndexError> {
        if shard >= self.inner.layout.shards {
            return Err(IndexError::NoSuchShard {
                shard,
                shards: self.inner.layout.shards,
            });
        }
        Ok(())
    }
}

impl Inner {
    fn open(options: RadosOptions, layout: IndexLayout) -> Result<Inner, IndexError> {
        let location = format!(
            "rados pool {:?} namespace {:?}, zone {:?}",
            options.pool, options.namespace, options.zone
        );
        let fail = |e: RadosError| IndexError::Backend(BackendError::new(&location, e));
        let cluster = Cluster::connect(
            &options.ceph_conf,
            &options.user,
            options.keyring.as_deref(),
            options.op_timeout,
        )
        .map_err(fail)?;
        let io = IoCtx::new(&cluster, &options.pool, &options.namespace).map_err(fail)?;
        let control = format!("zonelog.{}.control", options.zone);
        let shards = (0..layout.shards)
            .map(|n| format!("zonelog.{}.shard.{n}", options.zone))
            .collect();
        let inner = Inner {
            io,
            layout,
            control,
            shards,
            location,
            session: Mutex::new(Session {
                id: 0,
                next: 0,
                stale: true,
            }),
            txns: std::sync::atomic::AtomicU64::new(0),
            done_txns: Mutex::new(HashMap::new()),
        };
        inner.create_or_check()?;
        Ok(inner)
    }

    fn err(&self, e: RadosError) -> IndexError {
        IndexError::Backend(BackendError::new(&self.location, e))
    }

    fn get(&self, oid: &str, key: &[u8]) -> Result<Option<Vec<u8>>, IndexError> {
        let keys = vec![key.to_vec()];
        let (pairs, _) = self
            .io
            .omap_read(oid, &OmapRead::Keys(&keys))
            .map_err(|e| self.err(e))?;
        Ok(pairs.into_iter().next().map(|(_, v)| v))
    }
}

#[async_trait]
impl ChangeIndex for RadosIndex {
    fn layout(&self) -> IndexLayout {
        self.inner.layout
    }

    async fn write(&self, batch: WriteBatch) -> Result<Vec<Written>, IndexError> {
        let (prepared, markers, fence) = self.prepare(batch)?;
        if prepared.is_empty() && markers.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let lead = {
            let mut q = self
                .queue
                .lock()
                .map_err(|_| IndexError::Backend("write queue poisoned".into()))?;
            q.waiting.push(QueuedWrite {
                entries: prepared,
                markers,
                fence,
                reply,
            });
            !std::mem::replace(&mut q.flushing, true)
        };
        if lead {
            // Its own task: a caller that gives up waiting must not strand
            // the others' writes.
            tokio::spawn(flush_groups(self.inner.clone(), self.queue.clone()));
        }
        answer
            .await
            .map_err(|_| IndexError::Backend("the write group was dropped".into()))?
    }

    async fn recover(&self) -> Result<u64, IndexError> {
        self.blocking(|inner| inner.recover()).await
    }

    async fn read_shard_encoded(
        &self,
        shard: u32,
        from: EntryId,
        to: EntryId,
        limit: usize,
    ) -> Result<EncodedEntries, IndexError> {
        self.check_shard(shard)?;
        if from >= to || limit == 0 {
            return Ok(EncodedEntries::new());
        }
        self.blocking(move |inner| inner.read_shard(shard, from, to, limit))
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
        self.blocking(move |inner| inner.trim(entries)).await
    }

    async fn marker(&self, name: &str) -> Result<Option<Vec<u8>>, IndexError> {
        let key = format!("{MARKER_PREFIX}{name}").into_bytes();
        self.blocking(move |inner| inner.get(&inner.control, &key))
            .await
    }

    async fn markers(&self, prefix: &str) -> Result<Vec<SourceMarker>, IndexError> {
        if prefix.contains('\0') {
            return Ok(Vec::new());
        }
        let prefix = prefix.to_string();
        self.blocking(move |inner| inner.markers(&prefix)).await
    }

    async fn stats(&self) -> Result<IndexStats, IndexError> {
        self.blocking(|inner| inner.stats()).await
    }

    async fn watermark(&self) -> Result<Watermark, IndexError> {
        self.blocking(|inner| inner.watermark()).await
    }

    async fn freeze(
        &self,
        window: Option<FrozenWindow>,
        fence: Option<&Fence>,
    ) -> Result<(), IndexError> {
        let fence = fence.cloned();
        self.blocking(move |inner| inner.freeze(window, fence))
            .await
    }
}
