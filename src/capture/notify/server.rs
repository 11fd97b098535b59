//! The HTTP side of the notify source: `POST /v1/events`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use futures::StreamExt as _;
use tokio::sync::{watch, Semaphore};

use super::event::{self, url_decode};
use super::{Committer, NotifyCounters, NotifyError};
use crate::config::{KeyEncoding, NotifySourceConfig, Secret};
use crate::filter::Filter;
use crate::index::ChangeIndex;

/// Bodies held in memory at once, at least: many small requests run
/// concurrently, a few large ones wait for room.
const MIN_INFLIGHT_BYTES: usize = 64 << 20;

struct Shared {
    token: Secret,
    max_body: usize,
    body_timeout: std::time::Duration,
    encoding: KeyEncoding,
    committer: Committer,
    counters: Arc<NotifyCounters>,
    inflight: Semaphore,
    inflight_kib: u32,
}

type ServeFuture = Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>;

/// A bound, not yet running receiver.
pub struct NotifyServer {
    pub local_addr: SocketAddr,
    pub counters: Arc<NotifyCounters>,
    serve: ServeFuture,
}

impl NotifyServer {
    /// Serves until `shutdown` turns true, then lets the requests in flight
    /// finish and the last commit complete.
    pub async fn run(self) -> std::io::Result<()> {
        self.serve.await
    }
}

/// Binds the listener (a port in use fails `zonelog run` at once), loads
/// the seen-set and starts the committer.
pub async fn start(
    config: &NotifySourceConfig,
    index: Arc<dyn ChangeIndex>,
    filter: Filter,
    shutdown: watch::Receiver<bool>,
) -> Result<NotifyServer, NotifyError> {
    let listener = bind(config)?;
    serve_on(
        listener,
        config,
        index,
        filter,
        shutdown,
        Arc::new(NotifyCounters::default()),
        false,
    )
    .await
}

/// Connections the kernel holds for the receiver before it accepts them.
const LISTEN_BACKLOG: u32 = 1024;

/// The receiver's socket: the one a service manager passed (`LISTEN_FDS`),
/// or a new one bound to `listen`. Called within the tokio runtime.
pub fn bind(config: &NotifySourceConfig) -> Result<std::net::TcpListener, NotifyError> {
    let listen_error = |source| NotifyError::Listen {
        listen: config.listen,
        source,
    };
    let listener = match inherited_listener().map_err(listen_error)? {
        Some(listener) => listener,
        None => {
            // A long backlog, set explicitly: on a standby (RADOS index)
            // the backlog is where pushes wait for the takeover.
            let socket = match config.listen {
                SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
            }
            .map_err(listen_error)?;
            socket.set_reuseaddr(true).map_err(listen_error)?;
            socket.bind(config.listen).map_err(listen_error)?;
            socket
                .listen(LISTEN_BACKLOG)
                .and_then(|l| l.into_std())
                .map_err(listen_error)?
        }
    };
    listener.set_nonblocking(true).map_err(listen_error)?;
    Ok(listener)
}

/// Loads the seen-set, starts the committer and serves on `listener` until
/// `shutdown`. `fenced` (a lease term): requests still in flight at
/// `shutdown` are refused with 503 instead of being stored.
pub async fn serve_on(
    listener: std::net::TcpListener,
    config: &NotifySourceConfig,
    index: Arc<dyn ChangeIndex>,
    filter: Filter,
    mut shutdown: watch::Receiver<bool>,
    counters: Arc<NotifyCounters>,
    fenced: bool,
) -> Result<NotifyServer, NotifyError> {
    let listen_error = |source| NotifyError::Listen {
        listen: config.listen,
        source,
    };
    let listener = tokio::net::TcpListener::from_std(listener).map_err(listen_error)?;
    let local_addr = listener.local_addr().map_err(listen_error)?;
    let (committer, committer_task) = Committer::start(
        index,
        filter,
        config.dedup_events,
        counters.clone(),
        fenced.then(|| shutdown.clone()),
    )
    .await?;
    let max_body = usize::try_from(config.max_body.as_u64()).unwrap_or(usize::MAX);
    let inflight_kib = (max_body.saturating_mul(2).max(MIN_INFLIGHT_BYTES) / 1024)
        .min(Semaphore::MAX_PERMITS)
        .min(u32::MAX as usize) as u32;
    let shared = Arc::new(Shared {
        token: config.token.clone(),
        max_body,
        body_timeout: config.body_timeout,
        encoding: config.key_encoding,
        committer,
        counters: counters.clone(),
        inflight: Semaphore::new(inflight_kib as usize),
        inflight_kib,
    });
    let app = Router::new()
        .route("/v1/events", post(events))
        .with_state(shared);
    let serve = Box::pin(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await;
        // The router (and with it the last committer handle) is gone once
        // serve returns, so the committer drains and ends.
        let _ = committer_task.await;
        result
    });
    Ok(NotifyServer {
        local_addr,
        counters,
        serve,
    })
}

