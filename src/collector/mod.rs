//! The collector (DESIGN.md, "Collector"): leased rounds that turn the index
//! into log objects, then trim exactly what they wrote.
//!
//! A window is planned before anything is uploaded and its plan is stored
//! in the index (marker `collector/pending`):
//!
//! 1. plan: number (last + 1), cutoff (now − margin), the index watermark,
//!    the object name, the entry limit → state `planned`;
//! 2. upload: the covered entries (id < cutoff, committed before the
//!    watermark), merged in key order, the first `limit` of them, streamed
//!    to the target and verified; then the manifest → state `uploaded` with
//!    the count and the last id;
//! 3. trim: every covered entry up to the last id, in chunks;
//! 4. done: `collector/pending` cleared and `collector/last` advanced, in
//!    one commit.
//!
//! Whoever runs the next round — this process after a crash, or another
//! instance that took the lease — first finishes a pending window: a
//! `planned` one is uploaded again under the same name with the same
//! content (nothing covered by it can have been trimmed or added), an
//! `uploaded` one is trimmed. So every change lands in exactly one log
//! object.

mod continuity;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::config::CollectorConfig;
use crate::index::codec::view_record;
use crate::index::{
    ChangeIndex, EncodedEntries, EntryId, Fence, FrozenWindow, IndexError, IndexedEntry,
    MergedReader, Watermark, WriteBatch,
};
use crate::lease::{Lease, LeaseError, LeaseStore, CONTROL_LEASE};
use crate::logs::{LogEncoder, LogObjectName, Manifest, RECORD_VERSION};
use crate::target::{Target, TargetError, Uploaded};

const PENDING: &str = "collector/pending";
const LAST: &str = "collector/last";
/// Entries per shard page of the merged read: memory is shards × this.
const READ_PAGE: usize = 512;
/// Compressed bytes collected before they are handed to the upload.
const FLUSH_BYTES: usize = 1 << 20;
/// Entries per hand-over from the reading task to the encoding thread.
const ENCODE_BATCH: usize = 1024;
/// Batches (and compressed chunks) in flight between the stages.
const ENCODE_QUEUE: usize = 4;
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error("the control lease was lost during window {window}; stopping before the next upload or trim")]
    LeaseLost { window: u64 },
    #[error("stored collector state {name:?} is unreadable: {reason}")]
    State { name: String, reason: String },
    #[error("encoding the log object failed: {0}")]
    Encode(#[from] std::io::Error),
    #[error("target {target}: its newest log object {newest} came after this index's last window {ours}: another zonelog index writes to this target and zone; give each index its own zone name or target prefix (nothing was written or trimmed)")]
    AnotherIndex {
        target: String,
        newest: String,
        ours: String,
    },
    #[error("target {target}: {object} was written by another zonelog index ({index}); not overwriting it (nothing was trimmed)")]
    ForeignObject {
        target: String,
        object: String,
        index: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum WindowState {
    Planned,
    Uploaded {
        count: u64,
        first_id: String,
        last_id: String,
        bytes: u64,
        sha256: String,
    },
}

/// A window as recorded in the index before its upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct WindowPlan {
    number: u64,
    start_ns: u64,
    cutoff_ns: u64,
    watermark: Watermark,
    limit: u64,
    object: String,
    /// The multipart upload of `object` in flight, recorded before its
    /// first part: a round that does not finish it (the target went away,
    /// a kill) leaves it to be aborted by the round that resumes the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upload_id: Option<String>,
    #[serde(flatten)]
    state: WindowState,
}

impl WindowPlan {
    /// What the plan covers, kept as it is in latest mode (see
    /// `ChangeIndex::freeze`).
    fn frozen(&self) -> FrozenWindow {
        FrozenWindow {
            cutoff: EntryId::at(self.cutoff_ns),
            watermark: self.watermark,
        }
    }
}

/// The last window a collector finished (for status and consumers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastWindow {
    pub number: u64,
    pub cutoff_ns: u64,
    pub object: String,
    pub count: u64,
}

