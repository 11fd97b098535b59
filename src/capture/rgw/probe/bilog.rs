//! The bucket-index probe: which recently active bucket shards got bilog
//! entries since they were last read. RGW writes a data-log entry for a
//! bucket shard only once per window (`rgw_data_log_window`, 30 s), so the
//! capture keeps reading a shard the data log named for a while after
//! (the hot set); this probe lets it skip those that did not change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::capture::rgw::BucketShard;
use crate::rados::IoCtx;

/// The index object of a bucket shard, as RGW names it: the bucket id
/// alone when unsharded, then `.<shard>` from generation 0 (which RGW
/// leaves out of the name) and `.<gen>.<shard>` after a reshard.
pub fn index_object(bs: &BucketShard) -> String {
    match (bs.shard, bs.gen) {
        (None, _) => format!(".dir.{}", bs.instance),
        (Some(shard), 0) => format!(".dir.{}.{shard}", bs.instance),
        (Some(shard), gen) => format!(".dir.{}.{gen}.{shard}", bs.instance),
    }
}

/// Versions of the index objects of the shards it was asked about, through
/// an I/O context on the zone's bucket-index pool.
pub struct BilogProbe {
    io: Arc<IoCtx>,
    seen: Mutex<HashMap<BucketShard, u64>>,
}

impl BilogProbe {
    pub fn new(io: Arc<IoCtx>) -> Self {
        BilogProbe {
            io,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Which of `shards` changed since the last look (blocking: run it off
    /// the async threads). A shard seen for the first time, or whose
    /// object cannot be read (another placement's index pool, an error),
    /// counts as changed. What the probe remembers is limited to `shards`,
    /// so it stays the size of the hot set.
    pub fn changed(&self, shards: &[BucketShard]) -> Vec<bool> {
        let oids: Vec<String> = shards.iter().map(index_object).collect();
        let refs: Vec<&str> = oids.iter().map(String::as_str).collect();
        let stats = self.io.stat_many(&refs, 0);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = HashMap::with_capacity(shards.len());
        let changed = shards
            .iter()
            .zip(stats)
            .map(|(bs, stat)| match stat {
                Ok(stat) => {
                    next.insert(bs.clone(), stat.version);
                    seen.get(bs) != Some(&stat.version)
                }
                Err(_) => true,
            })
            .collect();
        *seen = next;
        changed
    }

    /// A shard whose read failed: the next look reports it changed.
    pub fn forget(&self, bs: &BucketShard) {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(bs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_object_names_follow_rgw() {
        let id = "1476d17a-e820-4e43-b245-684a59dbc537.4172.1";
        let mut bs = BucketShard::first("b", id, None);
        assert_eq!(index_object(&bs), format!(".dir.{id}"));
        bs.shard = Some(7);
        assert_eq!(index_object(&bs), format!(".dir.{id}.7"));
        bs.gen = 2;
        assert_eq!(index_object(&bs), format!(".dir.{id}.2.7"));
    }
}
