//! Data-log trims by someone else.
//!
//! A zone in a realm trims its data log itself every
//! `rgw_sync_log_trim_interval` (20 min) to its peers' lowest position,
//! which with no peer zone is the whole log; zonelog is no peer (see
//! docs/decisions.md). Entries trimmed before zonelog read them named
//! bucket shards that changed; their changes are still in the bucket-index
//! logs from zonelog's positions on, but nothing tells zonelog to read
//! them. So when a data-log shard was trimmed past zonelog's position,
//! capture catches up before it reads the data log on: it drains every
//! followed bucket shard that data-log shard could have named (RGW picks
//! the shard by a hash of the bucket name and shard id, `datalog_shard_of`;
//! with 10 000 buckets that is ~1/128 of them, not all), and reads the
//! shards it could have named of every matching bucket it does not follow
//! yet from the start of their logs. A
//! crash during the catch-up leaves the data-log positions where they
//! were, so the first poll after the restart finds the trim again.
//!
//! Two places look for such trims. Every `check_interval`, each shard (with
//! a probe: each that changed) is checked before it is read, which finds a
//! shard trimmed whole that has logged nothing since. And every read that
//! lists entries after our position asks, before it uses them, whether the
//! shard still holds the position (`datalog_read_complete`): a trim between
//! two polls followed by a new entry would otherwise be stepped over for
//! good, as reading on moves the position past the gap. That costs one
//! request per non-empty read. A read that finds its position gone
//! catches up on that shard's bucket shards. zonelog's own trims
//! (`trim_source`) do not count: it trims a shard through our position
//! only when an entry follows it, and notes that entry
//! (`datalog_trimmed_next_name`); while it is the shard's oldest, no one
//! trimmed further.
//!
//! RGW trims a data-log shard from its start, and `info` keeps the marker
//! of the last entry written, trimmed or not. So the shard was trimmed past
//! our position when it wrote something after it (`info` marker past ours)
//! and no longer holds the entry at our position (its oldest is past ours,
//! or it holds none). FIFO markers are offsets, so this cannot tell a trim
//! through exactly our entry (harmless) from one past it; the trims through
//! exactly our position that zonelog knows of are recorded in
//! `rgw/datalog-trimmed/<NNN>` and do not count: its own (`trim_source`),
//! and at the first start a shard that no longer held its last entry (a
//! position taken from an already trimmed log; without this every start
//! after a full trim, RGW's autotrim included, caught up for nothing).

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::stream::{self, StreamExt};

use super::tail::{datalog_marker_name, CaptureError, PollReport, RgwCapture};
use super::BucketShard;
use crate::index::WriteBatch;

pub(super) fn datalog_trimmed_name(shard: u32) -> String {
    format!("rgw/datalog-trimmed/{shard:03}")
}

/// With `trim_source`: the first entry after the position zonelog trimmed
/// through (`datalog_trimmed_name`), read before the trim. While the shard's
/// oldest entry is that one, nothing after our position was trimmed.
pub(super) fn datalog_trimmed_next_name(shard: u32) -> String {
    format!("rgw/datalog-trimmed-next/{shard:03}")
}

/// The data-log shard RGW logs a change of `bucket`'s index shard to:
/// the Linux dcache string hash of the bucket name plus the shard id,
/// modulo the shard count (`RGWDataChangesLog::choose_oid`, the same from
/// Pacific to Tentacle; tenants and generations play no part). A catch-up
/// after a trim of one data-log shard drains only the bucket shards it
/// could have named; each entry read checks this, and one that disagrees
/// turns it off (`shard_map_wrong`), for full catch-ups.
pub fn datalog_shard_of(bucket: &str, shard: Option<u32>, shards: u32) -> u32 {
    let hash = bucket.bytes().fold(0u32, |hash, c| {
        let c = u32::from(c);
        hash.wrapping_add(c << 4)
            .wrapping_add(c >> 4)
            .wrapping_mul(11)
    });
    hash.wrapping_add(shard.unwrap_or(0)) % shards.max(1)
}

