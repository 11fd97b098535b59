//! Trims: exactly the entries read, exactly the window a watermark covers.

use super::{every_write, read_all, record, ConformanceBackend};
use crate::index::{EntryId, EntryRef, IndexError, WriteBatch};
use crate::record::Op;

/// A trim removes exactly the entries named: a late entry committed after
/// the read survives, and trimming them again removes nothing.
pub async fn trim_removes_exactly_what_was_read(b: &dyn ConformanceBackend) {
    let index = b.open(every_write(2)).await.unwrap();
    index
        .write(
            WriteBatch::new()
                .record(record("bkt", "a", None, Op::Put, 100))
                .record(record("bkt", "b", None, Op::Put, 200)),
        )
        .await
        .unwrap();
    let window: Vec<EntryRef> = read_all(&index)
        .await
        .iter()
        .map(|e| e.entry_ref())
        .collect();
    assert_eq!(window.len(), 2);
    // A change with an older source time arrives after the window was read.
    index
        .write(WriteBatch::new().record(record("bkt", "late", None, Op::Delete, 50)))
        .await
        .unwrap();
    assert_eq!(index.trim(&window).await.unwrap(), 2);
    let left = read_all(&index).await;
    assert_eq!(
        left.len(),
        1,
        "the late entry survives a trim that did not read it"
    );
    assert_eq!(left[0].record.key, "late");
    assert_eq!(
        index.trim(&window).await.unwrap(),
        0,
        "trimming again removes nothing"
    );
    assert_eq!(index.trim(&[]).await.unwrap(), 0);
}

/// `trim_covered` removes what the watermark covers below the cutoff,
/// never a late entry committed after the watermark.
pub async fn trim_covered_removes_exactly_the_window(b: &dyn ConformanceBackend) {
    // One shard, so every entry is in it; many entries, so backends that
    // drop whole runs of entries have whole runs to drop.
    let index = b.open(every_write(1)).await.unwrap();
    let mut batch = WriteBatch::new();
    for t in 1..=300u64 {
        batch = batch.record(record("bkt", &format!("k{t}"), None, Op::Put, t * 10));
    }
    index.write(batch).await.unwrap();
    let watermark = index.watermark().await.unwrap();
    // Late entries: older times, committed after the window was planned.
    index
        .write(
            WriteBatch::new()
                .record(record("bkt", "late-1", None, Op::Put, 5))
                .record(record("bkt", "late-2", None, Op::Put, 1_505)),
        )
        .await
        .unwrap();
    let to = EntryId::at(2_005);
    assert_eq!(index.trim_covered(0, to, watermark).await.unwrap(), 200);
    let keys: Vec<String> = read_all(&index)
        .await
        .into_iter()
        .map(|e| e.record.key)
        .collect();
    let mut want = vec!["late-1".to_string(), "late-2".to_string()];
    want.extend((201..=300u64).map(|t| format!("k{t}")));
    assert_eq!(
        keys, want,
        "late entries and entries from `to` on survive, in order"
    );
    assert_eq!(
        index.trim_covered(0, to, watermark).await.unwrap(),
        0,
        "trimming again removes nothing"
    );
    assert!(matches!(
        index.trim_covered(1, to, watermark).await,
        Err(IndexError::NoSuchShard { .. })
    ));
    let everything = index.watermark().await.unwrap();
    assert_eq!(
        index
            .trim_covered(0, EntryId::MAX, everything)
            .await
            .unwrap(),
        102
    );
    assert!(read_all(&index).await.is_empty());
}
