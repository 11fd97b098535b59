//! The embedded backend runs the whole index and lease conformance suite.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use tempfile::TempDir;
use zonelog::index::conformance::ConformanceBackend;
use zonelog::index::embedded::{EmbeddedIndex, EmbeddedOptions};
use zonelog::index::{ChangeIndex, IndexError, IndexLayout, IndexMode};
use zonelog::lease::LeaseStore;

struct Embedded {
    dir: TempDir,
    options: EmbeddedOptions,
}

fn fresh() -> Embedded {
    Embedded {
        dir: tempfile::tempdir().expect("temp dir"),
        options: EmbeddedOptions::default(),
    }
}

/// Tiny blocks, so that a few entries already split blocks, merge appends
/// into a small tail and rewrite blocks for late entries and trims.
fn tiny_blocks() -> EmbeddedOptions {
    EmbeddedOptions {
        block_max_bytes: 200,
        block_max_entries: 3,
        block_small_bytes: 120,
        trim_span: 5,
        ..EmbeddedOptions::default()
    }
}

#[async_trait]
impl ConformanceBackend for Embedded {
    async fn open(&self, layout: IndexLayout) -> Result<Arc<dyn ChangeIndex>, IndexError> {
        Ok(Arc::new(EmbeddedIndex::open_with(
            self.dir.path(),
            layout,
            self.options.clone(),
        )?))
    }

    async fn leases(&self) -> Arc<dyn LeaseStore> {
        let layout = IndexLayout {
            shards: 4,
            mode: IndexMode::EveryWrite,
        };
        Arc::new(EmbeddedIndex::open(&self.dir.path().join("leases"), layout).expect("open"))
    }

    async fn open_with_leases(
        &self,
        layout: IndexLayout,
    ) -> Result<(Arc<dyn ChangeIndex>, Arc<dyn LeaseStore>), IndexError> {
        let index = Arc::new(EmbeddedIndex::open_with(
            self.dir.path(),
            layout,
            self.options.clone(),
        )?);
        Ok((index.clone(), index))
    }
}

zonelog::index_conformance_tests!(fresh());

mod with_tiny_blocks {
    use super::*;

    zonelog::index_conformance_tests!(Embedded {
        dir: tempfile::tempdir().expect("temp dir"),
        options: tiny_blocks(),
    });
}

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

/// A kill -9 while the index file was first being made (seen in the crash
/// test: "Not a redb database: magic number mismatch" on reopen) leaves at
/// most the half-made temporary file, which the next open replaces.
#[test]
fn a_half_made_index_file_from_a_killed_first_open_is_made_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path()
            .join(format!("{}.new", zonelog::index::embedded::INDEX_FILE)),
        b"redb\x1a\x0a\xa9 half a header",
    )
    .expect("half-made file");
    let layout = IndexLayout {
        shards: 4,
        mode: IndexMode::EveryWrite,
    };
    drop(EmbeddedIndex::open(dir.path(), layout).expect("open over a half-made file"));
    EmbeddedIndex::open(dir.path(), layout).expect("and again");
    assert!(!dir
        .path()
        .join(format!("{}.new", zonelog::index::embedded::INDEX_FILE))
        .exists());
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use zonelog::index::conformance::{check_against_model, ModelOp};

    fn ops() -> impl Strategy<Value = Vec<ModelOp>> {
        common::model_ops(12)
    }

    fn run(mode: IndexMode, ops: Vec<ModelOp>) {
        run_with(mode, ops, EmbeddedOptions::default());
    }

    fn run_with(mode: IndexMode, ops: Vec<ModelOp>, options: EmbeddedOptions) {
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let index: Arc<dyn ChangeIndex> = Arc::new(
                EmbeddedIndex::open_with(dir.path(), IndexLayout { shards: 3, mode }, options)
                    .expect("open"),
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

        #[test]
        fn every_write_mode_with_tiny_blocks_matches_the_model(ops in ops()) {
            run_with(IndexMode::EveryWrite, ops, tiny_blocks());
        }

        #[test]
        fn latest_mode_with_tiny_blocks_matches_the_model(ops in ops()) {
            run_with(IndexMode::Latest, ops, tiny_blocks());
        }
    }
}

/// A backend failure says what failed and why, and keeps the cause (here
/// the I/O error) as its source.
#[test]
fn a_backend_error_keeps_its_cause_as_the_source() {
    use std::error::Error as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("write");
    let layout = IndexLayout {
        shards: 2,
        mode: IndexMode::EveryWrite,
    };
    let Err(err) = EmbeddedIndex::open(&file.join("index"), layout) else {
        panic!("an index below a plain file opened");
    };
    assert!(matches!(err, IndexError::Backend(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("index backend error: ") && text.contains(": cannot create: "),
        "{text}"
    );
    let backend = err.source().expect("the backend error");
    let io = backend
        .source()
        .and_then(|cause| cause.downcast_ref::<std::io::Error>())
        .expect("the I/O error underneath");
    assert!(text.ends_with(&io.to_string()), "{text}");
}
