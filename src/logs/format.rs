//! The log object format: JSON Lines, one change per line, optionally
//! compressed; documented in docs/format.md with the JSON Schema
//! docs/record.schema.json.
//!
//! Encoding streams: [`LogEncoder`] takes entries one at a time and hands
//! out the compressed bytes produced so far, so a window of any size passes
//! through a bounded buffer.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::index::codec::{DetailsView, PairsView, RecordView, SourceView};
use crate::index::{EntryId, IndexedEntry};
use crate::record::{Op, Provenance};

/// How a log object's lines are compressed (`[collector] compression`);
/// its name's extension says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `.jsonl`
    None,
    /// `.jsonl.gz`
    Gzip,
    /// `.jsonl.zst`, the default.
    #[default]
    Zstd,
}

impl Compression {
    /// Every compression, for tests and readers that try each.
    pub const ALL: [Compression; 3] = [Compression::None, Compression::Gzip, Compression::Zstd];

    /// The extension of a log object name (without the dot): `jsonl`
    /// and the compressor's, so the name says how to read the object.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "jsonl",
            Compression::Gzip => "jsonl.gz",
            Compression::Zstd => "jsonl.zst",
        }
    }
}

/// The record schema version; a change to the line format bumps it (3
/// added the details, written on every line, `null` when unknown).
pub const RECORD_VERSION: u32 = 3;

/// One line of a log object, as consumers read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRecord {
    /// The record schema version ([`RECORD_VERSION`] when written).
    pub v: u32,
    /// The index key: unique, and text order is time order.
    pub id: String,
    /// When the change happened at the source.
    #[serde(with = "crate::record::rfc3339_nanos")]
    pub time: DateTime<Utc>,
    /// The zone name from the config.
    pub zone: String,
    /// The bucket, as S3 names it (`tenant/bucket` for a tenant's).
    pub bucket: String,
    /// The object key; empty only for a bucket removal.
    pub key: String,
    /// The object version; `None` for an unversioned object.
    pub version_id: Option<String>,
    /// What happened.
    pub op: Op,
    // Version 2 lines left out unknown fields; version 3 writes `null`.
    /// Orders the changes of one key (docs/format.md, "`sequence`").
    #[serde(default)]
    pub sequence: Option<String>,
    /// The object's size after the change.
    #[serde(default)]
    pub size: Option<u64>,
    /// The object's ETag, without quotes.
    #[serde(default)]
    pub etag: Option<String>,
    /// The object's own mtime.
    #[serde(default, with = "crate::record::opt_rfc3339_nanos")]
    pub mtime: Option<DateTime<Utc>>,
    /// Written by a multipart upload (from the ETag).
    #[serde(default)]
    pub is_multipart: Option<bool>,
    /// The object's storage class.
    #[serde(default)]
    pub storage_class: Option<String>,
    /// The object's content type.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Server-side encryption (`AES256`, `aws:kms`, `SSE-C`).
    #[serde(default)]
    pub encryption: Option<String>,
    /// The additional checksum's algorithm.
    #[serde(default)]
    pub checksum_algorithm: Option<String>,
    /// The object's tags after the change.
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    /// `x-amz-meta-*`, names lower case without the prefix.
    #[serde(default)]
    pub user_metadata: Option<BTreeMap<String, String>>,
    /// RGW's per-key OLH epoch of a versioned change.
    #[serde(default)]
    pub version_epoch: Option<u64>,
    /// The user that made the change.
    #[serde(default)]
    pub requester: Option<String>,
    /// The client's address.
    #[serde(default)]
    pub source_ip: Option<String>,
    /// The request id the client was given.
    #[serde(default)]
    pub request_id: Option<String>,
    /// Where zonelog read the change.
    pub source: Provenance,
}

impl LogRecord {
    /// The line a log object holds for `entry`, as a value.
    pub fn new(zone: &str, entry: &IndexedEntry) -> Self {
        let r = &entry.record;
        let d = r.details.clone();
        LogRecord {
            v: RECORD_VERSION,
            id: entry.id.to_string(),
            time: r.time,
            zone: zone.to_string(),
            bucket: r.bucket.clone(),
            key: r.key.clone(),
            version_id: r.version_id.clone(),
            op: r.op,
            sequence: d.sequence,
            size: r.size,
            etag: r.etag.clone(),
            mtime: r.mtime,
            is_multipart: r.is_multipart(),
            storage_class: d.storage_class,
            content_type: d.content_type,
            encryption: d.encryption,
            checksum_algorithm: d.checksum_algorithm,
            tags: d.tags,
            user_metadata: d.user_metadata,
            version_epoch: d.version_epoch,
            requester: d.requester,
            source_ip: d.source_ip,
            request_id: d.request_id,
            source: r.source.clone(),
        }
    }

