//! Bucket-index log generations (Reef and later).
//!
//! A reshard on Reef and later keeps the bucket instance and starts a new
//! generation of its index log, with its own shard count and numbering.
//! The old generation's shards list their remaining entries and then, on
//! their last page, `next_log`. A multisite peer reads every shard of
//! generation N to its end before it reads generation N+1, so a key's
//! changes are read in the order RGW made them; zonelog does the same:
//! - `rgw/bilog/<bucket>:<instance>[:<shard>]@<gen>` is the position in one
//!   generation of one shard (no `@` for generation 0), and `finished`
//!   once that generation of that shard has been read to its end;
//! - `rgw/bilog-gen/<bucket>:<instance>` is the generation being followed:
//!   every older one is finished (absent: generation 0).
//!
//! A shard of a newer generation waits (stays active and known, drained on
//! a later poll) until every shard of the older ones is finished.

use std::time::Instant;

use super::api::BucketShard;
use super::tail::{position_name, CaptureError, RgwCapture, FINISHED};
use crate::index::WriteBatch;

const GENERATION_PREFIX: &str = "rgw/bilog-gen/";

pub(super) fn generation_marker_name(bucket: &str, instance: &str) -> String {
    format!("{GENERATION_PREFIX}{bucket}:{instance}")
}

/// The shard ids of a log with `num_shards` shards (0: one unsharded log).
pub(super) fn shard_ids(num_shards: u32) -> Vec<Option<u32>> {
    if num_shards == 0 {
        vec![None]
    } else {
        (0..num_shards).map(Some).collect()
    }
}

/// The shard ids of a generation RGW's `bilog info` reports with
/// `reported` shards. It reports an unsharded log (every bucket before
/// Ceph 16, and upgraded zones' buckets until they are resharded) as one
/// shard, and answers for it under shard id 0 as well as without one; the
/// data log names it without one, and so do our positions. A generation
/// reported as one shard is that unsharded log unless we already hold a
/// position under shard 0 (a log of exactly one shard): read under two
/// names, one log would be read twice.
pub(super) fn reported_shard_ids(reported: u32, zero_positioned: bool) -> Vec<Option<u32>> {
    match reported {
        1 if !zero_positioned => vec![None],
        _ => shard_ids(reported),
    }
}

impl RgwCapture {
    /// Whether `bs` may be read now: true when every generation of its
    /// bucket before `bs.gen` is finished. Otherwise the unfinished shards
    /// and `bs` are kept active, `bs` is made known (`known` says whether
    /// it already has a position) so a restart drains it too, and false.
    pub(super) async fn older_generations_done(
        &self,
        bs: &BucketShard,
        known: bool,
    ) -> Result<bool, CaptureError> {
        if bs.gen == 0 {
            return Ok(true);
        }
        let gen_name = generation_marker_name(&bs.bucket, &bs.instance);
        let followed: u64 = self
            .stored_marker(&gen_name)
            .await?
            .and_then(|g| g.parse().ok())
            .unwrap_or(0);
        if followed >= bs.gen {
            return Ok(true);
        }
        let info = self.admin.bilog_info(bs).await?;
        let mut batch = WriteBatch::new();
        if info.oldest_gen > followed {
            // RGW no longer holds generations we had not finished: what
            // they said is unknown, so the bucket is listed again in full.
            tracing::warn!(
                bucket = %bs.bucket,
                followed,
                oldest_gen = info.oldest_gen,
                "rgw capture: bucket-index log generations were trimmed before we read them; \
                 resyncing the whole bucket by listing it"
            );
            batch = self.relist(batch, &bs.bucket);
        }
        let mut unfinished = Vec::new();
        for generation in info
            .generations
            .iter()
            .filter(|g| g.gen >= followed.max(info.oldest_gen) && g.gen < bs.gen)
        {
            let shard_zero = BucketShard {
                shard: Some(0),
                gen: generation.gen,
                ..bs.clone()
            };
            let zero_positioned = generation.num_shards == 1
                && self
                    .stored_marker(&position_name(&shard_zero))
                    .await?
                    .is_some();
            for shard in reported_shard_ids(generation.num_shards, zero_positioned) {
                let older = BucketShard {
                    shard,
                    gen: generation.gen,
                    ..bs.clone()
                };
                if self.stored_marker(&position_name(&older)).await?.as_deref() != Some(FINISHED) {
                    unfinished.push(older);
                }
            }
        }
        if unfinished.is_empty() {
            batch = batch.marker(gen_name, bs.gen.to_string().into_bytes());
            self.index.write(batch).await?;
            tracing::info!(bucket = %bs.bucket, generation = bs.gen, "rgw capture: reading the bucket's next index-log generation");
            return Ok(true);
        }
        // An older shard without a position is not written one here: its
        // own drain may be running, and this shard being known is enough
        // to find it again after a restart.
        if !known {
            batch = batch.marker(position_name(bs), Vec::new());
        }
        if !batch.markers.is_empty() {
            self.index.write(batch).await?;
        }
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        active.insert(bs.clone(), now);
        for older in unfinished {
            active.insert(older, now);
        }
        Ok(false)
    }

    /// The name under which we follow the log the data log names `bs`.
    /// RGW names an unsharded log without a shard in the entries of its
    /// changes, but as shard 0 in those a reshard adds for every shard of
    /// the generation it ends (it counts an unsharded log as one shard),
    /// and answers for it under either. So a shard 0 we hold no position
    /// for, of an instance and generation whose unsharded log we do hold
    /// one for, is that log: read under both names, it would be read twice.
    pub(super) async fn followed_name(&self, bs: BucketShard) -> Result<BucketShard, CaptureError> {
        if bs.shard != Some(0) {
            return Ok(bs);
        }
        let unsharded = BucketShard {
            shard: None,
            ..bs.clone()
        };
        if self.index.marker(&position_name(&bs)).await?.is_some()
            || self
                .index
                .marker(&position_name(&unsharded))
                .await?
                .is_none()
        {
            return Ok(bs);
        }
        Ok(unsharded)
    }

    /// Commits `batch` (the last page's records) with `bs` finished: a
    /// reshard ended its generation and all of it is read.
    pub(super) async fn finish_generation(
        &self,
        bs: &BucketShard,
        batch: WriteBatch,
    ) -> Result<(), CaptureError> {
        let batch = batch.marker(position_name(bs), FINISHED.as_bytes().to_vec());
        self.index.write(batch).await?;
        tracing::info!(bucket_shard = %bs.log_name(), "rgw capture: an index-log generation is read to its end");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_shards() {
        assert_eq!(generation_marker_name("b", "i.1"), "rgw/bilog-gen/b:i.1");
        assert_eq!(shard_ids(0), vec![None]);
        assert_eq!(shard_ids(2), vec![Some(0), Some(1)]);
    }

    #[test]
    fn a_generation_of_one_shard_is_the_unsharded_log_unless_shard_0_is_known() {
        assert_eq!(reported_shard_ids(1, false), vec![None]);
        assert_eq!(reported_shard_ids(1, true), vec![Some(0)]);
        assert_eq!(reported_shard_ids(3, false), shard_ids(3));
    }
}
