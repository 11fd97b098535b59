//! Where backups go: a second S3 system, or a local directory. One trait,
//! so the backup loop and `verify` do not care which.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use md5::{Digest as _, Md5};
use tokio::io::AsyncWriteExt as _;

use super::s3::{Listed, ObjectInfo, S3Error, S3ErrorKind, S3};
use crate::config::DestinationConfig;

#[async_trait]
pub trait Destination: Send + Sync {
    fn describe(&self) -> String;

    /// Writes an object from a stream of `info.size` bytes; returns the
    /// bytes written. Replaces an existing object whole, never partly.
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        info: &ObjectInfo,
        body: ByteStream,
    ) -> Result<u64, S3Error>;

    /// Removes an object; an absent one is fine.
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), S3Error>;

    /// A small named state object (the checkpoint), durable when this returns.
    async fn load_state(&self, name: &str) -> Result<Option<Bytes>, S3Error>;
    async fn save_state(&self, name: &str, bytes: Bytes) -> Result<(), S3Error>;

    /// A bucket's objects in key order, a page at a time (for `verify`).
    async fn list_page(
        &self,
        bucket: &str,
        continuation: Option<String>,
    ) -> Result<(Vec<Listed>, Option<String>), S3Error>;

    /// An object's metadata, for comparing multipart copies by the
    /// source ETag recorded at copy time.
    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>, S3Error>;

    /// Requests sent so far.
    fn requests(&self) -> u64;

    /// Whether copies keep content type and user metadata.
    fn keeps_metadata(&self) -> bool;
}

/// Builds the configured destination.
pub fn from_config(
    config: &DestinationConfig,
    multipart_threshold: u64,
    part_size: usize,
) -> Result<Box<dyn Destination>, S3Error> {
    if let Some(dir) = &config.directory {
        return Ok(Box::new(DirectoryDestination { root: dir.clone() }));
    }
    let (Some(endpoint), Some(access), Some(secret), Some(state_bucket)) = (
        &config.endpoint,
        &config.access_key,
        &config.secret_key,
        &config.state_bucket,
    ) else {
        return Err(S3Error {
            role: "destination",
            endpoint: String::new(),
            op: "configure",
            target: String::new(),
            reason: "needs endpoint, keys and state_bucket, or directory".into(),
            kind: S3ErrorKind::Refused,
        });
    };
    Ok(Box::new(S3Destination {
        s3: S3::new(
            "destination",
            endpoint,
            &config.region,
            access,
            secret.expose(),
        ),
        state_bucket: state_bucket.clone(),
        multipart_threshold,
        part_size,
    }))
}

pub struct S3Destination {
    s3: S3,
    state_bucket: String,
    multipart_threshold: u64,
    part_size: usize,
}

#[async_trait]
impl Destination for S3Destination {
    fn describe(&self) -> String {
        self.s3.describe()
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        info: &ObjectInfo,
        body: ByteStream,
    ) -> Result<u64, S3Error> {
        // A missing destination bucket is created on first use; the body
        // stream is still unread then, because the first call that can
        // fail with NoSuchBucket is the one that sends it.
        match self
            .s3
            .put_stream(
                bucket,
                key,
                info,
                body,
                self.multipart_threshold,
                self.part_size,
            )
            .await
        {
            Err(e) if e.kind == S3ErrorKind::NoSuchBucket => {
                self.s3.create_bucket(bucket).await?;
                Err(S3Error {
                    kind: S3ErrorKind::Transient,
                    reason: format!("{} (bucket created now; the copy is retried)", e.reason),
                    ..e
                })
            }
            other => other,
        }
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), S3Error> {
        self.s3.delete(bucket, key).await
    }

    async fn load_state(&self, name: &str) -> Result<Option<Bytes>, S3Error> {
        self.s3.get_small(&self.state_bucket, name).await
    }

