//! How a backup pass shows its progress: a bar on a terminal, log lines
//! otherwise.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::BackupStats;

/// How a pass reports progress (a terminal bar, or log lines).
pub trait Progress: Send + Sync {
    fn pass_started(&self, log_objects: u64);
    fn record_applied(&self);
    fn object_done(&self, name: &str);
    fn pass_done(&self);
}

/// Progress as log lines (when stderr is not a terminal).
pub struct LogProgress {
    stats: Arc<BackupStats>,
    started: Instant,
}

impl LogProgress {
    pub fn new(stats: Arc<BackupStats>) -> Self {
        LogProgress {
            stats,
            started: Instant::now(),
        }
    }
}

impl Progress for LogProgress {
    fn pass_started(&self, log_objects: u64) {
        if log_objects > 0 {
            tracing::info!(log_objects, "backup: log objects to apply");
        }
    }
    fn record_applied(&self) {}
    fn object_done(&self, name: &str) {
        let s = &self.stats;
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let changes = BackupStats::get(&s.changes);
        tracing::info!(
            log_object = name,
            changes,
            copied = BackupStats::get(&s.copied),
            deleted = BackupStats::get(&s.deleted),
            skipped = BackupStats::get(&s.skipped),
            bytes = BackupStats::get(&s.bytes),
            changes_per_s = (changes as f64 / secs).round(),
            "log object applied"
        );
    }
    fn pass_done(&self) {}
}

/// A progress bar on a terminal: log objects (with ETA), changes, bytes
/// and rate.
pub struct BarProgress {
    bar: indicatif::ProgressBar,
    stats: Arc<BackupStats>,
    started: Instant,
}

impl BarProgress {
    pub fn new(stats: Arc<BackupStats>) -> Self {
        let bar = indicatif::ProgressBar::new(0);
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} log objects · {msg} · ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        BarProgress {
            bar,
            stats,
            started: Instant::now(),
        }
    }

    fn refresh(&self) {
        let s = &self.stats;
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let changes = BackupStats::get(&s.changes);
        self.bar.set_message(format!(
            "{changes} changes, {} copied, {:.0} changes/s",
            bytesize::ByteSize::b(BackupStats::get(&s.bytes)),
            changes as f64 / secs
        ));
    }
}

impl Progress for BarProgress {
    fn pass_started(&self, log_objects: u64) {
        self.bar.set_length(self.bar.position() + log_objects);
        self.refresh();
    }
    fn record_applied(&self) {
        if BackupStats::get(&self.stats.changes).is_multiple_of(100) {
            self.refresh();
        }
    }
    fn object_done(&self, _name: &str) {
        self.bar.inc(1);
        self.refresh();
    }
    fn pass_done(&self) {
        self.refresh();
    }
}

impl Drop for BarProgress {
    fn drop(&mut self) {
        self.bar.finish();
    }
}
