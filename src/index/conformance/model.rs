//! The model check: random histories of writes, trims and watermarks
//! against a plain in-memory model.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{read_all, record};
use crate::index::{shard_of, ChangeIndex, EntryId, EntryRef, IndexMode, WriteBatch, Written};
use crate::record::{ChangeRecord, Op};

/// One step of a model-checked history (see [`check_against_model`]).
#[derive(Debug, Clone)]
pub enum ModelOp {
    /// Records as (bucket number, key number, version number, time).
    Write(Vec<(u8, u8, Option<u8>, u64)>),
    /// Trims the live entries at these positions of the merged read (modulo
    /// its length), plus every entry trimmed before (which must be no-ops).
    Trim(Vec<usize>),
    /// Takes a watermark, as the collector does when it plans a window.
    Watermark,
    /// `trim_covered` of shard (modulo the shard count) up to a time, under
    /// the last watermark taken.
    TrimCovered(u32, u64),
}

/// Runs `ops` against an empty index and, after every step, checks that a
/// merged read returns exactly the model's live set in key order, that
/// trims remove exactly the live entries asked for, and — in latest mode —
/// that no object version ever has two entries. Used by property tests.
pub async fn check_against_model(index: &Arc<dyn ChangeIndex>, ops: &[ModelOp]) {
    use std::collections::BTreeMap;
    let latest_mode = index.layout().mode == IndexMode::Latest;
    let shards = index.layout().shards;
    let mut live: BTreeMap<(EntryId, u32), ChangeRecord> = BTreeMap::new();
    let mut by_version: BTreeMap<(String, String, Option<String>), (EntryId, u32)> =
        BTreeMap::new();
    let mut trimmed: Vec<EntryRef> = Vec::new();
    let mut watermark = index.watermark().await.expect("watermark");
    // A trim removed exactly the `chosen` live entries: the model forgets
    // them, and later trims name them again (which must remove nothing).
    let forget = |live: &mut BTreeMap<(EntryId, u32), ChangeRecord>,
                  by_version: &mut BTreeMap<_, _>,
                  trimmed: &mut Vec<EntryRef>,
                  removed: u64,
                  chosen: Vec<(EntryId, u32)>| {
        assert_eq!(
            removed,
            chosen.len() as u64,
            "a trim removes exactly the live entries it covers"
        );
        for key in chosen {
            let r = live.remove(&key).expect("chosen from live");
            if latest_mode {
                by_version.remove(&(r.bucket, r.key, r.version_id));
            }
            trimmed.push(EntryRef {
                shard: key.1,
                id: key.0,
            });
        }
    };
    for op in ops {
        match op {
            ModelOp::Watermark => {
                watermark = index.watermark().await.expect("watermark");
            }
            ModelOp::TrimCovered(shard, time) => {
                let shard = shard % shards;
                let to = EntryId::at(*time);
                let chosen: Vec<(EntryId, u32)> = live
                    .keys()
                    .filter(|(id, s)| *s == shard && *id < to && watermark.covers(id))
                    .copied()
                    .collect();
                let removed = index
                    .trim_covered(shard, to, watermark)
                    .await
                    .expect("trim_covered");
                forget(&mut live, &mut by_version, &mut trimmed, removed, chosen);
            }
            ModelOp::Write(records) => {
                let records: Vec<ChangeRecord> = records
                    .iter()
                    .map(|(b, k, v, t)| {
                        record(
                            &format!("bucket-{b}"),
                            &format!("key-{k}"),
                            v.map(|v| format!("v{v}")).as_deref(),
                            Op::Put,
                            *t,
                        )
                    })
                    .collect();
                let mut batch = WriteBatch::new();
                for r in &records {
                    batch = batch.record(r.clone());
                }
                let written = index.write(batch).await.expect("write");
                assert_eq!(written.len(), records.len());
                for (r, w) in records.into_iter().zip(written) {
                    let version = (r.bucket.clone(), r.key.clone(), r.version_id.clone());
                    match w {
                        Written::Stored(at) => {
                            assert_eq!(at.shard, shard_of(&r.bucket, &r.key, shards));
                            assert_eq!(at.id.time_ns, r.time_ns().unwrap());
                            if latest_mode {
                                if let Some(old) = by_version.get(&version) {
                                    assert!(old.0.time_ns <= at.id.time_ns);
                                    live.remove(old);
                                }
                                by_version.insert(version, (at.id, at.shard));
                            }
                            assert!(live.insert((at.id, at.shard), r).is_none(), "unique key");
                        }
                        Written::Superseded(by) => {
                            assert!(latest_mode, "only latest mode supersedes");
                            assert_eq!(by_version.get(&version), Some(&(by.id, by.shard)));
                            assert!(by.id.time_ns > r.time_ns().unwrap());
                        }
                    }
                }
            }
            ModelOp::Trim(positions) => {
                let keys: Vec<(EntryId, u32)> = live.keys().copied().collect();
                let mut chosen: BTreeSet<(EntryId, u32)> = BTreeSet::new();
                if !keys.is_empty() {
                    for p in positions {
                        chosen.insert(keys[p % keys.len()]);
                    }
                }
                let mut refs: Vec<EntryRef> = chosen
                    .iter()
                    .map(|(id, shard)| EntryRef {
                        shard: *shard,
                        id: *id,
                    })
                    .collect();
                refs.extend(trimmed.iter().copied());
                let removed = index.trim(&refs).await.expect("trim");
                forget(
                    &mut live,
                    &mut by_version,
                    &mut trimmed,
                    removed,
                    chosen.into_iter().collect(),
                );
            }
        }
        let all = read_all(index).await;
        let got: Vec<(EntryId, u32, &ChangeRecord)> =
            all.iter().map(|e| (e.id, e.shard, &e.record)).collect();
        let want: Vec<(EntryId, u32, &ChangeRecord)> =
            live.iter().map(|((id, s), r)| (*id, *s, r)).collect();
        assert_eq!(got, want, "reads return exactly the live set, in key order");
        if latest_mode {
            let versions: BTreeSet<_> = all
                .iter()
                .map(|e| (&e.record.bucket, &e.record.key, &e.record.version_id))
                .collect();
            assert_eq!(versions.len(), all.len(), "one entry per object version");
        }
        let stats = index.stats().await.expect("stats");
        assert_eq!(stats.entries(), live.len() as u64);
        assert_eq!(
            stats.oldest_time_ns(),
            live.keys().map(|(id, _)| id.time_ns).min()
        );
    }
}
