//! Writing a Parquet log object: rows gathered by column, each column
//! compressed into its own pages, a row group of about one part.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use parquet::basic::{Compression as Codec, ZstdLevel};
use parquet::column::page::{CompressedPage, PageWriteSpec, PageWriter};
use parquet::column::writer::{get_column_writer, ColumnWriter};
use parquet::data_type::ByteArray;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::{SerializedFileWriter, SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnPath;

use super::{error, schema, Cell, Kind, Row, COLUMNS};
use crate::index::codec::RecordView;
use crate::index::EntryId;

/// Rows gathered before they go to the column writers: one `write_batch`
/// per column per batch costs less than one per row.
const WRITE_BATCH: usize = 1024;

/// One column's values of the rows gathered.
enum Values {
    Bool(Vec<bool>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    /// Text values one after another, and where each ends: one buffer
    /// per batch, not one per value.
    Bytes {
        data: Vec<u8>,
        ends: Vec<usize>,
        batch: Vec<ByteArray>,
    },
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
/// from the chunk's start, as `SerializedRowGroupWriter::append_column`
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
    /// Changes encoded so far.
    pub entries: u64,
    /// Bytes of values before encoding and compression.
    pub raw_bytes: u64,
}

impl ParquetEncoder {
    /// An encoder whose row groups are about `row_group_bytes` each.
    pub fn new(zone: &str, row_group_bytes: usize) -> std::io::Result<Self> {
        let mut properties = WriterProperties::builder()
            .set_compression(Codec::ZSTD(ZstdLevel::try_new(1).map_err(error)?))
            .set_created_by(format!("zonelog {}", env!("CARGO_PKG_VERSION")))
            // Min and max per row group, for pruning; page-level ones cost
            // encoding time on every text value for little more pruning.
            .set_statistics_enabled(EnabledStatistics::Chunk)
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
                    Kind::Bool => Values::Bool(Vec::new()),
                    Kind::Int32 => Values::Int32(Vec::new()),
                    Kind::UInt64 | Kind::TimeNs => Values::Int64(Vec::new()),
                    Kind::Text | Kind::Json => Values::Bytes {
                        data: Vec::new(),
                        ends: Vec::new(),
                        batch: Vec::new(),
                    },
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
                (Cell::Bool(b), Values::Bool(v)) => {
                    v.push(b);
                    1
                }
                (Cell::Int(n), Values::Int32(v)) => {
                    v.push(i32::try_from(n).unwrap_or(i32::MAX));
                    4
                }
                (Cell::Int(n), Values::Int64(v)) => {
                    v.push(n);
                    8
                }
                (Cell::Text(s), Values::Bytes { data, ends, .. }) => {
                    data.extend_from_slice(s.as_bytes());
                    ends.push(data.len());
                    s.len() as u64
                }
                (Cell::Owned(s), Values::Bytes { data, ends, .. }) => {
                    data.extend_from_slice(s.as_bytes());
                    ends.push(data.len());
                    s.len() as u64
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
                (Values::Bool(v), ColumnWriter::BoolColumnWriter(w)) => {
                    w.write_batch(v, defs, None)?;
                    v.clear();
                }
                (Values::Int32(v), ColumnWriter::Int32ColumnWriter(w)) => {
                    w.write_batch(v, defs, None)?;
                    v.clear();
                }
                (Values::Int64(v), ColumnWriter::Int64ColumnWriter(w)) => {
                    w.write_batch(v, defs, None)?;
                    v.clear();
                }
                (Values::Bytes { data, ends, batch }, ColumnWriter::ByteArrayColumnWriter(w)) => {
                    let all = Bytes::from(std::mem::take(data));
                    let mut start = 0;
                    for &end in ends.iter() {
                        batch.push(ByteArray::from(all.slice(start..end)));
                        start = end;
                    }
                    w.write_batch(batch, defs, None)?;
                    batch.clear();
                    ends.clear();
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

    /// Bytes held, not yet handed out: what bounds the encoder's memory.
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
