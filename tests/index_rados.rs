//! The RADOS backend runs the whole index and lease conformance suite, unchanged,
//! against the dev zone's pool — each test in a namespace of its own.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use zonelog::index::conformance::ConformanceBackend;
use zonelog::index::rados::{RadosIndex, RadosOptions};
use zonelog::index::{ChangeIndex, IndexError, IndexLayout, IndexMode};
use zonelog::lease::LeaseStore;

struct Rados {
    options: RadosOptions,
}

/// Options for a fresh namespace in the dev zone's pool.
pub fn dev_options(label: &str) -> RadosOptions {
    common::dev_zone().expect("the RADOS tests need the dev Ceph zone");
    RadosOptions {
        ceph_conf: PathBuf::from(std::env::var("CEPH_CONF").expect("CEPH_CONF is set")),
        user: "admin".into(),
        keyring: None,
        pool: std::env::var("ZONELOG_DEV_RADOS_POOL").expect("ZONELOG_DEV_RADOS_POOL is set"),
        namespace: common::unique_bucket(label),
        zone: "test".into(),
        op_timeout: Duration::from_secs(30),
    }
}

fn fresh() -> Rados {
    Rados {
        options: dev_options("conformance"),
    }
}

#[async_trait]
impl ConformanceBackend for Rados {
    async fn open(&self, layout: IndexLayout) -> Result<Arc<dyn ChangeIndex>, IndexError> {
        Ok(Arc::new(
            RadosIndex::open(self.options.clone(), layout).await?,
        ))
    }

    async fn leases(&self) -> Arc<dyn LeaseStore> {
        let layout = IndexLayout {
            shards: 4,
            mode: IndexMode::EveryWrite,
        };
        let mut options = self.options.clone();
        options.namespace.push_str("-leases");
        Arc::new(RadosIndex::open(options, layout).await.expect("open"))
    }

    async fn open_with_leases(
        &self,
        layout: IndexLayout,
    ) -> Result<(Arc<dyn ChangeIndex>, Arc<dyn LeaseStore>), IndexError> {
        let index = Arc::new(RadosIndex::open(self.options.clone(), layout).await?);
        Ok((index.clone(), index))
    }
}

zonelog::index_conformance_tests!(fresh());

