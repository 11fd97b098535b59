//! S3 event notifications (`{"Records":[…]}`) → change records.
//!
//! One parser for the three dialects zonelog receives:
//! - Ceph RGW 16 (`eventVersion` 2.2, `eventSource` `ceph:s3`): event names
//!   without the `s3:` prefix, `size` a number (a string in some versions),
//!   keys sent as they are, `versionId` `""` when unversioned (also on a
//!   `DeleteMarkerCreated`, whose marker id RGW 16 does not send), plus
//!   `eventId` and `opaqueData`;
//! - MinIO: names with the `s3:` prefix, keys URL-encoded (`/` too);
//! - AWS: keys URL-encoded as a form (`+` is a space), no size on deletes.
//!
//! Parsing is strict about what a record needs (event name, bucket, key,
//! time) and lenient about everything else: unknown fields are ignored and
//! event types that are not object changes are counted and skipped, so that
//! a sender's queue is never blocked by an event zonelog has no use for.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use super::event_details::{event_details, lenient, RawPairs, Requester};
use crate::config::KeyEncoding;
use crate::record::{ChangeRecord, Op, Provenance};

/// What is wrong with a request body; the message names the place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct EventError {
    /// Where in the body, e.g. `Records[2].s3.object.key`.
    pub path: String,
    pub reason: String,
}

fn error(path: impl Into<String>, reason: impl Into<String>) -> EventError {
    EventError {
        path: path.into(),
        reason: reason.into(),
    }
}

/// One notification turned into a change, with the key that recognises a
/// redelivery of the same notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub record: ChangeRecord,
    /// `None` when the event carries neither a sequencer nor an event id:
    /// then two equal events cannot be told from one delivered twice.
    pub dedup: Option<u128>,
}

/// The changes of one request body, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub notifications: Vec<Notification>,
    /// Events that are not object changes (reads, restores, transitions,
    /// test events), skipped.
    pub ignored: usize,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "Records")]
    records: Option<Vec<RawRecord>>,
    /// AWS sends `{"Event":"s3:TestEvent",…}` when a configuration is saved.
    #[serde(rename = "Event")]
    event: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawRecord {
    #[serde(rename = "eventSource")]
    event_source: Option<String>,
    #[serde(rename = "eventName")]
    event_name: Option<String>,
    #[serde(rename = "eventTime")]
    event_time: Option<String>,
    #[serde(rename = "eventId")]
    event_id: Option<String>,
    #[serde(rename = "userIdentity", default, deserialize_with = "lenient")]
    user_identity: Option<RawIdentity>,
    #[serde(rename = "requestParameters", default, deserialize_with = "lenient")]
    request_parameters: Option<RawRequest>,
    #[serde(rename = "responseElements", default, deserialize_with = "lenient")]
    response_elements: Option<RawResponse>,
    s3: Option<RawS3>,
}

#[derive(Deserialize)]
struct RawIdentity {
    #[serde(rename = "principalId")]
    principal_id: Option<String>,
}

#[derive(Deserialize)]
struct RawRequest {
    #[serde(rename = "sourceIPAddress")]
    source_ip: Option<String>,
}

#[derive(Deserialize)]
struct RawResponse {
    #[serde(rename = "x-amz-request-id")]
    request_id: Option<String>,
}

#[derive(Deserialize)]
struct RawS3 {
    bucket: Option<RawBucket>,
    object: Option<RawObject>,
}

#[derive(Deserialize)]
struct RawBucket {
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawObject {
    key: Option<String>,
    #[serde(default, deserialize_with = "lenient_size")]
    size: Option<u64>,
    // RGW spelled it `etag` before 2021 (ceph PR #40608).
    #[serde(rename = "eTag", alias = "etag")]
    etag: Option<String>,
    #[serde(rename = "versionId")]
    version_id: Option<String>,
    sequencer: Option<String>,
    /// RGW: `[{"key":"x-amz-meta-a","val":"1"}]`; MinIO `userMetadata`:
    /// a map that also holds `content-type`.
    #[serde(default, alias = "userMetadata", deserialize_with = "lenient")]
    metadata: Option<RawPairs>,
    /// RGW: `[{"key":"a","val":"1"}]`.
    #[serde(default, deserialize_with = "lenient")]
    tags: Option<RawPairs>,
    #[serde(rename = "contentType", default, deserialize_with = "lenient")]
    content_type: Option<String>,
}

/// `size` arrives as a number, as a string of digits (some RGW versions),
/// or not at all (AWS deletes).
fn lenient_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Number(u64),
        Text(String),
    }
    match Option::<Size>::deserialize(d)? {
        None => Ok(None),
        Some(Size::Number(n)) => Ok(Some(n)),
        Some(Size::Text(t)) if t.is_empty() => Ok(None),
        Some(Size::Text(t)) => t
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("size {t:?} is not a number"))),
    }
}

/// What an event name means for the object, or `None` for events that do
/// not change an object.
fn op_of(event_name: &str) -> Option<Op> {
    let name = event_name.strip_prefix("s3:").unwrap_or(event_name);
    let (family, detail) = name.split_once(':').unwrap_or((name, ""));
    match family {
        "ObjectCreated" => Some(Op::Put),
        "ObjectRemoved" | "LifecycleExpiration" if detail.starts_with("DeleteMarker") => {
            Some(Op::DeleteMarker)
        }
        "ObjectRemoved" | "LifecycleExpiration" => Some(Op::Delete),
        // RGW 17+ names lifecycle deletes this way.
        "ObjectLifecycle" if detail.starts_with("Expiration") => {
            if detail.contains("DeleteMarker") {
                Some(Op::DeleteMarker)
            } else {
                Some(Op::Delete)
            }
        }
        "ObjectTagging" | "ObjectAcl" => Some(Op::Metadata),
        _ => None,
    }
}

