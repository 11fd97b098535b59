//! The conformance suite every index backend must pass, unchanged.
//!
//! A backend's test file implements [`ConformanceBackend`] (a fresh, empty
//! location per instance) and expands [`crate::index_conformance_tests!`],
//! which turns each check below into its own test.

mod latest;
mod lease;
mod model;
mod read;
mod trim;
mod write;

pub use latest::{
    latest_mode_keeps_a_frozen_window_as_planned, latest_mode_keeps_one_entry_per_version,
    latest_mode_trim_of_replaced_entry_keeps_newer,
};
pub use lease::{leases_exclude_expire_and_fence, writes_of_a_superseded_lease_holder_are_refused};
pub use model::{check_against_model, ModelOp};
pub use read::{
    range_bounds_and_paging, reads_come_back_in_key_order, same_nanosecond_changes_get_unique_keys,
};
pub use trim::{trim_covered_removes_exactly_the_window, trim_removes_exactly_what_was_read};
pub use write::{
    concurrent_writers_all_land, invalid_batch_writes_nothing, markers_commit_with_entries,
    reopen_keeps_data_and_refuses_other_layout, stats_count_entries_bytes_and_age,
    watermark_covers_exactly_what_was_committed,
};

use std::sync::Arc;

use async_trait::async_trait;
use chrono::DateTime;

use super::{
    ChangeIndex, EntryId, EntryRef, IndexError, IndexLayout, IndexMode, IndexedEntry, MergedReader,
    Written,
};
use crate::lease::LeaseStore;
use crate::record::{ChangeRecord, Op, Provenance};

/// One fresh storage location for the suite.
#[async_trait]
pub trait ConformanceBackend: Send + Sync {
    /// Opens (creating on first use) the index at this backend's location.
    /// Called again after the previous handle was dropped, to test reopening.
    async fn open(&self, layout: IndexLayout) -> Result<Arc<dyn ChangeIndex>, IndexError>;
    /// The lease store that lives beside the index at this location.
    async fn leases(&self) -> Arc<dyn LeaseStore>;
    /// An index and the lease store its fenced writes check: one handle.
    async fn open_with_leases(
        &self,
        layout: IndexLayout,
    ) -> Result<(Arc<dyn ChangeIndex>, Arc<dyn LeaseStore>), IndexError>;
}

/// A record for tests: `time_ns` is the source time.
pub fn record(
    bucket: &str,
    key: &str,
    version: Option<&str>,
    op: Op,
    time_ns: u64,
) -> ChangeRecord {
    ChangeRecord {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id: version.map(str::to_string),
        op,
        time: DateTime::from_timestamp_nanos(time_ns as i64),
        size: Some(time_ns % 1000),
        etag: Some(format!("etag-{time_ns}")),
        mtime: None,
        source: Provenance::Test,
        // Some details, so every backend is seen to keep them.
        details: crate::record::ChangeDetails {
            sequence: Some(format!("{time_ns:032x}")),
            tags: Some([("suite".to_string(), key.to_string())].into()),
            ..Default::default()
        },
    }
}

fn every_write(shards: u32) -> IndexLayout {
    IndexLayout {
        shards,
        mode: IndexMode::EveryWrite,
    }
}

fn latest(shards: u32) -> IndexLayout {
    IndexLayout {
        shards,
        mode: IndexMode::Latest,
    }
}

fn stored(written: &[Written]) -> Vec<EntryRef> {
    written
        .iter()
        .filter_map(|w| match w {
            Written::Stored(r) => Some(*r),
            Written::Superseded(_) => None,
        })
        .collect()
}

/// Every entry of the index, merged by key.
pub async fn read_all(index: &Arc<dyn ChangeIndex>) -> Vec<IndexedEntry> {
    let mut reader = MergedReader::new(index.clone(), EntryId::MIN, EntryId::MAX, 7);
    let mut out = Vec::new();
    while let Some(e) = reader.next().await.expect("merged read") {
        out.push(e);
    }
    out
}

/// Expands to one `#[tokio::test]` per conformance check. `$make` is an
/// expression giving a fresh [`ConformanceBackend`].
#[macro_export]
macro_rules! index_conformance_tests {
    ($make:expr) => {
        $crate::index_conformance_tests!(@each $make;
            reads_come_back_in_key_order,
            range_bounds_and_paging,
            same_nanosecond_changes_get_unique_keys,
            trim_removes_exactly_what_was_read,
            trim_covered_removes_exactly_the_window,
            invalid_batch_writes_nothing,
            markers_commit_with_entries,
            reopen_keeps_data_and_refuses_other_layout,
            latest_mode_keeps_one_entry_per_version,
            latest_mode_trim_of_replaced_entry_keeps_newer,
            latest_mode_keeps_a_frozen_window_as_planned,
            stats_count_entries_bytes_and_age,
            concurrent_writers_all_land,
            watermark_covers_exactly_what_was_committed,
            leases_exclude_expire_and_fence,
            writes_of_a_superseded_lease_holder_are_refused
        );
    };
    (@each $make:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let backend = $make;
                $crate::index::conformance::$check(&backend).await;
            }
        )*
    };
}
