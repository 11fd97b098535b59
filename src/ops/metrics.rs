//! The `/metrics` page: a `prometheus-client` collector over the plain
//! atomic counters, with a fresh snapshot of the index statistics per
//! scrape.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::Observed;
use crate::capture::notify::NotifyCounters;
use crate::capture::rgw::tail::LagHistogram;
use crate::capture::rgw::CaptureCounters;
use crate::collector::CollectorCounters;
use crate::index::{ChangeIndex, IndexStats};

#[derive(Debug)]
pub(super) struct Snapshot {
    pub(super) capture: Option<Arc<CaptureCounters>>,
    pub(super) notify: Option<Arc<NotifyCounters>>,
    pub(super) collector: Option<Arc<CollectorCounters>>,
    pub(super) stats: Mutex<IndexStats>,
    /// Whether the last scrape could read the index's statistics; when
    /// not (a full disk, a RADOS outage), the others are still served and
    /// the index figures are the last ones read.
    pub(super) index_readable: std::sync::atomic::AtomicBool,
}

pub(super) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub(super) fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

pub(super) fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

pub(super) fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    h: &LagHistogram,
) -> Result<(), std::fmt::Error> {
    let counts = h.snapshot();
    // prometheus-client wants per-bucket counts with the +Inf bucket last;
    // the histogram keeps one more count than bounds, the overflow.
    let buckets: Vec<(f64, u64)> = h
        .bounds
        .iter()
        .copied()
        .chain([f64::INFINITY])
        .zip(counts.iter().copied())
        .collect();
    let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    family.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
        sum,
        counts.iter().sum(),
        &buckets,
        None,
    )
}

/// The rendered `/metrics` page.
pub async fn render_metrics(observed: &Observed) -> Result<String, String> {
    let (registry, snapshot) = registry(observed);
    refresh(&observed.index, &snapshot).await;
    encode(&registry)
}

pub(super) fn registry(observed: &Observed) -> (Registry, Arc<Snapshot>) {
    let snapshot = Arc::new(Snapshot {
        capture: observed.capture.clone(),
        notify: observed.notify.clone(),
        collector: observed.collector.clone(),
        stats: Mutex::new(IndexStats::default()),
        index_readable: std::sync::atomic::AtomicBool::new(true),
    });
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot.clone()));
    (registry, snapshot)
}

/// Reads the index's statistics for a scrape. A failure is reported by
/// `zonelog_index_readable` and the log, not by failing the scrape: the
/// counters matter most exactly when the index is in trouble.
pub(super) async fn refresh(index: &Arc<dyn ChangeIndex>, snapshot: &Snapshot) {
    match index.stats().await {
        Ok(stats) => {
            *snapshot.stats.lock().unwrap_or_else(|p| p.into_inner()) = stats;
            snapshot.index_readable.store(true, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the index's statistics; serving the last ones");
            snapshot.index_readable.store(false, Ordering::Relaxed);
        }
    }
}

pub(super) fn encode(registry: &Registry) -> Result<String, String> {
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
        .map_err(|e| e.to_string())?;
    Ok(out)
}
