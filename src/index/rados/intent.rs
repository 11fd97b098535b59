//! Intents of batches in flight, their "applied" keys and their recovery
//! (module docs, "Atomicity").

use std::collections::BTreeSet;

use super::layout::{APPLIED_PREFIX, INTENT_PREFIX, MARKER_PREFIX};
use super::write::Prepared;
use super::{Inner, RadosIndex};
use crate::index::{Fence, IndexError, SourceMarker, WriteBatch};
use crate::rados::{OmapRead, WriteOp};

impl RadosIndex {
    /// Test hook for crash tests: writes the batch's intent and only the
    /// first `shards_applied` of its shard parts, then stops — what a
    /// writer killed at that moment leaves behind.
    #[doc(hidden)]
    pub async fn write_and_stop(
        &self,
        batch: WriteBatch,
        shards_applied: usize,
    ) -> Result<(), IndexError> {
        let (prepared, markers, _) = self.prepare(batch)?;
        self.blocking(move |inner| inner.write_partial(prepared, markers, shards_applied))
            .await
    }
}

impl Inner {
    fn write_partial(
        &self,
        entries: Vec<Prepared>,
        markers: Vec<SourceMarker>,
        shards_applied: usize,
    ) -> Result<(), IndexError> {
        let txid = self.new_txid()?;
        let mut op = WriteOp::new();
        op.set(
            format!("{INTENT_PREFIX}{txid}"),
            encode_intent(&entries, &markers),
        );
        self.io
            .operate(&self.control, &op)
            .map_err(|e| self.err(e))?;
        let shards: BTreeSet<u32> = entries.iter().map(|e| e.shard).collect();
        let keep: BTreeSet<u32> = shards.into_iter().take(shards_applied).collect();
        let part: Vec<Prepared> = entries
            .into_iter()
            .filter(|e| keep.contains(&e.shard))
            .collect();
        let mut written = vec![None; part.len()];
        self.write_shards(&part, Some(&txid), None, &mut written)?;
        Ok(())
    }

    pub(super) fn new_txid(&self) -> Result<String, IndexError> {
        let mut s = self
            .session
            .lock()
            .map_err(|_| IndexError::Backend("session lock poisoned".into()))?;
        if s.id == 0 {
            // No session yet: take one, so the id is ours alone (a stale
            // session is still ours: nobody else ever gets its number).
            s.id = self.next_number()?;
            s.next = 0;
            s.stale = false;
        }
        let n = self.txns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Session numbers are unique per open, the counter per open.
        Ok(format!("{:010}-{n:016x}", s.id))
    }

    /// Markers and the intent's removal in one op, if the intent is still
    /// there; false when someone else finished it first.
    pub(super) fn finish_intent(
        &self,
        intent_key: &str,
        intent: &[u8],
        markers: &[SourceMarker],
        fence: Option<&Fence>,
    ) -> Result<bool, IndexError> {
        let mut op = WriteOp::new();
        Self::fence_guard(&mut op, fence);
        op.cmp_eq(intent_key, intent.to_vec());
        for m in markers {
            op.set(format!("{MARKER_PREFIX}{}", m.name), m.value.clone());
        }
        op.rm(intent_key);
        match self.io.operate(&self.control, &op) {
            Ok(()) => Ok(true),
            Err(e) if e.is_canceled() => self.fenced_or(fence, false),
            Err(e) => Err(self.err(e)),
        }
    }

    /// The batch's "applied" keys are no longer needed once its intent is
    /// gone; they leave with the next op on their shard.
    pub(super) fn forget_txn(&self, entries: &[Prepared], txid: &str) {
        let shards: BTreeSet<u32> = entries.iter().map(|e| e.shard).collect();
        if let Ok(mut done) = self.done_txns.lock() {
            for shard in shards {
                done.entry(shard)
                    .or_default()
                    .push(format!("{APPLIED_PREFIX}{txid}"));
            }
        }
    }

    pub(super) fn take_done(&self, shard: u32) -> Vec<String> {
        self.done_txns
            .lock()
            .ok()
            .and_then(|mut d| d.remove(&shard))
            .unwrap_or_default()
    }

    pub(super) fn give_back_done(&self, shard: u32, keys: Vec<String>) {
        if keys.is_empty() {
            return;
        }
        if let Ok(mut done) = self.done_txns.lock() {
            done.entry(shard).or_default().extend(keys);
        }
    }

