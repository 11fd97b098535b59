//! The stored form of a record inside an index entry.
//!
//! A compact, versioned binary layout rather than JSON: the collector reads
//! millions of entries per round, and decoding JSON would cost more than the
//! store itself. Every backend stores the same bytes, so an index can be
//! inspected with one decoder. Layout (all integers little-endian):
//!
//! ```text
//! u8 version=2 | u8 op | i64 time_ns | str bucket | str key | opt str version_id
//! | opt u64 size | opt str etag | opt i64 mtime_ns | u8 source tag + its strings
//! | details (see `details.rs`; absent in version 1, read as none)
//! str = u32 length + UTF-8 bytes; opt = u8 0 (none) | 1 + value
//! ```
//!
//! A new version only appends: an index written by an older zonelog is
//! still read after an upgrade, so no change waiting in it is lost.

use chrono::DateTime;

use crate::record::{ChangeRecord, Op, Provenance};

mod details;

pub use details::{DetailsView, PairsIter, PairsView};

const VERSION: u8 = 2;
/// Versions this decoder reads: 1 had no details block.
const READABLE: std::ops::RangeInclusive<u8> = 1..=VERSION;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("stored entry cannot be decoded: {0}")]
pub struct DecodeError(pub String);

pub fn encode_record(record: &ChangeRecord, out: &mut Vec<u8>) {
    out.push(VERSION);
    out.push(match record.op {
        Op::Put => 0,
        Op::Delete => 1,
        Op::DeleteMarker => 2,
        Op::Metadata => 3,
        Op::BucketRemoved => 4,
    });
    // Validated records have a representable time; 0 would only appear for
    // an unvalidated one, and decodes to the epoch.
    out.extend_from_slice(&record.time.timestamp_nanos_opt().unwrap_or(0).to_le_bytes());
    put_str(out, &record.bucket);
    put_str(out, &record.key);
    put_opt_str(out, record.version_id.as_deref());
    match record.size {
        Some(size) => {
            out.push(1);
            out.extend_from_slice(&size.to_le_bytes());
        }
        None => out.push(0),
    }
    put_opt_str(out, record.etag.as_deref());
    match record.mtime.and_then(|t| t.timestamp_nanos_opt()) {
        Some(ns) => {
            out.push(1);
            out.extend_from_slice(&ns.to_le_bytes());
        }
        None => out.push(0),
    }
    match &record.source {
        Provenance::Rgw {
            bucket_shard,
            marker,
        } => {
            out.push(0);
            put_str(out, bucket_shard);
            put_str(out, marker);
        }
        Provenance::Notify {
            event_id,
            sequencer,
        } => {
            out.push(1);
            put_opt_str(out, event_id.as_deref());
            put_opt_str(out, sequencer.as_deref());
        }
        Provenance::Listing { reason } => {
            out.push(2);
            put_str(out, reason);
        }
        Provenance::Test => out.push(3),
    }
    details::encode_details(&record.details, out);
}

/// A stored record read in place: every string borrows from the stored
/// bytes, so a reader that only turns entries into log lines (the
/// collector) allocates nothing per entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub op: Op,
    pub time_ns: i64,
    pub bucket: &'a str,
    pub key: &'a str,
    pub version_id: Option<&'a str>,
    pub size: Option<u64>,
    pub etag: Option<&'a str>,
    pub mtime_ns: Option<i64>,
    pub source: SourceView<'a>,
    pub details: DetailsView<'a>,
}

/// [`Provenance`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceView<'a> {
    Rgw {
        bucket_shard: &'a str,
        marker: &'a str,
    },
    Notify {
        event_id: Option<&'a str>,
        sequencer: Option<&'a str>,
    },
    Listing {
        reason: &'a str,
    },
    Test,
}

impl SourceView<'_> {
    pub fn to_provenance(self) -> Provenance {
        let owned = |s: Option<&str>| s.map(str::to_string);
        match self {
            SourceView::Rgw {
                bucket_shard,
                marker,
            } => Provenance::Rgw {
                bucket_shard: bucket_shard.to_string(),
                marker: marker.to_string(),
            },
            SourceView::Notify {
                event_id,
                sequencer,
            } => Provenance::Notify {
                event_id: owned(event_id),
                sequencer: owned(sequencer),
            },
            SourceView::Listing { reason } => Provenance::Listing {
                reason: reason.to_string(),
            },
            SourceView::Test => Provenance::Test,
        }
    }
}

