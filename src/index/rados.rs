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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::codec::{encode_record, encoded_version_key, object_version_key};
use super::key::ENTRY_ID_TEXT_LEN;
use super::{
    shard_of, ChangeIndex, EncodedEntries, EntryId, EntryRef, Fence, FrozenWindow, IndexError,
    IndexLayout, IndexMode, IndexStats, ShardStats, SourceMarker, Watermark, WriteBatch, Written,
};
use crate::lease::{validate_request, Lease, LeaseError, LeaseStore};
use crate::rados::{Cluster, IoCtx, OmapPairs, OmapRead, RadosError, WriteOp};

const FORMAT: u32 = 1;
const LAYOUT_KEY: &str = "layout";
const SESSION_KEY: &str = "session";
const FLOOR_KEY: &str = "floor";
const REV_KEY: &str = "rev";
/// Latest mode: the window `freeze` holds (see `ChangeIndex::freeze`).
const FROZEN_KEY: &str = "frozen";
const ENTRY_PREFIX: &str = "e.";
const VERSION_PREFIX: &[u8] = b"v.";
const MARKER_PREFIX: &str = "m.";
const LEASE_PREFIX: &str = "lease.";
/// Control object: `fence.<lease>` → the lease's current token, alone, so
/// a fenced op compares it exactly (`lease.<name>` changes with renewals).
const FENCE_PREFIX: &str = "fence.";
/// Control object: a batch with entries and markers, before its markers.
const INTENT_PREFIX: &str = "i.";
/// Shard object: this shard's part of that batch is applied.
const APPLIED_PREFIX: &str = "t.";
/// Guarded writes retry on a lost compare; contention is between a few
/// instances, so a bound this large is only hit when something is wrong.
const MAX_ATTEMPTS: usize = 64;
/// Pairs per omap read request (the OSD's own cap is 131072).
const READ_PAGE: usize = 4096;

/// Where the index lives and how to reach it (see `[index.rados]`).
#[derive(Debug, Clone)]
pub struct RadosOptions {
    pub ceph_conf: PathBuf,
    /// Client name without `client.`.
    pub user: String,
    pub keyring: Option<PathBuf>,
    pub pool: String,
    pub namespace: String,
    /// Object names start with `zonelog.<zone>.`.
    pub zone: String,
    /// librados' own timeout for OSD and monitor calls.
    pub op_timeout: Duration,
}

pub struct RadosIndex {
    inner: Arc<Inner>,
    queue: Arc<Mutex<WriteQueue>>,
}

/// Group commit: concurrent writes of one instance are merged into one
/// round of shard ops (and one intent), so a shard op carries the entries
/// of many callers — the OSD's ops per second, not entries, bound ingest.
#[derive(Default)]
struct WriteQueue {
    waiting: Vec<QueuedWrite>,
    flushing: bool,
}

struct QueuedWrite {
    entries: Vec<Prepared>,
    markers: Vec<SourceMarker>,
    fence: Option<Fence>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Written>, IndexError>>,
}

/// Entries merged into one group at most (as the embedded backend).
const GROUP_MAX_ENTRIES: usize = 50_000;

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

