//! The HTTP listener: `/metrics`, `/status`, `/changes`, `/healthz` and
//! `/readyz`, behind the optional bearer token.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use super::metrics::{encode, refresh, registry, Snapshot};
use super::Observed;
use crate::changes::{ChangesQuery, Page};
use crate::index::ChangeIndex;
use crate::lease::LeaseStore;

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
