//! The conformance suite every index backend must pass, unchanged.
//!
//! A backend's test file implements [`ConformanceBackend`] (a fresh, empty
//! location per instance) and expands [`crate::index_conformance_tests!`],
//! which turns each check below into its own test.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::DateTime;

use super::{
    shard_of, ChangeIndex, EntryId, EntryRef, Fence, IndexError, IndexLayout, IndexMode,
    MergedReader, WriteBatch, Written,
};
use crate::lease::{LeaseError, LeaseStore};
use crate::record::{ChangeRecord, Op, Provenance};

/// One fresh storage location for the suite.
#[async_trait]
pub trait ConformanceBackend: Send + Sync {
    /// Opens (creating on first use) the index at this backend's location.
    /// Called again after the previous handle was dropped, to test reopening.
    async fn open(&self, layout: IndexLayout) -> Result<Arc<dyn ChangeIndex>, IndexError>;
    /// The lease store that lives beside the index at this location.
    async fn leases(&self) -> Arc<dyn LeaseStore>;
    /// An index and the lease store its fenced writes check: one handle.
    async fn open_with_leases(
        &self,
        layout: IndexLayout,
    ) -> Result<(Arc<dyn ChangeIndex>, Arc<dyn LeaseStore>), IndexError>;
}

/// A record for tests: `time_ns` is the source time.
pub fn record(
    bucket: &str,
    key: &str,
    version: Option<&str>,
    op: Op,
    time_ns: u64,
) -> ChangeRecord {
    ChangeRecord {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id: version.map(str::to_string),
        op,
        time: DateTime::from_timestamp_nanos(time_ns as i64),
        size: Some(time_ns % 1000),
        etag: Some(format!("etag-{time_ns}")),
        mtime: None,
        source: Provenance::Test,
    }
}

fn every_write(shards: u32) -> IndexLayout {
    IndexLayout {
        shards,
        mode: IndexMode::EveryWrite,
    }
}

fn latest(shards: u32) -> IndexLayout {
    IndexLayout {
        shards,
        mode: IndexMode::Latest,
    }
}

fn stored(written: &[Written]) -> Vec<EntryRef> {
    written
        .iter()
        .filter_map(|w| match w {
            Written::Stored(r) => Some(*r),
            Written::Superseded(_) => None,
        })
        .collect()
}

