//! The fixed shape of an index: shard count and mode, chosen at creation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::IndexError;

/// How changes to the same object are kept until the collector writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IndexMode {
    /// One entry per change: the log shows every write.
    EveryWrite,
    /// One entry per (bucket, key, version_id): a newer change replaces the
    /// pending older one, for consumers that only need the latest state.
    Latest,
}

impl IndexMode {
    /// The name in the configuration: `every-write` or `latest`.
    pub fn as_str(self) -> &'static str {
        match self {
            IndexMode::EveryWrite => "every-write",
            IndexMode::Latest => "latest",
        }
    }
}

impl fmt::Display for IndexMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IndexMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "every-write" => Ok(IndexMode::EveryWrite),
            "latest" => Ok(IndexMode::Latest),
            other => Err(format!(
                "unknown index mode {other:?} (expected every-write or latest)"
            )),
        }
    }
}

/// The fixed shape of an index, stored in it when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexLayout {
    /// How many shards; fixed at creation.
    pub shards: u32,
    /// How changes to the same object are kept.
    pub mode: IndexMode,
}

/// The most shards an index may have.
pub const MAX_SHARDS: u32 = 4096;

impl IndexLayout {
    /// Refuses a layout that cannot be created (shards out of range).
    pub fn validate(&self) -> Result<(), IndexError> {
        if self.shards == 0 || self.shards > MAX_SHARDS {
            return Err(IndexError::InvalidLayout(format!(
                "shards must be 1 to {MAX_SHARDS}, not {}",
                self.shards
            )));
        }
        Ok(())
    }

    /// `N shards in MODE mode`, for messages.
    pub fn describe(&self) -> String {
        format!("{} shards in {} mode", self.shards, self.mode)
    }
}
