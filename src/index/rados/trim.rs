//! Trimming entries (and, in latest mode, their version links).

use std::collections::BTreeMap;

use super::layout::{entry_key, num, parse_num, version_key, ENTRY_PREFIX, MAX_ATTEMPTS, REV_KEY};
use super::Inner;
use crate::error::BackendError;
use crate::index::codec::encoded_version_key;
use crate::index::{EntryRef, IndexError, IndexMode};
use crate::rados::{OmapPairs, OmapRead, WriteOp};

impl Inner {
    pub(super) fn trim(&self, refs: Vec<EntryRef>) -> Result<u64, IndexError> {
        let mut by_shard: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for r in refs {
            by_shard.entry(r.shard).or_default().push(entry_key(r.id));
        }
        for keys in by_shard.values_mut() {
            keys.sort();
            keys.dedup();
        }
        let latest = self.layout.mode == IndexMode::Latest;
        let mut removed = 0u64;
        for _ in 0..MAX_ATTEMPTS {
            if by_shard.is_empty() {
                return Ok(removed);
            }
            let key_lists: Vec<Vec<Vec<u8>>> = by_shard
                .values()
                .map(|keys| {
                    let mut list: Vec<Vec<u8>> =
                        keys.iter().map(|k| k.as_bytes().to_vec()).collect();
                    list.push(REV_KEY.as_bytes().to_vec());
                    list
                })
                .collect();
            let reads: Vec<OmapRead<'_>> = key_lists.iter().map(|k| OmapRead::Keys(k)).collect();
            let requests: Vec<(&str, &OmapRead<'_>)> = by_shard
                .keys()
                .zip(&reads)
                .map(|(shard, r)| (self.shards[*shard as usize].as_str(), r))
                .collect();
            let mut found: Vec<(Vec<u8>, OmapPairs)> = Vec::new();
            for r in self.io.omap_read_many(&requests) {
                let (pairs, _) = r.map_err(|e| self.err(e))?;
                let mut rev = Vec::new();
                let mut present = Vec::new();
                for (k, v) in pairs {
                    if k == REV_KEY.as_bytes() {
                        rev = v;
                    } else {
                        present.push((k, v));
                    }
                }
                found.push((rev, present));
            }
            // Latest mode: the version links that still point at a removed
            // entry go with it.
            let mut links: Vec<Vec<(Vec<u8>, Vec<u8>)>> = vec![Vec::new(); found.len()];
            if latest {
                let vkey_lists: Vec<Vec<Vec<u8>>> = found
                    .iter()
                    .map(|(_, present)| {
                        present
                            .iter()
                            .map(|(_, v)| encoded_version_key(v).map(version_key))
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|e| IndexError::Corrupt(format!("{}: {e}", self.location)))?;
                let reads: Vec<OmapRead<'_>> =
                    vkey_lists.iter().map(|k| OmapRead::Keys(k)).collect();
                let requests: Vec<(&str, &OmapRead<'_>)> = by_shard
                    .keys()
                    .zip(&reads)
                    .map(|(shard, r)| (self.shards[*shard as usize].as_str(), r))
                    .collect();
                for (i, r) in self.io.omap_read_many(&requests).into_iter().enumerate() {
                    links[i] = r.map_err(|e| self.err(e))?.0;
                }
            }
            let mut ops = Vec::new();
            let mut counts = Vec::new();
            let mut shards = Vec::new();
            for (i, shard) in by_shard.keys().enumerate() {
                let (rev, present) = &found[i];
                let mut op = WriteOp::new();
                if latest {
                    op.cmp_eq(REV_KEY, rev.clone());
                    let rev_n = parse_num(rev).ok_or_else(|| {
                        IndexError::Corrupt(format!(
                            "{}: shard {shard} has no valid rev",
                            self.location
                        ))
                    })?;
                    op.set(REV_KEY, num(rev_n + 1));
                    let removed_ids: Vec<&[u8]> = present
                        .iter()
                        .map(|(k, _)| &k[ENTRY_PREFIX.len()..])
                        .collect();
                    for (vkey, points_at) in &links[i] {
                        if removed_ids.contains(&points_at.as_slice()) {
                            op.rm(vkey.clone());
                        }
                    }
                }
                for (k, _) in present {
                    op.rm(k.clone());
                }
                if present.is_empty() {
                    // Nothing of this shard is left to trim (RADOS refuses an
                    // empty op).
                    continue;
                }
                counts.push(present.len() as u64);
                shards.push(*shard);
                ops.push((self.shards[*shard as usize].clone(), op));
            }
            by_shard.retain(|shard, _| shards.contains(shard));
            for ((shard, count), result) in
                shards.iter().zip(counts).zip(self.io.operate_many(&ops))
            {
                match result {
                    Ok(()) => {
                        removed += count;
                        by_shard.remove(shard);
                    }
                    Err(e) if e.is_canceled() => {}
                    Err(e) => return Err(self.err(e)),
                }
            }
        }
        Err(IndexError::Backend(BackendError::msg(format!(
            "{}: trims kept failing their compares",
            self.location
        ))))
    }
}
