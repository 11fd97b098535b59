//! `zonelog run`: the capture sources, the collector and the HTTP
//! endpoints until SIGINT or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::watch;
use zonelog::capture::rgw::probe::ProbeSource;
use zonelog::capture::rgw::{RgwAdmin, RgwCapture};
use zonelog::config::{Config, IndexBackend};
use zonelog::filter::Filter;
use zonelog::lease::process_holder_id;

use super::signals::StopSignals;
use super::wiring::{collector, open_index, rgw_client, OpenIndex};

/// Runs a source behind its lease (several instances on one RADOS index):
/// this instance runs a fresh one from `make` while it holds `lease`.
fn spawn_leased<C, F>(
    tasks: &mut tokio::task::JoinSet<()>,
    lease: &'static str,
    make: F,
    index: &OpenIndex,
    cfg: &Config,
    shutdown: watch::Receiver<bool>,
) where
    C: zonelog::capture::leased::Capture + 'static,
    F: Fn(Arc<dyn zonelog::index::ChangeIndex>) -> C + Send + Sync + 'static,
{
    let (shared, leases, ttl) = (
        index.index.clone(),
        index.leases.clone(),
        cfg.collector.lease_duration,
    );
    tasks.spawn(async move {
        zonelog::capture::leased::run_leased(
            lease,
            make,
            shared,
            leases,
            process_holder_id(),
            ttl,
            shutdown,
        )
        .await
    });
}

pub(crate) async fn run(cfg: &Config, mut stop_signals: StopSignals) -> Result<ExitCode> {
    let index = open_index(cfg).await?;
    let (stop, shutdown) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut capture_counters = None;
    let mut notify_counters = None;
    if let Some(notify) = &cfg.sources.notify {
        if cfg.index.backend == IndexBackend::Rados {
            // The index is shared: one instance receives, the others keep
            // their socket bound and stand by.
            use zonelog::capture::notify::server::{bind, LeasedReceiver};
            let listener = Arc::new(bind(notify)?);
            let counters = Arc::new(zonelog::capture::notify::NotifyCounters::default());
            notify_counters = Some(counters.clone());
            let (filter, notify) = (Filter::new(&cfg.filter), notify.clone());
            let make = move |fenced| LeasedReceiver {
                listener: listener.clone(),
                config: notify.clone(),
                index: fenced,
                filter: filter.clone(),
                counters: counters.clone(),
            };
            spawn_leased(
                &mut tasks,
                zonelog::capture::leased::NOTIFY_LEASE,
                make,
                &index,
                cfg,
                shutdown.clone(),
            );
        } else {
            let server = zonelog::capture::notify::start(
                notify,
                index.index.clone(),
                Filter::new(&cfg.filter),
                shutdown.clone(),
            )
            .await?;
            tracing::info!(listen = %server.local_addr, "notify: receiving S3 event notifications on POST /v1/events");
            notify_counters = Some(server.counters.clone());
            tasks.spawn(async move {
                if let Err(e) = server.run().await {
                    tracing::error!(error = %e, "notify receiver failed");
                }
            });
        }
    }
    if let Some(rgw) = &cfg.sources.rgw {
        let (client, _) = rgw_client(cfg)?;
        let probes = match rgw.rados.clone() {
            Some(rados) => Some(Arc::new(
                tokio::task::spawn_blocking(move || ProbeSource::connect(&rados))
                    .await
                    .context("sources.rgw.rados: the connection task stopped")?
                    .context("sources.rgw.rados")?,
            )),
            None => None,
        };
        let with_probes = move |capture: RgwCapture| match &probes {
            Some(probes) => capture.with_probes(probes),
            None => capture,
        };
        let capture = with_probes(RgwCapture::new(
            RgwAdmin::new(client.clone()),
            index.index.clone(),
            Filter::new(&cfg.filter),
            rgw.clone(),
        ));
        let counters = capture.counters.clone();
        capture_counters = Some(counters.clone());
        let shutdown = shutdown.clone();
        if cfg.index.backend == IndexBackend::Rados {
            // The index is shared: one instance captures, the others stand by.
            let (filter, rgw) = (Filter::new(&cfg.filter), rgw.clone());
            let make = move |fenced| {
                let mut capture = with_probes(RgwCapture::new(
                    RgwAdmin::new(client.clone()),
                    fenced,
                    filter.clone(),
                    rgw.clone(),
                ));
                capture.counters = counters.clone();
                capture
            };
            spawn_leased(
                &mut tasks,
                zonelog::capture::leased::CAPTURE_LEASE,
                make,
                &index,
                cfg,
                shutdown,
            );
        } else {
            tasks.spawn(async move { capture.run(shutdown).await });
        }
    }
    let collector = match &cfg.target {
        Some(_) => Some(Arc::new(collector(cfg, &index)?)),
        None => None,
    };
    if let Some(collector) = collector.clone() {
        let shutdown = shutdown.clone();
        tasks.spawn(async move { collector.run(shutdown).await });
    }
    let observed = zonelog::ops::Observed {
        zone: cfg.zone.clone(),
        index: index.index.clone(),
        leases: index.leases.clone(),
        rgw_configured: cfg.sources.rgw.is_some(),
        capture: capture_counters,
        notify: notify_counters,
        collector: collector.as_ref().map(|c| c.counters.clone()),
    };
    let server = zonelog::ops::serve(
        cfg.http.listen,
        cfg.http.token.clone(),
        observed,
        shutdown.clone(),
    )
    .await?;
    tasks.spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "http server failed");
        }
    });
    tracing::info!(zone = %cfg.zone, index = %index.location, "zonelog running");
    stop_signals.wait().await?;
    tracing::info!("shutting down: finishing the batch in flight");
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    if let Some(collector) = collector {
        collector.release().await;
    }
    drop(index);
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
