//! What a change record carries beyond its anchors (bucket, key, version,
//! op, time): the fields a source gives for free or an enrichment looks up.
//!
//! Every field is optional: a source that does not know a value leaves it
//! out rather than guessing (which source gives what, per Ceph release, is
//! in docs/format.md). The log line writes each of them on every line,
//! `null` when unknown, so every log object has the same columns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The longest value a text field may hold; RGW's own limits are smaller
/// (a storage class or a request id is tens of bytes).
pub const MAX_DETAIL_BYTES: usize = 1024;
/// S3 allows 10 tags per object; RGW does not enforce it for every path,
/// so a little room, but not unbounded.
pub const MAX_TAGS: usize = 50;
/// S3 allows 2 KiB of user metadata per object; RGW up to its
/// `rgw_max_attr_size`. Beyond this the record keeps none (`None`) rather
/// than a part: a partial map would look complete.
pub const MAX_USER_METADATA_BYTES: usize = 16 * 1024;

/// The optional fields of a change; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeDetails {
    /// Orders the changes of one key: of two records of the same bucket
    /// and key, the one with the greater `sequence` (compared as text)
    /// happened later. Built from the source's own position, so a record
    /// captured twice carries the same value (see docs/format.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<String>,
    /// The object's storage class; `STANDARD` when RGW names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Server-side encryption as S3 names it (`AES256`, `aws:kms`), or
    /// `SSE-C` for a customer-provided key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// The additional checksum's algorithm (`CRC32`, `SHA256`, …), when
    /// the object has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<String>,
    /// The object's tags after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// The object's `x-amz-meta-*` metadata, names without the prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_metadata: Option<BTreeMap<String, String>>,
    /// RGW's per-key counter of versioned operations (the bucket-index
    /// log's OLH epoch), for versioned buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_epoch: Option<u64>,
    /// The user that made the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// The id RGW returned to the client for the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Why a record's details cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDetail {
    #[error("{field} is {len} bytes, more than {MAX_DETAIL_BYTES}")]
    TooLong { field: &'static str, len: usize },
    #[error("{field} is empty (leave it out when unknown)")]
    Empty { field: &'static str },
    #[error("{0} tags, more than {MAX_TAGS}")]
    TooManyTags(usize),
    #[error("user metadata is {0} bytes, more than {MAX_USER_METADATA_BYTES}")]
    UserMetadataTooLarge(usize),
}

impl ChangeDetails {
    /// The text fields with their names, in line order.
    pub fn texts(&self) -> [(&'static str, Option<&str>); 8] {
        [
            ("sequence", self.sequence.as_deref()),
            ("storage_class", self.storage_class.as_deref()),
            ("content_type", self.content_type.as_deref()),
            ("encryption", self.encryption.as_deref()),
            ("checksum_algorithm", self.checksum_algorithm.as_deref()),
            ("requester", self.requester.as_deref()),
            ("source_ip", self.source_ip.as_deref()),
            ("request_id", self.request_id.as_deref()),
        ]
    }

    pub fn validate(&self) -> Result<(), InvalidDetail> {
        for (field, value) in self.texts() {
            match value {
                Some("") if field == "sequence" => return Err(InvalidDetail::Empty { field }),
                Some(v) if v.len() > MAX_DETAIL_BYTES => {
                    return Err(InvalidDetail::TooLong {
                        field,
                        len: v.len(),
                    })
                }
                _ => {}
            }
        }
        if let Some(tags) = &self.tags {
            if tags.len() > MAX_TAGS {
                return Err(InvalidDetail::TooManyTags(tags.len()));
            }
            for (k, v) in tags {
                for (field, len) in [("tag name", k.len()), ("tag value", v.len())] {
                    if len > MAX_DETAIL_BYTES {
                        return Err(InvalidDetail::TooLong { field, len });
                    }
                }
            }
        }
        if let Some(meta) = &self.user_metadata {
            let bytes: usize = meta.iter().map(|(k, v)| k.len() + v.len()).sum();
            if bytes > MAX_USER_METADATA_BYTES {
                return Err(InvalidDetail::UserMetadataTooLarge(bytes));
            }
        }
        Ok(())
    }

    /// Drops what cannot be stored instead of refusing the change: a
    /// change is never lost for an oversized extra (the anchors are what
    /// backup needs). Returns what was dropped, for a warning.
    pub fn drop_invalid(&mut self) -> Vec<InvalidDetail> {
        let mut dropped = Vec::new();
        while let Err(e) = self.validate() {
            match &e {
                InvalidDetail::TooManyTags(_) => self.tags = None,
                InvalidDetail::UserMetadataTooLarge(_) => self.user_metadata = None,
                InvalidDetail::TooLong { field, .. } | InvalidDetail::Empty { field } => {
                    match *field {
                        "tag name" | "tag value" => self.tags = None,
                        "sequence" => self.sequence = None,
                        "storage_class" => self.storage_class = None,
                        "content_type" => self.content_type = None,
                        "encryption" => self.encryption = None,
                        "checksum_algorithm" => self.checksum_algorithm = None,
                        "requester" => self.requester = None,
                        "source_ip" => self.source_ip = None,
                        _ => self.request_id = None,
                    }
                }
            }
            dropped.push(e);
        }
        dropped
    }
}

/// Whether an ETag is a multipart upload's: S3 and RGW give a completed
/// multipart upload the ETag `<md5 of the parts' md5s>-<part count>`; a
/// single PUT's ETag is a bare hex MD5.
pub fn etag_is_multipart(etag: &str) -> bool {
    let etag = etag.trim_matches('"');
    match etag.rsplit_once('-') {
        Some((hash, parts)) => {
            !hash.is_empty()
                && hash.bytes().all(|b| b.is_ascii_hexdigit())
                && !parts.is_empty()
                && parts.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// `x-amz-meta-` names as the user metadata map keeps them: lower case
/// (HTTP header names are case-insensitive, and RGW stores them lower
/// case), without the prefix.
pub fn user_metadata_name(header: &str) -> Option<String> {
    let lower = header.to_ascii_lowercase();
    lower
        .strip_prefix("x-amz-meta-")
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_etags() {
        assert!(etag_is_multipart("\"0cc175b9c0f1b6a831c399e269772661-3\""));
        assert!(etag_is_multipart("0cc175b9c0f1b6a831c399e269772661-12"));
        assert!(!etag_is_multipart("0cc175b9c0f1b6a831c399e269772661"));
        assert!(!etag_is_multipart("-3"));
        assert!(!etag_is_multipart("abc-"));
    }

    #[test]
    fn oversized_extras_are_dropped_not_the_change() {
        let mut d = ChangeDetails {
            tags: Some((0..60).map(|i| (i.to_string(), String::new())).collect()),
            request_id: Some("r".repeat(MAX_DETAIL_BYTES + 1)),
            storage_class: Some("STANDARD".into()),
            ..Default::default()
        };
        assert_eq!(d.drop_invalid().len(), 2);
        assert_eq!(d.tags, None);
        assert_eq!(d.request_id, None);
        assert_eq!(d.storage_class.as_deref(), Some("STANDARD"));
        assert!(d.validate().is_ok());
    }

    #[test]
    fn metadata_names() {
        assert_eq!(
            user_metadata_name("X-Amz-Meta-Color").as_deref(),
            Some("color")
        );
        assert_eq!(user_metadata_name("x-amz-meta-"), None);
        assert_eq!(user_metadata_name("content-type"), None);
    }
}
