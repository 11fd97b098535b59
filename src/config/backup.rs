//! `[backup]`: `zonelog backup` and `zonelog verify`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use url::Url;

use super::collector::default_part_size;
use super::{
    check_bucket_name, default_region, invalid, positive, require_credentials, validate_http_url,
    ConfigError, S3EndpointConfig, Secret, MAX_PART_SIZE, MIN_PART_SIZE,
};

/// What `zonelog backup` does with deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeletePolicy {
    /// The destination mirrors the source: deletes are applied.
    #[default]
    Mirror,
    /// Nothing is ever deleted at the destination.
    Retain,
    /// Every change is kept under `KEY@ID` (docs/backup.md).
    Versions,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    #[serde(default)]
    pub policy: DeletePolicy,
    /// Objects copied at the same time (different keys; one key's changes
    /// are applied in order).
    #[serde(default = "default_backup_parallelism")]
    pub parallelism: usize,
    /// Follow mode: how often to look for new log objects.
    #[serde(default = "default_backup_poll", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Changes applied between two checkpoints.
    #[serde(default = "default_backup_batch")]
    pub batch: usize,
    /// Objects up to this size are copied with one PUT, bigger ones with a
    /// streamed multipart upload.
    #[serde(default = "default_backup_threshold")]
    pub multipart_threshold: ByteSize,
    #[serde(default = "default_part_size")]
    pub part_size: ByteSize,
    /// The zone's S3 endpoint, where changed objects are read.
    pub source: S3EndpointConfig,
    pub destination: DestinationConfig,
}

/// Where backups go: a second S3 system, or a local directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    pub endpoint: Option<Url>,
    #[serde(default = "default_region")]
    pub region: String,
    pub access_key: Option<String>,
    pub secret_key: Option<Secret>,
    pub directory: Option<PathBuf>,
    /// The destination bucket of a source bucket not named in `buckets`;
    /// `{bucket}` stands for the source bucket's name.
    #[serde(default = "default_bucket_template")]
    pub bucket_template: String,
    /// Source bucket → destination bucket.
    #[serde(default)]
    pub buckets: BTreeMap<String, String>,
    /// S3 destination: the bucket that holds the backup's checkpoint.
    pub state_bucket: Option<String>,
}

impl DestinationConfig {
    /// The destination bucket (or directory) of a source bucket.
    pub fn bucket_for(&self, source_bucket: &str) -> String {
        match self.buckets.get(source_bucket) {
            Some(mapped) => mapped.clone(),
            None => self.bucket_template.replace("{bucket}", source_bucket),
        }
    }
}

impl BackupConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.parallelism == 0 || self.parallelism > 256 {
            return Err(invalid(
                "backup.parallelism",
                format!("{} is outside 1..=256", self.parallelism),
            ));
        }
        if self.batch == 0 || self.batch > 100_000 {
            return Err(invalid(
                "backup.batch",
                format!("{} is outside 1..=100000", self.batch),
            ));
        }
        positive("backup.poll_interval", self.poll_interval)?;
        if self.part_size.as_u64() < MIN_PART_SIZE || self.part_size.as_u64() > MAX_PART_SIZE {
            return Err(invalid(
                "backup.part_size",
                format!(
                    "{} is outside S3's part size limits (5 MiB to 5 GiB)",
                    self.part_size
                ),
            ));
        }
        // As for the collector: an object just above the threshold would
        // otherwise go as a one-part multipart upload, whose ETag (`-1`)
        // is not its MD5 and which costs three requests instead of one.
        if self.multipart_threshold.as_u64() < self.part_size.as_u64() {
            return Err(invalid(
                "backup.multipart_threshold",
                format!(
                    "{} is smaller than part_size {}; it must be at least one part",
                    self.multipart_threshold, self.part_size
                ),
            ));
        }
        if self.multipart_threshold.as_u64() > MAX_PART_SIZE {
            return Err(invalid(
                "backup.multipart_threshold",
                format!(
                    "{} is above S3's 5 GiB single-PUT limit",
                    self.multipart_threshold
                ),
            ));
        }
        validate_http_url("backup.source.endpoint", &self.source.endpoint)?;
        require_credentials(
            "backup.source",
            Some(&self.source.access_key),
            Some(&self.source.secret_key),
        )?;
        let dest = &self.destination;
        if !dest.bucket_template.contains("{bucket}") && dest.buckets.is_empty() {
            return Err(invalid(
                "backup.destination.bucket_template",
                format!(
                    "{:?} does not contain {{bucket}}: every source bucket would land in one destination bucket",
                    dest.bucket_template
                ),
            ));
        }
        for (from, to) in &dest.buckets {
            check_bucket_name(to).map_err(|reason| {
                invalid(
                    format!("backup.destination.buckets.{from}"),
                    format!("{to:?} {reason}"),
                )
            })?;
        }
        match (&dest.endpoint, &dest.directory) {
            (Some(_), Some(_)) => Err(invalid(
                "backup.destination",
                "set either `endpoint` (an S3 destination) or `directory`, not both",
            )),
            (None, None) => Err(invalid(
                "backup.destination",
                "set `endpoint` (with keys and state_bucket) for an S3 destination, or `directory`",
            )),
            (None, Some(dir)) => {
                if dir.as_os_str().is_empty() {
                    return Err(invalid("backup.destination.directory", "is empty"));
                }
                Ok(())
            }
            (Some(endpoint), None) => {
                validate_http_url("backup.destination.endpoint", endpoint)?;
                require_credentials(
                    "backup.destination",
                    dest.access_key.as_ref(),
                    dest.secret_key.as_ref(),
                )?;
                let Some(state) = &dest.state_bucket else {
                    return Err(invalid(
                        "backup.destination.state_bucket",
                        "is required for an S3 destination (it holds the checkpoint)",
                    ));
                };
                check_bucket_name(state).map_err(|reason| {
                    invalid(
                        "backup.destination.state_bucket",
                        format!("{state:?} {reason}"),
                    )
                })
            }
        }
    }
}

fn default_backup_parallelism() -> usize {
    8
}
fn default_backup_poll() -> Duration {
    Duration::from_secs(30)
}
fn default_backup_batch() -> usize {
    1000
}
fn default_backup_threshold() -> ByteSize {
    ByteSize::mib(16)
}
fn default_bucket_template() -> String {
    "{bucket}".into()
}
