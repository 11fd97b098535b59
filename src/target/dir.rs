//! A log target in a local directory: each key a file below the root, its
//! `/`-separated segments directories.
//!
//! A file appears whole or not at all: it is written under a staging name
//! in its own directory and renamed over its final name. Nothing is
//! fsynced until [`LogStore::make_durable`], which the collector calls
//! before it trims what the files hold; a crash before that loses only
//! files whose entries are still in the index, and the resumed round
//! writes them again, byte for byte.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncWriteExt as _;

use super::store::{Head, LogStore, PartUpload, Reader, StoreError};
use crate::s3::{Level, ListedObject};

/// Staging files start with this; listings skip them.
const STAGING: &str = ".zonelog-staging.";

static STAGED: AtomicU64 = AtomicU64::new(0);

pub struct Directory {
    /// Canonical, so every file it names lies below it.
    root: PathBuf,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

async fn blocking<T: Send + 'static>(
    path: PathBuf,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(|source| StoreError::Io { path, source }),
        Err(e) => Err(StoreError::Io {
            path,
            source: std::io::Error::other(e),
        }),
    }
}

impl Directory {
    pub fn open(dir: &Path) -> std::io::Result<Directory> {
        std::fs::create_dir_all(dir)?;
        Ok(Directory {
            root: std::fs::canonicalize(dir)?,
        })
    }

    /// The file of a key; a key with an empty, `.` or `..` segment names
    /// none (it could reach outside the root, or two keys one file).
    fn file(&self, key: &str) -> Result<PathBuf, StoreError> {
        let mut path = self.root.clone();
        for segment in key.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." || segment.contains('\0') {
                return Err(StoreError::BadKey(key.to_string()));
            }
            path.push(segment);
        }
        Ok(path)
    }

    /// The directory a key prefix (empty, or ending in `/`) stands for.
    fn dir_of(&self, prefix: &str) -> Result<PathBuf, StoreError> {
        match prefix.trim_end_matches('/') {
            "" => Ok(self.root.clone()),
            dir => self.file(dir),
        }
    }

    /// A staging file beside `file`, unique in this process.
    fn staging(file: &Path) -> PathBuf {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let n = STAGED.fetch_add(1, Ordering::Relaxed);
        file.with_file_name(format!("{STAGING}{name}.{}.{n}", std::process::id()))
    }
}

/// What `dir` holds directly, as keys (`prefix` + the entry's name);
/// staging files are not listed, a missing directory holds nothing.
fn read_level(dir: &Path, prefix: &str) -> std::io::Result<Level> {
    let mut level = Level::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(level),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(STAGING) {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            level.prefixes.push(format!("{prefix}{name}"));
        } else if kind.is_file() {
            level.objects.push(ListedObject {
                key: format!("{prefix}{name}"),
                size: entry.metadata()?.len(),
            });
        }
    }
    Ok(level)
}

/// Every file below `dir`, as keys (`prefix` + its path below `dir`).
fn walk(dir: &Path, prefix: &str, out: &mut Vec<ListedObject>) -> std::io::Result<()> {
    let level = read_level(dir, prefix)?;
    out.extend(level.objects);
    for sub in level.prefixes {
        let name = sub.rsplit('/').next().unwrap_or_default().to_string();
        walk(&dir.join(name), &format!("{sub}/"), out)?;
    }
    Ok(())
}

/// fsyncs each file and each directory from its parent up to `root`
/// (each once; deepest first, so a directory's own entries are durable
/// before its entry in its parent).
fn sync_files_and_dirs(files: &[PathBuf], root: &Path) -> Result<(), (PathBuf, std::io::Error)> {
    let sync = |path: &Path| {
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| (path.to_path_buf(), e))
    };
    let mut dirs = BTreeSet::new();
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
    for dir in dirs.iter().rev() {
        sync(dir)?;
    }
    Ok(())
}