/// The last finished window and whether one is planned but unfinished.
pub async fn window_state(
    index: &dyn ChangeIndex,
) -> Result<(Option<LastWindow>, Option<u64>), CollectorError> {
    let decode =
        |name: &str, bytes: Option<Vec<u8>>| -> Result<Option<serde_json::Value>, CollectorError> {
            match bytes {
                Some(b) if !b.is_empty() => {
                    serde_json::from_slice(&b)
                        .map(Some)
                        .map_err(|e| CollectorError::State {
                            name: name.to_string(),
                            reason: e.to_string(),
                        })
                }
                _ => Ok(None),
            }
        };
    let last = decode(LAST, index.marker(LAST).await?)?
        .map(serde_json::from_value::<LastWindow>)
        .transpose()
        .map_err(|e| CollectorError::State {
            name: LAST.into(),
            reason: e.to_string(),
        })?;
    let pending = decode(PENDING, index.marker(PENDING).await?)?
        .and_then(|v| v.get("number").and_then(|n| n.as_u64()));
    Ok((last, pending))
}

/// One log object a round wrote (or finished).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenWindow {
    pub number: u64,
    pub object: String,
    pub entries: u64,
    pub bytes: u64,
    /// Finished a window an earlier round (or another instance) planned.
    pub resumed: bool,
}

#[derive(Debug, Clone, Default)]
pub struct RoundReport {
    pub windows: Vec<WrittenWindow>,
    /// Set when another holder has the control lease.
    pub lease_holder: Option<String>,
}

/// Running totals, for metrics and status.
#[derive(Debug, Default)]
pub struct CollectorCounters {
    pub rounds: AtomicU64,
    pub windows: AtomicU64,
    pub entries: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
    pub lease_held: AtomicBool,
    pub last_round_ms: AtomicU64,
}

pub struct Collector {
    index: Arc<dyn ChangeIndex>,
    leases: Arc<dyn LeaseStore>,
    target: Target,
    zone: String,
    config: CollectorConfig,
    holder: String,
    pub counters: Arc<CollectorCounters>,
}

/// Keeps the control lease alive in the background while a round works.
struct LeaseKeeper {
    lost: Arc<AtomicBool>,
    lease: Arc<Mutex<Lease>>,
    task: tokio::task::JoinHandle<()>,
    /// Stop trusting the lease this long before it expires: work checked
    /// against it must not outlive it.
    safety: Duration,
}

