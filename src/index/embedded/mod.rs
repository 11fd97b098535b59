//! The embedded index backend: one redb file on local disk.
//!
//! Why redb and why this shape: see docs/decisions.md ("Embedded store").
//! redb allows one write transaction at a time and pays one fdatasync per
//! commit, so every change to the file goes through a single writer thread
//! that gathers whatever writes, trims and lease calls are waiting and
//! commits them together (group commit): concurrent callers share one
//! fsync, and each caller's batch is still all-or-nothing because a group
//! commits or fails as a whole. Reads use redb's MVCC snapshots and never
//! wait for the writer.
//!
//! Tables:
//! - `blocks`: shard (u32 BE) ‖ first EntryId (16 B BE) → a block of that
//!   shard's entries ([`super::block`], records encoded by
//!   [`super::codec`]). The blocks of a shard never overlap: every id
//!   between a block's first and last entry belongs to that block, so a
//!   shard is one contiguous key range in time order and a read finds its
//!   start with one lookup. A commit group adds each shard's new entries as
//!   one block (or merges them into the shard's small tail block), which is
//!   what makes batched ingest fast: a commit writes a few rows per shard
//!   instead of one B-tree insert per entry;
//! - `latest` (latest mode only): object version key → shard ‖ EntryId of
//!   its pending entry;
//! - `markers`: source marker name → value;
//! - `leases`: lease name → holder, token, expiry;
//! - `meta`: the layout, the last writer session, the last lease token.

mod change_index;
mod failure;
mod handle;
mod keys;
mod lease;
mod meta;
mod request;
mod scan;
mod writer;

pub use handle::{EmbeddedIndex, EmbeddedOptions};

use std::path::Path;

use redb::TableDefinition;

use crate::error::{BackendError, BoxError};
use crate::index::IndexError;

const BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blocks");
const LATEST: TableDefinition<&[u8], &[u8]> = TableDefinition::new("latest");
/// The window `freeze` holds, in `markers` (empty: none).
const FROZEN_MARKER: &str = "index/frozen-window";
const MARKERS: TableDefinition<&str, &[u8]> = TableDefinition::new("markers");
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const META_LAYOUT: &str = "layout";
const META_SESSION: &str = "session";
const META_LEASE_TOKEN: &str = "lease_token";

/// The index file inside the configured directory.
pub const INDEX_FILE: &str = "index.redb";

/// Version of the table layout, kept in the stored layout record. 1 was one
/// row per entry; 2 stores blocks.
const STORE_FORMAT: u32 = 2;

/// `location: e`, keeping `e` as the source.
fn backend(location: &Path, e: impl Into<BoxError>) -> IndexError {
    IndexError::Backend(BackendError::new(location.display(), e))
}

/// `location: what: e`, keeping `e` as the source.
fn backend_doing(location: &Path, what: &str, e: impl Into<BoxError>) -> IndexError {
    IndexError::Backend(BackendError::new(
        format_args!("{}: {what}", location.display()),
        e,
    ))
}

/// `location: what`, with no error underneath.
fn backend_msg(location: &Path, what: impl std::fmt::Display) -> IndexError {
    IndexError::Backend(BackendError::msg(format!("{}: {what}", location.display())))
}
