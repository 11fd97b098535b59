//! Bucket lifecycle: a bucket removed, or removed and created again under
//! its name, or (Pacific) resharded into a new instance.
//!
//! RGW removes a bucket's index, and with it the bucket-index log, when it
//! removes the bucket (S3 `DeleteBucket`, `radosgw-admin bucket rm
//! --purge-objects`). Entries zonelog had not read by then are gone, and a
//! single zone keeps no metadata log to say what happened. So when a
//! followed instance is no longer the bucket's, zonelog writes one
//! `bucket_removed` record: the bucket and everything it held is gone as of
//! that record. It is written once per instance, in the same commit that
//! finishes every position of the instance (`rgw/removed/<bucket>:<instance>`
//! marks it), so a restart or a second drain never writes it again.
//!
//! A new instance under the same name is either the same bucket resharded
//! (Pacific gives a reshard a new instance; Reef and later keep it and add
//! a log generation) or a new bucket. RGW's bucket marker tells them apart:
//! it prefixes the bucket's objects in RADOS, so a reshard, which moves no
//! data, keeps it, and a new bucket's marker is the id of its own first
//! instance. So the current instance is a reshard of the old one when its
//! marker is the old instance's id (or the old instance's marker, which
//! zonelog records when it meets an instance, in
//! `rgw/instance-lineage/<bucket>:<instance>`), and a new bucket when its
//! marker is its own id or differs from the old one's. This holds for an
//! old instance zonelog never met (made and replaced while it was down).
//! Where markers cannot say (a bucket resharded twice while zonelog was
//! down), the creation times that zonelog also records
//! (`rgw/instance-created/…`) decide, as RGW keeps them through a reshard;
//! without either, it is a removal where the release reshards in place
//! (Reef and later report log generations), and on Pacific both a removal
//! and a listing, which is right either way. A new bucket's log is read
//! from its start; a resharded one is listed once, because its old
//! instance's unread entries are gone.

use std::collections::BTreeMap;

use futures::stream::{self, StreamExt};
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::admin::AdminError;
use super::api::BucketInstance;
use super::generations::{reported_shard_ids, shard_ids};
use super::tail::{
    parse_bucket_shard, position_name, BucketShard, CaptureError, PollReport, RgwCapture,
    BILOG_PREFIX, FINISHED,
};
use crate::index::WriteBatch;
use crate::record::{ChangeDetails, ChangeRecord, Op, Provenance};

fn created_name(bucket: &str, instance: &str) -> String {
    format!("rgw/instance-created/{bucket}:{instance}")
}

fn lineage_name(bucket: &str, instance: &str) -> String {
    format!("rgw/instance-lineage/{bucket}:{instance}")
}

fn removed_name(bucket: &str, instance: &str) -> String {
    format!("rgw/removed/{bucket}:{instance}")
}

/// `rgw/resynced/<bucket>:<instance>`: that old instance was resharded
/// into a new one (Pacific) and the bucket listed again; set once, so it
/// is listed once.
fn resynced_name(bs: &BucketShard) -> String {
    format!("rgw/resynced/{}:{}", bs.bucket, bs.instance)
}

/// What became of a followed instance that is no longer the bucket's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replaced {
    /// The same bucket under a new instance: creation times agree.
    Resharded,
    /// Another bucket under the same name: the old one was removed.
    Recreated,
    /// Not known from creation times (none recorded for the old instance).
    Unknown,
}

/// What zonelog knows of an instance it followed.
struct OldInstance<'a> {
    id: &'a str,
    created: Option<&'a str>,
    marker: Option<&'a str>,
}

fn replaced_by(old: &OldInstance, current: &BucketInstance) -> Replaced {
    if let Some(lineage) = current.marker.as_deref() {
        if lineage == old.id || old.marker == Some(lineage) {
            return Replaced::Resharded;
        }
        // Never resharded itself, so the old instance is not its
        // ancestor; or the two lineages are known and differ.
        if lineage == current.instance_id || old.marker.is_some() {
            return Replaced::Recreated;
        }
    }
    match (old.created, current.creation_time.as_deref()) {
        (Some(old), Some(new)) if old == new => Replaced::Resharded,
        (Some(_), Some(_)) => Replaced::Recreated,
        _ => Replaced::Unknown,
    }
}

