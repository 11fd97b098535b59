//! Leases on cls_lock and their fencing tokens (module docs, "Leases" and
//! "Fencing").

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::layout::{fence_key, num, parse_num, LEASE_PREFIX, MAX_ATTEMPTS};
use super::{Inner, RadosIndex};
use crate::error::{BackendError, BoxError};
use crate::index::{Fence, IndexError};
use crate::lease::{validate_request, Lease, LeaseError, LeaseStore};
use crate::rados::WriteOp;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeaseRecord {
    holder: String,
    token: u64,
    expires_ms: u64,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

impl Inner {
    /// A fenced op also requires the lease's token to be `fence`'s.
    pub(super) fn fence_guard(op: &mut WriteOp, fence: Option<&Fence>) {
        if let Some(f) = fence {
            op.cmp_eq(fence_key(&f.lease), num(f.token));
        }
    }

    /// After a fenced op failed a compare: `Fenced` if the lease has a
    /// newer token now, else `other` (the compare that failed was another).
    pub(super) fn fenced_or<T>(&self, fence: Option<&Fence>, other: T) -> Result<T, IndexError> {
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
    pub(super) fn check_fence(&self, fence: Option<&Fence>) -> Result<(), IndexError> {
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

    fn lease_err(&self, e: impl Into<BoxError>) -> LeaseError {
        LeaseError::Backend(BackendError::new(&self.location, e))
    }

    fn lease_err_doing(&self, what: &str, e: impl Into<BoxError>) -> LeaseError {
        LeaseError::Backend(BackendError::new(
            format_args!("{}: {what}", self.location),
            e,
        ))
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
            .map_err(|e| self.lease_err_doing(&format!("lease record {name}"), e))?;
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
        Err(LeaseError::Backend(BackendError::msg(format!(
            "{}: lease {name}: token record stayed contended",
            self.location
        ))))
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
