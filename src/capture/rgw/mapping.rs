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
//! - `DELETE ?versionId=null`: `unlink_instance` + `del`, both with an
//!   empty instance and `versioned` set (Reef, checked on the dev zone);
//! - delete in a versioning-suspended bucket: `link_olh_del` (the null
//!   delete marker) + `del` of the null version;
//! - multipart parts and upload metadata: `write`/`del` on
//!   `_multipart_<key>.<upload>.<n|meta>` in the multipart namespace.
//!
//! Names in the index are escaped: a name in a namespace is `_ns_name`, and
//! a plain name that itself begins with `_` gets a second `_`.

use chrono::{DateTime, Utc};

use super::api::BilogEntry;
use crate::record::{ChangeDetails, ChangeRecord, Op, Provenance};

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

/// What the page around an entry says about it (see [`change_times`] and
/// [`stamped_long_before`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct EntryContext {
    /// The record's time; the entry's own stamp when `None`.
    pub change_time: Option<DateTime<Utc>>,
    /// The entry is stamped long before an entry logged earlier.
    pub stamped_long_before: bool,
}

/// Maps one bilog entry of `bucket`; `bucket_shard` and the entry's marker
/// go into the record's provenance.
pub fn map_entry(
    bucket: &str,
    bucket_shard: &str,
    entry: &BilogEntry,
    context: EntryContext,
) -> Result<ChangeRecord, Skip> {
    if entry.state != "complete" {
        return Err(Skip::Incomplete);
    }
    let key = unescape_object_name(&entry.object).ok_or(Skip::Namespace)?;
    let versioned_instance = entry.versioned && !entry.instance.is_empty();
    let op = match entry.op.as_str() {
        // A versioned put is reported once, by its link_olh.
        "write" if versioned_instance => return Err(Skip::VersionedDuplicate),
        // Tags, ACL, retention or legal hold of a version (RGW's
        // `set_attrs`): a `write` of the version that is not marked
        // versioned, which no `link_olh` follows, on every release.
        "write" if !entry.instance.is_empty() => Op::Metadata,
        // In an unversioned bucket the same change is a plain `write`.
        // Reef and later stamp it with the object's old mtime (+ 1 ns on
        // Squid and Tentacle) rather than the time of the change, which
        // is how it is told apart where the page shows it; Pacific stamps
        // it like a put.
        "write" if context.stamped_long_before => Op::Metadata,
        "write" | "link_olh" => Op::Put,
        // In a versioned (or suspended) bucket a `del` is always the second
        // half of a change reported by its first: `unlink_instance` (one
        // version removed, also `?versionId=null`) or `link_olh_del` (a
        // delete marker that replaces the null version).
        "del" if entry.versioned => return Err(Skip::VersionedDuplicate),
        "del" | "unlink_instance" => Op::Delete,
        "link_olh_del" | "link_olh_dm" => Op::DeleteMarker,
        _ => return Err(Skip::NotAChange),
    };
    let time = context.change_time.unwrap_or_else(|| entry_time(entry));
    let version_id = (!entry.instance.is_empty()).then(|| entry.instance.clone());
    let olh_op = matches!(
        entry.op.as_str(),
        "link_olh" | "link_olh_del" | "unlink_instance"
    );
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
        details: ChangeDetails {
            // On the OLH ops `ver.epoch` is the key's OLH epoch; on the
            // others it is the head object's RADOS version, no use to
            // anyone reading the log.
            version_epoch: olh_op.then(|| olh_epoch(entry)).flatten(),
            // Set only on `link_olh_del`: who made the delete marker.
            requester: Some(entry.owner.clone()).filter(|o| !o.is_empty()),
            ..ChangeDetails::default()
        },
    })
}

fn olh_epoch(entry: &BilogEntry) -> Option<u64> {
    entry
        .ver
        .as_ref()?
        .get("epoch")?
        .as_u64()
        .filter(|e| *e > 0)
}

