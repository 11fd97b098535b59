//! The I/O context on one pool and namespace: compound writes and omap
//! reads, one at a time or several in flight at once.

use std::ptr;
use std::sync::Arc;

use super::aio::Completion;
use super::read::BuiltReadOp;
use super::write::BuiltWriteOp;
use super::{check, cstring, ffi, Cluster, OmapPairs, OmapRead, RadosError, WriteOp};

/// An I/O context: one pool, one namespace.
pub struct IoCtx {
    pub(super) handle: ffi::rados_ioctx_t,
    _cluster: Arc<Cluster>,
}

// SAFETY: librados I/O contexts are thread-safe for the calls made here
// (operations, locks); the namespace is set once, before sharing.
unsafe impl Send for IoCtx {}
// SAFETY: see `Send`.
unsafe impl Sync for IoCtx {}

impl IoCtx {
    pub fn new(cluster: &Arc<Cluster>, pool: &str, namespace: &str) -> Result<IoCtx, RadosError> {
        let c_pool = cstring("rados_ioctx_create", pool)?;
        let c_ns = cstring("rados_ioctx_set_namespace", namespace)?;
        let mut handle: ffi::rados_ioctx_t = ptr::null_mut();
        // SAFETY: a connected cluster, a valid pool name, an out pointer.
        let ret = unsafe { ffi::rados_ioctx_create(cluster.handle, c_pool.as_ptr(), &mut handle) };
        check("rados_ioctx_create", pool, ret)?;
        // SAFETY: a live context not yet shared with other threads; the
        // namespace string is copied.
        unsafe { ffi::rados_ioctx_set_namespace(handle, c_ns.as_ptr()) };
        Ok(IoCtx {
            handle,
            _cluster: cluster.clone(),
        })
    }

    /// Applies one compound write, synchronously.
    pub fn operate(&self, oid: &str, op: &WriteOp) -> Result<(), RadosError> {
        let c_oid = cstring("write op", oid)?;
        let built = BuiltWriteOp::build(op);
        // SAFETY: a live context, a built op whose buffers live in `built`
        // until after this call returns (the call waits for the commit).
        let ret = unsafe {
            ffi::rados_write_op_operate2(
                built.handle,
                self.handle,
                c_oid.as_ptr(),
                ptr::null_mut(),
                ffi::LIBRADOS_OPERATION_NOFLAG,
            )
        };
        check("write op", oid, ret)
    }

    /// Applies several compound writes (on different objects) concurrently
    /// and waits for all of them; one result per operation, in order.
    pub fn operate_many(&self, ops: &[(String, WriteOp)]) -> Vec<Result<(), RadosError>> {
        let mut inflight = Vec::with_capacity(ops.len());
        for (oid, op) in ops {
            let submitted = (|| {
                let c_oid = cstring("write op", oid)?;
                let built = BuiltWriteOp::build(op);
                let completion = Completion::new(oid)?;
                // SAFETY: `built` and `completion` are kept in `inflight`
                // until the completion has been waited for below, so the op
                // and its result slots outlive the asynchronous operation;
                // the oid is copied by librados at submission.
                let ret = unsafe {
                    ffi::rados_aio_write_op_operate(
                        built.handle,
                        self.handle,
                        completion.0,
                        c_oid.as_ptr(),
                        ptr::null_mut(),
                        ffi::LIBRADOS_OPERATION_NOFLAG,
                    )
                };
                check("aio write op", oid, ret)?;
                Ok((built, completion))
            })();
            inflight.push(submitted);
        }
        inflight
            .into_iter()
            .zip(ops)
            .map(|(submitted, (oid, _))| {
                let (built, completion) = submitted?;
                let ret = completion.wait();
                drop(completion);
                drop(built);
                check("write op", oid, ret)
            })
            .collect()
    }

    /// Submits a built read operation on `oid`.
    ///
    /// # Safety
    /// `op` and every slot it writes into must stay alive, and not move,
    /// until the returned completion has been waited for.
    pub(super) unsafe fn submit_read(
        &self,
        op: ffi::rados_read_op_t,
        what: &'static str,
        oid: &str,
    ) -> Result<Completion, RadosError> {
        let c_oid = cstring(what, oid)?;
        let completion = Completion::new(oid)?;
        // SAFETY: a live op and completion (the caller keeps `op` alive);
        // librados copies the object name.
        let ret = unsafe {
            ffi::rados_aio_read_op_operate(
                op,
                self.handle,
                completion.0,
                c_oid.as_ptr(),
                ffi::LIBRADOS_OPERATION_NOFLAG,
            )
        };
        check(what, oid, ret)?;
        Ok(completion)
    }

    /// Reads omap pairs of one object; the flag says whether a range read
    /// stopped at `max` with more pairs left.
    pub fn omap_read(
        &self,
        oid: &str,
        read: &OmapRead<'_>,
    ) -> Result<(OmapPairs, bool), RadosError> {
        self.omap_read_many(&[(oid, read)])
            .pop()
            .unwrap_or_else(|| Err(RadosError::invalid("omap read", oid)))
    }

    /// Several omap reads (usually of different objects) in flight at once.
    pub fn omap_read_many(
        &self,
        reads: &[(&str, &OmapRead<'_>)],
    ) -> Vec<Result<(OmapPairs, bool), RadosError>> {
        let mut inflight = Vec::with_capacity(reads.len());
        for (oid, read) in reads {
            let submitted = (|| {
                let built = BuiltReadOp::build(read, oid)?;
                // SAFETY: `built` (op, iterator slot, flags) stays alive in
                // `inflight` until its completion has been waited for.
                let completion = unsafe { self.submit_read(built.handle, "aio omap read", oid)? };
                Ok((built, completion))
            })();
            inflight.push(submitted);
        }
        inflight
            .into_iter()
            .zip(reads)
            .map(|(submitted, (oid, _))| {
                let (mut built, completion) = submitted?;
                let ret = completion.wait();
                drop(completion);
                built.collect(ret, oid)
            })
            .collect()
    }
}

impl Drop for IoCtx {
    fn drop(&mut self) {
        // SAFETY: we own the context; no operation is in flight (every call
        // above waits for its completions before returning).
        unsafe { ffi::rados_ioctx_destroy(self.handle) }
    }
}
