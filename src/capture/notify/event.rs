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

use super::event_details::{event_details, RawPairs, Requester};
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
    #[serde(rename = "userIdentity")]
    user_identity: Option<RawIdentity>,
    #[serde(rename = "requestParameters")]
    request_parameters: Option<RawRequest>,
    #[serde(rename = "responseElements")]
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
    #[serde(default, alias = "userMetadata")]
    metadata: Option<RawPairs>,
    /// RGW: `[{"key":"a","val":"1"}]`.
    #[serde(default)]
    tags: Option<RawPairs>,
    #[serde(rename = "contentType")]
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What RGW 16.2.15 sent to an http push endpoint (dev zone).
    const RGW_PUT: &str = r#"{"Records":[{"eventVersion":"2.2","eventSource":"ceph:s3","awsRegion":"","eventTime":"2026-11-25T17:02:25.069098Z","eventName":"ObjectCreated:Put","userIdentity":{"principalId":"zonelog-admin"},"requestParameters":{"sourceIPAddress":""},"responseElements":{"x-amz-request-id":"83f437ee-6a86-4504-b23f-3f7a91f92ffa.4163.16623372461090809451","x-amz-id-2":"1043-default-default"},"s3":{"s3SchemaVersion":"1.0","configurationId":"zonelog","bucket":{"name":"nexp-b1","ownerIdentity":{"principalId":"zonelog-admin"},"arn":"arn:aws:s3:::nexp-b1","id":"83f437ee-6a86-4504-b23f-3f7a91f92ffa.4165.9"},"object":{"key":"a b","size":5,"eTag":"5d41402abc4b2a76b9719d911017c592","versionId":"","sequencer":"A114076B14773D04","metadata":[{"key":"x-amz-content-sha256","val":"UNSIGNED-PAYLOAD"}],"tags":[]}},"eventId":"1795626145.071137.5d41402abc4b2a76b9719d911017c592","opaqueData":""}]}"#;

    const RGW_DELETE_MARKER: &str = r#"{"Records":[{"eventVersion":"2.2","eventSource":"ceph:s3","awsRegion":"","eventTime":"2026-11-25T17:02:43.246941Z","eventName":"ObjectRemoved:DeleteMarkerCreated","s3":{"bucket":{"name":"nexp-b1"},"object":{"key":"v1","size":"5","eTag":"5d41402abc4b2a76b9719d911017c592","versionId":"","sequencer":"B314076B421DB80E"}},"eventId":"1795626163.246947.5d41402abc4b2a76b9719d911017c592","opaqueData":"x"}]}"#;

    /// MinIO's webhook format (keys URL-encoded, `s3:` prefix).
    const MINIO_PUT: &str = r#"{"EventName":"s3:ObjectCreated:Put","Key":"images/dir/a b.jpg","Records":[{"eventVersion":"2.0","eventSource":"minio:s3","awsRegion":"","eventTime":"2019-05-18T07:34:32.000Z","eventName":"s3:ObjectCreated:Put","userIdentity":{"principalId":"minio"},"requestParameters":{"accessKey":"minio","region":"","sourceIPAddress":"172.18.0.1"},"responseElements":{"x-amz-request-id":"159FB6B233B08AF0"},"s3":{"s3SchemaVersion":"1.0","configurationId":"Config","bucket":{"name":"images","ownerIdentity":{"principalId":"minio"},"arn":"arn:aws:s3:::images"},"object":{"key":"dir%2Fa+b.jpg","size":629648,"eTag":"b7ce786cd89b182bfd5ae765557bbc37","contentType":"image/jpeg","userMetadata":{"content-type":"image/jpeg"},"versionId":"1","sequencer":"15612487A9DF732C"}},"source":{"host":"","port":"","userAgent":""}}]}"#;

    /// The AWS documentation's example, a delete of a version.
    const AWS_DELETE: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-west-2","eventTime":"1970-01-01T00:00:00.000Z","eventName":"ObjectRemoved:Delete","userIdentity":{"principalId":"AIDAJDPLRKLG7UEXAMPLE"},"requestParameters":{"sourceIPAddress":"127.0.0.1"},"responseElements":{"x-amz-request-id":"C3D13FE58DE4C810","x-amz-id-2":"FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},"s3":{"s3SchemaVersion":"1.0","configurationId":"testConfigRule","bucket":{"name":"mybucket","ownerIdentity":{"principalId":"A3NL1KOZZKExample"},"arn":"arn:aws:s3:::mybucket"},"object":{"key":"HappyFace%28copy%29.jpg","versionId":"096fKKXTRTtl3on89fVO.nfljtsv6qko","sequencer":"0055AED6DCD90281E5"}}}]}"#;

    #[test]
    fn rgw_put_maps_to_a_put_with_the_raw_key() {
        let parsed = parse(RGW_PUT.as_bytes(), KeyEncoding::Auto).unwrap();
        assert_eq!(parsed.ignored, 0);
        let n = &parsed.notifications[0];
        let r = &n.record;
        assert_eq!((r.bucket.as_str(), r.key.as_str()), ("nexp-b1", "a b"));
        assert_eq!(r.op, Op::Put);
        assert_eq!(r.version_id, None);
        assert_eq!(r.size, Some(5));
        assert_eq!(r.etag.as_deref(), Some("5d41402abc4b2a76b9719d911017c592"));
        assert_eq!(
            crate::record::format_time(&r.time),
            "2026-11-25T17:02:25.069098000Z"
        );
        assert_eq!(
            r.source,
            Provenance::Notify {
                event_id: Some("1795626145.071137.5d41402abc4b2a76b9719d911017c592".into()),
                sequencer: Some("A114076B14773D04".into()),
            }
        );
        assert!(n.dedup.is_some());
    }

    #[test]
    fn delete_marker_has_no_size_and_size_may_be_a_string() {
        let parsed = parse(RGW_DELETE_MARKER.as_bytes(), KeyEncoding::Auto).unwrap();
        let r = &parsed.notifications[0].record;
        assert_eq!(r.op, Op::DeleteMarker);
        assert_eq!((r.size, r.etag.as_deref()), (None, None));
        let put = RGW_PUT.replace("\"size\":5", "\"size\":\"5\"");
        let parsed = parse(put.as_bytes(), KeyEncoding::Auto).unwrap();
        assert_eq!(parsed.notifications[0].record.size, Some(5));
    }

    #[test]
    fn minio_and_aws_keys_are_url_decoded() {
        let parsed = parse(MINIO_PUT.as_bytes(), KeyEncoding::Auto).unwrap();
        let r = &parsed.notifications[0].record;
        assert_eq!(
            (r.bucket.as_str(), r.key.as_str()),
            ("images", "dir/a b.jpg")
        );
        assert_eq!(r.version_id.as_deref(), Some("1"));
        let parsed = parse(AWS_DELETE.as_bytes(), KeyEncoding::Auto).unwrap();
        let r = &parsed.notifications[0].record;
        assert_eq!(r.key, "HappyFace(copy).jpg");
        assert_eq!(r.op, Op::Delete);
        assert_eq!(
            r.version_id.as_deref(),
            Some("096fKKXTRTtl3on89fVO.nfljtsv6qko")
        );
        // The encoding can be forced either way.
        let parsed = parse(AWS_DELETE.as_bytes(), KeyEncoding::Raw).unwrap();
        assert_eq!(
            parsed.notifications[0].record.key,
            "HappyFace%28copy%29.jpg"
        );
        let parsed = parse(RGW_PUT.as_bytes(), KeyEncoding::Url).unwrap();
        assert_eq!(parsed.notifications[0].record.key, "a b");
    }

    #[test]
    fn event_names_map_to_ops() {
        for (name, op) in [
            ("ObjectCreated:Put", Some(Op::Put)),
            ("s3:ObjectCreated:Post", Some(Op::Put)),
            ("ObjectCreated:Copy", Some(Op::Put)),
            ("ObjectCreated:CompleteMultipartUpload", Some(Op::Put)),
            ("ObjectRemoved:Delete", Some(Op::Delete)),
            (
                "s3:ObjectRemoved:DeleteMarkerCreated",
                Some(Op::DeleteMarker),
            ),
            ("LifecycleExpiration:Delete", Some(Op::Delete)),
            ("ObjectLifecycle:Expiration:Current", Some(Op::Delete)),
            ("ObjectTagging:Put", Some(Op::Metadata)),
            ("s3:ObjectAccessed:Get", None),
            ("ObjectRestore:Post", None),
            ("LifecycleTransition", None),
        ] {
            assert_eq!(op_of(name), op, "{name}");
        }
    }

    #[test]
    fn redeliveries_share_a_dedup_key_and_other_events_do_not() {
        let a = parse(RGW_PUT.as_bytes(), KeyEncoding::Auto).unwrap();
        let b = parse(RGW_PUT.as_bytes(), KeyEncoding::Auto).unwrap();
        assert_eq!(a.notifications[0].dedup, b.notifications[0].dedup);
        let other = RGW_PUT.replace("A114076B14773D04", "A114076B14773D05");
        let c = parse(other.as_bytes(), KeyEncoding::Auto).unwrap();
        assert_ne!(a.notifications[0].dedup, c.notifications[0].dedup);
        let bare = RGW_PUT
            .replace("\"sequencer\":\"A114076B14773D04\",", "")
            .replace(
                "\"eventId\":\"1795626145.071137.5d41402abc4b2a76b9719d911017c592\",",
                "",
            );
        let d = parse(bare.as_bytes(), KeyEncoding::Auto).unwrap();
        assert_eq!(d.notifications[0].dedup, None);
    }

    #[test]
    fn malformed_bodies_name_the_problem() {
        let cases = [
            ("not json", "body"),
            ("{\"Records\": 5}", "Records"),
            ("{}", "no \"Records\""),
            (
                "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\"}]}",
                "Records[0].s3: missing",
            ),
            (
                "{\"Records\":[{\"eventTime\":\"2026-01-01T00:00:00Z\",\"s3\":{}}]}",
                "Records[0].eventName: missing",
            ),
        ];
        for (body, want) in cases {
            let e = parse(body.as_bytes(), KeyEncoding::Auto).unwrap_err();
            assert!(e.to_string().contains(want), "{body}: {e}");
        }
        let bad_time = RGW_PUT.replace("2026-11-25T17:02:25.069098Z", "yesterday");
        let e = parse(bad_time.as_bytes(), KeyEncoding::Auto).unwrap_err();
        assert_eq!(e.path, "Records[0].eventTime");
        let bad_size = RGW_PUT.replace("\"size\":5", "\"size\":\"five\"");
        let e = parse(bad_size.as_bytes(), KeyEncoding::Auto).unwrap_err();
        assert!(e.path.starts_with("Records[0].s3.object"), "{e}");
        let bad_key = MINIO_PUT.replace("dir%2Fa+b.jpg", "dir%zz");
        let e = parse(bad_key.as_bytes(), KeyEncoding::Auto).unwrap_err();
        assert_eq!(e.path, "Records[0].s3.object.key");
        let long_key = RGW_PUT.replace(
            "\"key\":\"a b\"",
            &format!("\"key\":\"{}\"", "k".repeat(2000)),
        );
        let e = parse(long_key.as_bytes(), KeyEncoding::Auto).unwrap_err();
        assert!(e.to_string().contains("Records[0]: object key"), "{e}");
        // One bad record fails the whole body.
        let two = format!(
            "{{\"Records\":[{}, {{\"eventName\":\"ObjectCreated:Put\"}}]}}",
            &RGW_PUT[12..RGW_PUT.len() - 2]
        );
        let e = parse(two.as_bytes(), KeyEncoding::Auto).unwrap_err();
        assert_eq!(e.path, "Records[1].s3");
    }

    #[test]
    fn test_events_and_other_kinds_are_ignored() {
        let parsed = parse(
            br#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2014-10-13T15:57:02.089Z","Bucket":"b"}"#,
            KeyEncoding::Auto,
        )
        .unwrap();
        assert_eq!((parsed.notifications.len(), parsed.ignored), (0, 1));
        let get = MINIO_PUT.replace(
            "\"eventName\":\"s3:ObjectCreated:Put\"",
            "\"eventName\":\"s3:ObjectAccessed:Get\"",
        );
        let parsed = parse(get.as_bytes(), KeyEncoding::Auto).unwrap();
        assert_eq!((parsed.notifications.len(), parsed.ignored), (0, 1));
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            ".{0,12}".prop_map(serde_json::Value::from),
            prop_oneof![
                Just("ObjectCreated:Put"),
                Just("s3:ObjectRemoved:DeleteMarkerCreated"),
                Just("2026-11-25T17:02:25.069098Z"),
                Just("%zz+%41"),
                Just("ceph:s3"),
            ]
            .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            let names = prop_oneof![
                Just("Records".to_string()),
                Just("eventName".to_string()),
                Just("eventTime".to_string()),
                Just("eventSource".to_string()),
                Just("eventId".to_string()),
                Just("s3".to_string()),
                Just("bucket".to_string()),
                Just("object".to_string()),
                Just("name".to_string()),
                Just("key".to_string()),
                Just("size".to_string()),
                Just("eTag".to_string()),
                Just("versionId".to_string()),
                Just("sequencer".to_string()),
                ".{0,6}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map(names, inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// No input makes the parser panic: arbitrary bytes, and arbitrary
        /// JSON shaped like (and unlike) an event.
        #[test]
        fn never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&body, KeyEncoding::Auto);
        }

        #[test]
        fn never_panics_on_json(value in json_value()) {
            let body = serde_json::to_vec(&value).unwrap();
            for encoding in [KeyEncoding::Auto, KeyEncoding::Url, KeyEncoding::Raw] {
                if let Ok(parsed) = parse(&body, encoding) {
                    for n in parsed.notifications {
                        prop_assert!(n.record.validate().is_ok());
                    }
                }
            }
        }

        #[test]
        fn never_panics_on_event_shaped_json(
            name in ".{0,30}", key in ".{0,40}", time in ".{0,30}", size in ".{0,8}",
        ) {
            let body = serde_json::json!({"Records": [{
                "eventName": name, "eventTime": time, "eventSource": "minio:s3",
                "s3": {"bucket": {"name": "b"}, "object": {"key": key, "size": size}}
            }]});
            let _ = parse(&serde_json::to_vec(&body).unwrap(), KeyEncoding::Auto);
        }

        #[test]
        fn url_decode_inverts_encoding(key in "\\PC{1,40}") {
            let encoded = crate::capture::rgw::admin::encode_query(&key);
            prop_assert_eq!(url_decode(&encoded), Some(key));
        }
    }
}
