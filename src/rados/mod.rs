//! A small safe layer over the librados C API: exactly what the RADOS index
//! backend needs — connect, an I/O context on a pool and namespace, compound
//! write operations (exclusive create, omap compare / set / remove), omap
//! reads (a key range, or given keys), several of them in flight at once
//! through the aio calls, and `cls_lock` exclusive locks.
//!
//! Every librados handle is owned by one Rust value and released in its
//! `Drop`; operations are described in plain Rust data ([`WriteOp`]) and
//! turned into a librados operation only for the duration of one call, so
//! no C object ever outlives the buffers it points into. All calls block:
//! async callers run them on `spawn_blocking`. docs/decisions.md says why
//! this is our own FFI and not a binding crate.

mod ffi;
mod stat;
pub use stat::ObjectStat;

use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_uchar};
use std::path::Path;
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

/// A failed librados call: which call, on which object, and the errno.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{op} on {target:?}: {}", std::io::Error::from_raw_os_error(*errno))]
pub struct RadosError {
    pub op: &'static str,
    pub target: String,
    pub errno: i32,
}

impl RadosError {
    fn new(op: &'static str, target: &str, ret: i64) -> Self {
        RadosError {
            op,
            target: target.to_string(),
            errno: (-ret) as i32,
        }
    }

    pub(crate) fn invalid(op: &'static str, target: &str) -> Self {
        RadosError {
            op,
            target: target.to_string(),
            errno: libc::EINVAL,
        }
    }

    /// A compare in a compound operation did not hold: nothing was applied.
    pub fn is_canceled(&self) -> bool {
        self.errno == libc::ECANCELED
    }
    pub fn is_not_found(&self) -> bool {
        self.errno == libc::ENOENT
    }
    pub fn is_exists(&self) -> bool {
        self.errno == libc::EEXIST
    }
    pub fn is_busy(&self) -> bool {
        self.errno == libc::EBUSY
    }
}

fn cstring(op: &'static str, s: &str) -> Result<CString, RadosError> {
    CString::new(s).map_err(|_| RadosError::invalid(op, s))
}

fn check(op: &'static str, target: &str, ret: c_int) -> Result<(), RadosError> {
    if ret < 0 {
        Err(RadosError::new(op, target, ret.into()))
    } else {
        Ok(())
    }
}

/// A connection to a Ceph cluster.
pub struct Cluster {
    handle: ffi::rados_t,
}

// SAFETY: a connected `rados_t` may be used from any thread at once
// (librados serialises internally); it is only shut down in `Drop`, when no
// `IoCtx` (which holds an `Arc<Cluster>`) is left.
unsafe impl Send for Cluster {}
// SAFETY: see `Send`: every librados call on it is thread-safe.
unsafe impl Sync for Cluster {}

