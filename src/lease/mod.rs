//! Named, expiring leases with fencing tokens (DESIGN.md, "Collector").
//!
//! A lease is held by one holder id at a time for a duration. It frees itself
//! when the holder dies and stops renewing. Each new holder gets a larger
//! token than any holder before it, so work tagged with a stale token can be
//! recognised and refused.

#![warn(missing_docs)]

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::error::BackendError;

/// The lease that lets exactly one collector run a round.
pub const CONTROL_LEASE: &str = "control";

/// The name of the lease on one index shard.
pub fn shard_lease_name(shard: u32) -> String {
    format!("shard-{shard}")
}

/// One term of a lease: who holds it, with which token, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The lease's name.
    pub name: String,
    /// The holder id (see [`process_holder_id`]).
    pub holder: String,
    /// Grows with every new holder of this lease name.
    pub token: u64,
    /// When it frees itself unless renewed.
    pub expires_at: SystemTime,
}

/// Why a lease call failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another holder has the lease.
    #[error("lease {name:?} is held by {holder:?} for another {remaining:?}")]
    Held {
        /// The lease.
        name: String,
        /// Who holds it.
        holder: String,
        /// Until it expires, unless renewed.
        remaining: Duration,
    },
    /// Our term of the lease is over: it expired or another holder took it.
    #[error("lease {name:?} was lost by {holder:?} (token {token}); another holder may have it")]
    Lost {
        /// The lease.
        name: String,
        /// Us.
        holder: String,
        /// The token of our term.
        token: u64,
    },
    /// A name, holder id or duration out of bounds (why).
    #[error("invalid lease request: {0}")]
    Invalid(String),
    /// The store failed underneath; the cause is the source.
    #[error("lease backend error: {0}")]
    Backend(#[from] BackendError),
}

/// Where leases live: beside the index (the embedded file, or the RADOS
/// control object, with `cls_lock`), so that a lease and the fenced writes
/// it guards are checked in one place.
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

/// Refuses an empty or over-long name or holder id, and a zero duration;
/// every store checks a request with it first.
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
