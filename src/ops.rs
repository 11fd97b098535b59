//! Operating the service: `/metrics` (Prometheus text format), `/healthz`
//! and `/readyz` on one HTTP listener.
//!
//! Capture and collector keep plain atomic counters on their hot paths; a
//! `prometheus-client` collector turns them into metric families at scrape
//! time, together with a fresh snapshot of the index statistics.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector as MetricsCollector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::capture::notify::NotifyCounters;
use crate::capture::rgw::tail::LagHistogram;
use crate::capture::rgw::CaptureCounters;
use crate::changes::{ChangesQuery, Page};
use crate::collector::CollectorCounters;
use crate::index::{ChangeIndex, IndexStats};
use crate::lease::LeaseStore;
use crate::record::Op;

/// What the HTTP endpoints read.
pub struct Observed {
    pub zone: String,
    pub index: Arc<dyn ChangeIndex>,
    pub leases: Arc<dyn LeaseStore>,
    pub rgw_configured: bool,
    pub capture: Option<Arc<CaptureCounters>>,
    pub notify: Option<Arc<NotifyCounters>>,
    pub collector: Option<Arc<CollectorCounters>>,
}

#[derive(Debug)]
struct Snapshot {
    capture: Option<Arc<CaptureCounters>>,
    notify: Option<Arc<NotifyCounters>>,
    collector: Option<Arc<CollectorCounters>>,
    stats: Mutex<IndexStats>,
    /// Whether the last scrape could read the index's statistics; when
    /// not (a full disk, a RADOS outage), the others are still served and
    /// the index figures are the last ones read.
    index_readable: std::sync::atomic::AtomicBool,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

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

fn histogram(
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

struct AppState {
    zone: String,
    token: Option<crate::config::Secret>,
    change_scans: Arc<tokio::sync::Semaphore>,
    index: Arc<dyn ChangeIndex>,
    leases: Arc<dyn LeaseStore>,
    rgw_configured: bool,
    registry: Registry,
    snapshot: Arc<Snapshot>,
}

/// The rendered `/metrics` page.
pub async fn render_metrics(observed: &Observed) -> Result<String, String> {
    let (registry, snapshot) = registry(observed);
    refresh(&observed.index, &snapshot).await;
    encode(&registry)
}

fn registry(observed: &Observed) -> (Registry, Arc<Snapshot>) {
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
async fn refresh(index: &Arc<dyn ChangeIndex>, snapshot: &Snapshot) {
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

fn encode(registry: &Registry) -> Result<String, String> {
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    refresh(&state.index, &state.snapshot).await;
    match encode(&state.registry) {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("metrics unavailable: {e}\n"),
        ),
    }
}

async fn status(State(state): State<Arc<AppState>>) -> axum::response::Response {
    match crate::status::gather(
        &state.zone,
        state.index.as_ref(),
        state.leases.as_ref(),
        state.snapshot.capture.as_deref(),
        state.rgw_configured,
    )
    .await
    {
        Ok(mut status) => {
            if let Some(n) = &state.snapshot.notify {
                // The notify source lives only in the running process; its
                // "positions" are the seen-set slots it keeps in the index.
                let slots = match state
                    .index
                    .markers(crate::capture::notify::seen::SEEN_PREFIX)
                    .await
                {
                    Ok(m) => m.len(),
                    Err(e) => {
                        return (StatusCode::INTERNAL_SERVER_ERROR, format!("status: {e}\n"))
                            .into_response()
                    }
                };
                let nonzero = |v: u64| (v > 0).then_some(v);
                status.sources.push(crate::status::SourceStatus {
                    name: "notify".into(),
                    following: true,
                    changes: n.stored(),
                    errors: n.failed.load(Ordering::Relaxed),
                    positions: slots,
                    last_poll_ok_ns: nonzero(n.last_accepted_ns.load(Ordering::Relaxed)),
                    newest_change_ns: nonzero(n.newest_change_ns.load(Ordering::Relaxed)),
                    failing_buckets: Default::default(),
                });
            }
            axum::Json(status).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("status: {e}\n")).into_response(),
    }
}

/// `/changes` scans running at once; each is bounded (`crate::changes`).
const MAX_CHANGE_SCANS: usize = 2;

/// Pending changes as JSON lines, one bounded page per request (see
/// `crate::changes`); at most `MAX_CHANGE_SCANS` scans run at once, more
/// get 503 with `Retry-After`.
async fn changes(
    State(state): State<Arc<AppState>>,
    axum::extract::Query(query): axum::extract::Query<ChangesQuery>,
) -> axum::response::Response {
    let page = match Page::new(query) {
        Ok(page) => page,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let Ok(permit) = state.change_scans.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "busy: too many /changes requests at once; retry\n",
        )
            .into_response();
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let (index, zone) = (state.index.clone(), state.zone.clone());
    tokio::spawn(async move {
        let _permit = permit;
        if let Err(e) = page.stream(index, &zone, tx).await {
            tracing::warn!(error = %e, "/changes: reading the index failed");
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

/// With `http.token` set, every endpoint but `/healthz` needs it as a
/// bearer token.
async fn require_token(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let Some(token) = &state.token else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| crate::capture::notify::server::strip_scheme(v, "Bearer"));
    if request.uri().path() == "/healthz" || given.is_some_and(|g| token.matches(g.as_bytes())) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "http.token is set: send it as Authorization: Bearer <token>\n",
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready once the index answers and the rgw source has its positions.
async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, String) {
    if let Err(e) = state.index.stats().await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("index: {e}\n"));
    }
    if let Some(c) = &state.snapshot.capture {
        if !c.initialized.load(Ordering::Relaxed) {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "rgw source: not connected yet\n".into(),
            );
        }
    }
    (StatusCode::OK, "ready\n".into())
}

/// Binds the listener (so a port in use fails `zonelog run` at once) and
/// returns the server future, which ends when `shutdown` turns true.
pub async fn serve(
    listen: SocketAddr,
    token: Option<crate::config::Secret>,
    observed: Observed,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<impl std::future::Future<Output = std::io::Result<()>>> {
    let (registry, snapshot) = registry(&observed);
    let state = Arc::new(AppState {
        zone: observed.zone,
        token: token.filter(|t| !t.is_empty()),
        change_scans: Arc::new(tokio::sync::Semaphore::new(MAX_CHANGE_SCANS)),
        index: observed.index,
        leases: observed.leases,
        rgw_configured: observed.rgw_configured,
        registry,
        snapshot,
    });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/changes", get(changes))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {listen} (http.listen): {e}"),
        )
    })?;
    Ok(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await
    })
}

/// Caps glibc's malloc arenas at two. Index reads run on tokio's blocking
/// threads, and glibc gives each new thread its own arena that keeps its
/// freed memory: a 5 M-entry collector round peaked at 226 MB RSS with the
/// default and at 152 MB with two arenas, at the same throughput
/// (docs/benchmarks.md). Call it first thing in `main`, before threads exist.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator tuning; it is called before
        // any other thread is started, and M_ARENA_MAX with a positive value
        // is a documented, always-valid setting.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