impl Cluster {
    /// Reads `conf`, sets the keyring if given and connects as
    /// `client.<user>`. librados' own timeouts are set so that a call never
    /// hangs forever on an unreachable cluster.
    pub fn connect(
        conf: &Path,
        user: &str,
        keyring: Option<&Path>,
        op_timeout: Duration,
    ) -> Result<Arc<Cluster>, RadosError> {
        let target = conf.display().to_string();
        let name = cstring("rados_create2", &format!("client.{user}"))?;
        let cluster_name = cstring("rados_create2", "ceph")?;
        let mut handle: ffi::rados_t = ptr::null_mut();
        // SAFETY: all pointers are valid NUL-terminated strings or an out
        // pointer to a local; on success librados owns the new handle,
        // which we wrap at once so that `Drop` shuts it down.
        let ret =
            unsafe { ffi::rados_create2(&mut handle, cluster_name.as_ptr(), name.as_ptr(), 0) };
        check("rados_create2", &target, ret)?;
        let cluster = Cluster { handle };
        let path = cstring("rados_conf_read_file", &target)?;
        // SAFETY: `handle` is a live, not yet connected cluster handle and
        // `path` a valid C string for the duration of the call.
        let ret = unsafe { ffi::rados_conf_read_file(cluster.handle, path.as_ptr()) };
        check("rados_conf_read_file", &target, ret)?;
        let secs = op_timeout.as_secs().max(1).to_string();
        let mut options = vec![
            ("rados_osd_op_timeout", secs.clone()),
            ("rados_mon_op_timeout", secs.clone()),
            ("client_mount_timeout", secs),
        ];
        if let Some(keyring) = keyring {
            options.push(("keyring", keyring.display().to_string()));
        }
        for (option, value) in options {
            let (o, v) = (
                cstring("rados_conf_set", option)?,
                cstring("rados_conf_set", &value)?,
            );
            // SAFETY: as above; librados copies both strings.
            let ret = unsafe { ffi::rados_conf_set(cluster.handle, o.as_ptr(), v.as_ptr()) };
            check("rados_conf_set", option, ret)?;
        }
        // SAFETY: a configured, not yet connected handle.
        let ret = unsafe { ffi::rados_connect(cluster.handle) };
        check("rados_connect", &target, ret)?;
        Ok(Arc::new(cluster))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SAFETY: we own the handle and nothing uses it any more (every
        // IoCtx keeps the Arc alive until it is destroyed itself).
        unsafe { ffi::rados_shutdown(self.handle) }
    }
}

/// A compound write on one object, applied atomically: either every step
/// or none. Compares run first, so a failed compare applies nothing and the
/// call fails with ECANCELED ([`RadosError::is_canceled`]).
#[derive(Debug, Clone, Default)]
pub struct WriteOp {
    create_exclusive: Option<bool>,
    cmps: Vec<(Vec<u8>, u8, Vec<u8>)>,
    sets: Vec<(Vec<u8>, Vec<u8>)>,
    rms: Vec<Vec<u8>>,
}

impl WriteOp {
    pub fn new() -> Self {
        Self::default()
    }
    /// Creates the object; with `exclusive`, fails with EEXIST if it exists.
    pub fn create(mut self, exclusive: bool) -> Self {
        self.create_exclusive = Some(exclusive);
        self
    }
    /// Requires the stored value of `key` (empty when absent) to equal `value`.
    pub fn cmp_eq(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.cmps
            .push((key.into(), ffi::LIBRADOS_CMPXATTR_OP_EQ, value.into()));
        self
    }
    /// Requires the stored value of `key` to sort before `value` (bytewise).
    pub fn cmp_lt(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.cmps
            .push((key.into(), ffi::LIBRADOS_CMPXATTR_OP_LT, value.into()));
        self
    }
    pub fn set(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.sets.push((key.into(), value.into()));
        self
    }
    pub fn rm(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.rms.push(key.into());
        self
    }
    pub fn is_empty(&self) -> bool {
        self.create_exclusive.is_none()
            && self.cmps.is_empty()
            && self.sets.is_empty()
            && self.rms.is_empty()
    }
}

/// A librados write operation built from a [`WriteOp`], with the result
/// slots its compares write into; released in `Drop`.
struct BuiltWriteOp {
    handle: ffi::rados_write_op_t,
    /// Boxed so the addresses handed to librados stay put until release.
    _prvals: Box<[c_int]>,
}

impl BuiltWriteOp {
    fn build(op: &WriteOp) -> Self {
        // SAFETY: creating an empty operation has no preconditions; the
        // handle is released in Drop.
        let handle = unsafe { ffi::rados_create_write_op() };
        let mut prvals: Box<[c_int]> = vec![0; op.cmps.len()].into_boxed_slice();
        if let Some(exclusive) = op.create_exclusive {
            let flag = if exclusive {
                ffi::LIBRADOS_CREATE_EXCLUSIVE
            } else {
                0
            };
            // SAFETY: a live op; a null category is allowed (unused).
            unsafe { ffi::rados_write_op_create(handle, flag, ptr::null()) };
        }
        for ((key, cmp, value), prval) in op.cmps.iter().zip(prvals.iter_mut()) {
            // SAFETY: key and value are valid for their lengths during the
            // call and librados copies them; `prval` points into a boxed
            // slice that lives as long as the operation (it is dropped with
            // `self`, after the release).
            unsafe {
                ffi::rados_write_op_omap_cmp2(
                    handle,
                    key.as_ptr().cast::<c_char>(),
                    *cmp,
                    value.as_ptr().cast::<c_char>(),
                    key.len(),
                    value.len(),
                    prval,
                )
            };
        }
        if !op.sets.is_empty() {
            let keys: Vec<*const c_char> = op.sets.iter().map(|(k, _)| k.as_ptr().cast()).collect();
            let vals: Vec<*const c_char> = op.sets.iter().map(|(_, v)| v.as_ptr().cast()).collect();
            let key_lens: Vec<usize> = op.sets.iter().map(|(k, _)| k.len()).collect();
            let val_lens: Vec<usize> = op.sets.iter().map(|(_, v)| v.len()).collect();
            // SAFETY: four arrays of `sets.len()` elements, each pointer valid
            // for its length during the call; librados copies keys and values
            // into its own buffers before returning.
            unsafe {
                ffi::rados_write_op_omap_set2(
                    handle,
                    keys.as_ptr(),
                    vals.as_ptr(),
                    key_lens.as_ptr(),
                    val_lens.as_ptr(),
                    keys.len(),
                )
            };
        }
        if !op.rms.is_empty() {
            let keys: Vec<*const c_char> = op.rms.iter().map(|k| k.as_ptr().cast()).collect();
            let key_lens: Vec<usize> = op.rms.iter().map(Vec::len).collect();
            // SAFETY: as for omap_set2: arrays of equal length, copied.
            unsafe {
                ffi::rados_write_op_omap_rm_keys2(
                    handle,
                    keys.as_ptr(),
                    key_lens.as_ptr(),
                    keys.len(),
                )
            };
        }
        BuiltWriteOp {
            handle,
            _prvals: prvals,
        }
    }
}

impl Drop for BuiltWriteOp {
    fn drop(&mut self) {
        // SAFETY: we own the op and it is not in flight (callers wait for
        // completion before dropping it).
        unsafe { ffi::rados_release_write_op(self.handle) }
    }
}

/// One async completion; released in `Drop`.
struct Completion(ffi::rados_completion_t);

impl Completion {
    fn new(target: &str) -> Result<Self, RadosError> {
        let mut c: ffi::rados_completion_t = ptr::null_mut();
        // SAFETY: no callback and no argument; `c` receives the handle.
        let ret = unsafe { ffi::rados_aio_create_completion2(ptr::null_mut(), None, &mut c) };
        check("rados_aio_create_completion2", target, ret)?;
        Ok(Completion(c))
    }

