//! Parquet log objects (`[collector] format = "parquet"`): the records of
//! the JSON lines, one column per field, the same names and values
//! (docs/format.md, "Parquet"). Times are INT64 `TIMESTAMP(NANOS, UTC)`,
//! `size` is an unsigned INT64, `source` is its JSON object as text
//! (logical type JSON), so a new kind of source needs no new column.
//!
//! [`COLUMNS`] is the one list of columns: a field added to the record is
//! one line there, which both writes it and (by name, through
//! [`LogRecord`](super::LogRecord)'s serde form) reads it back.
//!
//! Writing streams: rows are gathered column by column until they hold
//! about a part of raw data (the collector's `part_size`), then written as
//! one row group, compressed, and handed out; memory is one row group's raw
//! columns plus its compressed bytes. Reading needs the footer first, so a
//! reader spools the object to a local file (see [`super::reader`]) and
//! decodes it a row group and a batch of rows at a time.

use std::sync::Arc;

use parquet::basic::{LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::schema::types::Type;

use super::format::RECORD_VERSION;
use crate::index::codec::{PairsView, RecordView};
use crate::index::EntryId;

mod read;
mod write;

pub use read::read_records;
pub use write::ParquetEncoder;

/// One change as the encoder sees it: the stored record and what the log
/// adds (its id, the zone).
pub struct Row<'a> {
    /// The zone name from the config.
    pub zone: &'a str,
    /// The change's index id.
    pub id: EntryId,
    /// The stored record.
    pub record: &'a RecordView<'a>,
}

/// A column's value in one row.
pub enum Cell<'a> {
    /// Unknown.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number (or ns since 1970 for a time).
    Int(i64),
    /// Text borrowed from the record.
    Text(&'a str),
    /// Text made for the row (JSON of a map or of the source).
    Owned(String),
}

/// What a column holds, in Parquet and in the JSON record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// BOOLEAN; a JSON boolean.
    Bool,
    /// INT32; a JSON number.
    Int32,
    /// INT64, unsigned; a JSON number.
    UInt64,
    /// UTF-8 text; a JSON string.
    Text,
    /// INT64 nanoseconds since 1970, UTC; an RFC 3339 string.
    TimeNs,
    /// JSON text; the JSON value itself.
    Json,
}

/// One column: its name (the record field's), kind, whether it may be
/// null, whether its values repeat enough for a dictionary, and its value
/// in a row being written.
pub struct Column {
    /// The record field's name.
    pub name: &'static str,
    /// What it holds.
    pub kind: Kind,
    /// Whether a row may have no value.
    pub optional: bool,
    /// Whether its values repeat enough for a dictionary.
    pub dictionary: bool,
    /// Its value in a row being written.
    pub value: for<'a> fn(&Row<'a>) -> Cell<'a>,
}

/// The columns, in the order of the JSON line's fields.
pub const COLUMNS: &[Column] = &[
    repeating(column("v", Kind::Int32, false, |_| {
        Cell::Int(i64::from(RECORD_VERSION))
    })),
    column("id", Kind::Text, false, |r| Cell::Owned(r.id.to_string())),
    column("time", Kind::TimeNs, false, |r| Cell::Int(r.record.time_ns)),
    repeating(column("zone", Kind::Text, false, |r| Cell::Text(r.zone))),
    repeating(column("bucket", Kind::Text, false, |r| {
        Cell::Text(r.record.bucket)
    })),
    column("key", Kind::Text, false, |r| Cell::Text(r.record.key)),
    column("version_id", Kind::Text, true, |r| {
        text(r.record.version_id)
    }),
    repeating(column("op", Kind::Text, false, |r| {
        Cell::Text(r.record.op.as_str())
    })),
    column("sequence", Kind::Text, true, |r| {
        text(r.record.details.sequence)
    }),
    column("size", Kind::UInt64, true, |r| {
        // Stored as the bits of an INT64 (the column is unsigned).
        r.record.size.map_or(Cell::Null, |s| Cell::Int(s as i64))
    }),
    column("etag", Kind::Text, true, |r| text(r.record.etag)),
    column("mtime", Kind::TimeNs, true, |r| {
        r.record.mtime_ns.map_or(Cell::Null, Cell::Int)
    }),
    column("is_multipart", Kind::Bool, true, |r| {
        let multipart = r.record.etag.map(crate::record::etag_is_multipart);
        multipart.map_or(Cell::Null, Cell::Bool)
    }),
    repeating(column("storage_class", Kind::Text, true, |r| {
        text(r.record.details.storage_class)
    })),
    repeating(column("content_type", Kind::Text, true, |r| {
        text(r.record.details.content_type)
    })),
    repeating(column("encryption", Kind::Text, true, |r| {
        text(r.record.details.encryption)
    })),
    repeating(column("checksum_algorithm", Kind::Text, true, |r| {
        text(r.record.details.checksum_algorithm)
    })),
    column("tags", Kind::Json, true, |r| pairs(r.record.details.tags)),
    column("user_metadata", Kind::Json, true, |r| {
        pairs(r.record.details.user_metadata)
    }),
    column("version_epoch", Kind::UInt64, true, |r| {
        let epoch = r.record.details.version_epoch;
        epoch.map_or(Cell::Null, |e| Cell::Int(e as i64))
    }),
    repeating(column("requester", Kind::Text, true, |r| {
        text(r.record.details.requester)
    })),
    repeating(column("source_ip", Kind::Text, true, |r| {
        text(r.record.details.source_ip)
    })),
    column("request_id", Kind::Text, true, |r| {
        text(r.record.details.request_id)
    }),
    column("source", Kind::Json, false, |r| {
        Cell::Owned(serde_json::to_string(&r.record.source.to_provenance()).unwrap_or_default())
    }),
];

