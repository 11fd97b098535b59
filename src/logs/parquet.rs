//! Parquet log objects (`[collector] format = "parquet"`): the records of
//! the JSON lines, one column per field, the same names and values
//! (docs/format.md, "Parquet"). Times are INT64 `TIMESTAMP(NANOS, UTC)`,
//! `size` is an unsigned INT64, `source` is its JSON object as text
//! (logical type JSON), so a new kind of source needs no new column.
//!
//! [`COLUMNS`] is the one list of columns: a field added to the record is
//! one line there, which both writes it and (by name, through
//! [`LogRecord`]'s serde form) reads it back.
//!
//! Writing streams: rows are gathered column by column until they hold
//! about a part of raw data (the collector's `part_size`), then written as
//! one row group, compressed, and handed out; memory is one row group's raw
//! columns plus its compressed bytes. Reading needs the footer first, so a
//! reader spools the object to a local file (see [`super::reader`]) and
//! decodes it a row group and a batch of rows at a time.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use parquet::basic::{
    Compression as Codec, LogicalType, Repetition, TimeUnit, Type as Physical, ZstdLevel,
};
use parquet::column::page::{CompressedPage, PageWriteSpec, PageWriter};
use parquet::column::reader::ColumnReader;
use parquet::column::writer::{get_column_writer, ColumnWriter};
use parquet::data_type::ByteArray;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::{SerializedFileWriter, SerializedPageWriter, TrackedWrite};
use parquet::schema::types::{ColumnPath, Type};

use super::format::{LogRecord, RECORD_VERSION};
use crate::index::codec::{RecordView, SourceView};
use crate::index::EntryId;
use crate::record::Provenance;

/// One change as the encoder sees it: the stored record and what the log
/// adds (its id, the zone).
pub struct Row<'a> {
    pub zone: &'a str,
    pub id: EntryId,
    pub record: &'a RecordView<'a>,
}

/// A column's value in one row.
pub enum Cell<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Owned(String),
}

/// What a column holds, in Parquet and in the JSON record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
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
    pub name: &'static str,
    pub kind: Kind,
    pub optional: bool,
    pub dictionary: bool,
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
        r.record.version_id.map_or(Cell::Null, Cell::Text)
    }),
    repeating(column("op", Kind::Text, false, |r| {
        Cell::Text(r.record.op.as_str())
    })),
    column("size", Kind::UInt64, true, |r| {
        // Stored as the bits of an INT64 (the column is unsigned).
        r.record.size.map_or(Cell::Null, |s| Cell::Int(s as i64))
    }),
    column("etag", Kind::Text, true, |r| {
        r.record.etag.map_or(Cell::Null, Cell::Text)
    }),
    column("mtime", Kind::TimeNs, true, |r| {
        r.record.mtime_ns.map_or(Cell::Null, Cell::Int)
    }),
    column("source", Kind::Json, false, |r| {
        Cell::Owned(serde_json::to_string(&provenance(r.record.source)).unwrap_or_default())
    }),
];

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