/// Every entry of the index, merged by key.
pub async fn read_all(index: &Arc<dyn ChangeIndex>) -> Vec<super::IndexedEntry> {
    let mut reader = MergedReader::new(index.clone(), EntryId::MIN, EntryId::MAX, 7);
    let mut out = Vec::new();
    while let Some(e) = reader.next().await.expect("merged read") {
        out.push(e);
    }
    out
}

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
    let window = super::FrozenWindow {
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
    let times = |all: &[super::IndexedEntry]| -> Vec<(String, u64)> {
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

pub async fn leases_exclude_expire_and_fence(b: &dyn ConformanceBackend) {
    let leases = b.leases().await;
    let ttl = Duration::from_millis(1500);
    let a = leases.acquire("control", "holder-a", ttl).await.unwrap();
    assert_eq!(a.holder, "holder-a");
    match leases.acquire("control", "holder-b", ttl).await {
        Err(LeaseError::Held { holder, .. }) => assert_eq!(holder, "holder-a"),
        other => panic!("second contender must be refused, got {other:?}"),
    }
    // Another name is independent.
    let s = leases.acquire("shard-3", "holder-b", ttl).await.unwrap();
    // Re-acquiring what we hold extends it and keeps the token.
    let a2 = leases.acquire("control", "holder-a", ttl).await.unwrap();
    assert_eq!(a2.token, a.token);
    let a3 = leases.renew(&a2, ttl).await.unwrap();
    assert_eq!(a3.token, a.token);
    assert!(a3.expires_at >= a2.expires_at);
    assert_eq!(
        leases.holder("control").await.unwrap().map(|l| l.holder),
        Some("holder-a".into())
    );
    // Let it expire: the dead holder's lease frees itself.
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    let b1 = leases.acquire("control", "holder-b", ttl).await.unwrap();
    assert!(b1.token > a.token, "a new holder gets a larger token");
    match leases.renew(&a3, ttl).await {
        Err(LeaseError::Lost { .. }) => {}
        other => panic!("renew after loss must fail, got {other:?}"),
    }
    // Releasing a lost lease does not free the new holder's.
    leases.release(&a3).await.unwrap();
    assert_eq!(
        leases.holder("control").await.unwrap().map(|l| l.holder),
        Some("holder-b".into())
    );
    leases.release(&b1).await.unwrap();
    assert_eq!(leases.holder("control").await.unwrap(), None);
    let a4 = leases.acquire("control", "holder-a", ttl).await.unwrap();
    assert!(a4.token > b1.token, "tokens keep growing across releases");
    leases.release(&a4).await.unwrap();
    leases.release(&s).await.unwrap();
    assert!(matches!(
        leases.acquire("control", "holder-a", Duration::ZERO).await,
        Err(LeaseError::Invalid(_))
    ));
}

/// A holder frozen past its lease (its renewals stopped): its fenced
/// writes land while nobody else took the lease, and once a newer holder
/// did, every one of them is refused whole — markers, entries, freezes —
/// while the newer holder's and unfenced writes land as before.
pub async fn writes_of_a_superseded_lease_holder_are_refused(b: &dyn ConformanceBackend) {
    let (index, leases) = b.open_with_leases(latest(4)).await.unwrap();
    let ttl = Duration::from_millis(1000);
    let old = Fence::of(&leases.acquire("control", "old", ttl).await.unwrap());
    let write = |batch: WriteBatch, fence: &Fence| {
        let index = index.clone();
        let batch = batch.fenced(Some(fence.clone()));
        async move { index.write(batch).await }
    };
    let entry = |key: &str, time| WriteBatch::new().record(record("bkt", key, None, Op::Put, time));
    write(entry("a", 10).marker("state", b"1".to_vec()), &old)
        .await
        .unwrap();
    let window = super::FrozenWindow {
        cutoff: EntryId::at(100),
        watermark: index.watermark().await.unwrap(),
    };
    index.freeze(Some(window), Some(&old)).await.unwrap();
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    // Expired, but nobody newer: nothing to fence against yet.
    write(WriteBatch::new().marker("state", b"2".to_vec()), &old)
        .await
        .unwrap();

    let new = Fence::of(&leases.acquire("control", "new", ttl).await.unwrap());
    assert!(new.token > old.token);
    index.freeze(Some(window), Some(&new)).await.unwrap();
    let refused = |result: Result<Vec<Written>, IndexError>| match result {
        Err(IndexError::Fenced { lease, token }) => {
            assert_eq!((lease, token), ("control".into(), old.token))
        }
        other => panic!("a superseded holder's write must be fenced, got {other:?}"),
    };
    refused(write(WriteBatch::new().marker("state", b"0".to_vec()), &old).await);
    refused(write(entry("b", 20).marker("state", b"0".to_vec()), &old).await);
    refused(write(entry("c", 30), &old).await);
    match index.freeze(None, Some(&old)).await {
        Err(IndexError::Fenced { .. }) => {}
        other => panic!("a superseded holder's freeze must be fenced, got {other:?}"),
    }
    assert_eq!(index.marker("state").await.unwrap(), Some(b"2".to_vec()));
    let keys = |all: Vec<super::IndexedEntry>| -> Vec<String> {
        all.into_iter().map(|e| e.record.key).collect()
    };
    assert_eq!(
        keys(read_all(&index).await),
        ["a"],
        "nothing of a refused write landed"
    );
    // The newer holder still froze the window: a change of `a` is stored
    // beside it, not over it.
    write(entry("a", 40).marker("state", b"3".to_vec()), &new)
        .await
        .unwrap();
    assert_eq!(keys(read_all(&index).await), ["a", "a"]);
    index
        .write(entry("d", 50))
        .await
        .expect("unfenced writes are not affected");
    // Another lease's term is its own.
    let capture = Fence::of(&leases.acquire("capture", "old", ttl).await.unwrap());
    write(
        WriteBatch::new().marker("position", b"9".to_vec()),
        &capture,
    )
    .await
    .unwrap();
    // A release keeps the newer token: the old holder stays fenced.
    let held = leases.holder("control").await.unwrap().unwrap();
    leases.release(&held).await.unwrap();
    refused(write(WriteBatch::new().marker("state", b"0".to_vec()), &old).await);
    assert_eq!(index.marker("state").await.unwrap(), Some(b"3".to_vec()));
}

/// Expands to one `#[tokio::test]` per conformance check. `$make` is an
/// expression giving a fresh [`ConformanceBackend`].
#[macro_export]
macro_rules! index_conformance_tests {
    ($make:expr) => {
        $crate::index_conformance_tests!(@each $make;
            reads_come_back_in_key_order,
            range_bounds_and_paging,
            same_nanosecond_changes_get_unique_keys,
            trim_removes_exactly_what_was_read,
            trim_covered_removes_exactly_the_window,
            invalid_batch_writes_nothing,
            markers_commit_with_entries,
            reopen_keeps_data_and_refuses_other_layout,
            latest_mode_keeps_one_entry_per_version,
            latest_mode_trim_of_replaced_entry_keeps_newer,
            latest_mode_keeps_a_frozen_window_as_planned,
            stats_count_entries_bytes_and_age,
            concurrent_writers_all_land,
            watermark_covers_exactly_what_was_committed,
            leases_exclude_expire_and_fence,
            writes_of_a_superseded_lease_holder_are_refused
        );
    };
    (@each $make:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let backend = $make;
                $crate::index::conformance::$check(&backend).await;
            }
        )*
    };
}

