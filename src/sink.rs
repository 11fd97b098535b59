//! Where log objects go: an S3 bucket (any S3 endpoint, path-style) or a
//! local directory, both through `object_store`.
//!
//! [`Upload`] streams one object: bytes are held in memory only up to the
//! multipart threshold; past it the object becomes a multipart upload with
//! fixed-size parts, so memory stays at threshold + a few parts however big
//! the window. It also computes what the target must confirm: the size,
//! the S3 ETag (MD5, or MD5 of part MD5s for multipart) and a SHA-256 for
//! the manifest.

use std::sync::Arc;
use std::time::Duration;

use md5::{Digest as _, Md5};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{
    BackoffConfig, MultipartUpload, ObjectStore, ObjectStoreExt as _, PutPayload, RetryConfig,
    WriteMultipart,
};
use sha2::Sha256;

use crate::config::TargetConfig;
use crate::sink_multipart::KnownUpload;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("target {target}: {what} failed: {reason}")]
    Store {
        target: String,
        what: String,
        reason: String,
    },
    #[error("target {target}: {object} was not stored as sent: {reason}")]
    Verify {
        target: String,
        object: String,
        reason: String,
    },
    #[error("invalid target configuration: {0}")]
    Config(String),
}

/// The configured target.
#[derive(Clone)]
pub struct Target {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    description: String,
    /// S3 targets report an MD5-based ETag worth checking; a directory
    /// does not.
    checks_etag: bool,
    /// A directory target: its store (to map names to files) and root.
    local: Option<(Arc<LocalFileSystem>, std::path::PathBuf)>,
    /// An S3 target, for multipart uploads whose id zonelog keeps.
    s3: Option<Arc<AmazonS3>>,
}

impl Target {
    pub fn from_config(config: &TargetConfig) -> Result<Self, SinkError> {
        let prefix = config.prefix.trim_matches('/').to_string();
        if let Some(dir) = &config.directory {
            std::fs::create_dir_all(dir).map_err(|e| {
                SinkError::Config(format!("target.directory {}: {e}", dir.display()))
            })?;
            let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| {
                SinkError::Config(format!("target.directory {}: {e}", dir.display()))
            })?;
            let store = Arc::new(store);
            // As `object_store` resolves it, so the files it names lie below.
            let root = std::fs::canonicalize(dir).map_err(|e| {
                SinkError::Config(format!("target.directory {}: {e}", dir.display()))
            })?;
            return Ok(Target {
                store: store.clone(),
                prefix,
                description: format!("directory {}", dir.display()),
                checks_etag: false,
                local: Some((store, root)),
                s3: None,
            });
        }
        let endpoint = config
            .endpoint
            .as_ref()
            .ok_or_else(|| SinkError::Config("target needs endpoint or directory".into()))?;
        let bucket = config
            .bucket
            .as_ref()
            .ok_or_else(|| SinkError::Config("target.bucket is missing".into()))?;
        let (Some(access), Some(secret)) = (&config.access_key, &config.secret_key) else {
            return Err(SinkError::Config(
                "target.access_key and target.secret_key are required for an S3 target".into(),
            ));
        };
        let store = AmazonS3Builder::new()
            .with_endpoint(endpoint.as_str().trim_end_matches('/'))
            .with_allow_http(endpoint.scheme() == "http")
            .with_virtual_hosted_style_request(false)
            .with_region(&config.region)
            .with_bucket_name(bucket)
            .with_access_key_id(access)
            .with_secret_access_key(secret.expose())
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 3,
                retry_timeout: Duration::from_secs(60),
            })
            .build()
            .map_err(|e| SinkError::Config(format!("target: {e}")))?;
        let store = Arc::new(store);
        Ok(Target {
            store: store.clone(),
            prefix,
            description: format!(
                "s3 {} bucket {bucket}",
                endpoint.as_str().trim_end_matches('/')
            ),
            checks_etag: true,
            local: None,
            s3: Some(store),
        })
    }

    /// Makes the named objects durable before what depends on them (the
    /// trim of the entries they hold). An S3 target has them durable once
    /// it answered; a directory's files are written by `object_store`
    /// without fsync (a rename of a staging file), so each file, and every
    /// directory from its own up to the root (new hour directories are
    /// new entries in their parents), is fsynced.
    pub async fn make_durable(&self, names: &[&str]) -> Result<(), SinkError> {
        let Some((store, root)) = &self.local else {
            return Ok(());
        };
        let mut files = Vec::with_capacity(names.len());
        for name in names {
            let path = self.path(name);
            let file = store
                .path_to_filesystem(&path)
                .map_err(|e| self.error(format!("fsync {path}"), e))?;
            files.push(file);
        }
        let root = root.clone();
        let synced = tokio::task::spawn_blocking(move || sync_files_and_dirs(&files, &root))
            .await
            .map_err(|e| self.error("fsync", e))?;
        synced.map_err(|(path, e)| self.error(format!("fsync {}", path.display()), e))
    }

    pub fn describe(&self) -> &str {
        &self.description
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The full object path for a name below the configured prefix.
    pub fn path(&self, name: &str) -> StorePath {
        if self.prefix.is_empty() {
            StorePath::from(name)
        } else {
            StorePath::from(format!("{}/{name}", self.prefix))
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn error(&self, what: impl Into<String>, e: impl std::fmt::Display) -> SinkError {
        SinkError::Store {
            target: self.description.clone(),
            what: what.into(),
            reason: e.to_string(),
        }
    }

    /// Writes a small object in one PUT.
    pub async fn put_small(&self, name: &str, bytes: Vec<u8>) -> Result<(), SinkError> {
        let path = self.path(name);
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|e| self.error(format!("PUT {path}"), e))?;
        Ok(())
    }

    pub async fn get(&self, name: &str) -> Result<bytes::Bytes, SinkError> {
        let path = self.path(name);
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.error(format!("GET {path}"), e))?;
        result
            .bytes()
            .await
            .map_err(|e| self.error(format!("GET {path}"), e))
    }

    /// Aborts a multipart upload of `name` that a failed or killed round
    /// left behind (see [`Upload::upload_id`]); one already gone is fine.
    pub async fn abort_upload(&self, name: &str, id: &str) -> Result<(), SinkError> {
        let Some(s3) = &self.s3 else { return Ok(()) };
        let path = self.path(name);
        crate::sink_multipart::abort_left_behind(s3, &path, id)
            .await
            .map_err(|e| self.error(format!("abort multipart upload {id} of {path}"), e))
    }

    pub fn begin(&self, name: &str, threshold: usize, part_size: usize) -> Upload {
        Upload {
            target: self.clone(),
            path: self.path(name),
            threshold: threshold.max(1),
            part_size: part_size.max(1),
            pending: Vec::new(),
            multipart: None,
            created: None,
            upload_id: None,
            size: 0,
            sha256: Sha256::new(),
            part_md5: Md5::new(),
            part_fill: 0,
            part_md5s: Vec::new(),
        }
    }
}

