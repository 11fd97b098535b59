//! Full syncs: a bucket listed in full (every object version), at the
//! first start with `initial = "full"` and whenever its log cannot say
//! what changed (`relist`).

use std::sync::atomic::Ordering;

use super::admin::AdminError;
use super::listing::{list_page, ListPosition};
use super::tail::{CaptureError, PollReport, RgwCapture};
use crate::index::WriteBatch;

/// `rgw/listing/<bucket>`: a full listing to do (empty), in progress (the
/// position after which it continues) or `done`.
pub(super) const LISTING_PREFIX: &str = "rgw/listing/";
const LISTING_DONE: &[u8] = b"done";

impl RgwCapture {
    /// Lists every bucket whose full sync is not done, page by page; each
    /// page's records and the listing position commit together, so a
    /// restart continues the listing where it stopped. A bucket whose
    /// listing RGW refuses (403 for a bucket another user owns, say) is
    /// reported and retried on the next poll; the other buckets go on.
    pub(super) async fn continue_listings(&self) -> Result<PollReport, CaptureError> {
        let mut report = PollReport::default();
        for pending in self.index.markers(LISTING_PREFIX).await? {
            if pending.value == LISTING_DONE {
                continue;
            }
            let bucket = pending.name[LISTING_PREFIX.len()..].to_string();
            match self.list_bucket(&bucket, &pending, &mut report).await {
                Ok(()) => self.counters.bucket_ok(&bucket),
                Err(CaptureError::Rgw(e)) => {
                    tracing::error!(bucket = %bucket, error = %e, "rgw capture: listing a bucket failed; \
                        the other buckets go on, this one is retried on the next poll");
                    self.counters.bucket_failed(&bucket, &e);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    async fn list_bucket(
        &self,
        bucket: &str,
        pending: &crate::index::SourceMarker,
        report: &mut PollReport,
    ) -> Result<(), CaptureError> {
        let mut position = ListPosition::decode(&pending.value);
        let reason = "initial = \"full\": every object version at the first start";
        tracing::info!(bucket = %bucket, resumed = position.is_some(), "rgw capture: full sync of a bucket: listing all object versions");
        loop {
            let (records, next) = list_page(self.admin.s3(), bucket, position.as_ref(), reason)
                .await
                .map_err(AdminError::from)?;
            let mut batch = WriteBatch::new();
            for record in records {
                if self.filter.matches(&record.bucket, &record.key) {
                    self.counters.count_op(record.op);
                    batch.records.push(record);
                } else {
                    report.filtered += 1;
                }
            }
            report.records += batch.records.len() as u64;
            let value = next
                .as_ref()
                .map_or(LISTING_DONE.to_vec(), ListPosition::encode);
            batch = batch.marker(pending.name.clone(), value);
            self.index.write(batch).await?;
            match next {
                Some(n) => position = Some(n),
                None => break,
            }
        }
        tracing::info!(bucket = %bucket, "rgw capture: full sync of the bucket done");
        Ok(())
    }

    /// Adds to `batch` that `bucket` is to be listed again in full (every
    /// resync, whatever its cause, goes through here and is counted).
    pub(super) fn relist(&self, batch: WriteBatch, bucket: &str) -> WriteBatch {
        self.counters.resyncs.fetch_add(1, Ordering::Relaxed);
        batch.marker(format!("{LISTING_PREFIX}{bucket}"), Vec::new())
    }
}
