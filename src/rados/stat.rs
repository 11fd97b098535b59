//! Stat (size and object version), optionally with the first bytes of the
//! data, of many objects at once: how the capture sees which of RGW's log
//! objects changed without asking RGW (docs/notes/issue-18-change-detection.md).
//!
//! The object version is the OSD's user version: every modification of an
//! object (a data write, an omap write, a class call that writes) raises it,
//! and reads leave it alone, so an equal version means "unchanged".

use std::os::raw::{c_char, c_int};

use super::{check, ffi, IoCtx, RadosError};

/// What one stat read of an object gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStat {
    pub size: u64,
    /// The object's user version, raised by every write to it.
    pub version: u64,
    /// The first bytes of the data, when asked for (at most the length asked).
    pub head: Vec<u8>,
}

/// A read op of stat plus an optional read of the first bytes, with the
/// slots librados fills in; boxed so their addresses stay put while in flight.
struct BuiltStat {
    handle: ffi::rados_read_op_t,
    size: Box<u64>,
    mtime: Box<libc::time_t>,
    stat_rval: Box<c_int>,
    buffer: Box<[u8]>,
    bytes_read: Box<usize>,
    read_rval: Box<c_int>,
}

impl BuiltStat {
    fn build(head_len: usize) -> Self {
        // SAFETY: creating an empty read op has no preconditions; released
        // in Drop.
        let handle = unsafe { ffi::rados_create_read_op() };
        let mut op = BuiltStat {
            handle,
            size: Box::new(0),
            mtime: Box::new(0),
            stat_rval: Box::new(0),
            buffer: vec![0; head_len].into_boxed_slice(),
            bytes_read: Box::new(0),
            read_rval: Box::new(0),
        };
        // SAFETY: the out slots are boxed in `op`, which outlives the
        // operation (it is waited for before `op` is dropped).
        unsafe {
            ffi::rados_read_op_stat(op.handle, &mut *op.size, &mut *op.mtime, &mut *op.stat_rval);
            if head_len > 0 {
                ffi::rados_read_op_read(
                    op.handle,
                    0,
                    head_len,
                    op.buffer.as_mut_ptr().cast::<c_char>(),
                    &mut *op.bytes_read,
                    &mut *op.read_rval,
                );
            }
        }
        op
    }
}

impl Drop for BuiltStat {
    fn drop(&mut self) {
        // SAFETY: the op is not in flight any more (waited for, or never
        // submitted).
        unsafe { ffi::rados_release_read_op(self.handle) }
    }
}

impl IoCtx {
    /// Stats every object of `oids` in one round of async reads, with the
    /// first `head_len` bytes of its data when `head_len > 0`. A missing
    /// object is an error for which [`RadosError::is_not_found`] holds.
    pub fn stat_many(&self, oids: &[&str], head_len: usize) -> Vec<Result<ObjectStat, RadosError>> {
        let mut inflight = Vec::with_capacity(oids.len());
        for oid in oids {
            let submitted = (|| {
                let built = BuiltStat::build(head_len);
                // SAFETY: `built` stays alive in `inflight` until its
                // completion has been waited for.
                let completion = unsafe { self.submit_read(built.handle, "aio stat", oid)? };
                Ok((built, completion))
            })();
            inflight.push(submitted);
        }
        inflight
            .into_iter()
            .zip(oids)
            .map(|(submitted, oid)| {
                let (built, completion) = submitted?;
                let ret = completion.wait();
                // SAFETY: the operation has completed.
                let version = unsafe { ffi::rados_aio_get_version(completion.0) };
                drop(completion);
                check("stat", oid, ret)?;
                check("stat", oid, *built.stat_rval)?;
                let mut head = Vec::new();
                if head_len > 0 {
                    check("read", oid, *built.read_rval)?;
                    let n = (*built.bytes_read).min(built.buffer.len());
                    head.extend_from_slice(&built.buffer[..n]);
                }
                Ok(ObjectStat {
                    size: *built.size,
                    version,
                    head,
                })
            })
            .collect()
    }
}
