//! Leases beside the index: exclusion, expiry, fencing tokens, and the
//! writes of a superseded holder refused.

use std::time::Duration;

use super::{latest, read_all, record, ConformanceBackend};
use crate::index::{EntryId, Fence, FrozenWindow, IndexError, IndexedEntry, WriteBatch, Written};
use crate::lease::LeaseError;
use crate::record::Op;

/// One holder at a time per lease name; a lease expires unless renewed;
/// every new holder gets a larger token; bad requests are refused.
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
    let window = FrozenWindow {
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
    let keys =
        |all: Vec<IndexedEntry>| -> Vec<String> { all.into_iter().map(|e| e.record.key).collect() };
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