/// Whether a shard whose last written entry is `last`, and whose oldest
/// held entry is `oldest`, lost entries after `ours`. Markers of one
/// shard are fixed-width and sort as text.
///
/// An empty position (the shard held nothing when zonelog took it) sorts
/// before every marker: the shard lost entries we never read only when it
/// wrote some and holds none now. Holding some says nothing, as a FIFO
/// shard's first marker is no fixed value. (Once, a one-entry page that
/// named no marker left positions empty on Tentacle, and counting those
/// caught up on every start; positions now come from the entry itself.)
fn trimmed_past(ours: &str, last: &str, oldest: Option<&str>) -> bool {
    if last <= ours {
        return false;
    }
    if ours.is_empty() {
        return oldest.is_none();
    }
    match oldest {
        Some(oldest) => oldest > ours,
        None => true,
    }
}

impl RgwCapture {
    /// Every `check_interval`: catches up when a data-log shard was
    /// trimmed past our position.
    pub(super) async fn check_datalog_trims(&self) -> Result<PollReport, CaptureError> {
        {
            let mut last = self
                .last_datalog_check
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < self.config.check_interval) {
                return Ok(PollReport::default());
            }
            *last = Some(Instant::now());
        }
        let shards = self.datalog_shard_count().await?;
        // With a probe, only the shards whose log objects changed since the
        // last check can have been trimmed (a trim writes them too).
        let to_check: Vec<u32> = match self.take_changed_since_trim_check() {
            Some(changed) => changed.into_iter().filter(|s| *s < shards).collect(),
            None => (0..shards).collect(),
        };
        let checked: Vec<Result<Option<(u32, WriteBatch)>, CaptureError>> = stream::iter(to_check)
            .map(|shard| async move {
                Ok(self
                    .datalog_trimmed_past_us(shard)
                    .await?
                    .map(|settled| (shard, settled)))
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        let mut gaps = Vec::new();
        for c in checked {
            if let Some(settled) = c? {
                gaps.push(settled);
            }
        }
        self.catch_up_after_trims(gaps).await
    }

    /// Catches up after data-log shards were found trimmed past our
    /// positions (`gaps`: each shard, with what to commit for it once
    /// caught up): drains every followed bucket shard those data-log
    /// shards could have named and reads every matching bucket not
    /// followed yet, then commits the gaps as dealt with.
    pub(super) async fn catch_up_after_trims(
        &self,
        gaps: Vec<(u32, WriteBatch)>,
    ) -> Result<PollReport, CaptureError> {
        if gaps.is_empty() {
            return Ok(PollReport::default());
        }
        let trimmed: BTreeSet<u32> = gaps.iter().map(|(shard, _)| *shard).collect();
        tracing::warn!(
            shards = ?trimmed,
            "rgw capture: data-log shards no longer hold our position, or held nothing when we took it, \
             so entries after it may have been trimmed (RGW's autotrim in a realm?); \
             reading every followed bucket shard these shards name and every new bucket"
        );
        self.counters
            .datalog_trims
            .fetch_add(gaps.len() as u64, Ordering::Relaxed);
        self.counters
            .caught_up_shards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(trimmed.iter().copied());
        let datalog_shards = self.datalog_shard_count().await?;
        let named = |bs: &BucketShard| {
            self.shard_map_wrong.load(Ordering::Relaxed)
                || trimmed.contains(&datalog_shard_of(&bs.bucket, bs.shard, datalog_shards))
        };
        let mut report = self.catch_up_where(&named).await?;
        report.add(&self.read_unfollowed_buckets_where(&named).await?);
        // Caught up: these trims are dealt with, and are not found again
        // (a crash before this finds them again and catches up again).
        let mut settled = WriteBatch::new();
        for (_, gap) in gaps {
            settled.markers.extend(gap.markers);
        }
        self.index.write(settled).await?;
        Ok(report)
    }

    /// Whether a read of `shard` from `ours` that listed entries saw all
    /// that were written after `ours`. RGW trims only from a log's start,
    /// so a log that still holds `ours` after the listing held every entry
    /// after it during the listing. One that no longer does was trimmed
    /// past it: the caller catches up on what the shard could have named
    /// (one data-log shard's worth of bucket shards) rather than step over
    /// the gap for good, as reading on moves the position past it.
    ///
    /// Trims through exactly our position that zonelog knows of do not
    /// count: its own, which noted the entry after it (still the oldest:
    /// no one trimmed further, exact), and a first start's on a log
    /// already trimmed through its last entry, which noted none. That one,
    /// like a position taken from a shard that held nothing, cannot tell
    /// a later trim from none, until the read moves the position past it:
    /// a window of one poll after the shard's first new entry, once per
    /// shard after a first start (docs/decisions.md). Counting them would
    /// catch up on every shard after each first start in a realm, whose
    /// autotrim leaves every shard so.
    pub(super) async fn datalog_read_complete(
        &self,
        shard: u32,
        ours: &str,
    ) -> Result<bool, CaptureError> {
        if ours.is_empty() {
            return Ok(true);
        }
        let oldest = self.admin.datalog_oldest(shard).await?;
        if oldest.as_deref().is_some_and(|oldest| oldest <= ours) {
            return Ok(true);
        }
        let trimmed = self.stored_marker(&datalog_trimmed_name(shard)).await?;
        if trimmed.as_deref() != Some(ours) {
            return Ok(false);
        }
        let next = self
            .stored_marker(&datalog_trimmed_next_name(shard))
            .await?;
        Ok(match next {
            None => true,
            Some(next) => oldest.as_deref() == Some(next.as_str()),
        })
    }

    /// `Some`: the shard was trimmed past our position, with what to
    /// commit once capture has caught up so the trim is not found again.
    async fn datalog_trimmed_past_us(
        &self,
        shard: u32,
    ) -> Result<Option<WriteBatch>, CaptureError> {
        let Some(ours) = self.stored_marker(&datalog_marker_name(shard)).await? else {
            return Ok(None);
        };
        let last = self.admin.datalog_info(shard).await?.marker;
        self.datalog_gap(shard, ours, last).await
    }

    /// Whether a shard that logged up to `last` lost entries after `ours`,
    /// our position in it: `Some` with what to commit once caught up.
    ///
    /// A poll asks this after it listed entries after `ours` and before it
    /// uses them: RGW trims only from a log's start, so a log that still
    /// holds `ours` held every entry after it when it was listed, and one
    /// that no longer does may have lost some before the listing, which
    /// reading on would step over for good.
    pub(super) async fn datalog_gap(
        &self,
        shard: u32,
        ours: String,
        last: String,
    ) -> Result<Option<WriteBatch>, CaptureError> {
        if last.as_str() <= ours.as_str() {
            // Nothing written after our position: nothing to lose.
            return Ok(None);
        }
        let oldest = self.admin.datalog_oldest(shard).await?;
        if !trimmed_past(&ours, &last, oldest.as_deref()) {
            return Ok(None);
        }
        // Trimmed through exactly our position by a trim zonelog knows of:
        // harmless while the shard still holds something, as the read
        // that lists it decides (`datalog_read_complete`). Holding nothing
        // though it wrote after our position, it lost those entries.
        let ours_trimmed = self.stored_marker(&datalog_trimmed_name(shard)).await?;
        if oldest.is_some() && ours_trimmed.as_deref() == Some(ours.as_str()) {
            return Ok(None);
        }
        tracing::warn!(shard, position = %ours, last = %last, oldest = oldest.as_deref().unwrap_or(""),
            "rgw capture: a data-log shard no longer holds the entries after our position");
        let settled = match oldest {
            // Holds nothing: everything up to its last entry is gone, and
            // reading goes on after it.
            None => WriteBatch::new()
                .marker(datalog_marker_name(shard), last.clone().into_bytes())
                .marker(datalog_trimmed_name(shard), last.into_bytes()),
            // Reading goes on from our position; the gap after it is known.
            Some(_) => WriteBatch::new().marker(datalog_trimmed_name(shard), ours.into_bytes()),
        };
        Ok(Some(settled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_past_our_position_is_told_from_a_log_that_still_holds_it() {
        let m = |n: u32| format!("00000000000000000000:{n:020}");
        // Nothing written since our position.
        assert!(!trimmed_past(&m(5), &m(5), None));
        // Written since, and the log still holds our entry.
        assert!(!trimmed_past(&m(5), &m(9), Some(&m(5))));
        assert!(!trimmed_past(&m(5), &m(9), Some(&m(1))));
        // Trimmed past us: partly, or wholly.
        assert!(trimmed_past(&m(5), &m(9), Some(&m(7))));
        assert!(trimmed_past(&m(5), &m(9), None));
        // A shard that was empty at the start: written since, and holding
        // nothing now, it was trimmed past us; holding something, it may
        // hold all it wrote.
        assert!(trimmed_past("", &m(9), None));
        assert!(!trimmed_past("", &m(9), Some(&m(3))));
        assert!(!trimmed_past("", "", None));
    }
}
