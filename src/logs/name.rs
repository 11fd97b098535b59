//! Log object names (docs/format.md, "Names"), below the target's prefix,
//! in one of two layouts (`[collector] layout`):
//!
//! ```text
//! plain: ZONE/YYYY/MM/DD/HH/<window>_<start>_<end>.jsonl[.zst|.gz]
//! hive:  log_zone=ZONE/log_date=YYYY-MM-DD/log_hour=HH/<window>_<start>_<end>.jsonl[.zst|.gz]
//! ```
//!
//! with the manifest beside each, `<window>_<start>_<end>.manifest.json`.
//! The hive layout's `key=value` folders let query engines (DuckDB,
//! pyarrow, Spark) prune by zone and hour; its column names are not record
//! fields, because a partition column named like a field in the files
//! replaces it (DuckDB) or fails the read (pyarrow's `read_table`).
//!
//! The collector writes these names and every consumer reads them through
//! [`LogObjectName`], so writer and readers cannot drift apart. What the
//! name promises:
//!
//! - the date levels are the window's end (cutoff), UTC, to the hour, and
//!   the window number (12 digits) only grows, so a lexicographic listing
//!   of a zone's folder is chronological, and the collector finds the
//!   newest one by descending the newest date level;
//! - the numbering is one per target and zone whatever the layout: a
//!   target whose zone holds both layouts (the option was switched) is read
//!   in window-number order across both (see [`super::reader`]);
//! - `<start>` and `<end>` are the source time of the window's first change
//!   and the cutoff, `YYYYMMDDTHHMMSS.nnnnnnnnnZ`;
//! - the extension says the format and compression (`.jsonl`,
//!   `.jsonl.gz`, `.jsonl.zst`, `.parquet`): a window resumed after
//!   `format` or `compression` changed is still encoded as its name says.
//!
//! Parsing accepts what earlier zonelog versions and hand-made logs hold:
//! a time's fraction may be shorter or absent (`20261202T000100Z`). Readers
//! therefore keep the key they listed, and use the parsed name only for
//! what it says.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::format::Compression;

/// How log object names are laid out below the target prefix
/// (`[collector] layout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `ZONE/YYYY/MM/DD/HH/…`
    #[default]
    Plain,
    /// `log_zone=ZONE/log_date=YYYY-MM-DD/log_hour=HH/…`
    Hive,
}

/// The hive layout's partition columns.
const HIVE_ZONE: &str = "log_zone=";
const HIVE_DATE: &str = "log_date=";
const HIVE_HOUR: &str = "log_hour=";

impl Layout {
    /// Both layouts, for readers that look for either.
    pub const ALL: [Layout; 2] = [Layout::Plain, Layout::Hive];

    /// The folder of a zone's log objects below the target prefix.
    pub fn zone_dir(self, zone: &str) -> String {
        match self {
            Layout::Plain => zone.to_string(),
            Layout::Hive => format!("{HIVE_ZONE}{zone}"),
        }
    }

    /// The folder levels between a zone's folder and its files.
    pub fn date_levels(self) -> usize {
        match self {
            Layout::Plain => 4,
            Layout::Hive => 2,
        }
    }
}

/// What a manifest's name ends with, in place of the log object's
/// extension.
const MANIFEST_SUFFIX: &str = ".manifest.json";

/// The name of one log object below the target's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogObjectName {
    /// The zone (`zone` in the config: letters, digits, `-`, `_`, `.`).
    pub zone: String,
    /// The window number, one more than the window before.
    pub number: u64,
    /// The source time of the window's first change, in ns since 1970.
    pub start_ns: u64,
    /// The window's end (exclusive), in ns since 1970.
    pub cutoff_ns: u64,
    /// What its bytes are, as its extension says.
    pub format: LogFormat,
    /// Which layout the name follows.
    pub layout: Layout,
}

/// What a log object's bytes are, as its extension says: JSON Lines,
/// possibly compressed, or Parquet (compressed inside, zstd).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON Lines, with this compression.
    Jsonl(Compression),
    /// Parquet.
    Parquet,
}

impl LogFormat {
    /// Every format, for readers that try each extension.
    pub const ALL: [LogFormat; 4] = [
        LogFormat::Jsonl(Compression::None),
        LogFormat::Jsonl(Compression::Gzip),
        LogFormat::Jsonl(Compression::Zstd),
        LogFormat::Parquet,
    ];

    /// The extension of a log object's name (without the dot).
    pub fn extension(self) -> &'static str {
        match self {
            LogFormat::Jsonl(compression) => compression.extension(),
            LogFormat::Parquet => "parquet",
        }
    }
}

/// Why a name is not a log object's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    /// No log object extension.
    #[error("it has no log object extension (.jsonl, .jsonl.gz, .jsonl.zst, .parquet)")]
    Extension,
    /// Neither layout's folders.
    #[error("it is not ZONE/YYYY/MM/DD/HH/<window>_<start>_<end> nor log_zone=ZONE/log_date=YYYY-MM-DD/log_hour=HH/<window>_<start>_<end>")]
    Layout,
    /// The window number is not one.
    #[error("its window number is not decimal digits that fit 64 bits")]
    Number,
    /// The start or end is not a time.
    #[error("its start or end is not a time YYYYMMDDTHHMMSS[.fraction]Z from 1970 on")]
    Time,
    /// The folders do not name the end's hour.
    #[error("its date levels are not its end's UTC hour")]
    DateLevels,
    /// Not below the target prefix.
    #[error("it is not below the target prefix")]
    Prefix,
}

/// A name that is not a log object's, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a log object name: {problem}")]
pub struct NameError {
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub problem: NameProblem,
}

