//! Reads: key order across shards, range bounds and paging, unique keys
//! for changes in the same nanosecond.

use std::collections::BTreeSet;

use super::{every_write, read_all, record, stored, ConformanceBackend};
use crate::index::{shard_of, EntryId, EntryRef, IndexError, WriteBatch};
use crate::record::Op;

/// Entries written out of time order are read back in key order.
pub async fn reads_come_back_in_key_order(b: &dyn ConformanceBackend) {
    let index = b.open(every_write(4)).await.unwrap();
    let times = [50u64, 10, 40, 20, 30, 10, 60, 5];
    let mut batch = WriteBatch::new();
    for (i, t) in times.iter().enumerate() {
        batch = batch.record(record("bkt", &format!("k{i}"), None, Op::Put, *t));
    }
    let written = index.write(batch).await.unwrap();
    assert_eq!(stored(&written).len(), times.len());
    let all = read_all(&index).await;
    let got: Vec<u64> = all.iter().map(|e| e.id.time_ns).collect();
    assert_eq!(got, vec![5, 10, 10, 20, 30, 40, 50, 60]);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    for e in &all {
        assert_eq!(
            e.shard,
            shard_of(&e.record.bucket, &e.record.key, 4),
            "entry in its hash shard"
        );
        assert_eq!(e.id.time_ns, e.record.time_ns().unwrap());
    }
    for shard in 0..4 {
        let page = index
            .read_shard(shard, EntryId::MIN, EntryId::MAX, 100)
            .await
            .unwrap();
        assert!(page.windows(2).all(|w| w[0].id < w[1].id));
        assert!(page.iter().all(|e| e.shard == shard));
    }
}

/// A shard read honours `from <= id < to` and `limit`, and pages
/// without gaps or repeats.
pub async fn range_bounds_and_paging(b: &dyn ConformanceBackend) {
    let index = b.open(every_write(1)).await.unwrap();
    let mut batch = WriteBatch::new();
    for t in 1..=20u64 {
        batch = batch.record(record("bkt", "same-key", None, Op::Put, t * 10));
    }
    index.write(batch).await.unwrap();
    let window = index
        .read_shard(0, EntryId::at(50), EntryId::at(100), 1000)
        .await
        .unwrap();
    let got: Vec<u64> = window.iter().map(|e| e.id.time_ns).collect();
    assert_eq!(
        got,
        vec![50, 60, 70, 80, 90],
        "from is inclusive, to is exclusive"
    );
    // Ids alone (what a trim reads) follow the same bounds and limit.
    let ids = index
        .read_shard_ids(0, EntryId::at(50), EntryId::at(100), 1000)
        .await
        .unwrap();
    assert_eq!(ids, window.iter().map(|e| e.id).collect::<Vec<_>>());
    let ids = index
        .read_shard_ids(0, EntryId::at(50), EntryId::MAX, 2)
        .await
        .unwrap();
    assert_eq!(ids, window[..2].iter().map(|e| e.id).collect::<Vec<_>>());
    let mut from = EntryId::MIN;
    let mut paged = Vec::new();
    loop {
        let page = index.read_shard(0, from, EntryId::MAX, 3).await.unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        from = last.id.successor().unwrap();
        paged.extend(page);
    }
    assert_eq!(paged.len(), 20);
    assert!(index
        .read_shard(0, EntryId::at(100), EntryId::at(100), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        index.read_shard(1, EntryId::MIN, EntryId::MAX, 10).await,
        Err(IndexError::NoSuchShard {
            shard: 1,
            shards: 1
        })
    ));
}

/// Many changes in one nanosecond, in two batches, all get their own key.
pub async fn same_nanosecond_changes_get_unique_keys(b: &dyn ConformanceBackend) {
    let index = b.open(every_write(2)).await.unwrap();
    let mut batch = WriteBatch::new();
    for i in 0..500 {
        batch = batch.record(record("bkt", &format!("k{}", i % 3), None, Op::Put, 1_000));
    }
    let first = stored(&index.write(batch.clone()).await.unwrap());
    let second = stored(&index.write(batch).await.unwrap());
    let ids: BTreeSet<EntryRef> = first.iter().chain(&second).copied().collect();
    assert_eq!(ids.len(), 1000);
    assert_eq!(read_all(&index).await.len(), 1000);
}
