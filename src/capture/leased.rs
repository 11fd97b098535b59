//! Capture behind a lease, for indexes shared by several instances (RADOS).
//!
//! Two instances tailing the same zone logs into one index would index
//! every change twice: the bilog markers stop a replay only when reads and
//! writes of one bucket shard do not overlap. Two push receivers would each
//! remember only the notifications they took, so a redelivery to the other
//! would be stored twice. So exactly one instance runs each source — the
//! holder of its lease ([`CAPTURE_LEASE`], [`NOTIFY_LEASE`]) — and the others
//! stand by and take over within one lease duration when it dies. A holder
//! that loses the lease stops capturing before its lease can have expired
//! (it stops trusting the lease a safety margin early), so two captures only
//! overlap if a renewal stalls longer than that margin. Even then the old
//! holder's writes carry its lease term ([`Fence`]) and the index refuses
//! them once the new holder took the lease, so a holder frozen past its
//! lease (SIGSTOP, a VM pause) can neither double nor undo what its
//! successor wrote. A new holder first finishes the batches a dead one
//! left half written ([`ChangeIndex::recover`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::index::fenced::FencedIndex;
use crate::index::{ChangeIndex, Fence};
use crate::lease::{LeaseError, LeaseStore};

/// The lease of the rgw source.
pub const CAPTURE_LEASE: &str = "capture-rgw";
/// The lease of the notify source (the push receiver).
pub const NOTIFY_LEASE: &str = "capture-notify";

/// Something that captures until told to stop.
#[async_trait::async_trait]
pub trait Capture: Send + Sync {
    async fn run(&self, shutdown: watch::Receiver<bool>);
}

#[async_trait::async_trait]
impl Capture for super::rgw::tail::RgwCapture {
    async fn run(&self, shutdown: watch::Receiver<bool>) {
        super::rgw::tail::RgwCapture::run(self, shutdown).await
    }
}

/// Runs a fresh capture from `make` for every lease term, until `shutdown`.
/// A fresh capture per term catches up every known bucket shard, as after a
/// process start. `make` gets the index to write through: every write of
/// the term carries the term's fence, so if this process is frozen past
/// its lease, what it writes once it resumes is refused rather than
/// doubling or undoing its successor's work.
pub async fn run_leased<C, F>(
    lease_name: &'static str,
    make: F,
    index: Arc<dyn ChangeIndex>,
    leases: Arc<dyn LeaseStore>,
    holder: String,
    ttl: Duration,
    mut shutdown: watch::Receiver<bool>,
) where
    C: Capture,
    F: Fn(Arc<dyn ChangeIndex>) -> C + Send + Sync,
{
    let safety = (ttl / 4).min(Duration::from_secs(2));
    let mut standby_logged = false;
    while !*shutdown.borrow() {
        let mut lease = match leases.acquire(lease_name, &holder, ttl).await {
            Ok(lease) => lease,
            Err(LeaseError::Held { holder: other, .. }) => {
                if !standby_logged {
                    tracing::info!(lease = lease_name, holder = %other, "capture: another instance holds the lease; standing by");
                    standby_logged = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(ttl / 3) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(lease = lease_name, error = %e, "capture: cannot take the lease; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(ttl / 3) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        };
        standby_logged = false;
        // A previous holder may have died between a batch's entries and its
        // markers: finish that batch first, or the capture would replay it
        // and index it twice.
        match index.recover().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                batches = n,
                "capture: finished batches a stopped capture left half written"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "capture: cannot finish half-written batches; not capturing yet");
                let _ = leases.release(&lease).await;
                tokio::select! {
                    _ = tokio::time::sleep(ttl / 3) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        }
        tracing::info!(
            lease = lease_name,
            token = lease.token,
            "capture: took the lease; capturing"
        );
        let capture = make(Arc::new(FencedIndex::new(index.clone(), Fence::of(&lease))));
        let (stop, stopped) = watch::channel(false);
        let run = capture.run(stopped);
        tokio::pin!(run);
        let mut lost = false;
        loop {
            tokio::select! {
                _ = &mut run => break,
                _ = tokio::time::sleep(ttl / 3), if !lost => {
                    match tokio::time::timeout(ttl / 3, leases.renew(&lease, ttl)).await {
                        Ok(Ok(renewed)) => lease = renewed,
                        Ok(Err(e)) => {
                            tracing::error!(lease = lease_name, error = %e, "capture: lost the lease; stopping");
                            lost = true;
                        }
                        Err(_) => {
                            if SystemTime::now() + safety >= lease.expires_at {
                                tracing::error!(lease = lease_name, "capture: renewals of the lease hang; stopping before it expires");
                                lost = true;
                            }
                        }
                    }
                    if lost {
                        let _ = stop.send(true);
                    }
                }
                _ = shutdown.changed() => {
                    let _ = stop.send(true);
                }
            }
        }
        if !lost {
            if let Err(e) = leases.release(&lease).await {
                tracing::warn!(lease = lease_name, error = %e, "capture: could not release the lease");
            }
        }
    }
}