/// Decodes a form-style URL encoding (`+` is a space, `%XX` a byte); the
/// result must be UTF-8.
pub fn url_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Parses a request body. All or nothing: the first bad record fails the
/// whole body, so a sender never sees half of a request stored.
pub fn parse(body: &[u8], encoding: KeyEncoding) -> Result<Parsed, EventError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let envelope: Envelope = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let path = if matches!(path.as_str(), "." | "?" | "") {
            "body".into()
        } else {
            path
        };
        error(path, first_line(&e.inner().to_string()))
    })?;
    de.end()
        .map_err(|e| error("body", format!("trailing data after the JSON object: {e}")))?;
    let Some(records) = envelope.records else {
        if envelope.event.is_some() {
            return Ok(Parsed {
                notifications: Vec::new(),
                ignored: 1,
            });
        }
        return Err(error(
            "body",
            "no \"Records\" array: not an S3 event notification",
        ));
    };
    let mut parsed = Parsed::default();
    for (i, raw) in records.into_iter().enumerate() {
        match map_record(i, raw, encoding)? {
            Some(n) => parsed.notifications.push(n),
            None => parsed.ignored += 1,
        }
    }
    Ok(parsed)
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or_default().to_string()
}

fn map_record(
    i: usize,
    raw: RawRecord,
    encoding: KeyEncoding,
) -> Result<Option<Notification>, EventError> {
    let at = |field: &str| format!("Records[{i}].{field}");
    let event_name = raw
        .event_name
        .ok_or_else(|| error(at("eventName"), "missing"))?;
    let Some(op) = op_of(&event_name) else {
        return Ok(None);
    };
    let s3 = raw.s3.ok_or_else(|| error(at("s3"), "missing"))?;
    let bucket = s3
        .bucket
        .and_then(|b| b.name)
        .filter(|b| !b.is_empty())
        .ok_or_else(|| error(at("s3.bucket.name"), "missing or empty"))?;
    crate::record::check_bucket_name(&bucket)
        .map_err(|e| error(at("s3.bucket.name"), e.to_string()))?;
    let object = s3.object.ok_or_else(|| error(at("s3.object"), "missing"))?;
    let raw_key = object
        .key
        .filter(|k| !k.is_empty())
        .ok_or_else(|| error(at("s3.object.key"), "missing or empty"))?;
    let decode = match encoding {
        KeyEncoding::Url => true,
        KeyEncoding::Raw => false,
        KeyEncoding::Auto => raw.event_source.as_deref() != Some("ceph:s3"),
    };
    let key = if decode {
        url_decode(&raw_key).ok_or_else(|| {
            error(
                at("s3.object.key"),
                format!("{raw_key:?} is not valid URL encoding of UTF-8"),
            )
        })?
    } else {
        raw_key
    };
    let time_text = raw
        .event_time
        .ok_or_else(|| error(at("eventTime"), "missing"))?;
    let time = DateTime::parse_from_rfc3339(&time_text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            error(
                at("eventTime"),
                format!("{time_text:?} is not an RFC 3339 time: {e}"),
            )
        })?;
    let version_id = object.version_id.filter(|v| !v.is_empty());
    let sequencer = object.sequencer.filter(|s| !s.is_empty());
    let event_id = raw.event_id.filter(|s| !s.is_empty());
    // A delete's size and ETag (RGW sends them) describe what was removed,
    // not the object's new state.
    let (size, etag) = match op {
        Op::Put => (object.size, object.etag.filter(|e| !e.is_empty())),
        _ => (None, None),
    };
    let dedup = (sequencer.is_some() || event_id.is_some()).then(|| {
        dedup_key(&[
            Some(bucket.as_str()),
            Some(key.as_str()),
            version_id.as_deref(),
            Some(event_name.as_str()),
            Some(time_text.as_str()),
            sequencer.as_deref(),
            event_id.as_deref(),
        ])
    });
    let ceph = raw.event_source.as_deref() == Some("ceph:s3");
    let details = event_details(
        op,
        ceph,
        sequencer.as_deref(),
        object.content_type,
        object.metadata,
        object.tags,
        Requester {
            user: raw.user_identity.and_then(|u| u.principal_id),
            ip: raw.request_parameters.and_then(|r| r.source_ip),
            request_id: raw.response_elements.and_then(|r| r.request_id),
        },
    );
    let mut record = ChangeRecord {
        bucket,
        key,
        version_id,
        op,
        time,
        size,
        etag,
        mtime: None,
        source: Provenance::Notify {
            event_id,
            sequencer,
        },
        details,
    };
    record.drop_invalid_details();
    record
        .validate()
        .map_err(|e| error(format!("Records[{i}]"), e.to_string()))?;
    Ok(Some(Notification { record, dedup }))
}

/// A 128-bit hash of the fields that identify one event; a redelivery
/// carries the same fields, a different event differs in at least one
/// (the sequencer or the event id, the time or the name).
fn dedup_key(fields: &[Option<&str>]) -> u128 {
    let mut buf = Vec::with_capacity(256);
    for field in fields {
        match field {
            // Length-prefixed, with presence, so no two field lists encode
            // the same bytes.
            Some(f) => {
                buf.push(1);
                buf.extend_from_slice(&(f.len() as u64).to_be_bytes());
                buf.extend_from_slice(f.as_bytes());
            }
            None => buf.push(0),
        }
    }
    xxhash_rust::xxh3::xxh3_128(&buf)
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;
