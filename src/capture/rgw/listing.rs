//! Listing a bucket's object versions (S3 `ListObjectVersions`), for a full
//! sync: the starting point when `initial = "full"`.

use chrono::Utc;

use crate::record::{ChangeDetails, ChangeRecord, Op, Provenance};
use crate::s3::{ObjectVersion, S3ErrorKind, S3};

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
/// page starts (`None` at the end). A bucket gone meanwhile lists as empty.
pub async fn list_page(
    s3: &S3,
    bucket: &str,
    after: Option<&ListPosition>,
    reason: &str,
) -> Result<(Vec<ChangeRecord>, Option<ListPosition>), crate::s3::S3Error> {
    let (key_marker, version_marker) = match after {
        Some(p) => (
            Some(p.key.as_str()),
            Some(p.version_id.as_str()).filter(|v| !v.is_empty()),
        ),
        None => (None, None),
    };
    let page = match s3
        .list_versions_page(bucket, key_marker, version_marker)
        .await
    {
        Ok(page) => page,
        Err(e) if e.kind == S3ErrorKind::NoSuchBucket => return Ok((Vec::new(), None)),
        Err(e) => return Err(e),
    };
    let records = page
        .versions
        .into_iter()
        .map(|v| record_of(bucket, v, reason))
        .collect();
    let next = page.next.map(|(key, version_id)| ListPosition {
        key,
        version_id: version_id.unwrap_or_default(),
    });
    Ok((records, next))
}

/// A listed version as the change that made it.
fn record_of(bucket: &str, v: ObjectVersion, reason: &str) -> ChangeRecord {
    let op = if v.delete_marker {
        Op::DeleteMarker
    } else {
        Op::Put
    };
    let time = v.last_modified.unwrap_or_else(Utc::now);
    // "null" is S3's name for the version of an unversioned object.
    let version_id = v.version_id.filter(|id| id != "null" && !id.is_empty());
    ChangeRecord {
        bucket: bucket.to_string(),
        key: v.key,
        version_id,
        op,
        time,
        size: (op == Op::Put).then_some(v.size).flatten(),
        etag: v.etag.map(|e| crate::s3::bare_etag(&e).to_string()),
        mtime: (op == Op::Put).then_some(time),
        source: Provenance::Listing {
            reason: reason.to_string(),
        },
        details: ChangeDetails {
            storage_class: v.storage_class.filter(|_| op == Op::Put),
            ..ChangeDetails::default()
        },
    }
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
    fn a_listed_version_becomes_its_change() {
        let time = chrono::DateTime::parse_from_rfc3339("2026-11-25T10:44:36.154Z")
            .unwrap()
            .with_timezone(&Utc);
        let version = ObjectVersion {
            key: "obj".into(),
            version_id: Some("v2".into()),
            delete_marker: false,
            last_modified: Some(time),
            etag: Some("\"abc\"".into()),
            size: Some(2),
            storage_class: Some("STANDARD".into()),
        };
        let put = record_of("b", version.clone(), "full");
        assert_eq!(put.op, Op::Put);
        assert_eq!(put.version_id.as_deref(), Some("v2"));
        assert_eq!((put.size, put.etag.as_deref()), (Some(2), Some("abc")));
        assert_eq!((put.time, put.mtime), (time, Some(time)));
        assert_eq!(put.details.storage_class.as_deref(), Some("STANDARD"));

        let unversioned = record_of(
            "b",
            ObjectVersion {
                version_id: Some("null".into()),
                ..version.clone()
            },
            "full",
        );
        assert_eq!(unversioned.version_id, None);

        let marker = record_of(
            "b",
            ObjectVersion {
                version_id: Some("dm".into()),
                delete_marker: true,
                etag: None,
                size: None,
                ..version
            },
            "full",
        );
        assert_eq!(marker.op, Op::DeleteMarker);
        assert_eq!((marker.size, marker.mtime), (None, None));
    }
}
