//! Reading a Parquet log object back into records, a row group and a
//! batch of rows at a time.

use parquet::column::reader::ColumnReader;
use parquet::data_type::ByteArray;
use parquet::file::reader::{FileReader, SerializedFileReader};

use super::{Column, Kind, COLUMNS};
use crate::logs::format::LogRecord;

/// Rows decoded at a time from each column of a row group.
const READ_BATCH: usize = 1024;

/// Reads the records of a Parquet log object from `file`, in order, and
/// hands each to `each` until it returns false. Columns are found by name:
/// one this zonelog does not know (a later record version's) refuses the
/// object, as an unknown field refuses a JSON line; one it knows that the
/// object lacks (an earlier version's) reads as null.
pub fn read_records(
    file: std::fs::File,
    mut each: impl FnMut(LogRecord) -> bool,
) -> Result<(), String> {
    let reader = SerializedFileReader::new(file).map_err(|e| e.to_string())?;
    let metadata = reader.metadata();
    let mut known: Vec<(usize, &Column)> = Vec::new();
    for (at, found) in metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .enumerate()
    {
        let name = found.name();
        let column = COLUMNS
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| format!("it has a column {name:?} this zonelog does not know"))?;
        known.push((at, column));
    }
    for group in 0..metadata.num_row_groups() {
        let group = reader.get_row_group(group).map_err(|e| e.to_string())?;
        let mut columns = Vec::with_capacity(known.len());
        for &(at, column) in &known {
            let reader = group.get_column_reader(at).map_err(|e| e.to_string())?;
            columns.push((column, reader));
        }
        loop {
            let mut batch: Vec<serde_json::Map<String, serde_json::Value>> = Vec::new();
            for (c, reader) in &mut columns {
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
        (Kind::Bool, ColumnReader::BoolColumnReader(r)) => {
            let mut v = Vec::new();
            let (rows, _, _) = r
                .read_records(READ_BATCH, defs_arg, None, &mut v)
                .map_err(|e| e.to_string())?;
            (rows, v.into_iter().map(Value::from).collect())
        }
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
