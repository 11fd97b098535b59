//! Compound writes: [`WriteOp`] in plain Rust data, turned into a librados
//! write operation only for the duration of one call.

use std::os::raw::{c_char, c_int};
use std::ptr;

use super::ffi;

/// A compound write on one object, applied atomically: either every step
/// or none. Compares run first, so a failed compare applies nothing and the
/// call fails with ECANCELED
/// ([`RadosError::is_canceled`](super::RadosError::is_canceled)).
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
pub(super) struct BuiltWriteOp {
    pub(super) handle: ffi::rados_write_op_t,
    /// Boxed so the addresses handed to librados stay put until release.
    _prvals: Box<[c_int]>,
}

impl BuiltWriteOp {
    pub(super) fn build(op: &WriteOp) -> Self {
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
