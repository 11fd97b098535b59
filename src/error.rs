//! The failure of a storage backend — the embedded or the RADOS index and
//! their lease stores — as [`IndexError::Backend`](crate::index::IndexError)
//! and [`LeaseError::Backend`](crate::lease::LeaseError) carry it.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// Any error, boxed: what a backend failure keeps as its cause.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// A backend failure: the message an operator reads, and the error
/// underneath (redb, librados, a lost blocking task), kept as the
/// [`Error::source`] for callers that walk the chain or downcast.
///
/// The message names the cause too, so a log line that prints only this
/// error (`error = %e`) is complete. Cloning is cheap and keeps the cause:
/// one failed commit answers every request of its group.
#[derive(Debug, Clone)]
pub struct BackendError {
    message: String,
    source: Option<Arc<dyn Error + Send + Sync + 'static>>,
}

impl BackendError {
    /// A failure with no error underneath (a contended compare, a poisoned
    /// lock, a broken invariant).
    pub fn msg(message: impl Into<String>) -> Self {
        BackendError {
            message: message.into(),
            source: None,
        }
    }

    /// `context` failed because of `source`; displayed `context: source`.
    pub fn new(context: impl fmt::Display, source: impl Into<BoxError>) -> Self {
        let source: BoxError = source.into();
        BackendError {
            message: format!("{context}: {source}"),
            source: Some(Arc::from(source)),
        }
    }

    /// `source` itself, displayed as it displays.
    pub fn wrap(source: impl Into<BoxError>) -> Self {
        let source: BoxError = source.into();
        BackendError {
            message: source.to_string(),
            source: Some(Arc::from(source)),
        }
    }

    /// A `message` that already names its cause, with that cause (shared:
    /// the same failure answers several requests).
    pub(crate) fn shared(
        message: impl Into<String>,
        source: Option<Arc<dyn Error + Send + Sync + 'static>>,
    ) -> Self {
        BackendError {
            message: message.into(),
            source,
        }
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for BackendError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

impl From<String> for BackendError {
    fn from(message: String) -> Self {
        BackendError::msg(message)
    }
}

impl From<&str> for BackendError {
    fn from(message: &str) -> Self {
        BackendError::msg(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_cause_and_source_keeps_it() {
        let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left");
        let e = BackendError::new("/var/lib/zonelog/index.redb", io);
        assert_eq!(e.to_string(), "/var/lib/zonelog/index.redb: no space left");
        let cause = e.source().expect("a source");
        let io = cause
            .downcast_ref::<std::io::Error>()
            .expect("the io error");
        assert_eq!(io.kind(), std::io::ErrorKind::StorageFull);
        assert_eq!(e.clone().source().unwrap().to_string(), "no space left");

        let plain = BackendError::msg("write queue poisoned");
        assert_eq!(plain.to_string(), "write queue poisoned");
        assert!(plain.source().is_none());
        let wrapped = BackendError::wrap(plain);
        assert_eq!(wrapped.to_string(), "write queue poisoned");
        assert!(wrapped.source().is_some());
    }
}
