//! The drain of one bucket shard: its index log read from our position to
//! its end, each page's records committed with the page's last marker, and
//! what a page can say beyond its changes (a trim past our position by
//! someone else, a `resync` after `bucket sync enable`).

use std::sync::atomic::Ordering;

use super::admin::AdminError;
use super::api::BilogEntry;
use super::enrich::overwritten_later;
use super::mapping::{
    change_times, committable, entry_marker, entry_sequence, map_entry, stamped_long_before,
    EntryContext,
};
use super::tail::{
    position_name, trimmed_marker_name, unix_now_ns, BucketShard, CaptureError, PollReport,
    RgwCapture, FINISHED,
};
use crate::index::WriteBatch;
use crate::record::Op;

/// The per-shard sequence number that starts a bilog marker
/// (`00000000042.123.6` → 42); RGW numbers a shard's log entries 1, 2, 3…
fn bilog_seq(marker: &str) -> Option<u64> {
    marker.split('.').next()?.parse().ok()
}

/// Whether the first entry listed after our position directly follows it
/// in RGW's numbering. When it does, nothing can be missing between them;
/// when it does not, that alone proves nothing: Reef and later number index
/// operations that they never log (a pending or cancelled operation, a
/// multipart upload's meta entry), so a shard can list 1, 2, 7, 9, 10 with
/// nothing trimmed.
pub(super) fn follows_directly(position: &str, first_listed: &str) -> bool {
    match (bilog_seq(position), bilog_seq(first_listed)) {
        (Some(had), Some(next)) => next <= had + 1,
        // Markers we cannot read as numbers: only RGW's own answer counts.
        _ => false,
    }
}

/// Whether RGW still holds the entry at `position` (or an older one): RGW
/// trims a bucket-index log only from its start up to an end marker, so
/// then nothing after our position is gone.
pub(super) fn still_holds(position: &str, oldest: Option<&str>) -> bool {
    match (bilog_seq(position), oldest.and_then(bilog_seq)) {
        (Some(had), Some(oldest)) => oldest <= had,
        _ => false,
    }
}

