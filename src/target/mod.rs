//! Where log objects go: an S3 bucket (any S3 endpoint, path-style) or a
//! local directory, behind one seam ([`LogStore`]).
//!
//! [`Upload`] streams one object: bytes are held in memory only up to the
//! multipart threshold; past it the object is sent in fixed-size parts, so
//! memory stays at threshold + a few parts however big the window. It also
//! computes what the target must confirm: the size, the S3 ETag (MD5, or
//! MD5 of part MD5s for multipart) and a SHA-256 for the manifest.

mod dir;
mod s3;
mod store;
mod upload;

use std::sync::Arc;

use bytes::Bytes;

pub use dir::Directory;
pub use s3::S3Store;
pub use store::{Head, LogStore, PartUpload, Reader, StoreError};
pub use upload::{Upload, Uploaded};

use crate::config::TargetConfig;
use crate::s3::{Level, ListedObject};

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target {target}: {what} failed: {source}")]
    Store {
        target: String,
        what: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error("target {target}: {object} was not stored as sent: {reason}")]
    Verify {
        target: String,
        object: String,
        reason: String,
    },
    #[error("target {target}: {object} is missing")]
    Missing { target: String, object: String },
    #[error("invalid target configuration: {0}")]
    Config(String),
}

/// The configured target.
#[derive(Clone)]
pub struct Target {
    store: Arc<dyn LogStore>,
    prefix: String,
    description: String,
}

impl Target {
    pub fn from_config(config: &TargetConfig) -> Result<Self, TargetError> {
        let prefix = config.prefix.trim_matches('/').to_string();
        if let Some(dir) = &config.directory {
            let store = Directory::open(dir).map_err(|e| {
                TargetError::Config(format!("target.directory {}: {e}", dir.display()))
            })?;
            return Ok(Target {
                store: Arc::new(store),
                prefix,
                description: format!("directory {}", dir.display()),
            });
        }
        let endpoint = config
            .endpoint
            .as_ref()
            .ok_or_else(|| TargetError::Config("target needs endpoint or directory".into()))?;
        let bucket = config
            .bucket
            .as_ref()
            .ok_or_else(|| TargetError::Config("target.bucket is missing".into()))?;
        let (Some(access), Some(secret)) = (&config.access_key, &config.secret_key) else {
            return Err(TargetError::Config(
                "target.access_key and target.secret_key are required for an S3 target".into(),
            ));
        };
        let s3 = crate::s3::S3::new("target", endpoint, &config.region, access, secret.expose());
        Ok(Target {
            store: Arc::new(S3Store {
                s3,
                bucket: bucket.clone(),
            }),
            prefix,
            description: format!(
                "s3 {} bucket {bucket}",
                endpoint.as_str().trim_end_matches('/')
            ),
        })
    }

    /// A target over any store (the conformance suite's).
    pub fn over(store: Arc<dyn LogStore>, prefix: &str, description: &str) -> Target {
        Target {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            description: description.to_string(),
        }
    }

    pub fn describe(&self) -> &str {
        &self.description
    }

    pub fn store(&self) -> &Arc<dyn LogStore> {
        &self.store
    }

    /// The full object key for a name below the configured prefix.
    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn error(&self, what: impl Into<String>, source: impl Into<StoreError>) -> TargetError {
        TargetError::Store {
            target: self.description.clone(),
            what: what.into(),
            source: Box::new(source.into()),
        }
    }

    /// Writes a small object in one PUT.
    pub async fn put_small(&self, name: &str, bytes: Vec<u8>) -> Result<(), TargetError> {
        let key = self.path(name);
        self.store
            .put(&key, bytes.into())
            .await
            .map_err(|e| self.error(format!("PUT {key}"), e))
    }

    /// A small object below the prefix, which must exist.
    pub async fn get(&self, name: &str) -> Result<Bytes, TargetError> {
        let key = self.path(name);
        self.read_key(&key)
            .await?
            .ok_or_else(|| TargetError::Missing {
                target: self.description.clone(),
                object: key,
            })
    }

    /// A small object by its full key; `None` when absent.
    pub async fn read_key(&self, key: &str) -> Result<Option<Bytes>, TargetError> {
        self.store
            .read(key)
            .await
            .map_err(|e| self.error(format!("GET {key}"), e))
    }

    /// An object of any size by its full key, as a stream.
    pub async fn open_key(&self, key: &str) -> Result<Reader, TargetError> {
        self.store
            .open(key)
            .await
            .map_err(|e| self.error(format!("GET {key}"), e))?
            .ok_or_else(|| TargetError::Missing {
                target: self.description.clone(),
                object: key.to_string(),
            })
    }

    /// Every object below `dir` (a full key or the empty prefix, taken as a
    /// directory: `z` lists `z/…`, not `zz/…`) after `after`, in key order.
    pub async fn list(
        &self,
        dir: &str,
        after: Option<&str>,
    ) -> Result<Vec<ListedObject>, TargetError> {
        let prefix = as_dir(dir);
        self.store
            .list(&prefix, after)
            .await
            .map_err(|e| self.error(format!("LIST {prefix}"), e))
    }

    /// The level directly below `dir` (a full key or the empty prefix).
    pub async fn list_level(&self, dir: &str) -> Result<Level, TargetError> {
        let prefix = as_dir(dir);
        self.store
            .list_level(&prefix)
            .await
            .map_err(|e| self.error(format!("LIST {prefix}"), e))
    }

    /// Makes the named objects durable before what depends on them (the
    /// trim of the entries they hold).
    pub async fn make_durable(&self, names: &[&str]) -> Result<(), TargetError> {
        let keys: Vec<String> = names.iter().map(|n| self.path(n)).collect();
        self.store
            .make_durable(&keys)
            .await
            .map_err(|e| self.error("fsync", e))
    }

    /// Aborts a multipart upload of `name` that a failed or killed round
    /// left behind (see [`Upload::upload_id`]); one already gone is fine.
    pub async fn abort_upload(&self, name: &str, id: &str) -> Result<(), TargetError> {
        let key = self.path(name);
        self.store
            .abort_upload(&key, id)
            .await
            .map_err(|e| self.error(format!("abort multipart upload {id} of {key}"), e))
    }

    pub fn begin(&self, name: &str, threshold: usize, part_size: usize) -> Upload {
        Upload::new(self.clone(), self.path(name), threshold, part_size)
    }
}

/// A key prefix taken as a directory: `a/b` becomes `a/b/`; empty stays.
fn as_dir(dir: &str) -> String {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    }
}
