//! `zonelog backup`: reads the log objects in name (= time) order and
//! applies each change to a second S3 system, so a nightly backup copies
//! only what changed instead of listing whole buckets.
//!
//! Progress is a checkpoint (log object, records done) stored at the
//! destination after each batch. Everything a batch does is idempotent —
//! copy an object again, delete an absent one — so a crash anywhere
//! replays at most one batch and ends where an uninterrupted run ends.

mod apply;
mod checkpoint;
pub mod dest;
mod progress;
pub use crate::s3;
pub mod verify;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use futures::{StreamExt as _, TryStreamExt as _};
use tokio::sync::watch;

use crate::config::BackupConfig;
use crate::logs::{LogObject, LogReader};
use crate::target::Target;
use apply::applicable;
pub use apply::{versioned_key, MAX_KEY_BYTES, SOURCE_ETAG_META};
pub use checkpoint::Checkpoint;
use dest::Destination;
pub use progress::{BarProgress, LogProgress, Progress};
use s3::{S3Error, S3};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error("log target {target}: {what}: {reason}")]
    Logs {
        target: String,
        what: String,
        reason: String,
    },
    #[error("log object {object}, line {line}: {reason}")]
    Record {
        object: String,
        line: u64,
        reason: String,
    },
    #[error("checkpoint {name} at the destination is unreadable: {reason}; remove it to start over from the first log object")]
    Checkpoint { name: String, reason: String },
}

/// Counters of a run, shared with the progress display.
#[derive(Debug, Default)]
pub struct BackupStats {
    pub log_objects: AtomicU64,
    pub changes: AtomicU64,
    pub copied: AtomicU64,
    pub deleted: AtomicU64,
    pub retained: AtomicU64,
    /// Puts whose object (or version) is gone at the source: a later
    /// record in the log covers it.
    pub skipped: AtomicU64,
    /// Records no destination may apply (a bucket name no bucket can
    /// have, written by an older zonelog or by hand): reported with their
    /// log object and line, and passed over so the backup goes on.
    pub set_aside: AtomicU64,
    pub bytes: AtomicU64,
    pub retries: AtomicU64,
}

impl BackupStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

pub struct Backup {
    zone: String,
    config: BackupConfig,
    logs: LogReader,
    source: S3,
    dest: Arc<dyn Destination>,
    pub stats: Arc<BackupStats>,
    /// Set on shutdown: the pass stops at the next checkpoint, so a stop
    /// leaves no half-written multipart upload behind.
    stopping: AtomicBool,
}

impl Backup {
    pub fn new(
        zone: &str,
        config: BackupConfig,
        logs: Target,
        source: S3,
        dest: Arc<dyn Destination>,
    ) -> Backup {
        Backup {
            zone: zone.to_string(),
            config,
            logs: LogReader::new(logs),
            source,
            dest,
            stats: Arc::default(),
            stopping: AtomicBool::new(false),
        }
    }

    /// S3 requests sent to the source and the destination so far.
    pub fn requests(&self) -> (u64, u64) {
        (self.source.requests(), self.dest.requests())
    }

    /// Fails early, naming the endpoint, when one of the three ends cannot
    /// be read with the configured keys.
    pub async fn check_access(&self) -> Result<(), BackupError> {
        self.source.list_buckets().await?;
        self.load_checkpoint().await?;
        self.list_log_objects(None).await?;
        Ok(())
    }

    /// Log objects after `after`, oldest first (log names sort by time).
    async fn list_log_objects(&self, after: Option<&str>) -> Result<Vec<LogObject>, BackupError> {
        self.logs
            .list(Some(&self.zone), after)
            .await
            .map_err(|e| self.logs_error("list log objects".into(), &e))
    }

    fn logs_error(&self, what: String, reason: &dyn std::fmt::Display) -> BackupError {
        BackupError::Logs {
            target: self.logs.target().describe().to_string(),
            what,
            reason: reason.to_string(),
        }
    }

    /// Applies every log object not yet applied; returns how many it read.
    pub async fn pass(&self, progress: &dyn Progress) -> Result<u64, BackupError> {
        let checkpoint = self.load_checkpoint().await?;
        let mut todo: Vec<(LogObject, u64)> = Vec::new();
        let after = match &checkpoint {
            Some(c) if !c.object_done => {
                let object = self.logs.object(&c.log_object).map_err(|_| {
                    self.logs_error(format!("read {}", c.log_object), &"not a log object name")
                })?;
                todo.push((object, c.records_done));
                Some(c.log_object.as_str())
            }
            Some(c) => Some(c.log_object.as_str()),
            None => None,
        };
        todo.extend(
            self.list_log_objects(after)
                .await?
                .into_iter()
                .map(|object| (object, 0)),
        );
        progress.pass_started(todo.len() as u64);
        let count = todo.len() as u64;
        for (object, skip) in todo {
            if !self.apply_log_object(&object, skip, progress).await? {
                break;
            }
            self.stats.log_objects.fetch_add(1, Ordering::Relaxed);
            progress.object_done(&object.key);
            if self.stopping.load(Ordering::Relaxed) {
                break;
            }
        }
        progress.pass_done();
        Ok(count)
    }