/// How far before an earlier entry's stamp an entry must be stamped to be
/// taken for a change of attributes rather than a put (see `map_entry`).
/// A put is stamped when its head object is written and logged a moment
/// later, so puts to one shard can be logged out of stamp order by
/// milliseconds; a second is far beyond that and far below how old an
/// object usually is when its tags change.
const LATE_STAMP: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// For each entry of a page, whether it is stamped at least `LATE_STAMP`
/// before a complete entry logged before it in the page.
pub fn stamped_long_before(entries: &[BilogEntry]) -> Vec<bool> {
    behind_earlier_stamps(entries)
        .into_iter()
        .map(|behind| behind.is_some_and(|b| b >= LATE_STAMP))
        .collect()
}

/// For each complete entry of a page, how far its stamp lies before the
/// latest stamp of a complete entry logged before it (zero when none is
/// later); `None` for an entry that is not complete. Every complete
/// entry's stamp, a removal's too (the removed object existed then), is a
/// time the entries after it cannot precede.
fn behind_earlier_stamps(entries: &[BilogEntry]) -> Vec<Option<chrono::TimeDelta>> {
    let mut latest: Option<DateTime<Utc>> = None;
    entries
        .iter()
        .map(|entry| {
            if entry.state != "complete" {
                return None;
            }
            let stamp = entry_time(entry);
            let behind = latest.map_or(chrono::TimeDelta::zero(), |l| {
                (l - stamp).max(chrono::TimeDelta::zero())
            });
            latest = latest.max(Some(stamp));
            Some(behind)
        })
        .collect()
}

/// The record's `sequence` for a bilog entry: text order is the order of
/// the changes of one key. A key's changes are logged in one shard of one
/// log generation at a time, in marker order; a reshard moves it to the
/// next generation (Reef and later), and a bucket removed and created
/// again starts a new instance with new logs. So: the bucket instance's
/// creation time (ns), the generation, then the marker's three numbers
/// (`index_ver.pg_ver.subop`, compared as numbers), each fixed-width hex.
/// `None` for a marker of another form (a future FIFO-backed bilog).
pub fn entry_sequence(instance_created_ns: u64, gen: u64, entry: &BilogEntry) -> Option<String> {
    let mut parts = entry_marker(entry).split('.');
    let mut number = || parts.next()?.parse::<u64>().ok();
    let (index_ver, pg_ver, subop) = (number()?, number()?, number()?);
    if parts.next().is_some() || gen > u64::from(u32::MAX) || subop > u64::from(u32::MAX) {
        return None;
    }
    Some(format!(
        "{instance_created_ns:016x}{gen:08x}{index_ver:016x}{pg_ver:016x}{subop:08x}"
    ))
}

/// A change must never be dropped for its timestamp: without one, the
/// time we read it is the best upper bound we have.
fn entry_time(entry: &BilogEntry) -> DateTime<Utc> {
    parse_time(&entry.timestamp).unwrap_or_else(Utc::now)
}

/// Whether RGW stamps this entry with the removed object's mtime rather
/// than with the time of the operation (every release: a `del` or
/// `unlink_instance` carries the mtime of what it removed).
fn stamps_removed_mtime(entry: &BilogEntry) -> bool {
    matches!(entry.op.as_str(), "del" | "unlink_instance")
}

/// Which entries of a page carry the time of their own change. A removal
/// does not (above), and neither does an entry stamped earlier than an
/// entry before it in the log: on Reef and later a tag, ACL or retention
/// change logs a `write` stamped with the object's old mtime (+ 1 ns on
/// Squid and Tentacle), long before the op. Trusting that stamp would pull
/// the changes logged before it back in time; a daemon whose clock is
/// behind looks the same and is handled the same way.
fn carries_own_time(entries: &[BilogEntry]) -> Vec<bool> {
    behind_earlier_stamps(entries)
        .into_iter()
        .zip(entries)
        .map(|(behind, entry)| behind.is_some_and(|b| b.is_zero()) && !stamps_removed_mtime(entry))
        .collect()
}

