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

// This module is the FFI: every librados call is `unsafe`, wrapped here
// in owned handles with a SAFETY comment on each block, so that nothing
// outside it needs unsafe code (the crate denies it elsewhere).
#![allow(unsafe_code)]

mod aio;
mod cluster;
mod ffi;
mod ioctx;
mod lock;
mod read;
mod stat;
mod write;

pub use cluster::Cluster;
pub use ioctx::IoCtx;
pub use lock::Locker;
pub use read::{OmapPairs, OmapRead};
pub use stat::ObjectStat;
pub use write::WriteOp;

use std::ffi::CString;
use std::os::raw::c_int;

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
