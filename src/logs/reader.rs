//! The one reader of log objects in order: `zonelog backup`, `zonelog logs`
//! and any later consumer list, open and decode log objects through it.
//!
//! Order is the zone's window numbering, which is key order within one
//! layout (see [`super::name`]) and continues across both when a target's
//! zone holds objects of each (`[collector] layout` was switched); a
//! consumer resumes after the last object it finished (its checkpoint, a
//! key of either layout). Two objects of one zone with one window number
//! (the same window in both layouts, copied by hand) are refused rather
//! than read twice. Only keys whose name is a log object's are read: the
//! manifests and anything else beside them are passed over. A log object of
//! any size passes through bounded buffers: its bytes are decompressed and
//! parsed on a blocking thread as they arrive.

use std::io::{BufRead as _, Seek as _, Write};

use tokio::sync::mpsc;
use tokio_util::io::SyncIoBridge;

use super::format::decompressor;
use super::name::{Layout, LogFormat, LogObjectName, NameError};
use super::parquet;
use super::LogRecord;
use crate::target::{Reader, Target, TargetError};

/// Records handed from the decoding thread ahead of their consumer.
const RECORDS_QUEUE: usize = 1024;
/// The decompressed bytes read at a time.
const LINE_BUFFER: usize = 256 * 1024;

/// Where a log object comes in a reading: its zone, its window, then its
/// key (which only breaks ties that [`LogReader::list`] refuses).
fn order(o: &LogObject) -> (&str, u64, &str) {
    (&o.name.zone, o.name.number, &o.key)
}

/// A log object in the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogObject {
    /// Its full key in the target, as listed: what sorts, and what a
    /// checkpoint keeps.
    pub key: String,
    /// Its name, parsed.
    pub name: LogObjectName,
    /// Its size as listed; `None` for one named by a checkpoint.
    pub size: Option<u64>,
}

/// A line of a log object that is not a record.
#[derive(Debug, thiserror::Error)]
#[error("log object {object}, line {line}: {reason}")]
pub struct RecordError {
    /// The log object's key.
    pub object: String,
    /// Counted from 1; 0 when the object could not be decompressed at all.
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// Why the log objects could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The target could not be listed.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// One window number in both layouts.
    #[error("{first} and {second} are both window {number} of zone {zone}: the same window in both layouts; remove one (docs/format.md, \"Layouts\")")]
    SameWindow {
        /// The zone.
        zone: String,
        /// The window number.
        number: u64,
        /// One object's key.
        first: String,
        /// The other's.
        second: String,
    },
}

/// Reads the log objects of a target.
#[derive(Clone)]
pub struct LogReader {
    target: Target,
}

impl LogReader {
    /// A reader of `target`'s log objects.
    pub fn new(target: Target) -> Self {
        LogReader { target }
    }

    /// The target it reads.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The log object with this key (a checkpoint's).
    pub fn object(&self, key: &str) -> Result<LogObject, NameError> {
        Ok(LogObject {
            key: key.to_string(),
            name: LogObjectName::from_key(key, self.target.prefix())?,
            size: None,
        })
    }

    /// The log objects of `zone` (of every zone with `None`) after the
    /// one named `after`, in order: by zone, then window number.
    pub async fn list(
        &self,
        zone: Option<&str>,
        after: Option<&str>,
    ) -> Result<Vec<LogObject>, ListError> {
        let prefix = self.target.prefix();
        // A key that is no log object's name (none is written) orders as
        // a key, as before names were parsed.
        let after_name = after.and_then(|a| LogObjectName::from_key(a, prefix).ok());
        let dirs: Vec<(String, Option<String>)> = match zone {
            Some(zone) => Layout::ALL
                .into_iter()
                .map(|layout| {
                    // Where the listing of this layout's folder may start:
                    // `after` as this layout would name it sorts where it
                    // would be.
                    let start = after_name.as_ref().map(|n| {
                        let same = LogObjectName {
                            layout,
                            ..n.clone()
                        };
                        self.target.path(&same.to_string())
                    });
                    (self.target.path(&layout.zone_dir(zone)), start)
                })
                .collect(),
            None => vec![(prefix.to_string(), None)],
        };
        let mut objects = Vec::new();
        for (dir, start) in dirs {
            let listed = self.target.list(&dir, start.as_deref()).await?;
            objects.extend(listed.into_iter().filter_map(|listed| {
                let name = LogObjectName::from_key(&listed.key, prefix).ok()?;
                Some(LogObject {
                    key: listed.key,
                    name,
                    size: Some(listed.size),
                })
            }));
        }
        objects.sort_by(|a, b| order(a).cmp(&order(b)));
        if let Some(same) = objects
            .windows(2)
            .find(|w| (&w[0].name.zone, w[0].name.number) == (&w[1].name.zone, w[1].name.number))
        {
            return Err(ListError::SameWindow {
                zone: same[0].name.zone.clone(),
                number: same[0].name.number,
                first: same[0].key.clone(),
                second: same[1].key.clone(),
            });
        }
        match (&after_name, after) {
            (Some(name), _) => {
                objects.retain(|o| (&o.name.zone, o.name.number) > (&name.zone, name.number))
            }
            (None, Some(after)) => objects.retain(|o| o.key.as_str() > after),
            (None, None) => {}
        }
        Ok(objects)
    }