/// The listening socket handed over by a service manager (systemd socket
/// activation: `LISTEN_FDS` ≥ 1, fd 3, `LISTEN_PID` absent or ours).
///
/// Why: RGW 16 stalls a persistent topic's queue for good after one push is
/// refused (connection refused; see docs/decisions.md). When the socket
/// outlives zonelog, pushes made during a restart wait in the kernel's
/// backlog instead and are served by the next process.
fn inherited_listener() -> std::io::Result<Option<std::net::TcpListener>> {
    use std::sync::atomic::AtomicBool;
    static TAKEN: AtomicBool = AtomicBool::new(false);
    let fds = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .is_none_or(|pid| pid.parse::<u32>().ok() == Some(std::process::id()));
    if fds == 0 || !for_us || TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(None);
    }
    #[cfg(unix)]
    {
        use std::os::fd::FromRawFd as _;
        const SD_LISTEN_FDS_START: i32 = 3;
        // SAFETY: the service manager passed fd 3 to this process for us to
        // own (LISTEN_FDS), and TAKEN makes sure it is wrapped only once.
        #[allow(unsafe_code)] // taking ownership of an inherited fd
        let std_listener = unsafe { std::net::TcpListener::from_raw_fd(SD_LISTEN_FDS_START) };
        std_listener.local_addr().map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("LISTEN_FDS is set but fd 3 is not a listening TCP socket: {e}"),
            )
        })?;
        Ok(Some(std_listener))
    }
    #[cfg(not(unix))]
    {
        Ok(None)
    }
}

/// The receiver of one instance among several on a shared (RADOS) index:
/// it serves only while this instance holds [`crate::capture::leased::NOTIFY_LEASE`],
/// loading the seen-set anew each term, so the duplicate memory of the
/// previous holder carries over. The socket stays bound between terms: a
/// sender that reaches a standby instance waits in the kernel's backlog
/// until it takes over, instead of being refused.
pub struct LeasedReceiver {
    pub listener: Arc<std::net::TcpListener>,
    pub config: NotifySourceConfig,
    pub index: Arc<dyn ChangeIndex>,
    pub filter: Filter,
    pub counters: Arc<NotifyCounters>,
}

