//! Capture sources: where changes come from.

pub mod leased;
pub mod notify;
pub mod rgw;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::record::Op;

/// Changes a source wrote to the index, by op (the
/// `zonelog_changes_captured` metric).
#[derive(Debug, Default)]
pub struct OpCounters {
    pub puts: AtomicU64,
    pub deletes: AtomicU64,
    pub delete_markers: AtomicU64,
    pub metadata: AtomicU64,
    pub bucket_removals: AtomicU64,
}

impl OpCounters {
    pub fn count(&self, op: Op) {
        self.of(op).fetch_add(1, Ordering::Relaxed);
    }

    pub fn of(&self, op: Op) -> &AtomicU64 {
        match op {
            Op::Put => &self.puts,
            Op::Delete => &self.deletes,
            Op::DeleteMarker => &self.delete_markers,
            Op::Metadata => &self.metadata,
            Op::BucketRemoved => &self.bucket_removals,
        }
    }

    /// All ops together.
    pub fn total(&self) -> u64 {
        Op::ALL
            .iter()
            .map(|op| self.of(*op).load(Ordering::Relaxed))
            .sum()
    }
}
