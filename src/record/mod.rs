//! The change record: what zonelog knows about one object change.
//!
//! The same type travels from capture through the index to the log encoder,
//! so every stage agrees on what a valid change is (see [`ChangeRecord::validate`]).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

mod details;

pub use details::{
    etag_is_multipart, user_metadata_name, ChangeDetails, InvalidDetail, MAX_DETAIL_BYTES,
    MAX_TAGS, MAX_USER_METADATA_BYTES,
};

/// S3 limits object keys to 1024 bytes of UTF-8; RGW enforces the same.
pub const MAX_KEY_BYTES: usize = 1024;
/// RGW accepts bucket names longer than AWS's 63 when relaxed names are on.
pub const MAX_BUCKET_BYTES: usize = 255;
/// RGW's shortest bucket name, relaxed names or not.
const MIN_BUCKET_NAME_BYTES: usize = 3;
const MAX_VERSION_ID_BYTES: usize = 1024;
const MAX_ETAG_BYTES: usize = 256;

/// What happened to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Create, overwrite, copy or multipart complete.
    Put,
    /// An object or a specific version was removed.
    Delete,
    /// A delete in a versioned bucket that left a delete marker.
    DeleteMarker,
    /// Tags, ACL or metadata changed; the data did not.
    Metadata,
    /// The bucket was removed, and with it every object and version it
    /// held. The record's key is empty. Changes made just before the
    /// removal that RGW no longer held when zonelog read the bucket's log
    /// are covered by this record, not listed one by one.
    BucketRemoved,
}

impl Op {
    pub const ALL: [Op; 5] = [
        Op::Put,
        Op::Delete,
        Op::DeleteMarker,
        Op::Metadata,
        Op::BucketRemoved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Delete => "delete",
            Op::DeleteMarker => "delete_marker",
            Op::Metadata => "metadata",
            Op::BucketRemoved => "bucket_removed",
        }
    }

    /// Whether the change is about a whole bucket rather than one object.
    pub fn is_bucket_level(self) -> bool {
        matches!(self, Op::BucketRemoved)
    }
}

/// Which capture path produced a record, and where in that path, so an
/// operator can trace any log line back to the source position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Provenance {
    /// Pulled from an RGW bucket-index log shard.
    Rgw {
        bucket_shard: String,
        marker: String,
    },
    /// Pushed to us as an S3 event notification.
    Notify {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sequencer: Option<String>,
    },
    /// Emitted by a full listing of a bucket (initial sync or resync).
    Listing { reason: String },
    /// Written by a test or a benchmark.
    Test,
}

/// One object change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    pub bucket: String,
    pub key: String,
    #[serde(default)]
    pub version_id: Option<String>,
    pub op: Op,
    /// When the change happened at the source.
    #[serde(with = "rfc3339_nanos")]
    pub time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_rfc3339_nanos"
    )]
    pub mtime: Option<DateTime<Utc>>,
    pub source: Provenance,
    /// Everything else the source or an enrichment knows.
    #[serde(flatten)]
    pub details: ChangeDetails,
}

