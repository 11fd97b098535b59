//! The log-object contract: what the collector writes and what every
//! consumer (`zonelog backup`, `zonelog logs`, the tests) reads.
//!
//! - [`name`]: the log object's name ([`LogObjectName`]), which says its
//!   zone, window, times and compression, and its manifest's name;
//! - [`format`]: the line format (JSON Lines, one change per line) and its
//!   [`Compression`];
//! - [`parquet`]: the same records as Parquet columns;
//! - [`encoder`]: the encoder of either format the collector streams
//!   through;
//! - [`manifest`]: the manifest beside each log object;
//! - [`reader`]: the one ordered reader of a target's log objects.
//!
//! docs/format.md describes all of it for people outside this code.
#![warn(missing_docs)]

pub mod encoder;
pub mod format;
pub mod manifest;
pub mod name;
pub mod parquet;
pub mod reader;

pub use encoder::ObjectEncoder;
pub use format::{Compression, LogEncoder, LogRecord, RECORD_VERSION};
pub use manifest::Manifest;
pub use name::{Layout, LogFormat, LogObjectName, NameError, NameProblem};
pub use reader::{decode_object, ListError, LogObject, LogReader, RecordError};
