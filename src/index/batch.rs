//! What a write hands the index: records and source markers that become
//! durable together, fenced by the writer's lease; and what it got back.

use super::{EntryRef, IndexError};
use crate::record::ChangeRecord;

/// Source markers are positions such as RGW bilog markers; a few KiB is
/// plenty, and the bound keeps a bad caller from bloating every commit.
pub const MAX_MARKER_BYTES: usize = 64 * 1024;
const MAX_MARKER_NAME_BYTES: usize = 512;

/// An opaque capture position, committed atomically with the entries it
/// covers so that a restart resumes exactly after the last commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMarker {
    /// The source and position it names, e.g. an RGW bilog shard.
    pub name: String,
    /// The position, in the source's own form.
    pub value: Vec<u8>,
}

/// Entries and markers that become durable together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// The changes to store.
    pub records: Vec<ChangeRecord>,
    /// The positions they bring each source to.
    pub markers: Vec<SourceMarker>,
    /// The lease the writer holds: the batch is refused, as a whole, once
    /// a newer holder took that lease (see [`Fence`]).
    pub fence: Option<Fence>,
}

/// A lease term, carried by every state write of a leased role (collector,
/// capture): the backend refuses the write, in the same atomic step that
/// would apply it, once another holder got a newer token for the lease. So
/// a holder frozen past its lease (SIGSTOP, a VM pause) cannot move state
/// back or write twice what its successor wrote when it resumes: a renewal
/// loop can only notice the loss after the fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lease's name.
    pub lease: String,
    /// The holder's fencing token (grows with every new holder).
    pub token: u64,
}

impl Fence {
    /// The fence of a lease we hold.
    pub fn of(lease: &crate::lease::Lease) -> Fence {
        Fence {
            lease: lease.name.clone(),
            token: lease.token,
        }
    }
}

impl WriteBatch {
    /// An empty, unfenced batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a record.
    pub fn record(mut self, record: ChangeRecord) -> Self {
        self.records.push(record);
        self
    }

    /// Adds a source marker.
    pub fn marker(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.markers.push(SourceMarker {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// Fences the batch with the writer's lease (`None`: unfenced).
    pub fn fenced(mut self, fence: Option<Fence>) -> Self {
        self.fence = fence;
        self
    }

    /// Refuses the whole batch if any part is invalid, so that nothing of a
    /// bad batch is ever written.
    pub fn validate(&self) -> Result<(), IndexError> {
        for (position, record) in self.records.iter().enumerate() {
            record
                .validate()
                .map_err(|reason| IndexError::InvalidRecord { position, reason })?;
        }
        for marker in &self.markers {
            if marker.name.is_empty() || marker.name.len() > MAX_MARKER_NAME_BYTES {
                return Err(IndexError::InvalidMarker {
                    name: marker.name.clone(),
                    reason: format!("name must be 1 to {MAX_MARKER_NAME_BYTES} bytes"),
                });
            }
            if marker.value.len() > MAX_MARKER_BYTES {
                return Err(IndexError::InvalidMarker {
                    name: marker.name.clone(),
                    reason: format!(
                        "value is {} bytes, more than {MAX_MARKER_BYTES}",
                        marker.value.len()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// What a write did with each record, in batch order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Stored under this key.
    Stored(EntryRef),
    /// Latest mode: a pending entry for the same object version is newer, so
    /// this older change adds nothing.
    Superseded(EntryRef),
}