    fn wait(&self) -> c_int {
        // SAFETY: a live completion of a submitted operation.
        unsafe {
            ffi::rados_aio_wait_for_complete(self.0);
            ffi::rados_aio_get_return_value(self.0)
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        // SAFETY: we own it; an in-flight completion stays referenced by
        // librados until it completes, so releasing early is allowed.
        unsafe { ffi::rados_aio_release(self.0) }
    }
}

pub type OmapPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// A read of omap values: a range after a key with a prefix, or given keys.
pub enum OmapRead<'a> {
    Range {
        start_after: &'a str,
        prefix: &'a str,
        max: u64,
    },
    Keys(&'a [Vec<u8>]),
}

/// A librados read operation with the iterator and flags it fills in.
struct BuiltReadOp {
    handle: ffi::rados_read_op_t,
    iter: Box<ffi::rados_omap_iter_t>,
    more: Box<c_uchar>,
    prval: Box<c_int>,
    _strings: (CString, CString),
}

impl BuiltReadOp {
    fn build(read: &OmapRead<'_>, target: &str) -> Result<Self, RadosError> {
        let (start_after, prefix) = match read {
            OmapRead::Range {
                start_after,
                prefix,
                ..
            } => (
                cstring("omap_get_vals", start_after)?,
                cstring("omap_get_vals", prefix)?,
            ),
            OmapRead::Keys(_) => (CString::default(), CString::default()),
        };
        // SAFETY: creating an empty read op has no preconditions.
        let handle = unsafe { ffi::rados_create_read_op() };
        let mut op = BuiltReadOp {
            handle,
            iter: Box::new(ptr::null_mut()),
            more: Box::new(0),
            prval: Box::new(0),
            _strings: (start_after, prefix),
        };
        match read {
            OmapRead::Range { max, .. } => {
                // SAFETY: the strings live in `op` as long as the operation;
                // iter, more and prval are boxed, so their addresses stay
                // valid until the operation completes and is released.
                unsafe {
                    ffi::rados_read_op_omap_get_vals2(
                        op.handle,
                        op._strings.0.as_ptr(),
                        op._strings.1.as_ptr(),
                        *max,
                        &mut *op.iter,
                        &mut *op.more,
                        &mut *op.prval,
                    )
                };
            }
            OmapRead::Keys(keys) => {
                let ptrs: Vec<*const c_char> = keys.iter().map(|k| k.as_ptr().cast()).collect();
                let lens: Vec<usize> = keys.iter().map(Vec::len).collect();
                // SAFETY: arrays of equal length, valid during the call (the
                // keys are copied into a set); out pointers as above.
                unsafe {
                    ffi::rados_read_op_omap_get_vals_by_keys2(
                        op.handle,
                        ptrs.as_ptr(),
                        ptrs.len(),
                        lens.as_ptr(),
                        &mut *op.iter,
                        &mut *op.prval,
                    )
                };
            }
        }
        let _ = target;
        Ok(op)
    }