#[async_trait]
impl LogStore for Directory {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        let file = self.file(key)?;
        let staging = Directory::staging(&file);
        blocking(file.clone(), move || {
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&staging, &bytes)?;
            std::fs::rename(&staging, &file).inspect_err(|_| {
                let _ = std::fs::remove_file(&staging);
            })
        })
        .await
    }

    async fn read(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let file = self.file(key)?;
        match tokio::fs::read(&file).await {
            Ok(bytes) => Ok(Some(bytes.into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&file)(e)),
        }
    }

    async fn open(&self, key: &str) -> Result<Option<Reader>, StoreError> {
        let file = self.file(key)?;
        match tokio::fs::File::open(&file).await {
            Ok(f) => Ok(Some(Box::new(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&file)(e)),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<Head>, StoreError> {
        let file = self.file(key)?;
        match tokio::fs::metadata(&file).await {
            Ok(meta) if meta.is_file() => Ok(Some(Head {
                size: meta.len(),
                etag: None,
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&file)(e)),
        }
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
    ) -> Result<Vec<ListedObject>, StoreError> {
        // Walk from the deepest directory the prefix names whole.
        let (dir_prefix, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let dir_key = if dir_prefix.is_empty() {
            String::new()
        } else {
            format!("{dir_prefix}/")
        };
        let dir = self.dir_of(&dir_key)?;
        let (prefix, after) = (prefix.to_string(), after.map(str::to_string));
        let mut listed = blocking(dir.clone(), move || {
            let mut out = Vec::new();
            walk(&dir, &dir_key, &mut out)?;
            Ok(out)
        })
        .await?;
        listed.retain(|o| {
            o.key.starts_with(&prefix) && after.as_ref().is_none_or(|a| o.key.as_str() > a.as_str())
        });
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(listed)
    }

    async fn list_level(&self, prefix: &str) -> Result<Level, StoreError> {
        let dir = self.dir_of(prefix)?;
        let prefix = prefix.to_string();
        blocking(dir.clone(), move || {
            let mut level = read_level(&dir, &prefix)?;
            level.prefixes.sort();
            level.objects.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(level)
        })
        .await
    }

    async fn start_upload(&self, key: &str) -> Result<Box<dyn PartUpload>, StoreError> {
        let file = self.file(key)?;
        if let Some(parent) = file.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(io_error(parent))?;
        }
        let staging = Directory::staging(&file);
        let out = tokio::fs::File::create_new(&staging)
            .await
            .map_err(io_error(&staging))?;
        Ok(Box::new(StagedFile { out, staging, file }))
    }

    async fn abort_upload(&self, _key: &str, _id: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn make_durable(&self, keys: &[String]) -> Result<(), StoreError> {
        let files = keys
            .iter()
            .map(|k| self.file(k))
            .collect::<Result<Vec<_>, _>>()?;
        let root = self.root.clone();
        match tokio::task::spawn_blocking(move || sync_files_and_dirs(&files, &root)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err((path, source))) => Err(StoreError::Io { path, source }),
            Err(e) => Err(StoreError::Io {
                path: self.root.clone(),
                source: std::io::Error::other(e),
            }),
        }
    }

    fn checks_etag(&self) -> bool {
        false
    }
}

/// A file being written under its staging name.
struct StagedFile {
    out: tokio::fs::File,
    staging: PathBuf,
    file: PathBuf,
}

#[async_trait]
impl PartUpload for StagedFile {
    fn id(&self) -> Option<&str> {
        None
    }

    async fn send(&mut self, part: Bytes) -> Result<(), StoreError> {
        self.out
            .write_all(&part)
            .await
            .map_err(io_error(&self.staging))
    }

    async fn finish(mut self: Box<Self>) -> Result<(), StoreError> {
        self.out.flush().await.map_err(io_error(&self.staging))?;
        tokio::fs::rename(&self.staging, &self.file)
            .await
            .map_err(io_error(&self.file))
    }

    async fn abort(self: Box<Self>) -> Result<(), StoreError> {
        drop(self.out);
        match tokio::fs::remove_file(&self.staging).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&self.staging)(e)),
        }
    }
}
