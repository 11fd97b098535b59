//! Bucket-index log entries → change records, the way RGW data sync reads
//! them.
//!
//! What RGW 16 writes for each S3 call (checked against the dev zone):
//! - put, copy, multipart complete, tagging: `write` on the key;
//! - delete (unversioned): `del`;
//! - versioned put: `write` + `link_olh` for the new instance;
//! - versioned delete (no version id): `link_olh_del` whose instance is the
//!   new delete marker;
//! - delete of one version: `unlink_instance` + `del` for that instance;
//! - multipart parts and upload metadata: `write`/`del` on
//!   `_multipart_<key>.<upload>.<n|meta>` in the multipart namespace.
//!
//! Names in the index are escaped: a name in a namespace is `_ns_name`, and
//! a plain name that itself begins with `_` gets a second `_`.

use chrono::{DateTime, Utc};

use super::api::BilogEntry;
use crate::record::{ChangeRecord, Op, Provenance};

/// Why an entry produced no record; counted, never silently dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not `complete` (a pending or cancelled index transaction).
    Incomplete,
    /// Multipart parts/meta, shadow objects, or another internal namespace.
    Namespace,
    /// The second half of a versioned operation whose other half is the
    /// record (`write` before `link_olh`, `del` after `unlink_instance`).
    VersionedDuplicate,
    /// An op that does not change an object (`cancel`, `syncstop`, ...).
    NotAChange,
}

/// Maps one bilog entry of `bucket`; `bucket_shard` and the entry's marker
/// go into the record's provenance.
pub fn map_entry(
    bucket: &str,
    bucket_shard: &str,
    entry: &BilogEntry,
) -> Result<ChangeRecord, Skip> {
    if entry.state != "complete" {
        return Err(Skip::Incomplete);
    }
    let key = unescape_object_name(&entry.object).ok_or(Skip::Namespace)?;
    let versioned_instance = entry.versioned && !entry.instance.is_empty();
    let op = match entry.op.as_str() {
        // A versioned put is reported once, by its link_olh.
        "write" if versioned_instance => return Err(Skip::VersionedDuplicate),
        "write" | "link_olh" => Op::Put,
        // Removing one version is reported once, by its unlink_instance.
        "del" if versioned_instance => return Err(Skip::VersionedDuplicate),
        "del" | "unlink_instance" => Op::Delete,
        "link_olh_del" | "link_olh_dm" => Op::DeleteMarker,
        _ => return Err(Skip::NotAChange),
    };
    // A change must never be dropped for its timestamp: without one, the
    // time we read it is the best upper bound we have.
    let time = parse_time(&entry.timestamp).unwrap_or_else(Utc::now);
    let version_id = (!entry.instance.is_empty()).then(|| entry.instance.clone());
    Ok(ChangeRecord {
        bucket: bucket.to_string(),
        key,
        version_id,
        op,
        time,
        size: None,
        etag: None,
        mtime: None,
        source: Provenance::Rgw {
            bucket_shard: bucket_shard.to_string(),
            marker: entry_marker(entry).to_string(),
        },
    })
}

/// The entry's position in its shard's log, as `marker=` expects it.
pub fn entry_marker(entry: &BilogEntry) -> &str {
    if !entry.id.is_empty() {
        return &entry.id;
    }
    // op_id is `<shard>#<marker>` when the whole bucket was listed.
    entry
        .op_id
        .split_once('#')
        .map_or(entry.op_id.as_str(), |(_, m)| m)
}

/// The S3 key of an index entry name, or `None` for names in an internal
/// namespace (`_multipart_…`, `_shadow_…`).
pub fn unescape_object_name(name: &str) -> Option<String> {
    match name.strip_prefix('_') {
        None => Some(name.to_string()),
        Some(rest) if rest.starts_with('_') => Some(rest.to_string()),
        Some(_) => None,
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(op: &str, object: &str, instance: &str, versioned: bool) -> BilogEntry {
        BilogEntry {
            id: "00000000002.15.6".into(),
            op_id: String::new(),
            op: op.into(),
            object: object.into(),
            instance: instance.into(),
            state: "complete".into(),
            timestamp: "2026-11-25T10:44:34.121465728Z".into(),
            versioned,
            ver: None,
        }
    }

    fn mapped(e: &BilogEntry) -> Result<(String, Option<String>, Op), Skip> {
        map_entry("bkt", "bkt:id:4", e).map(|r| (r.key, r.version_id, r.op))
    }

    #[test]
    fn unversioned_ops() {
        assert_eq!(
            mapped(&entry("write", "a b", "", false)),
            Ok(("a b".into(), None, Op::Put))
        );
        assert_eq!(
            mapped(&entry("del", "a", "", false)),
            Ok(("a".into(), None, Op::Delete))
        );
        assert_eq!(
            mapped(&entry("cancel", "a", "", false)),
            Err(Skip::NotAChange)
        );
    }

    #[test]
    fn versioned_ops_give_one_record_per_version() {
        assert_eq!(
            mapped(&entry("write", "o", "v1", true)),
            Err(Skip::VersionedDuplicate)
        );
        assert_eq!(
            mapped(&entry("link_olh", "o", "v1", true)),
            Ok(("o".into(), Some("v1".into()), Op::Put))
        );
        assert_eq!(
            mapped(&entry("link_olh_del", "o", "dm", true)),
            Ok(("o".into(), Some("dm".into()), Op::DeleteMarker))
        );
        assert_eq!(
            mapped(&entry("unlink_instance", "o", "v1", true)),
            Ok(("o".into(), Some("v1".into()), Op::Delete))
        );
        assert_eq!(
            mapped(&entry("del", "o", "v1", true)),
            Err(Skip::VersionedDuplicate)
        );
    }

    #[test]
    fn namespaces_and_escaping() {
        assert_eq!(
            mapped(&entry("write", "_multipart_m.2~x.1", "", false)),
            Err(Skip::Namespace)
        );
        assert_eq!(
            mapped(&entry("write", "_shadow_x", "", false)),
            Err(Skip::Namespace)
        );
        assert_eq!(
            mapped(&entry("write", "__under", "", false)),
            Ok(("_under".into(), None, Op::Put))
        );
        let mut pending = entry("write", "a", "", false);
        pending.state = "pending".into();
        assert_eq!(mapped(&pending), Err(Skip::Incomplete));
    }

    #[test]
    fn time_and_marker() {
        let r = map_entry("bkt", "bkt:id:4", &entry("write", "a", "", false)).unwrap();
        assert_eq!(r.time_ns().unwrap() % 1_000_000_000, 121_465_728);
        let mut e = entry("write", "a", "", false);
        e.id.clear();
        e.op_id = "4#00000000001.13.6".into();
        assert_eq!(entry_marker(&e), "00000000001.13.6");
    }
}