/// Two instances (two connections, as on two machines) share one index:
/// both write concurrently, each sees the other's entries and markers, and
/// a watermark taken by one covers what the other committed before it and
/// nothing the other commits after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_index_and_watermark() {
    use zonelog::index::conformance::{read_all, record};
    use zonelog::index::WriteBatch;
    use zonelog::record::Op;
    let options = dev_options("shared");
    for mode in [IndexMode::EveryWrite, IndexMode::Latest] {
        let mut options = options.clone();
        options.namespace.push_str(mode.as_str());
        let layout = IndexLayout { shards: 4, mode };
        let a: Arc<dyn ChangeIndex> =
            Arc::new(RadosIndex::open(options.clone(), layout).await.unwrap());
        let b: Arc<dyn ChangeIndex> =
            Arc::new(RadosIndex::open(options.clone(), layout).await.unwrap());
        let mut tasks = Vec::new();
        for (name, index) in [("a", a.clone()), ("b", b.clone())] {
            tasks.push(tokio::spawn(async move {
                for n in 0..20u64 {
                    let mut batch = WriteBatch::new().marker(format!("w/{name}"), n.to_string());
                    for i in 0..5u64 {
                        batch = batch.record(record(
                            "bkt",
                            &format!("{name}-{n}-{i}"),
                            None,
                            Op::Put,
                            1000 + n,
                        ));
                    }
                    index.write(batch).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(read_all(&a).await.len(), 200);
        assert_eq!(read_all(&b).await.len(), 200);
        assert_eq!(a.marker("w/b").await.unwrap().as_deref(), Some(&b"19"[..]));
        let mark = a.watermark().await.unwrap();
        assert!(read_all(&b).await.iter().all(|e| mark.covers(&e.id)));
        // b's session predates the watermark: its next write must not be covered.
        b.write(WriteBatch::new().record(record("bkt", "late", None, Op::Put, 5)))
            .await
            .unwrap();
        let late: Vec<_> = read_all(&a)
            .await
            .into_iter()
            .filter(|e| e.record.key == "late")
            .collect();
        assert_eq!(late.len(), 1);
        assert!(
            !mark.covers(&late[0].id),
            "{mode}: committed after the watermark"
        );
        if mode == IndexMode::Latest {
            // b replaces a's pending entry for the same object.
            b.write(WriteBatch::new().record(record("bkt", "a-0-0", None, Op::Delete, 5000)))
                .await
                .unwrap();
            let all = read_all(&a).await;
            assert_eq!(all.len(), 201);
            let e = all.iter().find(|e| e.record.key == "a-0-0").unwrap();
            assert_eq!(e.record.op, Op::Delete);
        }
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use zonelog::index::conformance::{check_against_model, ModelOp};

    fn ops() -> impl Strategy<Value = Vec<ModelOp>> {
        common::model_ops(10)
    }

    fn run(mode: IndexMode, ops: Vec<ModelOp>) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let index: Arc<dyn ChangeIndex> = Arc::new(
                RadosIndex::open(dev_options("model"), IndexLayout { shards: 3, mode })
                    .await
                    .expect("open"),
            );
            check_against_model(&index, &ops).await;
        });
    }

    proptest! {
        // Each case is a fresh namespace on the dev cluster: few cases.
        #![proptest_config(ProptestConfig::with_cases(12))]

        #[test]
        fn every_write_mode_matches_the_model(ops in ops()) {
            run(IndexMode::EveryWrite, ops);
        }

        #[test]
        fn latest_mode_matches_the_model(ops in ops()) {
            run(IndexMode::Latest, ops);
        }
    }
}

/// A writer killed between its shard ops and its markers leaves an intent;
/// `recover` (run by the next capture holder) applies the missing shard
/// parts and then the markers, so every record is indexed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_finishes_a_half_written_batch_exactly_once() {
    use zonelog::index::conformance::{read_all, record};
    use zonelog::index::WriteBatch;
    use zonelog::record::Op;
    for mode in [IndexMode::EveryWrite, IndexMode::Latest] {
        for applied in [0usize, 1, 3] {
            let mut options = dev_options("recover");
            options.namespace.push_str(&format!("-{mode}-{applied}"));
            let layout = IndexLayout { shards: 4, mode };
            let index = RadosIndex::open(options.clone(), layout).await.unwrap();
            let mut batch = WriteBatch::new().marker("rgw/x", b"7".to_vec());
            for i in 0..40u64 {
                batch = batch.record(record("bkt", &format!("k{i}"), None, Op::Put, 100 + i));
            }
            index.write_and_stop(batch, applied).await.unwrap();
            let index: Arc<dyn ChangeIndex> = Arc::new(index);
            assert_eq!(
                index.marker("rgw/x").await.unwrap(),
                None,
                "no marker before recovery"
            );
            let other: Arc<dyn ChangeIndex> =
                Arc::new(RadosIndex::open(options, layout).await.unwrap());
            assert_eq!(other.recover().await.unwrap(), 1);
            assert_eq!(other.recover().await.unwrap(), 0, "nothing left to finish");
            let all = read_all(&other).await;
            let keys: std::collections::BTreeSet<String> =
                all.iter().map(|e| e.record.key.clone()).collect();
            assert_eq!(
                (all.len(), keys.len()),
                (40, 40),
                "{mode}, {applied} shards applied"
            );
            assert_eq!(
                other.marker("rgw/x").await.unwrap().as_deref(),
                Some(&b"7"[..])
            );
            // The index keeps working normally afterwards.
            other
                .write(
                    WriteBatch::new()
                        .record(record("bkt", "after", None, Op::Put, 1))
                        .marker("rgw/x", b"8".to_vec()),
                )
                .await
                .unwrap();
            assert_eq!(read_all(&index).await.len(), 41);
        }
    }
}