impl<'a> RecordView<'a> {
    /// The view of a record in memory, so one line encoder serves both
    /// stored and owned records.
    pub fn of(record: &'a ChangeRecord) -> Self {
        RecordView {
            op: record.op,
            time_ns: record.time.timestamp_nanos_opt().unwrap_or(0),
            bucket: &record.bucket,
            key: &record.key,
            version_id: record.version_id.as_deref(),
            size: record.size,
            etag: record.etag.as_deref(),
            mtime_ns: record.mtime.and_then(|t| t.timestamp_nanos_opt()),
            source: match &record.source {
                Provenance::Rgw {
                    bucket_shard,
                    marker,
                } => SourceView::Rgw {
                    bucket_shard,
                    marker,
                },
                Provenance::Notify {
                    event_id,
                    sequencer,
                } => SourceView::Notify {
                    event_id: event_id.as_deref(),
                    sequencer: sequencer.as_deref(),
                },
                Provenance::Listing { reason } => SourceView::Listing { reason },
                Provenance::Test => SourceView::Test,
            },
            details: DetailsView::of(&record.details),
        }
    }

    pub fn to_record(&self) -> ChangeRecord {
        let owned = |s: Option<&str>| s.map(str::to_string);
        ChangeRecord {
            bucket: self.bucket.to_string(),
            key: self.key.to_string(),
            version_id: owned(self.version_id),
            op: self.op,
            time: DateTime::from_timestamp_nanos(self.time_ns),
            size: self.size,
            etag: owned(self.etag),
            mtime: self.mtime_ns.map(DateTime::from_timestamp_nanos),
            source: self.source.to_provenance(),
            details: self.details.to_details(),
        }
    }
}

pub fn decode_record(bytes: &[u8]) -> Result<ChangeRecord, DecodeError> {
    view_record(bytes).map(|view| view.to_record())
}

/// Reads a stored record in place, checking all of it.
pub fn view_record(bytes: &[u8]) -> Result<RecordView<'_>, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.u8()?;
    if !READABLE.contains(&version) {
        return Err(DecodeError(format!(
            "unknown entry format version {version}"
        )));
    }
    let op = match r.u8()? {
        0 => Op::Put,
        1 => Op::Delete,
        2 => Op::DeleteMarker,
        3 => Op::Metadata,
        4 => Op::BucketRemoved,
        other => return Err(DecodeError(format!("unknown op {other}"))),
    };
    let time_ns = r.i64()?;
    let bucket = r.str()?;
    let key = r.str()?;
    let version_id = r.opt_str()?;
    let size = if r.flag()? { Some(r.u64()?) } else { None };
    let etag = r.opt_str()?;
    let mtime_ns = if r.flag()? { Some(r.i64()?) } else { None };
    let source = match r.u8()? {
        0 => SourceView::Rgw {
            bucket_shard: r.str()?,
            marker: r.str()?,
        },
        1 => SourceView::Notify {
            event_id: r.opt_str()?,
            sequencer: r.opt_str()?,
        },
        2 => SourceView::Listing { reason: r.str()? },
        3 => SourceView::Test,
        other => return Err(DecodeError(format!("unknown source tag {other}"))),
    };
    let details = if version >= 2 {
        details::view_details(&mut r)?
    } else {
        DetailsView::default()
    };
    if r.at != bytes.len() {
        return Err(DecodeError(format!(
            "{} trailing bytes",
            bytes.len() - r.at
        )));
    }
    Ok(RecordView {
        op,
        time_ns,
        bucket,
        key,
        version_id,
        size,
        etag,
        mtime_ns,
        source,
        details,
    })
}

/// The identity of an object version for latest mode: length-prefixed so
/// no choice of names can make two versions collide.
pub fn object_version_key(bucket: &str, key: &str, version_id: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(bucket.len() + key.len() + 16);
    put_str(&mut out, bucket);
    put_str(&mut out, key);
    put_opt_str(&mut out, version_id);
    out
}

/// The [`object_version_key`] of an encoded record, read in place: the key is
/// the same bytes as the record's bucket, key and version_id fields, so a
/// trim in latest mode finds the version without decoding the record.
pub fn encoded_version_key(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.u8()?;
    if !READABLE.contains(&version) {
        return Err(DecodeError(format!(
            "unknown entry format version {version}"
        )));
    }
    r.take(1 + 8)?;
    let start = r.at;
    r.skip_str()?;
    r.skip_str()?;
    if r.flag()? {
        r.skip_str()?;
    }
    Ok(&bytes[start..r.at])
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
        None => out.push(0),
    }
}

pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| DecodeError(format!("truncated at byte {}", self.at)))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError(format!("bad option tag {other}"))),
        }
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(self.u64()? as i64)
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        let len = u32::from_le_bytes(b) as usize;
        let raw = self.take(len)?;
        std::str::from_utf8(raw).map_err(|e| DecodeError(format!("invalid UTF-8: {e}")))
    }

    fn skip_str(&mut self) -> Result<(), DecodeError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        self.take(u32::from_le_bytes(b) as usize)?;
        Ok(())
    }

    fn opt_str(&mut self) -> Result<Option<&'a str>, DecodeError> {
        if self.flag()? {
            Ok(Some(self.str()?))
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::ChangeDetails;
    use proptest::prelude::*;

    /// Any record a backend may be asked to store, control characters,
    /// quotes and backslashes included.
    pub(crate) fn arb_record() -> impl Strategy<Value = ChangeRecord> {
        let source = prop_oneof![
            (".*", ".*").prop_map(|(bucket_shard, marker)| Provenance::Rgw {
                bucket_shard,
                marker
            }),
            (proptest::option::of(".*"), proptest::option::of(".*")).prop_map(
                |(event_id, sequencer)| Provenance::Notify {
                    event_id,
                    sequencer
                }
            ),
            ".*".prop_map(|reason| Provenance::Listing { reason }),
            Just(Provenance::Test),
        ];
        (
            (
                ".{1,20}",
                ".{1,40}|[\\x00-\\x1f\\x7f\"\\\\a/é😀]{1,20}",
                proptest::option::of(".{1,10}"),
            ),
            0u8..5,
            0i64..i64::MAX,
            proptest::option::of(any::<u64>()),
            proptest::option::of(".{0,40}"),
            proptest::option::of(any::<i64>()),
            source,
        )
            .prop_map(
                |((bucket, key, version_id), op, t, size, etag, mtime, source)| ChangeRecord {
                    bucket,
                    key,
                    version_id,
                    op: Op::ALL[op as usize % Op::ALL.len()],
                    time: DateTime::from_timestamp_nanos(t),
                    size,
                    etag,
                    mtime: mtime.map(DateTime::from_timestamp_nanos),
                    source,
                    details: ChangeDetails::default(),
                },
            )
            .prop_flat_map(|record| (Just(record), arb_details()))
            .prop_map(|(mut record, details)| {
                record.details = details;
                record
            })
    }

    /// Any details, maps with any names and values included.
    pub(crate) fn arb_details() -> impl Strategy<Value = ChangeDetails> {
        let text = || proptest::option::of(".{0,20}|[\\x00-\\x1f\"\\\\]{1,4}");
        let pairs =
            || proptest::option::of(proptest::collection::btree_map(".{0,8}", ".{0,12}", 0..4));
        (
            (text(), text(), text(), text(), text()),
            (pairs(), pairs(), proptest::option::of(any::<u64>())),
            (text(), text(), text()),
        )
            .prop_map(
                |(
                    (sequence, storage_class, content_type, encryption, checksum_algorithm),
                    (tags, user_metadata, version_epoch),
                    (requester, source_ip, request_id),
                )| ChangeDetails {
                    sequence,
                    storage_class,
                    content_type,
                    encryption,
                    checksum_algorithm,
                    tags,
                    user_metadata,
                    version_epoch,
                    requester,
                    source_ip,
                    request_id,
                },
            )
    }

    proptest! {
        #[test]
        fn records_round_trip(record in arb_record()) {
            let mut buf = Vec::new();
            encode_record(&record, &mut buf);
            prop_assert_eq!(decode_record(&buf).unwrap(), record.clone());
            prop_assert_eq!(view_record(&buf).unwrap(), RecordView::of(&record));
            let version_key = object_version_key(&record.bucket, &record.key, record.version_id.as_deref());
            prop_assert_eq!(encoded_version_key(&buf).unwrap(), version_key.as_slice());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_record(&bytes);
            let _ = encoded_version_key(&bytes);
        }

        #[test]
        fn version_keys_never_collide(
            a in (".{0,5}", ".{0,5}", proptest::option::of(".{0,5}")),
            b in (".{0,5}", ".{0,5}", proptest::option::of(".{0,5}")),
        ) {
            let ka = object_version_key(&a.0, &a.1, a.2.as_deref());
            let kb = object_version_key(&b.0, &b.1, b.2.as_deref());
            prop_assert_eq!(ka == kb, a == b);
        }
    }

    /// An entry written by a zonelog before details existed (version 1:
    /// the same bytes without the details block) is read as a record
    /// without details.
    #[test]
    fn a_version_1_entry_is_still_read() {
        let mut record = crate::index::conformance::record("bkt", "k", Some("v1"), Op::Put, 5);
        record.details = ChangeDetails::default();
        let mut buf = Vec::new();
        encode_record(&record, &mut buf);
        let empty_details = {
            let mut d = Vec::new();
            details::encode_details(&ChangeDetails::default(), &mut d);
            d.len()
        };
        let mut v1 = buf[..buf.len() - empty_details].to_vec();
        v1[0] = 1;
        assert_eq!(decode_record(&v1).unwrap(), record);
        assert_eq!(
            encoded_version_key(&v1).unwrap(),
            encoded_version_key(&buf).unwrap()
        );
    }

    #[test]
    fn truncated_input_is_an_error() {
        let record = crate::index::conformance::record("bkt", "k", None, Op::Put, 5);
        let mut buf = Vec::new();
        encode_record(&record, &mut buf);
        for cut in 0..buf.len() {
            assert!(decode_record(&buf[..cut]).is_err(), "cut at {cut}");
        }
    }
}
