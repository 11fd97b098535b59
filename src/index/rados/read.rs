//! Reading entries, markers and shard stats.

use super::layout::{entry_key, parse_entry_key, ENTRY_PREFIX, MARKER_PREFIX, READ_PAGE};
use super::Inner;
use crate::index::{
    EncodedEntries, EntryId, EntryRef, IndexError, IndexStats, ShardStats, SourceMarker,
};
use crate::rados::OmapRead;

impl Inner {
    pub(super) fn read_shard(
        &self,
        shard: u32,
        from: EntryId,
        to: EntryId,
        limit: usize,
    ) -> Result<EncodedEntries, IndexError> {
        let oid = &self.shards[shard as usize];
        let from_key = entry_key(from);
        // Keys are fixed width: dropping the last character gives a key
        // just before `from`; the few keys between are filtered below.
        let mut after = from_key[..from_key.len() - 1].to_string();
        let mut out = EncodedEntries::new();
        loop {
            let want = (limit - out.len()).saturating_add(1).min(READ_PAGE) as u64;
            let (pairs, more) = self
                .io
                .omap_read(
                    oid,
                    &OmapRead::Range {
                        start_after: &after,
                        prefix: ENTRY_PREFIX,
                        max: want,
                    },
                )
                .map_err(|e| self.err(e))?;
            let Some((last, _)) = pairs.last() else {
                return Ok(out);
            };
            let last = String::from_utf8(last.clone()).map_err(|_| {
                IndexError::Corrupt(format!("{}: non-text entry key", self.location))
            })?;
            for (k, v) in &pairs {
                let id = parse_entry_key(k).ok_or_else(|| {
                    IndexError::Corrupt(format!("{}: shard {shard}: bad entry key", self.location))
                })?;
                if id < from {
                    continue;
                }
                if id >= to {
                    return Ok(out);
                }
                out.push(EntryRef { shard, id }, v);
                if out.len() == limit {
                    return Ok(out);
                }
            }
            if !more {
                return Ok(out);
            }
            after = last;
        }
    }

    pub(super) fn markers(&self, prefix: &str) -> Result<Vec<SourceMarker>, IndexError> {
        let full = format!("{MARKER_PREFIX}{prefix}");
        let mut after = String::new();
        let mut out = Vec::new();
        loop {
            let (pairs, more) = self
                .io
                .omap_read(
                    &self.control,
                    &OmapRead::Range {
                        start_after: &after,
                        prefix: &full,
                        max: READ_PAGE as u64,
                    },
                )
                .map_err(|e| self.err(e))?;
            for (k, v) in pairs {
                let name = String::from_utf8(k).map_err(|_| {
                    IndexError::Corrupt(format!("{}: non-text marker name", self.location))
                })?;
                after = name.clone();
                out.push(SourceMarker {
                    name: name[MARKER_PREFIX.len()..].to_string(),
                    value: v,
                });
            }
            if !more {
                return Ok(out);
            }
        }
    }

    pub(super) fn stats(&self) -> Result<IndexStats, IndexError> {
        let mut shards = Vec::with_capacity(self.shards.len());
        for (n, oid) in self.shards.iter().enumerate() {
            let mut s = ShardStats {
                shard: n as u32,
                ..ShardStats::default()
            };
            let mut after = String::new();
            loop {
                let (pairs, more) = self
                    .io
                    .omap_read(
                        oid,
                        &OmapRead::Range {
                            start_after: &after,
                            prefix: ENTRY_PREFIX,
                            max: READ_PAGE as u64,
                        },
                    )
                    .map_err(|e| self.err(e))?;
                for (k, v) in &pairs {
                    if s.oldest_time_ns.is_none() {
                        s.oldest_time_ns = parse_entry_key(k).map(|id| id.time_ns);
                    }
                    s.entries += 1;
                    s.bytes += (k.len() + v.len()) as u64;
                }
                match pairs.last() {
                    Some((k, _)) if more => after = String::from_utf8_lossy(k).into_owned(),
                    _ => break,
                }
            }
            shards.push(s);
        }
        Ok(IndexStats { shards })
    }
}
