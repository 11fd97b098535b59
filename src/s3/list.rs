//! Listings: a bucket page by page (backup `verify`), every key below a
//! prefix (the log objects), and one level below a prefix (`/` as the
//! delimiter, for finding the newest log object without listing them all),
//! and a bucket's object versions page by page (the capture's full sync).

use super::{Listed, S3Error, S3ErrorKind, S3};

/// An object below a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
}

/// One level below a prefix: the "directories" (without their trailing
/// `/`) and the objects directly in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Level {
    pub prefixes: Vec<String>,
    pub objects: Vec<ListedObject>,
}

/// A listed object version or delete marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    pub key: String,
    /// As S3 names it: `null` for the version of an unversioned object.
    pub version_id: Option<String>,
    pub delete_marker: bool,
    pub last_modified: Option<chrono::DateTime<chrono::Utc>>,
    pub etag: Option<String>,
    pub size: Option<u64>,
    /// As the listing names it (RGW: `STANDARD` for the default class).
    pub storage_class: Option<String>,
}

/// One page of `ListObjectVersions`: versions first, then delete markers,
/// as the SDK parts them; and where the next page starts, after this key
/// and version id (`None` at the end).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionsPage {
    pub versions: Vec<ObjectVersion>,
    pub next: Option<(String, Option<String>)>,
}

impl S3 {
    /// One page of a bucket's object versions and delete markers, after
    /// `key_marker`/`version_id_marker`. A missing bucket is an error of
    /// kind `NoSuchBucket`.
    pub async fn list_versions_page(
        &self,
        bucket: &str,
        key_marker: Option<&str>,
        version_id_marker: Option<&str>,
    ) -> Result<VersionsPage, S3Error> {
        self.count();
        let out = self
            .client
            .list_object_versions()
            .bucket(bucket)
            .max_keys(1000)
            .set_key_marker(key_marker.map(str::to_string))
            .set_version_id_marker(version_id_marker.map(str::to_string))
            .send()
            .await
            .map_err(|e| self.error("list versions", bucket.to_string(), e))?;
        let versions = out.versions().iter().filter_map(|v| {
            Some(ObjectVersion {
                key: v.key()?.to_string(),
                version_id: v.version_id().map(str::to_string),
                delete_marker: false,
                last_modified: v.last_modified().and_then(super::utc),
                etag: v.e_tag().map(str::to_string),
                size: v.size().map(|s| s.max(0) as u64),
                storage_class: v.storage_class().map(|c| c.as_str().to_string()),
            })
        });
        let markers = out.delete_markers().iter().filter_map(|m| {
            Some(ObjectVersion {
                key: m.key()?.to_string(),
                version_id: m.version_id().map(str::to_string),
                delete_marker: true,
                last_modified: m.last_modified().and_then(super::utc),
                etag: None,
                size: None,
                storage_class: None,
            })
        });
        let versions = versions.chain(markers).collect();
        let next = match (out.is_truncated(), out.next_key_marker()) {
            (Some(true), Some(key)) => Some((
                key.to_string(),
                out.next_version_id_marker().map(str::to_string),
            )),
            _ => None,
        };
        Ok(VersionsPage { versions, next })
    }

    /// One page of a bucket's listing in key order, after `start_after`;
    /// the second value says whether more pages follow. A missing bucket
    /// lists as empty.
    pub async fn list_page(
        &self,
        bucket: &str,
        continuation: Option<String>,
    ) -> Result<(Vec<Listed>, Option<String>), S3Error> {
        self.count();
        let out = match self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(continuation)
            .max_keys(1000)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let err = self.error("list", bucket.to_string(), e);
                if err.kind == S3ErrorKind::NoSuchBucket {
                    return Ok((Vec::new(), None));
                }
                return Err(err);
            }
        };
        let listed = out
            .contents()
            .iter()
            .filter_map(|o| {
                Some(Listed {
                    key: o.key()?.to_string(),
                    size: o.size().unwrap_or_default().max(0) as u64,
                    etag: o.e_tag().unwrap_or_default().to_string(),
                })
            })
            .collect();
        let next = if out.is_truncated() == Some(true) {
            out.next_continuation_token().map(str::to_string)
        } else {
            None
        };
        Ok((listed, next))
    }

    /// Every object whose key starts with `prefix`, after `start_after`,
    /// in key order. Unlike [`S3::list_page`] a missing bucket is an
    /// error: a log target that vanished must not read as empty.
    pub async fn list_all(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
    ) -> Result<Vec<ListedObject>, S3Error> {
        Ok(self
            .list_pages(bucket, prefix, None, start_after)
            .await?
            .objects)
    }

    /// The level directly below `prefix` (which ends in `/`, or is empty
    /// for the bucket's top).
    pub async fn list_level(&self, bucket: &str, prefix: &str) -> Result<Level, S3Error> {
        self.list_pages(bucket, prefix, Some("/"), None).await
    }

    async fn list_pages(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
    ) -> Result<Level, S3Error> {
        let mut level = Level::default();
        let mut continuation = None;
        loop {
            self.count();
            let out = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_delimiter(delimiter.map(str::to_string))
                .set_start_after(start_after.map(str::to_string))
                .set_continuation_token(continuation)
                .max_keys(1000)
                .send()
                .await
                .map_err(|e| self.error("list", format!("{bucket}/{prefix}"), e))?;
            level.prefixes.extend(
                out.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix())
                    .map(|p| p.trim_end_matches('/').to_string()),
            );
            level.objects.extend(out.contents().iter().filter_map(|o| {
                Some(ListedObject {
                    key: o.key()?.to_string(),
                    size: o.size().unwrap_or_default().max(0) as u64,
                })
            }));
            continuation = match (out.is_truncated(), out.next_continuation_token()) {
                (Some(true), Some(token)) => Some(token.to_string()),
                _ => return Ok(level),
            };
        }
    }
}
