//! The backlog of an index: entries, bytes and the oldest entry per shard.

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShardStats {
    pub shard: u32,
    pub entries: u64,
    /// Bytes of keys and values stored for this shard's entries.
    pub bytes: u64,
    /// Source time of the oldest pending entry, nanoseconds since the epoch.
    pub oldest_time_ns: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IndexStats {
    pub shards: Vec<ShardStats>,
}

impl IndexStats {
    pub fn entries(&self) -> u64 {
        self.shards.iter().map(|s| s.entries).sum()
    }
    pub fn bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.bytes).sum()
    }
    pub fn oldest_time_ns(&self) -> Option<u64> {
        self.shards.iter().filter_map(|s| s.oldest_time_ns).min()
    }
}