    /// Finishes every batch whose writer stopped between its intent and
    /// its markers: writes the shard parts not applied yet, then the
    /// markers. Safe against a writer that is still alive: each part and
    /// the markers are applied at most once, by whoever comes first.
    pub(super) fn recover(&self) -> Result<u64, IndexError> {
        // First every floor moves past every session handed out so far: a
        // writer of the previous holder frozen mid-batch fails its next
        // shard op and must then prove its fence (`write_shards`), which
        // fails, because the new holder took its token before calling us.
        self.watermark()?;
        let mut finished = 0;
        loop {
            let (pairs, _) = self
                .io
                .omap_read(
                    &self.control,
                    &OmapRead::Range {
                        start_after: "",
                        prefix: INTENT_PREFIX,
                        max: 16,
                    },
                )
                .map_err(|e| self.err(e))?;
            if pairs.is_empty() {
                return Ok(finished);
            }
            for (key, intent) in pairs {
                let key = String::from_utf8(key).map_err(|_| {
                    IndexError::Corrupt(format!("{}: non-text intent key", self.location))
                })?;
                let txid = key[INTENT_PREFIX.len()..].to_string();
                let (entries, markers) = decode_intent(&intent).ok_or_else(|| {
                    IndexError::Corrupt(format!("{}: intent {txid} is unreadable", self.location))
                })?;
                let mut written = vec![None; entries.len()];
                self.write_shards(&entries, Some(&txid), None, &mut written)?;
                self.finish_intent(&key, &intent, &markers, None)?;
                // Its "applied" keys stay: the stopped writer may still be
                // alive with a newer session (another role of its process
                // took one), and only they stop it from applying a part a
                // second time. A few keys per recovered batch.
                tracing::info!(batch = %txid, entries = entries.len(), "rados index: finished a batch a stopped writer left half written");
                finished += 1;
            }
        }
    }

    /// With a batch id, a shard op applies only once: it requires the
    /// shard's "applied" key of the batch to be absent and sets it.
    pub(super) fn applied_guard(op: &mut WriteOp, txid: Option<&str>) {
        if let Some(txid) = txid {
            let key = format!("{APPLIED_PREFIX}{txid}");
            // Not empty: an absent key compares equal to the empty value.
            op.cmp_eq(key.clone(), Vec::new()).set(key, b"1".to_vec());
        }
    }

    pub(super) fn applied_elsewhere(
        &self,
        shard: u32,
        txid: Option<&str>,
    ) -> Result<bool, IndexError> {
        let Some(txid) = txid else { return Ok(false) };
        let key = format!("{APPLIED_PREFIX}{txid}");
        Ok(self
            .get(&self.shards[shard as usize], key.as_bytes())?
            .is_some())
    }
}

/// `u32 markers (u32 len, name, u32 len, value)*, u32 entries (u32 shard,
/// u64 time_ns, u32 len, data, u32 len + 1 or 0, version key)*`, little-endian.
pub(super) fn encode_intent(entries: &[Prepared], markers: &[SourceMarker]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + entries.iter().map(|e| e.data.len() + 64).sum::<usize>());
    let put = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    };
    out.extend_from_slice(&(markers.len() as u32).to_le_bytes());
    for m in markers {
        put(&mut out, m.name.as_bytes());
        put(&mut out, &m.value);
    }
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        out.extend_from_slice(&e.shard.to_le_bytes());
        out.extend_from_slice(&e.time_ns.to_le_bytes());
        put(&mut out, &e.data);
        match &e.vkey {
            Some(v) => {
                out.extend_from_slice(&(v.len() as u32 + 1).to_le_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend_from_slice(&0u32.to_le_bytes()),
        }
    }
    out
}

fn decode_intent(bytes: &[u8]) -> Option<(Vec<Prepared>, Vec<SourceMarker>)> {
    struct R<'a>(&'a [u8]);
    impl<'a> R<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if self.0.len() < n {
                return None;
            }
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            Some(a)
        }
        fn u32(&mut self) -> Option<u32> {
            Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
        }
        fn u64(&mut self) -> Option<u64> {
            Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
        }
        fn bytes(&mut self) -> Option<Vec<u8>> {
            let n = self.u32()? as usize;
            Some(self.take(n)?.to_vec())
        }
    }
    let mut r = R(bytes);
    let n = r.u32()?;
    let mut markers = Vec::new();
    for _ in 0..n {
        let name = String::from_utf8(r.bytes()?).ok()?;
        markers.push(SourceMarker {
            name,
            value: r.bytes()?,
        });
    }
    let n = r.u32()?;
    let mut entries = Vec::new();
    for _ in 0..n {
        let shard = r.u32()?;
        let time_ns = r.u64()?;
        let data = r.bytes()?;
        let vkey = match r.u32()? {
            0 => None,
            len => Some(r.take(len as usize - 1)?.to_vec()),
        };
        entries.push(Prepared {
            shard,
            time_ns,
            data,
            vkey,
        });
    }
    r.0.is_empty().then_some((entries, markers))
}