fn text(value: Option<&str>) -> Cell<'_> {
    value.map_or(Cell::Null, Cell::Text)
}

/// Tags or user metadata as a JSON object (name → value), in name order.
fn pairs(value: Option<PairsView<'_>>) -> Cell<'static> {
    /// Serialized straight from the pairs, without a map in between.
    struct Pairs<'a>(PairsView<'a>);
    impl serde::Serialize for Pairs<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter())
        }
    }
    match value {
        Some(pairs) => Cell::Owned(serde_json::to_string(&Pairs(pairs)).unwrap_or_default()),
        None => Cell::Null,
    }
}

const fn column(
    name: &'static str,
    kind: Kind,
    optional: bool,
    value: for<'a> fn(&Row<'a>) -> Cell<'a>,
) -> Column {
    Column {
        name,
        kind,
        optional,
        dictionary: false,
        value,
    }
}

/// A column whose values repeat (a zone, a few buckets, five ops).
const fn repeating(column: Column) -> Column {
    Column {
        dictionary: true,
        ..column
    }
}

/// The message type of every Parquet log object.
pub(super) fn schema() -> parquet::errors::Result<Type> {
    let mut fields = Vec::with_capacity(COLUMNS.len());
    for c in COLUMNS {
        let (physical, logical) = match c.kind {
            Kind::Bool => (Physical::BOOLEAN, None),
            Kind::Int32 => (Physical::INT32, None),
            Kind::UInt64 => (Physical::INT64, Some(LogicalType::integer(64, false))),
            Kind::Text => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
            Kind::TimeNs => (
                Physical::INT64,
                Some(LogicalType::timestamp(true, TimeUnit::NANOS)),
            ),
            Kind::Json => (Physical::BYTE_ARRAY, Some(LogicalType::Json)),
        };
        let repetition = if c.optional {
            Repetition::OPTIONAL
        } else {
            Repetition::REQUIRED
        };
        let field = Type::primitive_type_builder(c.name, physical)
            .with_logical_type(logical)
            .with_repetition(repetition)
            .build()?;
        fields.push(Arc::new(field));
    }
    Type::group_type_builder("zonelog_record")
        .with_fields(fields)
        .build()
}

pub(super) fn error(e: parquet::errors::ParquetError) -> std::io::Error {
    std::io::Error::other(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::conformance::record;
    use crate::logs::format::encode_line;
    use crate::logs::LogRecord;
    use crate::record::{ChangeRecord, Op, Provenance};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn records() -> Vec<ChangeRecord> {
        let mut out = Vec::new();
        for i in 0..50_000u64 {
            let op = [Op::Put, Op::Delete, Op::DeleteMarker, Op::Metadata][(i % 4) as usize];
            let mut r = record(
                "b",
                &format!("k\"{i}\n ü"),
                None,
                op,
                1_700_000_000_000_000_000 + i,
            );
            if i % 3 == 0 {
                r.size = None;
                r.etag = None;
                r.version_id = Some(format!("v{i}"));
            }
            if i % 5 == 0 {
                r.mtime = Some(r.time);
            }
            if i % 2 == 0 {
                let d = &mut r.details;
                d.sequence = Some(format!("{i:020}"));
                d.storage_class = Some("STANDARD".into());
                d.content_type = Some("image/jpeg".into());
                d.encryption = (i % 6 == 0).then(|| "AES256".into());
                d.checksum_algorithm = Some("CRC32".into());
                d.tags = Some([("team".to_string(), format!("\"blue\" {i}"))].into());
                d.user_metadata = (i % 4 == 0).then(Default::default);
                d.version_epoch = Some(i);
                d.requester = Some("user".into());
                d.source_ip = Some("10.0.0.1".into());
                d.request_id = Some(format!("tx{i}"));
                r.etag = (i % 8 == 0)
                    .then(|| format!("{i:032x}-3"))
                    .or(r.etag.take());
            }
            r.source = match i % 4 {
                0 => Provenance::Rgw {
                    bucket_shard: "b:i:3".into(),
                    marker: format!("m{i}"),
                },
                1 => Provenance::Notify {
                    event_id: Some("e".into()),
                    sequencer: None,
                },
                2 => Provenance::Listing {
                    reason: "initial".into(),
                },
                _ => Provenance::Test,
            };
            out.push(r);
        }
        out
    }

    #[test]
    fn rows_read_back_as_the_json_lines_say() {
        let records = records();
        // A row group closes after the first page (20 000 rows).
        let mut encoder = ParquetEncoder::new("z", 1).expect("encoder");
        let mut bytes = Vec::new();
        let mut lines = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let id = EntryId {
                time_ns: r.time.timestamp_nanos_opt().unwrap() as u64,
                seq: i as u64,
            };
            encoder.push_view(id, &RecordView::of(r)).expect("push");
            encode_line(
                "z",
                &crate::index::IndexedEntry {
                    id,
                    shard: 0,
                    record: r.clone(),
                },
                &mut lines,
            );
            bytes.extend(encoder.take_output());
        }
        bytes.extend(encoder.finish().expect("finish"));
        let mut file = tempfile::tempfile().expect("temp file");
        std::io::Write::write_all(&mut file, &bytes).expect("write");
        let mut read = Vec::new();
        read_records(file, |r| {
            read.push(r);
            true
        })
        .expect("read");
        let want: Vec<LogRecord> = lines
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("line"))
            .collect();
        assert_eq!(read.len(), records.len());
        assert_eq!(read, want);
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).expect("reader");
        assert_eq!(
            reader.metadata().num_row_groups(),
            3,
            "row groups cut by size"
        );
    }
}
