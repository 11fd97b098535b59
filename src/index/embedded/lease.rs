//! Leases and fencing: kept in the `leases` table and changed only by the
//! writer thread, in the same transactions as the writes they fence.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redb::{ReadableDatabase as _, ReadableTable as _, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::failure::Failure;
use super::handle::EmbeddedIndex;
use super::meta::read_u64;
use super::request::{LeaseOp, Request};
use super::{LEASES, META, META_LEASE_TOKEN};
use crate::error::{BackendError, BoxError};
use crate::index::{Fence, IndexError};
use crate::lease::{validate_request, Lease, LeaseError, LeaseStore};

#[derive(Serialize, Deserialize)]
struct StoredLease {
    holder: String,
    token: u64,
    expires_unix_ms: u64,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// Whether the lease `fence` names still has its token: read in the write
/// transaction itself, so no takeover falls between the check and the
/// write. A released or expired lease keeps its token until a new holder
/// takes it.
pub(super) fn holds_fence(tx: &WriteTransaction, fence: Option<&Fence>) -> Result<bool, Failure> {
    let Some(fence) = fence else { return Ok(true) };
    let leases = tx.open_table(LEASES)?;
    let Some(v) = leases.get(fence.lease.as_str())? else {
        return Ok(false);
    };
    let stored: StoredLease = serde_json::from_slice(v.value())
        .map_err(|e| Failure::corrupt(format!("lease record {}: {e}", fence.lease)))?;
    Ok(stored.token == fence.token)
}

pub(super) fn fenced(fence: Option<&Fence>) -> IndexError {
    let (lease, token) = fence.map_or((String::new(), 0), |f| (f.lease.clone(), f.token));
    IndexError::Fenced { lease, token }
}

pub(super) fn apply_lease(
    tx: &WriteTransaction,
    op: LeaseOp,
) -> Result<Result<Option<Lease>, LeaseError>, String> {
    let e = |e: redb::Error| e.to_string();
    let mut leases = tx.open_table(LEASES).map_err(|x| e(x.into()))?;
    let now = SystemTime::now();
    let name = match &op {
        LeaseOp::Acquire { name, .. } => name.clone(),
        LeaseOp::Renew { lease, .. } | LeaseOp::Release { lease } => lease.name.clone(),
    };
    let current: Option<StoredLease> = match leases.get(name.as_str()).map_err(|x| e(x.into()))? {
        Some(v) => Some(serde_json::from_slice(v.value()).map_err(|x| x.to_string())?),
        None => None,
    };
    let live = current
        .as_ref()
        .filter(|l| l.expires_unix_ms > unix_ms(now));
    let to_lease = |stored: &StoredLease| Lease {
        name: name.clone(),
        holder: stored.holder.clone(),
        token: stored.token,
        expires_at: UNIX_EPOCH + Duration::from_millis(stored.expires_unix_ms),
    };
    let put = |leases: &mut redb::Table<&str, &[u8]>, stored: &StoredLease| -> Result<(), String> {
        let bytes = serde_json::to_vec(stored).map_err(|x| x.to_string())?;
        leases
            .insert(name.as_str(), bytes.as_slice())
            .map_err(|x| e(x.into()))?;
        Ok(())
    };
    let expiry = |ttl: Duration| unix_ms(now + ttl);
    match op {
        LeaseOp::Acquire { holder, ttl, .. } => {
            if let Some(l) = live {
                if l.holder != holder {
                    let remaining = Duration::from_millis(l.expires_unix_ms - unix_ms(now));
                    return Ok(Err(LeaseError::Held {
                        name,
                        holder: l.holder.clone(),
                        remaining,
                    }));
                }
                let stored = StoredLease {
                    holder,
                    token: l.token,
                    expires_unix_ms: expiry(ttl),
                };
                put(&mut leases, &stored)?;
                return Ok(Ok(Some(to_lease(&stored))));
            }
            drop(leases);
            let mut meta = tx.open_table(META).map_err(|x| e(x.into()))?;
            let token = read_u64(&meta, META_LEASE_TOKEN, Path::new("leases"))
                .map_err(|x| x.to_string())?
                + 1;
            meta.insert(META_LEASE_TOKEN, token.to_le_bytes().as_slice())
                .map_err(|x| e(x.into()))?;
            drop(meta);
            let mut leases = tx.open_table(LEASES).map_err(|x| e(x.into()))?;
            let stored = StoredLease {
                holder,
                token,
                expires_unix_ms: expiry(ttl),
            };
            put(&mut leases, &stored)?;
            Ok(Ok(Some(to_lease(&stored))))
        }
        LeaseOp::Renew { lease, ttl } => match live {
            Some(l) if l.holder == lease.holder && l.token == lease.token => {
                let stored = StoredLease {
                    holder: lease.holder,
                    token: l.token,
                    expires_unix_ms: expiry(ttl),
                };
                put(&mut leases, &stored)?;
                Ok(Ok(Some(to_lease(&stored))))
            }
            _ => Ok(Err(LeaseError::Lost {
                name,
                holder: lease.holder,
                token: lease.token,
            })),
        },
        LeaseOp::Release { lease } => {
            if let Some(l) = current
                .as_ref()
                .filter(|l| l.holder == lease.holder && l.token == lease.token)
            {
                // Expired at once, but its token stays: a fenced write of
                // this term must still be told apart from a newer one.
                let stored = StoredLease {
                    holder: l.holder.clone(),
                    token: l.token,
                    expires_unix_ms: 0,
                };
                put(&mut leases, &stored)?;
            }
            Ok(Ok(None))
        }
    }
}

impl EmbeddedIndex {
    async fn lease_op(&self, op: LeaseOp) -> Result<Option<Lease>, LeaseError> {
        self.submit(|reply| Request::Lease { op, reply })
            .await
            .map_err(|e| LeaseError::Backend(BackendError::wrap(e)))?
    }
}

#[async_trait]
impl LeaseStore for EmbeddedIndex {
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<Lease, LeaseError> {
        validate_request(name, holder, ttl)?;
        self.lease_op(LeaseOp::Acquire {
            name: name.to_string(),
            holder: holder.to_string(),
            ttl,
        })
        .await?
        .ok_or_else(|| LeaseError::Backend("acquire returned no lease".into()))
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LeaseError> {
        validate_request(&lease.name, &lease.holder, ttl)?;
        self.lease_op(LeaseOp::Renew {
            lease: lease.clone(),
            ttl,
        })
        .await?
        .ok_or_else(|| LeaseError::Backend("renew returned no lease".into()))
    }

    async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        self.lease_op(LeaseOp::Release {
            lease: lease.clone(),
        })
        .await
        .map(|_| ())
    }

    async fn holder(&self, name: &str) -> Result<Option<Lease>, LeaseError> {
        let err = |e: BoxError| LeaseError::Backend(BackendError::wrap(e));
        let tx = self
            .db
            .get()
            .map_err(|e| err(e.into()))?
            .begin_read()
            .map_err(|e| err(e.into()))?;
        let table = tx.open_table(LEASES).map_err(|e| err(e.into()))?;
        let Some(v) = table.get(name).map_err(|e| err(e.into()))? else {
            return Ok(None);
        };
        let stored: StoredLease = serde_json::from_slice(v.value()).map_err(|e| err(e.into()))?;
        if stored.expires_unix_ms <= unix_ms(SystemTime::now()) {
            return Ok(None);
        }
        Ok(Some(Lease {
            name: name.to_string(),
            holder: stored.holder,
            token: stored.token,
            expires_at: UNIX_EPOCH + Duration::from_millis(stored.expires_unix_ms),
        }))
    }
}
