//! Latest mode: one entry per object version, frozen windows kept as
//! planned, trims of replaced entries.

use super::{latest, read_all, record, ConformanceBackend};
use crate::index::{EntryId, EntryRef, FrozenWindow, IndexedEntry, WriteBatch, Written};
use crate::record::Op;

/// Latest mode keeps one entry per (bucket, key, version), the newest.
pub async fn latest_mode_keeps_one_entry_per_version(b: &dyn ConformanceBackend) {
    let index = b.open(latest(4)).await.unwrap();
    index
        .write(
            WriteBatch::new()
                .record(record("bkt", "obj", None, Op::Put, 10))
                .record(record("bkt", "obj", None, Op::Put, 20))
                .record(record("bkt", "obj", Some("v1"), Op::Put, 15))
                .record(record("bkt", "other", None, Op::Put, 12)),
        )
        .await
        .unwrap();
    let all = read_all(&index).await;
    assert_eq!(all.len(), 3, "{all:?}");
    let obj = all
        .iter()
        .find(|e| e.record.key == "obj" && e.record.version_id.is_none())
        .unwrap();
    assert_eq!(
        obj.id.time_ns, 20,
        "the newer change replaced the older one in the same batch"
    );
    // A newer change in a later batch replaces the pending one.
    index
        .write(WriteBatch::new().record(record("bkt", "obj", None, Op::Delete, 30)))
        .await
        .unwrap();
    // An older change arriving late does not replace a newer one.
    let late = index
        .write(WriteBatch::new().record(record("bkt", "obj", None, Op::Put, 25)))
        .await
        .unwrap();
    assert!(matches!(late[0], Written::Superseded(_)), "{late:?}");
    let all = read_all(&index).await;
    assert_eq!(all.len(), 3);
    let obj = all
        .iter()
        .find(|e| e.record.key == "obj" && e.record.version_id.is_none())
        .unwrap();
    assert_eq!((obj.id.time_ns, obj.record.op), (30, Op::Delete));
    let stats = index.stats().await.unwrap();
    assert_eq!(stats.entries(), 3);
}

/// A window planned, then newer changes of what it covers: the covered
/// entries stay as planned (a resumed upload writes the same bytes), the
/// newer ones are stored beside them and replaced as usual; once lifted,
/// a newer change replaces again.
pub async fn latest_mode_keeps_a_frozen_window_as_planned(b: &dyn ConformanceBackend) {
    let index = b.open(latest(2)).await.unwrap();
    index
        .write(
            WriteBatch::new()
                .record(record("bkt", "obj", None, Op::Put, 10))
                .record(record("bkt", "other", None, Op::Put, 11)),
        )
        .await
        .unwrap();
    let window = FrozenWindow {
        cutoff: EntryId::at(100),
        watermark: index.watermark().await.unwrap(),
    };
    index.freeze(Some(window), None).await.unwrap();
    for (op, time) in [(Op::Delete, 20), (Op::Put, 30)] {
        index
            .write(WriteBatch::new().record(record("bkt", "obj", None, op, time)))
            .await
            .unwrap();
    }
    let times = |all: &[IndexedEntry]| -> Vec<(String, u64)> {
        all.iter()
            .map(|e| (e.record.key.clone(), e.id.time_ns))
            .collect()
    };
    let all = read_all(&index).await;
    assert_eq!(
        times(&all),
        [("obj".into(), 10), ("other".into(), 11), ("obj".into(), 30)],
        "the window's entries stay; the newest change beside them"
    );
    assert_eq!(all.iter().filter(|e| window.covers(&e.id)).count(), 2);
    index.freeze(None, None).await.unwrap();
    index
        .write(WriteBatch::new().record(record("bkt", "other", None, Op::Put, 40)))
        .await
        .unwrap();
    let obj_planned: Vec<EntryRef> = all[..1].iter().map(|e| e.entry_ref()).collect();
    assert_eq!(index.trim(&obj_planned).await.unwrap(), 1);
    index
        .write(WriteBatch::new().record(record("bkt", "obj", None, Op::Put, 50)))
        .await
        .unwrap();
    assert_eq!(
        times(&read_all(&index).await),
        [("other".into(), 40), ("obj".into(), 50)],
        "lifted, a newer change replaces the pending one again"
    );
}

/// A trim of an uploaded window whose entry a newer change replaced
/// meanwhile keeps the newer one.
pub async fn latest_mode_trim_of_replaced_entry_keeps_newer(b: &dyn ConformanceBackend) {
    let index = b.open(latest(2)).await.unwrap();
    index
        .write(WriteBatch::new().record(record("bkt", "obj", None, Op::Put, 10)))
        .await
        .unwrap();
    let window: Vec<EntryRef> = read_all(&index)
        .await
        .iter()
        .map(|e| e.entry_ref())
        .collect();
    // The object changes again while the collector uploads the window.
    index
        .write(WriteBatch::new().record(record("bkt", "obj", None, Op::Put, 20)))
        .await
        .unwrap();
    assert_eq!(
        index.trim(&window).await.unwrap(),
        0,
        "the read entry was already replaced"
    );
    let left = read_all(&index).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id.time_ns, 20);
    // Trimming the newer one leaves nothing, and the object can be captured again.
    let refs: Vec<EntryRef> = left.iter().map(|e| e.entry_ref()).collect();
    assert_eq!(index.trim(&refs).await.unwrap(), 1);
    assert!(read_all(&index).await.is_empty());
    index
        .write(WriteBatch::new().record(record("bkt", "obj", None, Op::Put, 5)))
        .await
        .unwrap();
    assert_eq!(
        read_all(&index).await.len(),
        1,
        "after a trim an older time is new again"
    );
}
