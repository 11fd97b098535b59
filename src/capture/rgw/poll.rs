//! The poll loop: each poll reads the data-log shards from our positions,
//! drains every bucket shard they name, then the recently active ones.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use tokio::sync::watch;

use super::admin::AdminError;
use super::api::DatalogPage;
use super::tail::{
    datalog_marker_name, unix_now_ns, BucketShard, CaptureError, PollReport, RgwCapture,
    INITIALIZED,
};
use crate::index::WriteBatch;

/// RGW logs a bucket shard in the data log at most once per
/// `rgw_data_log_window` (30 s) and re-logs shards that changed again
/// within it only when the window renews. Draining recently active shards
/// on every poll keeps the lag at one poll interval instead of up to a
/// window.
const KEEP_ACTIVE: Duration = Duration::from_secs(90);

const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// One data-log shard read.
struct ShardRead {
    report: PollReport,
    /// The shard was trimmed past our position since the last poll: what
    /// to commit once caught up. Nothing after the position was used.
    gap: Option<WriteBatch>,
}

impl RgwCapture {
    pub(super) async fn datalog_shard_count(&self) -> Result<u32, CaptureError> {
        if let Some((count, asked)) = *self.shard_count.lock().unwrap_or_else(|p| p.into_inner()) {
            if asked.elapsed() < self.config.check_interval {
                return Ok(count);
            }
        }
        let count = self.admin.datalog_shard_count().await?;
        *self.shard_count.lock().unwrap_or_else(|p| p.into_inner()) = Some((count, Instant::now()));
        Ok(count)
    }

