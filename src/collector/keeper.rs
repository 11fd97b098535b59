//! The control lease held through a round: renewed in the background,
//! checked before every upload and state write, and the fence those writes
//! carry.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::CollectorError;
use crate::index::Fence;
use crate::lease::{Lease, LeaseStore};

/// Keeps the control lease alive in the background while a round works.
pub(super) struct LeaseKeeper {
    lost: Arc<AtomicBool>,
    lease: Arc<Mutex<Lease>>,
    task: tokio::task::JoinHandle<()>,
    /// Stop trusting the lease this long before it expires: work checked
    /// against it must not outlive it.
    safety: Duration,
}

impl LeaseKeeper {
    pub(super) fn start(leases: Arc<dyn LeaseStore>, lease: Lease, ttl: Duration) -> Self {
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
    pub(super) fn check(&self, window: u64) -> Result<(), CollectorError> {
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
    pub(super) fn fence(&self) -> Fence {
        Fence::of(&self.lease.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(super) fn stop(self) -> Lease {
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