#[async_trait::async_trait]
impl crate::capture::leased::Capture for LeasedReceiver {
    async fn run(&self, shutdown: watch::Receiver<bool>) {
        let served = async {
            let listener = self
                .listener
                .try_clone()
                .map_err(|source| NotifyError::Listen {
                    listen: self.config.listen,
                    source,
                })?;
            let server = serve_on(
                listener,
                &self.config,
                self.index.clone(),
                self.filter.clone(),
                shutdown,
                self.counters.clone(),
                true,
            )
            .await?;
            tracing::info!(listen = %server.local_addr, "notify: receiving S3 event notifications on POST /v1/events");
            server.run().await.map_err(|source| NotifyError::Listen {
                listen: self.config.listen,
                source,
            })
        };
        if let Err(e) = served.await {
            tracing::error!(error = %e, "notify receiver failed; giving the lease up");
            // Not at once: a failure that repeats should not spin.
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

fn text(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

async fn events(State(state): State<Arc<Shared>>, request: Request) -> Response {
    let started = Instant::now();
    let counters = &state.counters;
    if !authorized(&state.token, request.headers(), request.uri().query()) {
        counters.unauthorized.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::UNAUTHORIZED,
            [
                (
                    header::WWW_AUTHENTICATE,
                    "Bearer realm=\"zonelog\", Basic realm=\"zonelog\"",
                ),
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            ],
            "a valid token is required: Authorization: Bearer TOKEN, basic auth with the token as password, or ?token=TOKEN\n",
        )
            .into_response();
    }
    let too_large = |what: String| {
        counters.too_large.fetch_add(1, Ordering::Relaxed);
        text(StatusCode::PAYLOAD_TOO_LARGE, what)
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > state.max_body) {
        return too_large(format!(
            "the body is larger than the limit of {} bytes (sources.notify.max_body)\n",
            state.max_body
        ));
    }
    let kib =
        (declared.unwrap_or(state.max_body).div_ceil(1024) as u32).clamp(1, state.inflight_kib);
    let Ok(_room) = state.inflight.acquire_many(kib).await else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into());
    };
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    let mut stream = request.into_body().into_data_stream();
    // A sender that trickles its body would hold its share of the in-flight
    // budget forever; senders post small batches, so a generous bound is
    // safe.
    let deadline = tokio::time::Instant::now() + state.body_timeout;
    loop {
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) => {
                counters.malformed.fetch_add(1, Ordering::Relaxed);
                return text(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the body did not arrive within {} (sources.notify.body_timeout)\n",
                        humantime::format_duration(state.body_timeout)
                    ),
                );
            }
        };
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                counters.malformed.fetch_add(1, Ordering::Relaxed);
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}\n"),
                );
            }
        };
        if body.len() + chunk.len() > state.max_body {
            return too_large(format!(
                "the body is larger than the limit of {} bytes (sources.notify.max_body)\n",
                state.max_body
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let parsed = match event::parse(&body, state.encoding) {
        Ok(p) => p,
        Err(e) => {
            counters.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "notify: refused a malformed request");
            return text(
                StatusCode::BAD_REQUEST,
                format!("malformed notification, nothing stored: {e}\n"),
            );
        }
    };
    drop(body);
    if parsed.notifications.len() > state.committer.max_per_request() {
        return too_large(format!(
            "{} records in one request; at most {} are accepted (one atomic commit)\n",
            parsed.notifications.len(),
            state.committer.max_per_request()
        ));
    }
    counters
        .ignored
        .fetch_add(parsed.ignored as u64, Ordering::Relaxed);
    match state.committer.submit(parsed.notifications).await {
        Ok(outcome) => {
            counters.accepted.fetch_add(1, Ordering::Relaxed);
            counters.latency.observe(started.elapsed().as_secs_f64());
            axum::Json(serde_json::json!({
                "stored": outcome.stored,
                "duplicates": outcome.duplicates,
                "filtered": outcome.filtered,
                "ignored": parsed.ignored,
            }))
            .into_response()
        }
        Err(e) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not stored, retry later: {e}\n"),
            )
        }
    }
}

pub(crate) fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// The token as a bearer token, as the password of basic auth (any user),
/// or as `token=` in the query — RGW 16 can neither add a header to its
/// pushes nor keep user:password in an http:// endpoint.
pub fn authorized(token: &Secret, headers: &HeaderMap, query: Option<&str>) -> bool {
    if token.is_empty() {
        return false;
    }
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(bearer) = strip_scheme(value, "Bearer") {
            if token.matches(bearer.as_bytes()) {
                return true;
            }
        }
        if let Some(basic) = strip_scheme(value, "Basic") {
            if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic) {
                if let Some(pos) = decoded.iter().position(|b| *b == b':') {
                    if token.matches(&decoded[pos + 1..]) {
                        return true;
                    }
                }
            }
        }
    }
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| pair.strip_prefix("token="))
        .filter_map(url_decode)
        .any(|given| token.matches(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_in_header_basic_auth_or_query() {
        let token = Secret::new("s3cr3t+/=");
        let mut headers = HeaderMap::new();
        assert!(!authorized(&token, &headers, None));
        headers.insert(header::AUTHORIZATION, "Bearer s3cr3t+/=".parse().unwrap());
        assert!(authorized(&token, &headers, None));
        headers.insert(header::AUTHORIZATION, "bearer wrong".parse().unwrap());
        assert!(!authorized(&token, &headers, None));
        let basic = base64::engine::general_purpose::STANDARD.encode("rgw:s3cr3t+/=");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {basic}").parse().unwrap(),
        );
        assert!(authorized(&token, &headers, None));
        let headers = HeaderMap::new();
        assert!(authorized(
            &token,
            &headers,
            Some("a=1&token=s3cr3t%2B%2F%3D")
        ));
        assert!(!authorized(&token, &headers, Some("token=s3cr3t")));
        assert!(!authorized(&token, &headers, Some("token=%zz")));
        assert!(!authorized(&Secret::new(""), &headers, Some("token=")));
    }
}
