//! The manifest written beside each log object (docs/format.md,
//! "Manifest"): what the object holds and its checksum, so a consumer can
//! check it without decompressing it.

use serde::{Deserialize, Serialize};

/// The manifest written beside each log object (see docs/format.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The record schema version of the object's records.
    pub v: u32,
    /// The zone the changes belong to.
    pub zone: String,
    /// The window number, as in the object's name.
    pub window: u64,
    /// The log object's key below the target prefix.
    pub object: String,
    /// How many changes the object holds.
    pub count: u64,
    /// The id of its first change.
    pub first_id: String,
    /// The id of its last change.
    pub last_id: String,
    /// The source time of the window's first change (RFC 3339, ns).
    pub start: String,
    /// The window's end, exclusive (RFC 3339, ns).
    pub cutoff: String,
    /// The stored object's size.
    pub bytes: u64,
    /// The stored object's SHA-256, hex.
    pub sha256: String,
    /// The index that wrote it (`collector/index-id`); empty in manifests
    /// of zonelog versions before it was kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub index: String,
}
