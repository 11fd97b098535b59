//! Where capture starts: on the first start, every data-log shard and
//! every matching bucket's index log positioned at its end (`initialize`;
//! `rgw/initialized` once all of it is recorded), and after a restart a
//! catch-up on every bucket shard with a stored position.

use futures::stream::{self, StreamExt};

use super::admin::AdminError;
use super::full_sync::LISTING_PREFIX;
use super::generations::{generation_marker_name, shard_ids};
use super::tail::{
    datalog_marker_name, parse_bucket_shard, position_name, BucketShard, CaptureError, PollReport,
    RgwCapture, BILOG_PREFIX, FINISHED, INITIALIZED,
};
use crate::config::InitialSync;
use crate::index::WriteBatch;

impl RgwCapture {
    /// After a start, drains every bucket shard with a stored position once.
    /// The shards a previous process was following may have changed again
    /// without a new data-log entry (RGW re-logs a shard only when its
    /// window renews), and that process's list of active shards died with
    /// it. A shard the data log named but that had nothing to read yet has
    /// an empty position for this reason (see `drain`).
    pub(super) async fn catch_up(&self) -> Result<PollReport, CaptureError> {
        self.catch_up_where(|_| true).await
    }

    /// Drains the bucket shards with a stored position that `wanted`.
    pub(super) async fn catch_up_where(
        &self,
        wanted: impl Fn(&BucketShard) -> bool,
    ) -> Result<PollReport, CaptureError> {
        let known: Vec<BucketShard> = self
            .index
            .markers(BILOG_PREFIX)
            .await?
            .iter()
            .filter(|m| m.value != FINISHED.as_bytes())
            .filter_map(|m| parse_bucket_shard(&m.name[BILOG_PREFIX.len()..]))
            .filter(|bs| self.filter.matches_bucket(&bs.bucket))
            .filter(|bs| wanted(bs))
            .collect();
        let results: Vec<Result<PollReport, CaptureError>> = stream::iter(known)
            .map(|bs| async move { self.drain(&bs).await })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        let mut report = PollReport::default();
        for r in results {
            report.add(&r?);
        }
        Ok(report)
    }

    pub(super) async fn initialize(&self) -> Result<(), CaptureError> {
        const INIT_MARKERS_PER_WRITE: usize = 10_000;
        // Data-log positions first, then bilog positions: a change between
        // the two reads is either before the bilog position (not wanted:
        // it predates the start) or after it, and then also after the
        // data-log position, so it is seen.
        let shards = self.admin.datalog_shard_count().await?;
        // The data-log positions and `INITIALIZED` go in the last write;
        // bucket positions before it in bounded writes (one RADOS op takes
        // so many omap keys, and a zone may have 10 000 buckets × 11
        // shards). Until the last write commits the capture is not
        // initialized, so a crash before it starts over.
        let mut last = WriteBatch::new();
        let positions: Vec<Result<(u32, String, bool), AdminError>> = stream::iter(0..shards)
            .map(|shard| async move {
                let info = self.admin.datalog_info(shard).await?;
                // A shard that holds nothing, or not its last entry, was
                // trimmed through our position already (by RGW, or by an
                // earlier zonelog): noted as such, so that the trim check
                // does not take the next entry after it for a trim past us.
                let trimmed_through = !info.marker.is_empty()
                    && self
                        .admin
                        .datalog_oldest(shard)
                        .await?
                        .is_none_or(|oldest| oldest > info.marker);
                Ok((shard, info.marker, trimmed_through))
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        for position in positions {
            let (shard, marker, trimmed_through) = position?;
            if trimmed_through {
                last = last.marker(
                    super::trims::datalog_trimmed_name(shard),
                    marker.clone().into_bytes(),
                );
            }
            last = last.marker(datalog_marker_name(shard), marker.into_bytes());
        }
        let mut batch = WriteBatch::new();
        let buckets: Vec<String> = self
            .admin
            .list_buckets()
            .await?
            .into_iter()
            .filter(|b| self.filter.matches_bucket(b))
            .collect();
        let mut positioned = 0usize;
        // Several buckets at once (RGW answers each in a few ms, a zone may
        // have 10 000), in order, so the batches stay bounded as before.
        let mut starts = stream::iter(buckets)
            .map(|bucket| async move { self.start_positions(&bucket).await })
            .buffered(self.config.concurrency.max(1));
        while let Some(start) = starts.next().await {
            let Some((markers, shards)) = start? else {
                continue;
            };
            batch.markers.extend(markers.markers);
            positioned += shards;
            if batch.markers.len() >= INIT_MARKERS_PER_WRITE {
                self.index.write(std::mem::take(&mut batch)).await?;
            }
        }
        batch.markers.extend(last.markers);
        let initial = match self.config.initial {
            InitialSync::Now => "now",
            InitialSync::Full => "full",
        };
        batch = batch.marker(INITIALIZED, initial.as_bytes().to_vec());
        self.index.write(batch).await?;
        tracing::info!(
            datalog_shards = shards,
            bucket_shards = positioned,
            initial,
            "rgw capture: first start; positions recorded, capturing changes from now on"
        );
        Ok(())
    }

    /// The markers that position `bucket` at the end of its logs on a
    /// first start, and how many bucket shards they position; `None` when
    /// the bucket was removed since it was listed.
    async fn start_positions(
        &self,
        bucket: &str,
    ) -> Result<Option<(WriteBatch, usize)>, CaptureError> {
        let instance = match self.admin.bucket_instance(bucket).await {
            Ok(i) => i,
            // Removed since the listing: nothing to position.
            Err(AdminError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // Positions in the newest generation; the older ones predate
        // the start and are done as far as zonelog is concerned. One
        // request names the generation and every shard's position.
        let whole = self
            .admin
            .bilog_info_of_bucket(bucket, &instance.instance_id)
            .await?;
        let latest_gen = whole.latest_gen;
        let positions = match whole.shard_positions(instance.num_shards) {
            Some(positions) => positions,
            None => {
                let mut positions = Vec::new();
                for shard in shard_ids(instance.num_shards) {
                    let bs = BucketShard {
                        gen: latest_gen,
                        ..BucketShard::first(bucket, &instance.instance_id, shard)
                    };
                    positions.push((
                        shard,
                        self.admin.bilog_info(&bs).await?.position().to_string(),
                    ));
                }
                positions
            }
        };
        let mut batch = Self::with_instance_created(WriteBatch::new(), &instance);
        if latest_gen > 0 {
            batch = batch.marker(
                generation_marker_name(bucket, &instance.instance_id),
                latest_gen.to_string().into_bytes(),
            );
        }
        let positioned = positions.len();
        for (shard, position) in positions {
            let bs = BucketShard {
                gen: latest_gen,
                ..BucketShard::first(bucket, &instance.instance_id, shard)
            };
            batch = batch.marker(position_name(&bs), position.into_bytes());
        }
        if self.config.initial == InitialSync::Full {
            // Listed after the positions above are committed, so a
            // change during the listing is seen by the logs as well.
            batch = batch.marker(format!("{LISTING_PREFIX}{bucket}"), Vec::new());
        }
        Ok(Some((batch, positioned)))
    }
}