/// fsyncs each file and each directory from its parent up to `root`
/// (each once).
fn sync_files_and_dirs(
    files: &[std::path::PathBuf],
    root: &std::path::Path,
) -> Result<(), (std::path::PathBuf, std::io::Error)> {
    let sync = |path: &std::path::Path| {
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| (path.to_path_buf(), e))
    };
    let mut dirs = std::collections::BTreeSet::new();
    for file in files {
        sync(file)?;
        let mut dir = file.parent();
        while let Some(d) = dir {
            dirs.insert(d.to_path_buf());
            if d == root || !d.starts_with(root) {
                break;
            }
            dir = d.parent();
        }
    }
    // Deepest first: a directory's own entries before its entry in its parent.
    for dir in dirs.iter().rev() {
        sync(dir)?;
    }
    Ok(())
}

/// What a finished upload wrote, as confirmed by the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub parts: usize,
}

/// One object being streamed to the target.
pub struct Upload {
    target: Target,
    path: StorePath,
    threshold: usize,
    part_size: usize,
    pending: Vec<u8>,
    multipart: Option<WriteMultipart>,
    /// A multipart upload created but sent nothing yet: the caller learns
    /// its id (and records it) before the first part goes out.
    created: Option<Box<dyn MultipartUpload>>,
    /// The S3 multipart upload's id, once there is one.
    upload_id: Option<String>,
    size: u64,
    sha256: Sha256,
    part_md5: Md5,
    part_fill: usize,
    part_md5s: Vec<[u8; 16]>,
}

