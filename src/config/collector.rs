//! `[collector]`: the windows and uploads of log objects.

use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use super::{invalid, positive, Config, ConfigError, MAX_PART_SIZE, MIN_PART_SIZE};
use crate::logs::{Compression, Layout, LogFormat};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    #[serde(default = "default_period", with = "humantime_serde")]
    pub period: Duration,
    /// How far behind now the window ends, to allow for clock skew between
    /// the source and zonelog.
    #[serde(default = "default_cutoff_margin", with = "humantime_serde")]
    pub cutoff_margin: Duration,
    #[serde(default = "default_lease_duration", with = "humantime_serde")]
    pub lease_duration: Duration,
    #[serde(default = "default_multipart_threshold")]
    pub multipart_threshold: ByteSize,
    #[serde(default = "default_part_size")]
    pub part_size: ByteSize,
    /// `jsonl` (JSON Lines, compressed by `compression`) or `parquet`
    /// (compressed inside with zstd; `compression` does not apply).
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    pub compression: Compression,
    /// How log object names are laid out: `plain` (`ZONE/YYYY/MM/DD/HH/…`)
    /// or `hive` (`log_zone=ZONE/log_date=…/log_hour=HH/…`, for query
    /// engines that prune by folder).
    #[serde(default)]
    pub layout: Layout,
    /// Most changes in one log object; a backlog is split into several.
    #[serde(default = "default_max_entries_per_object")]
    pub max_entries_per_object: u64,
    #[serde(default)]
    pub write_empty_windows: bool,
}

/// The file format of new log objects (`[collector] format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Jsonl,
    Parquet,
}

impl CollectorConfig {
    /// What new log objects are, as their names will say.
    pub fn log_format(&self) -> LogFormat {
        match self.format {
            Format::Jsonl => LogFormat::Jsonl(self.compression),
            Format::Parquet => LogFormat::Parquet,
        }
    }
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            period: default_period(),
            cutoff_margin: default_cutoff_margin(),
            lease_duration: default_lease_duration(),
            multipart_threshold: default_multipart_threshold(),
            part_size: default_part_size(),
            format: Format::default(),
            compression: Compression::default(),
            layout: Layout::default(),
            max_entries_per_object: default_max_entries_per_object(),
            write_empty_windows: false,
        }
    }
}

fn default_period() -> Duration {
    Duration::from_secs(60)
}
fn default_cutoff_margin() -> Duration {
    Duration::from_secs(5)
}
fn default_lease_duration() -> Duration {
    Duration::from_secs(30)
}
fn default_multipart_threshold() -> ByteSize {
    ByteSize::mib(64)
}
pub(super) fn default_part_size() -> ByteSize {
    ByteSize::mib(16)
}
fn default_max_entries_per_object() -> u64 {
    1_000_000
}

impl Config {
    pub(super) fn validate_collector(&self) -> Result<(), ConfigError> {
        let c = &self.collector;
        positive("collector.period", c.period)?;
        positive("collector.lease_duration", c.lease_duration)?;
        if c.lease_duration < Duration::from_secs(2) {
            return Err(invalid(
                "collector.lease_duration",
                "must be at least 2s so it can be renewed before it expires",
            ));
        }
        let part = c.part_size.as_u64();
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part) {
            return Err(invalid(
                "collector.part_size",
                format!(
                    "{} is outside what S3 allows for a part (5 MiB to 5 GiB)",
                    c.part_size
                ),
            ));
        }
        if c.multipart_threshold.as_u64() < part {
            return Err(invalid(
                "collector.multipart_threshold",
                format!(
                    "{} is smaller than part_size {}; it must be at least one part",
                    c.multipart_threshold, c.part_size
                ),
            ));
        }
        if c.max_entries_per_object == 0 {
            return Err(invalid(
                "collector.max_entries_per_object",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