impl LogObjectName {
    /// The name of a full target key, below the target's `prefix` (empty
    /// for none).
    pub fn from_key(key: &str, prefix: &str) -> Result<Self, NameError> {
        if prefix.is_empty() {
            return key.parse();
        }
        match key.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) {
            Some(name) => name.parse(),
            None => Err(NameError {
                name: key.to_string(),
                problem: NameProblem::Prefix,
            }),
        }
    }

    /// The source time of the window's first change.
    pub fn start(&self) -> DateTime<Utc> {
        time_of(self.start_ns)
    }

    /// The window's end.
    pub fn cutoff(&self) -> DateTime<Utc> {
        time_of(self.cutoff_ns)
    }

    /// The name of the manifest beside this log object.
    pub fn manifest_name(&self) -> String {
        format!("{}{MANIFEST_SUFFIX}", Stem(self))
    }
}

/// The name without its extension.
struct Stem<'a>(&'a LogObjectName);

impl fmt::Display for Stem<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.0;
        let end = name.cutoff();
        let (year, month, day, hour) = (end.year(), end.month(), end.day(), end.hour());
        let zone = name.layout.zone_dir(&name.zone);
        match name.layout {
            Layout::Plain => write!(f, "{zone}/{year:04}/{month:02}/{day:02}/{hour:02}/")?,
            Layout::Hive => write!(
                f,
                "{zone}/{HIVE_DATE}{year:04}-{month:02}-{day:02}/{HIVE_HOUR}{hour:02}/"
            )?,
        }
        write!(
            f,
            "{:012}_{}_{}",
            name.number,
            compact_time(name.start_ns),
            compact_time(name.cutoff_ns),
        )
    }
}

impl fmt::Display for LogObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", Stem(self), self.format.extension())
    }
}

impl FromStr for LogObjectName {
    type Err = NameError;

    fn from_str(name: &str) -> Result<Self, NameError> {
        let error = |problem| NameError {
            name: name.to_string(),
            problem,
        };
        let (stem, format) = LogFormat::ALL
            .into_iter()
            .find_map(|f| {
                let stem = name.strip_suffix(f.extension())?.strip_suffix('.')?;
                Some((stem, f))
            })
            .ok_or(error(NameProblem::Extension))?;
        let levels: Vec<&str> = stem.split('/').collect();
        let (layout, zone, dates, file) = match levels[..] {
            [zone, year, month, day, hour, file] => {
                (Layout::Plain, zone, [year, month, day, hour], file)
            }
            [zone, date, hour, file] => {
                let zone = zone
                    .strip_prefix(HIVE_ZONE)
                    .ok_or(error(NameProblem::Layout))?;
                let date = date
                    .strip_prefix(HIVE_DATE)
                    .ok_or(error(NameProblem::Layout))?;
                let hour = hour
                    .strip_prefix(HIVE_HOUR)
                    .ok_or(error(NameProblem::Layout))?;
                // Split only where the layout puts a `-`: a malformed date
                // is then told by the date check below.
                let b = date.as_bytes();
                if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
                    return Err(error(NameProblem::DateLevels));
                }
                // ASCII `-` at 4 and 7, so these are character boundaries.
                let (year, month, day) = (&date[..4], &date[5..7], &date[8..]);
                (Layout::Hive, zone, [year, month, day, hour], file)
            }
            _ => return Err(error(NameProblem::Layout)),
        };
        let parts: Vec<&str> = file.split('_').collect();
        let [number, start, end] = parts[..] else {
            return Err(error(NameProblem::Layout));
        };
        if zone.is_empty() {
            return Err(error(NameProblem::Layout));
        }
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error(NameProblem::Number));
        }
        let number = number.parse().map_err(|_| error(NameProblem::Number))?;
        let start_ns = parse_compact_time(start).ok_or(error(NameProblem::Time))?;
        let cutoff_ns = parse_compact_time(end).ok_or(error(NameProblem::Time))?;
        let parsed = LogObjectName {
            zone: zone.to_string(),
            number,
            start_ns,
            cutoff_ns,
            format,
            layout,
        };
        let at = parsed.cutoff();
        let want = [
            format!("{:04}", at.year()),
            format!("{:02}", at.month()),
            format!("{:02}", at.day()),
            format!("{:02}", at.hour()),
        ];
        if dates != want.each_ref().map(String::as_str) {
            return Err(error(NameProblem::DateLevels));
        }
        Ok(parsed)
    }
}

fn time_of(ns: u64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns.min(i64::MAX as u64) as i64)
}

/// `20261125T104434.123456789Z`: sortable and safe in object names.
fn compact_time(ns: u64) -> String {
    time_of(ns).format("%Y%m%dT%H%M%S%.9fZ").to_string()
}

/// Reads [`compact_time`]'s form back, also with a shorter fraction or
/// none; `None` for anything else and for times before 1970.
fn parse_compact_time(text: &str) -> Option<u64> {
    // ASCII only, so the byte offsets below are character boundaries.
    if !text.is_ascii() {
        return None;
    }
    let text = text.strip_suffix('Z')?;
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let number = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (date, time) = whole.split_once('T')?;
    if date.len() != 8 || time.len() != 6 {
        return None;
    }
    let nanos = match fraction {
        None => 0,
        Some(f) if f.len() <= 9 => number(f)? * 10u32.pow(9 - f.len() as u32),
        Some(_) => return None,
    };
    let at = NaiveDate::from_ymd_opt(
        i32::try_from(number(&date[..4])?).ok()?,
        number(&date[4..6])?,
        number(&date[6..])?,
    )?
    .and_hms_nano_opt(
        number(&time[..2])?,
        number(&time[2..4])?,
        number(&time[4..])?,
        nanos,
    )?
    .and_utc();
    u64::try_from(at.timestamp_nanos_opt()?).ok()
}

#[cfg(test)]
#[path = "name_tests.rs"]
mod tests;
