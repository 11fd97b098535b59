//! The manifest written beside each log object (docs/format.md,
//! "Manifest"): what the object holds and its checksum, so a consumer can
//! check it without decompressing it.

use serde::{Deserialize, Serialize};

/// The manifest written beside each log object (see docs/format.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub v: u32,
    pub zone: String,
    pub window: u64,
    pub object: String,
    pub count: u64,
    pub first_id: String,
    pub last_id: String,
    pub start: String,
    pub cutoff: String,
    pub bytes: u64,
    pub sha256: String,
    /// The index that wrote it (`collector/index-id`); empty in manifests
    /// of zonelog versions before it was kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub index: String,
}
