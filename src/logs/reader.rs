//! The one reader of log objects in order: `zonelog backup`, `zonelog logs`
//! and any later consumer list, open and decode log objects through it.
//!
//! Order is key order, which the names make time order (see
//! [`super::name`]); a consumer resumes after the last key it finished
//! (its checkpoint). Only keys whose name is a log object's are read: the
//! manifests and anything else beside them are passed over. A log object of
//! any size passes through bounded buffers: its bytes are decompressed and
//! parsed on a blocking thread as they arrive.

use std::io::{BufRead as _, Read};

use tokio::sync::mpsc;
use tokio_util::io::SyncIoBridge;

use super::format::{decompressor, Compression};
use super::name::{LogObjectName, NameError};
use super::LogRecord;
use crate::target::{Reader, Target, TargetError};

/// Records handed from the decoding thread ahead of their consumer.
const RECORDS_QUEUE: usize = 1024;
/// The decompressed bytes read at a time.
const LINE_BUFFER: usize = 256 * 1024;

/// A log object in the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogObject {
    /// Its full key in the target, as listed: what sorts, and what a
    /// checkpoint keeps.
    pub key: String,
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
    pub reason: String,
}

/// Reads the log objects of a target.
#[derive(Clone)]
pub struct LogReader {
    target: Target,
}

impl LogReader {
    pub fn new(target: Target) -> Self {
        LogReader { target }
    }

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

    /// The log objects of `zone` (of every zone with `None`) whose keys
    /// sort after `after`, oldest first.
    pub async fn list(
        &self,
        zone: Option<&str>,
        after: Option<&str>,
    ) -> Result<Vec<LogObject>, TargetError> {
        let dir = match zone {
            Some(zone) => self.target.path(zone),
            None => self.target.prefix().to_string(),
        };
        let prefix = self.target.prefix();
        let mut objects: Vec<LogObject> = self
            .target
            .list(&dir, after)
            .await?
            .into_iter()
            .filter_map(|listed| {
                let name = LogObjectName::from_key(&listed.key, prefix).ok()?;
                Some(LogObject {
                    key: listed.key,
                    name,
                    size: Some(listed.size),
                })
            })
            .collect();
        // Every store lists in key order already; the order is what backup
        // relies on, so it is not left to the store.
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        if let Some(after) = after {
            objects.retain(|o| o.key.as_str() > after);
        }
        Ok(objects)
    }

    /// Opens a log object for reading its bytes as they arrive.
    pub async fn open(&self, object: &LogObject) -> Result<Opened, TargetError> {
        let stream = self.target.open_key(&object.key).await?;
        Ok(Opened {
            compression: object.name.compression,
            raw: SyncIoBridge::new(stream),
        })
    }

    /// Streams a log object's records: decompression and JSON parsing run
    /// on a blocking thread and hand records over a bounded channel. The
    /// stream ends after the first error.
    pub async fn records(
        &self,
        object: &LogObject,
    ) -> Result<impl futures::Stream<Item = Result<LogRecord, RecordError>>, TargetError> {
        let opened = self.open(object).await?;
        let (tx, mut rx) = mpsc::channel::<Result<LogRecord, RecordError>>(RECORDS_QUEUE);
        let object = object.key.clone();
        tokio::task::spawn_blocking(move || {
            let decoded = match opened.decompressed() {
                Ok(d) => d,
                Err(e) => {
                    let _ = tx.blocking_send(Err(RecordError {
                        object,
                        line: 0,
                        reason: e.to_string(),
                    }));
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
                    Ok(_) => serde_json::from_slice::<LogRecord>(&line).map_err(|e| RecordError {
                        object: object.clone(),
                        line: number,
                        reason: e.to_string(),
                    }),
                    Err(e) => Err(RecordError {
                        object: object.clone(),
                        line: number,
                        reason: format!("cannot read: {e}"),
                    }),
                };
                let failed = result.is_err();
                if tx.blocking_send(result).is_err() || failed {
                    return;
                }
            }
        });
        Ok(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}

/// A log object opened for reading: its bytes come from the target as
/// they are read, so read it on a blocking thread.
pub struct Opened {
    compression: Compression,
    raw: SyncIoBridge<Reader>,
}

impl Opened {
    /// The object's lines, decompressed as they are read (blocking).
    pub fn decompressed(self) -> std::io::Result<Box<dyn Read>> {
        decompressor(self.compression, self.raw)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::StreamExt as _;

    use super::*;
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
