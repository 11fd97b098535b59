//! The backlog of an index: entries, bytes and the oldest entry per shard.

use serde::Serialize;

/// The backlog of one shard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShardStats {
    /// The shard.
    pub shard: u32,
    /// Pending entries.
    pub entries: u64,
    /// Bytes of keys and values stored for this shard's entries.
    pub bytes: u64,
    /// Source time of the oldest pending entry, nanoseconds since the epoch.
    pub oldest_time_ns: Option<u64>,
}

/// The backlog of an index, per shard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IndexStats {
    /// One per shard, in shard order.
    pub shards: Vec<ShardStats>,
}

impl IndexStats {
    /// Pending entries in all shards.
    pub fn entries(&self) -> u64 {
        self.shards.iter().map(|s| s.entries).sum()
    }
    /// Bytes stored in all shards.
    pub fn bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.bytes).sum()
    }
    /// Source time of the oldest pending entry of any shard.
    pub fn oldest_time_ns(&self) -> Option<u64> {
        self.shards.iter().filter_map(|s| s.oldest_time_ns).min()
    }
}
