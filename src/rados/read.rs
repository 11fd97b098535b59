//! Omap reads: a key range after a key with a prefix, or given keys.

use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_uchar};
use std::ptr;

use super::{check, cstring, ffi, RadosError};

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
pub(super) struct BuiltReadOp {
    pub(super) handle: ffi::rados_read_op_t,
    iter: Box<ffi::rados_omap_iter_t>,
    more: Box<c_uchar>,
    prval: Box<c_int>,
    _strings: (CString, CString),
}

impl BuiltReadOp {
    pub(super) fn build(read: &OmapRead<'_>, target: &str) -> Result<Self, RadosError> {
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
    pub(super) fn collect(
        &mut self,
        ret: c_int,
        target: &str,
    ) -> Result<(OmapPairs, bool), RadosError> {
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
