//! The notify (push) source: an HTTP receiver for S3 event notifications.
//!
//! `POST /v1/events` takes a `{"Records":[…]}` body (Ceph RGW, MinIO, AWS
//! format; see [`event`]), checks the token, maps the records, applies the
//! filter, and answers 200 only after the records are durable in the index.
//!
//! Requests are committed by one task that takes every request waiting and
//! writes them as one batch (group commit): concurrent requests share one
//! durable commit, and because that task alone reads and updates the
//! seen-set ([`seen`]), checking "already stored?" and storing are one step
//! — two copies of a notification arriving at once still make one record.
//! The seen-set's changed slots are markers in the same batch as the
//! records, so after a crash an event is either stored and remembered, or
//! neither (and the sender, which got no 200, delivers it again).

pub mod event;
mod event_details;
pub mod seen;
pub mod server;
pub mod setup;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};

use crate::capture::rgw::tail::LagHistogram;
use crate::capture::OpCounters;
use crate::filter::Filter;
use crate::index::{ChangeIndex, IndexError, WriteBatch};
use crate::record::Op;

pub use event::{EventError, Notification, Parsed};
pub use server::{start, NotifyServer};

/// Request latency buckets (seconds): a durable commit takes milliseconds.
const LATENCY_BOUNDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counters of the notify source, read by `/metrics`.
#[derive(Debug)]
pub struct NotifyCounters {
    /// Requests answered 200.
    pub accepted: AtomicU64,
    /// Requests refused: no or wrong token (401).
    pub unauthorized: AtomicU64,
    /// Requests refused: malformed body or record (400).
    pub malformed: AtomicU64,
    /// Requests refused: body or record count over the limit (413).
    pub too_large: AtomicU64,
    /// Requests that failed to commit (503; the sender retries).
    pub failed: AtomicU64,
    /// Records stored, by op.
    pub ops: OpCounters,
    /// Notifications already stored (redeliveries), not stored again.
    pub duplicates: AtomicU64,
    /// Notifications outside the filter.
    pub filtered: AtomicU64,
    /// Events that are not object changes (reads, test events, …).
    pub ignored: AtomicU64,
    /// Durable commits (each may carry many requests).
    pub commits: AtomicU64,
    /// When a request was last answered 200, ns since the epoch.
    pub last_accepted_ns: AtomicU64,
    /// Source time of the newest stored change, ns since the epoch.
    pub newest_change_ns: AtomicU64,
    /// Seconds from receiving a request to answering it (accepted ones).
    pub latency: LagHistogram,
}

impl Default for NotifyCounters {
    fn default() -> Self {
        NotifyCounters {
            accepted: AtomicU64::new(0),
            unauthorized: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            too_large: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            ops: OpCounters::default(),
            duplicates: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            ignored: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            last_accepted_ns: AtomicU64::new(0),
            newest_change_ns: AtomicU64::new(0),
            latency: LagHistogram {
                bounds: LATENCY_BOUNDS,
                counts: (0..=LATENCY_BOUNDS.len())
                    .map(|_| AtomicU64::new(0))
                    .collect(),
                sum_micros: AtomicU64::new(0),
            },
        }
    }
}

impl NotifyCounters {
    /// Records stored so far, all ops.
    pub fn stored(&self) -> u64 {
        self.ops.total()
    }

    fn count_op(&self, op: Op) {
        self.ops.count(op);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot listen on {listen} (sources.notify.listen): {source}")]
    Listen {
        listen: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read the notify seen-set from the index: {0}")]
    Index(#[from] IndexError),
    #[error(transparent)]
    CorruptSeenSet(#[from] seen::CorruptSlot),
    #[error("the index refused the batch: {0}")]
    Commit(String),
    #[error("the notify committer has stopped")]
    Stopped,
    #[error("this instance no longer holds the notify lease; another instance receives now")]
    NotHolder,
}

/// What happened to one request's notifications.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    pub stored: usize,
    pub duplicates: usize,
    pub filtered: usize,
}

struct Submission {
    notifications: Vec<Notification>,
    reply: oneshot::Sender<Result<Outcome, NotifyError>>,
}

/// Handle to the committer task.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Submission>,
    max_batch: usize,
}

impl Committer {
    /// Starts the committer on `index` with the seen-set stored there.
    ///
    /// `term`, for a receiver behind a lease: once it turns true the lease
    /// term is over and nothing more is committed (the senders get 503 and
    /// retry at the new holder), however long the requests in flight still
    /// take; so the new holder's seen-set, loaded when its term began,
    /// misses nothing this one stores.
    pub async fn start(
        index: Arc<dyn ChangeIndex>,
        filter: Filter,
        dedup_events: usize,
        counters: Arc<NotifyCounters>,
        term: Option<watch::Receiver<bool>>,
    ) -> Result<(Committer, tokio::task::JoinHandle<()>), NotifyError> {
        let markers = index.markers(seen::SEEN_PREFIX).await?;
        let seen = seen::SeenSet::load(dedup_events, &markers)?;
        tracing::info!(
            remembered = seen.len(),
            "notify: loaded the seen-set of recent notifications"
        );
        let max_batch = seen.max_batch();
        let (tx, rx) = mpsc::channel(1024);
        let task = tokio::spawn(commit_loop(
            index, filter, seen, rx, counters, max_batch, term,
        ));
        Ok((Committer { tx, max_batch }, task))
    }

    /// The most notifications one request may carry (one atomic commit).
    pub fn max_per_request(&self) -> usize {
        self.max_batch
    }

    /// Stores the notifications durably (or finds them stored already).
    pub async fn submit(&self, notifications: Vec<Notification>) -> Result<Outcome, NotifyError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Submission {
                notifications,
                reply,
            })
            .await
            .map_err(|_| NotifyError::Stopped)?;
        answer.await.map_err(|_| NotifyError::Stopped)?
    }
}