    /// The index id, when `id` is one.
    pub fn entry_id(&self) -> Option<EntryId> {
        self.id.parse().ok()
    }
}

/// Appends one JSON line for `entry` to `out`.
pub fn encode_line(zone: &str, entry: &IndexedEntry, out: &mut Vec<u8>) {
    write_line(zone, entry.id, &RecordView::of(&entry.record), out);
}

/// Appends one JSON line for a stored record to `out`.
///
/// Written by hand rather than through serde because the collector spends
/// most of its time here (docs/decisions.md, "Log line encoder"); the
/// output is byte for byte what serde_json makes of [`LogRecord`], which a
/// property test checks, so consumers can parse it with anything.
pub fn write_line(zone: &str, id: EntryId, r: &RecordView<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"v\":");
    write_u64(u64::from(RECORD_VERSION), out);
    out.extend_from_slice(b",\"id\":\"");
    write_entry_id(id, out);
    out.extend_from_slice(b"\",\"time\":");
    write_time(r.time_ns, out);
    out.extend_from_slice(b",\"zone\":");
    write_str(zone, out);
    out.extend_from_slice(b",\"bucket\":");
    write_str(r.bucket, out);
    out.extend_from_slice(b",\"key\":");
    write_str(r.key, out);
    out.extend_from_slice(b",\"version_id\":");
    match r.version_id {
        Some(v) => write_str(v, out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"op\":\"");
    out.extend_from_slice(r.op.as_str().as_bytes());
    out.push(b'"');
    let d = &r.details;
    write_field(b"sequence", d.sequence, write_str, out);
    write_field(b"size", r.size, write_u64, out);
    write_field(b"etag", r.etag, write_str, out);
    write_field(b"mtime", r.mtime_ns, write_time, out);
    let is_multipart = r.etag.map(crate::record::etag_is_multipart);
    write_field(b"is_multipart", is_multipart, write_bool, out);
    write_details(d, out);
    out.extend_from_slice(b",\"source\":{\"type\":");
    match r.source {
        SourceView::Rgw {
            bucket_shard,
            marker,
        } => {
            out.extend_from_slice(b"\"rgw\",\"bucket_shard\":");
            write_str(bucket_shard, out);
            out.extend_from_slice(b",\"marker\":");
            write_str(marker, out);
        }
        SourceView::Notify {
            event_id,
            sequencer,
        } => {
            out.extend_from_slice(b"\"notify\"");
            if let Some(event_id) = event_id {
                out.extend_from_slice(b",\"event_id\":");
                write_str(event_id, out);
            }
            if let Some(sequencer) = sequencer {
                out.extend_from_slice(b",\"sequencer\":");
                write_str(sequencer, out);
            }
        }
        SourceView::Listing { reason } => {
            out.extend_from_slice(b"\"listing\",\"reason\":");
            write_str(reason, out);
        }
        SourceView::Test => out.extend_from_slice(b"\"test\""),
    }
    out.extend_from_slice(b"}}\n");
}

/// The details after `is_multipart`, in [`LogRecord`]'s field order.
fn write_details(d: &DetailsView<'_>, out: &mut Vec<u8>) {
    write_field(b"storage_class", d.storage_class, write_str, out);
    write_field(b"content_type", d.content_type, write_str, out);
    write_field(b"encryption", d.encryption, write_str, out);
    write_field(b"checksum_algorithm", d.checksum_algorithm, write_str, out);
    write_field(b"tags", d.tags, write_pairs, out);
    write_field(b"user_metadata", d.user_metadata, write_pairs, out);
    write_field(b"version_epoch", d.version_epoch, write_u64, out);
    write_field(b"requester", d.requester, write_str, out);
    write_field(b"source_ip", d.source_ip, write_str, out);
    write_field(b"request_id", d.request_id, write_str, out);
}

/// `,"name":value`, or `,"name":null` when unknown: every line names
/// every field, so a reader that infers columns from a sample (DuckDB)
/// or needs one schema (Parquet) sees the same ones in every object.
fn write_field<T>(name: &[u8], value: Option<T>, write: fn(T, &mut Vec<u8>), out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name);
    out.extend_from_slice(b"\":");
    match value {
        Some(value) => write(value, out),
        None => out.extend_from_slice(b"null"),
    }
}

fn write_bool(b: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// A map as a JSON object, names in order (as serde_json writes a
/// `BTreeMap`).
fn write_pairs(pairs: PairsView<'_>, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(name, out);
        out.push(b':');
        write_str(value, out);
    }
    out.push(b'}');
}

