//! Operating the service: `/metrics` (Prometheus text format), `/healthz`
//! and `/readyz` on one HTTP listener.
//!
//! Capture and collector keep plain atomic counters on their hot paths; a
//! `prometheus-client` collector turns them into metric families at scrape
//! time, together with a fresh snapshot of the index statistics.

mod families;
mod http;
mod metrics;

pub use http::serve;
pub use metrics::render_metrics;

use std::sync::Arc;

use crate::capture::notify::NotifyCounters;
use crate::capture::rgw::CaptureCounters;
use crate::collector::CollectorCounters;
use crate::index::ChangeIndex;
use crate::lease::LeaseStore;

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

/// Caps glibc's malloc arenas at two. Index reads run on tokio's blocking
/// threads, and glibc gives each new thread its own arena that keeps its
/// freed memory: a 5 M-entry collector round peaked at 226 MB RSS with the
/// default and at 152 MB with two arenas, at the same throughput
/// (docs/benchmarks.md). Call it first thing in `main`, before threads exist.
#[allow(unsafe_code)] // one libc call, see SAFETY below
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
