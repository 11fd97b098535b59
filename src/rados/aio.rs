//! Async completions, for the operations that are several in flight at once.

use std::os::raw::c_int;
use std::ptr;

use super::{check, ffi, RadosError};

/// One async completion; released in `Drop`.
pub(super) struct Completion(pub(super) ffi::rados_completion_t);

impl Completion {
    pub(super) fn new(target: &str) -> Result<Self, RadosError> {
        let mut c: ffi::rados_completion_t = ptr::null_mut();
        // SAFETY: no callback and no argument; `c` receives the handle.
        let ret = unsafe { ffi::rados_aio_create_completion2(ptr::null_mut(), None, &mut c) };
        check("rados_aio_create_completion2", target, ret)?;
        Ok(Completion(c))
    }

    pub(super) fn wait(&self) -> c_int {
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
