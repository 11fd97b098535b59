//! Writing batches: the group-commit queue and the shard ops of both
//! modes (module docs, "Atomicity" and "Watermark").

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use super::freeze::decode_frozen;
use super::intent::encode_intent;
use super::layout::{
    entry_key, num, parse_num, version_key, APPLIED_PREFIX, FLOOR_KEY, FROZEN_KEY, INTENT_PREFIX,
    MARKER_PREFIX, MAX_ATTEMPTS, REV_KEY,
};
use super::{Inner, RadosIndex};
use crate::error::BackendError;
use crate::index::codec::{encode_record, object_version_key};
use crate::index::{
    shard_of, EntryId, EntryRef, Fence, IndexError, IndexMode, SourceMarker, WriteBatch, Written,
};
use crate::rados::{OmapRead, WriteOp};

/// Group commit: concurrent writes of one instance are merged into one
/// round of shard ops (and one intent), so a shard op carries the entries
/// of many callers — the OSD's ops per second, not entries, bound ingest.
#[derive(Default)]
pub(super) struct WriteQueue {
    pub(super) waiting: Vec<QueuedWrite>,
    pub(super) flushing: bool,
}

pub(super) struct QueuedWrite {
    pub(super) entries: Vec<Prepared>,
    pub(super) markers: Vec<SourceMarker>,
    pub(super) fence: Option<Fence>,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<Vec<Written>, IndexError>>,
}

/// Entries merged into one group at most (as the embedded backend).
const GROUP_MAX_ENTRIES: usize = 50_000;

/// One record of a batch, encoded on the caller's thread.
pub(super) struct Prepared {
    pub(super) shard: u32,
    pub(super) time_ns: u64,
    pub(super) data: Vec<u8>,
    /// `v.` key of the object version (latest mode).
    pub(super) vkey: Option<Vec<u8>>,
}

impl RadosIndex {
    #[allow(clippy::type_complexity)]
    pub(super) fn prepare(
        &self,
        batch: WriteBatch,
    ) -> Result<(Vec<Prepared>, Vec<SourceMarker>, Option<Fence>), IndexError> {
        batch.validate()?;
        for m in &batch.markers {
            if m.name.contains('\0') {
                return Err(IndexError::InvalidMarker {
                    name: m.name.clone(),
                    reason: "a RADOS marker name cannot contain NUL".into(),
                });
            }
        }
        let layout = self.inner.layout;
        let mut prepared = Vec::with_capacity(batch.records.len());
        for (position, record) in batch.records.iter().enumerate() {
            let time_ns = record
                .time_ns()
                .map_err(|reason| IndexError::InvalidRecord { position, reason })?;
            let mut data = Vec::with_capacity(128);
            encode_record(record, &mut data);
            let vkey = (layout.mode == IndexMode::Latest).then(|| {
                version_key(&object_version_key(
                    &record.bucket,
                    &record.key,
                    record.version_id.as_deref(),
                ))
            });
            prepared.push(Prepared {
                shard: shard_of(&record.bucket, &record.key, layout.shards),
                time_ns,
                data,
                vkey,
            });
        }
        Ok((prepared, batch.markers, batch.fence))
    }
}

impl Inner {
    fn write(
        &self,
        entries: Vec<Prepared>,
        markers: Vec<SourceMarker>,
        fence: Option<Fence>,
    ) -> Result<Vec<Written>, IndexError> {
        let fence = fence.as_ref();
        let mut written: Vec<Option<Written>> = vec![None; entries.len()];
        // A fenced batch with entries always takes the intent protocol: its
        // intent op is where the fence is checked before any entry lands.
        if entries.is_empty() || (markers.is_empty() && fence.is_none()) {
            self.write_shards(&entries, None, None, &mut written)?;
            if !markers.is_empty() {
                let mut op = WriteOp::new();
                Self::fence_guard(&mut op, fence);
                for m in &markers {
                    op.set(format!("{MARKER_PREFIX}{}", m.name), m.value.clone());
                }
                match self.io.operate(&self.control, &op) {
                    Ok(()) => {}
                    Err(e) if e.is_canceled() => {
                        self.fenced_or(fence, ())?;
                        return Err(self.err(e));
                    }
                    Err(e) => return Err(self.err(e)),
                }
            }
        } else {
            // Entries and markers: the intent protocol (module docs).
            let txid = self.new_txid()?;
            let intent_key = format!("{INTENT_PREFIX}{txid}");
            let intent = encode_intent(&entries, &markers);
            let mut op = WriteOp::new();
            Self::fence_guard(&mut op, fence);
            op.set(intent_key.clone(), intent.clone());
            match self.io.operate(&self.control, &op) {
                Ok(()) => {}
                Err(e) if e.is_canceled() => {
                    self.fenced_or(fence, ())?;
                    return Err(self.err(e));
                }
                Err(e) => return Err(self.err(e)),
            }
            let all_ours = self.write_shards(&entries, Some(&txid), fence, &mut written)?;
            if !all_ours || !self.finish_intent(&intent_key, &intent, &markers, fence)? {
                return Err(IndexError::Backend(BackendError::msg(format!(
                    "{}: batch {txid} was finished by another instance's recovery; \
                     its markers are committed, retry from them",
                    self.location
                ))));
            }
            self.forget_txn(&entries, &txid);
        }
        written
            .into_iter()
            .map(|w| w.ok_or_else(|| IndexError::Backend("a record was not written".into())))
            .collect()
    }