    async fn save_state(&self, name: &str, bytes: Bytes) -> Result<(), S3Error> {
        let info = ObjectInfo {
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        match self
            .s3
            .put_bytes(&self.state_bucket, name, &info, bytes.clone())
            .await
        {
            Err(e) if e.kind == S3ErrorKind::NoSuchBucket => {
                self.s3.create_bucket(&self.state_bucket).await?;
                self.s3
                    .put_bytes(&self.state_bucket, name, &info, bytes)
                    .await
                    .map(|_| ())
            }
            other => other.map(|_| ()),
        }
    }

    async fn list_page(
        &self,
        bucket: &str,
        continuation: Option<String>,
    ) -> Result<(Vec<Listed>, Option<String>), S3Error> {
        self.s3.list_page(bucket, continuation).await
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>, S3Error> {
        self.s3.head(bucket, key).await
    }

    fn requests(&self) -> u64 {
        self.s3.requests()
    }

    fn keeps_metadata(&self) -> bool {
        true
    }
}

/// Objects as files under `ROOT/BUCKET/`, keys encoded by
/// [`key_to_relative_path`]. Only the content is kept (content type and
/// user metadata are not; docs/backup.md).
pub struct DirectoryDestination {
    root: PathBuf,
}

const PARTIAL_SUFFIX: &str = ".zonelog-partial";
const STATE_DIR: &str = ".zonelog-backup";

impl DirectoryDestination {
    fn io_error(&self, op: &'static str, target: String, e: std::io::Error) -> S3Error {
        let kind = if unstorable(&e) {
            S3ErrorKind::Unstorable
        } else {
            S3ErrorKind::Refused
        };
        S3Error {
            role: "destination",
            endpoint: format!("directory {}", self.root.display()),
            op,
            target,
            reason: e.to_string(),
            kind,
        }
    }

    fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.bucket_path(bucket).join(key_to_relative_path(key))
    }

    /// A bucket's directory: always inside the root, whatever the name
    /// (see [`bucket_to_relative_path`]).
    fn bucket_path(&self, bucket: &str) -> PathBuf {
        self.root.join(bucket_to_relative_path(bucket))
    }

    /// Writes a file whole: a partial file, fsynced, renamed over the
    /// final name, and the directory fsynced, so a crash leaves the old
    /// content or the new, never a torn file.
    async fn write_atomically(
        &self,
        path: &Path,
        target: &str,
        mut body: ByteStream,
    ) -> Result<u64, S3Error> {
        let err = |op, e| self.io_error(op, target.to_string(), e);
        let parent = path.parent().unwrap_or(&self.root).to_path_buf();
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(|e| err("create directory", e))?;
        let partial = partial_path(path);
        let mut file = tokio::fs::File::create(&partial)
            .await
            .map_err(|e| err("create", e))?;
        let mut written = 0u64;
        loop {
            match body.try_next().await {
                Ok(Some(chunk)) => {
                    written += chunk.len() as u64;
                    file.write_all(&chunk).await.map_err(|e| err("write", e))?;
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tokio::fs::remove_file(&partial).await;
                    return Err(S3Error {
                        role: "source",
                        endpoint: String::new(),
                        op: "GET body",
                        target: target.to_string(),
                        reason: e.to_string(),
                        kind: S3ErrorKind::Transient,
                    });
                }
            }
        }
        file.sync_all().await.map_err(|e| err("fsync", e))?;
        drop(file);
        if let Err(e) = tokio::fs::rename(&partial, path).await {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(err("rename", e));
        }
        sync_dir(&parent)
            .await
            .map_err(|e| err("fsync directory", e))?;
        Ok(written)
    }
}

/// What a file system answers for a key it cannot hold as a file: a name
/// over its limit, or a key that is also a "directory" of others (`a`
/// beside `a/b`). The same key fails the same way every time.
fn unstorable(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENAMETOOLONG | libc::ENOTDIR | libc::EISDIR | libc::EEXIST | libc::ENOTEMPTY)
    )
}

/// The partial file beside `path`: its name plus a suffix, or, where that
/// would be over the file-name limit, a short name made from a hash of it
/// (still ending in the suffix, so `verify` and listings pass over it).
fn partial_path(path: &Path) -> PathBuf {
    const NAME_MAX: usize = 255;
    let name = path.file_name().unwrap_or_default();
    if name.len() + PARTIAL_SUFFIX.len() <= NAME_MAX {
        let mut partial = path.as_os_str().to_owned();
        partial.push(PARTIAL_SUFFIX);
        return PathBuf::from(partial);
    }
    use sha2::{Digest, Sha256};
    let digest = hex::encode(&Sha256::digest(name.as_encoded_bytes())[..8]);
    path.with_file_name(format!(".{digest}{PARTIAL_SUFFIX}"))
}

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    tokio::fs::File::open(dir).await?.sync_all().await
}

#[async_trait]
impl Destination for DirectoryDestination {
    fn describe(&self) -> String {
        format!("destination directory {}", self.root.display())
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        _info: &ObjectInfo,
        body: ByteStream,
    ) -> Result<u64, S3Error> {
        let path = self.object_path(bucket, key);
        self.write_atomically(&path, &format!("{bucket}/{key}"), body)
            .await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), S3Error> {
        let path = self.object_path(bucket, key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            // A key no file could hold was never stored (set aside): there
            // is nothing to delete, and a directory of other keys stays.
            Err(e) if unstorable(&e) => Ok(()),
            Err(e) => Err(self.io_error("delete", format!("{bucket}/{key}"), e)),
        }
    }

