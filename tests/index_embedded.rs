//! The embedded backend runs the whole index and lease conformance suite.

use std::sync::Arc;

use async_trait::async_trait;
use tempfile::TempDir;
use zonelog::index::conformance::ConformanceBackend;
use zonelog::index::embedded::EmbeddedIndex;
use zonelog::index::{ChangeIndex, IndexError, IndexLayout, IndexMode};
use zonelog::lease::LeaseStore;

struct Embedded {
    dir: TempDir,
}

fn fresh() -> Embedded {
    Embedded {
        dir: tempfile::tempdir().expect("temp dir"),
    }
}

#[async_trait]
impl ConformanceBackend for Embedded {
    async fn open(&self, layout: IndexLayout) -> Result<Arc<dyn ChangeIndex>, IndexError> {
        Ok(Arc::new(EmbeddedIndex::open(self.dir.path(), layout)?))
    }

    async fn leases(&self) -> Arc<dyn LeaseStore> {
        let layout = IndexLayout {
            shards: 4,
            mode: IndexMode::EveryWrite,
        };
        Arc::new(EmbeddedIndex::open(&self.dir.path().join("leases"), layout).expect("open"))
    }
}

zonelog::index_conformance_tests!(fresh());

#[test]
fn a_second_open_of_the_same_index_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let layout = IndexLayout {
        shards: 4,
        mode: IndexMode::EveryWrite,
    };
    let _first = EmbeddedIndex::open(dir.path(), layout).expect("first open");
    let err = EmbeddedIndex::open(dir.path(), layout)
        .err()
        .expect("second open must fail");
    assert!(err.to_string().contains("another zonelog process"), "{err}");
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use zonelog::index::conformance::{check_against_model, ModelOp};

    fn ops() -> impl Strategy<Value = Vec<ModelOp>> {
        let write = proptest::collection::vec(
            (0u8..3, 0u8..6, proptest::option::of(0u8..2), 1u64..40),
            1..12,
        )
        .prop_map(ModelOp::Write);
        let trim = proptest::collection::vec(any::<usize>(), 0..6).prop_map(ModelOp::Trim);
        proptest::collection::vec(prop_oneof![3 => write, 2 => trim], 1..12)
    }

    fn run(mode: IndexMode, ops: Vec<ModelOp>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let index: Arc<dyn ChangeIndex> = Arc::new(
                EmbeddedIndex::open(dir.path(), IndexLayout { shards: 3, mode }).expect("open"),
            );
            check_against_model(&index, &ops).await;
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

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
