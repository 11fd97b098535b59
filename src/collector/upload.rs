//! Step 2 of a window (see the collector's module docs): the covered
//! entries read from every shard, merged in key order, encoded and
//! compressed on a blocking thread and streamed to the target, then the
//! manifest beside them.

use tokio::sync::mpsc;

use super::keeper::LeaseKeeper;
use super::window::{WindowPlan, WindowState, PENDING};
use super::{Collector, CollectorError};
use crate::index::codec::view_record;
use crate::index::{EncodedEntries, EntryId, IndexedEntry, MergedReader, Watermark};
use crate::logs::{LogObjectName, Manifest, ObjectEncoder, RECORD_VERSION};
use crate::target::Uploaded;

/// Entries per shard page of the merged read: memory is shards × this.
const READ_PAGE: usize = 512;
/// Compressed bytes collected before they are handed to the upload.
const FLUSH_BYTES: usize = 1 << 20;
/// Entries per hand-over from the reading task to the encoding thread.
const ENCODE_BATCH: usize = 1024;
/// Batches (and compressed chunks) in flight between the stages.
const ENCODE_QUEUE: usize = 4;

impl Collector {
    pub(super) async fn first_covered(
        &self,
        cutoff_ns: u64,
        watermark: Watermark,
    ) -> Result<Option<IndexedEntry>, CollectorError> {
        let mut reader =
            MergedReader::new(self.index.clone(), EntryId::MIN, EntryId::at(cutoff_ns), 16);
        while let Some(e) = reader.next().await? {
            if watermark.covers(&e.id) {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    fn covered_reader(&self, plan: &WindowPlan) -> MergedReader {
        MergedReader::new(
            self.index.clone(),
            EntryId::MIN,
            EntryId::at(plan.cutoff_ns),
            READ_PAGE,
        )
    }

    /// Streams the window's entries to the target and writes the manifest.
    pub(super) async fn upload(
        &self,
        plan: &WindowPlan,
        keeper: &LeaseKeeper,
    ) -> Result<WindowState, CollectorError> {
        // The plan's name fixes the encoding, not today's setting: a window
        // resumed after `compression` changed must still be the bytes its
        // name promises.
        let name: LogObjectName = plan
            .object
            .parse()
            .map_err(|e| self.state_error(PENDING, format!("planned object: {e}")))?;
        let index_id = self.index_id(&keeper.fence()).await?;
        self.check_not_foreign(&name, &index_id).await?;
        // A Parquet row group holds about a part of raw data: what the
        // encoder holds before it hands the group's bytes over.
        let part_size = self.config.part_size.as_u64() as usize;
        let encoder = ObjectEncoder::new(&self.zone, name.format, part_size)?;
        let mut upload = self.target.begin(
            &plan.object,
            self.config.multipart_threshold.as_u64() as usize,
            part_size,
        );
        // Three stages at once: this task reads and merges the shards, a
        // blocking thread encodes and compresses (the costliest part), and
        // this task uploads what it produced. Bounded channels keep memory
        // at a few batches and chunks; a failing stage drops its channel
        // ends, which stops the others.
        let (batches, batches_rx) = mpsc::channel::<EncodedEntries>(ENCODE_QUEUE);
        let (chunks_tx, chunks) = mpsc::channel::<Vec<u8>>(ENCODE_QUEUE);
        let encoding =
            tokio::task::spawn_blocking(move || encode_stream(encoder, batches_rx, chunks_tx));
        let mut reader = self.covered_reader(plan);
        let (mut first_id, mut last_id) = (None, None);
        let feed = async {
            let batches = batches;
            let mut fed = 0u64;
            let mut batch = EncodedEntries::new();
            while fed < plan.limit {
                // Entries stay in their stored form up to the encoder, which
                // reads them in place.
                let Some(taken) = reader
                    .next_with(|entry, record| {
                        let covered = plan.watermark.covers(&entry.id);
                        if covered {
                            batch.push(entry, record);
                        }
                        covered.then_some(entry.id)
                    })
                    .await?
                else {
                    break;
                };
                let Some(id) = taken else {
                    continue;
                };
                first_id.get_or_insert(id);
                last_id = Some(id);
                fed += 1;
                if batch.len() == ENCODE_BATCH
                    && batches.send(std::mem::take(&mut batch)).await.is_err()
                {
                    // The encoder stopped; its error is reported below.
                    return Ok(());
                }
            }
            if !batch.is_empty() {
                let _ = batches.send(batch).await;
            }
            Ok::<(), CollectorError>(())
        };
        let send = async {
            let mut chunks = chunks;
            let mut recorded = false;
            while let Some(chunk) = chunks.recv().await {
                keeper.check(plan.number)?;
                upload.write(&chunk).await?;
                if let (false, Some(id)) = (recorded, upload.upload_id()) {
                    let with_id = WindowPlan {
                        upload_id: Some(id.to_string()),
                        ..plan.clone()
                    };
                    self.store(PENDING, &with_id, keeper).await?;
                    recorded = true;
                    crate::testing::stop_point("collector-mid-multipart");
                }
            }
            Ok::<(), CollectorError>(())
        };
        let (fed, sent) = tokio::join!(feed, send);
        let encoded = match encoding.await {
            Ok(result) => result.map_err(CollectorError::from),
            Err(e) => Err(CollectorError::Encode(std::io::Error::other(e.to_string()))),
        };
        let streamed = sent.and(fed).and(encoded).and_then(|count| {
            keeper.check(plan.number)?;
            Ok(count)
        });
        let count = match streamed {
            Ok(count) => count,
            Err(e) => {
                upload.abort().await;
                return Err(e);
            }
        };
        let Uploaded { size, sha256, .. } = upload.finish().await?;
        let first_id = first_id.map(|i| i.to_string()).unwrap_or_default();
        let last_id = last_id.map(|i| i.to_string()).unwrap_or_default();
        let manifest = Manifest {
            v: RECORD_VERSION,
            zone: self.zone.clone(),
            window: plan.number,
            object: plan.object.clone(),
            count,
            first_id: first_id.clone(),
            last_id: last_id.clone(),
            start: crate::record::format_time(&name.start()),
            cutoff: crate::record::format_time(&name.cutoff()),
            bytes: size,
            sha256: sha256.clone(),
            index: index_id,
        };
        let manifest_bytes =
            serde_json::to_vec_pretty(&manifest).map_err(|e| self.state_error("manifest", e))?;
        let manifest_name = name.manifest_name();
        self.target
            .put_small(&manifest_name, manifest_bytes)
            .await?;
        // Durable before the state says `uploaded`, after which the
        // covered entries are trimmed.
        self.target
            .make_durable(&[&plan.object, &manifest_name])
            .await?;
        Ok(WindowState::Uploaded {
            count,
            first_id,
            last_id,
            bytes: size,
            sha256,
        })
    }
}

/// The encoding stage of an upload: JSON Lines and compression of the
/// batches it receives, compressed chunks of about `FLUSH_BYTES` sent on,
/// the encoder's tail last. Returns how many entries it encoded.
fn encode_stream(
    mut encoder: ObjectEncoder,
    mut batches: mpsc::Receiver<EncodedEntries>,
    chunks: mpsc::Sender<Vec<u8>>,
) -> std::io::Result<u64> {
    let stopped = || std::io::Error::other("the upload stopped");
    while let Some(batch) = batches.blocking_recv() {
        for (entry, stored) in batch.iter() {
            let record = view_record(stored).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("index shard {} entry {}: {e}", entry.shard, entry.id),
                )
            })?;
            encoder.push_view(entry.id, &record)?;
        }
        if encoder.buffered() >= FLUSH_BYTES {
            chunks
                .blocking_send(encoder.take_output())
                .map_err(|_| stopped())?;
        }
    }
    let count = encoder.entries();
    let rest = encoder.finish()?;
    chunks.blocking_send(rest).map_err(|_| stopped())?;
    Ok(count)
}