/// The writer session: the high half of every `seq` this instance mints.
struct Session {
    id: u64,
    next: u64,
    /// A watermark of this instance passed the session: take a new one
    /// before the next write instead of learning it from a failed compare.
    stale: bool,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct StoredLayout {
    format: u32,
    shards: u32,
    mode: IndexMode,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeaseRecord {
    holder: String,
    token: u64,
    expires_ms: u64,
}

fn num(n: u64) -> String {
    format!("{n:020}")
}

fn parse_num(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

fn entry_key(id: EntryId) -> String {
    format!("{ENTRY_PREFIX}{id}")
}

fn version_key(vkey: &[u8]) -> Vec<u8> {
    let mut out = VERSION_PREFIX.to_vec();
    out.extend_from_slice(vkey);
    out
}

fn fence_key(lease: &str) -> String {
    format!("{FENCE_PREFIX}{lease}")
}

/// A shard's `frozen` value: the collector token that set it, then the
/// window if one is frozen. The token lets a stale collector's freeze or
/// lift be refused by the shard op itself.
fn encode_frozen(token: u64, window: Option<FrozenWindow>) -> Vec<u8> {
    let mut out = num(token).into_bytes();
    if let Some(w) = window {
        out.push(b' ');
        out.extend_from_slice(&w.encode());
    }
    out
}

fn decode_frozen(bytes: &[u8]) -> (u64, Option<FrozenWindow>) {
    let (token, window) = match bytes.iter().position(|b| *b == b' ') {
        Some(at) => (&bytes[..at], FrozenWindow::decode(&bytes[at + 1..])),
        None => (bytes, None),
    };
    (parse_num(token).unwrap_or(0), window)
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// One record of a batch, encoded on the caller's thread.
struct Prepared {
    shard: u32,
    time_ns: u64,
    data: Vec<u8>,
    /// `v.` key of the object version (latest mode).
    vkey: Option<Vec<u8>>,
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
            .map_err(|e| IndexError::Backend(format!("rados open task: {e}")))??;
        Ok(RadosIndex {
            inner: Arc::new(inner),
            queue: Arc::new(Mutex::new(WriteQueue::default())),
        })
    }

    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// librados calls block: run one on a blocking thread.
    async fn on_blocking_thread<T, E, F>(&self, f: F, backend: fn(String) -> E) -> Result<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, E> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| backend(format!("rados task: {e}")))?
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

    #[allow(clippy::type_complexity)]
    fn prepare(
        &self,
        batch: WriteBatch,
    ) -> Result<(Vec<Prepared>, Vec<SourceMarker>, Option<Fence>), IndexError> {
        batch.validate()?;
        for m in &batch.markers {
            if m.name.contains('\0') {
                return Err(IndexError::InvalidMarker {
                    name: m.name.clone(),
                    reason: "a RADOS marker name cannot contain NUL".into(),
                });
            }
        }
        let layout = self.inner.layout;
        let mut prepared = Vec::with_capacity(batch.records.len());
        for (position, record) in batch.records.iter().enumerate() {
            let time_ns = record
                .time_ns()
                .map_err(|reason| IndexError::InvalidRecord { position, reason })?;
            let mut data = Vec::with_capacity(128);
            encode_record(record, &mut data);
            let vkey = (layout.mode == IndexMode::Latest).then(|| {
                version_key(&object_version_key(
                    &record.bucket,
                    &record.key,
                    record.version_id.as_deref(),
                ))
            });
            prepared.push(Prepared {
                shard: shard_of(&record.bucket, &record.key, layout.shards),
                time_ns,
                data,
                vkey,
            });
        }
        Ok((prepared, batch.markers, batch.fence))
    }

    /// Test hook for crash tests: writes the batch's intent and only the
    /// first `shards_applied` of its shard parts, then stops — what a
    /// writer killed at that moment leaves behind.
    #[doc(hidden)]
    pub async fn write_and_stop(
        &self,
        batch: WriteBatch,
        shards_applied: usize,
    ) -> Result<(), IndexError> {
        let (prepared, markers, _) = self.prepare(batch)?;
        self.blocking(move |inner| inner.write_partial(prepared, markers, shards_applied))
            .await
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
        let fail = |e: RadosError| IndexError::Backend(format!("{location}: {e}"));
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
        IndexError::Backend(format!("{}: {e}", self.location))
    }

    fn create_or_check(&self) -> Result<(), IndexError> {
        let wanted = StoredLayout {
            format: FORMAT,
            shards: self.layout.shards,
            mode: self.layout.mode,
        };
        let json = serde_json::to_vec(&wanted)
            .map_err(|e| IndexError::Backend(format!("layout encoding: {e}")))?;
        let mut create = WriteOp::new().create(true);
        create.set(LAYOUT_KEY, json).set(SESSION_KEY, num(0));
        match self.io.operate(&self.control, &create) {
            Ok(()) => {}
            Err(e) if e.is_exists() => {
                let stored = self
                    .get(&self.control, LAYOUT_KEY.as_bytes())?
                    .ok_or_else(|| {
                        IndexError::Corrupt(format!(
                            "{}: the control object has no layout",
                            self.location
                        ))
                    })?;
                let stored: StoredLayout = serde_json::from_slice(&stored).map_err(|e| {
                    IndexError::Corrupt(format!("{}: stored layout: {e}", self.location))
                })?;
                if stored.format != FORMAT {
                    return Err(IndexError::Corrupt(format!(
                        "{}: stored format {} is not {FORMAT}",
                        self.location, stored.format
                    )));
                }
                if stored != wanted {
                    return Err(IndexError::LayoutMismatch {
                        location: self.location.clone(),
                        stored: IndexLayout {
                            shards: stored.shards,
                            mode: stored.mode,
                        }
                        .describe(),
                        requested: self.layout.describe(),
                    });
                }
            }
            Err(e) => return Err(self.err(e)),
        }
        // The shard objects exist before anyone writes to them; a crash
        // half-way through is repaired by the next open.
        let ops: Vec<(String, WriteOp)> = self
            .shards
            .iter()
            .map(|oid| {
                let mut op = WriteOp::new().create(true);
                op.set(FLOOR_KEY, num(0)).set(REV_KEY, num(0));
                (oid.clone(), op)
            })
            .collect();
        for result in self.io.operate_many(&ops) {
            match result {
                Ok(()) => {}
                Err(e) if e.is_exists() => {}
                Err(e) => return Err(self.err(e)),
            }
        }
        Ok(())
    }

    fn get(&self, oid: &str, key: &[u8]) -> Result<Option<Vec<u8>>, IndexError> {
        let keys = vec![key.to_vec()];
        let (pairs, _) = self
            .io
            .omap_read(oid, &OmapRead::Keys(&keys))
            .map_err(|e| self.err(e))?;
        Ok(pairs.into_iter().next().map(|(_, v)| v))
    }

    /// Takes the next number of the control object's counter.
    fn next_number(&self) -> Result<u64, IndexError> {
        for _ in 0..MAX_ATTEMPTS {
            let current = match self.get(&self.control, SESSION_KEY.as_bytes())? {
                Some(v) => parse_num(&v).ok_or_else(|| {
                    IndexError::Corrupt(format!("{}: bad session counter", self.location))
                })?,
                None => 0,
            };
            let next = current + 1;
            let mut op = WriteOp::new();
            op.cmp_eq(SESSION_KEY, num(current))
                .set(SESSION_KEY, num(next));
            match self.io.operate(&self.control, &op) {
                Ok(()) => return Ok(next),
                Err(e) if e.is_canceled() => continue,
                Err(e) => return Err(self.err(e)),
            }
        }
        Err(IndexError::Backend(format!(
            "{}: the session counter stayed contended",
            self.location
        )))
    }

    /// Mints `count` ids in one session (taking a new session first if the
    /// current one is stale, older than `at_least`, or would overflow).
    fn mint(&self, times: &[u64], at_least: u64) -> Result<(u64, Vec<EntryId>), IndexError> {
        let mut s = self
            .session
            .lock()
            .map_err(|_| IndexError::Backend("session lock poisoned".into()))?;
        if s.stale || s.id < at_least || s.next + times.len() as u64 > u64::from(u32::MAX) {
            let id = self.next_number()?;
            if id > u64::from(u32::MAX) {
                return Err(IndexError::Backend(format!(
                    "{}: writer sessions exhausted",
                    self.location
                )));
            }
            *s = Session {
                id,
                next: 0,
                stale: false,
            };
        }
        let session = s.id;
        let ids = times
            .iter()
            .map(|t| {
                let id = EntryId::new(*t, session << 32 | s.next);
                s.next += 1;
                id
            })
            .collect();
        Ok((session, ids))
    }

    fn floor_guard(op: &mut WriteOp, session: u64) {
        op.cmp_lt(FLOOR_KEY, num(session + 1));
    }

    /// A fenced op also requires the lease's token to be `fence`'s.
    fn fence_guard(op: &mut WriteOp, fence: Option<&Fence>) {
        if let Some(f) = fence {
            op.cmp_eq(fence_key(&f.lease), num(f.token));
        }
    }

    /// After a fenced op failed a compare: `Fenced` if the lease has a
    /// newer token now, else `other` (the compare that failed was another).
    fn fenced_or<T>(&self, fence: Option<&Fence>, other: T) -> Result<T, IndexError> {
        let Some(f) = fence else { return Ok(other) };
        let current = self.get(&self.control, fence_key(&f.lease).as_bytes())?;
        if current.as_deref().and_then(parse_num) == Some(f.token) {
            Ok(other)
        } else {
            Err(IndexError::Fenced {
                lease: f.lease.clone(),
                token: f.token,
            })
        }
    }

    /// A fenced op of its own: proves the lease still has our token.
    fn check_fence(&self, fence: Option<&Fence>) -> Result<(), IndexError> {
        let Some(f) = fence else { return Ok(()) };
        let mut op = WriteOp::new();
        Self::fence_guard(&mut op, Some(f));
        op.set(fence_key(&f.lease), num(f.token));
        match self.io.operate(&self.control, &op) {
            Ok(()) => Ok(()),
            Err(e) if e.is_canceled() => self.fenced_or(Some(f), ()),
            Err(e) => Err(self.err(e)),
        }
    }

    fn write(
        &self,
        entries: Vec<Prepared>,
        markers: Vec<SourceMarker>,
        fence: Option<Fence>,
    ) -> Result<Vec<Written>, IndexError> {
        let fence = fence.as_ref();
        let mut written: Vec<Option<Written>> = vec![None; entries.len()];
        // A fenced batch with entries always takes the intent protocol: its
        // intent op is where the fence is checked before any entry lands.
        if entries.is_empty() || (markers.is_empty() && fence.is_none()) {
            self.write_shards(&entries, None, None, &mut written)?;
            if !markers.is_empty() {
                let mut op = WriteOp::new();
                Self::fence_guard(&mut op, fence);
                for m in &markers {
                    op.set(format!("{MARKER_PREFIX}{}", m.name), m.value.clone());
                }
                match self.io.operate(&self.control, &op) {
                    Ok(()) => {}
                    Err(e) if e.is_canceled() => {
                        self.fenced_or(fence, ())?;
                        return Err(self.err(e));
                    }
                    Err(e) => return Err(self.err(e)),
                }
            }
        } else {
            // Entries and markers: the intent protocol (module docs).
            let txid = self.new_txid()?;
            let intent_key = format!("{INTENT_PREFIX}{txid}");
            let intent = encode_intent(&entries, &markers);
            let mut op = WriteOp::new();
            Self::fence_guard(&mut op, fence);
            op.set(intent_key.clone(), intent.clone());
            match self.io.operate(&self.control, &op) {
                Ok(()) => {}
                Err(e) if e.is_canceled() => {
                    self.fenced_or(fence, ())?;
                    return Err(self.err(e));
                }
                Err(e) => return Err(self.err(e)),
            }
            let all_ours = self.write_shards(&entries, Some(&txid), fence, &mut written)?;
            if !all_ours || !self.finish_intent(&intent_key, &intent, &markers, fence)? {
                return Err(IndexError::Backend(format!(
                    "{}: batch {txid} was finished by another instance's recovery; \
                     its markers are committed, retry from them",
                    self.location
                )));
            }
            self.forget_txn(&entries, &txid);
        }
        written
            .into_iter()
            .map(|w| w.ok_or_else(|| IndexError::Backend("a record was not written".into())))
            .collect()
    }

    /// Writes each shard's part of a batch (with `txid`, each part at most
    /// once); returns false when some part had already been applied by
    /// someone else (a recovering instance).
    fn write_shards(
        &self,
        entries: &[Prepared],
        txid: Option<&str>,
        fence: Option<&Fence>,
        written: &mut [Option<Written>],
    ) -> Result<bool, IndexError> {
        let mut by_shard: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (pos, e) in entries.iter().enumerate() {
            by_shard.entry(e.shard).or_default().push(pos);
        }
        let mut foreign = BTreeSet::new();
        let mut at_least = 0;
        let mut attempts = 0;
        while !by_shard.is_empty() {
            attempts += 1;
            if attempts > MAX_ATTEMPTS {
                return Err(IndexError::Backend(format!(
                    "{}: shard writes kept failing their compares",
                    self.location
                )));
            }
            if attempts > 1 {
                // A floor moved past our session: maybe a new holder of our
                // lease took over (it raises every floor first, see
                // `recover`). Prove we still hold it before a new session.
                self.check_fence(fence)?;
            }
            let floors = match self.layout.mode {
                IndexMode::EveryWrite => {
                    self.write_every(entries, &by_shard, at_least, txid, &mut foreign, written)?
                }
                IndexMode::Latest => {
                    self.write_latest(entries, &by_shard, at_least, txid, &mut foreign, written)?
                }
            };
            by_shard.retain(|shard, _| floors.contains_key(shard));
            at_least = floors.values().copied().max().unwrap_or(0);
        }
        Ok(foreign.is_empty())
    }

    fn write_partial(
        &self,
        entries: Vec<Prepared>,
        markers: Vec<SourceMarker>,
        shards_applied: usize,
    ) -> Result<(), IndexError> {
        let txid = self.new_txid()?;
        let mut op = WriteOp::new();
        op.set(
            format!("{INTENT_PREFIX}{txid}"),
            encode_intent(&entries, &markers),
        );
        self.io
            .operate(&self.control, &op)
            .map_err(|e| self.err(e))?;
        let shards: BTreeSet<u32> = entries.iter().map(|e| e.shard).collect();
        let keep: BTreeSet<u32> = shards.into_iter().take(shards_applied).collect();
        let part: Vec<Prepared> = entries
            .into_iter()
            .filter(|e| keep.contains(&e.shard))
            .collect();
        let mut written = vec![None; part.len()];
        self.write_shards(&part, Some(&txid), None, &mut written)?;
        Ok(())
    }

    fn new_txid(&self) -> Result<String, IndexError> {
        let mut s = self
            .session
            .lock()
            .map_err(|_| IndexError::Backend("session lock poisoned".into()))?;
        if s.id == 0 {
            // No session yet: take one, so the id is ours alone (a stale
            // session is still ours: nobody else ever gets its number).
            s.id = self.next_number()?;
            s.next = 0;
            s.stale = false;
        }
        let n = self.txns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Session numbers are unique per open, the counter per open.
        Ok(format!("{:010}-{n:016x}", s.id))
    }

    /// Markers and the intent's removal in one op, if the intent is still
    /// there; false when someone else finished it first.
    fn finish_intent(
        &self,
        intent_key: &str,
        intent: &[u8],
        markers: &[SourceMarker],
        fence: Option<&Fence>,
    ) -> Result<bool, IndexError> {
        let mut op = WriteOp::new();
        Self::fence_guard(&mut op, fence);
        op.cmp_eq(intent_key, intent.to_vec());
        for m in markers {
            op.set(format!("{MARKER_PREFIX}{}", m.name), m.value.clone());
        }
        op.rm(intent_key);
        match self.io.operate(&self.control, &op) {
            Ok(()) => Ok(true),
            Err(e) if e.is_canceled() => self.fenced_or(fence, false),
            Err(e) => Err(self.err(e)),
        }
    }

    /// The batch's "applied" keys are no longer needed once its intent is
    /// gone; they leave with the next op on their shard.
    fn forget_txn(&self, entries: &[Prepared], txid: &str) {
        let shards: BTreeSet<u32> = entries.iter().map(|e| e.shard).collect();
        if let Ok(mut done) = self.done_txns.lock() {
            for shard in shards {
                done.entry(shard)
                    .or_default()
                    .push(format!("{APPLIED_PREFIX}{txid}"));
            }
        }
    }

    fn take_done(&self, shard: u32) -> Vec<String> {
        self.done_txns
            .lock()
            .ok()
            .and_then(|mut d| d.remove(&shard))
            .unwrap_or_default()
    }

    fn give_back_done(&self, shard: u32, keys: Vec<String>) {
        if keys.is_empty() {
            return;
        }
        if let Ok(mut done) = self.done_txns.lock() {
            done.entry(shard).or_default().extend(keys);
        }
    }

    /// Finishes every batch whose writer stopped between its intent and
    /// its markers: writes the shard parts not applied yet, then the
    /// markers. Safe against a writer that is still alive: each part and
    /// the markers are applied at most once, by whoever comes first.
    fn recover(&self) -> Result<u64, IndexError> {
        // First every floor moves past every session handed out so far: a
        // writer of the previous holder frozen mid-batch fails its next
        // shard op and must then prove its fence (`write_shards`), which
        // fails, because the new holder took its token before calling us.
        self.watermark()?;
        let mut finished = 0;
        loop {
            let (pairs, _) = self
                .io
                .omap_read(
                    &self.control,
                    &OmapRead::Range {
                        start_after: "",
                        prefix: INTENT_PREFIX,
                        max: 16,
                    },
                )
                .map_err(|e| self.err(e))?;
            if pairs.is_empty() {
                return Ok(finished);
            }
            for (key, intent) in pairs {
                let key = String::from_utf8(key).map_err(|_| {
                    IndexError::Corrupt(format!("{}: non-text intent key", self.location))
                })?;
                let txid = key[INTENT_PREFIX.len()..].to_string();
                let (entries, markers) = decode_intent(&intent).ok_or_else(|| {
                    IndexError::Corrupt(format!("{}: intent {txid} is unreadable", self.location))
                })?;
                let mut written = vec![None; entries.len()];
                self.write_shards(&entries, Some(&txid), None, &mut written)?;
                self.finish_intent(&key, &intent, &markers, None)?;
                // Its "applied" keys stay: the stopped writer may still be
                // alive with a newer session (another role of its process
                // took one), and only they stop it from applying a part a
                // second time. A few keys per recovered batch.
                tracing::info!(batch = %txid, entries = entries.len(), "rados index: finished a batch a stopped writer left half written");
                finished += 1;
            }
        }
    }

    /// One round of every-write shard ops; returns the shards whose floor
    /// moved past our session (to retry with a newer one).
    fn write_every(
        &self,
        entries: &[Prepared],
        by_shard: &BTreeMap<u32, Vec<usize>>,
        at_least: u64,
        txid: Option<&str>,
        foreign: &mut BTreeSet<u32>,
        written: &mut [Option<Written>],
    ) -> Result<BTreeMap<u32, u64>, IndexError> {
        let positions: Vec<usize> = by_shard.values().flatten().copied().collect();
        let times: Vec<u64> = positions.iter().map(|p| entries[*p].time_ns).collect();
        let (session, ids) = self.mint(&times, at_least)?;
        let id_of: HashMap<usize, EntryId> = positions.iter().copied().zip(ids).collect();
        let mut ops = Vec::with_capacity(by_shard.len());
        let mut done = Vec::with_capacity(by_shard.len());
        for (shard, list) in by_shard {
            let mut op = WriteOp::new();
            Self::floor_guard(&mut op, session);
            Self::applied_guard(&mut op, txid);
            for p in list {
                op.set(entry_key(id_of[p]), entries[*p].data.clone());
            }
            let old = self.take_done(*shard);
            for k in &old {
                op.rm(k.clone());
            }
            done.push(old);
            ops.push((self.shards[*shard as usize].clone(), op));
        }
        let mut retry = BTreeMap::new();
        let results = self.io.operate_many(&ops);
        for (((shard, list), result), old) in by_shard.iter().zip(results).zip(done) {
            match result {
                Ok(()) => {
                    for p in list {
                        written[*p] = Some(Written::Stored(EntryRef {
                            shard: *shard,
                            id: id_of[p],
                        }));
                    }
                }
                Err(e) if e.is_canceled() => {
                    self.give_back_done(*shard, old);
                    if self.applied_elsewhere(*shard, txid)? {
                        foreign.insert(*shard);
                    } else {
                        retry.insert(*shard, session + 1);
                    }
                }
                Err(e) => {
                    self.give_back_done(*shard, old);
                    return Err(self.err(e));
                }
            }
        }
        Ok(retry)
    }

    /// With a batch id, a shard op applies only once: it requires the
    /// shard's "applied" key of the batch to be absent and sets it.
    fn applied_guard(op: &mut WriteOp, txid: Option<&str>) {
        if let Some(txid) = txid {
            let key = format!("{APPLIED_PREFIX}{txid}");
            // Not empty: an absent key compares equal to the empty value.
            op.cmp_eq(key.clone(), Vec::new()).set(key, b"1".to_vec());
        }
    }

    fn applied_elsewhere(&self, shard: u32, txid: Option<&str>) -> Result<bool, IndexError> {
        let Some(txid) = txid else { return Ok(false) };
        let key = format!("{APPLIED_PREFIX}{txid}");
        Ok(self
            .get(&self.shards[shard as usize], key.as_bytes())?
            .is_some())
    }

    /// Latest mode: read each shard's floor, rev and the batch's version
    /// keys, plan replacements, and write guarded by `rev` so a concurrent
    /// writer or trim on the shard makes us re-read instead of clobbering.
    fn write_latest(
        &self,
        entries: &[Prepared],
        by_shard: &BTreeMap<u32, Vec<usize>>,
        at_least: u64,
        txid: Option<&str>,
        foreign: &mut BTreeSet<u32>,
        written: &mut [Option<Written>],
    ) -> Result<BTreeMap<u32, u64>, IndexError> {
        let applied_key = txid.map(|t| format!("{APPLIED_PREFIX}{t}").into_bytes());
        let key_lists: Vec<Vec<Vec<u8>>> = by_shard
            .values()
            .map(|list| {
                let mut keys = vec![
                    FLOOR_KEY.as_bytes().to_vec(),
                    REV_KEY.as_bytes().to_vec(),
                    FROZEN_KEY.as_bytes().to_vec(),
                ];
                keys.extend(applied_key.clone());
                for p in list {
                    if let Some(v) = &entries[*p].vkey {
                        keys.push(v.clone());
                    }
                }
                keys
            })
            .collect();
        let reads: Vec<OmapRead<'_>> = key_lists.iter().map(|k| OmapRead::Keys(k)).collect();
        let requests: Vec<(&str, &OmapRead<'_>)> = by_shard
            .keys()
            .zip(&reads)
            .map(|(shard, r)| (self.shards[*shard as usize].as_str(), r))
            .collect();
        let results = self.io.omap_read_many(&requests);
        let mut stored: Vec<HashMap<Vec<u8>, Vec<u8>>> = Vec::with_capacity(results.len());
        let mut floor_max = at_least;
        for r in results {
            let map: HashMap<Vec<u8>, Vec<u8>> =
                r.map_err(|e| self.err(e))?.0.into_iter().collect();
            if let Some(f) = map.get(FLOOR_KEY.as_bytes()).and_then(|v| parse_num(v)) {
                floor_max = floor_max.max(f);
            }
            stored.push(map);
        }
        let positions: Vec<usize> = by_shard.values().flatten().copied().collect();
        let times: Vec<u64> = positions.iter().map(|p| entries[*p].time_ns).collect();
        let (session, ids) = self.mint(&times, floor_max)?;
        let id_of: HashMap<usize, EntryId> = positions.iter().copied().zip(ids).collect();
        let mut ops = Vec::with_capacity(by_shard.len());
        let mut op_shards = Vec::with_capacity(by_shard.len());
        let mut outcomes: Vec<Vec<(usize, Written)>> = Vec::with_capacity(by_shard.len());
        for ((shard, list), map) in by_shard.iter().zip(&stored) {
            if applied_key.as_ref().is_some_and(|k| map.contains_key(k)) {
                foreign.insert(*shard);
                continue;
            }
            let rev = map.get(REV_KEY.as_bytes()).cloned().unwrap_or_default();
            let rev_n = parse_num(&rev).ok_or_else(|| {
                IndexError::Corrupt(format!("{}: shard {shard} has no valid rev", self.location))
            })?;
            let frozen = map
                .get(FROZEN_KEY.as_bytes())
                .and_then(|v| decode_frozen(v).1);
            let mut op = WriteOp::new();
            op.cmp_eq(REV_KEY, rev.clone());
            Self::floor_guard(&mut op, session);
            Self::applied_guard(&mut op, txid);
            // Version key → (current entry, minted in this batch).
            let mut current: HashMap<&[u8], (EntryId, bool)> = HashMap::new();
            let mut sets: BTreeMap<String, &[u8]> = BTreeMap::new();
            let mut removes: Vec<String> = Vec::new();
            let mut outcome = Vec::with_capacity(list.len());
            for p in list {
                let e = &entries[*p];
                let vkey = e.vkey.as_deref().unwrap_or_default();
                let existing = match current.get(vkey) {
                    Some(c) => Some(*c),
                    None => match map.get(vkey) {
                        Some(v) => Some((
                            std::str::from_utf8(v)
                                .ok()
                                .and_then(|s| s.parse::<EntryId>().ok())
                                .ok_or_else(|| {
                                    IndexError::Corrupt(format!(
                                        "{}: shard {shard}: bad version index value",
                                        self.location
                                    ))
                                })?,
                            false,
                        )),
                        None => None,
                    },
                };
                if let Some((old, minted)) = existing {
                    if old.time_ns > e.time_ns {
                        outcome.push((
                            *p,
                            Written::Superseded(EntryRef {
                                shard: *shard,
                                id: old,
                            }),
                        ));
                        continue;
                    }
                    // Same or newer time: the later arrival is the newer
                    // change; an entry a planned window holds stays.
                    if minted {
                        sets.remove(&entry_key(old));
                    } else if !frozen.is_some_and(|w| w.covers(&old)) {
                        removes.push(entry_key(old));
                    }
                }
                let id = id_of[p];
                sets.insert(entry_key(id), &e.data);
                current.insert(vkey, (id, true));
                outcome.push((*p, Written::Stored(EntryRef { shard: *shard, id })));
            }
            for (k, v) in sets {
                op.set(k, v.to_vec());
            }
            for (vkey, (id, minted)) in &current {
                if *minted {
                    op.set(vkey.to_vec(), id.to_string());
                }
            }
            for k in removes {
                op.rm(k);
            }
            op.set(REV_KEY, num(rev_n + 1));
            ops.push((self.shards[*shard as usize].clone(), op));
            op_shards.push(*shard);
            outcomes.push(outcome);
        }
        let mut retry = BTreeMap::new();
        for ((shard, outcome), result) in op_shards
            .iter()
            .zip(outcomes)
            .zip(self.io.operate_many(&ops))
        {
            match result {
                Ok(()) => {
                    for (p, w) in outcome {
                        written[p] = Some(w);
                    }
                }
                Err(e) if e.is_canceled() => {
                    retry.insert(*shard, 0);
                }
                Err(e) => return Err(self.err(e)),
            }
        }
        Ok(retry)
    }

    fn read_shard(
        &self,
        shard: u32,
        from: EntryId,
        to: EntryId,
        limit: usize,
    ) -> Result<EncodedEntries, IndexError> {
        let oid = &self.shards[shard as usize];
        let from_key = entry_key(from);
        // Keys are fixed width: dropping the last character gives a key
        // just before `from`; the few keys between are filtered below.
        let mut after = from_key[..from_key.len() - 1].to_string();
        let mut out = EncodedEntries::new();
        loop {
            let want = (limit - out.len()).saturating_add(1).min(READ_PAGE) as u64;
            let (pairs, more) = self
                .io
                .omap_read(
                    oid,
                    &OmapRead::Range {
                        start_after: &after,
                        prefix: ENTRY_PREFIX,
                        max: want,
                    },
                )
                .map_err(|e| self.err(e))?;
            let Some((last, _)) = pairs.last() else {
                return Ok(out);
            };
            let last = String::from_utf8(last.clone()).map_err(|_| {
                IndexError::Corrupt(format!("{}: non-text entry key", self.location))
            })?;
            for (k, v) in &pairs {
                let id = parse_entry_key(k).ok_or_else(|| {
                    IndexError::Corrupt(format!("{}: shard {shard}: bad entry key", self.location))
                })?;
                if id < from {
                    continue;
                }
                if id >= to {
                    return Ok(out);
                }
                out.push(EntryRef { shard, id }, v);
                if out.len() == limit {
                    return Ok(out);
                }
            }
            if !more {
                return Ok(out);
            }
            after = last;
        }
    }

    fn trim(&self, refs: Vec<EntryRef>) -> Result<u64, IndexError> {
        let mut by_shard: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for r in refs {
            by_shard.entry(r.shard).or_default().push(entry_key(r.id));
        }
        for keys in by_shard.values_mut() {
            keys.sort();
            keys.dedup();
        }
        let latest = self.layout.mode == IndexMode::Latest;
        let mut removed = 0u64;
        for _ in 0..MAX_ATTEMPTS {
            if by_shard.is_empty() {
                return Ok(removed);
            }
            let key_lists: Vec<Vec<Vec<u8>>> = by_shard
                .values()
                .map(|keys| {
                    let mut list: Vec<Vec<u8>> =
                        keys.iter().map(|k| k.as_bytes().to_vec()).collect();
                    list.push(REV_KEY.as_bytes().to_vec());
                    list
                })
                .collect();
            let reads: Vec<OmapRead<'_>> = key_lists.iter().map(|k| OmapRead::Keys(k)).collect();
            let requests: Vec<(&str, &OmapRead<'_>)> = by_shard
                .keys()
                .zip(&reads)
                .map(|(shard, r)| (self.shards[*shard as usize].as_str(), r))
                .collect();
            let mut found: Vec<(Vec<u8>, OmapPairs)> = Vec::new();
            for r in self.io.omap_read_many(&requests) {
                let (pairs, _) = r.map_err(|e| self.err(e))?;
                let mut rev = Vec::new();
                let mut present = Vec::new();
                for (k, v) in pairs {
                    if k == REV_KEY.as_bytes() {
                        rev = v;
                    } else {
                        present.push((k, v));
                    }
                }
                found.push((rev, present));
            }
            // Latest mode: the version links that still point at a removed
            // entry go with it.
            let mut links: Vec<Vec<(Vec<u8>, Vec<u8>)>> = vec![Vec::new(); found.len()];
            if latest {
                let vkey_lists: Vec<Vec<Vec<u8>>> = found
                    .iter()
                    .map(|(_, present)| {
                        present
                            .iter()
                            .map(|(_, v)| encoded_version_key(v).map(version_key))
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|e| IndexError::Corrupt(format!("{}: {e}", self.location)))?;
                let reads: Vec<OmapRead<'_>> =
                    vkey_lists.iter().map(|k| OmapRead::Keys(k)).collect();
                let requests: Vec<(&str, &OmapRead<'_>)> = by_shard
                    .keys()
                    .zip(&reads)
                    .map(|(shard, r)| (self.shards[*shard as usize].as_str(), r))
                    .collect();
                for (i, r) in self.io.omap_read_many(&requests).into_iter().enumerate() {
                    links[i] = r.map_err(|e| self.err(e))?.0;
                }
            }
            let mut ops = Vec::new();
            let mut counts = Vec::new();
            let mut shards = Vec::new();
            for (i, shard) in by_shard.keys().enumerate() {
                let (rev, present) = &found[i];
                let mut op = WriteOp::new();
                if latest {
                    op.cmp_eq(REV_KEY, rev.clone());
                    let rev_n = parse_num(rev).ok_or_else(|| {
                        IndexError::Corrupt(format!(
                            "{}: shard {shard} has no valid rev",
                            self.location
                        ))
                    })?;
                    op.set(REV_KEY, num(rev_n + 1));
                    let removed_ids: Vec<&[u8]> = present
                        .iter()
                        .map(|(k, _)| &k[ENTRY_PREFIX.len()..])
                        .collect();
                    for (vkey, points_at) in &links[i] {
                        if removed_ids.contains(&points_at.as_slice()) {
                            op.rm(vkey.clone());
                        }
                    }
                }
                for (k, _) in present {
                    op.rm(k.clone());
                }
                if present.is_empty() {
                    // Nothing of this shard is left to trim (RADOS refuses an
                    // empty op).
                    continue;
                }
                counts.push(present.len() as u64);
                shards.push(*shard);
                ops.push((self.shards[*shard as usize].clone(), op));
            }
            by_shard.retain(|shard, _| shards.contains(shard));
            for ((shard, count), result) in
                shards.iter().zip(counts).zip(self.io.operate_many(&ops))
            {
                match result {
                    Ok(()) => {
                        removed += count;
                        by_shard.remove(shard);
                    }
                    Err(e) if e.is_canceled() => {}
                    Err(e) => return Err(self.err(e)),
                }
            }
        }
        Err(IndexError::Backend(format!(
            "{}: trims kept failing their compares",
            self.location
        )))
    }

    fn markers(&self, prefix: &str) -> Result<Vec<SourceMarker>, IndexError> {
        let full = format!("{MARKER_PREFIX}{prefix}");
        let mut after = String::new();
        let mut out = Vec::new();
        loop {
            let (pairs, more) = self
                .io
                .omap_read(
                    &self.control,
                    &OmapRead::Range {
                        start_after: &after,
                        prefix: &full,
                        max: READ_PAGE as u64,
                    },
                )
                .map_err(|e| self.err(e))?;
            for (k, v) in pairs {
                let name = String::from_utf8(k).map_err(|_| {
                    IndexError::Corrupt(format!("{}: non-text marker name", self.location))
                })?;
                after = name.clone();
                out.push(SourceMarker {
                    name: name[MARKER_PREFIX.len()..].to_string(),
                    value: v,
                });
            }
            if !more {
                return Ok(out);
            }
        }
    }

    fn stats(&self) -> Result<IndexStats, IndexError> {
        let mut shards = Vec::with_capacity(self.shards.len());
        for (n, oid) in self.shards.iter().enumerate() {
            let mut s = ShardStats {
                shard: n as u32,
                ..ShardStats::default()
            };
            let mut after = String::new();
            loop {
                let (pairs, more) = self
                    .io
                    .omap_read(
                        oid,
                        &OmapRead::Range {
                            start_after: &after,
                            prefix: ENTRY_PREFIX,
                            max: READ_PAGE as u64,
                        },
                    )
                    .map_err(|e| self.err(e))?;
                for (k, v) in &pairs {
                    if s.oldest_time_ns.is_none() {
                        s.oldest_time_ns = parse_entry_key(k).map(|id| id.time_ns);
                    }
                    s.entries += 1;
                    s.bytes += (k.len() + v.len()) as u64;
                }
                match pairs.last() {
                    Some((k, _)) if more => after = String::from_utf8_lossy(k).into_owned(),
                    _ => break,
                }
            }
            shards.push(s);
        }
        Ok(IndexStats { shards })
    }

    /// See `ChangeIndex::freeze`: set (or removed) in every shard object
    /// under the `rev` guard that latest-mode writes take, so a write that
    /// read a shard before it fails its compare, reads again and sees it.
    fn freeze(&self, window: Option<FrozenWindow>, fence: Option<Fence>) -> Result<(), IndexError> {
        if self.layout.mode != IndexMode::Latest {
            return Ok(());
        }
        let token = fence.as_ref().map_or(0, |f| f.token);
        let value = encode_frozen(token, window);
        let keys = [REV_KEY.as_bytes().to_vec(), FROZEN_KEY.as_bytes().to_vec()];
        let read = OmapRead::Keys(&keys);
        let mut pending: Vec<usize> = (0..self.shards.len()).collect();
        for _ in 0..MAX_ATTEMPTS {
            if pending.is_empty() {
                return Ok(());
            }
            let requests: Vec<(&str, &OmapRead<'_>)> = pending
                .iter()
                .map(|s| (self.shards[*s].as_str(), &read))
                .collect();
            let mut ops = Vec::with_capacity(pending.len());
            for (shard, r) in pending.iter().zip(self.io.omap_read_many(&requests)) {
                let pairs = r.map_err(|e| self.err(e))?.0;
                let value_of = |key: &str| {
                    pairs
                        .iter()
                        .find(|(k, _)| k == key.as_bytes())
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                let rev = value_of(REV_KEY);
                // A newer collector froze this shard: we are a stale one.
                // The `rev` compare below keeps the read and write one step.
                if let Some(f) = &fence {
                    if decode_frozen(&value_of(FROZEN_KEY)).0 > f.token {
                        return Err(IndexError::Fenced {
                            lease: f.lease.clone(),
                            token: f.token,
                        });
                    }
                }
                let rev_n = parse_num(&rev).ok_or_else(|| {
                    IndexError::Corrupt(format!(
                        "{}: shard {shard} has no valid rev",
                        self.location
                    ))
                })?;
                let mut op = WriteOp::new();
                op.cmp_eq(REV_KEY, rev);
                op.set(FROZEN_KEY, value.clone());
                op.set(REV_KEY, num(rev_n + 1));
                ops.push((self.shards[*shard].clone(), op));
            }
            let mut again = Vec::new();
            for (shard, result) in pending.iter().zip(self.io.operate_many(&ops)) {
                match result {
                    Ok(()) => {}
                    // A write or trim moved `rev` meanwhile.
                    Err(e) if e.is_canceled() => again.push(*shard),
                    Err(e) => return Err(self.err(e)),
                }
            }
            pending = again;
        }
        Err(IndexError::Backend(format!(
            "{}: freezing a window kept failing its compares",
            self.location
        )))
    }

    fn watermark(&self) -> Result<Watermark, IndexError> {
        let epoch = self.next_number()?;
        let ops: Vec<(String, WriteOp)> = self
            .shards
            .iter()
            .map(|oid| {
                let mut op = WriteOp::new();
                op.cmp_lt(FLOOR_KEY, num(epoch)).set(FLOOR_KEY, num(epoch));
                (oid.clone(), op)
            })
            .collect();
        for result in self.io.operate_many(&ops) {
            match result {
                // ECANCELED: a later watermark already raised this floor.
                Ok(()) => {}
                Err(e) if e.is_canceled() => {}
                Err(e) => return Err(self.err(e)),
            }
        }
        if let Ok(mut s) = self.session.lock() {
            if s.id < epoch {
                s.stale = true;
            }
        }
        Ok(Watermark((epoch << 32) - 1))
    }

    // ---- leases ----

    fn lease_object(&self, name: &str) -> &str {
        match name
            .strip_prefix("shard-")
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| self.shards.get(n))
        {
            Some(oid) => oid,
            None => &self.control,
        }
    }

    fn lease_err(&self, e: impl std::fmt::Display) -> LeaseError {
        LeaseError::Backend(format!("{}: {e}", self.location))
    }

    fn lease_record(&self, name: &str) -> Result<(Vec<u8>, Option<LeaseRecord>), LeaseError> {
        let key = format!("{LEASE_PREFIX}{name}");
        let raw = self
            .get(&self.control, key.as_bytes())
            .map_err(|e| self.lease_err(e))?
            .unwrap_or_default();
        if raw.is_empty() {
            return Ok((raw, None));
        }
        let record = serde_json::from_slice(&raw)
            .map_err(|e| self.lease_err(format!("lease record {name}: {e}")))?;
        Ok((raw, Some(record)))
    }

    /// Stores the record if it is still `old` (only the lock holder writes
    /// it, so a failed compare means we lost the lock meanwhile).
    fn store_lease_record(
        &self,
        name: &str,
        old: &[u8],
        record: &LeaseRecord,
    ) -> Result<bool, LeaseError> {
        let key = format!("{LEASE_PREFIX}{name}");
        let json = serde_json::to_vec(record).map_err(|e| self.lease_err(e))?;
        let mut op = WriteOp::new();
        op.cmp_eq(key.clone(), old.to_vec())
            .set(key, json)
            .set(fence_key(name), num(record.token));
        match self.io.operate(&self.control, &op) {
            Ok(()) => Ok(true),
            Err(e) if e.is_canceled() => Ok(false),
            Err(e) => Err(self.lease_err(e)),
        }
    }

    fn lock_name(name: &str) -> String {
        format!("zonelog.lease.{name}")
    }

    /// Extends our cls_lock lock; `Ok(None)` when we do not hold it.
    fn renew_lock(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<SystemTime>, LeaseError> {
        let expires = SystemTime::now() + ttl;
        match self.io.lock_exclusive(
            self.lease_object(name),
            &Self::lock_name(name),
            holder,
            holder,
            ttl,
            true,
        ) {
            Ok(()) => Ok(Some(expires)),
            Err(e) if e.is_not_found() || e.is_busy() => Ok(None),
            Err(e) => Err(self.lease_err(e)),
        }
    }

    fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<Lease, LeaseError> {
        validate_request(name, holder, ttl)?;
        if let Some(expires_at) = self.renew_lock(name, holder, ttl)? {
            let (raw, record) = self.lease_record(name)?;
            if let Some(mut record) = record.filter(|r| r.holder == holder) {
                record.expires_ms = unix_ms(expires_at);
                self.store_lease_record(name, &raw, &record)?;
                return Ok(Lease {
                    name: name.to_string(),
                    holder: holder.to_string(),
                    token: record.token,
                    expires_at,
                });
            }
            // Locked but never recorded (a crash between the two): give it
            // a fresh token below, as for a new holder.
            return self.new_token(name, holder, expires_at);
        }
        let expires_at = SystemTime::now() + ttl;
        match self.io.lock_exclusive(
            self.lease_object(name),
            &Self::lock_name(name),
            holder,
            holder,
            ttl,
            false,
        ) {
            Ok(()) => self.new_token(name, holder, expires_at),
            Err(e) if e.is_busy() || e.is_exists() => {
                let current = self.holder(name)?;
                let (holder, remaining) = match current {
                    Some(l) => (
                        l.holder,
                        l.expires_at
                            .duration_since(SystemTime::now())
                            .unwrap_or_default(),
                    ),
                    None => ("unknown".to_string(), ttl),
                };
                Err(LeaseError::Held {
                    name: name.to_string(),
                    holder,
                    remaining,
                })
            }
            Err(e) => Err(self.lease_err(e)),
        }
    }

    /// We just took the lock: raise the fencing token.
    fn new_token(
        &self,
        name: &str,
        holder: &str,
        expires_at: SystemTime,
    ) -> Result<Lease, LeaseError> {
        for _ in 0..MAX_ATTEMPTS {
            let (raw, record) = self.lease_record(name)?;
            let token = record.map_or(0, |r| r.token) + 1;
            let record = LeaseRecord {
                holder: holder.to_string(),
                token,
                expires_ms: unix_ms(expires_at),
            };
            if self.store_lease_record(name, &raw, &record)? {
                return Ok(Lease {
                    name: name.to_string(),
                    holder: holder.to_string(),
                    token,
                    expires_at,
                });
            }
        }
        Err(self.lease_err(format!("lease {name}: token record stayed contended")))
    }

    fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LeaseError> {
        validate_request(&lease.name, &lease.holder, ttl)?;
        let lost = || LeaseError::Lost {
            name: lease.name.clone(),
            holder: lease.holder.clone(),
            token: lease.token,
        };
        let Some(expires_at) = self.renew_lock(&lease.name, &lease.holder, ttl)? else {
            return Err(lost());
        };
        let (raw, record) = self.lease_record(&lease.name)?;
        let Some(mut record) =
            record.filter(|r| r.holder == lease.holder && r.token == lease.token)
        else {
            return Err(lost());
        };
        record.expires_ms = unix_ms(expires_at);
        if !self.store_lease_record(&lease.name, &raw, &record)? {
            return Err(lost());
        }
        Ok(Lease {
            expires_at,
            ..lease.clone()
        })
    }

    fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        match self.io.unlock(
            self.lease_object(&lease.name),
            &Self::lock_name(&lease.name),
            &lease.holder,
        ) {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() || e.is_busy() => Ok(()),
            Err(e) => Err(self.lease_err(e)),
        }
    }

    /// Token 0 while a new holder has the lock but has not recorded its
    /// token yet (the two steps of `acquire`).
    fn holder(&self, name: &str) -> Result<Option<Lease>, LeaseError> {
        let lockers = self
            .io
            .lockers(self.lease_object(name), &Self::lock_name(name))
            .map_err(|e| self.lease_err(e))?;
        let Some(locker) = lockers.into_iter().next() else {
            return Ok(None);
        };
        let (_, record) = self.lease_record(name)?;
        let (token, expires_at) = match record.filter(|r| r.holder == locker.cookie) {
            Some(r) => (r.token, UNIX_EPOCH + Duration::from_millis(r.expires_ms)),
            None => (0, SystemTime::now()),
        };
        Ok(Some(Lease {
            name: name.to_string(),
            holder: locker.cookie,
            token,
            expires_at,
        }))
    }
}

/// `u32 markers (u32 len, name, u32 len, value)*, u32 entries (u32 shard,
/// u64 time_ns, u32 len, data, u32 len + 1 or 0, version key)*`, little-endian.
fn encode_intent(entries: &[Prepared], markers: &[SourceMarker]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + entries.iter().map(|e| e.data.len() + 64).sum::<usize>());
    let put = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    };
    out.extend_from_slice(&(markers.len() as u32).to_le_bytes());
    for m in markers {
        put(&mut out, m.name.as_bytes());
        put(&mut out, &m.value);
    }
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        out.extend_from_slice(&e.shard.to_le_bytes());
        out.extend_from_slice(&e.time_ns.to_le_bytes());
        put(&mut out, &e.data);
        match &e.vkey {
            Some(v) => {
                out.extend_from_slice(&(v.len() as u32 + 1).to_le_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend_from_slice(&0u32.to_le_bytes()),
        }
    }
    out
}

fn decode_intent(bytes: &[u8]) -> Option<(Vec<Prepared>, Vec<SourceMarker>)> {
    struct R<'a>(&'a [u8]);
    impl<'a> R<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if self.0.len() < n {
                return None;
            }
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            Some(a)
        }
        fn u32(&mut self) -> Option<u32> {
            Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
        }
        fn u64(&mut self) -> Option<u64> {
            Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
        }
        fn bytes(&mut self) -> Option<Vec<u8>> {
            let n = self.u32()? as usize;
            Some(self.take(n)?.to_vec())
        }
    }
    let mut r = R(bytes);
    let n = r.u32()?;
    let mut markers = Vec::new();
    for _ in 0..n {
        let name = String::from_utf8(r.bytes()?).ok()?;
        markers.push(SourceMarker {
            name,
            value: r.bytes()?,
        });
    }
    let n = r.u32()?;
    let mut entries = Vec::new();
    for _ in 0..n {
        let shard = r.u32()?;
        let time_ns = r.u64()?;
        let data = r.bytes()?;
        let vkey = match r.u32()? {
            0 => None,
            len => Some(r.take(len as usize - 1)?.to_vec()),
        };
        entries.push(Prepared {
            shard,
            time_ns,
            data,
            vkey,
        });
    }
    r.0.is_empty().then_some((entries, markers))
}

/// Writes waiting groups until the queue is empty: each group's entries
/// and markers in request order, as one batch; each caller gets its part
/// of the result (or the group's error).
async fn flush_groups(inner: Arc<Inner>, queue: Arc<Mutex<WriteQueue>>) {
    loop {
        let group: Vec<QueuedWrite> = {
            let Ok(mut q) = queue.lock() else { return };
            if q.waiting.is_empty() {
                q.flushing = false;
                return;
            }
            let mut taken = 0;
            let mut n = 0;
            let fence = q.waiting[0].fence.clone();
            for w in &q.waiting {
                // One fence per group: a stale writer's refusal must not
                // fail another role's writes.
                if n > 0 && (taken + w.entries.len() > GROUP_MAX_ENTRIES || w.fence != fence) {
                    break;
                }
                taken += w.entries.len();
                n += 1;
            }
            q.waiting.drain(..n).collect()
        };
        let mut entries = Vec::new();
        let mut markers = Vec::new();
        let mut replies = Vec::with_capacity(group.len());
        let fence = group.first().and_then(|w| w.fence.clone());
        for w in group {
            replies.push((w.entries.len(), w.reply));
            entries.extend(w.entries);
            markers.extend(w.markers);
        }
        let work = inner.clone();
        let result = tokio::task::spawn_blocking(move || work.write(entries, markers, fence))
            .await
            .unwrap_or_else(|e| Err(IndexError::Backend(format!("rados task: {e}"))));
        match result {
            Ok(written) => {
                let mut rest = written.into_iter();
                for (count, reply) in replies {
                    let _ = reply.send(Ok(rest.by_ref().take(count).collect()));
                }
            }
            Err(IndexError::Fenced { lease, token }) => {
                // Said here too: the caller may have stopped waiting (its
                // role was told to stop), and this must not go unseen.
                tracing::warn!(error = %IndexError::Fenced { lease: lease.clone(), token }, "rados index: writes of a superseded lease term refused; nothing of them was written");
                for (_, reply) in replies {
                    let _ = reply.send(Err(IndexError::Fenced {
                        lease: lease.clone(),
                        token,
                    }));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for (_, reply) in replies {
                    let _ = reply.send(Err(IndexError::Backend(message.clone())));
                }
            }
        }
    }
}

fn parse_entry_key(key: &[u8]) -> Option<EntryId> {
    let text = std::str::from_utf8(key).ok()?.strip_prefix(ENTRY_PREFIX)?;
    if text.len() != ENTRY_ID_TEXT_LEN {
        return None;
    }
    text.parse().ok()
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

#[async_trait]
impl LeaseStore for RadosIndex {
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<Lease, LeaseError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.lease_blocking(move |inner| inner.acquire(&name, &holder, ttl))
            .await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LeaseError> {
        let lease = lease.clone();
        self.lease_blocking(move |inner| inner.renew(&lease, ttl))
            .await
    }

    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        let lease = lease.clone();
        self.lease_blocking(move |inner| inner.release(&lease))
            .await
    }

    async fn holder(&self, name: &str) -> Result<Option<Lease>, LeaseError> {
        let name = name.to_string();
        self.lease_blocking(move |inner| inner.holder(&name)).await
    }
}
