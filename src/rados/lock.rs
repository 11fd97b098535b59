//! `cls_lock` exclusive locks on an object: take, renew, give up, break,
//! and list the holders.

use std::os::raw::c_int;
use std::time::Duration;

use super::{check, cstring, ffi, IoCtx, RadosError};

/// A holder of a `cls_lock` lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locker {
    /// The entity, e.g. `client.4172`.
    pub client: String,
    pub cookie: String,
}

impl IoCtx {
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
