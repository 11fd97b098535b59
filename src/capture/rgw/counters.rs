//! Capture's running totals (for metrics, status and the benchmarks) and
//! what one poll did.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::tail::RgwCapture;
use crate::capture::OpCounters;
use crate::record::Op;

/// A fixed-bucket histogram on atomics: cheap to observe on the capture
/// path, exported as a Prometheus histogram and read by the benchmark.
#[derive(Debug)]
pub struct LagHistogram {
    pub bounds: &'static [f64],
    pub counts: Vec<AtomicU64>,
    pub sum_micros: AtomicU64,
}

const LAG_BOUNDS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

impl Default for LagHistogram {
    fn default() -> Self {
        LagHistogram {
            bounds: LAG_BOUNDS,
            counts: (0..=LAG_BOUNDS.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl LagHistogram {
    pub fn observe(&self, seconds: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    /// Per-bucket counts (not cumulative); the last is above every bound.
    pub fn snapshot(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// The upper bound of the bucket holding quantile `q` (0..1).
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let counts = self.snapshot();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(self.bounds.get(i).copied().unwrap_or(f64::INFINITY));
            }
        }
        None
    }
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    pub records: u64,
    pub skipped: u64,
    pub filtered: u64,
    pub bucket_shards: u64,
    pub datalog_entries: u64,
}

impl PollReport {
    pub(super) fn add(&mut self, other: &PollReport) {
        self.records += other.records;
        self.skipped += other.skipped;
        self.filtered += other.filtered;
        self.bucket_shards += other.bucket_shards;
        self.datalog_entries += other.datalog_entries;
    }
}

/// Running totals, for metrics and status.
#[derive(Debug, Default)]
pub struct CaptureCounters {
    /// Changes captured, by op.
    pub ops: OpCounters,
    pub skipped: AtomicU64,
    pub filtered: AtomicU64,
    pub polls: AtomicU64,
    pub errors: AtomicU64,
    /// Source time of the newest captured change, ns since the epoch.
    pub newest_change_ns: AtomicU64,
    /// Bucket shards seen changing recently (drained on every poll).
    pub active_bucket_shards: AtomicU64,
    /// When the last poll succeeded, ns since the epoch.
    pub last_poll_ok_ns: AtomicU64,
    /// The starting positions are recorded: capture is following the zone.
    pub initialized: AtomicBool,
    /// Seconds from a change at the source to its commit in the index.
    pub lag: LagHistogram,
    /// Buckets listed again because their log was trimmed past our position
    /// or their instance changed.
    pub resyncs: AtomicU64,
    /// Enriched records left without size and ETag because the object had
    /// changed again before the HEAD.
    pub enrich_stale: AtomicU64,
    /// Bucket-index log pages whose first entry did not directly follow our
    /// position in RGW's numbering, each checked against what RGW holds.
    pub numbering_skips: AtomicU64,
    /// Buckets whose last listing or read failed (bucket → error), each
    /// retried on every poll while every other bucket goes on.
    pub failing_buckets: Mutex<std::collections::BTreeMap<String, String>>,
    /// Data-log shards found trimmed past our position by someone else.
    pub datalog_trims: AtomicU64,
    /// Which data-log shards were caught up on so far (at most the shard
    /// count), for status and tests.
    pub caught_up_shards: Mutex<BTreeSet<u32>>,
    /// Changes the index refused (e.g. a name over S3's limits), skipped.
    pub invalid: AtomicU64,
    /// Data-log shards read over REST (each one list, or more when long).
    pub datalog_shard_reads: AtomicU64,
    /// Bucket-index log shards read over REST, likewise.
    pub bilog_shard_reads: AtomicU64,
    /// Sweeps of the data-log probe, and those that failed (every shard
    /// was then read over REST).
    pub probe_sweeps: AtomicU64,
    pub probe_failures: AtomicU64,
}

impl CaptureCounters {
    pub fn changes(&self) -> u64 {
        self.ops.total()
    }

    pub(super) fn count_op(&self, op: Op) {
        self.ops.count(op);
    }

    pub(super) fn bucket_failed(&self, bucket: &str, error: &dyn std::fmt::Display) {
        self.failing_buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(bucket.to_string(), error.to_string());
    }

    pub(super) fn bucket_ok(&self, bucket: &str) {
        self.failing_buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(bucket);
    }

    /// The failing buckets, for status and metrics.
    pub fn failing(&self) -> std::collections::BTreeMap<String, String> {
        self.failing_buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl RgwCapture {
    pub(super) fn count(&self, report: &PollReport, newest: Option<u64>) {
        let c = &self.counters;
        c.skipped.fetch_add(report.skipped, Ordering::Relaxed);
        c.filtered.fetch_add(report.filtered, Ordering::Relaxed);
        if let Some(ns) = newest {
            c.newest_change_ns.fetch_max(ns, Ordering::Relaxed);
        }
    }
}
