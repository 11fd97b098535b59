//! The metric families: every name, help text and value of `/metrics`.

use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector as MetricsCollector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::metrics::{counter, gauge, histogram, now_ns, Snapshot};
use crate::capture::notify::NotifyCounters;
use crate::record::Op;

impl MetricsCollector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = now_ns();
        if self.capture.is_some() || self.notify.is_some() {
            // One family for both sources: a metric name may appear once.
            let mut rows = Vec::new();
            if let Some(c) = &self.capture {
                rows.push(("rgw", &c.ops));
            }
            if let Some(n) = &self.notify {
                rows.push(("notify", &n.ops));
            }
            let mut family = encoder.encode_descriptor(
                "zonelog_changes_captured",
                "Changes written to the index, by source and op",
                None,
                MetricType::Counter,
            )?;
            for (source, ops) in rows {
                for op in Op::ALL {
                    let labels = [("source", source), ("op", op.as_str())];
                    ConstCounter::new(ops.of(op).load(Ordering::Relaxed))
                        .encode(family.encode_family(&labels)?)?;
                }
            }
        }
        if let Some(c) = &self.capture {
            counter(
                &mut encoder,
                "zonelog_capture_skipped",
                "Source log entries that are not object changes (multipart parts, pending ops, ...)",
                c.skipped.load(Ordering::Relaxed),
            )?;
            counter(
                &mut encoder,
                "zonelog_capture_filtered",
                "Changes outside the filter, not stored",
                c.filtered.load(Ordering::Relaxed),
            )?;
            counter(
                &mut encoder,
                "zonelog_capture_resyncs",
                "Buckets listed again because their bucket-index log was trimmed past zonelog's position",
                c.resyncs.load(Ordering::Relaxed),
            )?;
            counter(
                &mut encoder,
                "zonelog_capture_datalog_trims",
                "Data-log shards found trimmed past zonelog's position by someone else (each caught up)",
                c.datalog_trims.load(Ordering::Relaxed),
            )?;
            gauge(
                &mut encoder,
                "zonelog_capture_failing_buckets",
                "Buckets whose listing or read fails now (retried; see status)",
                c.failing().len() as f64,
            )?;
            counter(
                &mut encoder,
                "zonelog_capture_invalid",
                "Changes the index refused (names over S3 limits); skipped and logged",
                c.invalid.load(Ordering::Relaxed),
            )?;
            counter(
                &mut encoder,
                "zonelog_capture_datalog_shard_reads",
                "Data-log shards read over REST (with a probe: only those that changed)",
                c.datalog_shard_reads.load(Ordering::Relaxed),
            )?;
            counter(
                &mut encoder,
                "zonelog_capture_bilog_shard_reads",
                "Bucket-index log shards read over REST",
                c.bilog_shard_reads.load(Ordering::Relaxed),
            )?;
            counter(
                &mut encoder,
                "zonelog_capture_probe_sweeps",
                "Sweeps of the RADOS data-log probe",
                c.probe_sweeps.load(Ordering::Relaxed),
            )?;
            counter(
                &mut encoder,
                "zonelog_capture_probe_failures",
                "Probe sweeps that failed or missed a change (every shard was read instead)",
                c.probe_failures.load(Ordering::Relaxed),
            )?;
            counter(
                &mut encoder,
                "zonelog_capture_polls",
                "Capture polls of the source",
                c.polls.load(Ordering::Relaxed),
            )?;
            counter(
                &mut encoder,
                "zonelog_capture_errors",
                "Failed capture polls (retried)",
                c.errors.load(Ordering::Relaxed),
            )?;
            histogram(
                &mut encoder,
                "zonelog_capture_commit_lag_seconds",
                "Seconds from a change at the source to its commit in the index",
                &c.lag,
            )?;
            let newest = c.newest_change_ns.load(Ordering::Relaxed);
            if newest > 0 {
                gauge(
                    &mut encoder,
                    "zonelog_capture_lag_seconds",
                    "Now minus the source time of the newest captured change",
                    now.saturating_sub(newest) as f64 / 1e9,
                )?;
            }
            gauge(
                &mut encoder,
                "zonelog_capture_active_bucket_shards",
                "Bucket-index shards seen changing recently (followed on every poll)",
                c.active_bucket_shards.load(Ordering::Relaxed) as f64,
            )?;
            let last_ok = c.last_poll_ok_ns.load(Ordering::Relaxed);
            if last_ok > 0 {
                gauge(
                    &mut encoder,
                    "zonelog_source_position_timestamp_seconds",
                    "When the source's positions were last brought up to date (a successful poll)",
                    last_ok as f64 / 1e9,
                )?;
            }
        }
        if let Some(n) = &self.notify {
            encode_notify(&mut encoder, n)?;
        }
        let stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut family = encoder.encode_descriptor(
                "zonelog_index_entries",
                "Pending entries per index shard",
                None,
                MetricType::Gauge,
            )?;
            for s in &stats.shards {
                let shard = s.shard.to_string();
                ConstGauge::new(s.entries as i64)
                    .encode(family.encode_family(&[("shard", shard.as_str())])?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "zonelog_index_bytes",
                "Bytes of pending entries per index shard",
                None,
                MetricType::Gauge,
            )?;
            for s in &stats.shards {
                let shard = s.shard.to_string();
                ConstGauge::new(s.bytes as i64)
                    .encode(family.encode_family(&[("shard", shard.as_str())])?)?;
            }
        }
        gauge(
            &mut encoder,
            "zonelog_index_oldest_entry_age_seconds",
            "Age of the oldest pending change (0 when the index is empty)",
            stats
                .oldest_time_ns()
                .map_or(0.0, |t| now.saturating_sub(t) as f64 / 1e9),
        )?;
        gauge(
            &mut encoder,
            "zonelog_index_readable",
            "1 when this scrape read the index's statistics; 0 when it could not (the index figures are then the last ones read)",
            if self.index_readable.load(Ordering::Relaxed) {
                1.0
            } else {
                0.0
            },
        )?;
        if let Some(c) = &self.collector {
            counter(
                &mut encoder,
                "zonelog_collector_rounds",
                "Collector rounds started",
                c.rounds.load(Ordering::Relaxed),
            )?;
            gauge(
                &mut encoder,
                "zonelog_collector_round_seconds",
                "Duration of the last collector round",
                c.last_round_ms.load(Ordering::Relaxed) as f64 / 1e3,
            )?;
            counter(
                &mut encoder,
                "zonelog_collector_windows",
                "Log objects written",
                c.windows.load(Ordering::Relaxed),
            )?;
            counter(
                &mut encoder,
                "zonelog_collector_entries",
                "Changes written to log objects",
                c.entries.load(Ordering::Relaxed),
            )?;
            counter(
                &mut encoder,
                "zonelog_collector_bytes",
                "Bytes of log objects written",
                c.bytes.load(Ordering::Relaxed),
            )?;
            counter(
                &mut encoder,
                "zonelog_collector_upload_errors",
                "Failed collector rounds (upload or target errors; retried, nothing trimmed)",
                c.errors.load(Ordering::Relaxed),
            )?;
            gauge(
                &mut encoder,
                "zonelog_collector_lease_held",
                "1 while this process holds the collector's control lease",
                if c.lease_held.load(Ordering::Relaxed) {
                    1.0
                } else {
                    0.0
                },
            )?;
        }
        Ok(())
    }
}