/// One step of a model-checked history (see [`check_against_model`]).
#[derive(Debug, Clone)]
pub enum ModelOp {
    /// Records as (bucket number, key number, version number, time).
    Write(Vec<(u8, u8, Option<u8>, u64)>),
    /// Trims the live entries at these positions of the merged read (modulo
    /// its length), plus every entry trimmed before (which must be no-ops).
    Trim(Vec<usize>),
    /// Takes a watermark, as the collector does when it plans a window.
    Watermark,
    /// `trim_covered` of shard (modulo the shard count) up to a time, under
    /// the last watermark taken.
    TrimCovered(u32, u64),
}

/// Runs `ops` against an empty index and, after every step, checks that a
/// merged read returns exactly the model's live set in key order, that
/// trims remove exactly the live entries asked for, and — in latest mode —
/// that no object version ever has two entries. Used by property tests.
pub async fn check_against_model(index: &Arc<dyn ChangeIndex>, ops: &[ModelOp]) {
    use std::collections::BTreeMap;
    let latest_mode = index.layout().mode == IndexMode::Latest;
    let shards = index.layout().shards;
    let mut live: BTreeMap<(EntryId, u32), ChangeRecord> = BTreeMap::new();
    let mut by_version: BTreeMap<(String, String, Option<String>), (EntryId, u32)> =
        BTreeMap::new();
    let mut trimmed: Vec<EntryRef> = Vec::new();
    let mut watermark = index.watermark().await.expect("watermark");
    // A trim removed exactly the `chosen` live entries: the model forgets
    // them, and later trims name them again (which must remove nothing).
    let forget = |live: &mut BTreeMap<(EntryId, u32), ChangeRecord>,
                  by_version: &mut BTreeMap<_, _>,
                  trimmed: &mut Vec<EntryRef>,
                  removed: u64,
                  chosen: Vec<(EntryId, u32)>| {
        assert_eq!(
            removed,
            chosen.len() as u64,
            "a trim removes exactly the live entries it covers"
        );
        for key in chosen {
            let r = live.remove(&key).expect("chosen from live");
            if latest_mode {
                by_version.remove(&(r.bucket, r.key, r.version_id));
            }
            trimmed.push(EntryRef {
                shard: key.1,
                id: key.0,
            });
        }
    };
    for op in ops {
        match op {
            ModelOp::Watermark => {
                watermark = index.watermark().await.expect("watermark");
            }
            ModelOp::TrimCovered(shard, time) => {
                let shard = shard % shards;
                let to = EntryId::at(*time);
                let chosen: Vec<(EntryId, u32)> = live
                    .keys()
                    .filter(|(id, s)| *s == shard && *id < to && watermark.covers(id))
                    .copied()
                    .collect();
                let removed = index
                    .trim_covered(shard, to, watermark)
                    .await
                    .expect("trim_covered");
                forget(&mut live, &mut by_version, &mut trimmed, removed, chosen);
            }
            ModelOp::Write(records) => {
                let records: Vec<ChangeRecord> = records
                    .iter()
                    .map(|(b, k, v, t)| {
                        record(
                            &format!("bucket-{b}"),
                            &format!("key-{k}"),
                            v.map(|v| format!("v{v}")).as_deref(),
                            Op::Put,
                            *t,
                        )
                    })
                    .collect();
                let mut batch = WriteBatch::new();
                for r in &records {
                    batch = batch.record(r.clone());
                }
                let written = index.write(batch).await.expect("write");
                assert_eq!(written.len(), records.len());
                for (r, w) in records.into_iter().zip(written) {
                    let version = (r.bucket.clone(), r.key.clone(), r.version_id.clone());
                    match w {
                        Written::Stored(at) => {
                            assert_eq!(at.shard, shard_of(&r.bucket, &r.key, shards));
                            assert_eq!(at.id.time_ns, r.time_ns().unwrap());
                            if latest_mode {
                                if let Some(old) = by_version.get(&version) {
                                    assert!(old.0.time_ns <= at.id.time_ns);
                                    live.remove(old);
                                }
                                by_version.insert(version, (at.id, at.shard));
                            }
                            assert!(live.insert((at.id, at.shard), r).is_none(), "unique key");
                        }
                        Written::Superseded(by) => {
                            assert!(latest_mode, "only latest mode supersedes");
                            assert_eq!(by_version.get(&version), Some(&(by.id, by.shard)));
                            assert!(by.id.time_ns > r.time_ns().unwrap());
                        }
                    }
                }
            }
            ModelOp::Trim(positions) => {
                let keys: Vec<(EntryId, u32)> = live.keys().copied().collect();
                let mut chosen: BTreeSet<(EntryId, u32)> = BTreeSet::new();
                if !keys.is_empty() {
                    for p in positions {
                        chosen.insert(keys[p % keys.len()]);
                    }
                }
                let mut refs: Vec<EntryRef> = chosen
                    .iter()
                    .map(|(id, shard)| EntryRef {
                        shard: *shard,
                        id: *id,
                    })
                    .collect();
                refs.extend(trimmed.iter().copied());
                let removed = index.trim(&refs).await.expect("trim");
                forget(
                    &mut live,
                    &mut by_version,
                    &mut trimmed,
                    removed,
                    chosen.into_iter().collect(),
                );
            }
        }
        let all = read_all(index).await;
        let got: Vec<(EntryId, u32, &ChangeRecord)> =
            all.iter().map(|e| (e.id, e.shard, &e.record)).collect();
        let want: Vec<(EntryId, u32, &ChangeRecord)> =
            live.iter().map(|((id, s), r)| (*id, *s, r)).collect();
        assert_eq!(got, want, "reads return exactly the live set, in key order");
        if latest_mode {
            let versions: BTreeSet<_> = all
                .iter()
                .map(|e| (&e.record.bucket, &e.record.key, &e.record.version_id))
                .collect();
            assert_eq!(versions.len(), all.len(), "one entry per object version");
        }
        let stats = index.stats().await.expect("stats");
        assert_eq!(stats.entries(), live.len() as u64);
        assert_eq!(
            stats.oldest_time_ns(),
            live.keys().map(|(id, _)| id.time_ns).min()
        );
    }
}
