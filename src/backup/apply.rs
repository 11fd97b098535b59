//! How the changes of a batch are applied at the destination: in log
//! order per object (and per key that is a "directory" of another), in
//! parallel across objects, each by the delete policy, with retries of
//! transient failures.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use futures::{StreamExt as _, TryStreamExt as _};

use super::s3::{self, ObjectInfo, S3Error};
use super::{Backup, BackupError};
use crate::config::DeletePolicy;
use crate::logs::LogRecord;
use crate::record::Op;

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

impl Backup {
    /// Applies a batch in log order. A bucket-level change (a removed
    /// bucket) is a barrier: what came before it is applied first, what
    /// came after it (a bucket created again under the name) afterwards.
    pub(super) async fn apply_batch(&self, batch: Vec<LogRecord>) -> Result<(), BackupError> {
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
pub(super) fn applicable(record: &LogRecord) -> Result<(), String> {
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
