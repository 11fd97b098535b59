//! The connection to a cluster: one `rados_t`, shut down when the last
//! [`IoCtx`](super::IoCtx) holding it is gone.

use std::path::Path;
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use super::{check, cstring, ffi, RadosError};

/// A connection to a Ceph cluster.
pub struct Cluster {
    pub(super) handle: ffi::rados_t,
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
