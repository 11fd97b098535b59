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
