//! The data-log probe: a shard's signature is the version of its object
//! and, for a FIFO, the version of its head part; a rollover to a new part
//! rewrites the meta object, so it changes the signature too. Which
//! generation of the log is current, and its storage kind, come from
//! `<prefix>generations_metadata`, whose own version is checked on every
//! sweep. A new or changed layout, and any error, make the caller read
//! every shard.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use thiserror::Error;

use super::decode::{self, DecodeError, FifoHead, LogKind};
use crate::rados::{IoCtx, ObjectStat, RadosError};

/// How much of a FIFO meta object is read: its leading fields, which hold
/// the head part, take about 130 bytes.
const FIFO_META_READ: usize = 1024;
/// The generations object is a few dozen bytes per generation.
const GENERATIONS_READ: usize = 64 * 1024;

#[derive(Debug, Error)]
pub enum ProbeError {
    #[error("data-log probe: {0}")]
    Rados(#[from] RadosError),
    #[error("data-log probe: object {object} does not decode")]
    Decode {
        object: String,
        #[source]
        source: DecodeError,
    },
}

/// What one sweep found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sweep {
    /// The log's layout is new to the probe (the first sweep, a new
    /// generation): read every shard.
    All,
    /// These shards changed (or could not be probed); the others did not.
    Changed(Vec<u32>),
}

/// The versions that change when a shard gets an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Signature {
    object: u64,
    head_part: Option<u64>,
}

#[derive(Default)]
struct ProbeState {
    generations_version: Option<u64>,
    layout: Option<(u64, LogKind)>,
    seen: HashMap<u32, Signature>,
}

/// Probes the data-log shards of one zone through an I/O context on the
/// zone's log pool.
pub struct DatalogProbe {
    io: Arc<IoCtx>,
    prefix: String,
    state: Mutex<ProbeState>,
}

impl DatalogProbe {
    /// `prefix` is RGW's data-log object prefix, `data_log` unless the
    /// zone was set up otherwise.
    pub fn new(io: Arc<IoCtx>, prefix: impl Into<String>) -> Self {
        DatalogProbe {
            io,
            prefix: prefix.into(),
            state: Mutex::new(ProbeState::default()),
        }
    }

    fn shard_oid(&self, generation: u64, shard: u32) -> String {
        if generation == 0 {
            format!("{}.{shard}", self.prefix)
        } else {
            format!("{}@G{generation}.{shard}", self.prefix)
        }
    }

    /// One look at all `shards` (blocking: run it off the async threads).
    pub fn sweep(&self, shards: u32) -> Result<Sweep, ProbeError> {
        let generations_oid = format!("{}generations_metadata", self.prefix);
        let generations = self
            .io
            .stat_many(&[&generations_oid], GENERATIONS_READ)
            .pop()
            .unwrap_or_else(|| Err(RadosError::invalid("stat", &generations_oid)))?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut new_layout = false;
        if state.generations_version != Some(generations.version) || state.layout.is_none() {
            let layout = decode::newest_generation(&generations.head).map_err(|source| {
                ProbeError::Decode {
                    object: generations_oid.clone(),
                    source,
                }
            })?;
            if state.layout != Some(layout) {
                state.seen.clear();
                new_layout = true;
            }
            state.layout = Some(layout);
            state.generations_version = Some(generations.version);
        }
        let Some((generation, kind)) = state.layout else {
            return Ok(Sweep::All);
        };
        let signatures = self.signatures(generation, kind, shards);
        let mut changed = Vec::new();
        for (shard, signature) in (0..shards).zip(signatures) {
            match signature {
                Some(s) => {
                    if state.seen.insert(shard, s) != Some(s) {
                        changed.push(shard);
                    }
                }
                None => {
                    state.seen.remove(&shard);
                    changed.push(shard);
                }
            }
        }
        Ok(if new_layout {
            Sweep::All
        } else {
            Sweep::Changed(changed)
        })
    }

    /// Each shard's signature, `None` where it could not be read (counted
    /// as changed, so read over REST).
    fn signatures(&self, generation: u64, kind: LogKind, shards: u32) -> Vec<Option<Signature>> {
        let oids: Vec<String> = (0..shards)
            .map(|shard| self.shard_oid(generation, shard))
            .collect();
        let refs: Vec<&str> = oids.iter().map(String::as_str).collect();
        let read = match kind {
            LogKind::Omap => 0,
            LogKind::Fifo => FIFO_META_READ,
        };
        let metas = self.io.stat_many(&refs, read);
        if kind == LogKind::Omap {
            return metas
                .into_iter()
                .map(|m| {
                    m.ok().map(|m| Signature {
                        object: m.version,
                        head_part: None,
                    })
                })
                .collect();
        }
        let heads: Vec<Option<(ObjectStat, Option<String>)>> = metas
            .into_iter()
            .map(|m| {
                let m = m.ok()?;
                let head: FifoHead = decode::fifo_head(&m.head).ok()?;
                Some((m, head.head_part_oid()))
            })
            .collect();
        let part_oids: Vec<&str> = heads
            .iter()
            .filter_map(|h| h.as_ref()?.1.as_deref())
            .collect();
        let mut parts = self.io.stat_many(&part_oids, 0).into_iter();
        heads
            .into_iter()
            .map(|h| {
                let (meta, part_oid) = h?;
                let head_part = match part_oid {
                    None => None,
                    Some(_) => Some(parts.next()?.ok()?.version),
                };
                Some(Signature {
                    object: meta.version,
                    head_part,
                })
            })
            .collect()
    }

    /// A shard whose REST read failed: the next sweep reports it changed.
    pub fn forget(&self, shard: u32) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .seen
            .remove(&shard);
    }
}
