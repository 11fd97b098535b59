//! Writer sessions, shard floors and the watermark (module docs,
//! "Watermark").

use super::layout::{num, parse_num, FLOOR_KEY, MAX_ATTEMPTS, SESSION_KEY};
use super::Inner;
use crate::error::BackendError;
use crate::index::{EntryId, IndexError, Watermark};
use crate::rados::WriteOp;

/// The writer session: the high half of every `seq` this instance mints.
pub(super) struct Session {
    pub(super) id: u64,
    pub(super) next: u64,
    /// A watermark of this instance passed the session: take a new one
    /// before the next write instead of learning it from a failed compare.
    pub(super) stale: bool,
}

impl Inner {
    /// Takes the next number of the control object's counter.
    pub(super) fn next_number(&self) -> Result<u64, IndexError> {
        for _ in 0..MAX_ATTEMPTS {
            let current = match self.get(&self.control, SESSION_KEY.as_bytes())? {
                Some(v) => parse_num(&v).ok_or_else(|| {
                    IndexError::Corrupt(format!("{}: bad session counter", self.location))
                })?,
                None => 0,
            };
            let next = current + 1;
            let mut op = WriteOp::new();
            op.cmp_eq(SESSION_KEY, num(current))
                .set(SESSION_KEY, num(next));
            match self.io.operate(&self.control, &op) {
                Ok(()) => return Ok(next),
                Err(e) if e.is_canceled() => continue,
                Err(e) => return Err(self.err(e)),
            }
        }
        Err(IndexError::Backend(BackendError::msg(format!(
            "{}: the session counter stayed contended",
            self.location
        ))))
    }

    /// Mints `count` ids in one session (taking a new session first if the
    /// current one is stale, older than `at_least`, or would overflow).
    pub(super) fn mint(
        &self,
        times: &[u64],
        at_least: u64,
    ) -> Result<(u64, Vec<EntryId>), IndexError> {
        let mut s = self
            .session
            .lock()
            .map_err(|_| IndexError::Backend("session lock poisoned".into()))?;
        if s.stale || s.id < at_least || s.next + times.len() as u64 > u64::from(u32::MAX) {
            let id = self.next_number()?;
            if id > u64::from(u32::MAX) {
                return Err(IndexError::Backend(BackendError::msg(format!(
                    "{}: writer sessions exhausted",
                    self.location
                ))));
            }
            *s = Session {
                id,
                next: 0,
                stale: false,
            };
        }
        let session = s.id;
        let ids = times
            .iter()
            .map(|t| {
                let id = EntryId::new(*t, session << 32 | s.next);
                s.next += 1;
                id
            })
            .collect();
        Ok((session, ids))
    }

    pub(super) fn floor_guard(op: &mut WriteOp, session: u64) {
        op.cmp_lt(FLOOR_KEY, num(session + 1));
    }

    pub(super) fn watermark(&self) -> Result<Watermark, IndexError> {
        let epoch = self.next_number()?;
        let ops: Vec<(String, WriteOp)> = self
            .shards
            .iter()
            .map(|oid| {
                let mut op = WriteOp::new();
                op.cmp_lt(FLOOR_KEY, num(epoch)).set(FLOOR_KEY, num(epoch));
                (oid.clone(), op)
            })
            .collect();
        for result in self.io.operate_many(&ops) {
            match result {
                // ECANCELED: a later watermark already raised this floor.
                Ok(()) => {}
                Err(e) if e.is_canceled() => {}
                Err(e) => return Err(self.err(e)),
            }
        }
        if let Ok(mut s) = self.session.lock() {
            if s.id < epoch {
                s.stale = true;
            }
        }
        Ok(Watermark((epoch << 32) - 1))
    }
}