    /// Polls until `shutdown` turns true, retrying failures with backoff.
    /// Stopping between polls or inside one is safe: every write carries
    /// its own markers.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let mut failures = 0u32;
        while !*shutdown.borrow() {
            let pause = tokio::select! {
                result = self.poll_once() => match result {
                    Ok(report) => {
                        failures = 0;
                        if report.records > 0 {
                            tracing::info!(
                                records = report.records,
                                bucket_shards = report.bucket_shards,
                                "rgw capture: indexed changes"
                            );
                        }
                        self.config.pause()
                    }
                    Err(e) => {
                        failures += 1;
                        self.counters.errors.fetch_add(1, Ordering::Relaxed);
                        let pause = backoff(self.config.pause(), failures);
                        if e.is_transient() {
                            tracing::warn!(error = %e, retry_in = ?pause, "rgw capture: poll failed; nothing skipped, retrying");
                        } else {
                            tracing::error!(error = %e, retry_in = ?pause, "rgw capture: poll failed; fix the cause, retrying");
                        }
                        pause
                    }
                },
                _ = shutdown.changed() => break,
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// One pass: records the starting positions on first use, drains every
    /// bucket shard the data log names, then the recently active ones.
    pub async fn poll_once(&self) -> Result<PollReport, CaptureError> {
        self.counters.polls.fetch_add(1, Ordering::Relaxed);
        // A first start positioned every bucket just now: nothing to catch up.
        let initialized_now = self.index.marker(INITIALIZED).await?.is_none();
        if initialized_now {
            self.initialize().await?;
        }
        self.counters.initialized.store(true, Ordering::Relaxed);
        let mut report = PollReport::default();
        report.add(&self.continue_listings().await?);
        if !self.caught_up.load(Ordering::Relaxed) {
            if !initialized_now {
                report.add(&self.catch_up().await?);
            }
            self.caught_up.store(true, Ordering::Relaxed);
        }
        // Before the data log is read: reading it moves our positions
        // past a trimmed stretch, which then could no longer be seen.
        report.add(&self.check_datalog_trims().await?);
        let shards = self.datalog_shard_count().await?;
        let to_read = self.datalog_shards_to_read(shards).await;
        let mut first_error = None;
        let results: Vec<(u32, Result<ShardRead, CaptureError>)> = stream::iter(to_read)
            .map(|shard| async move { (shard, self.poll_datalog_shard(shard).await) })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        let net_reading = self
            .safety_net
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .reading
            .take();
        let mut gaps = Vec::new();
        for (shard, r) in results {
            match r {
                Ok(ShardRead { report: r, gap }) => {
                    if let Some(gap) = gap {
                        gaps.push((shard, gap));
                        // Read again from where it stopped, next poll.
                        if let Some(probe) = &self.probe {
                            probe.forget(shard);
                        }
                    }
                    if net_reading == Some(shard) && r.datalog_entries > 0 {
                        self.safety_net
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .to_verify
                            .push(shard);
                    }
                    report.add(&r);
                }
                Err(e) => {
                    // Not read to its end: the probe must report it again.
                    if let Some(probe) = &self.probe {
                        probe.forget(shard);
                    }
                    first_error.get_or_insert(e);
                }
            }
        }
        // Data-log drains are done, so no bucket shard is being drained now,
        // and a catch-up may drain them all.
        if first_error.is_none() {
            report.add(&self.catch_up_after_trims(gaps).await?);
        }
        let active: Vec<BucketShard> = {
            let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            active.retain(|_, seen| seen.elapsed() < KEEP_ACTIVE);
            self.counters
                .active_bucket_shards
                .store(active.len() as u64, Ordering::Relaxed);
            active.keys().cloned().collect()
        };
        let to_drain = self.active_shards_to_drain(active).await;
        let results: Vec<(BucketShard, Result<PollReport, CaptureError>)> = stream::iter(to_drain)
            .map(|bs| async move {
                let drained = self.drain(&bs).await;
                (bs, drained)
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        for (bs, r) in results {
            match r {
                Ok(r) => report.add(&r),
                Err(e) => {
                    if let Some(probe) = &self.index_probe {
                        probe.forget(&bs);
                    }
                    first_error.get_or_insert(e);
                }
            }
        }
        if first_error.is_none() {
            if let Err(e) = self.check_followed_buckets().await {
                first_error = Some(e);
            }
        }
        if first_error.is_none() && self.config.trim_source {
            self.trim_source_logs().await;
        }
        match first_error {
            Some(e) => Err(e),
            None => {
                self.counters
                    .last_poll_ok_ns
                    .store(unix_now_ns(), Ordering::Relaxed);
                Ok(report)
            }
        }
    }

    /// The matching bucket shards a data-log page names, as logged (before
    /// `followed_name`).
    fn named_bucket_shards(&self, page: &DatalogPage) -> BTreeSet<BucketShard> {
        page.entries
            .iter()
            .filter(|e| e.entity_type == "bucket")
            .filter_map(|e| Some((e.bucket_shard()?, e.gen)))
            .filter(|((bucket, _, _), _)| self.filter.matches_bucket(bucket))
            .map(|((bucket, instance, shard), gen)| BucketShard {
                gen,
                ..BucketShard::first(bucket, instance, shard)
            })
            .collect()
    }

    /// Reads a data-log shard from our position to its end, draining the
    /// bucket shards it names. Stops before using a page when the shard
    /// no longer holds our position (trimmed by someone else since the
    /// last poll): its `gap` is then caught up by the caller.
    async fn poll_datalog_shard(&self, shard: u32) -> Result<ShardRead, CaptureError> {
        let name = datalog_marker_name(shard);
        let mut marker = self.stored_marker(&name).await?;
        let mut report = PollReport::default();
        self.counters
            .datalog_shard_reads
            .fetch_add(1, Ordering::Relaxed);
        let datalog_shards = self.datalog_shard_count().await?;
        loop {
            let page = self.admin.datalog_list(shard, marker.as_deref()).await?;
            if let (false, Some(ours)) = (page.entries.is_empty(), &marker) {
                if !self.datalog_read_complete(shard, ours).await? {
                    // The catch-up drains what the page names; kept active
                    // like any shard read, so it is drained and trimmed on.
                    for bs in self.named_bucket_shards(&page) {
                        let bs = self.followed_name(bs).await?;
                        self.active
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(bs, Instant::now());
                    }
                    // Once caught up, what this page lists is read.
                    let mut settled = WriteBatch::new();
                    if !page.marker.is_empty() {
                        settled = settled.marker(name.clone(), page.marker.clone().into_bytes());
                    }
                    return Ok(ShardRead {
                        report,
                        gap: Some(settled),
                    });
                }
            }
            report.datalog_entries += page.entries.len() as u64;
            if page.entries.iter().any(|e| {
                e.bucket_shard().is_some_and(|(bucket, _, bs)| {
                    super::trims::datalog_shard_of(bucket, bs, datalog_shards) != shard
                })
            }) && !self.shard_map_wrong.swap(true, Ordering::Relaxed)
            {
                tracing::warn!(
                    shard,
                    "rgw capture: a data-log entry is not in the shard RGW's hash gives; \
                    catching up on every bucket after a trim from now on"
                );
            }
            for bs in self.named_bucket_shards(&page) {
                let bs = self.followed_name(bs).await?;
                report.add(&self.drain(&bs).await?);
                self.active
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(bs, Instant::now());
            }
            let advanced = !page.marker.is_empty() && Some(&page.marker) != marker.as_ref();
            if advanced {
                self.index
                    .write(WriteBatch::new().marker(name.clone(), page.marker.clone().into_bytes()))
                    .await?;
                marker = Some(page.marker);
            }
            if !page.truncated {
                return Ok(ShardRead { report, gap: None });
            }
            if !advanced {
                // RGW says there is more but gives no new position: stop
                // loudly rather than skip the rest of the shard.
                return Err(CaptureError::Rgw(AdminError::Decode {
                    endpoint: self.admin.client().endpoint().to_string(),
                    what: format!("data log shard {shard}"),
                    reason: "truncated page without a new marker".into(),
                }));
            }
        }
    }
}

fn backoff(base: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.min(6);
    (base * factor).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let base = Duration::from_secs(2);
        assert_eq!(backoff(base, 1), Duration::from_secs(4));
        assert_eq!(backoff(base, 3), Duration::from_secs(16));
        assert_eq!(backoff(base, 30), MAX_BACKOFF);
    }
}
