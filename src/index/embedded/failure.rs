//! Why a commit group failed, and which redb errors need the file reopened.

use std::error::Error;
use std::sync::Arc;

/// Why a group did not commit; every request in it gets this answer.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) corrupt: bool,
    /// redb refuses everything after it until the file is reopened.
    pub(super) io: bool,
    pub(super) message: String,
    /// The redb error, when one caused it: every request gets it as the
    /// source of its error.
    pub(super) source: Option<Arc<dyn Error + Send + Sync + 'static>>,
}

impl Failure {
    pub(super) fn corrupt(message: impl Into<String>) -> Self {
        Failure {
            corrupt: true,
            io: false,
            message: message.into(),
            source: None,
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure {
            corrupt: false,
            io: false,
            message,
            source: None,
        }
    }
}

/// The storage error inside a redb error, if it has one.
trait StorageCause {
    fn storage(&self) -> Option<&redb::StorageError>;
}

impl StorageCause for redb::StorageError {
    fn storage(&self) -> Option<&redb::StorageError> {
        Some(self)
    }
}

impl StorageCause for redb::TableError {
    fn storage(&self) -> Option<&redb::StorageError> {
        match self {
            redb::TableError::Storage(s) => Some(s),
            _ => None,
        }
    }
}

impl StorageCause for redb::TransactionError {
    fn storage(&self) -> Option<&redb::StorageError> {
        match self {
            redb::TransactionError::Storage(s) => Some(s),
            _ => None,
        }
    }
}

impl StorageCause for redb::CommitError {
    fn storage(&self) -> Option<&redb::StorageError> {
        match self {
            redb::CommitError::Storage(s) => Some(s),
            _ => None,
        }
    }
}

impl StorageCause for redb::SetDurabilityError {
    fn storage(&self) -> Option<&redb::StorageError> {
        None
    }
}

macro_rules! failure_from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                let io = e.storage().is_some_and(crate::index::db_slot::needs_reopen);
                let message = e.to_string();
                Failure {
                    io,
                    source: Some(Arc::new(e)),
                    ..Failure::from(message)
                }
            }
        }
    )*};
}
failure_from_redb!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::SetDurabilityError
);