/// The change time of each entry of one page of a shard's log, in order.
/// An entry that carries its own time (see `carries_own_time`) gets it.
/// Any other change happened after the entries before it and before the
/// next entry of the shard, so it gets the time of the next entry that
/// carries its own, or `now` (when we read it) when none follows: never
/// before an earlier change of its key, never after a later one, whatever
/// the clocks say. Within one key, time order is then the log's order.
pub fn change_times(entries: &[BilogEntry], now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let own_time = carries_own_time(entries);
    let mut times = vec![now; entries.len()];
    let mut next = now;
    for (i, entry) in entries.iter().enumerate().rev() {
        if entry.state != "complete" {
            times[i] = entry_time(entry).min(next);
        } else if !own_time[i] {
            times[i] = next;
        } else {
            // A stamp after `now` (a clock ahead of ours) must not put the
            // change after the time we read it.
            times[i] = entry_time(entry).min(next);
            next = times[i];
        }
    }
    times
}

/// How many entries of a page that RGW says continues to commit now: the
/// time of a trailing entry that does not carry its own (a removal, an
/// entry stamped with an old time) comes from the entry after it, which is
/// on the next page, so the page is cut after its last entry that carries
/// its own time, and the rest is read again with the next page. A page
/// with no such entry is committed whole.
pub fn committable(entries: &[BilogEntry], truncated: bool) -> usize {
    if !truncated {
        return entries.len();
    }
    match carries_own_time(entries).iter().rposition(|own| *own) {
        Some(last) => last + 1,
        None => entries.len(),
    }
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
            owner: String::new(),
        }
    }

    fn mapped(e: &BilogEntry) -> Result<(String, Option<String>, Op), Skip> {
        map_entry("bkt", "bkt:id:4", e, EntryContext::default())
            .map(|r| (r.key, r.version_id, r.op))
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
        // Tags or ACL of a version: its `write`, not marked versioned.
        assert_eq!(
            mapped(&entry("write", "o", "v1", false)),
            Ok(("o".into(), Some("v1".into()), Op::Metadata))
        );
    }

    #[test]
    fn a_null_version_removal_is_one_record() {
        assert_eq!(
            mapped(&entry("unlink_instance", "n", "", true)),
            Ok(("n".into(), None, Op::Delete))
        );
        assert_eq!(
            mapped(&entry("del", "n", "", true)),
            Err(Skip::VersionedDuplicate)
        );
        assert_eq!(
            mapped(&entry("link_olh_del", "s", "", true)),
            Ok(("s".into(), None, Op::DeleteMarker))
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
        let r = map_entry(
            "bkt",
            "bkt:id:4",
            &entry("write", "a", "", false),
            EntryContext::default(),
        )
        .unwrap();
        assert_eq!(r.time_ns().unwrap() % 1_000_000_000, 121_465_728);
        let mut e = entry("write", "a", "", false);
        e.id.clear();
        e.op_id = "4#00000000001.13.6".into();
        assert_eq!(entry_marker(&e), "00000000001.13.6");
    }

    fn at(op: &str, time: &str) -> BilogEntry {
        BilogEntry {
            timestamp: time.into(),
            ..entry(op, "k", "", false)
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    #[test]
    fn a_removal_takes_the_time_of_what_follows_it() {
        let now = t("2026-12-01T10:00:10Z");
        let page = [
            at("write", "2026-12-01T10:00:01Z"),
            // RGW: the removed object's mtime.
            at("del", "2026-12-01T10:00:01Z"),
            at("write", "2026-12-01T10:00:05Z"),
            at("del", "2026-12-01T10:00:05Z"),
        ];
        let times = change_times(&page, now);
        assert_eq!(
            times,
            [
                t("2026-12-01T10:00:01Z"),
                t("2026-12-01T10:00:05Z"),
                t("2026-12-01T10:00:05Z"),
                now
            ]
        );
    }

    #[test]
    fn skewed_clocks_never_reorder_the_log() {
        let now = t("2026-12-01T10:00:10Z");
        let page = [
            at("write", "2026-12-01T10:00:07Z"),
            at("write", "2026-12-01T10:00:03Z"),
            at("write", "2026-12-01T10:00:30Z"),
        ];
        let times = change_times(&page, now);
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        assert!(times.iter().all(|x| *x <= now));
    }

    #[test]
    fn a_write_stamped_before_an_earlier_entry_leaves_the_earlier_times_alone() {
        let now = t("2026-12-01T10:00:10Z");
        let page = [
            at("write", "2026-12-01T10:00:01Z"),
            at("write", "2026-12-01T10:00:05Z"),
            // A tag change of the first object: its old mtime + 1 ns.
            at("write", "2026-12-01T10:00:01.000000001Z"),
            at("write", "2026-12-01T10:00:07Z"),
        ];
        assert_eq!(
            change_times(&page, now),
            [
                t("2026-12-01T10:00:01Z"),
                t("2026-12-01T10:00:05Z"),
                t("2026-12-01T10:00:07Z"),
                t("2026-12-01T10:00:07Z"),
            ]
        );
        assert_eq!(change_times(&page[..3], now)[2], now);
        assert_eq!(committable(&page[..3], true), 2);
        assert_eq!(committable(&page, true), 4);
    }

    proptest::proptest! {
        /// Whatever the stamps (old mtimes, clocks ahead or behind): times
        /// follow the log's order, none is after `now`, and no complete
        /// change is put before its own stamp, so a late-logged entry never
        /// pulls the changes before it back in time.
        #[test]
        fn change_times_keep_log_order_and_never_precede_a_stamp(
            page in proptest::collection::vec(
                (proptest::sample::select(vec!["write", "link_olh", "del", "unlink_instance"]),
                 0i64..20_000),
                0..12),
        ) {
            let base = t("2026-12-01T10:00:00Z");
            let now = base + chrono::Duration::milliseconds(15_000);
            let page: Vec<BilogEntry> = page
                .iter()
                .map(|(op, ms)| {
                    let stamp = base + chrono::Duration::milliseconds(*ms);
                    at(op, &stamp.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
                })
                .collect();
            let times = change_times(&page, now);
            proptest::prop_assert!(times.windows(2).all(|w| w[0] <= w[1]), "{:?}", times);
            for (entry, time) in page.iter().zip(&times) {
                proptest::prop_assert!(*time <= now);
                proptest::prop_assert!(*time >= entry_time(entry).min(now), "{:?}", times);
            }
        }
    }

    #[test]
    fn only_a_write_stamped_a_second_or_more_before_an_earlier_entry_is_late() {
        let page = [
            at("write", "2026-12-01T10:00:05Z"),
            // Reef+: a tag change stamped with its object's old mtime.
            at("write", "2026-12-01T10:00:01.000000001Z"),
            // Two puts logged a moment out of stamp order.
            at("write", "2026-12-01T10:00:04.500Z"),
            at("write", "2026-12-01T10:00:06Z"),
        ];
        assert_eq!(stamped_long_before(&page), [false, true, false, false]);
        let late = |i: usize| EntryContext {
            change_time: None,
            stamped_long_before: stamped_long_before(&page)[i],
        };
        let op = |i: usize| map_entry("bkt", "bkt:id:4", &page[i], late(i)).map(|r| r.op);
        assert_eq!((op(1), op(2)), (Ok(Op::Metadata), Ok(Op::Put)));
    }

    #[test]
    fn a_continued_page_is_cut_after_its_last_timed_entry() {
        let page = [
            at("write", "2026-12-01T10:00:01Z"),
            at("del", "2026-12-01T10:00:01Z"),
        ];
        assert_eq!(committable(&page, true), 1);
        assert_eq!(committable(&page, false), 2);
        assert_eq!(committable(&page[1..], true), 1);
    }
}