impl RgwCapture {
    /// Called before a bucket shard's first read. When its instance is
    /// the bucket's current one, records its creation time, and first
    /// settles any other instance of the bucket still followed: that one's
    /// removal record (or listing) must come before the new bucket's
    /// changes. An instance that is not current is left to its read, whose
    /// 404 settles it.
    pub(super) async fn meet_instance(&self, bs: &BucketShard) -> Result<(), CaptureError> {
        let created = created_name(&bs.bucket, &bs.instance);
        if self.index.marker(&created).await?.is_some() {
            return Ok(());
        }
        let current = match self.admin.bucket_instance(&bs.bucket).await {
            Ok(current) if current.instance_id == bs.instance => current,
            Ok(_) | Err(AdminError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for old in self.other_followed_instances(bs).await? {
            // Not read again: another task may be draining that shard, and
            // a removed bucket's index is gone anyway.
            self.shard_not_found(&old).await?;
        }
        self.remember_instance(WriteBatch::new(), &current).await
    }

    /// Adds the instance's creation time to `batch` and writes it.
    pub(super) async fn remember_instance(
        &self,
        batch: WriteBatch,
        instance: &BucketInstance,
    ) -> Result<(), CaptureError> {
        self.index
            .write(Self::with_instance_created(batch, instance))
            .await?;
        Ok(())
    }

    /// Adds the instance's creation time and lineage (bucket marker) to a
    /// batch being built.
    pub(super) fn with_instance_created(
        mut batch: WriteBatch,
        instance: &BucketInstance,
    ) -> WriteBatch {
        if let Some(t) = &instance.creation_time {
            batch = batch.marker(
                created_name(&instance.bucket, &instance.instance_id),
                t.clone().into_bytes(),
            );
        }
        if let Some(m) = &instance.marker {
            batch = batch.marker(
                lineage_name(&instance.bucket, &instance.instance_id),
                m.clone().into_bytes(),
            );
        }
        batch
    }

    /// One shard of every other instance of `bs.bucket` whose positions
    /// are not finished.
    async fn other_followed_instances(
        &self,
        bs: &BucketShard,
    ) -> Result<Vec<BucketShard>, CaptureError> {
        let mut others: BTreeMap<String, BucketShard> = BTreeMap::new();
        let prefix = format!("{BILOG_PREFIX}{}:", bs.bucket);
        for m in self.index.markers(&prefix).await? {
            if m.value == FINISHED.as_bytes() {
                continue;
            }
            let Some(shard) = parse_bucket_shard(&m.name[BILOG_PREFIX.len()..]) else {
                continue;
            };
            if shard.bucket == bs.bucket && shard.instance != bs.instance {
                others.entry(shard.instance.clone()).or_insert(shard);
            }
        }
        Ok(others.into_values().collect())
    }

    /// A bucket shard's log answered 404. Only when the bucket no longer
    /// has this instance is that the end of it: removed, recreated or
    /// resharded into a new instance. If the instance is unchanged, the 404
    /// was transient: the error keeps the data-log position from moving
    /// past this shard.
    pub(super) async fn shard_not_found(&self, bs: &BucketShard) -> Result<(), CaptureError> {
        // Shards of one instance are drained concurrently, and a new
        // instance settles the old one from another task: one at a time,
        // so that the check below and the write cannot interleave.
        let _settling = self.settling.lock().await;
        let settled = self
            .index
            .marker(&removed_name(&bs.bucket, &bs.instance))
            .await?
            .is_some()
            || self.index.marker(&resynced_name(bs)).await?.is_some();
        if settled {
            // Another shard of this instance settled it; a drain of this
            // one that was under way then has written a position since.
            self.index
                .write(WriteBatch::new().marker(position_name(bs), FINISHED.as_bytes().to_vec()))
                .await?;
            self.forget(bs);
            return Ok(());
        }
        let current = match self.admin.bucket_instance(&bs.bucket).await {
            Err(AdminError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
            Ok(current) if current.instance_id == bs.instance => {
                return Err(CaptureError::Rgw(AdminError::Http {
                    endpoint: self.admin.client().endpoint().to_string(),
                    what: format!("bucket-index log of {}", bs.name()),
                    status: 503,
                    body: "404 for a bucket instance that still exists; retrying".into(),
                }));
            }
            Ok(current) => Some(current),
        };
        let old_created = self
            .stored_marker(&created_name(&bs.bucket, &bs.instance))
            .await?;
        let old_lineage = self
            .stored_marker(&lineage_name(&bs.bucket, &bs.instance))
            .await?;
        let old = OldInstance {
            id: &bs.instance,
            created: old_created.as_deref(),
            marker: old_lineage.as_deref(),
        };
        let mut replaced = current.as_ref().map(|c| replaced_by(&old, c));
        if let (Some(Replaced::Unknown), Some(current)) = (replaced, &current) {
            if self.reshards_keep_instances(current).await? {
                replaced = Some(Replaced::Recreated);
            }
        }
        let mut batch = self.finish_instance(WriteBatch::new(), bs).await?;
        let removed = replaced != Some(Replaced::Resharded);
        if removed {
            // Removed, or replaced by another bucket: as of the new
            // bucket's creation (or of now), the old one is gone.
            let time = current
                .as_ref()
                .and_then(BucketInstance::created)
                .unwrap_or_else(Utc::now);
            tracing::warn!(
                bucket = %bs.bucket,
                instance = %bs.instance,
                new_instance = current.as_ref().map(|c| c.instance_id.as_str()).unwrap_or(""),
                "rgw capture: the bucket was removed; recording that it and everything in it are gone"
            );
            batch.records.push(removal_record(bs, time));
            batch = batch.marker(
                removed_name(&bs.bucket, &bs.instance),
                time.to_rfc3339().into_bytes(),
            );
        }
        if matches!(replaced, Some(Replaced::Resharded | Replaced::Unknown)) {
            tracing::warn!(
                bucket_shard = %bs.name(),
                new_instance = current.as_ref().map(|c| c.instance_id.as_str()).unwrap_or(""),
                "rgw capture: the bucket has a new instance (resharded, or not known to be \
                 another bucket); resyncing the whole bucket by listing it"
            );
            batch = self
                .relist(batch, &bs.bucket)
                .marker(resynced_name(bs), bs.instance.clone().into_bytes());
        }
        if let Some(current) = &current {
            batch = Self::with_instance_created(batch, current);
        }
        self.index.write(batch).await?;
        if removed {
            self.counters.ops.count(Op::BucketRemoved);
        }
        self.forget(bs);
        Ok(())
    }

    /// Whether this release reshards a bucket in place (a new log
    /// generation, the same instance), so that a new instance can only be
    /// a new bucket: Reef and later report generations in a bucket-index
    /// log's info, Pacific does not.
    async fn reshards_keep_instances(
        &self,
        current: &BucketInstance,
    ) -> Result<bool, CaptureError> {
        let first_shard = (current.num_shards > 0).then_some(0);
        let bs = BucketShard::first(&current.bucket, &current.instance_id, first_shard);
        match self.admin.bilog_info(&bs).await {
            Ok(info) => Ok(!info.generations.is_empty()),
            // Gone again already: the next instance settles it.
            Err(AdminError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Every position of the old instance is done with, in the same commit
    /// as what settles it: a restart must not find them and settle again.
    async fn finish_instance(
        &self,
        mut batch: WriteBatch,
        bs: &BucketShard,
    ) -> Result<WriteBatch, CaptureError> {
        batch = batch.marker(position_name(bs), FINISHED.as_bytes().to_vec());
        for old in self
            .index
            .markers(&format!("{BILOG_PREFIX}{}:{}", bs.bucket, bs.instance))
            .await?
        {
            let same_instance = parse_bucket_shard(&old.name[BILOG_PREFIX.len()..])
                .is_some_and(|o| o.bucket == bs.bucket && o.instance == bs.instance);
            if same_instance && old.value != FINISHED.as_bytes() {
                batch = batch.marker(old.name, FINISHED.as_bytes().to_vec());
            }
        }
        Ok(batch)
    }

    fn forget(&self, bs: &BucketShard) {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|followed, _| {
                !(followed.bucket == bs.bucket && followed.instance == bs.instance)
            });
    }

    /// Every `check_interval`: a followed bucket missing from the
    /// zone's bucket list was removed while idle; reading one of its
    /// shards settles it. (A bucket removed and created again while idle
    /// is settled when its new instance is first read, or at a restart.)
    pub(super) async fn check_followed_buckets(&self) -> Result<(), CaptureError> {
        {
            let mut last = self
                .last_bucket_check
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < self.config.check_interval) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        let listed: std::collections::BTreeSet<String> =
            self.admin.list_buckets().await?.into_iter().collect();
        let mut missing: BTreeMap<(String, String), BucketShard> = BTreeMap::new();
        for m in self.index.markers(BILOG_PREFIX).await? {
            if m.value == FINISHED.as_bytes() {
                continue;
            }
            let Some(shard) = parse_bucket_shard(&m.name[BILOG_PREFIX.len()..]) else {
                continue;
            };
            if !listed.contains(&shard.bucket) && self.filter.matches_bucket(&shard.bucket) {
                missing
                    .entry((shard.bucket.clone(), shard.instance.clone()))
                    .or_insert(shard);
            }
        }
        for shard in missing.into_values() {
            self.drain(&shard).await?;
        }
        Ok(())
    }
}

impl RgwCapture {
    /// Reads, from the start of its log, every bucket shard the data log
    /// would have named had it not been trimmed (see trims.rs): every
    /// shard without a position of every matching bucket's current
    /// instance, in the generations from the one followed (or, for an
    /// instance not followed at all, RGW's oldest) to the newest. Shards
    /// with a position were drained by the catch-up. A bucket whose
    /// oldest generation RGW no longer holds is listed (generations.rs).
    /// Only the bucket shards `wanted` are read: those a trimmed data-log
    /// shard could have named.
    pub(super) async fn read_unfollowed_buckets_where(
        &self,
        wanted: impl Fn(&BucketShard) -> bool,
    ) -> Result<PollReport, CaptureError> {
        let positions: std::collections::BTreeSet<String> = self
            .index
            .markers(BILOG_PREFIX)
            .await?
            .into_iter()
            .map(|m| m.name)
            .collect();
        let followed: std::collections::BTreeSet<(String, String)> = positions
            .iter()
            .filter_map(|name| parse_bucket_shard(&name[BILOG_PREFIX.len()..]))
            .map(|bs| (bs.bucket, bs.instance))
            .collect();
        let buckets: Vec<String> = self
            .admin
            .list_buckets()
            .await?
            .into_iter()
            .filter(|b| self.filter.matches_bucket(b))
            .collect();
        let concurrency = self.config.concurrency.max(1);
        let unread: Vec<Result<Vec<BucketShard>, CaptureError>> = stream::iter(buckets)
            .map(|bucket| self.unread_shards(bucket, &positions, &followed))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut shards = Vec::new();
        for u in unread {
            shards.extend(u?.into_iter().filter(|bs| wanted(bs)));
        }
        let drained: Vec<Result<PollReport, CaptureError>> = stream::iter(shards)
            .map(|bs| async move { self.drain(&bs).await })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut report = PollReport::default();
        for d in drained {
            report.add(&d?);
        }
        Ok(report)
    }

    /// The shards of `bucket`'s current instance that `read_unfollowed_buckets`
    /// reads: those without a position, from the followed generation on.
    async fn unread_shards(
        &self,
        bucket: String,
        positions: &std::collections::BTreeSet<String>,
        followed: &std::collections::BTreeSet<(String, String)>,
    ) -> Result<Vec<BucketShard>, CaptureError> {
        let instance = match self.admin.bucket_instance(&bucket).await {
            Ok(i) => i,
            Err(AdminError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let first_shard = (instance.num_shards > 0).then_some(0);
        let first = BucketShard::first(&bucket, &instance.instance_id, first_shard);
        let info = match self.admin.bilog_info(&first).await {
            Ok(info) => info,
            Err(AdminError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let is_followed = followed.contains(&(bucket.clone(), instance.instance_id.clone()));
        let from_gen = if is_followed {
            self.stored_marker(&super::generations::generation_marker_name(
                &bucket,
                &instance.instance_id,
            ))
            .await?
            .and_then(|g| g.parse().ok())
            .unwrap_or(0)
        } else {
            info.oldest_gen
        };
        // Pacific reports no generations: one log, of the instance's shards.
        // RGW reports an unsharded log as one shard (and answers for it
        // under any shard id), while the data log and our positions name it
        // without one: the generation the instance indexes now takes the
        // instance's own shard count, and older ones `reported_shard_ids`.
        let generations: Vec<(u64, Vec<Option<u32>>)> = if info.generations.is_empty() {
            vec![(0, shard_ids(instance.num_shards))]
        } else {
            info.generations
                .iter()
                .filter(|g| g.gen >= from_gen)
                .map(|g| match g.gen == info.latest_gen {
                    true => (g.gen, shard_ids(instance.num_shards)),
                    false => {
                        let zero = BucketShard {
                            gen: g.gen,
                            ..BucketShard::first(&bucket, &instance.instance_id, Some(0))
                        };
                        let zero_positioned = positions.contains(&position_name(&zero));
                        (g.gen, reported_shard_ids(g.num_shards, zero_positioned))
                    }
                })
                .collect()
        };
        let mut unread = Vec::new();
        for (gen, shards) in generations {
            for shard in shards {
                let bs = BucketShard {
                    gen,
                    ..BucketShard::first(&bucket, &instance.instance_id, shard)
                };
                if !positions.contains(&position_name(&bs)) {
                    unread.push(bs);
                }
            }
        }
        if !unread.is_empty() {
            tracing::info!(bucket = %bucket, shards = unread.len(), "rgw capture: reading bucket shards the data log no longer names from the start of their logs");
        }
        Ok(unread)
    }
}

fn removal_record(bs: &BucketShard, time: DateTime<Utc>) -> ChangeRecord {
    ChangeRecord {
        bucket: bs.bucket.clone(),
        key: String::new(),
        version_id: None,
        op: Op::BucketRemoved,
        time,
        size: None,
        etag: None,
        mtime: None,
        source: Provenance::Rgw {
            bucket_shard: format!("{}:{}", bs.bucket, bs.instance),
            marker: String::new(),
        },
        details: ChangeDetails::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(created: Option<&str>, marker: Option<&str>) -> BucketInstance {
        BucketInstance {
            bucket: "b".into(),
            instance_id: "new.2".into(),
            num_shards: 11,
            creation_time: created.map(str::to_string),
            marker: marker.map(str::to_string),
        }
    }

    fn old<'a>(created: Option<&'a str>, marker: Option<&'a str>) -> OldInstance<'a> {
        OldInstance {
            id: "old.1",
            created,
            marker,
        }
    }

    #[test]
    fn the_bucket_marker_tells_a_reshard_from_a_new_bucket() {
        // Resharded from the old instance, met or not.
        let reshard = instance(None, Some("old.1"));
        assert_eq!(replaced_by(&old(None, None), &reshard), Replaced::Resharded);
        // Resharded twice: the lineage zonelog recorded for the old one.
        let twice = instance(None, Some("first.0"));
        assert_eq!(
            replaced_by(&old(None, Some("first.0")), &twice),
            Replaced::Resharded
        );
        // A new bucket's marker is its own first instance id.
        let new_bucket = instance(None, Some("new.2"));
        assert_eq!(
            replaced_by(&old(None, None), &new_bucket),
            Replaced::Recreated
        );
        // A new bucket resharded since, against a known other lineage.
        assert_eq!(
            replaced_by(&old(None, Some("first.0")), &instance(None, Some("new.0"))),
            Replaced::Recreated
        );
        // Neither lineage known: creation times, or nothing.
        assert_eq!(
            replaced_by(&old(None, None), &instance(None, Some("new.0"))),
            Replaced::Unknown
        );
    }

    #[test]
    fn creation_time_decides_where_markers_cannot() {
        let t1 = "2026-12-02T00:41:26.197098Z";
        let t2 = "2026-12-02T00:41:30.175489Z";
        assert_eq!(
            replaced_by(&old(Some(t1), None), &instance(Some(t1), None)),
            Replaced::Resharded
        );
        assert_eq!(
            replaced_by(&old(Some(t1), None), &instance(Some(t2), None)),
            Replaced::Recreated
        );
        assert_eq!(
            replaced_by(&old(None, None), &instance(Some(t2), None)),
            Replaced::Unknown
        );
        assert_eq!(
            replaced_by(&old(Some(t1), None), &instance(None, None)),
            Replaced::Unknown
        );
        assert_eq!(
            instance(Some(t2), None)
                .created()
                .map(|t| t.timestamp_subsec_micros()),
            Some(175489)
        );
    }

    #[test]
    fn the_removal_record_is_valid_and_names_no_object() {
        let bs = BucketShard::first("bkt", "id.1", Some(3));
        let r = removal_record(&bs, Utc::now());
        assert!(r.validate().is_ok());
        assert!(r.key.is_empty());
    }
}