fn provenance(source: SourceView<'_>) -> Provenance {
    let owned = |s: Option<&str>| s.map(str::to_string);
    match source {
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

/// The message type of every Parquet log object.
fn schema() -> parquet::errors::Result<Type> {
    let mut fields = Vec::with_capacity(COLUMNS.len());
    for c in COLUMNS {
        let (physical, logical) = match c.kind {
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

fn error(e: parquet::errors::ParquetError) -> std::io::Error {
    std::io::Error::other(e)
}

/// Rows gathered before they go to the column writers: one `write_batch`
/// per column per batch costs less than one per row.
const WRITE_BATCH: usize = 1024;

/// One column's values of the rows gathered.
enum Values {
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Bytes(Vec<ByteArray>),
}

struct Buffer {
    values: Values,
    /// Definition levels (1 = a value, 0 = null) of an optional column.
    defs: Vec<i16>,
}

/// Bytes shared between a column's page writer (inside its column
/// writer) and the encoder, which takes them when the row group closes.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // A panic while holding it leaves whole writes only.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Write for Shared {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A page writer that keeps a column's compressed pages in memory, each
/// column apart, until the row group is closed and the chunks are
/// appended to the file one after another. Offsets in its specs count
/// from the chunk's start, as [`SerializedRowGroupWriter::append_column`]
/// expects.
struct ChunkPages {
    sink: TrackedWrite<Shared>,
}

impl PageWriter for ChunkPages {
    fn write_page(&mut self, page: CompressedPage) -> parquet::errors::Result<PageWriteSpec> {
        // The serializer holds nothing but the sink between pages.
        SerializedPageWriter::new(&mut self.sink).write_page(page)
    }

    fn close(&mut self) -> parquet::errors::Result<()> {
        Ok(self.sink.flush()?)
    }
}

/// A column being written: its writer and the pages it produced.
struct Chunk {
    writer: ColumnWriter<'static>,
    pages: Shared,
}

/// Encodes rows into a Parquet object and hands out its bytes a row group
/// at a time.
///
/// Each column is encoded and compressed as rows arrive, into pages kept
/// per column; when the pages of all columns reach `row_group_bytes` (a
/// part of the upload) the row group is closed: the chunks go to the
/// output one after another. So a row group is about one part, and memory
/// is one row group's compressed pages, the pages being filled (up to
/// 1 MiB per column) and one batch of rows.
pub struct ParquetEncoder {
    zone: String,
    writer: SerializedFileWriter<Vec<u8>>,
    properties: Arc<WriterProperties>,
    buffers: Vec<Buffer>,
    /// Rows gathered for the next batch, and in the row group so far.
    rows: usize,
    group_rows: u64,
    chunks: Vec<Chunk>,
    row_group_bytes: usize,
    pub entries: u64,
    pub raw_bytes: u64,
}

impl ParquetEncoder {
    /// An encoder whose row groups are about `row_group_bytes` each.
    pub fn new(zone: &str, row_group_bytes: usize) -> std::io::Result<Self> {
        let mut properties = WriterProperties::builder()
            .set_compression(Codec::ZSTD(ZstdLevel::try_new(1).map_err(error)?))
            .set_created_by(format!("zonelog {}", env!("CARGO_PKG_VERSION")))
            // A dictionary only where values repeat: a dictionary column's
            // data pages stay in its writer until the row group closes.
            .set_dictionary_enabled(false);
        for c in COLUMNS.iter().filter(|c| c.dictionary) {
            properties = properties.set_column_dictionary_enabled(ColumnPath::from(c.name), true);
        }
        let properties = Arc::new(properties.build());
        let schema = Arc::new(schema().map_err(error)?);
        let writer =
            SerializedFileWriter::new(Vec::new(), schema, properties.clone()).map_err(error)?;
        let buffers = COLUMNS
            .iter()
            .map(|c| Buffer {
                values: match c.kind {
                    Kind::Int32 => Values::Int32(Vec::new()),
                    Kind::UInt64 | Kind::TimeNs => Values::Int64(Vec::new()),
                    Kind::Text | Kind::Json => Values::Bytes(Vec::new()),
                },
                defs: Vec::new(),
            })
            .collect();
        let mut encoder = ParquetEncoder {
            zone: zone.to_string(),
            writer,
            properties,
            buffers,
            rows: 0,
            group_rows: 0,
            chunks: Vec::new(),
            row_group_bytes: row_group_bytes.max(1),
            entries: 0,
            raw_bytes: 0,
        };
        encoder.chunks = encoder.new_chunks();
        Ok(encoder)
    }

    fn new_chunks(&self) -> Vec<Chunk> {
        self.writer
            .schema_descr()
            .columns()
            .iter()
            .map(|descr| {
                let pages = Shared::default();
                let page_writer = ChunkPages {
                    sink: TrackedWrite::new(pages.clone()),
                };
                Chunk {
                    writer: get_column_writer(
                        descr.clone(),
                        self.properties.clone(),
                        Box::new(page_writer),
                    ),
                    pages,
                }
            })
            .collect()
    }

    /// Adds the row of a stored record read in place.
    pub fn push_view(&mut self, id: EntryId, record: &RecordView<'_>) -> std::io::Result<()> {
        let row = Row {
            zone: &self.zone,
            id,
            record,
        };
        for (c, buffer) in COLUMNS.iter().zip(&mut self.buffers) {
            let cell = (c.value)(&row);
            if c.optional {
                buffer.defs.push(i16::from(!matches!(cell, Cell::Null)));
            }
            self.raw_bytes += match (cell, &mut buffer.values) {
                (Cell::Null, _) => 0,
                (Cell::Int(n), Values::Int32(v)) => {
                    v.push(i32::try_from(n).unwrap_or(i32::MAX));
                    4
                }
                (Cell::Int(n), Values::Int64(v)) => {
                    v.push(n);
                    8
                }
                (Cell::Text(s), Values::Bytes(v)) => {
                    v.push(ByteArray::from(s.as_bytes().to_vec()));
                    s.len() as u64
                }
                (Cell::Owned(s), Values::Bytes(v)) => {
                    let len = s.len() as u64;
                    v.push(ByteArray::from(s.into_bytes()));
                    len
                }
                _ => {
                    return Err(std::io::Error::other(format!(
                        "column {}: a value of the wrong kind",
                        c.name
                    )))
                }
            };
        }
        self.rows += 1;
        self.group_rows += 1;
        self.entries += 1;
        if self.rows == WRITE_BATCH {
            self.write_batch()?;
            let pages: usize = self.chunks.iter().map(|c| c.pages.lock().len()).sum();
            if pages >= self.row_group_bytes {
                self.close_row_group()?;
            }
        }
        Ok(())
    }

    /// Hands the gathered rows to the column writers.
    fn write_batch(&mut self) -> std::io::Result<()> {
        for ((c, buffer), chunk) in COLUMNS.iter().zip(&mut self.buffers).zip(&mut self.chunks) {
            let defs = c.optional.then_some(buffer.defs.as_slice());
            match (&mut buffer.values, &mut chunk.writer) {
                (Values::Int32(v), ColumnWriter::Int32ColumnWriter(w)) => {
                    w.write_batch(v, defs, None)?;
                    v.clear();
                }
                (Values::Int64(v), ColumnWriter::Int64ColumnWriter(w)) => {
                    w.write_batch(v, defs, None)?;
                    v.clear();
                }
                (Values::Bytes(v), ColumnWriter::ByteArrayColumnWriter(w)) => {
                    w.write_batch(v, defs, None)?;
                    v.clear();
                }
                _ => {
                    return Err(std::io::Error::other(format!(
                        "column {}: its writer is of another kind",
                        c.name
                    )))
                }
            }
            buffer.defs.clear();
        }
        self.rows = 0;
        Ok(())
    }

    /// Ends the row group: every column's chunk goes to the output.
    fn close_row_group(&mut self) -> std::io::Result<()> {
        self.write_batch()?;
        let fresh = self.new_chunks();
        let chunks = std::mem::replace(&mut self.chunks, fresh);
        let mut group = self.writer.next_row_group().map_err(error)?;
        for chunk in chunks {
            let closed = chunk.writer.close().map_err(error)?;
            let pages = Bytes::from(std::mem::take(&mut *chunk.pages.lock()));
            group.append_column(&pages, closed).map_err(error)?;
        }
        group.close().map_err(error)?;
        self.writer.flush()?;
        self.group_rows = 0;
        Ok(())
    }

    /// The bytes produced so far, handed over.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(self.writer.inner_mut())
    }

    pub fn buffered(&self) -> usize {
        self.writer.inner().len()
    }

    /// Writes the last row group and the footer; returns the remaining
    /// bytes. An object of no rows has no row group.
    pub fn finish(mut self) -> std::io::Result<Vec<u8>> {
        if self.group_rows > 0 {
            self.close_row_group()?;
        }
        self.writer.into_inner().map_err(error)
    }
}

/// Rows decoded at a time from each column of a row group.
const READ_BATCH: usize = 1024;

/// Reads the records of a Parquet log object from `file`, in order, and
/// hands each to `each` until it returns false. An object whose columns
/// are not [`COLUMNS`] (another record version) is refused.
pub fn read_records(
    file: std::fs::File,
    mut each: impl FnMut(LogRecord) -> bool,
) -> Result<(), String> {
    let reader = SerializedFileReader::new(file).map_err(|e| e.to_string())?;
    let metadata = reader.metadata();
    let found: Vec<&str> = metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name())
        .collect();
    let want: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
    if found != want {
        return Err(format!(
            "its columns are {found:?}, not this zonelog's {want:?}"
        ));
    }
    for group in 0..metadata.num_row_groups() {
        let group = reader.get_row_group(group).map_err(|e| e.to_string())?;
        let mut columns = Vec::with_capacity(COLUMNS.len());
        for i in 0..COLUMNS.len() {
            columns.push(group.get_column_reader(i).map_err(|e| e.to_string())?);
        }
        loop {
            let mut batch: Vec<serde_json::Map<String, serde_json::Value>> = Vec::new();
            for (c, reader) in COLUMNS.iter().zip(&mut columns) {
                let cells = read_batch(c, reader).map_err(|e| format!("column {}: {e}", c.name))?;
                if batch.is_empty() {
                    batch.resize_with(cells.len(), serde_json::Map::new);
                }
                if cells.len() != batch.len() {
                    return Err(format!("column {} has another row count", c.name));
                }
                for (row, cell) in batch.iter_mut().zip(cells) {
                    row.insert(c.name.to_string(), cell);
                }
            }
            if batch.is_empty() {
                break;
            }
            for row in batch {
                let record: LogRecord = serde_json::from_value(serde_json::Value::Object(row))
                    .map_err(|e| e.to_string())?;
                if !each(record) {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// The next batch of one column's values as JSON values (null for a
/// missing optional value).
fn read_batch(c: &Column, reader: &mut ColumnReader) -> Result<Vec<serde_json::Value>, String> {
    use serde_json::Value;
    let mut defs = Vec::new();
    let defs_arg = c.optional.then_some(&mut defs);
    let (rows, values): (usize, Vec<Value>) = match (c.kind, reader) {
        (Kind::Int32, ColumnReader::Int32ColumnReader(r)) => {
            let mut v = Vec::new();
            let (rows, _, _) = r
                .read_records(READ_BATCH, defs_arg, None, &mut v)
                .map_err(|e| e.to_string())?;
            (rows, v.into_iter().map(Value::from).collect())
        }
        (Kind::UInt64 | Kind::TimeNs, ColumnReader::Int64ColumnReader(r)) => {
            let mut v = Vec::new();
            let (rows, _, _) = r
                .read_records(READ_BATCH, defs_arg, None, &mut v)
                .map_err(|e| e.to_string())?;
            let value = |n: i64| match c.kind {
                Kind::TimeNs => Value::from(crate::record::format_time(
                    &chrono::DateTime::from_timestamp_nanos(n),
                )),
                _ => Value::from(n as u64),
            };
            (rows, v.into_iter().map(value).collect())
        }
        (Kind::Text | Kind::Json, ColumnReader::ByteArrayColumnReader(r)) => {
            let mut v: Vec<ByteArray> = Vec::new();
            let (rows, _, _) = r
                .read_records(READ_BATCH, defs_arg, None, &mut v)
                .map_err(|e| e.to_string())?;
            let mut out = Vec::with_capacity(v.len());
            for bytes in v {
                let text = std::str::from_utf8(bytes.data()).map_err(|e| e.to_string())?;
                out.push(match c.kind {
                    Kind::Json => serde_json::from_str(text).map_err(|e| e.to_string())?,
                    _ => Value::from(text),
                });
            }
            (rows, out)
        }
        _ => return Err("not of the kind this zonelog writes".into()),
    };
    if !c.optional {
        if values.len() != rows {
            return Err("fewer values than rows".into());
        }
        return Ok(values);
    }
    if defs.len() != rows {
        return Err("fewer definition levels than rows".into());
    }
    let mut values = values.into_iter();
    defs.iter()
        .map(|&d| match d {
            0 => Ok(Value::Null),
            _ => values
                .next()
                .ok_or_else(|| "fewer values than levels".to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::conformance::record;
    use crate::logs::format::encode_line;
    use crate::record::{ChangeRecord, Op};

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
