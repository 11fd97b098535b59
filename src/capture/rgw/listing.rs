//! Listing a bucket's object versions (S3 `ListObjectVersions`), for a full
//! sync: the starting point when `initial = "full"`.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::admin::{encode_path, AdminError, SignedClient};
use crate::record::{ChangeRecord, Op, Provenance};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListVersionsResult {
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_key_marker: Option<String>,
    #[serde(default)]
    next_version_id_marker: Option<String>,
    #[serde(default, rename = "Version")]
    versions: Vec<ListedVersion>,
    #[serde(default, rename = "DeleteMarker")]
    delete_markers: Vec<ListedVersion>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListedVersion {
    key: String,
    #[serde(default)]
    version_id: Option<String>,
    #[serde(default)]
    last_modified: Option<String>,
    #[serde(default, rename = "ETag")]
    etag: Option<String>,
    #[serde(default)]
    size: Option<u64>,
}

/// Where a listing continues: after this key and version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPosition {
    pub key: String,
    pub version_id: String,
}

impl ListPosition {
    /// `key \0 version`, as stored in the index marker.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.key.as_bytes().to_vec();
        out.push(0);
        out.extend_from_slice(self.version_id.as_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<ListPosition> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (key, version_id) = text.split_once('\0')?;
        Some(ListPosition {
            key: key.to_string(),
            version_id: version_id.to_string(),
        })
    }
}

/// One page of a bucket's versions as change records, and where the next
/// page starts (`None` at the end).
pub async fn list_page(
    client: &SignedClient,
    bucket: &str,
    after: Option<&ListPosition>,
    reason: &str,
) -> Result<(Vec<ChangeRecord>, Option<ListPosition>), AdminError> {
    let mut query: Vec<(&str, Option<&str>)> = vec![("versions", None), ("max-keys", Some("1000"))];
    if let Some(p) = after {
        query.push(("key-marker", Some(p.key.as_str())));
        if !p.version_id.is_empty() {
            query.push(("version-id-marker", Some(p.version_id.as_str())));
        }
    }
    let url = client.url(&format!("/{}", encode_path(bucket)), &query);
    let what = format!("listing of bucket {bucket}");
    let reply = client
        .send(reqwest::Method::GET, url, Vec::new(), &what)
        .await?;
    let text = String::from_utf8_lossy(&reply.body);
    let page: ListVersionsResult =
        quick_xml::de::from_str(&text).map_err(|e| AdminError::Decode {
            endpoint: client.endpoint().to_string(),
            what: what.clone(),
            reason: e.to_string(),
        })?;
    let mut records = Vec::with_capacity(page.versions.len() + page.delete_markers.len());
    let listed = page.versions.into_iter().map(|v| (v, Op::Put)).chain(
        page.delete_markers
            .into_iter()
            .map(|v| (v, Op::DeleteMarker)),
    );
    for (v, op) in listed {
        let time = v
            .last_modified
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(Utc::now);
        // "null" is S3's name for the version of an unversioned object.
        let version_id = v.version_id.filter(|id| id != "null" && !id.is_empty());
        records.push(ChangeRecord {
            bucket: bucket.to_string(),
            key: v.key,
            version_id,
            op,
            time,
            size: (op == Op::Put).then_some(v.size).flatten(),
            etag: v.etag.map(|e| e.trim_matches('"').to_string()),
            mtime: (op == Op::Put).then_some(time),
            source: Provenance::Listing {
                reason: reason.to_string(),
            },
        });
    }
    let next = match (page.is_truncated, page.next_key_marker) {
        (true, Some(key)) => Some(ListPosition {
            key,
            version_id: page.next_version_id_marker.unwrap_or_default(),
        }),
        _ => None,
    };
    Ok((records, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip() {
        let p = ListPosition {
            key: "a/b c".into(),
            version_id: "v1".into(),
        };
        assert_eq!(ListPosition::decode(&p.encode()), Some(p));
        assert_eq!(ListPosition::decode(b"no-separator"), None);
    }

    #[test]
    fn parses_versions_and_delete_markers_interleaved() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix><KeyMarker></KeyMarker><VersionIdMarker></VersionIdMarker><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><NextKeyMarker>obj</NextKeyMarker><NextVersionIdMarker>v1</NextVersionIdMarker>
<DeleteMarker><Key>obj</Key><VersionId>dm</VersionId><IsLatest>true</IsLatest><LastModified>2026-11-25T10:44:36.165Z</LastModified></DeleteMarker>
<Version><Key>obj</Key><VersionId>v2</VersionId><IsLatest>false</IsLatest><LastModified>2026-11-25T10:44:36.154Z</LastModified><ETag>"abc"</ETag><Size>2</Size><StorageClass>STANDARD</StorageClass></Version>
<Version><Key>plain</Key><VersionId>null</VersionId><IsLatest>true</IsLatest><LastModified>2026-11-25T10:44:36.100Z</LastModified><ETag>"def"</ETag><Size>1</Size></Version>
</ListVersionsResult>"#;
        let page: ListVersionsResult = quick_xml::de::from_str(xml).unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.versions.len(), 2);
        assert_eq!(page.delete_markers.len(), 1);
        assert_eq!(page.versions[1].version_id.as_deref(), Some("null"));
    }
}
