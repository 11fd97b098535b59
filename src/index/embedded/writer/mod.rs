//! The writer thread: gathers waiting requests into a group and commits
//! the group in one transaction.

mod flush;
mod group;
mod trim;
mod write;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redb::{Durability, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::failure::Failure;
use super::handle::{EmbeddedOptions, ShardCounter};
use super::lease::{apply_lease, fenced, holds_fence};
use super::meta::read_u64;
use super::request::{PendingReply, Request};
use super::{LATEST, META, META_SESSION};
use crate::index::db_slot::DbSlot;
use crate::index::{EntryId, IndexError, IndexLayout, Written};
use crate::lease::{Lease, LeaseError};
use group::{BytesTable, Deltas, Group};

/// A group stops taking more requests at this many entries, so one commit
/// (and the memory it dirties) stays bounded under any backlog.
const GROUP_MAX_ENTRIES: usize = 50_000;

pub(super) struct Writer {
    pub(super) db: Arc<DbSlot>,
    /// The last commit failed with an I/O error: reopen before the next.
    pub(super) reopen: bool,
    pub(super) location: PathBuf,
    pub(super) layout: IndexLayout,
    pub(super) session: u64,
    pub(super) counter: u32,
    pub(super) counters: Arc<Mutex<Vec<ShardCounter>>>,
    pub(super) committed_seq: Arc<AtomicU64>,
    pub(super) options: EmbeddedOptions,
}

/// What one request did inside the group's transaction, answered only
/// after the group committed.
enum Outcome {
    Write(
        Vec<Written>,
        oneshot::Sender<Result<Vec<Written>, IndexError>>,
    ),
    Trim(u64, oneshot::Sender<Result<u64, IndexError>>),
    /// A request refused on its own (a stale fence); the rest of the group
    /// commits.
    Refused(IndexError, PendingReply),
    Lease(
        Result<Option<Lease>, LeaseError>,
        oneshot::Sender<Result<Option<Lease>, LeaseError>>,
    ),
}

impl Outcome {
    fn into_reply(self) -> PendingReply {
        match self {
            Outcome::Write(_, reply) => PendingReply::Write(reply),
            Outcome::Trim(_, reply) => PendingReply::Trim(reply),
            Outcome::Refused(_, reply) => reply,
            Outcome::Lease(_, reply) => PendingReply::Lease(reply),
        }
    }
}

impl Writer {
    pub(super) fn run(mut self, mut inbox: mpsc::Receiver<Request>) {
        while let Some(first) = inbox.blocking_recv() {
            let mut group = vec![first];
            let mut size = group[0].size();
            while size < GROUP_MAX_ENTRIES {
                match inbox.try_recv() {
                    Ok(next) => {
                        size += next.size();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(group);
        }
    }

    fn commit_group(&mut self, group: Vec<Request>) {
        if self.reopen {
            match self.db.reopen() {
                Ok(()) => self.reopen = false,
                Err(message) => {
                    let failure = Failure::from(format!(
                        "{}: an I/O error (a full disk?) left the index closed: {message}",
                        self.location.display()
                    ));
                    for request in group {
                        request.into_reply().fail(&failure);
                    }
                    return;
                }
            }
        }
        let mut deltas = Deltas::new();
        let session_before = (self.session, self.counter);
        let result = self.apply_group(group, &mut deltas);
        match result {
            Ok(outcomes) => {
                self.committed_seq.store(
                    (self.session << 32) | u64::from(self.counter),
                    Ordering::Release,
                );
                if let Ok(mut counters) = self.counters.lock() {
                    for (shard, (entries, bytes)) in deltas {
                        let c = &mut counters[shard as usize];
                        c.entries = c.entries.saturating_add_signed(entries);
                        c.bytes = c.bytes.saturating_add_signed(bytes);
                    }
                }
                for outcome in outcomes {
                    // A caller that went away no longer needs the answer;
                    // its data is committed all the same.
                    match outcome {
                        Outcome::Write(w, reply) => drop(reply.send(Ok(w))),
                        Outcome::Trim(n, reply) => drop(reply.send(Ok(n))),
                        Outcome::Refused(e, reply) => {
                            tracing::warn!(error = %e, "embedded index: a write of a superseded lease term refused; nothing of it was written");
                            reply.refuse(e)
                        }
                        Outcome::Lease(l, reply) => drop(reply.send(l)),
                    }
                }
            }
            Err((error, replies)) => {
                // Nothing of the group was committed; ids handed out in it
                // were never stored, so reusing them is safe.
                (self.session, self.counter) = session_before;
                self.reopen |= error.io;
                for reply in replies {
                    reply.fail(&error);
                }
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn apply_group(
        &mut self,
        group: Vec<Request>,
        deltas: &mut Deltas,
    ) -> Result<Vec<Outcome>, (Failure, Vec<PendingReply>)> {
        let location = self.location.clone();
        let at = |f: Failure| Failure {
            message: format!("{}: {}", location.display(), f.message),
            ..f
        };
        let mut outcomes = Vec::with_capacity(group.len());
        let db = match self.db.get() {
            Ok(db) => db,
            Err(e) => {
                return Err((
                    at(e.into()),
                    group.into_iter().map(Request::into_reply).collect(),
                ))
            }
        };
        let mut tx = match db.begin_write() {
            Ok(tx) => tx,
            Err(e) => {
                return Err((
                    at(e.into()),
                    group.into_iter().map(Request::into_reply).collect(),
                ))
            }
        };
        let mut failed: Option<Failure> = None;
        if let Err(e) = tx.set_durability(Durability::Immediate) {
            failed = Some(e.into());
        }
        let mut group_edits = Group {
            buffers: Vec::new(),
            shards: BTreeMap::new(),
            minted_after: (self.session << 32) | u64::from(self.counter),
        };
        let mut pending = Vec::new();
        for request in group {
            if failed.is_some() {
                pending.push(request.into_reply());
                continue;
            }
            match request {
                Request::Write {
                    batch,
                    markers,
                    fence,
                    reply,
                } => match holds_fence(&tx, fence.as_ref()) {
                    Ok(false) => outcomes.push(Outcome::Refused(
                        fenced(fence.as_ref()),
                        PendingReply::Write(reply),
                    )),
                    Ok(true) => match self.apply_write(&tx, batch, &markers, &mut group_edits) {
                        Ok(written) => outcomes.push(Outcome::Write(written, reply)),
                        Err(e) => {
                            failed = Some(e);
                            pending.push(PendingReply::Write(reply));
                        }
                    },
                    Err(e) => {
                        failed = Some(e);
                        pending.push(PendingReply::Write(reply));
                    }
                },
                Request::Trim { entries, reply } => {
                    match self.apply_trim(&tx, &entries, &mut group_edits) {
                        Ok(n) => outcomes.push(Outcome::Trim(n, reply)),
                        Err(e) => {
                            failed = Some(e);
                            pending.push(PendingReply::Trim(reply));
                        }
                    }
                }
                Request::TrimCovered {
                    shard,
                    from,
                    to,
                    watermark,
                    reply,
                } => match self.apply_trim_covered(
                    &tx,
                    (shard, from, to, watermark),
                    &mut group_edits,
                    deltas,
                ) {
                    Ok(n) => outcomes.push(Outcome::Trim(n, reply)),
                    Err(e) => {
                        failed = Some(e);
                        pending.push(PendingReply::Trim(reply));
                    }
                },
                Request::Lease { op, reply } => match apply_lease(&tx, op) {
                    Ok(result) => outcomes.push(Outcome::Lease(result, reply)),
                    Err(e) => {
                        failed = Some(e.into());
                        pending.push(PendingReply::Lease(reply));
                    }
                },
            }
        }
        if failed.is_none() {
            if let Err(e) = self.flush(&tx, group_edits, deltas) {
                failed = Some(e);
            }
        }
        if failed.is_none() {
            if let Err(e) = self.store_session(&tx) {
                failed = Some(e.into());
            }
        }
        if let Some(e) = failed {
            drop(tx.abort());
            pending.extend(outcomes.into_iter().map(Outcome::into_reply));
            return Err((at(e), pending));
        }
        if let Err(e) = tx.commit() {
            pending.extend(outcomes.into_iter().map(Outcome::into_reply));
            let failure = Failure {
                message: format!("commit failed: {e}"),
                ..Failure::from(e)
            };
            return Err((at(failure), pending));
        }
        Ok(outcomes)
    }

    fn next_id(&mut self, time_ns: u64) -> EntryId {
        if self.counter == u32::MAX {
            self.session += 1;
            self.counter = 0;
        }
        self.counter += 1;
        EntryId::new(time_ns, (self.session << 32) | u64::from(self.counter))
    }

    /// Persists the session if the counter rolled over into a new one, so a
    /// later open never reuses it.
    fn store_session(&self, tx: &WriteTransaction) -> Result<(), String> {
        let mut meta = tx.open_table(META).map_err(|e| e.to_string())?;
        let stored = read_u64(&meta, META_SESSION, &self.location).map_err(|e| e.to_string())?;
        if stored < self.session {
            meta.insert(META_SESSION, self.session.to_le_bytes().as_slice())
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn latest_table<'t>(
        &self,
        tx: &'t WriteTransaction,
    ) -> Result<Option<BytesTable<'t>>, Failure> {
        if self.layout.mode == crate::index::IndexMode::Latest {
            Ok(Some(tx.open_table(LATEST)?))
        } else {
            Ok(None)
        }
    }
}
