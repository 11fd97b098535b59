//! The details of a change an S3 event carries besides its anchors (record
//! v3; docs/format.md says which sender sends what).

use serde::Deserialize;

use crate::record::{ChangeDetails, Op};

/// Name/value pairs as senders spell them: a list of `{key, val}` (RGW)
/// or a map (MinIO).
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawPairs {
    List(Vec<RawPair>),
    Map(std::collections::BTreeMap<String, String>),
}

#[derive(Deserialize)]
pub(super) struct RawPair {
    key: String,
    #[serde(alias = "value")]
    val: String,
}

impl RawPairs {
    fn into_pairs(self) -> Vec<(String, String)> {
        match self {
            RawPairs::List(list) => list.into_iter().map(|p| (p.key, p.val)).collect(),
            RawPairs::Map(map) => map.into_iter().collect(),
        }
    }
}

/// Reads an optional detail leniently: a value of another shape than
/// expected (`"tags": 5`, `"userIdentity": "x"`) is taken as absent. The
/// details are extras; failing the body for one would block the sender's
/// queue for a change zonelog can record without it.
pub(super) fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

/// Who made the change, as the event says.
pub(super) struct Requester {
    pub user: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

/// The details an event carries itself (docs/format.md says which sender
/// sends what). A delete's metadata and tags describe what was removed,
/// and RGW sends them only when it could still read them, so only a
/// put's are kept.
pub(super) fn event_details(
    op: Op,
    ceph: bool,
    sequencer: Option<&str>,
    content_type: Option<String>,
    metadata: Option<RawPairs>,
    tags: Option<RawPairs>,
    requester: Requester,
) -> ChangeDetails {
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let creates = op == Op::Put;
    let mut content_type = non_empty(content_type);
    let user_metadata = metadata.filter(|_| creates).map(|m| {
        let mut kept = std::collections::BTreeMap::new();
        for (name, value) in m.into_pairs() {
            if name.eq_ignore_ascii_case("content-type") {
                content_type.get_or_insert(value);
            } else if let Some(name) = crate::record::user_metadata_name(&name) {
                kept.insert(name, value);
            }
        }
        kept
    });
    ChangeDetails {
        sequence: sequencer.and_then(|s| sequence_of(s, ceph)),
        content_type: content_type.filter(|_| creates),
        tags: tags
            .filter(|_| creates)
            .map(|t| t.into_pairs().into_iter().collect()),
        user_metadata,
        requester: non_empty(requester.user),
        source_ip: non_empty(requester.ip),
        request_id: non_empty(requester.request_id),
        ..ChangeDetails::default()
    }
}

/// The record's `sequence` from an event's sequencer, 32 lower-case hex
/// digits, so that text order is the sender's order. AWS's sequencers
/// are hex numbers to compare after padding to one length. RGW's are the
/// publishing time, `u32` seconds then `u32` nanoseconds, little-endian,
/// in hex, which sorts by nothing until decoded.
fn sequence_of(sequencer: &str, ceph: bool) -> Option<String> {
    if sequencer.is_empty()
        || sequencer.len() > 32
        || !sequencer.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    if ceph && sequencer.len() == 16 {
        let n = u64::from_str_radix(sequencer, 16).ok()?;
        let bytes = n.to_be_bytes();
        let secs = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let nanos = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        if nanos < 1_000_000_000 {
            let ns = u128::from(secs) * 1_000_000_000 + u128::from(nanos);
            return Some(format!("{ns:032x}"));
        }
    }
    Some(format!("{:0>32}", sequencer.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgw_sequencers_are_decoded_to_nanoseconds() {
        // From the dev zone: eventId 1795626145.071137.… (seconds and µs).
        let seq = sequence_of("A114076B14773D04", true).unwrap();
        assert_eq!(
            u128::from_str_radix(&seq, 16).unwrap(),
            1_795_626_145_071_137_044
        );
        assert_eq!(seq.len(), 32);
        // Later in time sorts later as text, which the raw hex does not.
        let later = sequence_of("B314076B421DB80E", true).unwrap();
        assert!(later > seq);
    }

    #[test]
    fn other_sequencers_are_padded_hex() {
        assert_eq!(
            sequence_of("0055AED6DCD90281E5", false).as_deref(),
            Some("000000000000000055aed6dcd90281e5")
        );
        assert_eq!(sequence_of("not hex", false), None);
        assert_eq!(sequence_of("", true), None);
    }

    #[test]
    fn only_a_puts_metadata_and_tags_are_kept() {
        let pairs = || {
            Some(RawPairs::List(vec![
                RawPair {
                    key: "x-amz-meta-Color".into(),
                    val: "blue".into(),
                },
                RawPair {
                    key: "x-amz-content-sha256".into(),
                    val: "UNSIGNED-PAYLOAD".into(),
                },
            ]))
        };
        let who = || Requester {
            user: Some("u".into()),
            ip: Some(String::new()),
            request_id: Some("r".into()),
        };
        let put = event_details(Op::Put, true, None, None, pairs(), pairs(), who());
        assert_eq!(
            put.user_metadata,
            Some([("color".to_string(), "blue".to_string())].into())
        );
        assert_eq!(put.tags.map(|t| t.len()), Some(2));
        assert_eq!(
            (
                put.requester.as_deref(),
                put.source_ip,
                put.request_id.as_deref()
            ),
            (Some("u"), None, Some("r"))
        );
        let delete = event_details(Op::Delete, true, None, None, pairs(), pairs(), who());
        assert_eq!((delete.user_metadata, delete.tags), (None, None));
    }
}