    /// Writes each shard's part of a batch (with `txid`, each part at most
    /// once); returns false when some part had already been applied by
    /// someone else (a recovering instance).
    pub(super) fn write_shards(
        &self,
        entries: &[Prepared],
        txid: Option<&str>,
        fence: Option<&Fence>,
        written: &mut [Option<Written>],
    ) -> Result<bool, IndexError> {
        let mut by_shard: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (pos, e) in entries.iter().enumerate() {
            by_shard.entry(e.shard).or_default().push(pos);
        }
        let mut foreign = BTreeSet::new();
        let mut at_least = 0;
        let mut attempts = 0;
        while !by_shard.is_empty() {
            attempts += 1;
            if attempts > MAX_ATTEMPTS {
                return Err(IndexError::Backend(BackendError::msg(format!(
                    "{}: shard writes kept failing their compares",
                    self.location
                ))));
            }
            if attempts > 1 {
                // A floor moved past our session: maybe a new holder of our
                // lease took over (it raises every floor first, see
                // `recover`). Prove we still hold it before a new session.
                self.check_fence(fence)?;
            }
            let floors = match self.layout.mode {
                IndexMode::EveryWrite => {
                    self.write_every(entries, &by_shard, at_least, txid, &mut foreign, written)?
                }
                IndexMode::Latest => {
                    self.write_latest(entries, &by_shard, at_least, txid, &mut foreign, written)?
                }
            };
            by_shard.retain(|shard, _| floors.contains_key(shard));
            at_least = floors.values().copied().max().unwrap_or(0);
        }
        Ok(foreign.is_empty())
    }

    /// One round of every-write shard ops; returns the shards whose floor
    /// moved past our session (to retry with a newer one).
    fn write_every(
        &self,
        entries: &[Prepared],
        by_shard: &BTreeMap<u32, Vec<usize>>,
        at_least: u64,
        txid: Option<&str>,
        foreign: &mut BTreeSet<u32>,
        written: &mut [Option<Written>],
    ) -> Result<BTreeMap<u32, u64>, IndexError> {
        let positions: Vec<usize> = by_shard.values().flatten().copied().collect();
        let times: Vec<u64> = positions.iter().map(|p| entries[*p].time_ns).collect();
        let (session, ids) = self.mint(&times, at_least)?;
        let id_of: HashMap<usize, EntryId> = positions.iter().copied().zip(ids).collect();
        let mut ops = Vec::with_capacity(by_shard.len());
        let mut done = Vec::with_capacity(by_shard.len());
        for (shard, list) in by_shard {
            let mut op = WriteOp::new();
            Self::floor_guard(&mut op, session);
            Self::applied_guard(&mut op, txid);
            for p in list {
                op.set(entry_key(id_of[p]), entries[*p].data.clone());
            }
            let old = self.take_done(*shard);
            for k in &old {
                op.rm(k.clone());
            }
            done.push(old);
            ops.push((self.shards[*shard as usize].clone(), op));
        }
        let mut retry = BTreeMap::new();
        let results = self.io.operate_many(&ops);
        for (((shard, list), result), old) in by_shard.iter().zip(results).zip(done) {
            match result {
                Ok(()) => {
                    for p in list {
                        written[*p] = Some(Written::Stored(EntryRef {
                            shard: *shard,
                            id: id_of[p],
                        }));
                    }
                }
                Err(e) if e.is_canceled() => {
                    self.give_back_done(*shard, old);
                    if self.applied_elsewhere(*shard, txid)? {
                        foreign.insert(*shard);
                    } else {
                        retry.insert(*shard, session + 1);
                    }
                }
                Err(e) => {
                    self.give_back_done(*shard, old);
                    return Err(self.err(e));
                }
            }
        }
        Ok(retry)
    }