    /// Opens a log object for reading its bytes as they arrive.
    pub async fn open(&self, object: &LogObject) -> Result<Opened, TargetError> {
        let stream = self.target.open_key(&object.key).await?;
        Ok(Opened {
            key: object.key.clone(),
            format: object.name.format,
            raw: SyncIoBridge::new(stream),
        })
    }

    /// Streams a log object's records: decoding runs on a blocking thread
    /// and hands records over a bounded channel. The stream ends after the
    /// first error.
    pub async fn records(
        &self,
        object: &LogObject,
    ) -> Result<impl futures::Stream<Item = Result<LogRecord, RecordError>>, TargetError> {
        let opened = self.open(object).await?;
        let (tx, mut rx) = mpsc::channel::<Result<LogRecord, RecordError>>(RECORDS_QUEUE);
        tokio::task::spawn_blocking(move || {
            opened.read_records(|result| tx.blocking_send(result).is_ok());
        });
        Ok(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}

/// A log object opened for reading: its bytes come from the target as
/// they are read, so read it on a blocking thread.
pub struct Opened {
    key: String,
    format: LogFormat,
    raw: SyncIoBridge<Reader>,
}

impl Opened {
    /// Hands the object's records to `each` in order, until it returns
    /// false or after the first error (blocking).
    pub fn read_records(self, mut each: impl FnMut(Result<LogRecord, RecordError>) -> bool) {
        let key = self.key.clone();
        let error = |line: u64, reason: String| RecordError {
            object: key.clone(),
            line,
            reason,
        };
        let compression = match self.format {
            LogFormat::Jsonl(compression) => compression,
            LogFormat::Parquet => {
                let mut number = 0u64;
                let read = self.spooled().map_err(|e| e.to_string()).and_then(|file| {
                    parquet::read_records(file, |record| {
                        number += 1;
                        each(Ok(record))
                    })
                });
                if let Err(reason) = read {
                    each(Err(error(number + 1, reason)));
                }
                return;
            }
        };
        let decoded = match decompressor(compression, self.raw) {
            Ok(d) => d,
            Err(e) => {
                each(Err(error(0, e.to_string())));
                return;
            }
        };
        let mut lines = std::io::BufReader::with_capacity(LINE_BUFFER, decoded);
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            number += 1;
            let result = match lines.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => serde_json::from_slice::<LogRecord>(&line)
                    .map_err(|e| error(number, e.to_string())),
                Err(e) => Err(error(number, format!("cannot read: {e}"))),
            };
            let failed = result.is_err();
            if !each(result) || failed {
                return;
            }
        }
    }

    /// Writes the object's records as JSON lines to `out` (blocking): a
    /// JSON Lines object as stored, decompressed; a Parquet one row by
    /// row, as the same lines.
    pub fn write_lines(self, out: &mut dyn Write) -> std::io::Result<()> {
        let compression = match self.format {
            LogFormat::Jsonl(compression) => compression,
            LogFormat::Parquet => {
                let mut failed = None;
                self.read_records(|result| {
                    let written = result.map_err(std::io::Error::other).and_then(|record| {
                        serde_json::to_writer(&mut *out, &record)?;
                        out.write_all(b"\n")
                    });
                    let ok = written.is_ok();
                    failed = written.err();
                    ok
                });
                return failed.map_or(Ok(()), Err);
            }
        };
        std::io::copy(&mut decompressor(compression, self.raw)?, out)?;
        Ok(())
    }

    /// The object copied to an unnamed local file, for a format whose
    /// reader needs to seek (Parquet's footer comes last); the file goes
    /// when it is closed.
    fn spooled(mut self) -> std::io::Result<std::fs::File> {
        let mut file = tempfile::tempfile()?;
        std::io::copy(&mut self.raw, &mut file)?;
        file.seek(std::io::SeekFrom::Start(0))?;
        Ok(file)
    }
}