async fn commit_loop(
    index: Arc<dyn ChangeIndex>,
    filter: Filter,
    mut seen: seen::SeenSet,
    mut rx: mpsc::Receiver<Submission>,
    counters: Arc<NotifyCounters>,
    max_batch: usize,
    term: Option<watch::Receiver<bool>>,
) {
    while let Some(first) = rx.recv().await {
        let mut total = first.notifications.len();
        let mut group = vec![first];
        while total < max_batch {
            match rx.try_recv() {
                Ok(next) if total + next.notifications.len() <= max_batch => {
                    total += next.notifications.len();
                    group.push(next);
                }
                Ok(next) => {
                    // Does not fit: commit what we have, then this one.
                    let over = term_over(&term);
                    commit_group(&index, &filter, &mut seen, group, &counters, over).await;
                    group = vec![next];
                    total = group[0].notifications.len();
                }
                Err(_) => break,
            }
        }
        let over = term_over(&term);
        commit_group(&index, &filter, &mut seen, group, &counters, over).await;
    }
}

fn term_over(term: &Option<watch::Receiver<bool>>) -> bool {
    term.as_ref().is_some_and(|t| *t.borrow())
}

/// Commits a group of submissions, or, once the lease term is `over`,
/// refuses them all.
async fn commit_group(
    index: &Arc<dyn ChangeIndex>,
    filter: &Filter,
    seen: &mut seen::SeenSet,
    group: Vec<Submission>,
    counters: &NotifyCounters,
    over: bool,
) {
    if over {
        for submission in group {
            let _ = submission.reply.send(Err(NotifyError::NotHolder));
        }
        return;
    }
    let started = Instant::now();
    let mut batch = WriteBatch::new();
    let mut new_keys = Vec::new();
    let mut in_group = std::collections::HashSet::new();
    let mut replies = Vec::with_capacity(group.len());
    for submission in group {
        let mut outcome = Outcome::default();
        for n in submission.notifications {
            if !filter.matches(&n.record.bucket, &n.record.key) {
                outcome.filtered += 1;
                continue;
            }
            if let Some(key) = n.dedup {
                if seen.contains(key) || !in_group.insert(key) {
                    outcome.duplicates += 1;
                    continue;
                }
                new_keys.push(key);
            }
            outcome.stored += 1;
            batch.records.push(n.record);
        }
        replies.push((outcome, submission.reply));
    }
    let staged = seen.stage(&new_keys);
    batch.markers = staged.markers.clone();
    let ops: Vec<Op> = batch.records.iter().map(|r| r.op).collect();
    let newest = batch.records.iter().filter_map(|r| r.time_ns().ok()).max();
    let stored = ops.len();
    let result = if batch.records.is_empty() && batch.markers.is_empty() {
        Ok(Vec::new())
    } else {
        index.write(batch).await
    };
    match result {
        Ok(_) => {
            seen.apply(staged);
            counters.commits.fetch_add(1, Ordering::Relaxed);
            counters
                .last_accepted_ns
                .store(unix_now_ns(), Ordering::Relaxed);
            if let Some(t) = newest {
                counters.newest_change_ns.fetch_max(t, Ordering::Relaxed);
            }
            for op in ops {
                counters.count_op(op);
            }
            for (outcome, reply) in replies {
                counters
                    .duplicates
                    .fetch_add(outcome.duplicates as u64, Ordering::Relaxed);
                counters
                    .filtered
                    .fetch_add(outcome.filtered as u64, Ordering::Relaxed);
                let _ = reply.send(Ok(outcome));
            }
            tracing::debug!(
                records = stored,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "notify: committed a group"
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "notify: commit failed; the senders will retry");
            let message = e.to_string();
            for (_, reply) in replies {
                let _ = reply.send(Err(NotifyError::Commit(message.clone())));
            }
        }
    }
}

fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
