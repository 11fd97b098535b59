//! The seam under the log target: what a place that holds log objects must
//! do. Two implementations, an S3 bucket ([`super::s3::S3Store`]) and a
//! local directory ([`super::dir::Directory`]); both pass the suite in
//! `tests/target.rs`.
//!
//! Keys are full object names (the target prefix included), `/`-separated.
//! A key written by [`LogStore::put`] or a finished [`PartUpload`] is
//! whole or absent, never partial; it is durable once
//! [`LogStore::make_durable`] returned for it.

#![warn(missing_docs)]

use std::path::PathBuf;

use async_trait::async_trait;
use bytes::Bytes;

use crate::s3::{Level, ListedObject, S3Error};

/// Bytes of an object being read, in order.
pub type Reader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An S3 call failed.
    #[error("{}", .0.reason)]
    S3(#[from] S3Error),
    /// A file or directory call failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A key a directory cannot hold.
    #[error("{0:?} cannot name a file below the directory (an empty, `.` or `..` segment)")]
    BadKey(String),
}

/// What a store tells about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Bytes.
    pub size: u64,
    /// The S3 ETag, without quotes; none for a directory.
    pub etag: Option<String>,
}

/// A place that holds log objects: an S3 bucket or a directory.
#[async_trait]
pub trait LogStore: Send + Sync {
    /// Writes a whole object in one call.
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError>;

    /// A small object whole; `None` when absent.
    async fn read(&self, key: &str) -> Result<Option<Bytes>, StoreError>;

    /// An object of any size as a stream; `None` when absent.
    async fn open(&self, key: &str) -> Result<Option<Reader>, StoreError>;

    /// Size and ETag of an object; `None` when absent.
    async fn head(&self, key: &str) -> Result<Option<Head>, StoreError>;

    /// Every object whose key starts with `prefix` (in key order), after
    /// `after` when given.
    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
    ) -> Result<Vec<ListedObject>, StoreError>;

    /// The level directly below `prefix` (empty, or ending in `/`).
    async fn list_level(&self, prefix: &str) -> Result<Level, StoreError>;

    /// Starts an object sent in parts, for objects too big to hold.
    async fn start_upload(&self, key: &str) -> Result<Box<dyn PartUpload>, StoreError>;

    /// Aborts an upload of `key` a failed or killed writer left behind,
    /// by the id [`PartUpload::id`] gave; one that is gone is fine.
    async fn abort_upload(&self, key: &str, id: &str) -> Result<(), StoreError>;

    /// Makes the named objects durable (a directory fsyncs them and their
    /// directories; an S3 store has them durable once it answered).
    async fn make_durable(&self, keys: &[String]) -> Result<(), StoreError>;

    /// Whether [`Head::etag`] is S3's MD5-based ETag, worth checking.
    fn checks_etag(&self) -> bool;
}

/// An object being sent in parts; parts are appended in the order given.
#[async_trait]
pub trait PartUpload: Send {
    /// The id to abort it by, when an unfinished upload costs something
    /// at the store (an S3 multipart upload keeps its parts).
    fn id(&self) -> Option<&str>;
    /// Appends the next part.
    async fn send(&mut self, part: Bytes) -> Result<(), StoreError>;
    /// Completes the object: whole from now on.
    async fn finish(self: Box<Self>) -> Result<(), StoreError>;
    /// Gives the object up; nothing of it stays.
    async fn abort(self: Box<Self>) -> Result<(), StoreError>;
}