impl RgwCapture {
    /// Reads a bucket shard's index log from its marker to the end, writing
    /// each page's records with the page's last marker in one commit.
    pub(super) async fn drain(&self, bs: &BucketShard) -> Result<PollReport, CaptureError> {
        self.counters
            .bilog_shard_reads
            .fetch_add(1, Ordering::Relaxed);
        let name = position_name(bs);
        let mut marker = self.stored_marker(&name).await?;
        let mut report = PollReport {
            bucket_shards: 1,
            ..PollReport::default()
        };
        if marker.as_deref() == Some(FINISHED) {
            return Ok(report);
        }
        if marker.is_none() {
            self.meet_instance(bs).await?;
        }
        if !self.older_generations_done(bs, marker.is_some()).await? {
            return Ok(report);
        }
        let shard_name = bs.log_name();
        loop {
            let mut page = match self.admin.bilog_list(bs, marker.as_deref()).await {
                Ok(page) => page,
                Err(AdminError::NotFound { .. }) => {
                    self.shard_not_found(bs).await?;
                    return Ok(report);
                }
                Err(e) => return Err(e.into()),
            };
            // A reshard ended this generation and we have read all of it.
            let finished = !page.truncated && page.next_log.is_some();
            let keep = committable(&page.entries, page.truncated);
            page.entries.truncate(keep);
            let times = change_times(&page.entries, chrono::Utc::now());
            let late = stamped_long_before(&page.entries);
            let Some(last) = page.entries.last() else {
                if finished {
                    self.finish_generation(bs, WriteBatch::new()).await?;
                } else if marker.is_none() {
                    // Named by the data log but nothing to read yet: RGW
                    // completes the bilog entry after the data-log one. An
                    // empty position makes the shard known, so that after a
                    // kill it is drained again (and, if its bucket is gone
                    // by then, its removal is found) although the data log
                    // has moved past the only entry that named it.
                    self.index
                        .write(WriteBatch::new().marker(name.clone(), Vec::new()))
                        .await?;
                }
                return Ok(report);
            };
            let last_marker = entry_marker(last).to_string();
            let mut batch = WriteBatch::new();
            let mut page_report = PollReport::default();
            if let Some(first) = page.entries.first() {
                if self
                    .trimmed_past(bs, marker.as_deref(), entry_marker(first))
                    .await?
                {
                    // Entries after our position were trimmed by someone
                    // else: what they said is unknown, so the bucket is
                    // listed again in full.
                    tracing::warn!(
                        bucket_shard = %shard_name,
                        position = marker.as_deref().unwrap_or(""),
                        first_left = entry_marker(first),
                        "rgw capture: the bucket-index log was trimmed past our position; \
                         resyncing the whole bucket by listing it"
                    );
                    batch = self.relist(batch, &bs.bucket);
                }
            }
            if let Some(resync) = page.entries.iter().find(|e| e.op == "resync") {
                batch = self.list_after_resync(bs, resync, batch).await?;
            }
            let created_ns = self.instance_created_ns(bs).await?;
            for ((entry, time), late) in page.entries.iter().zip(times).zip(late) {
                let context = EntryContext {
                    change_time: Some(time),
                    stamped_long_before: late,
                };
                match map_entry(&bs.bucket, &shard_name, entry, context) {
                    Ok(mut record) if self.filter.matches(&record.bucket, &record.key) => {
                        record.details.sequence = entry_sequence(created_ns, bs.gen, entry);
                        // One record the index cannot hold must not stall the
                        // shard (and every bucket sharing its data-log shard).
                        if let Err(reason) = record.validate() {
                            tracing::error!(bucket = %record.bucket, key = %record.key.escape_debug(), %reason, "rgw capture: change cannot be stored; skipped");
                            self.counters.invalid.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        batch.records.push(record)
                    }
                    Ok(_) => page_report.filtered += 1,
                    Err(_) => page_report.skipped += 1,
                }
            }
            if self.config.enrich {
                let overwritten = overwritten_later(&batch.records);
                for (record, overwritten) in batch.records.iter_mut().zip(overwritten) {
                    if overwritten && matches!(record.op, Op::Put | Op::Metadata) {
                        self.counters.enrich_stale.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    self.enrich(record).await?;
                }
                self.unenrich_overwritten_since(bs, &last_marker, &mut batch.records)
                    .await?;
            }
            let newest = batch.records.iter().filter_map(|r| r.time_ns().ok()).max();
            page_report.records = batch.records.len() as u64;
            let batch_ops: Vec<(Op, u64)> = batch
                .records
                .iter()
                .map(|r| (r.op, r.time_ns().unwrap_or(0)))
                .collect();
            if finished {
                self.finish_generation(bs, batch).await?;
            } else {
                batch = batch.marker(name.clone(), last_marker.clone().into_bytes());
                if !batch.records.is_empty() {
                    crate::testing::stop_point("capture-before-write");
                }
                self.index.write(batch).await?;
            }
            let durable_ns = unix_now_ns();
            for (op, time_ns) in &batch_ops {
                self.counters.count_op(*op);
                // Written at RGW → durable in the index.
                self.counters
                    .lag
                    .observe(durable_ns.saturating_sub(*time_ns) as f64 / 1e9);
            }
            self.count(&page_report, newest);
            report.add(&page_report);
            if finished || !page.truncated || Some(&last_marker) == marker.as_ref() {
                return Ok(report);
            }
            marker = Some(last_marker);
        }
    }

    /// `bucket sync enable` after a `sync disable`: RGW logged nothing in
    /// between (`syncstop` .. `resync`), so what changed then is found by
    /// listing the bucket. Every shard logs its own `resync`, drained at
    /// different times; a listing asked for after a `resync` was written
    /// covers it (`rgw/listed-after/<bucket>`: when the last one was asked
    /// for), so one `sync enable` lists the bucket once.
    async fn list_after_resync(
        &self,
        bs: &BucketShard,
        resync: &BilogEntry,
        batch: WriteBatch,
    ) -> Result<WriteBatch, CaptureError> {
        let asked_name = format!("rgw/listed-after/{}", bs.bucket);
        let asked: Option<u64> = self
            .stored_marker(&asked_name)
            .await?
            .and_then(|v| v.parse().ok());
        let written = chrono::DateTime::parse_from_rfc3339(&resync.timestamp)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .map(|ns| ns.max(0) as u64);
        if let (Some(asked), Some(written)) = (asked, written) {
            if written <= asked {
                return Ok(batch);
            }
        }
        tracing::warn!(
            bucket = %bs.bucket,
            marker = entry_marker(resync),
            "rgw capture: the bucket's sync was disabled and enabled again; \
             changes made in between are not in its log, listing the bucket"
        );
        Ok(self
            .relist(batch, &bs.bucket)
            .marker(asked_name, unix_now_ns().to_string().into_bytes()))
    }

    /// Whether entries after `position` may have been trimmed before we
    /// read them, decided from what RGW holds rather than from numbering:
    /// only when RGW no longer holds the entry at our position itself, and
    /// zonelog did not trim exactly to it, is there room for a trimmed
    /// entry between our position and the first one listed.
    ///
    /// An empty position is the start of a log that was empty when its
    /// position was taken, so everything RGW lists after it is new.
    async fn trimmed_past(
        &self,
        bs: &BucketShard,
        position: Option<&str>,
        first_listed: &str,
    ) -> Result<bool, CaptureError> {
        let Some(position) = position.filter(|p| !p.is_empty()) else {
            return Ok(false);
        };
        if follows_directly(position, first_listed) {
            return Ok(false);
        }
        self.counters
            .numbering_skips
            .fetch_add(1, Ordering::Relaxed);
        let oldest = self.admin.bilog_oldest(bs).await?;
        if still_holds(position, oldest.as_ref().map(entry_marker)) {
            return Ok(false);
        }
        let trimmed_by_us = self.stored_marker(&trimmed_marker_name(bs)).await?;
        Ok(trimmed_by_us.as_deref() != Some(position))
    }

    /// See `instance_created`; 0 for an instance RGW no longer knows,
    /// which was created before any it knows.
    async fn instance_created_ns(&self, bs: &BucketShard) -> Result<u64, CaptureError> {
        let key = format!("{}:{}", bs.bucket, bs.instance);
        let cached = self
            .instance_created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .copied();
        if let Some(ns) = cached {
            return Ok(ns);
        }
        let ns = self
            .admin
            .instance_created_ns(&bs.bucket, &bs.instance)
            .await?
            .unwrap_or(0);
        self.instance_created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, ns);
        Ok(ns)
    }
}
