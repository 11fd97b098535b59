//! Named, expiring leases with fencing tokens (DESIGN.md, "Collector").
//!
//! A lease is held by one holder id at a time for a duration. It frees itself
//! when the holder dies and stops renewing. Each new holder gets a larger
//! token than any holder before it, so work tagged with a stale token can be
//! recognised and refused.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::error::BackendError;

/// The lease that lets exactly one collector run a round.
pub const CONTROL_LEASE: &str = "control";

pub fn shard_lease_name(shard: u32) -> String {
    format!("shard-{shard}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    /// Grows with every new holder of this lease name.
    pub token: u64,
    pub expires_at: SystemTime,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lease {name:?} is held by {holder:?} for another {remaining:?}")]
    Held {
        name: String,
        holder: String,
        remaining: Duration,
    },
    #[error("lease {name:?} was lost by {holder:?} (token {token}); another holder may have it")]
    Lost {
        name: String,
        holder: String,
        token: u64,
    },
    #[error("invalid lease request: {0}")]
    Invalid(String),
    #[error("lease backend error: {0}")]
    Backend(#[from] BackendError),
}

#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Takes the lease if it is free, expired, or already ours (then it is
    /// extended and keeps its token).
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<Lease, LeaseError>;

    /// Extends a lease we hold; fails with [`LeaseError::Lost`] once it
    /// expired or another holder took it.
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LeaseError>;

    /// Gives the lease up early; releasing a lease we no longer hold is not
    /// an error (there is nothing left to give up).
    async fn release(&self, lease: &Lease) -> Result<(), LeaseError>;

    /// Who holds the lease now, if anyone (for `zonelog status`).
    async fn holder(&self, name: &str) -> Result<Option<Lease>, LeaseError>;
}

pub fn validate_request(name: &str, holder: &str, ttl: Duration) -> Result<(), LeaseError> {
    if name.is_empty() || name.len() > 256 {
        return Err(LeaseError::Invalid(format!(
            "lease name must be 1 to 256 bytes, got {} bytes",
            name.len()
        )));
    }
    if holder.is_empty() || holder.len() > 256 {
        return Err(LeaseError::Invalid(format!(
            "holder id must be 1 to 256 bytes, got {} bytes",
            holder.len()
        )));
    }
    if ttl.is_zero() {
        return Err(LeaseError::Invalid(
            "lease duration must be positive".into(),
        ));
    }
    Ok(())
}

/// A holder id that is unique per process: host, pid and start time.
pub fn process_holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into());
    let started = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!("{host}:{}:{started}", std::process::id())
}
