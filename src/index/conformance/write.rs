//! Writes: atomic batches with their markers, reopening, statistics,
//! concurrent writers, watermarks.

use std::collections::BTreeSet;

use super::{every_write, latest, read_all, record, stored, ConformanceBackend};
use crate::index::{EntryId, EntryRef, IndexError, WriteBatch};
use crate::record::Op;

/// A batch with one invalid record writes nothing, not even its markers.
pub async fn invalid_batch_writes_nothing(b: &dyn ConformanceBackend) {
    let index = b.open(every_write(2)).await.unwrap();
    let long_key = "k".repeat(1025);
    for bad in [
        record("", "k", None, Op::Put, 1),
        record("bkt", &long_key, None, Op::Put, 1),
        record("bkt", "", None, Op::Put, 1),
    ] {
        let batch = WriteBatch::new()
            .record(record("bkt", "good", None, Op::Put, 1))
            .record(bad)
            .marker("src", b"should-not-commit".to_vec());
        let err = index.write(batch).await.unwrap_err();
        assert!(
            matches!(err, IndexError::InvalidRecord { position: 1, .. }),
            "{err}"
        );
    }
    let err = index
        .write(
            WriteBatch::new()
                .record(record("bkt", "good", None, Op::Put, 1))
                .marker("", b"x".to_vec()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, IndexError::InvalidMarker { .. }), "{err}");
    assert!(read_all(&index).await.is_empty());
    assert_eq!(index.marker("src").await.unwrap(), None);
    assert_eq!(index.stats().await.unwrap().entries(), 0);
}

/// Markers commit with the entries of their batch and read back by name
/// and by prefix.
pub async fn markers_commit_with_entries(b: &dyn ConformanceBackend) {
    let index = b.open(every_write(2)).await.unwrap();
    assert_eq!(index.marker("rgw/data/0").await.unwrap(), None);
    index
        .write(
            WriteBatch::new()
                .record(record("bkt", "a", None, Op::Put, 1))
                .marker("rgw/data/0", b"1_0001".to_vec())
                .marker("rgw/data/1", b"1_0005".to_vec()),
        )
        .await
        .unwrap();
    index
        .write(WriteBatch::new().marker("rgw/data/0", b"1_0002".to_vec()))
        .await
        .unwrap();
    index
        .write(WriteBatch::new().marker("notify/x", b"n".to_vec()))
        .await
        .unwrap();
    assert_eq!(
        index.marker("rgw/data/0").await.unwrap().as_deref(),
        Some(&b"1_0002"[..])
    );
    let rgw = index.markers("rgw/").await.unwrap();
    let names: Vec<&str> = rgw.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["rgw/data/0", "rgw/data/1"]);
    assert_eq!(index.markers("").await.unwrap().len(), 3);
}

/// A reopened index keeps its entries and markers and refuses another
/// layout than the one it was created with.
pub async fn reopen_keeps_data_and_refuses_other_layout(b: &dyn ConformanceBackend) {
    let index = b.open(latest(3)).await.unwrap();
    index
        .write(
            WriteBatch::new()
                .record(record("bkt", "a", None, Op::Put, 7))
                .marker("m", b"1".to_vec()),
        )
        .await
        .unwrap();
    drop(index);
    let err = b
        .open(every_write(3))
        .await
        .err()
        .expect("mode mismatch refused");
    assert!(matches!(err, IndexError::LayoutMismatch { .. }), "{err}");
    assert!(err.to_string().contains("latest"), "{err}");
    let err = b
        .open(latest(4))
        .await
        .err()
        .expect("shard mismatch refused");
    assert!(matches!(err, IndexError::LayoutMismatch { .. }), "{err}");
    let index = b.open(latest(3)).await.unwrap();
    assert_eq!(read_all(&index).await.len(), 1);
    assert_eq!(index.marker("m").await.unwrap().as_deref(), Some(&b"1"[..]));
    // New keys after a reopen never collide with old ones.
    let w = stored(
        &index
            .write(WriteBatch::new().record(record("bkt", "b", None, Op::Put, 7)))
            .await
            .unwrap(),
    );
    assert_eq!(read_all(&index).await.len(), 2, "{w:?}");
}

