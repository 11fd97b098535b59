//! The safe librados layer against the dev zone's pool: the omap compare
//! semantics the RADOS index relies on, and cls_lock behaviour.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use zonelog::rados::{Cluster, IoCtx, OmapRead, WriteOp};

fn ioctx() -> Option<IoCtx> {
    common::dev_zone()?;
    let conf = PathBuf::from(std::env::var("CEPH_CONF").expect("CEPH_CONF"));
    let pool = std::env::var("ZONELOG_DEV_RADOS_POOL").expect("ZONELOG_DEV_RADOS_POOL");
    let cluster: Arc<Cluster> =
        Cluster::connect(&conf, "admin", None, Duration::from_secs(30)).expect("connect");
    let ns = format!("api-{}-{}", std::process::id(), common::unique_bucket("t"));
    Some(IoCtx::new(&cluster, &pool, &ns).expect("ioctx"))
}

fn get(io: &IoCtx, oid: &str, key: &str) -> Option<Vec<u8>> {
    let keys = vec![key.as_bytes().to_vec()];
    let (pairs, _) = io.omap_read(oid, &OmapRead::Keys(&keys)).expect("read");
    pairs.into_iter().next().map(|(_, v)| v)
}

#[test]
fn omap_compare_is_stored_op_given_and_absent_is_empty() {
    let Some(io) = ioctx() else { return };
    let mut op = WriteOp::new().create(true);
    op.set("floor", "05");
    io.operate("obj", &op).expect("create");
    let err = io.operate("obj", &WriteOp::new().create(true)).unwrap_err();
    assert!(err.is_exists(), "{err}");
    // stored "05" < given "07": holds.
    let mut op = WriteOp::new();
    op.cmp_lt("floor", "07").set("a", "1");
    io.operate("obj", &op).expect("05 < 07 holds");
    assert_eq!(get(&io, "obj", "a").as_deref(), Some(&b"1"[..]));
    // stored "05" < given "03" does not hold: nothing of the op is applied.
    let mut op = WriteOp::new();
    op.set("b", "1").cmp_lt("floor", "03");
    let err = io.operate("obj", &op).unwrap_err();
    assert!(err.is_canceled(), "{err}");
    assert_eq!(get(&io, "obj", "b"), None);
    // An absent key compares as the empty value.
    let mut op = WriteOp::new();
    op.cmp_eq("missing", "").set("c", "1");
    io.operate("obj", &op).expect("absent equals empty");
    let mut op = WriteOp::new();
    op.cmp_eq("missing", "x");
    assert!(io.operate("obj", &op).unwrap_err().is_canceled());
    // Binary keys, removal, range reads with a prefix.
    let mut op = WriteOp::new();
    op.set(b"v.\0b\0k".to_vec(), "x").rm("a");
    io.operate("obj", &op).expect("binary key");
    let keys = vec![b"v.\0b\0k".to_vec(), b"a".to_vec()];
    let (pairs, _) = io.omap_read("obj", &OmapRead::Keys(&keys)).expect("read");
    assert_eq!(pairs, vec![(b"v.\0b\0k".to_vec(), b"x".to_vec())]);
    let (pairs, more) = io
        .omap_read(
            "obj",
            &OmapRead::Range {
                start_after: "",
                prefix: "",
                max: 2,
            },
        )
        .expect("range");
    assert_eq!(pairs.len(), 2);
    assert!(more);
    let results = io.operate_many(&[
        ("obj".to_string(), {
            let mut op = WriteOp::new();
            op.set("d", "1");
            op
        }),
        ("other".to_string(), {
            let mut op = WriteOp::new();
            op.cmp_eq("x", "y");
            op
        }),
    ]);
    assert!(results[0].is_ok());
    assert!(
        results[1].as_ref().unwrap_err().is_not_found()
            || results[1].as_ref().unwrap_err().is_canceled(),
        "{:?}",
        results[1]
    );
}

#[test]
fn cls_lock_excludes_renews_and_expires() {
    let Some(io) = ioctx() else { return };
    let ttl = Duration::from_millis(1500);
    io.lock_exclusive("ctl", "l", "a", "a", ttl, false)
        .expect("a takes it");
    let err = io
        .lock_exclusive("ctl", "l", "b", "b", ttl, false)
        .unwrap_err();
    assert!(err.is_busy(), "{err}");
    io.lock_exclusive("ctl", "l", "a", "a", ttl, true)
        .expect("a renews");
    let err = io
        .lock_exclusive("ctl", "l", "b", "b", ttl, true)
        .unwrap_err();
    assert!(err.is_not_found() || err.is_busy(), "{err}");
    let lockers = io.lockers("ctl", "l").expect("lockers");
    assert_eq!(lockers.len(), 1);
    assert_eq!(lockers[0].cookie, "a");
    std::thread::sleep(ttl + Duration::from_millis(300));
    let err = io
        .lock_exclusive("ctl", "l", "a", "a", ttl, true)
        .unwrap_err();
    assert!(
        err.is_not_found(),
        "an expired lock cannot be renewed: {err}"
    );
    assert!(io.lockers("ctl", "l").expect("lockers").is_empty());
    io.lock_exclusive("ctl", "l", "b", "b", ttl, false)
        .expect("b takes the expired lock");
    assert!(io.unlock("ctl", "l", "a").unwrap_err().is_not_found());
    io.unlock("ctl", "l", "b").expect("b unlocks");
    assert!(io
        .lockers("nothing-here", "l")
        .expect("no object")
        .is_empty());
}
