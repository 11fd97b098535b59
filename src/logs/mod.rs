//! The log-object contract: what the collector writes and what every
//! consumer (`zonelog backup`, `zonelog logs`, the tests) reads.
//!
//! - [`name`]: the log object's name ([`LogObjectName`]), which says its
//!   zone, window, times and compression, and its manifest's name;
//! - [`format`]: the line format (JSON Lines, one change per line) and its
//!   [`Compression`];
//! - [`manifest`]: the manifest beside each log object;
//! - [`reader`]: the one ordered reader of a target's log objects.
//!
//! docs/format.md describes all of it for people outside this code.

pub mod format;
pub mod manifest;
pub mod name;
pub mod reader;

pub use format::{Compression, LogEncoder, LogRecord, RECORD_VERSION};
pub use manifest::Manifest;
pub use name::{Layout, LogObjectName, NameError, NameProblem};
pub use reader::{ListError, LogObject, LogReader, RecordError};
