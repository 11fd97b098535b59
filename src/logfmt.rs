//! The log object format: JSON Lines, one change per line, optionally
//! compressed; documented in docs/format.md with the JSON Schema
//! docs/record.schema.json.
//!
//! Encoding streams: [`LogEncoder`] takes entries one at a time and hands
//! out the compressed bytes produced so far, so a window of any size passes
//! through a bounded buffer.

use std::io::{Read, Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Compression;
use crate::index::{EntryId, IndexedEntry};
use crate::record::{Op, Provenance};

/// The record schema version; a change to the line format bumps it.
pub const RECORD_VERSION: u32 = 1;

/// One line of a log object, as consumers read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRecord {
    pub v: u32,
    pub id: String,
    #[serde(with = "crate::record::rfc3339_nanos")]
    pub time: DateTime<Utc>,
    pub zone: String,
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::record::opt_rfc3339_nanos"
    )]
    pub mtime: Option<DateTime<Utc>>,
    pub source: Provenance,
}

impl LogRecord {
    pub fn entry_id(&self) -> Option<EntryId> {
        self.id.parse().ok()
    }
}

/// The same line, borrowed from an index entry, so encoding copies nothing.
#[derive(Serialize)]
struct LineRef<'a> {
    v: u32,
    id: &'a str,
    #[serde(with = "crate::record::rfc3339_nanos")]
    time: DateTime<Utc>,
    zone: &'a str,
    bucket: &'a str,
    key: &'a str,
    version_id: Option<&'a str>,
    op: Op,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<&'a str>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "crate::record::opt_rfc3339_nanos"
    )]
    mtime: Option<DateTime<Utc>>,
    source: &'a Provenance,
}

/// Appends one JSON line for `entry` to `out`.
pub fn encode_line(zone: &str, entry: &IndexedEntry, out: &mut Vec<u8>) {
    let id = entry.id.to_string();
    let r = &entry.record;
    let line = LineRef {
        v: RECORD_VERSION,
        id: &id,
        time: r.time,
        zone,
        bucket: &r.bucket,
        key: &r.key,
        version_id: r.version_id.as_deref(),
        op: r.op,
        size: r.size,
        etag: r.etag.as_deref(),
        mtime: r.mtime,
        source: &r.source,
    };
    // Serializing plain strings, numbers and enums into a Vec cannot fail.
    serde_json::to_writer(&mut *out, &line).expect("JSON encoding into memory");
    out.push(b'\n');
}

pub fn extension(compression: Compression) -> &'static str {
    match compression {
        Compression::None => "jsonl",
        Compression::Gzip => "jsonl.gz",
        Compression::Zstd => "jsonl.zst",
    }
}

/// Encodes lines and compresses them as they come.
pub struct LogEncoder {
    zone: String,
    line: Vec<u8>,
    inner: Inner,
    pub entries: u64,
    pub raw_bytes: u64,
}

enum Inner {
    Plain(Vec<u8>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl LogEncoder {
    pub fn new(zone: &str, compression: Compression) -> std::io::Result<Self> {
        let inner = match compression {
            Compression::None => Inner::Plain(Vec::new()),
            Compression::Gzip => Inner::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::default(),
            )),
            Compression::Zstd => Inner::Zstd(zstd::stream::write::Encoder::new(Vec::new(), 3)?),
        };
        Ok(LogEncoder {
            zone: zone.to_string(),
            line: Vec::with_capacity(512),
            inner,
            entries: 0,
            raw_bytes: 0,
        })
    }

    pub fn push(&mut self, entry: &IndexedEntry) -> std::io::Result<()> {
        self.line.clear();
        encode_line(&self.zone, entry, &mut self.line);
        self.entries += 1;
        self.raw_bytes += self.line.len() as u64;
        match &mut self.inner {
            Inner::Plain(out) => out.extend_from_slice(&self.line),
            Inner::Gzip(enc) => enc.write_all(&self.line)?,
            Inner::Zstd(enc) => enc.write_all(&self.line)?,
        }
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

    pub fn buffered(&self) -> usize {
        match &self.inner {
            Inner::Plain(out) => out.len(),
            Inner::Gzip(enc) => enc.get_ref().len(),
            Inner::Zstd(enc) => enc.get_ref().len(),
        }
    }

    /// Ends the stream and returns the remaining bytes.
    pub fn finish(self) -> std::io::Result<Vec<u8>> {
        match self.inner {
            Inner::Plain(out) => Ok(out),
            Inner::Gzip(enc) => enc.finish(),
            Inner::Zstd(enc) => enc.finish(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot decompress the log object: {0}")]
    Decompress(#[from] std::io::Error),
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
}

/// Which compression a log object name says it uses.
pub fn compression_of(name: &str) -> Option<Compression> {
    if name.ends_with(".jsonl.zst") {
        Some(Compression::Zstd)
    } else if name.ends_with(".jsonl.gz") {
        Some(Compression::Gzip)
    } else if name.ends_with(".jsonl") {
        Some(Compression::None)
    } else {
        None
    }
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

    proptest! {
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
