//! The embedded index's redb handle, which the writer can replace.
//!
//! After an I/O error in a commit (a full disk, most often) redb refuses
//! every later operation with "Previous I/O error occurred" until the
//! database is closed and opened again — so without this, an index whose
//! disk filled up once stayed unusable after the space came back, until a
//! restart. The writer thread, which alone sees commit errors, reopens the
//! file here before its next commit; readers take the current handle per
//! call and get a clear, retryable error while it is being replaced.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redb::Database;

pub(super) struct DbSlot {
    location: PathBuf,
    cache_bytes: usize,
    current: RwLock<Option<Arc<Database>>>,
}

impl DbSlot {
    pub(super) fn new(location: &Path, cache_bytes: usize, db: Database) -> DbSlot {
        DbSlot {
            location: location.to_path_buf(),
            cache_bytes,
            current: RwLock::new(Some(Arc::new(db))),
        }
    }

    /// The handle to use for one operation; an error while it is being
    /// reopened (retry later).
    pub(super) fn get(&self) -> Result<Arc<Database>, String> {
        self.current
            .read()
            .map_err(|_| "index handle lock poisoned".to_string())?
            .clone()
            .ok_or_else(|| {
                "the index file is being reopened after an I/O error (a full disk?); retry".into()
            })
    }

    /// Closes the current handle (once readers that hold it are done) and
    /// opens the file again, which lets redb repair what the failed commit
    /// left. On failure the slot stays empty and the next call tries again.
    pub(super) fn reopen(&self) -> Result<(), String> {
        let taken = self
            .current
            .write()
            .map_err(|_| "index handle lock poisoned".to_string())?
            .take();
        if let Some(old) = taken {
            // Readers hold a clone only for the length of one read.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if Arc::strong_count(&old) > 1 {
                *self
                    .current
                    .write()
                    .map_err(|_| "index handle lock poisoned".to_string())? = Some(old);
                return Err("readers kept the index open; reopening later".into());
            }
            drop(old);
        }
        let db = Database::builder()
            .set_cache_size(self.cache_bytes.max(1 << 20))
            .create(&self.location)
            .map_err(|e| format!("reopening after an I/O error failed: {e}"))?;
        *self
            .current
            .write()
            .map_err(|_| "index handle lock poisoned".to_string())? = Some(Arc::new(db));
        tracing::info!(index = %self.location.display(), "embedded index: reopened after an I/O error");
        Ok(())
    }
}

/// Whether a redb error leaves the handle refusing everything until it is
/// reopened.
pub(super) fn needs_reopen(e: &redb::StorageError) -> bool {
    matches!(
        e,
        redb::StorageError::Io(_) | redb::StorageError::PreviousIo
    )
}
