//! `zonelog backup`: reads the log objects in name (= time) order and
//! applies each change to a second S3 system, so a nightly backup copies
//! only what changed instead of listing whole buckets.
//!
//! Progress is a checkpoint (log object, records done) stored at the
//! destination after each batch. Everything a batch does is idempotent —
//! copy an object again, delete an absent one — so a crash anywhere
//! replays at most one batch and ends where an uninterrupted run ends.

pub mod dest;
pub use crate::s3;
pub mod verify;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use futures::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::{BackupConfig, DeletePolicy};
use crate::logs::{LogObject, LogReader, LogRecord};
use crate::record::Op;
use crate::target::Target;
use dest::Destination;
use s3::{ObjectInfo, S3Error, S3};

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

/// Where the backup stands: every record of every log object before
/// `log_object`, and the first `records_done` records of it, are applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Checkpoint {
    pub v: u32,
    pub zone: String,
    pub log_object: String,
    pub records_done: u64,
    pub object_done: bool,
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

/// How a pass reports progress (a terminal bar, or log lines).
pub trait Progress: Send + Sync {
    fn pass_started(&self, log_objects: u64);
    fn record_applied(&self);
    fn object_done(&self, name: &str);
    fn pass_done(&self);
}

/// The key a change is stored under with `policy = "versions"`: the
/// source key, `@`, and the record id, so a listing of `KEY@` shows the
/// object's history oldest first. Where that is over S3's 1024 bytes (a
/// source key near the limit), the key is cut to fit and marked with `~`
/// and 16 hex digits of its SHA-256: `PREFIX~HASH@ID`. The record id alone
/// keeps every name unique; the hash tells which long key it was.
pub fn versioned_key(key: &str, record_id: &str) -> String {
    let full = format!("{key}@{record_id}");
    if full.len() <= MAX_KEY_BYTES {
        return full;
    }
    use sha2::{Digest, Sha256};
    let digest = hex::encode(&Sha256::digest(key.as_bytes())[..8]);
    let mut cut = MAX_KEY_BYTES
        .saturating_sub(record_id.len() + digest.len() + 2)
        .min(key.len());
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}~{digest}@{record_id}", &key[..cut])
}

/// S3's limit on a key, in bytes (RGW's too).
pub const MAX_KEY_BYTES: usize = 1024;