/// Decodes a whole (small) log object of either format held in memory;
/// consumers of big ones stream through [`LogReader::records`] instead.
pub fn decode_object(format: LogFormat, bytes: &[u8]) -> Result<Vec<LogRecord>, String> {
    match format {
        LogFormat::Jsonl(compression) => {
            super::format::decode_all(compression, bytes).map_err(|e| e.to_string())
        }
        LogFormat::Parquet => {
            let mut file = tempfile::tempfile().map_err(|e| e.to_string())?;
            file.write_all(bytes)
                .and_then(|()| file.seek(std::io::SeekFrom::Start(0)))
                .map_err(|e| e.to_string())?;
            let mut records = Vec::new();
            parquet::read_records(file, |r| {
                records.push(r);
                true
            })?;
            Ok(records)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::StreamExt as _;

    use super::*;
    use crate::index::EntryId;
    use crate::target::Directory;

    const STEM: &str = "20261202T000000Z_20261202T000100Z";

    fn line(n: u64) -> String {
        format!(
            "{}\n",
            serde_json::json!({
                "v": 2, "id": format!("{n:020}-0000000000000000"), "time": "2026-12-02T00:00:00Z",
                "zone": "z", "bucket": "b", "key": format!("k{n}"), "version_id": null,
                "op": "put", "source": {"type": "test"},
            })
        )
    }

    async fn reader_with(files: &[(&str, String)]) -> (tempfile::TempDir, LogReader) {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, body) in files {
            let path = dir.path().join("pre").join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
            std::fs::write(path, body).expect("write");
        }
        let store = Directory::open(dir.path()).expect("directory store");
        let target = Target::over(Arc::new(store), "pre", "test directory");
        (dir, LogReader::new(target))
    }

    #[tokio::test]
    async fn lists_log_objects_in_key_order_after_a_key() {
        let names = [
            format!("z/2026/12/02/00/000000000002_{STEM}.jsonl"),
            format!("z/2026/12/02/00/000000000001_{STEM}.jsonl"),
            format!("z/2026/12/02/00/000000000001_{STEM}.manifest.json"),
            "z/2026/12/02/00/notes.jsonl".to_string(),
            format!("y/2026/12/02/00/000000000001_{STEM}.jsonl"),
        ];
        let files: Vec<(&str, String)> = names.iter().map(|n| (n.as_str(), line(1))).collect();
        let (_dir, logs) = reader_with(&files).await;
        let keys = |objects: Vec<LogObject>| -> Vec<String> {
            objects.into_iter().map(|o| o.key).collect()
        };
        let all = keys(logs.list(None, None).await.expect("list"));
        assert_eq!(
            all,
            [
                format!("pre/y/2026/12/02/00/000000000001_{STEM}.jsonl"),
                format!("pre/z/2026/12/02/00/000000000001_{STEM}.jsonl"),
                format!("pre/z/2026/12/02/00/000000000002_{STEM}.jsonl"),
            ]
        );
        let after = keys(logs.list(Some("z"), Some(&all[1])).await.expect("list"));
        assert_eq!(after, all[2..]);
        let object = logs.object(&all[2]).expect("a log object's key");
        assert_eq!((object.name.number, object.size), (2, None));
        assert!(logs.object("pre/z/2026/12/02/00/notes.jsonl").is_err());
    }

    #[tokio::test]
    async fn both_layouts_of_a_zone_are_read_in_window_order_once() {
        // Switched plain → hive → plain; the hive folder sorts before the
        // plain one of zone `z` (`l` < `z`), the numbering decides.
        let names = [
            format!("z/2026/12/02/00/000000000001_{STEM}.jsonl.zst"),
            format!("log_zone=z/log_date=2026-12-02/log_hour=00/000000000002_{STEM}.jsonl.zst"),
            format!("log_zone=z/log_date=2026-12-02/log_hour=00/000000000003_{STEM}.jsonl.zst"),
            format!("z/2026/12/02/00/000000000004_{STEM}.jsonl.zst"),
            format!("log_zone=y/log_date=2026-12-02/log_hour=00/000000000009_{STEM}.jsonl.zst"),
        ];
        let files: Vec<(&str, String)> = names.iter().map(|n| (n.as_str(), line(1))).collect();
        let (_dir, logs) = reader_with(&files).await;
        let numbers = |objects: Vec<LogObject>| -> Vec<(String, u64)> {
            objects
                .into_iter()
                .map(|o| (o.name.zone, o.name.number))
                .collect()
        };
        let z = |n: u64| ("z".to_string(), n);
        assert_eq!(
            numbers(logs.list(Some("z"), None).await.expect("list")),
            [z(1), z(2), z(3), z(4)]
        );
        assert_eq!(
            numbers(logs.list(None, None).await.expect("list")),
            [("y".to_string(), 9), z(1), z(2), z(3), z(4)]
        );
        // A checkpoint in either layout resumes after its window.
        for (after, want) in [
            (1, vec![z(2), z(3), z(4)]),
            (2, vec![z(3), z(4)]),
            (4, vec![]),
        ] {
            let key = format!("pre/{}", names[after as usize - 1]);
            let rest = logs.list(Some("z"), Some(&key)).await.expect("list");
            assert_eq!(numbers(rest), want, "after {key}");
        }
    }

    #[tokio::test]
    async fn one_window_in_both_layouts_is_refused() {
        let names = [
            format!("z/2026/12/02/00/000000000001_{STEM}.jsonl"),
            format!("log_zone=z/log_date=2026-12-02/log_hour=00/000000000001_{STEM}.jsonl"),
        ];
        let files: Vec<(&str, String)> = names.iter().map(|n| (n.as_str(), line(1))).collect();
        let (_dir, logs) = reader_with(&files).await;
        let error = logs.list(Some("z"), None).await.expect_err("refused");
        assert!(
            matches!(&error, ListError::SameWindow { number: 1, .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_parquet_object_reads_as_the_same_records_and_lines() {
        use crate::index::codec::RecordView;
        use crate::index::conformance::record;
        use crate::logs::parquet::ParquetEncoder;
        use crate::record::Op;
        let records: Vec<_> = (0..5u64)
            .map(|n| {
                record(
                    "b",
                    &format!("k{n}"),
                    None,
                    Op::Put,
                    1_764_633_600_000_000_000 + n,
                )
            })
            .collect();
        let mut encoder = ParquetEncoder::new("z", 1 << 20).expect("encoder");
        let mut lines = Vec::new();
        for (n, r) in records.iter().enumerate() {
            let id = EntryId::new(1_764_633_600_000_000_000 + n as u64, 1);
            encoder.push_view(id, &RecordView::of(r)).expect("push");
            let entry = crate::index::IndexedEntry {
                shard: 0,
                id,
                record: r.clone(),
            };
            crate::logs::format::encode_line("z", &entry, &mut lines);
        }
        let mut body = encoder.take_output();
        body.extend(encoder.finish().expect("finish"));
        let name =
            format!("log_zone=z/log_date=2026-12-02/log_hour=00/000000000001_{STEM}.parquet");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pre").join(&name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
        std::fs::write(&path, &body).expect("write");
        let store = Directory::open(dir.path()).expect("directory store");
        let logs = LogReader::new(Target::over(Arc::new(store), "pre", "test directory"));
        let objects = logs.list(Some("z"), None).await.expect("list");
        assert_eq!(objects.len(), 1);
        let read: Vec<LogRecord> = logs
            .records(&objects[0])
            .await
            .expect("open")
            .map(|r| r.expect("record"))
            .collect()
            .await;
        let keys: Vec<&str> = read.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["k0", "k1", "k2", "k3", "k4"]);
        let opened = logs.open(&objects[0]).await.expect("open");
        let printed = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            opened.write_lines(&mut out).map(|()| out)
        })
        .await
        .expect("join")
        .expect("lines");
        assert_eq!(
            String::from_utf8(printed),
            String::from_utf8(lines),
            "the JSON lines, byte for byte"
        );
        assert_eq!(
            decode_object(LogFormat::Parquet, &body).expect("decode"),
            read
        );
    }

    #[tokio::test]
    async fn records_stream_in_order_and_stop_at_a_bad_line() {
        let good = format!("z/2026/12/02/00/000000000001_{STEM}.jsonl");
        let bad = format!("z/2026/12/02/00/000000000002_{STEM}.jsonl");
        let (_dir, logs) = reader_with(&[
            (&good, (1..=3).map(line).collect()),
            (&bad, format!("{}not json\n{}", line(4), line(5))),
        ])
        .await;
        let objects = logs.list(Some("z"), None).await.expect("list");
        let read = |object: LogObject| {
            let logs = logs.clone();
            async move {
                let records = logs.records(&object).await.expect("open");
                records.collect::<Vec<_>>().await
            }
        };
        let first = read(objects[0].clone()).await;
        let keys: Vec<String> = first.into_iter().map(|r| r.expect("record").key).collect();
        assert_eq!(keys, ["k1", "k2", "k3"]);
        let second = read(objects[1].clone()).await;
        assert_eq!(second.len(), 2, "the stream ends at the first error");
        assert_eq!(second[0].as_ref().expect("record").key, "k4");
        let error = second[1].as_ref().expect_err("not a record");
        assert_eq!(
            (error.object.as_str(), error.line),
            (objects[1].key.as_str(), 2)
        );
    }
}