/// Why a record cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRecord {
    #[error("bucket is empty")]
    EmptyBucket,
    #[error("bucket name is {0} bytes, more than the {MAX_BUCKET_BYTES} allowed")]
    BucketTooLong(usize),
    #[error("bucket name {name:?} is no bucket's name: {why}")]
    BadBucketName { name: String, why: &'static str },
    #[error("object key is empty")]
    EmptyKey,
    #[error("a bucket-level change ({0}) names an object key or version")]
    BucketChangeWithKey(&'static str),
    #[error("object key is {0} bytes, more than the {MAX_KEY_BYTES} S3 allows")]
    KeyTooLong(usize),
    #[error("version_id is empty (use null for an unversioned object)")]
    EmptyVersionId,
    #[error("version_id is {0} bytes, more than {MAX_VERSION_ID_BYTES}")]
    VersionIdTooLong(usize),
    #[error("etag is {0} bytes, more than {MAX_ETAG_BYTES}")]
    EtagTooLong(usize),
    #[error("time {0} is outside the range zonelog can order (1970 to 2262)")]
    TimeOutOfRange(String),
    #[error(transparent)]
    Detail(#[from] InvalidDetail),
}

impl ChangeRecord {
    /// Checks the limits every stage relies on; a record that passes can be
    /// indexed, encoded and uploaded.
    pub fn validate(&self) -> Result<(), InvalidRecord> {
        if self.bucket.is_empty() {
            return Err(InvalidRecord::EmptyBucket);
        }
        if self.bucket.len() > MAX_BUCKET_BYTES {
            return Err(InvalidRecord::BucketTooLong(self.bucket.len()));
        }
        check_bucket_name(&self.bucket)?;
        if self.op.is_bucket_level() {
            if !self.key.is_empty() || self.version_id.is_some() {
                return Err(InvalidRecord::BucketChangeWithKey(self.op.as_str()));
            }
        } else if self.key.is_empty() {
            return Err(InvalidRecord::EmptyKey);
        }
        if self.key.len() > MAX_KEY_BYTES {
            return Err(InvalidRecord::KeyTooLong(self.key.len()));
        }
        match &self.version_id {
            Some(v) if v.is_empty() => return Err(InvalidRecord::EmptyVersionId),
            Some(v) if v.len() > MAX_VERSION_ID_BYTES => {
                return Err(InvalidRecord::VersionIdTooLong(v.len()))
            }
            _ => {}
        }
        if let Some(etag) = &self.etag {
            if etag.len() > MAX_ETAG_BYTES {
                return Err(InvalidRecord::EtagTooLong(etag.len()));
            }
        }
        self.time_ns()?;
        self.details.validate()?;
        Ok(())
    }

    /// Drops the details that could not be stored (see
    /// [`ChangeDetails::drop_invalid`]) and warns about each, so that an
    /// oversized extra never costs the change itself.
    pub fn drop_invalid_details(&mut self) {
        for dropped in self.details.drop_invalid() {
            tracing::warn!(bucket = %self.bucket, key = %self.key.escape_debug(), reason = %dropped, "change kept without a detail it cannot store");
        }
    }

    /// Whether the object was written by a multipart upload, when its
    /// ETag is known.
    pub fn is_multipart(&self) -> Option<bool> {
        self.etag.as_deref().map(etag_is_multipart)
    }

    /// The source time as nanoseconds since the Unix epoch: the time part of
    /// the index key.
    pub fn time_ns(&self) -> Result<u64, InvalidRecord> {
        self.time
            .timestamp_nanos_opt()
            .and_then(|ns| u64::try_from(ns).ok())
            .ok_or_else(|| InvalidRecord::TimeOutOfRange(self.time.to_rfc3339()))
    }
}

/// Checks a bucket name against the rules RGW applies to every bucket it
/// makes (its relaxed S3 names, a superset of AWS's): 3 to 255 ASCII
/// letters, digits, `.`, `-` and `_`, optionally after a tenant (letters,
/// digits and `_`) and one `/`, as RGW names a tenant's bucket in its logs.
/// Whatever passes is one safe path segment per part: no `/` inside a
/// part, no `..` or `.` part, no control or other characters, so no stage
/// can be led outside a directory by a name.
pub fn check_bucket_name(name: &str) -> Result<(), InvalidRecord> {
    let bad = |why| InvalidRecord::BadBucketName {
        name: name.to_string(),
        why,
    };
    let (tenant, bucket) = match name.split_once('/') {
        Some((tenant, bucket)) => (Some(tenant), bucket),
        None => (None, name),
    };
    if let Some(tenant) = tenant {
        if tenant.is_empty()
            || !tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(bad("a tenant is letters, digits and '_' before one '/'"));
        }
    }
    if bucket.len() < MIN_BUCKET_NAME_BYTES {
        return Err(bad("shorter than 3 characters"));
    }
    if !bucket
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(bad(
            "only letters, digits, '.', '-' and '_' (and one '/' after a tenant)",
        ));
    }
    if bucket.bytes().all(|b| b == b'.') {
        return Err(bad("only dots"));
    }
    Ok(())
}

/// Formats a time the way every record carries it: RFC 3339, UTC, nanoseconds.
pub fn format_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

pub(crate) mod rfc3339_nanos {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

pub(crate) mod opt_rfc3339_nanos {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format_time(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let raw = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
        raw.map(|raw| {
            DateTime::parse_from_rfc3339(&raw)
                .map(|t| t.with_timezone(&Utc))
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ChangeRecord {
        ChangeRecord {
            bucket: "photos".into(),
            key: "2026/a.jpg".into(),
            version_id: None,
            op: Op::Put,
            time: DateTime::from_timestamp(1_764_000_000, 123_456_789).unwrap(),
            size: Some(10),
            etag: Some("abc".into()),
            mtime: None,
            source: Provenance::Test,
            details: ChangeDetails::default(),
        }
    }

    #[test]
    fn time_is_serialized_with_nanoseconds() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(json["time"], "2025-11-24T16:00:00.123456789Z");
        let back: ChangeRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn limits_are_enforced() {
        let mut r = sample();
        r.bucket.clear();
        assert_eq!(r.validate(), Err(InvalidRecord::EmptyBucket));
        let mut r = sample();
        r.key = "k".repeat(MAX_KEY_BYTES + 1);
        assert_eq!(r.validate(), Err(InvalidRecord::KeyTooLong(1025)));
        let mut r = sample();
        r.key = "k".repeat(MAX_KEY_BYTES);
        assert!(r.validate().is_ok());
        let mut r = sample();
        r.version_id = Some(String::new());
        assert_eq!(r.validate(), Err(InvalidRecord::EmptyVersionId));
        let mut r = sample();
        r.op = Op::BucketRemoved;
        assert!(r.validate().is_err(), "a bucket removal names no key");
        r.key.clear();
        assert!(r.validate().is_ok());
        r.version_id = Some("v".into());
        assert!(r.validate().is_err());
    }
}