fn encode_notify(
    encoder: &mut DescriptorEncoder,
    n: &NotifyCounters,
) -> Result<(), std::fmt::Error> {
    {
        let mut family = encoder.encode_descriptor(
            "zonelog_notify_requests",
            "Notification requests by result: accepted (200, durable), unauthorized (401), malformed (400), too_large (413), failed (503)",
            None,
            MetricType::Counter,
        )?;
        for (result, value) in [
            ("accepted", &n.accepted),
            ("unauthorized", &n.unauthorized),
            ("malformed", &n.malformed),
            ("too_large", &n.too_large),
            ("failed", &n.failed),
        ] {
            ConstCounter::new(value.load(Ordering::Relaxed))
                .encode(family.encode_family(&[("result", result)])?)?;
        }
    }
    counter(
        encoder,
        "zonelog_notify_duplicates",
        "Notifications already stored (redeliveries), not stored again",
        n.duplicates.load(Ordering::Relaxed),
    )?;
    counter(
        encoder,
        "zonelog_notify_filtered",
        "Notifications outside the filter, not stored",
        n.filtered.load(Ordering::Relaxed),
    )?;
    counter(
        encoder,
        "zonelog_notify_ignored",
        "Events that are not object changes (reads, restores, test events)",
        n.ignored.load(Ordering::Relaxed),
    )?;
    counter(
        encoder,
        "zonelog_notify_commits",
        "Durable index commits of the notify source (each may carry many requests)",
        n.commits.load(Ordering::Relaxed),
    )?;
    histogram(
        encoder,
        "zonelog_notify_request_seconds",
        "Seconds from receiving an accepted notification request to answering it (after the durable commit)",
        &n.latency,
    )
}
