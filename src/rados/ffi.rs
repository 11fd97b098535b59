//! The exact librados C calls zonelog uses, declared by hand from Debian's
//! `librados-dev` (`/usr/include/rados/librados.h`, Ceph 16 Pacific).
//! Nothing outside
//! `crate::rados` calls these; the safe wrappers there own every handle.

#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_uchar, c_uint, c_void};

pub type rados_t = *mut c_void;
pub type rados_ioctx_t = *mut c_void;
pub type rados_write_op_t = *mut c_void;
pub type rados_read_op_t = *mut c_void;
pub type rados_omap_iter_t = *mut c_void;
pub type rados_completion_t = *mut c_void;
pub type rados_callback_t = Option<unsafe extern "C" fn(cb: rados_completion_t, arg: *mut c_void)>;

/// `struct timeval` of the C library (duration of a cls_lock lock).
#[repr(C)]
pub struct timeval {
    pub tv_sec: libc::time_t,
    pub tv_usec: libc::suseconds_t,
}

pub const LIBRADOS_LOCK_FLAG_MUST_RENEW: u8 = 1 << 1;
pub const LIBRADOS_CMPXATTR_OP_EQ: u8 = 1;
pub const LIBRADOS_CMPXATTR_OP_LT: u8 = 5;
pub const LIBRADOS_CREATE_EXCLUSIVE: c_int = 1;
pub const LIBRADOS_OPERATION_NOFLAG: c_int = 0;

#[link(name = "rados")]
extern "C" {
    pub fn rados_create2(
        pcluster: *mut rados_t,
        clustername: *const c_char,
        name: *const c_char,
        flags: u64,
    ) -> c_int;
    pub fn rados_conf_read_file(cluster: rados_t, path: *const c_char) -> c_int;
    pub fn rados_conf_set(cluster: rados_t, option: *const c_char, value: *const c_char) -> c_int;
    pub fn rados_connect(cluster: rados_t) -> c_int;
    pub fn rados_shutdown(cluster: rados_t);

    pub fn rados_ioctx_create(
        cluster: rados_t,
        pool_name: *const c_char,
        ioctx: *mut rados_ioctx_t,
    ) -> c_int;
    pub fn rados_ioctx_destroy(io: rados_ioctx_t);
    pub fn rados_ioctx_set_namespace(io: rados_ioctx_t, nspace: *const c_char);

    pub fn rados_create_write_op() -> rados_write_op_t;
    pub fn rados_release_write_op(write_op: rados_write_op_t);
    pub fn rados_write_op_create(
        write_op: rados_write_op_t,
        exclusive: c_int,
        category: *const c_char,
    );
    pub fn rados_write_op_omap_set2(
        write_op: rados_write_op_t,
        keys: *const *const c_char,
        vals: *const *const c_char,
        key_lens: *const usize,
        val_lens: *const usize,
        num: usize,
    );
    pub fn rados_write_op_omap_rm_keys2(
        write_op: rados_write_op_t,
        keys: *const *const c_char,
        key_lens: *const usize,
        keys_len: usize,
    );
    pub fn rados_write_op_omap_cmp2(
        write_op: rados_write_op_t,
        key: *const c_char,
        comparison_operator: u8,
        val: *const c_char,
        key_len: usize,
        val_len: usize,
        prval: *mut c_int,
    );
    pub fn rados_write_op_operate2(
        write_op: rados_write_op_t,
        io: rados_ioctx_t,
        oid: *const c_char,
        mtime: *mut libc::timespec,
        flags: c_int,
    ) -> c_int;
    pub fn rados_aio_write_op_operate(
        write_op: rados_write_op_t,
        io: rados_ioctx_t,
        completion: rados_completion_t,
        oid: *const c_char,
        mtime: *mut libc::time_t,
        flags: c_int,
    ) -> c_int;

    pub fn rados_create_read_op() -> rados_read_op_t;
    pub fn rados_release_read_op(read_op: rados_read_op_t);
    pub fn rados_read_op_omap_get_vals2(
        read_op: rados_read_op_t,
        start_after: *const c_char,
        filter_prefix: *const c_char,
        max_return: u64,
        iter: *mut rados_omap_iter_t,
        pmore: *mut c_uchar,
        prval: *mut c_int,
    );
    pub fn rados_read_op_omap_get_vals_by_keys2(
        read_op: rados_read_op_t,
        keys: *const *const c_char,
        num_keys: usize,
        key_lens: *const usize,
        iter: *mut rados_omap_iter_t,
        prval: *mut c_int,
    );
    pub fn rados_read_op_stat(
        read_op: rados_read_op_t,
        psize: *mut u64,
        pmtime: *mut libc::time_t,
        prval: *mut c_int,
    );
    pub fn rados_read_op_read(
        read_op: rados_read_op_t,
        offset: u64,
        len: usize,
        buffer: *mut c_char,
        bytes_read: *mut usize,
        prval: *mut c_int,
    );
    pub fn rados_aio_read_op_operate(
        read_op: rados_read_op_t,
        io: rados_ioctx_t,
        completion: rados_completion_t,
        oid: *const c_char,
        flags: c_int,
    ) -> c_int;
    pub fn rados_omap_get_next2(
        iter: rados_omap_iter_t,
        key: *mut *mut c_char,
        val: *mut *mut c_char,
        key_len: *mut usize,
        val_len: *mut usize,
    ) -> c_int;
    pub fn rados_omap_iter_size(iter: rados_omap_iter_t) -> c_uint;
    pub fn rados_omap_get_end(iter: rados_omap_iter_t);

    pub fn rados_aio_create_completion2(
        cb_arg: *mut c_void,
        cb_complete: rados_callback_t,
        pc: *mut rados_completion_t,
    ) -> c_int;
    pub fn rados_aio_wait_for_complete(c: rados_completion_t) -> c_int;
    pub fn rados_aio_get_return_value(c: rados_completion_t) -> c_int;
    pub fn rados_aio_release(c: rados_completion_t);
    pub fn rados_aio_get_version(c: rados_completion_t) -> u64;

    pub fn rados_lock_exclusive(
        io: rados_ioctx_t,
        oid: *const c_char,
        name: *const c_char,
        cookie: *const c_char,
        desc: *const c_char,
        duration: *mut timeval,
        flags: u8,
    ) -> c_int;
    pub fn rados_unlock(
        io: rados_ioctx_t,
        oid: *const c_char,
        name: *const c_char,
        cookie: *const c_char,
    ) -> c_int;
    pub fn rados_list_lockers(
        io: rados_ioctx_t,
        oid: *const c_char,
        name: *const c_char,
        exclusive: *mut c_int,
        tag: *mut c_char,
        tag_len: *mut usize,
        clients: *mut c_char,
        clients_len: *mut usize,
        cookies: *mut c_char,
        cookies_len: *mut usize,
        addrs: *mut c_char,
        addrs_len: *mut usize,
    ) -> isize;
    pub fn rados_break_lock(
        io: rados_ioctx_t,
        oid: *const c_char,
        name: *const c_char,
        client: *const c_char,
        cookie: *const c_char,
    ) -> c_int;
}