    /// The pairs and the "more" flag of a completed operation.
    fn collect(&mut self, ret: c_int, target: &str) -> Result<(OmapPairs, bool), RadosError> {
        check("omap read", target, ret)?;
        check("omap read", target, *self.prval)?;
        let mut pairs = Vec::new();
        if self.iter.is_null() {
            return Ok((pairs, false));
        }
        // SAFETY: the operation completed successfully, so the iterator is
        // filled; each returned pointer is valid for its length until the
        // iterator is ended (in Drop), and we copy the bytes at once.
        unsafe {
            pairs.reserve(ffi::rados_omap_iter_size(*self.iter) as usize);
            loop {
                let (mut k, mut v): (*mut c_char, *mut c_char) = (ptr::null_mut(), ptr::null_mut());
                let (mut kl, mut vl) = (0usize, 0usize);
                let ret = ffi::rados_omap_get_next2(*self.iter, &mut k, &mut v, &mut kl, &mut vl);
                check("rados_omap_get_next2", target, ret)?;
                if k.is_null() {
                    break;
                }
                let key = std::slice::from_raw_parts(k.cast::<u8>(), kl).to_vec();
                let value = if v.is_null() || vl == 0 {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(v.cast::<u8>(), vl).to_vec()
                };
                pairs.push((key, value));
            }
        }
        Ok((pairs, *self.more != 0))
    }
}

impl Drop for BuiltReadOp {
    fn drop(&mut self) {
        // SAFETY: the op is not in flight any more; the iterator (allocated
        // by librados when the read step was added) is ended exactly once.
        unsafe {
            if !self.iter.is_null() {
                ffi::rados_omap_get_end(*self.iter);
            }
            ffi::rados_release_read_op(self.handle);
        }
    }
}

/// A holder of a `cls_lock` lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locker {
    /// The entity, e.g. `client.4172`.
    pub client: String,
    pub cookie: String,
}

/// An I/O context: one pool, one namespace.
pub struct IoCtx {
    handle: ffi::rados_ioctx_t,
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
    unsafe fn submit_read(
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

    /// Takes (or, with `renew`, only extends) the exclusive `cls_lock` lock
    /// `name` on `oid` for `cookie`. EBUSY: someone else holds it; with
    /// `renew`, ENOENT: we do not hold it (any more).
    pub fn lock_exclusive(
        &self,
        oid: &str,
        name: &str,
        cookie: &str,
        description: &str,
        duration: Duration,
        renew: bool,
    ) -> Result<(), RadosError> {
        let op = "rados_lock_exclusive";
        let (c_oid, c_name, c_cookie, c_desc) = (
            cstring(op, oid)?,
            cstring(op, name)?,
            cstring(op, cookie)?,
            cstring(op, description)?,
        );
        let mut tv = ffi::timeval {
            tv_sec: duration.as_secs() as libc::time_t,
            tv_usec: duration.subsec_micros() as libc::suseconds_t,
        };
        let flags = if renew {
            ffi::LIBRADOS_LOCK_FLAG_MUST_RENEW
        } else {
            0
        };
        // SAFETY: valid C strings and a timeval local for the duration of
        // this synchronous call.
        let ret = unsafe {
            ffi::rados_lock_exclusive(
                self.handle,
                c_oid.as_ptr(),
                c_name.as_ptr(),
                c_cookie.as_ptr(),
                c_desc.as_ptr(),
                &mut tv,
                flags,
            )
        };
        check(op, oid, ret)
    }

    /// Gives up our lock; ENOENT when we do not hold it.
    pub fn unlock(&self, oid: &str, name: &str, cookie: &str) -> Result<(), RadosError> {
        let op = "rados_unlock";
        let (c_oid, c_name, c_cookie) =
            (cstring(op, oid)?, cstring(op, name)?, cstring(op, cookie)?);
        // SAFETY: valid C strings for this synchronous call.
        let ret = unsafe {
            ffi::rados_unlock(
                self.handle,
                c_oid.as_ptr(),
                c_name.as_ptr(),
                c_cookie.as_ptr(),
            )
        };
        check(op, oid, ret)
    }

    /// Removes another client's lock (used for a holder known to be gone).
    pub fn break_lock(&self, oid: &str, name: &str, locker: &Locker) -> Result<(), RadosError> {
        let op = "rados_break_lock";
        let (c_oid, c_name, c_client, c_cookie) = (
            cstring(op, oid)?,
            cstring(op, name)?,
            cstring(op, &locker.client)?,
            cstring(op, &locker.cookie)?,
        );
        // SAFETY: valid C strings for this synchronous call.
        let ret = unsafe {
            ffi::rados_break_lock(
                self.handle,
                c_oid.as_ptr(),
                c_name.as_ptr(),
                c_client.as_ptr(),
                c_cookie.as_ptr(),
            )
        };
        check(op, oid, ret)
    }

    /// The current holders of lock `name` (cls_lock leaves expired holders
    /// out). A missing object has no holders.
    pub fn lockers(&self, oid: &str, name: &str) -> Result<Vec<Locker>, RadosError> {
        let op = "rados_list_lockers";
        let (c_oid, c_name) = (cstring(op, oid)?, cstring(op, name)?);
        let mut cap = 256usize;
        loop {
            let (mut tag, mut clients, mut cookies, mut addrs) = (
                vec![0u8; cap],
                vec![0u8; cap],
                vec![0u8; cap],
                vec![0u8; cap],
            );
            let (mut tag_len, mut clients_len, mut cookies_len, mut addrs_len) =
                (cap, cap, cap, cap);
            let mut exclusive: c_int = 0;
            // SAFETY: every buffer is `cap` bytes long and its length is
            // passed with it; librados writes at most that much (or reports
            // ERANGE with the lengths it needs).
            let ret = unsafe {
                ffi::rados_list_lockers(
                    self.handle,
                    c_oid.as_ptr(),
                    c_name.as_ptr(),
                    &mut exclusive,
                    tag.as_mut_ptr().cast(),
                    &mut tag_len,
                    clients.as_mut_ptr().cast(),
                    &mut clients_len,
                    cookies.as_mut_ptr().cast(),
                    &mut cookies_len,
                    addrs.as_mut_ptr().cast(),
                    &mut addrs_len,
                )
            };
            if ret == -(libc::ERANGE as isize) {
                let need = tag_len.max(clients_len).max(cookies_len).max(addrs_len);
                if need <= cap || need > 1 << 24 {
                    return Err(RadosError::new(op, oid, ret as i64));
                }
                cap = need;
                continue;
            }
            if ret == -(libc::ENOENT as isize) {
                return Ok(Vec::new());
            }
            if ret < 0 {
                return Err(RadosError::new(op, oid, ret as i64));
            }
            let split = |buf: &[u8], len: usize| -> Vec<String> {
                buf[..len.min(buf.len())]
                    .split(|b| *b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            };
            let clients = split(&clients, clients_len);
            let cookies = split(&cookies, cookies_len);
            return Ok(clients
                .into_iter()
                .zip(cookies)
                .map(|(client, cookie)| Locker { client, cookie })
                .collect());
        }
    }
}

impl Drop for IoCtx {
    fn drop(&mut self) {
        // SAFETY: we own the context; no operation is in flight (every call
        // above waits for its completions before returning).
        unsafe { ffi::rados_ioctx_destroy(self.handle) }
    }
}