fn write_u64(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// `n` as exactly `width` decimal digits (the caller knows it fits).
fn write_padded(mut n: u64, width: usize, out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + width, b'0');
    for at in (start..start + width).rev() {
        out[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The text form of [`EntryId`]'s `Display`: 20 digits, `-`, 16 hex digits.
fn write_entry_id(id: EntryId, out: &mut Vec<u8>) {
    write_padded(id.time_ns, 20, out);
    out.push(b'-');
    for shift in (0..16).rev() {
        out.push(HEX[((id.seq >> (shift * 4)) & 0xf) as usize]);
    }
}

/// A quoted RFC 3339 time in UTC with nanoseconds, as
/// [`crate::record::format_time`] writes it.
fn write_time(ns: i64, out: &mut Vec<u8>) {
    if ns < 0 {
        // Before 1970 never comes from an index key; chrono handles it.
        let text = crate::record::format_time(&DateTime::from_timestamp_nanos(ns));
        write_str(&text, out);
        return;
    }
    let ns = ns as u64;
    let secs = ns / 1_000_000_000;
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let of_day = secs % 86_400;
    out.push(b'"');
    write_padded(year as u64, 4, out);
    out.push(b'-');
    write_padded(u64::from(month), 2, out);
    out.push(b'-');
    write_padded(u64::from(day), 2, out);
    out.push(b'T');
    write_padded(of_day / 3600, 2, out);
    out.push(b':');
    write_padded(of_day / 60 % 60, 2, out);
    out.push(b':');
    write_padded(of_day % 60, 2, out);
    out.push(b'.');
    write_padded(ns % 1_000_000_000, 9, out);
    out.extend_from_slice(b"Z\"");
}

/// Year, month, day of a day count since 1970-01-01 (proleptic Gregorian;
/// Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A JSON string with serde_json's escaping: `"`, `\\` and control
/// characters only, short forms where JSON has them, lowercase `\u00XX`
/// otherwise; everything else (all of UTF-8) as is.
fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (at, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..at]);
        run = at + 1;
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// Lines gathered before they go to the compressor: one compressor call
/// per many lines costs less than one per line.
const LINES_BUFFER: usize = 64 * 1024;

/// Encodes lines and compresses them as they come.
pub struct LogEncoder {
    zone: String,
    lines: Vec<u8>,
    inner: Inner,
    /// Changes encoded so far.
    pub entries: u64,
    /// Bytes of JSON lines before compression.
    pub raw_bytes: u64,
}

enum Inner {
    Plain(Vec<u8>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl LogEncoder {
    /// An encoder of `zone`'s lines, compressed with `compression`.
    pub fn new(zone: &str, compression: Compression) -> std::io::Result<Self> {
        let inner = match compression {
            Compression::None => Inner::Plain(Vec::new()),
            Compression::Gzip => Inner::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::default(),
            )),
            Compression::Zstd => Inner::Zstd(zstd::stream::write::Encoder::new(Vec::new(), 1)?),
        };
        Ok(LogEncoder {
            zone: zone.to_string(),
            lines: Vec::with_capacity(LINES_BUFFER + 4096),
            inner,
            entries: 0,
            raw_bytes: 0,
        })
    }

    /// Adds one indexed change.
    pub fn push(&mut self, entry: &IndexedEntry) -> std::io::Result<()> {
        self.push_view(entry.id, &RecordView::of(&entry.record))
    }

    /// Adds the line of a stored record read in place.
    pub fn push_view(&mut self, id: EntryId, record: &RecordView<'_>) -> std::io::Result<()> {
        let before = self.lines.len();
        write_line(&self.zone, id, record, &mut self.lines);
        self.entries += 1;
        self.raw_bytes += (self.lines.len() - before) as u64;
        if self.lines.len() >= LINES_BUFFER {
            self.compress_lines()?;
        }
        Ok(())
    }

    fn compress_lines(&mut self) -> std::io::Result<()> {
        match &mut self.inner {
            Inner::Plain(out) => out.extend_from_slice(&self.lines),
            Inner::Gzip(enc) => enc.write_all(&self.lines)?,
            Inner::Zstd(enc) => enc.write_all(&self.lines)?,
        }
        self.lines.clear();
        Ok(())
    }

    /// Compressed bytes ready so far (the encoder may hold some back).
    pub fn take_output(&mut self) -> Vec<u8> {
        match &mut self.inner {
            Inner::Plain(out) => std::mem::take(out),
            Inner::Gzip(enc) => std::mem::take(enc.get_mut()),
            Inner::Zstd(enc) => std::mem::take(enc.get_mut()),
        }
    }

    /// Bytes held, not yet handed out: what bounds the encoder's memory.
    pub fn buffered(&self) -> usize {
        match &self.inner {
            Inner::Plain(out) => out.len(),
            Inner::Gzip(enc) => enc.get_ref().len(),
            Inner::Zstd(enc) => enc.get_ref().len(),
        }
    }

    /// Ends the stream and returns the remaining bytes.
    pub fn finish(mut self) -> std::io::Result<Vec<u8>> {
        self.compress_lines()?;
        match self.inner {
            Inner::Plain(out) => Ok(out),
            Inner::Gzip(enc) => enc.finish(),
            Inner::Zstd(enc) => enc.finish(),
        }
    }
}

/// Why a JSON Lines log object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Its compression is broken.
    #[error("cannot decompress the log object: {0}")]
    Decompress(#[from] std::io::Error),
    /// A line (counted from 1) is not a record.
    #[error("line {line}: {reason}")]
    Line {
        /// Counted from 1.
        line: usize,
        /// Why it is not a record.
        reason: String,
    },
}

/// A reader that decompresses a log object's bytes.
pub fn decompressor<'a>(
    compression: Compression,
    bytes: impl Read + 'a,
) -> std::io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(bytes),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(bytes)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(bytes)?),
    })
}