impl LeaseKeeper {
    fn start(leases: Arc<dyn LeaseStore>, lease: Lease, ttl: Duration) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Mutex::new(lease));
        let (lost_flag, current) = (lost.clone(), shared.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                let lease = current.lock().unwrap_or_else(|p| p.into_inner()).clone();
                // A renewal that hangs must not keep the round going on a
                // lease that may have run out meanwhile.
                let renewed = tokio::time::timeout(ttl / 3, leases.renew(&lease, ttl)).await;
                match renewed {
                    Ok(Ok(renewed)) => *current.lock().unwrap_or_else(|p| p.into_inner()) = renewed,
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "collector: control lease lost");
                        lost_flag.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(_) => {
                        tracing::warn!("collector: renewing the control lease timed out; retrying");
                    }
                }
            }
        });
        LeaseKeeper {
            lost,
            lease: shared,
            task,
            safety: (ttl / 4).min(Duration::from_secs(1)),
        }
    }

    /// Fails once the lease was lost, or is about to expire because
    /// renewals did not get through.
    fn check(&self, window: u64) -> Result<(), CollectorError> {
        let expires_at = self
            .lease
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .expires_at;
        if self.lost.load(Ordering::SeqCst) || SystemTime::now() + self.safety >= expires_at {
            return Err(CollectorError::LeaseLost { window });
        }
        Ok(())
    }

    /// What every state write of this round carries (see `Fence`).
    fn fence(&self) -> Fence {
        Fence::of(&self.lease.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn stop(self) -> Lease {
        self.task.abort();
        let lease = self.lease.lock().unwrap_or_else(|p| p.into_inner()).clone();
        lease
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        // Also when a round is dropped half-way: no renewals after it.
        self.task.abort();
    }
}

impl Collector {
    pub fn new(
        index: Arc<dyn ChangeIndex>,
        leases: Arc<dyn LeaseStore>,
        target: Target,
        zone: &str,
        config: CollectorConfig,
        holder: String,
    ) -> Self {
        Collector {
            index,
            leases,
            target,
            zone: zone.to_string(),
            config,
            holder,
            counters: Arc::new(CollectorCounters::default()),
        }
    }

    /// Runs a round every `period` until `shutdown`; failures are retried
    /// with backoff and never trim anything that was not written.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let mut failures = 0u32;
        while !*shutdown.borrow() {
            // A round is not interrupted by shutdown: it finishes its window
            // (bounded by max_entries_per_object), so no multipart upload is
            // left behind; shutdown is honoured between rounds.
            let pause = match self.round().await {
                Ok(report) => {
                    failures = 0;
                    for w in &report.windows {
                        tracing::info!(window = w.number, object = %w.object, entries = w.entries, bytes = w.bytes, resumed = w.resumed, "collector: wrote log object");
                    }
                    self.config.period
                }
                Err(e) => {
                    failures += 1;
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    let pause = (self.config.period.min(Duration::from_secs(5))
                        * (1 << failures.min(6)))
                    .min(MAX_BACKOFF);
                    tracing::warn!(error = %e, retry_in = ?pause, "collector: round failed; nothing trimmed that was not written, retrying");
                    pause
                }
            };
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// One round: take the control lease, finish a pending window, then
    /// write windows until the entries before the cutoff are all written.
    pub async fn round(&self) -> Result<RoundReport, CollectorError> {
        let started = std::time::Instant::now();
        self.counters.rounds.fetch_add(1, Ordering::Relaxed);
        let ttl = self.config.lease_duration;
        let lease = match self.leases.acquire(CONTROL_LEASE, &self.holder, ttl).await {
            Ok(lease) => lease,
            Err(LeaseError::Held { holder, .. }) => {
                self.counters.lease_held.store(false, Ordering::Relaxed);
                return Ok(RoundReport {
                    windows: Vec::new(),
                    lease_holder: Some(holder),
                });
            }
            Err(e) => return Err(e.into()),
        };
        self.counters.lease_held.store(true, Ordering::Relaxed);
        let keeper = LeaseKeeper::start(self.leases.clone(), lease, ttl);
        let result = self.round_with_lease(&keeper).await;
        let lease = keeper.stop();
        // Keep the lease between rounds (so leadership is stable), unless
        // it was lost.
        if matches!(
            result,
            Err(CollectorError::LeaseLost { .. } | CollectorError::Index(IndexError::Fenced { .. }))
        ) {
            self.counters.lease_held.store(false, Ordering::Relaxed);
        } else if let Err(e) = self.leases.renew(&lease, ttl).await {
            tracing::warn!(error = %e, "collector: could not renew the control lease after the round");
            self.counters.lease_held.store(false, Ordering::Relaxed);
        }
        self.counters
            .last_round_ms
            .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        result
    }

    /// Gives the control lease up (on shutdown), so another instance can
    /// take over at once instead of after the lease expires.
    pub async fn release(&self) {
        if let Ok(Some(lease)) = self.leases.holder(CONTROL_LEASE).await {
            if lease.holder == self.holder {
                let _ = self.leases.release(&lease).await;
            }
        }
        self.counters.lease_held.store(false, Ordering::Relaxed);
    }

    async fn round_with_lease(&self, keeper: &LeaseKeeper) -> Result<RoundReport, CollectorError> {
        let mut report = RoundReport::default();
        if let Some(plan) = self.load::<WindowPlan>(PENDING).await? {
            tracing::info!(window = plan.number, object = %plan.object, "collector: finishing a window planned by an earlier round");
            // Already frozen when it was planned; again for a plan made
            // before the index froze windows.
            self.index
                .freeze(Some(plan.frozen()), Some(&keeper.fence()))
                .await?;
            let mut written = self.finish(plan, keeper).await?;
            written.resumed = true;
            report.windows.push(written);
        }
        let last_cutoff = self
            .continue_numbering(self.load::<LastWindow>(LAST).await?, &keeper.fence())
            .await?
            .cutoff_ns;
        // Never behind the last window's cutoff, even if the clock stepped
        // back: names must stay in chronological order.
        let cutoff_ns = unix_ns(SystemTime::now() - self.config.cutoff_margin).max(last_cutoff);
        let mut wrote_any = !report.windows.is_empty();
        loop {
            let last = self.load::<LastWindow>(LAST).await?.unwrap_or_default();
            let watermark = self.index.watermark().await?;
            let first = self.first_covered(cutoff_ns, watermark).await?;
            let start_ns = match &first {
                Some(e) => e.id.time_ns,
                None if self.config.write_empty_windows && !wrote_any => {
                    last.cutoff_ns.min(cutoff_ns)
                }
                None => break,
            };
            let number = last.number + 1;
            let plan = WindowPlan {
                number,
                start_ns,
                cutoff_ns,
                watermark,
                limit: self.config.max_entries_per_object.max(1),
                object: LogObjectName {
                    zone: self.zone.clone(),
                    number,
                    start_ns,
                    cutoff_ns,
                    compression: self.config.compression,
                }
                .to_string(),
                upload_id: None,
                state: WindowState::Planned,
            };
            keeper.check(number)?;
            // Before the plan exists: from then on what it covers stays.
            self.index
                .freeze(Some(plan.frozen()), Some(&keeper.fence()))
                .await?;
            self.store(PENDING, &plan, keeper).await?;
            let written = self.finish(plan, keeper).await?;
            let full = written.entries >= self.config.max_entries_per_object.max(1);
            report.windows.push(written);
            wrote_any = true;
            if !full {
                break;
            }
        }
        Ok(report)
    }

    async fn first_covered(
        &self,
        cutoff_ns: u64,
        watermark: Watermark,
    ) -> Result<Option<IndexedEntry>, CollectorError> {
        let mut reader =
            MergedReader::new(self.index.clone(), EntryId::MIN, EntryId::at(cutoff_ns), 16);
        while let Some(e) = reader.next().await? {
            if watermark.covers(&e.id) {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    fn covered_reader(&self, plan: &WindowPlan) -> MergedReader {
        MergedReader::new(
            self.index.clone(),
            EntryId::MIN,
            EntryId::at(plan.cutoff_ns),
            READ_PAGE,
        )
    }

    async fn finish(
        &self,
        mut plan: WindowPlan,
        keeper: &LeaseKeeper,
    ) -> Result<WrittenWindow, CollectorError> {
        if plan.state == WindowState::Planned {
            keeper.check(plan.number)?;
            if let Some(id) = plan.upload_id.take() {
                // Before a new upload of the same name: the target keeps an
                // abandoned upload's parts until it is aborted.
                self.target.abort_upload(&plan.object, &id).await?;
                tracing::info!(object = %plan.object, upload = %id, "collector: aborted the multipart upload an unfinished round left");
            }
            plan.state = self.upload(&plan, keeper).await?;
            keeper.check(plan.number)?;
            self.store(PENDING, &plan, keeper).await?;
        }
        let WindowState::Uploaded {
            count,
            last_id,
            bytes,
            ..
        } = &plan.state
        else {
            unreachable!("uploaded above");
        };
        self.trim(&plan, last_id, keeper).await?;
        let done = LastWindow {
            number: plan.number,
            cutoff_ns: plan.cutoff_ns,
            object: plan.object.clone(),
            count: *count,
        };
        let done = serde_json::to_vec(&done).map_err(|e| self.state_error(LAST, e))?;
        keeper.check(plan.number)?;
        crate::testing::stop_point("collector-before-done");
        self.index
            .write(
                WriteBatch::new()
                    .marker(PENDING, Vec::new())
                    .marker(LAST, done)
                    .fenced(Some(keeper.fence())),
            )
            .await?;
        // Left frozen by a crash here, it only keeps a few more entries
        // beside their newer changes until the next plan replaces it.
        self.index.freeze(None, Some(&keeper.fence())).await?;
        self.counters.windows.fetch_add(1, Ordering::Relaxed);
        self.counters.entries.fetch_add(*count, Ordering::Relaxed);
        self.counters.bytes.fetch_add(*bytes, Ordering::Relaxed);
        Ok(WrittenWindow {
            number: plan.number,
            object: plan.object.clone(),
            entries: *count,
            bytes: *bytes,
            resumed: false,
        })
    }

    /// Streams the window's entries to the target and writes the manifest.
    async fn upload(
        &self,
        plan: &WindowPlan,
        keeper: &LeaseKeeper,
    ) -> Result<WindowState, CollectorError> {
        // The plan's name fixes the encoding, not today's setting: a window
        // resumed after `compression` changed must still be the bytes its
        // name promises.
        let name: LogObjectName = plan
            .object
            .parse()
            .map_err(|e| self.state_error(PENDING, format!("planned object: {e}")))?;
        let index_id = self.index_id(&keeper.fence()).await?;
        self.check_not_foreign(&name, &index_id).await?;
        let encoder = LogEncoder::new(&self.zone, name.compression)?;
        let mut upload = self.target.begin(
            &plan.object,
            self.config.multipart_threshold.as_u64() as usize,
            self.config.part_size.as_u64() as usize,
        );
        // Three stages at once: this task reads and merges the shards, a
        // blocking thread encodes and compresses (the costliest part), and
        // this task uploads what it produced. Bounded channels keep memory
        // at a few batches and chunks; a failing stage drops its channel
        // ends, which stops the others.
        let (batches, batches_rx) = mpsc::channel::<EncodedEntries>(ENCODE_QUEUE);
        let (chunks_tx, chunks) = mpsc::channel::<Vec<u8>>(ENCODE_QUEUE);
        let encoding =
            tokio::task::spawn_blocking(move || encode_stream(encoder, batches_rx, chunks_tx));
        let mut reader = self.covered_reader(plan);
        let (mut first_id, mut last_id) = (None, None);
        let feed = async {
            let batches = batches;
            let mut fed = 0u64;
            let mut batch = EncodedEntries::new();
            while fed < plan.limit {
                // Entries stay in their stored form up to the encoder, which
                // reads them in place.
                let Some(taken) = reader
                    .next_with(|entry, record| {
                        let covered = plan.watermark.covers(&entry.id);
                        if covered {
                            batch.push(entry, record);
                        }
                        covered.then_some(entry.id)
                    })
                    .await?
                else {
                    break;
                };
                let Some(id) = taken else {
                    continue;
                };
                first_id.get_or_insert(id);
                last_id = Some(id);
                fed += 1;
                if batch.len() == ENCODE_BATCH
                    && batches.send(std::mem::take(&mut batch)).await.is_err()
                {
                    // The encoder stopped; its error is reported below.
                    return Ok(());
                }
            }
            if !batch.is_empty() {
                let _ = batches.send(batch).await;
            }
            Ok::<(), CollectorError>(())
        };
        let send = async {
            let mut chunks = chunks;
            let mut recorded = false;
            while let Some(chunk) = chunks.recv().await {
                keeper.check(plan.number)?;
                upload.write(&chunk).await?;
                if let (false, Some(id)) = (recorded, upload.upload_id()) {
                    let with_id = WindowPlan {
                        upload_id: Some(id.to_string()),
                        ..plan.clone()
                    };
                    self.store(PENDING, &with_id, keeper).await?;
                    recorded = true;
                    crate::testing::stop_point("collector-mid-multipart");
                }
            }
            Ok::<(), CollectorError>(())
        };
        let (fed, sent) = tokio::join!(feed, send);
        let encoded = match encoding.await {
            Ok(result) => result.map_err(CollectorError::from),
            Err(e) => Err(CollectorError::Encode(std::io::Error::other(e.to_string()))),
        };
        let streamed = sent.and(fed).and(encoded).and_then(|count| {
            keeper.check(plan.number)?;
            Ok(count)
        });
        let count = match streamed {
            Ok(count) => count,
            Err(e) => {
                upload.abort().await;
                return Err(e);
            }
        };
        let Uploaded { size, sha256, .. } = upload.finish().await?;
        let first_id = first_id.map(|i| i.to_string()).unwrap_or_default();
        let last_id = last_id.map(|i| i.to_string()).unwrap_or_default();
        let manifest = Manifest {
            v: RECORD_VERSION,
            zone: self.zone.clone(),
            window: plan.number,
            object: plan.object.clone(),
            count,
            first_id: first_id.clone(),
            last_id: last_id.clone(),
            start: crate::record::format_time(&name.start()),
            cutoff: crate::record::format_time(&name.cutoff()),
            bytes: size,
            sha256: sha256.clone(),
            index: index_id,
        };
        let manifest_bytes =
            serde_json::to_vec_pretty(&manifest).map_err(|e| self.state_error("manifest", e))?;
        let manifest_name = name.manifest_name();
        self.target
            .put_small(&manifest_name, manifest_bytes)
            .await?;
        // Durable before the state says `uploaded`, after which the
        // covered entries are trimmed.
        self.target
            .make_durable(&[&plan.object, &manifest_name])
            .await?;
        Ok(WindowState::Uploaded {
            count,
            first_id,
            last_id,
            bytes: size,
            sha256,
        })
    }

    /// Trims every covered entry up to the window's last id: exactly the
    /// entries the object holds, also when an earlier trim was cut short.
    async fn trim(
        &self,
        plan: &WindowPlan,
        last_id: &str,
        keeper: &LeaseKeeper,
    ) -> Result<(), CollectorError> {
        if last_id.is_empty() {
            return Ok(());
        }
        let last: EntryId = last_id
            .parse()
            .map_err(|e| self.state_error(PENDING, format!("{e:?}")))?;
        // The window holds the covered entries up to `last` in key order,
        // so shard by shard, without merging, names the same set.
        let to = last
            .successor()
            .unwrap_or(EntryId::MAX)
            .min(EntryId::at(plan.cutoff_ns));
        for shard in 0..self.index.layout().shards {
            keeper.check(plan.number)?;
            self.index.trim_covered(shard, to, plan.watermark).await?;
        }
        Ok(())
    }

    async fn load<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, CollectorError> {
        match self.index.marker(name).await? {
            None => Ok(None),
            Some(bytes) if bytes.is_empty() => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| self.state_error(name, e)),
        }
    }

    async fn store<T: Serialize>(
        &self,
        name: &str,
        value: &T,
        keeper: &LeaseKeeper,
    ) -> Result<(), CollectorError> {
        let bytes = serde_json::to_vec(value).map_err(|e| self.state_error(name, e))?;
        self.index
            .write(
                WriteBatch::new()
                    .marker(name, bytes)
                    .fenced(Some(keeper.fence())),
            )
            .await?;
        Ok(())
    }

    fn state_error(&self, name: &str, e: impl std::fmt::Display) -> CollectorError {
        CollectorError::State {
            name: name.to_string(),
            reason: e.to_string(),
        }
    }
}

fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(u128::from(u64::MAX)) as u64)
        .unwrap_or(0)
}

/// The encoding stage of an upload: JSON Lines and compression of the
/// batches it receives, compressed chunks of about `FLUSH_BYTES` sent on,
/// the encoder's tail last. Returns how many entries it encoded.
fn encode_stream(
    mut encoder: LogEncoder,
    mut batches: mpsc::Receiver<EncodedEntries>,
    chunks: mpsc::Sender<Vec<u8>>,
) -> std::io::Result<u64> {
    let stopped = || std::io::Error::other("the upload stopped");
    while let Some(batch) = batches.blocking_recv() {
        for (entry, stored) in batch.iter() {
            let record = view_record(stored).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("index shard {} entry {}: {e}", entry.shard, entry.id),
                )
            })?;
            encoder.push_view(entry.id, &record)?;
        }
        if encoder.buffered() >= FLUSH_BYTES {
            chunks
                .blocking_send(encoder.take_output())
                .map_err(|_| stopped())?;
        }
    }
    let count = encoder.entries;
    let rest = encoder.finish()?;
    chunks.blocking_send(rest).map_err(|_| stopped())?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_survive_a_round_trip_through_the_index() {
        let plan = WindowPlan {
            number: 7,
            start_ns: 1,
            cutoff_ns: 2,
            watermark: Watermark(99),
            limit: 10,
            object: "o".into(),
            upload_id: Some("2~abc".into()),
            state: WindowState::Uploaded {
                count: 3,
                first_id: "a".into(),
                last_id: "b".into(),
                bytes: 4,
                sha256: "s".into(),
            },
        };
        let json = serde_json::to_vec(&plan).unwrap();
        assert_eq!(serde_json::from_slice::<WindowPlan>(&json).unwrap(), plan);
    }
}
