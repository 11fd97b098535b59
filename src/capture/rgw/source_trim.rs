//! `trim_source`: zonelog trims RGW's data log and bucket-index logs up to
//! the positions committed in the index, as a multisite sync peer does.
//! Each trim is recorded before it is made, so that the trim checks tell
//! zonelog's own trims from trims by someone else.

use std::time::Instant;

use super::admin::AdminError;
use super::tail::{
    position_name, trimmed_marker_name, BucketShard, RgwCapture, DATALOG_PREFIX, FINISHED,
};
use crate::index::WriteBatch;

impl RgwCapture {
    /// `trim_source = true`: trims RGW's data log and the bilogs of the
    /// recently active bucket shards up to the positions committed in the
    /// index, as a sync peer does, every `trim_interval`. Everything up to
    /// those positions is durable in the index, so nothing can be lost; a
    /// failed trim only leaves RGW's logs longer and is retried later.
    pub(super) async fn trim_source_logs(&self) {
        {
            let mut last = self.last_trim.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < self.config.trim_interval) {
                return;
            }
            *last = Some(Instant::now());
        }
        let mut failures = Vec::new();
        match self.index.markers(DATALOG_PREFIX).await {
            Ok(markers) => {
                for m in markers {
                    let Ok(shard) = m.name[DATALOG_PREFIX.len()..].parse::<u32>() else {
                        continue;
                    };
                    let Ok(marker) = String::from_utf8(m.value) else {
                        continue;
                    };
                    if marker.is_empty() {
                        continue;
                    }
                    // Trimmed only with an entry after our position, which
                    // is noted: the next read then tells this trim from a
                    // further one (`datalog_read_complete`) and need not
                    // catch up. With none, the shard waits for one.
                    let next = match self.admin.datalog_first_after(shard, Some(&marker)).await {
                        Ok(Some(next)) => next,
                        Ok(None) => continue,
                        Err(e) => {
                            failures.push(e);
                            continue;
                        }
                    };
                    // Recorded first, as for the bilogs below.
                    let noted = WriteBatch::new()
                        .marker(
                            super::trims::datalog_trimmed_name(shard),
                            marker.clone().into_bytes(),
                        )
                        .marker(
                            super::trims::datalog_trimmed_next_name(shard),
                            next.into_bytes(),
                        );
                    if let Err(e) = self.index.write(noted).await {
                        tracing::warn!(error = %e, "rgw capture: cannot record a trim; not trimming");
                        continue;
                    }
                    if let Err(e) = self.admin.datalog_trim(shard, &marker).await {
                        failures.push(e);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "rgw capture: cannot read positions to trim the source");
                return;
            }
        }
        let active: Vec<BucketShard> = self
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for bs in active {
            match self.stored_marker(&position_name(&bs)).await {
                Ok(Some(marker)) if !marker.is_empty() && marker != FINISHED => {
                    // Recorded before the trim: a trim that then fails
                    // leaves the entry in place, which speaks for itself.
                    let noted = WriteBatch::new()
                        .marker(trimmed_marker_name(&bs), marker.clone().into_bytes());
                    if let Err(e) = self.index.write(noted).await {
                        tracing::warn!(error = %e, "rgw capture: cannot record a trim; not trimming");
                        continue;
                    }
                    if let Err(e) = self.admin.bilog_trim(&bs, &marker).await {
                        if !matches!(e, AdminError::NotFound { .. }) {
                            failures.push(e);
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(first) = failures.first() {
            tracing::warn!(failed = failures.len(), error = %first, "rgw capture: trimming the source's logs failed; retried after trim_interval");
        }
    }
}