/// Decodes a whole (small) log object; consumers of big ones stream
/// through [`decompressor`] and a line reader instead.
pub fn decode_all(compression: Compression, bytes: &[u8]) -> Result<Vec<LogRecord>, DecodeError> {
    let mut text = String::new();
    decompressor(compression, bytes)?.read_to_string(&mut text)?;
    text.lines()
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line).map_err(|e| DecodeError::Line {
                line: n + 1,
                reason: e.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::conformance::record;
    use proptest::prelude::*;

    fn entry(n: u64, key: &str) -> IndexedEntry {
        IndexedEntry {
            shard: 3,
            id: EntryId::new(1_764_000_000_000_000_000 + n, n),
            record: record(
                "bkt",
                key,
                n.is_multiple_of(2).then_some("v1"),
                Op::Put,
                1_764_000_000_000_000_000 + n,
            ),
        }
    }

    #[test]
    fn every_compression_round_trips() {
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let mut enc = LogEncoder::new("zone-a", compression).unwrap();
            let mut bytes = Vec::new();
            for n in 0..1000 {
                enc.push(&entry(n, &format!("k{n}"))).unwrap();
                bytes.extend(enc.take_output());
            }
            bytes.extend(enc.finish().unwrap());
            let lines = decode_all(compression, &bytes).unwrap();
            assert_eq!(lines.len(), 1000);
            assert_eq!(lines[7].key, "k7");
            assert_eq!(lines[7].zone, "zone-a");
            assert_eq!(lines[7].entry_id(), Some(entry(7, "k7").id));
            assert_eq!(lines[8].version_id.as_deref(), Some("v1"));
        }
    }

    /// The line as serde_json writes [`LogRecord`]: the reference
    /// [`write_line`] must match byte for byte.
    fn serde_line(zone: &str, entry: &IndexedEntry) -> Vec<u8> {
        let mut out = serde_json::to_vec(&LogRecord::new(zone, entry)).unwrap();
        out.push(b'\n');
        out
    }

    #[test]
    fn times_at_the_edges_match_chrono() {
        for ns in [
            0,
            1,
            86_399_999_999_999,
            951_782_400_000_000_000,   // 2000-02-29
            4_107_542_400_000_000_000, // 2100-03-01
            i64::MAX,
            -1,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            write_time(ns, &mut out);
            let want = format!(
                "\"{}\"",
                crate::record::format_time(&DateTime::from_timestamp_nanos(ns))
            );
            assert_eq!(String::from_utf8(out).unwrap(), want, "{ns}");
        }
    }

    proptest! {
        #[test]
        fn hand_written_lines_equal_serde_json(
            record in crate::index::codec::tests::arb_record(),
            time_ns in any::<u64>(),
            seq in any::<u64>(),
            zone in ".{1,10}",
        ) {
            let entry = IndexedEntry { shard: 0, id: EntryId::new(time_ns, seq), record };
            let mut out = Vec::new();
            encode_line(&zone, &entry, &mut out);
            prop_assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(serde_line(&zone, &entry)).unwrap());
        }

        #[test]
        fn any_time_matches_chrono(ns in any::<i64>()) {
            let mut out = Vec::new();
            write_time(ns, &mut out);
            let want = format!("\"{}\"", crate::record::format_time(&DateTime::from_timestamp_nanos(ns)));
            prop_assert_eq!(String::from_utf8(out).unwrap(), want);
        }

        #[test]
        fn any_key_survives_a_round_trip(key in "\\PC{1,60}|[\\n\\r\\t\"\\\\%+ ]{1,10}") {
            let mut out = Vec::new();
            encode_line("z", &entry(1, &key), &mut out);
            prop_assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1, "one line per record");
            let back = decode_all(Compression::None, &out).unwrap();
            prop_assert_eq!(&back[0].key, &key);
        }
    }
}