/// Statistics count entries and bytes per shard and the oldest entry.
pub async fn stats_count_entries_bytes_and_age(b: &dyn ConformanceBackend) {
    let index = b.open(every_write(3)).await.unwrap();
    let empty = index.stats().await.unwrap();
    assert_eq!(empty.shards.len(), 3);
    assert_eq!(
        (empty.entries(), empty.bytes(), empty.oldest_time_ns()),
        (0, 0, None)
    );
    let mut batch = WriteBatch::new();
    for i in 0..30u64 {
        batch = batch.record(record("bkt", &format!("k{i}"), None, Op::Put, 1000 + i));
    }
    index.write(batch).await.unwrap();
    let stats = index.stats().await.unwrap();
    assert_eq!(stats.entries(), 30);
    assert!(stats.bytes() > 30 * 20);
    assert_eq!(stats.oldest_time_ns(), Some(1000));
    for s in &stats.shards {
        let n = index
            .read_shard(s.shard, EntryId::MIN, EntryId::MAX, 100)
            .await
            .unwrap()
            .len();
        assert_eq!(s.entries, n as u64);
    }
    let all: Vec<EntryRef> = read_all(&index)
        .await
        .iter()
        .map(|e| e.entry_ref())
        .collect();
    index.trim(&all[..10]).await.unwrap();
    let stats = index.stats().await.unwrap();
    assert_eq!(stats.entries(), 20);
    assert_eq!(stats.oldest_time_ns(), Some(1010));
}

/// Writers running at once all land, entries and markers.
pub async fn concurrent_writers_all_land(b: &dyn ConformanceBackend) {
    let index = b.open(every_write(8)).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let index = index.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..25u64 {
                let mut batch =
                    WriteBatch::new().marker(format!("writer/{w}"), n.to_string().into_bytes());
                for i in 0..4u64 {
                    batch = batch.record(record(
                        "bkt",
                        &format!("w{w}-{n}-{i}"),
                        None,
                        Op::Put,
                        1 + n,
                    ));
                }
                index.write(batch).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = read_all(&index).await;
    assert_eq!(all.len(), 8 * 25 * 4);
    let unique: BTreeSet<(u32, EntryId)> = all.iter().map(|e| (e.shard, e.id)).collect();
    assert_eq!(unique.len(), all.len());
    for w in 0..8 {
        assert_eq!(
            index
                .marker(&format!("writer/{w}"))
                .await
                .unwrap()
                .as_deref(),
            Some(&b"24"[..])
        );
    }
}

/// A watermark covers every entry committed before it was taken and none
/// committed after.
pub async fn watermark_covers_exactly_what_was_committed(b: &dyn ConformanceBackend) {
    let index = b.open(every_write(4)).await.unwrap();
    let first = stored(
        &index
            .write(
                WriteBatch::new()
                    .record(record("bkt", "a", None, Op::Put, 500))
                    .record(record("bkt", "b", None, Op::Put, 600)),
            )
            .await
            .unwrap(),
    );
    let mark = index.watermark().await.unwrap();
    assert!(first.iter().all(|r| mark.covers(&r.id)));
    // A late change with an older time, committed after the watermark.
    let late = stored(
        &index
            .write(WriteBatch::new().record(record("bkt", "late", None, Op::Put, 100)))
            .await
            .unwrap(),
    );
    assert!(!mark.covers(&late[0].id), "committed after the watermark");
    let covered: Vec<String> = read_all(&index)
        .await
        .into_iter()
        .filter(|e| mark.covers(&e.id))
        .map(|e| e.record.key)
        .collect();
    assert_eq!(covered, ["a", "b"]);
    assert!(index.watermark().await.unwrap().covers(&late[0].id));
    drop(index);
    // After a reopen the old entries stay covered and new ones are not.
    let index = b.open(every_write(4)).await.unwrap();
    let reopened = index.watermark().await.unwrap();
    assert!(reopened.covers(&late[0].id));
    let after = stored(
        &index
            .write(WriteBatch::new().record(record("bkt", "c", None, Op::Put, 50)))
            .await
            .unwrap(),
    );
    assert!(!reopened.covers(&after[0].id));
}