impl Upload {
    pub async fn write(&mut self, mut bytes: &[u8]) -> Result<(), SinkError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.size += bytes.len() as u64;
        sha2::Digest::update(&mut self.sha256, bytes);
        // Mirror WriteMultipart's exact part boundaries to predict the ETag.
        let mut rest = bytes;
        while !rest.is_empty() {
            let take = rest.len().min(self.part_size - self.part_fill);
            self.part_md5.update(&rest[..take]);
            self.part_fill += take;
            rest = &rest[take..];
            if self.part_fill == self.part_size {
                let md5 = std::mem::take(&mut self.part_md5).finalize();
                self.part_md5s.push(md5.into());
                self.part_fill = 0;
            }
        }
        if self.multipart.is_none() && self.created.is_none() {
            if self.pending.len() + bytes.len() <= self.threshold {
                self.pending.extend_from_slice(bytes);
                return Ok(());
            }
            let started = match &self.target.s3 {
                Some(s3) => KnownUpload::start(s3.clone(), self.path.clone())
                    .await
                    .map(|known| {
                        self.upload_id = Some(known.id().to_string());
                        Box::new(known) as Box<dyn MultipartUpload>
                    }),
                None => self.target.store.put_multipart(&self.path).await,
            };
            let upload = started.map_err(|e| {
                self.target
                    .error(format!("start multipart upload of {}", self.path), e)
            })?;
            // Held until the next write: one chunk past the threshold.
            self.created = Some(upload);
            self.pending.extend_from_slice(bytes);
            return Ok(());
        }
        self.send_parts();
        let Some(multipart) = self.multipart.as_mut() else {
            return Err(self.target.error(
                format!("upload part of {}", self.path),
                "no multipart upload was started",
            ));
        };
        while !bytes.is_empty() {
            // Two parts in flight at most: bounded memory, steady throughput.
            multipart.wait_for_capacity(2).await.map_err(|e| {
                self.target
                    .error(format!("upload part of {}", self.path), e)
            })?;
            let take = bytes.len().min(self.part_size);
            multipart.write(&bytes[..take]);
            bytes = &bytes[take..];
        }
        Ok(())
    }

    /// The multipart upload, sending from now on: what was held back since
    /// it was created goes first.
    fn send_parts(&mut self) {
        if let Some(upload) = self.created.take() {
            let mut multipart = WriteMultipart::new_with_chunk_size(upload, self.part_size);
            multipart.write(&std::mem::take(&mut self.pending));
            self.multipart = Some(multipart);
        }
    }

    /// The S3 multipart upload this object is being sent as, once it is
    /// one: what to abort if the round does not finish it. Known after the
    /// write that created the upload and before any part is sent (parts
    /// go out from the next write on).
    pub fn upload_id(&self) -> Option<&str> {
        self.upload_id.as_deref()
    }

    /// Completes the object and checks it: size from a HEAD, and on S3 the
    /// ETag against the MD5s of what was sent.
    pub async fn finish(mut self) -> Result<Uploaded, SinkError> {
        let expected_etag;
        let parts;
        if self.created.is_some() {
            self.send_parts();
        }
        match self.multipart.take() {
            None => {
                let md5 = Md5::digest(&self.pending);
                expected_etag = hex::encode(md5);
                parts = 1;
                let payload = PutPayload::from(std::mem::take(&mut self.pending));
                self.target
                    .store
                    .put(&self.path, payload)
                    .await
                    .map_err(|e| self.target.error(format!("PUT {}", self.path), e))?;
            }
            Some(multipart) => {
                if self.part_fill > 0 {
                    let md5 = std::mem::take(&mut self.part_md5).finalize();
                    self.part_md5s.push(md5.into());
                }
                let mut all = Md5::new();
                for md5 in &self.part_md5s {
                    all.update(md5);
                }
                parts = self.part_md5s.len();
                expected_etag = format!("{}-{parts}", hex::encode(all.finalize()));
                multipart.finish().await.map_err(|e| {
                    self.target
                        .error(format!("complete multipart upload of {}", self.path), e)
                })?;
            }
        }
        let meta = self
            .target
            .store
            .head(&self.path)
            .await
            .map_err(|e| self.target.error(format!("HEAD {}", self.path), e))?;
        let verify = |reason: String| SinkError::Verify {
            target: self.target.description.clone(),
            object: self.path.to_string(),
            reason,
        };
        if meta.size != self.size {
            return Err(verify(format!(
                "size {} instead of {}",
                meta.size, self.size
            )));
        }
        if self.target.checks_etag {
            if let Some(etag) = meta.e_tag.as_deref().map(|e| e.trim_matches('"')) {
                // Stores that encrypt or compute ETags otherwise do not give
                // an MD5; only a well-formed MD5 ETag is held to it.
                let md5_like = etag
                    .split('-')
                    .next()
                    .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()));
                if md5_like && etag != expected_etag {
                    return Err(verify(format!("ETag {etag} instead of {expected_etag}")));
                }
            }
        }
        Ok(Uploaded {
            path: self.path.to_string(),
            size: self.size,
            sha256: hex::encode(sha2::Digest::finalize(self.sha256)),
            parts,
        })
    }

    /// Gives up an unfinished object (a multipart upload is aborted so the
    /// target does not keep its parts).
    pub async fn abort(mut self) {
        if let Some(mut created) = self.created.take() {
            if let Err(e) = created.abort().await {
                tracing::warn!(object = %self.path, error = %e, "could not abort a multipart upload");
            }
        }
        if let Some(multipart) = self.multipart.take() {
            if let Err(e) = multipart.abort().await {
                tracing::warn!(object = %self.path, error = %e, "could not abort a multipart upload");
            }
        }
    }
}
