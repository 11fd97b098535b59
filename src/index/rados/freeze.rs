//! Latest mode's frozen window (`ChangeIndex::freeze`).

use super::layout::{num, parse_num, FROZEN_KEY, MAX_ATTEMPTS, REV_KEY};
use super::Inner;
use crate::error::BackendError;
use crate::index::{Fence, FrozenWindow, IndexError, IndexMode};
use crate::rados::{OmapRead, WriteOp};

/// A shard's `frozen` value: the collector token that set it, then the
/// window if one is frozen. The token lets a stale collector's freeze or
/// lift be refused by the shard op itself.
fn encode_frozen(token: u64, window: Option<FrozenWindow>) -> Vec<u8> {
    let mut out = num(token).into_bytes();
    if let Some(w) = window {
        out.push(b' ');
        out.extend_from_slice(&w.encode());
    }
    out
}

pub(super) fn decode_frozen(bytes: &[u8]) -> (u64, Option<FrozenWindow>) {
    let (token, window) = match bytes.iter().position(|b| *b == b' ') {
        Some(at) => (&bytes[..at], FrozenWindow::decode(&bytes[at + 1..])),
        None => (bytes, None),
    };
    (parse_num(token).unwrap_or(0), window)
}

impl Inner {
    /// See `ChangeIndex::freeze`: set (or removed) in every shard object
    /// under the `rev` guard that latest-mode writes take, so a write that
    /// read a shard before it fails its compare, reads again and sees it.
    pub(super) fn freeze(
        &self,
        window: Option<FrozenWindow>,
        fence: Option<Fence>,
    ) -> Result<(), IndexError> {
        if self.layout.mode != IndexMode::Latest {
            return Ok(());
        }
        let token = fence.as_ref().map_or(0, |f| f.token);
        let value = encode_frozen(token, window);
        let keys = [REV_KEY.as_bytes().to_vec(), FROZEN_KEY.as_bytes().to_vec()];
        let read = OmapRead::Keys(&keys);
        let mut pending: Vec<usize> = (0..self.shards.len()).collect();
        for _ in 0..MAX_ATTEMPTS {
            if pending.is_empty() {
                return Ok(());
            }
            let requests: Vec<(&str, &OmapRead<'_>)> = pending
                .iter()
                .map(|s| (self.shards[*s].as_str(), &read))
                .collect();
            let mut ops = Vec::with_capacity(pending.len());
            for (shard, r) in pending.iter().zip(self.io.omap_read_many(&requests)) {
                let pairs = r.map_err(|e| self.err(e))?.0;
                let value_of = |key: &str| {
                    pairs
                        .iter()
                        .find(|(k, _)| k == key.as_bytes())
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                let rev = value_of(REV_KEY);
                // A newer collector froze this shard: we are a stale one.
                // The `rev` compare below keeps the read and write one step.
                if let Some(f) = &fence {
                    if decode_frozen(&value_of(FROZEN_KEY)).0 > f.token {
                        return Err(IndexError::Fenced {
                            lease: f.lease.clone(),
                            token: f.token,
                        });
                    }
                }
                let rev_n = parse_num(&rev).ok_or_else(|| {
                    IndexError::Corrupt(format!(
                        "{}: shard {shard} has no valid rev",
                        self.location
                    ))
                })?;
                let mut op = WriteOp::new();
                op.cmp_eq(REV_KEY, rev);
                op.set(FROZEN_KEY, value.clone());
                op.set(REV_KEY, num(rev_n + 1));
                ops.push((self.shards[*shard].clone(), op));
            }
            let mut again = Vec::new();
            for (shard, result) in pending.iter().zip(self.io.operate_many(&ops)) {
                match result {
                    Ok(()) => {}
                    // A write or trim moved `rev` meanwhile.
                    Err(e) if e.is_canceled() => again.push(*shard),
                    Err(e) => return Err(self.err(e)),
                }
            }
            pending = again;
        }
        Err(IndexError::Backend(BackendError::msg(format!(
            "{}: freezing a window kept failing its compares",
            self.location
        ))))
    }
}
