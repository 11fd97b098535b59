//! Which shards a poll reads when probes watch the logs in RADOS: the
//! data-log shards and recently active bucket shards the probes report
//! changed, and the safety net under the data-log probe, which reads one
//! more shard in turn and turns a probe that misses entries off.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::probe::Sweep;
use super::tail::{BucketShard, RgwCapture};

/// With a probe, one data-log shard is read over REST this often whatever
/// the probe says, in turn: a wrong probe costs at most one full turn
/// (128 shards: about 21 minutes) of latency, never a change.
pub const SAFETY_NET_INTERVAL: Duration = Duration::from_secs(10);

/// The probe's safety net, which also checks the probe: a shard the net
/// read, not the probe, that had new entries must be reported changed by
/// the next sweep (its signature was taken before the entries were read);
/// if it is not, the probe watches the wrong objects and is turned off.
#[derive(Default)]
pub(super) struct SafetyNet {
    next_turn: u32,
    last: Option<Instant>,
    /// The shard the net added to the current poll.
    pub(super) reading: Option<u32>,
    /// Shards with entries the probe did not report, to check.
    pub(super) to_verify: Vec<u32>,
    probe_off: bool,
}

impl RgwCapture {
    /// The recently active bucket shards to drain in this poll: all, or
    /// with an index probe those whose index object changed (or could not
    /// be read).
    pub(super) async fn active_shards_to_drain(
        &self,
        active: Vec<BucketShard>,
    ) -> Vec<BucketShard> {
        let Some(probe) = self.index_probe.clone() else {
            return active;
        };
        let asked = active.clone();
        match tokio::task::spawn_blocking(move || probe.changed(&asked)).await {
            Ok(changed) => active
                .into_iter()
                .zip(changed)
                .filter_map(|(bs, changed)| changed.then_some(bs))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "rgw capture: the index probe stopped; reading every active shard");
                active
            }
        }
    }

    /// The shards the trim check must look at: `Some` with a working
    /// probe (those it reported changed since the last check), `None` for
    /// all of them. Taking them starts the next period.
    pub(super) fn take_changed_since_trim_check(&self) -> Option<BTreeSet<u32>> {
        self.probe.as_ref()?;
        let mut changed = self
            .changed_since_trim_check
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let taken = changed.take();
        if taken.is_some() {
            *changed = Some(BTreeSet::new());
        }
        taken
    }

    /// Notes what a sweep reported (`None`: everything, as when the probe
    /// failed or is off), for the next trim check.
    fn note_changed_for_trim_check(&self, changed: Option<&[u32]>) {
        let mut noted = self
            .changed_since_trim_check
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match (changed, noted.as_mut()) {
            (Some(shards), Some(set)) => set.extend(shards),
            // Not known which changed: the next check looks at every shard.
            (None, _) => *noted = None,
            (Some(_), None) => {}
        }
    }

    /// The data-log shards to read in this poll: all of them, or with a
    /// probe those it found changed plus the safety net's turn.
    pub(super) async fn datalog_shards_to_read(&self, shards: u32) -> Vec<u32> {
        let Some(probe) = self.probe.clone() else {
            return (0..shards).collect();
        };
        if self
            .safety_net
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .probe_off
        {
            self.note_changed_for_trim_check(None);
            return (0..shards).collect();
        }
        self.counters.probe_sweeps.fetch_add(1, Ordering::Relaxed);
        let swept = tokio::task::spawn_blocking(move || probe.sweep(shards)).await;
        let mut changed = match swept {
            Ok(Ok(Sweep::Changed(changed))) => {
                self.note_changed_for_trim_check(Some(&changed));
                changed
            }
            Ok(Ok(Sweep::All)) => {
                self.note_changed_for_trim_check(None);
                return (0..shards).collect();
            }
            Ok(Err(e)) => {
                self.note_changed_for_trim_check(None);
                self.counters.probe_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "rgw capture: the data-log probe failed; reading every shard");
                return (0..shards).collect();
            }
            Err(e) => {
                self.note_changed_for_trim_check(None);
                self.counters.probe_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "rgw capture: the data-log probe stopped; reading every shard");
                return (0..shards).collect();
            }
        };
        let mut net = self.safety_net.lock().unwrap_or_else(|p| p.into_inner());
        let missed: Vec<u32> = std::mem::take(&mut net.to_verify)
            .into_iter()
            .filter(|shard| !changed.contains(shard))
            .collect();
        if !missed.is_empty() {
            self.counters.probe_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                shards = ?missed,
                "rgw capture: the data-log probe did not see entries RGW listed; it is turned off, \
                 every shard is read on every poll (check [sources.rgw.rados] log_pool)"
            );
            net.probe_off = true;
            drop(net);
            self.note_changed_for_trim_check(None);
            return (0..shards).collect();
        }
        net.reading = None;
        if shards > 0 && net.last.is_none_or(|t| t.elapsed() >= SAFETY_NET_INTERVAL) {
            let turn = net.next_turn % shards;
            net.next_turn = turn + 1;
            net.last = Some(Instant::now());
            if !changed.contains(&turn) {
                changed.push(turn);
                net.reading = Some(turn);
            }
        }
        changed
    }
}
