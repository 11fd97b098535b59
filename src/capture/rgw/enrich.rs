//! `enrich`: what a bucket-index log entry does not say of a put or a
//! metadata change (size, ETag, mtime, storage class, content type,
//! encryption, checksum, user metadata and, with `enrich_tags`, tags),
//! from a HEAD of the object version, and the guards that keep what
//! another change wrote off a record.

use std::sync::atomic::Ordering;

use super::admin::AdminError;
use super::mapping::unescape_object_name;
use super::tail::{BucketShard, CaptureError, RgwCapture};
use crate::record::{ChangeRecord, Op};
use crate::s3::S3ErrorKind;

impl RgwCapture {
    /// Adds size, etag and mtime from a HEAD of the object version. A
    /// version gone by now, or replaced since, keeps the record as it is: a
    /// later record says what happened to it.
    pub(super) async fn enrich(&self, record: &mut ChangeRecord) -> Result<(), CaptureError> {
        if !matches!(record.op, Op::Put | Op::Metadata) {
            return Ok(());
        }
        let head = self
            .admin
            .s3()
            .head_version(&record.bucket, &record.key, record.version_id.as_deref())
            .await;
        let info = match head {
            Ok(Some(info)) => info,
            Ok(None) => return Ok(()),
            // Another user's object (403), or one RGW will not describe
            // without what only its writer has (an SSE-C object without
            // the customer's key: 400): the record stands without the
            // fields. Failing the poll instead would retry it forever.
            Err(e) if matches!(e.kind, S3ErrorKind::Denied | S3ErrorKind::Refused) => {
                tracing::warn!(bucket = %record.bucket, key = %record.key.escape_debug(), error = %e, "rgw capture: enrich refused; record kept without size, etag and the other details");
                return Ok(());
            }
            Err(e) => return Err(AdminError::from(e).into()),
        };
        let mtime = info.last_modified;
        // Without a version id the HEAD answers whatever is current now.
        // The change's time is its object's mtime; a Last-Modified (whole
        // seconds) of another second is another object, whose size and
        // ETag must not be attached to this change.
        if record.version_id.is_none()
            && mtime.map(|m| m.timestamp()) != Some(record.time.timestamp())
        {
            self.counters.enrich_stale.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        record.size = Some(info.size);
        record.etag = info
            .etag
            .as_deref()
            .map(|v| crate::s3::bare_etag(v).to_string());
        record.mtime = mtime;
        let tags = if self.config.enrich_tags {
            self.object_tags(record).await?
        } else {
            None
        };
        let details = &mut record.details;
        // RGW names no class for its default one.
        details.storage_class = Some(info.storage_class.unwrap_or_else(|| "STANDARD".into()));
        details.content_type = info.content_type;
        details.encryption = info.encryption;
        details.checksum_algorithm = info.checksum_algorithm;
        details.user_metadata = Some(
            info.metadata
                .into_iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value))
                .collect(),
        );
        details.tags = tags;
        record.drop_invalid_details();
        Ok(())
    }

    /// `enrich_tags`: the version's tags, `None` when it is gone or they
    /// may not be read (the record then carries none, rather than none
    /// presented as "no tags").
    async fn object_tags(
        &self,
        record: &ChangeRecord,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, CaptureError> {
        match self
            .admin
            .s3()
            .object_tags(&record.bucket, &record.key, record.version_id.as_deref())
            .await
        {
            Ok(tags) => Ok(tags),
            Err(e) if matches!(e.kind, S3ErrorKind::Denied | S3ErrorKind::Refused) => Ok(None),
            Err(e) => Err(AdminError::from(e).into()),
        }
    }

    /// HEAD answers what an unversioned key holds now, and its
    /// Last-Modified has whole seconds: a put of the key made in the same
    /// second, after this page was read, would pass for the page's own.
    /// So, after the HEADs, the log after the page is read once more (one
    /// request per page), and a key it names again keeps no size, etag or
    /// mtime. Pacific lists a put still under way as `pending`, so it is
    /// seen even before it completes; later releases log it when it
    /// completes, right after its object is in place.
    pub(super) async fn unenrich_overwritten_since(
        &self,
        bs: &BucketShard,
        after: &str,
        records: &mut [ChangeRecord],
    ) -> Result<(), CaptureError> {
        let enriched = |r: &ChangeRecord| r.version_id.is_none() && r.size.is_some();
        if !records.iter().any(enriched) {
            return Ok(());
        }
        let later = match self.admin.bilog_list(bs, Some(after)).await {
            Ok(page) => page,
            // Gone: a later read settles the bucket; the record stands.
            Err(AdminError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let named_again: std::collections::HashSet<String> = later
            .entries
            .iter()
            .filter_map(|e| unescape_object_name(&e.object))
            .collect();
        for record in records.iter_mut() {
            if enriched(record) && named_again.contains(&record.key) {
                record.size = None;
                record.etag = None;
                record.mtime = None;
                let d = &mut record.details;
                d.storage_class = None;
                d.content_type = None;
                d.encryption = None;
                d.checksum_algorithm = None;
                d.user_metadata = None;
                d.tags = None;
                self.counters.enrich_stale.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// For each record, whether it is an unversioned change that a later
/// record of the same key follows. HEAD answers what such a key holds now,
/// which is then not what this change wrote, even within the same second.
pub(super) fn overwritten_later(records: &[ChangeRecord]) -> Vec<bool> {
    let mut later = std::collections::HashSet::new();
    let mut overwritten: Vec<bool> = records
        .iter()
        .rev()
        // Only unversioned changes enter `later` (`&&` stops first).
        .map(|r| r.version_id.is_none() && !later.insert(r.key.as_str()))
        .collect();
    overwritten.reverse();
    overwritten
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unversioned_change_followed_by_its_key_is_overwritten() {
        use crate::index::conformance::record;
        let records = [
            record("b", "k", None, Op::Put, 1),
            record("b", "v", Some("1"), Op::Put, 2),
            record("b", "k", None, Op::Put, 3),
            record("b", "v", Some("2"), Op::Put, 4),
            record("b", "other", None, Op::Put, 5),
        ];
        assert_eq!(
            overwritten_later(&records),
            vec![true, false, false, false, false]
        );
    }
}