/// User metadata added to every copy, so `verify` can compare multipart
/// copies (whose ETag depends on part sizes) with their source.
pub const SOURCE_ETAG_META: &str = "zonelog-source-etag";
const OP_META: &str = "zonelog-op";

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

    pub fn checkpoint_name(&self) -> String {
        format!("zonelog-backup/{}/checkpoint.json", self.zone)
    }

    /// S3 requests sent to the source and the destination so far.
    pub fn requests(&self) -> (u64, u64) {
        (self.source.requests(), self.dest.requests())
    }

    pub async fn load_checkpoint(&self) -> Result<Option<Checkpoint>, BackupError> {
        let name = self.checkpoint_name();
        let Some(bytes) = self.dest.load_state(&name).await? else {
            return Ok(None);
        };
        let checkpoint: Checkpoint =
            serde_json::from_slice(&bytes).map_err(|e| BackupError::Checkpoint {
                name: name.clone(),
                reason: e.to_string(),
            })?;
        if checkpoint.zone != self.zone {
            return Err(BackupError::Checkpoint {
                name,
                reason: format!(
                    "it belongs to zone {:?}, not {:?}",
                    checkpoint.zone, self.zone
                ),
            });
        }
        Ok(Some(checkpoint))
    }

    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), BackupError> {
        let bytes = serde_json::to_vec(checkpoint).unwrap_or_default();
        self.dest
            .save_state(&self.checkpoint_name(), bytes.into())
            .await?;
        Ok(())
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

    /// Applies a batch in log order. A bucket-level change (a removed
    /// bucket) is a barrier: what came before it is applied first, what
    /// came after it (a bucket created again under the name) afterwards.
    async fn apply_batch(&self, batch: Vec<LogRecord>) -> Result<(), BackupError> {
        let mut objects = Vec::new();
        for record in batch {
            if record.op.is_bucket_level() {
                self.apply_objects(std::mem::take(&mut objects)).await?;
                self.apply_with_retry(&record).await?;
            } else {
                objects.push(record);
            }
        }
        self.apply_objects(objects).await
    }

    /// Applies object changes: changes to different objects run in
    /// parallel, the changes of one object in log order.
    async fn apply_objects(&self, batch: Vec<LogRecord>) -> Result<(), BackupError> {
        if batch.is_empty() {
            return Ok(());
        }
        futures::stream::iter(in_order_groups(batch))
            .map(|changes| async move {
                for change in &changes {
                    self.apply_with_retry(change).await?;
                }
                Ok::<_, BackupError>(())
            })
            .buffer_unordered(self.config.parallelism)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn apply_with_retry(&self, change: &LogRecord) -> Result<(), BackupError> {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            match self.apply(change).await {
                Ok(()) => {
                    self.stats.changes.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) if e.kind == s3::S3ErrorKind::Unstorable => {
                    tracing::error!(record = %change.id, bucket = %change.bucket, key = %change.key.escape_debug(),
                        op = change.op.as_str(), error = %e,
                        "backup: the destination cannot hold this key; set aside (it stays in its log object), going on");
                    self.stats.set_aside.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) if e.is_transient() && attempt < 8 => {
                    tracing::warn!(error = %e, attempt, "retrying");
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn apply(&self, change: &LogRecord) -> Result<(), S3Error> {
        let bucket = self.config.destination.bucket_for(&change.bucket);
        let policy = self.config.policy;
        match change.op {
            Op::Put | Op::Metadata => {
                let key = match policy {
                    DeletePolicy::Versions => versioned_key(&change.key, &change.id),
                    _ => change.key.clone(),
                };
                self.copy(change, change.version_id.as_deref(), &bucket, &key)
                    .await
            }
            Op::Delete | Op::DeleteMarker | Op::BucketRemoved => match policy {
                DeletePolicy::Retain => {
                    self.stats.retained.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                // History is kept: a tombstone; a removed bucket's (its key
                // is empty) is listed under `@` beside the objects' own.
                DeletePolicy::Versions => {
                    let mut info = ObjectInfo::default();
                    info.metadata
                        .insert(OP_META.into(), change.op.as_str().into());
                    self.dest
                        .put(
                            &bucket,
                            &versioned_key(&change.key, &change.id),
                            &info,
                            ByteStream::from_static(b""),
                        )
                        .await?;
                    self.stats.deleted.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                DeletePolicy::Mirror if change.op == Op::BucketRemoved => {
                    self.empty_bucket(&bucket).await
                }
                DeletePolicy::Mirror => {
                    // Removing one version of a versioned object can make
                    // an older version current again: mirror whatever is
                    // current now.
                    let removed_one_version =
                        change.op == Op::Delete && change.version_id.is_some();
                    if removed_one_version
                        && self
                            .source
                            .head(&change.bucket, &change.key)
                            .await?
                            .is_some()
                    {
                        return self.copy(change, None, &bucket, &change.key).await;
                    }
                    self.dest.delete(&bucket, &change.key).await?;
                    self.stats.deleted.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
            },
        }
    }

    /// `mirror` of a removed bucket: everything the destination holds for
    /// it goes, as it went at the source.
    async fn empty_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        loop {
            // Listed again from the start after each page of deletes: a
            // continuation would point into what was just removed.
            let (page, more) = self.dest.list_page(bucket, None).await?;
            if page.is_empty() {
                return Ok(());
            }
            for listed in &page {
                self.dest.delete(bucket, &listed.key).await?;
                self.stats.deleted.fetch_add(1, Ordering::Relaxed);
            }
            if more.is_none() {
                return Ok(());
            }
        }
    }

    /// Streams one object (version) from the source to the destination.
    async fn copy(
        &self,
        change: &LogRecord,
        version_id: Option<&str>,
        dest_bucket: &str,
        dest_key: &str,
    ) -> Result<(), S3Error> {
        // `versions` files a put under its own id: from an unversioned
        // source, only if the key still holds what that put wrote (its
        // ETag, or nothing newer than its time); otherwise a later put in
        // the log holds the newer content, and this one is skipped.
        let unchanged = (self.config.policy == DeletePolicy::Versions
            && version_id.is_none()
            && change.op == Op::Put)
            .then(|| match change.etag.as_deref().filter(|e| !e.is_empty()) {
                Some(etag) => s3::Unchanged::Etag(format!("\"{}\"", s3::bare_etag(etag))),
                None => s3::Unchanged::Since(change.time),
            });
        let Some((mut info, body)) = self
            .source
            .get_if(&change.bucket, &change.key, version_id, unchanged.as_ref())
            .await?
        else {
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(bucket = %change.bucket, key = %change.key, "gone at the source; a later change covers it");
            return Ok(());
        };
        if let Some(etag) = &info.etag {
            let bare = s3::bare_etag(etag).to_string();
            info.metadata.insert(SOURCE_ETAG_META.into(), bare);
        }
        let written = self.dest.put(dest_bucket, dest_key, &info, body).await?;
        self.stats.copied.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes.fetch_add(written, Ordering::Relaxed);
        Ok(())
    }
}

/// A batch split into groups that are applied in parallel, each in log
/// order: the changes of one object, joined with those of every key that
/// is a "directory" of it or it of them (`a`, `a/`, `a/b`). A directory
/// destination can hold only one of such keys (docs/backup.md), and which
/// one must follow the log, not timing.
fn in_order_groups(batch: Vec<LogRecord>) -> Vec<Vec<LogRecord>> {
    let mut ids: HashMap<(String, String), usize> = HashMap::new();
    let mut of_record = Vec::with_capacity(batch.len());
    for record in &batch {
        let next = ids.len();
        let id = *ids
            .entry((record.bucket.clone(), record.key.clone()))
            .or_insert(next);
        of_record.push(id);
    }
    let mut parent: Vec<usize> = (0..ids.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for ((bucket, key), &id) in &ids {
        for (at, _) in key.match_indices('/') {
            if let Some(&ancestor) = ids.get(&(bucket.clone(), key[..at].to_string())) {
                let (a, b) = (root(&mut parent, ancestor), root(&mut parent, id));
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut slot_of_root: HashMap<usize, usize> = HashMap::new();
    let mut groups: Vec<Vec<LogRecord>> = Vec::new();
    for (record, id) in batch.into_iter().zip(of_record) {
        let r = root(&mut parent, id);
        let slot = *slot_of_root.entry(r).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[slot].push(record);
    }
    groups
}

/// Whether a record may be applied at all: its bucket must be a name a
/// bucket can have (it becomes a path at a directory destination and a
/// bucket or key at an S3 one), and an object change must name an object.
fn applicable(record: &LogRecord) -> Result<(), String> {
    crate::record::check_bucket_name(&record.bucket).map_err(|e| e.to_string())?;
    if record.op.is_bucket_level() != record.key.is_empty() {
        return Err(format!(
            "a {} record with key {:?}",
            record.op.as_str(),
            record.key
        ));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn put(bucket: &str, key: &str, n: u64) -> LogRecord {
        serde_json::from_value(serde_json::json!({
            "v": 2, "id": format!("{n:020}"), "time": "2026-12-03T00:00:00Z", "zone": "z",
            "bucket": bucket, "key": key, "version_id": null, "op": "put",
            "source": {"type": "test"},
        }))
        .expect("record")
    }

    #[test]
    fn keys_that_are_directories_of_each_other_are_applied_in_log_order() {
        let batch = [
            ("b", "a/b"),
            ("b", "x"),
            ("b", "a"),
            ("c", "a"),
            ("b", "a/"),
            ("b", "x2/y"),
            ("b", "a/b"),
            ("b", "ab"),
        ]
        .iter()
        .enumerate()
        .map(|(n, (bucket, key))| put(bucket, key, n as u64))
        .collect();
        let groups: Vec<Vec<(String, String)>> = in_order_groups(batch)
            .into_iter()
            .map(|g| g.into_iter().map(|r| (r.bucket, r.key)).collect())
            .collect();
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(b, k)| (b.to_string(), k.to_string()))
                .collect()
        };
        assert_eq!(
            groups,
            [
                pairs(&[("b", "a/b"), ("b", "a"), ("b", "a/"), ("b", "a/b")]),
                pairs(&[("b", "x")]),
                pairs(&[("c", "a")]),
                pairs(&[("b", "x2/y")]),
                pairs(&[("b", "ab")]),
            ]
        );
    }

    #[test]
    fn a_versions_name_over_1024_bytes_is_cut_to_fit_and_stays_unique() {
        let id = "01796000000000000001-0000000000000001";
        assert_eq!(versioned_key("doc", id), format!("doc@{id}"));
        let long = "é".repeat(600);
        let name = versioned_key(&long, id);
        assert!(name.len() <= MAX_KEY_BYTES, "{}", name.len());
        assert!(name.ends_with(&format!("@{id}")));
        let (prefix, rest) = name.split_once('~').expect("marked");
        assert!(long.starts_with(prefix));
        assert_eq!(rest.len(), 16 + 1 + id.len());
        let other = versioned_key(&format!("{long}x"), id);
        assert_ne!(name, other, "another long key with the same prefix");
    }
}
