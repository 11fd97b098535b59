//! `zonelog status`: one screen for an operator — sources with position
//! and lag, the index backlog per shard, the last window written, the
//! collector's lease holder. Served as JSON at `/status` by `zonelog run`
//! (which owns the embedded index) and rendered as text by the CLI.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::capture::leased::{CAPTURE_LEASE, NOTIFY_LEASE};
use crate::capture::rgw::CaptureCounters;
use crate::collector::{window_state, LastWindow};
use crate::index::{ChangeIndex, ShardStats};
use crate::lease::{LeaseStore, CONTROL_LEASE};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub zone: String,
    pub now_ns: u64,
    pub sources: Vec<SourceStatus>,
    pub index: IndexStatus,
    pub last_window: Option<LastWindow>,
    pub pending_window: Option<u64>,
    pub lease: Option<LeaseStatus>,
    /// The capture lease (several instances on one RADOS index): which
    /// instance captures now.
    #[serde(default)]
    pub capture_lease: Option<LeaseStatus>,
    /// The push receiver's lease (several instances on one RADOS index):
    /// which instance receives now.
    #[serde(default)]
    pub notify_lease: Option<LeaseStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceStatus {
    pub name: String,
    pub following: bool,
    pub changes: u64,
    pub errors: u64,
    /// Data-log shards and bucket-index shards with a committed position.
    pub positions: usize,
    pub last_poll_ok_ns: Option<u64>,
    pub newest_change_ns: Option<u64>,
    /// Buckets whose listing or read fails (bucket → last error); each is
    /// retried while the others are captured.
    #[serde(default)]
    pub failing_buckets: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexStatus {
    pub entries: u64,
    pub bytes: u64,
    pub oldest_time_ns: Option<u64>,
    pub shards: Vec<ShardStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardStatus {
    pub shard: u32,
    pub entries: u64,
    pub bytes: u64,
    pub oldest_time_ns: Option<u64>,
}

impl From<&ShardStats> for ShardStatus {
    fn from(s: &ShardStats) -> Self {
        ShardStatus {
            shard: s.shard,
            entries: s.entries,
            bytes: s.bytes,
            oldest_time_ns: s.oldest_time_ns,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseStatus {
    pub holder: String,
    pub token: u64,
    pub expires_in_ms: u64,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

async fn lease_status(leases: &dyn LeaseStore, name: &str) -> Result<Option<LeaseStatus>, String> {
    let lease = leases.holder(name).await.map_err(|e| e.to_string())?;
    Ok(lease.map(|l| LeaseStatus {
        holder: l.holder,
        token: l.token,
        expires_in_ms: l
            .expires_at
            .duration_since(SystemTime::now())
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    }))
}

/// Gathers the status from the index (positions, backlog, windows, lease)
/// and, inside `zonelog run`, from the live capture counters.
pub async fn gather(
    zone: &str,
    index: &dyn ChangeIndex,
    leases: &dyn LeaseStore,
    rgw: Option<&CaptureCounters>,
    rgw_configured: bool,
) -> Result<Status, String> {
    let stats = index.stats().await.map_err(|e| e.to_string())?;
    let mut sources = Vec::new();
    if rgw_configured {
        let positions = index.markers("rgw/").await.map_err(|e| e.to_string())?;
        let following = positions.iter().any(|m| m.name == "rgw/initialized");
        let nonzero = |v: u64| (v > 0).then_some(v);
        sources.push(SourceStatus {
            name: "rgw".into(),
            following,
            changes: rgw.map_or(0, |c| c.changes()),
            errors: rgw.map_or(0, |c| c.errors.load(Ordering::Relaxed)),
            positions: positions
                .iter()
                .filter(|m| m.name != "rgw/initialized")
                .count(),
            last_poll_ok_ns: rgw.and_then(|c| nonzero(c.last_poll_ok_ns.load(Ordering::Relaxed))),
            newest_change_ns: rgw.and_then(|c| nonzero(c.newest_change_ns.load(Ordering::Relaxed))),
            failing_buckets: rgw.map(|c| c.failing()).unwrap_or_default(),
        });
    }
    let (last_window, pending_window) = window_state(index).await.map_err(|e| e.to_string())?;
    let now = now_ns();
    let lease = lease_status(leases, CONTROL_LEASE).await?;
    let capture_lease = lease_status(leases, CAPTURE_LEASE).await?;
    let notify_lease = lease_status(leases, NOTIFY_LEASE).await?;
    Ok(Status {
        zone: zone.to_string(),
        now_ns: now,
        sources,
        index: IndexStatus {
            entries: stats.entries(),
            bytes: stats.bytes(),
            oldest_time_ns: stats.oldest_time_ns(),
            shards: stats.shards.iter().map(ShardStatus::from).collect(),
        },
        last_window,
        pending_window,
        lease,
        capture_lease,
        notify_lease,
    })
}

fn age(now: u64, then: Option<u64>) -> String {
    match then {
        Some(t) => format!("{:.1}s ago", now.saturating_sub(t) as f64 / 1e9),
        None => "never".into(),
    }
}

/// The one-screen text form.
pub fn render(status: &Status) -> String {
    let now = status.now_ns;
    let mut out = String::new();
    let _ = writeln!(out, "zone {}", status.zone);
    let _ = writeln!(out, "\nsources");
    if status.sources.is_empty() {
        let _ = writeln!(out, "  (none configured)");
    }
    for s in &status.sources {
        let _ = writeln!(
            out,
            "  {:<6} {}  positions {}  changes {}  errors {}  last poll {}  newest change {}",
            s.name,
            if s.following {
                "following"
            } else {
                "not started"
            },
            s.positions,
            s.changes,
            s.errors,
            age(now, s.last_poll_ok_ns),
            age(now, s.newest_change_ns),
        );
        for (bucket, error) in &s.failing_buckets {
            let _ = writeln!(out, "    failing bucket {bucket}: {error} (retried)");
        }
    }
    let i = &status.index;
    let _ = writeln!(
        out,
        "\nindex backlog: {} changes, {} bytes, oldest {}",
        i.entries,
        i.bytes,
        age(now, i.oldest_time_ns)
    );
    let busy: Vec<&ShardStatus> = i.shards.iter().filter(|s| s.entries > 0).collect();
    if !busy.is_empty() {
        let _ = writeln!(out, "  shard  entries      bytes  oldest");
        for s in busy {
            let _ = writeln!(
                out,
                "  {:>5}  {:>7}  {:>9}  {}",
                s.shard,
                s.entries,
                s.bytes,
                age(now, s.oldest_time_ns)
            );
        }
    }
    let _ = writeln!(out, "\ncollector");
    match &status.last_window {
        Some(w) => {
            let _ = writeln!(
                out,
                "  last window {}: {} changes, cutoff {}, {}",
                w.number,
                w.count,
                age(now, Some(w.cutoff_ns)),
                w.object
            );
        }
        None => {
            let _ = writeln!(out, "  no window written yet");
        }
    }
    if let Some(n) = status.pending_window {
        let _ = writeln!(out, "  window {n} is planned and not finished yet");
    }
    match &status.lease {
        Some(l) => {
            let _ = writeln!(
                out,
                "  control lease: {} (token {}, {} ms left)",
                l.holder, l.token, l.expires_in_ms
            );
        }
        None => {
            let _ = writeln!(out, "  control lease: free");
        }
    }
    for (name, lease) in [
        ("capture", &status.capture_lease),
        ("notify", &status.notify_lease),
    ] {
        if let Some(l) = lease {
            let _ = writeln!(
                out,
                "  {name} lease: {} (token {}, {} ms left)",
                l.holder, l.token, l.expires_in_ms
            );
        }
    }
    out
}