    /// Latest mode: read each shard's floor, rev and the batch's version
    /// keys, plan replacements, and write guarded by `rev` so a concurrent
    /// writer or trim on the shard makes us re-read instead of clobbering.
    fn write_latest(
        &self,
        entries: &[Prepared],
        by_shard: &BTreeMap<u32, Vec<usize>>,
        at_least: u64,
        txid: Option<&str>,
        foreign: &mut BTreeSet<u32>,
        written: &mut [Option<Written>],
    ) -> Result<BTreeMap<u32, u64>, IndexError> {
        let applied_key = txid.map(|t| format!("{APPLIED_PREFIX}{t}").into_bytes());
        let key_lists: Vec<Vec<Vec<u8>>> = by_shard
            .values()
            .map(|list| {
                let mut keys = vec![
                    FLOOR_KEY.as_bytes().to_vec(),
                    REV_KEY.as_bytes().to_vec(),
                    FROZEN_KEY.as_bytes().to_vec(),
                ];
                keys.extend(applied_key.clone());
                for p in list {
                    if let Some(v) = &entries[*p].vkey {
                        keys.push(v.clone());
                    }
                }
                keys
            })
            .collect();
        let reads: Vec<OmapRead<'_>> = key_lists.iter().map(|k| OmapRead::Keys(k)).collect();
        let requests: Vec<(&str, &OmapRead<'_>)> = by_shard
            .keys()
            .zip(&reads)
            .map(|(shard, r)| (self.shards[*shard as usize].as_str(), r))
            .collect();
        let results = self.io.omap_read_many(&requests);
        let mut stored: Vec<HashMap<Vec<u8>, Vec<u8>>> = Vec::with_capacity(results.len());
        let mut floor_max = at_least;
        for r in results {
            let map: HashMap<Vec<u8>, Vec<u8>> =
                r.map_err(|e| self.err(e))?.0.into_iter().collect();
            if let Some(f) = map.get(FLOOR_KEY.as_bytes()).and_then(|v| parse_num(v)) {
                floor_max = floor_max.max(f);
            }
            stored.push(map);
        }
        let positions: Vec<usize> = by_shard.values().flatten().copied().collect();
        let times: Vec<u64> = positions.iter().map(|p| entries[*p].time_ns).collect();
        let (session, ids) = self.mint(&times, floor_max)?;
        let id_of: HashMap<usize, EntryId> = positions.iter().copied().zip(ids).collect();
        let mut ops = Vec::with_capacity(by_shard.len());
        let mut op_shards = Vec::with_capacity(by_shard.len());
        let mut outcomes: Vec<Vec<(usize, Written)>> = Vec::with_capacity(by_shard.len());
        for ((shard, list), map) in by_shard.iter().zip(&stored) {
            if applied_key.as_ref().is_some_and(|k| map.contains_key(k)) {
                foreign.insert(*shard);
                continue;
            }
            let rev = map.get(REV_KEY.as_bytes()).cloned().unwrap_or_default();
            let rev_n = parse_num(&rev).ok_or_else(|| {
                IndexError::Corrupt(format!("{}: shard {shard} has no valid rev", self.location))
            })?;
            let frozen = map
                .get(FROZEN_KEY.as_bytes())
                .and_then(|v| decode_frozen(v).1);
            let mut op = WriteOp::new();
            op.cmp_eq(REV_KEY, rev.clone());
            Self::floor_guard(&mut op, session);
            Self::applied_guard(&mut op, txid);
            // Version key → (current entry, minted in this batch).
            let mut current: HashMap<&[u8], (EntryId, bool)> = HashMap::new();
            let mut sets: BTreeMap<String, &[u8]> = BTreeMap::new();
            let mut removes: Vec<String> = Vec::new();
            let mut outcome = Vec::with_capacity(list.len());
            for p in list {
                let e = &entries[*p];
                let vkey = e.vkey.as_deref().unwrap_or_default();
                let existing = match current.get(vkey) {
                    Some(c) => Some(*c),
                    None => match map.get(vkey) {
                        Some(v) => Some((
                            std::str::from_utf8(v)
                                .ok()
                                .and_then(|s| s.parse::<EntryId>().ok())
                                .ok_or_else(|| {
                                    IndexError::Corrupt(format!(
                                        "{}: shard {shard}: bad version index value",
                                        self.location
                                    ))
                                })?,
                            false,
                        )),
                        None => None,
                    },
                };
                if let Some((old, minted)) = existing {
                    if old.time_ns > e.time_ns {
                        outcome.push((
                            *p,
                            Written::Superseded(EntryRef {
                                shard: *shard,
                                id: old,
                            }),
                        ));
                        continue;
                    }
                    // Same or newer time: the later arrival is the newer
                    // change; an entry a planned window holds stays.
                    if minted {
                        sets.remove(&entry_key(old));
                    } else if !frozen.is_some_and(|w| w.covers(&old)) {
                        removes.push(entry_key(old));
                    }
                }
                let id = id_of[p];
                sets.insert(entry_key(id), &e.data);
                current.insert(vkey, (id, true));
                outcome.push((*p, Written::Stored(EntryRef { shard: *shard, id })));
            }
            for (k, v) in sets {
                op.set(k, v.to_vec());
            }
            for (vkey, (id, minted)) in &current {
                if *minted {
                    op.set(vkey.to_vec(), id.to_string());
                }
            }
            for k in removes {
                op.rm(k);
            }
            op.set(REV_KEY, num(rev_n + 1));
            ops.push((self.shards[*shard as usize].clone(), op));
            op_shards.push(*shard);
            outcomes.push(outcome);
        }
        let mut retry = BTreeMap::new();
        for ((shard, outcome), result) in op_shards
            .iter()
            .zip(outcomes)
            .zip(self.io.operate_many(&ops))
        {
            match result {
                Ok(()) => {
                    for (p, w) in outcome {
                        written[p] = Some(w);
                    }
                }
                Err(e) if e.is_canceled() => {
                    retry.insert(*shard, 0);
                }
                Err(e) => return Err(self.err(e)),
            }
        }
        Ok(retry)
    }
}

/// Writes waiting groups until the queue is empty: each group's entries
/// and markers in request order, as one batch; each caller gets its part
/// of the result (or the group's error).
pub(super) async fn flush_groups(inner: Arc<Inner>, queue: Arc<Mutex<WriteQueue>>) {
    loop {
        let group: Vec<QueuedWrite> = {
            let Ok(mut q) = queue.lock() else { return };
            if q.waiting.is_empty() {
                q.flushing = false;
                return;
            }
            let mut taken = 0;
            let mut n = 0;
            let fence = q.waiting[0].fence.clone();
            for w in &q.waiting {
                // One fence per group: a stale writer's refusal must not
                // fail another role's writes.
                if n > 0 && (taken + w.entries.len() > GROUP_MAX_ENTRIES || w.fence != fence) {
                    break;
                }
                taken += w.entries.len();
                n += 1;
            }
            q.waiting.drain(..n).collect()
        };
        let mut entries = Vec::new();
        let mut markers = Vec::new();
        let mut replies = Vec::with_capacity(group.len());
        let fence = group.first().and_then(|w| w.fence.clone());
        for w in group {
            replies.push((w.entries.len(), w.reply));
            entries.extend(w.entries);
            markers.extend(w.markers);
        }
        let work = inner.clone();
        let result = tokio::task::spawn_blocking(move || work.write(entries, markers, fence))
            .await
            .unwrap_or_else(|e| Err(IndexError::Backend(BackendError::new("rados task", e))));
        match result {
            Ok(written) => {
                let mut rest = written.into_iter();
                for (count, reply) in replies {
                    let _ = reply.send(Ok(rest.by_ref().take(count).collect()));
                }
            }
            Err(IndexError::Fenced { lease, token }) => {
                // Said here too: the caller may have stopped waiting (its
                // role was told to stop), and this must not go unseen.
                tracing::warn!(error = %IndexError::Fenced { lease: lease.clone(), token }, "rados index: writes of a superseded lease term refused; nothing of them was written");
                for (_, reply) in replies {
                    let _ = reply.send(Err(IndexError::Fenced {
                        lease: lease.clone(),
                        token,
                    }));
                }
            }
            Err(e) => {
                // Every waiter gets the same failure, its cause kept.
                let shared = BackendError::wrap(e);
                for (_, reply) in replies {
                    let _ = reply.send(Err(IndexError::Backend(shared.clone())));
                }
            }
        }
    }
}
