//! What callers hand the writer thread, and the replies it owes them.

use std::time::Duration;

use tokio::sync::oneshot;

use super::failure::Failure;
use crate::error::BackendError;
use crate::index::{EntryId, EntryRef, Fence, IndexError, SourceMarker, Watermark, Written};
use crate::lease::{Lease, LeaseError};

/// A validated batch, encoded by the caller (so that the writer thread only
/// does store work) into one buffer (so that a batch costs one allocation
/// and one free, not one per record).
pub(super) struct PreparedBatch {
    pub(super) entries: Vec<PreparedEntry>,
    pub(super) data: Vec<u8>,
}

/// A record of a prepared batch: `data[start..end]`.
pub(super) struct PreparedEntry {
    pub(super) shard: u32,
    pub(super) time_ns: u64,
    pub(super) start: usize,
    pub(super) end: usize,
}

pub(super) enum Request {
    Write {
        batch: PreparedBatch,
        markers: Vec<SourceMarker>,
        fence: Option<Fence>,
        reply: oneshot::Sender<Result<Vec<Written>, IndexError>>,
    },
    Trim {
        entries: Vec<EntryRef>,
        reply: oneshot::Sender<Result<u64, IndexError>>,
    },
    TrimCovered {
        shard: u32,
        from: EntryId,
        to: EntryId,
        watermark: Watermark,
        reply: oneshot::Sender<Result<u64, IndexError>>,
    },
    Lease {
        op: LeaseOp,
        reply: oneshot::Sender<Result<Option<Lease>, LeaseError>>,
    },
}

pub(super) enum LeaseOp {
    Acquire {
        name: String,
        holder: String,
        ttl: Duration,
    },
    Renew {
        lease: Lease,
        ttl: Duration,
    },
    Release {
        lease: Lease,
    },
}

/// A reply channel whose request did not commit.
pub(super) enum PendingReply {
    Write(oneshot::Sender<Result<Vec<Written>, IndexError>>),
    Trim(oneshot::Sender<Result<u64, IndexError>>),
    Lease(oneshot::Sender<Result<Option<Lease>, LeaseError>>),
}

impl PendingReply {
    pub(super) fn refuse(self, error: IndexError) {
        match self {
            PendingReply::Write(r) => drop(r.send(Err(error))),
            PendingReply::Trim(r) => drop(r.send(Err(error))),
            PendingReply::Lease(r) => {
                drop(r.send(Err(LeaseError::Backend(BackendError::wrap(error)))))
            }
        }
    }

    pub(super) fn fail(self, failure: &Failure) {
        let index_error = || {
            let message = failure.message.clone();
            if failure.corrupt {
                IndexError::Corrupt(message)
            } else {
                IndexError::Backend(BackendError::shared(message, failure.source.clone()))
            }
        };
        match self {
            PendingReply::Write(r) => drop(r.send(Err(index_error()))),
            PendingReply::Trim(r) => drop(r.send(Err(index_error()))),
            PendingReply::Lease(r) => drop(r.send(Err(LeaseError::Backend(BackendError::shared(
                failure.message.clone(),
                failure.source.clone(),
            ))))),
        }
    }
}

impl Request {
    pub(super) fn size(&self) -> usize {
        match self {
            Request::Write { batch, .. } => batch.entries.len().max(1),
            Request::Trim { entries, .. } => entries.len().max(1),
            // Mostly whole blocks dropped: cheap for any number of entries.
            Request::TrimCovered { .. } => 1,
            Request::Lease { .. } => 1,
        }
    }

    pub(super) fn into_reply(self) -> PendingReply {
        match self {
            Request::Write { reply, .. } => PendingReply::Write(reply),
            Request::Trim { reply, .. } | Request::TrimCovered { reply, .. } => {
                PendingReply::Trim(reply)
            }
            Request::Lease { reply, .. } => PendingReply::Lease(reply),
        }
    }
}
