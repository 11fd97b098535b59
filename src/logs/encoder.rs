//! The encoder of a log object of either format, as the collector streams
//! a window through it: entries in, encoded and compressed bytes out as
//! they are produced.

use super::format::LogEncoder;
use super::name::LogFormat;
use super::parquet::ParquetEncoder;
use crate::index::codec::RecordView;
use crate::index::EntryId;

/// A log object's encoder, for the format the collector writes.
pub enum ObjectEncoder {
    /// JSON Lines, possibly compressed.
    Jsonl(LogEncoder),
    /// Parquet.
    Parquet(ParquetEncoder),
}

impl ObjectEncoder {
    /// An encoder for `format`; a Parquet row group holds about
    /// `row_group_bytes` of raw data.
    pub fn new(zone: &str, format: LogFormat, row_group_bytes: usize) -> std::io::Result<Self> {
        Ok(match format {
            LogFormat::Jsonl(compression) => {
                ObjectEncoder::Jsonl(LogEncoder::new(zone, compression)?)
            }
            LogFormat::Parquet => {
                ObjectEncoder::Parquet(ParquetEncoder::new(zone, row_group_bytes)?)
            }
        })
    }

    /// Adds one change (its index id and stored record).
    pub fn push_view(&mut self, id: EntryId, record: &RecordView<'_>) -> std::io::Result<()> {
        match self {
            ObjectEncoder::Jsonl(e) => e.push_view(id, record),
            ObjectEncoder::Parquet(e) => e.push_view(id, record),
        }
    }

    /// Entries encoded so far.
    pub fn entries(&self) -> u64 {
        match self {
            ObjectEncoder::Jsonl(e) => e.entries,
            ObjectEncoder::Parquet(e) => e.entries,
        }
    }

    /// Encoded bytes not yet taken.
    pub fn buffered(&self) -> usize {
        match self {
            ObjectEncoder::Jsonl(e) => e.buffered(),
            ObjectEncoder::Parquet(e) => e.buffered(),
        }
    }

    /// The encoded bytes ready so far, to upload as a part is filled.
    pub fn take_output(&mut self) -> Vec<u8> {
        match self {
            ObjectEncoder::Jsonl(e) => e.take_output(),
            ObjectEncoder::Parquet(e) => e.take_output(),
        }
    }

    /// Ends the object; returns its last bytes.
    pub fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            ObjectEncoder::Jsonl(e) => e.finish(),
            ObjectEncoder::Parquet(e) => e.finish(),
        }
    }
}
