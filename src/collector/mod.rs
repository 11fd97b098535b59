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
mod keeper;
mod upload;
mod window;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::config::CollectorConfig;
use crate::index::{ChangeIndex, EntryId, IndexError, WriteBatch};
use crate::lease::{LeaseError, LeaseStore, CONTROL_LEASE};
use crate::logs::LogObjectName;
use crate::target::{Target, TargetError};
use keeper::LeaseKeeper;
pub use window::{window_state, LastWindow};
use window::{WindowPlan, WindowState, LAST, PENDING};

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
                    format: self.config.log_format(),
                    layout: self.config.layout,
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
}

fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(u128::from(u64::MAX)) as u64)
        .unwrap_or(0)
}