    async fn load_state(&self, name: &str) -> Result<Option<Bytes>, S3Error> {
        let path = self.root.join(STATE_DIR).join(name);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes.into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io_error("read state", name.to_string(), e)),
        }
    }

    async fn save_state(&self, name: &str, bytes: Bytes) -> Result<(), S3Error> {
        let path = self.root.join(STATE_DIR).join(name);
        self.write_atomically(&path, name, ByteStream::from(bytes))
            .await
            .map(|_| ())
    }

    async fn list_page(
        &self,
        bucket: &str,
        _continuation: Option<String>,
    ) -> Result<(Vec<Listed>, Option<String>), S3Error> {
        let root = self.bucket_path(bucket);
        let listed = tokio::task::spawn_blocking(move || list_directory(&root))
            .await
            .map_err(|e| self.io_error("list", bucket.to_string(), std::io::Error::other(e)))?
            .map_err(|e| self.io_error("list", bucket.to_string(), e))?;
        Ok((listed, None))
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>, S3Error> {
        match tokio::fs::metadata(self.object_path(bucket, key)).await {
            Ok(meta) => Ok(Some(ObjectInfo {
                size: meta.len(),
                ..Default::default()
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io_error("stat", format!("{bucket}/{key}"), e)),
        }
    }

    fn requests(&self) -> u64 {
        0
    }

    fn keeps_metadata(&self) -> bool {
        false
    }
}

/// Every file under `root` as (key, size, MD5 ETag), sorted by key like an
/// S3 listing. Holds the whole listing: a directory destination is meant
/// for buckets that fit a file system walk.
fn list_directory(root: &Path) -> std::io::Result<Vec<Listed>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(relative) = path.strip_prefix(root) else {
                continue;
            };
            let Some(relative) = relative.to_str() else {
                continue;
            };
            if relative.ends_with(PARTIAL_SUFFIX) {
                continue;
            }
            let mut md5 = Md5::new();
            let size = std::io::copy(&mut std::fs::File::open(&path)?, &mut md5)?;
            out.push(Listed {
                key: relative_path_to_key(relative),
                size,
                etag: format!("\"{}\"", hex::encode(md5.finalize())),
            });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Maps an S3 key to a relative file path that names it uniquely: each
/// `/`-separated segment has `%` and control characters percent-encoded,
/// and the segments a file system cannot hold (empty, `.`, `..`) become
/// `%`, `%2E`, `%2E%2E`.
pub fn key_to_relative_path(key: &str) -> PathBuf {
    let segments: Vec<String> = key
        .split('/')
        .map(|segment| match segment {
            "" => "%".to_string(),
            "." => "%2E".to_string(),
            ".." => "%2E%2E".to_string(),
            _ => {
                let mut out = String::with_capacity(segment.len());
                for c in segment.chars() {
                    if c == '%' || c.is_ascii_control() {
                        out.push_str(&format!("%{:02X}", c as u32));
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        })
        .collect();
    PathBuf::from(segments.join("/"))
}

/// Maps a destination bucket name to the relative directory it is kept
/// in, encoded like a key, so no name can climb out of the root; a name
/// beginning with `.` gets it encoded too, so that no bucket can be the
/// backup's own state directory or a hidden one.
pub fn bucket_to_relative_path(bucket: &str) -> PathBuf {
    let path = key_to_relative_path(bucket);
    match path.to_str().and_then(|p| p.strip_prefix('.')) {
        Some(rest) => PathBuf::from(format!("%2E{rest}")),
        None => path,
    }
}

/// The inverse of [`key_to_relative_path`].
pub fn relative_path_to_key(relative: &str) -> String {
    relative
        .split('/')
        .map(|segment| {
            if segment == "%" {
                return String::new();
            }
            let bytes = segment.as_bytes();
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%' && i + 2 < bytes.len() {
                    let hex = [bytes[i + 1], bytes[i + 2]];
                    if let Some(byte) = std::str::from_utf8(&hex)
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                    {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                }
                out.push(bytes[i]);
                i += 1;
            }
            String::from_utf8_lossy(&out).into_owned()
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bucket_directories_stay_inside_the_root() {
        for (name, dir) in [
            ("photos", "photos"),
            ("t1/photos", "t1/photos"),
            ("../victim", "%2E%2E/victim"),
            ("v1-x/../../x", "v1-x/%2E%2E/%2E%2E/x"),
            (".zonelog-backup", "%2Ezonelog-backup"),
            ("/abs", "%/abs"),
        ] {
            let got = bucket_to_relative_path(name);
            assert_eq!(got, PathBuf::from(dir), "{name}");
            assert!(got.is_relative());
            assert!(got
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_))));
        }
    }

    #[test]
    fn awkward_keys_map_to_safe_paths() {
        assert_eq!(key_to_relative_path("a/b.txt"), PathBuf::from("a/b.txt"));
        assert_eq!(key_to_relative_path("dir/"), PathBuf::from("dir/%"));
        assert_eq!(key_to_relative_path("/x"), PathBuf::from("%/x"));
        assert_eq!(key_to_relative_path("a//b"), PathBuf::from("a/%/b"));
        assert_eq!(key_to_relative_path("../up"), PathBuf::from("%2E%2E/up"));
        assert_eq!(key_to_relative_path("50%\nx"), PathBuf::from("50%25%0Ax"));
    }

    proptest! {
        #[test]
        fn any_key_round_trips(key in "[a-z/%.\\n ]{1,20}|\\PC{1,30}") {
            let path = key_to_relative_path(&key);
            let text = path.to_str().unwrap();
            prop_assert!(!text.split('/').any(|s| s.is_empty() || s == "." || s == ".."));
            prop_assert_eq!(relative_path_to_key(text), key);
        }
    }
}