    /// One pass (`once`) or follow mode — a pass every `poll_interval` —
    /// until `shutdown`. On shutdown the running pass finishes its batch,
    /// stores the checkpoint and stops. In follow mode a failing pass is
    /// logged and tried again; it never skips a record.
    pub async fn run(
        &self,
        progress: &dyn Progress,
        once: bool,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), BackupError> {
        loop {
            let pass = self.pass(progress);
            tokio::pin!(pass);
            let result = tokio::select! {
                r = &mut pass => r,
                _ = shutdown.wait_for(|stop| *stop) => {
                    self.stopping.store(true, Ordering::Relaxed);
                    pass.await
                }
            };
            match result {
                Err(e) if once => return Err(e),
                Err(e) => {
                    tracing::error!(error = %e, "backup pass failed; trying again after the poll interval")
                }
                Ok(_) => {}
            }
            if once || self.stopping.load(Ordering::Relaxed) {
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
            }
        }
    }

    async fn apply_log_object(
        &self,
        object: &LogObject,
        skip: u64,
        progress: &dyn Progress,
    ) -> Result<bool, BackupError> {
        let name = object.key.as_str();
        let records = self
            .logs
            .records(object)
            .await
            .map_err(|e| self.logs_error(format!("read {name}"), &e))?
            .map_err(|e| BackupError::Record {
                object: e.object,
                line: e.line,
                reason: e.reason,
            });
        let mut records = std::pin::pin!(records);
        let mut done = 0u64;
        let mut batch = Vec::with_capacity(self.config.batch);
        loop {
            let next = records.next().await.transpose()?;
            let end = next.is_none();
            if let Some(record) = next {
                done += 1;
                if done <= skip {
                    continue;
                }
                if let Err(reason) = applicable(&record) {
                    tracing::error!(log_object = %name, line = done, bucket = %record.bucket.escape_debug(),
                        key = %record.key.escape_debug(), %reason,
                        "backup: a record no destination may apply; set aside (it stays in its log object)");
                    self.stats.set_aside.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                batch.push(record);
            }
            if batch.len() >= self.config.batch || (end && !batch.is_empty()) {
                let applied = batch.len();
                self.apply_batch(std::mem::take(&mut batch)).await?;
                for _ in 0..applied {
                    progress.record_applied();
                }
                if !end {
                    self.save_checkpoint(&Checkpoint {
                        v: 1,
                        zone: self.zone.clone(),
                        log_object: name.to_string(),
                        records_done: done,
                        object_done: false,
                    })
                    .await?;
                    if self.stopping.load(Ordering::Relaxed) {
                        return Ok(false);
                    }
                }
            }
            if end {
                break;
            }
        }
        self.save_checkpoint(&Checkpoint {
            v: 1,
            zone: self.zone.clone(),
            log_object: name.to_string(),
            records_done: done,
            object_done: true,
        })
        .await?;
        Ok(true)
    }
}

impl BackupError {
    /// Worth retrying later (follow mode): the endpoint may come back.
    pub fn is_transient(&self) -> bool {
        matches!(self, BackupError::S3(e) if e.is_transient())
    }
}

/// Builds a backup from the whole config.
pub fn from_config(config: &crate::config::Config) -> Result<Backup, String> {
    let backup = config
        .backup
        .clone()
        .ok_or("the config has no [backup] section")?;
    let target = config
        .target
        .as_ref()
        .ok_or("[backup] reads the log objects from [target], which is missing")?;
    let logs = Target::from_config(target).map_err(|e| e.to_string())?;
    let source = S3::from_config("source", &backup.source);
    let dest = dest::from_config(
        &backup.destination,
        backup.multipart_threshold.as_u64(),
        backup.part_size.as_u64() as usize,
    )
    .map_err(|e| e.to_string())?;
    Ok(Backup::new(
        &config.zone,
        backup,
        logs,
        source,
        Arc::from(dest),
    ))
}

impl Backup {
    pub fn source(&self) -> &S3 {
        &self.source
    }
    pub fn destination(&self) -> &Arc<dyn Destination> {
        &self.dest
    }
    pub fn config(&self) -> &BackupConfig {
        &self.config
    }
}
