//! The configuration file (TOML), with `ZONELOG_*` environment overrides.
//!
//! Loading is three steps, so that every error can name the field:
//! 1. parse the file into a TOML tree;
//! 2. lay the environment overrides onto the tree (`ZONELOG_INDEX__SHARDS=32`
//!    sets `index.shards`: sections are joined by a double underscore);
//! 3. deserialize with the field path tracked, then check the values.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::index::{IndexLayout, IndexMode, MAX_SHARDS};

mod env;
mod secret;

pub use secret::Secret;

use env::{apply_env_overrides, deserialize_tracking_path};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("environment variable {var}: {reason}")]
    Env { var: String, reason: String },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Name of the zone: part of every record and of every log object name.
    pub zone: String,
    #[serde(default)]
    pub sources: Sources,
    #[serde(default)]
    pub filter: FilterConfig,
    #[serde(default)]
    pub index: IndexConfig,
    #[serde(default)]
    pub collector: CollectorConfig,
    pub target: Option<TargetConfig>,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// `zonelog backup` and `zonelog verify`: copy what the log objects
    /// (read from `[target]`) say changed to a second S3 system.
    pub backup: Option<BackupConfig>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    pub rgw: Option<RgwSourceConfig>,
    pub notify: Option<NotifySourceConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InitialSync {
    /// Start from the logs' current end: only changes from now on.
    #[default]
    Now,
    /// List every matching bucket once, then follow the logs.
    Full,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RgwSourceConfig {
    pub endpoint: Url,
    pub access_key: String,
    pub secret_key: Secret,
    /// SigV4 region; RGW accepts its zonegroup name or any region when it
    /// has one zonegroup.
    #[serde(default = "default_region")]
    pub region: String,
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(default)]
    pub enrich: bool,
    #[serde(default)]
    pub initial: InitialSync,
    #[serde(default)]
    pub trim_source: bool,
    /// How often `trim_source` trims RGW's logs.
    #[serde(default = "default_trim_interval", with = "humantime_serde")]
    pub trim_interval: Duration,
    /// How often the followed buckets are checked against the zone's
    /// bucket list (an idle bucket's removal) and the data log for a trim
    /// past zonelog's position (RGW's autotrim in a realm).
    #[serde(default = "default_check_interval", with = "humantime_serde")]
    pub check_interval: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySourceConfig {
    /// Address of `POST /v1/events`.
    pub listen: SocketAddr,
    /// Required on every request: `Authorization: Bearer`, the password of
    /// basic auth, or `?token=` (RGW 16 cannot send a header).
    pub token: Secret,
    #[serde(default = "default_max_body")]
    pub max_body: ByteSize,
    /// How long a request may take to deliver its body (408 after it), so a
    /// sender that trickles cannot hold its share of the in-flight budget.
    #[serde(default = "default_body_timeout", with = "humantime_serde")]
    pub body_timeout: Duration,
    /// How object keys in events are encoded.
    #[serde(default)]
    pub key_encoding: KeyEncoding,
    /// How many recently accepted notifications are remembered to drop a
    /// redelivered one (stored in the index, bounded).
    #[serde(default = "default_dedup_events")]
    pub dedup_events: usize,
    /// `rgw setup-notifications`: the URL RGW pushes to (without the token);
    /// default `http://<listen>/v1/events`.
    pub push_endpoint: Option<Url>,
    /// `rgw setup-notifications`: the topic's name (also the notification id).
    #[serde(default = "default_topic")]
    pub topic: String,
    /// `rgw setup-notifications`: the RGW and the keys of the buckets'
    /// owner; default: `[sources.rgw]`'s.
    pub rgw: Option<S3EndpointConfig>,
}

/// Whether `s3.object.key` in an event is URL-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum KeyEncoding {
    /// Raw for `eventSource: ceph:s3` (RGW 16 sends keys unencoded),
    /// URL-decoded for everything else (AWS and MinIO encode them).
    #[default]
    Auto,
    /// Always URL-decode (`+` is a space).
    Url,
    /// Never decode.
    Raw,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Exact bucket names.
    #[serde(default)]
    pub buckets: Vec<String>,
    /// Bucket-name prefixes; `""` matches every bucket.
    #[serde(default)]
    pub bucket_prefixes: Vec<String>,
    /// Per bucket: only keys with one of these prefixes.
    #[serde(default)]
    pub key_prefixes: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IndexBackend {
    #[default]
    Embedded,
    Rados,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexConfig {
    #[serde(default)]
    pub backend: IndexBackend,
    /// Directory of the embedded index.
    #[serde(default = "default_index_path")]
    pub path: PathBuf,
    #[serde(default = "default_shards")]
    pub shards: u32,
    #[serde(default = "default_mode")]
    pub mode: IndexMode,
    pub rados: Option<RadosConfig>,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            backend: IndexBackend::default(),
            path: default_index_path(),
            shards: default_shards(),
            mode: default_mode(),
            rados: None,
        }
    }
}

impl IndexConfig {
    pub fn layout(&self) -> IndexLayout {
        IndexLayout {
            shards: self.shards,
            mode: self.mode,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadosConfig {
    #[serde(default = "default_ceph_conf")]
    pub ceph_conf: PathBuf,
    /// Ceph client name without the `client.` prefix.
    #[serde(default = "default_rados_user")]
    pub user: String,
    pub keyring: Option<PathBuf>,
    pub pool: String,
    #[serde(default)]
    pub namespace: String,
    /// librados' timeout for each OSD and monitor call.
    #[serde(default = "default_rados_op_timeout", with = "humantime_serde")]
    pub op_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    #[default]
    Zstd,
}

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
    #[serde(default)]
    pub compression: Compression,
    /// Most changes in one log object; a backlog is split into several.
    #[serde(default = "default_max_entries_per_object")]
    pub max_entries_per_object: u64,
    #[serde(default)]
    pub write_empty_windows: bool,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            period: default_period(),
            cutoff_margin: default_cutoff_margin(),
            lease_duration: default_lease_duration(),
            multipart_threshold: default_multipart_threshold(),
            part_size: default_part_size(),
            compression: Compression::default(),
            max_entries_per_object: default_max_entries_per_object(),
            write_empty_windows: false,
        }
    }
}

/// Where log objects go: an S3 bucket, or a local directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub endpoint: Option<Url>,
    #[serde(default = "default_region")]
    pub region: String,
    pub access_key: Option<String>,
    pub secret_key: Option<Secret>,
    pub bucket: Option<String>,
    #[serde(default)]
    pub prefix: String,
    pub directory: Option<PathBuf>,
}

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

/// An S3 endpoint with keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3EndpointConfig {
    pub endpoint: Url,
    #[serde(default = "default_region")]
    pub region: String,
    pub access_key: String,
    pub secret_key: Secret,
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
    fn validate(&self) -> Result<(), ConfigError> {
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of /metrics, /status, /changes, /healthz and /readyz.
    #[serde(default = "default_http_listen")]
    pub listen: SocketAddr,
    /// Bearer token every endpoint but /healthz then requires (the
    /// endpoints show bucket and key names); required when `listen` is
    /// not a loopback address.
    #[serde(default)]
    pub token: Option<Secret>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_http_listen(),
            token: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl LogConfig {
    /// `level` as a filter: a default level and levels per target
    /// (`info,zonelog::capture=debug`).
    pub fn filter(
        &self,
    ) -> Result<tracing_subscriber::filter::Targets, tracing_subscriber::filter::ParseError> {
        self.level.parse()
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::default(),
            level: default_log_level(),
        }
    }
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_trim_interval() -> Duration {
    Duration::from_secs(60)
}
pub fn default_check_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_concurrency() -> usize {
    4
}
fn default_max_body() -> ByteSize {
    ByteSize::mib(8)
}
fn default_body_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_dedup_events() -> usize {
    262_144
}
fn default_topic() -> String {
    "zonelog".into()
}
fn default_index_path() -> PathBuf {
    PathBuf::from("/var/lib/zonelog/index")
}
fn default_shards() -> u32 {
    64
}
fn default_mode() -> IndexMode {
    IndexMode::EveryWrite
}
fn default_ceph_conf() -> PathBuf {
    PathBuf::from("/etc/ceph/ceph.conf")
}
fn default_rados_op_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_rados_user() -> String {
    "admin".into()
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
fn default_part_size() -> ByteSize {
    ByteSize::mib(16)
}
fn default_max_entries_per_object() -> u64 {
    1_000_000
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
fn default_http_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}
fn default_log_level() -> String {
    "info".into()
}

/// S3's smallest allowed multipart part (except the last).
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's largest allowed part.
const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

impl Config {
    /// Reads, overrides from the process environment, and validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml_with_env(&text, &path.display().to_string(), std::env::vars())
    }

    /// Parses `text` (named `origin` in errors), lays `env` over it, validates.
    pub fn from_toml_with_env(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: origin.to_string(),
                    message: e.to_string().trim().replace('\n', " "),
                })?;
        let overrides = apply_env_overrides(&mut tree, env)?;
        let config = deserialize_tracking_path(tree, &overrides)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot: ranges, required combinations, and
    /// filters that could never match.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_name("zone", &self.zone)?;
        if let Err(e) = self.log.filter() {
            return Err(invalid(
                "log.level",
                format!(
                    "{:?} is not a log filter ({e}); write LEVEL or TARGET=LEVEL, comma-separated, e.g. \"info,zonelog=debug\"",
                    self.log.level
                ),
            ));
        }
        let http_token = self.http.token.as_ref().filter(|t| !t.is_empty());
        if http_token.is_none() && !self.http.listen.ip().is_loopback() {
            return Err(invalid(
                "http.token",
                format!(
                    "required when http.listen ({}) is not a loopback address: /changes and /status show bucket and key names",
                    self.http.listen
                ),
            ));
        }
        if self.sources.rgw.is_none() && self.sources.notify.is_none() && self.backup.is_none() {
            return Err(invalid(
                "sources",
                "no capture source is configured; add [sources.rgw] or [sources.notify] (or only [backup] on a machine that just runs `zonelog backup`)",
            ));
        }
        if let Some(rgw) = &self.sources.rgw {
            validate_http_url("sources.rgw.endpoint", &rgw.endpoint)?;
            require_credentials("sources.rgw", Some(&rgw.access_key), Some(&rgw.secret_key))?;
            positive("sources.rgw.poll_interval", rgw.poll_interval)?;
            positive("sources.rgw.trim_interval", rgw.trim_interval)?;
            positive("sources.rgw.check_interval", rgw.check_interval)?;
            if rgw.concurrency == 0 || rgw.concurrency > 256 {
                return Err(invalid(
                    "sources.rgw.concurrency",
                    format!("must be 1 to 256, not {}", rgw.concurrency),
                ));
            }
        }
        if let Some(notify) = &self.sources.notify {
            if notify.token.is_empty() {
                return Err(invalid(
                    "sources.notify.token",
                    "is empty; the receiver refuses to run without a token",
                ));
            }
            if notify.body_timeout.is_zero() || notify.body_timeout > Duration::from_secs(3600) {
                return Err(invalid(
                    "sources.notify.body_timeout",
                    format!(
                        "{} must be more than 0 and at most 1h",
                        humantime::format_duration(notify.body_timeout)
                    ),
                ));
            }
            if notify.max_body.as_u64() < 1024 {
                return Err(invalid(
                    "sources.notify.max_body",
                    format!("{} is too small for one notification", notify.max_body),
                ));
            }
            if notify.max_body.as_u64() > 1 << 30 {
                return Err(invalid(
                    "sources.notify.max_body",
                    format!(
                        "{} is more than 1 GiB; a request is held in memory",
                        notify.max_body
                    ),
                ));
            }
            if notify.dedup_events < 16_384 || notify.dedup_events > 16_777_216 {
                return Err(invalid(
                    "sources.notify.dedup_events",
                    format!("must be 16384 to 16777216, not {}", notify.dedup_events),
                ));
            }
            if let Some(url) = &notify.push_endpoint {
                validate_http_url("sources.notify.push_endpoint", url)?;
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(invalid(
                        "sources.notify.push_endpoint",
                        "must not contain user:password (setup-notifications adds the token)",
                    ));
                }
            }
            validate_name("sources.notify.topic", &notify.topic)?;
            if let Some(rgw) = &notify.rgw {
                validate_http_url("sources.notify.rgw.endpoint", &rgw.endpoint)?;
                require_credentials(
                    "sources.notify.rgw",
                    Some(&rgw.access_key),
                    Some(&rgw.secret_key),
                )?;
            }
        }
        self.validate_filter()?;
        self.validate_index()?;
        self.validate_collector()?;
        if let Some(backup) = &self.backup {
            if self.target.is_none() {
                return Err(invalid(
                    "target",
                    "[backup] reads the log objects from [target]; add the collector's [target] section",
                ));
            }
            backup.validate()?;
        }
        if let Some(target) = &self.target {
            target.validate()?;
        }
        Ok(())
    }

    fn validate_filter(&self) -> Result<(), ConfigError> {
        let f = &self.filter;
        // A machine that only runs `zonelog backup` captures nothing, so an
        // empty filter is fine there.
        let captures = self.sources.rgw.is_some() || self.sources.notify.is_some();
        if captures && f.buckets.is_empty() && f.bucket_prefixes.is_empty() {
            return Err(invalid(
                "filter",
                "no buckets and no bucket_prefixes: nothing would be captured; \
                 to capture every bucket set bucket_prefixes = [\"\"]",
            ));
        }
        for (i, bucket) in f.buckets.iter().enumerate() {
            if let Err(reason) = check_bucket_name(bucket) {
                return Err(invalid(
                    format!("filter.buckets[{i}]"),
                    format!("{bucket:?} {reason}"),
                ));
            }
        }
        for (i, prefix) in f.bucket_prefixes.iter().enumerate() {
            if let Some(bad) = prefix.chars().find(|c| !is_bucket_char(*c)) {
                return Err(invalid(
                    format!("filter.bucket_prefixes[{i}]"),
                    format!(
                        "{prefix:?} can never match: {bad:?} cannot occur in a bucket name \
                         (lowercase letters, digits, '.', '-' and '_' only)"
                    ),
                ));
            }
            if prefix.len() > crate::record::MAX_BUCKET_BYTES {
                return Err(invalid(
                    format!("filter.bucket_prefixes[{i}]"),
                    "is longer than any bucket name can be, so it can never match",
                ));
            }
        }
        for (bucket, prefixes) in &f.key_prefixes {
            let field = format!("filter.key_prefixes.{bucket}");
            let covered = f.buckets.iter().any(|b| b == bucket)
                || f.bucket_prefixes
                    .iter()
                    .any(|p| bucket.starts_with(p.as_str()));
            if !covered {
                return Err(invalid(
                    field,
                    format!(
                        "bucket {bucket:?} is not selected by filter.buckets or \
                         filter.bucket_prefixes, so these key prefixes can never match"
                    ),
                ));
            }
            if prefixes.is_empty() {
                return Err(invalid(
                    field,
                    "an empty list would match no key; remove the entry to capture every key",
                ));
            }
            for (i, p) in prefixes.iter().enumerate() {
                if p.len() > crate::record::MAX_KEY_BYTES {
                    return Err(invalid(
                        format!("{field}[{i}]"),
                        "is longer than an object key can be, so it can never match",
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_index(&self) -> Result<(), ConfigError> {
        let index = &self.index;
        if index.shards == 0 || index.shards > MAX_SHARDS {
            return Err(invalid(
                "index.shards",
                format!("must be 1 to {MAX_SHARDS}, not {}", index.shards),
            ));
        }
        match index.backend {
            IndexBackend::Embedded => {
                if index.path.as_os_str().is_empty() {
                    return Err(invalid("index.path", "is empty"));
                }
            }
            IndexBackend::Rados => {
                let Some(rados) = &index.rados else {
                    return Err(invalid(
                        "index.rados",
                        "backend = \"rados\" needs an [index.rados] section with at least `pool`",
                    ));
                };
                if rados.pool.is_empty() {
                    return Err(invalid("index.rados.pool", "is empty"));
                }
                positive("index.rados.op_timeout", rados.op_timeout)?;
                if rados.user.is_empty() || rados.user.starts_with("client.") {
                    return Err(invalid(
                        "index.rados.user",
                        format!(
                            "{:?}: give the client name without \"client.\", e.g. \"zonelog\"",
                            rados.user
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_collector(&self) -> Result<(), ConfigError> {
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

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

impl TargetConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        match (&self.bucket, &self.directory) {
            (Some(_), Some(_)) => Err(invalid(
                "target",
                "set either `bucket` (an S3 target) or `directory` (a local one), not both",
            )),
            (None, None) => Err(invalid(
                "target",
                "set `bucket` (with endpoint and keys) for an S3 target, or `directory`",
            )),
            (None, Some(dir)) => {
                if dir.as_os_str().is_empty() {
                    return Err(invalid("target.directory", "is empty"));
                }
                Ok(())
            }
            (Some(bucket), None) => {
                check_bucket_name(bucket)
                    .map_err(|reason| invalid("target.bucket", format!("{bucket:?} {reason}")))?;
                let Some(endpoint) = &self.endpoint else {
                    return Err(invalid("target.endpoint", "is required for an S3 target"));
                };
                validate_http_url("target.endpoint", endpoint)?;
                require_credentials("target", self.access_key.as_ref(), self.secret_key.as_ref())?;
                if self.prefix.starts_with('/') {
                    return Err(invalid(
                        "target.prefix",
                        format!("{:?} must not start with '/'", self.prefix),
                    ));
                }
                Ok(())
            }
        }
    }
}

fn validate_name(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(invalid(field, "is empty"));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(invalid(
            field,
            format!("{value:?} contains {bad:?}; use letters, digits, '-', '_' and '.' (it becomes part of object names)"),
        ));
    }
    Ok(())
}

fn validate_http_url(field: &str, url: &Url) -> Result<(), ConfigError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(
            field,
            format!("{url} is not an http:// or https:// URL"),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(field, format!("{url} has no host")));
    }
    Ok(())
}

fn require_credentials(
    section: &str,
    access: Option<&String>,
    secret: Option<&Secret>,
) -> Result<(), ConfigError> {
    if access.is_none_or(|a| a.is_empty()) {
        return Err(invalid(
            format!("{section}.access_key"),
            "missing credentials: access_key is not set",
        ));
    }
    if secret.is_none_or(Secret::is_empty) {
        return Err(invalid(
            format!("{section}.secret_key"),
            "missing credentials: secret_key is not set",
        ));
    }
    Ok(())
}

fn positive(field: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(invalid(field, "must be greater than 0"));
    }
    Ok(())
}

fn is_bucket_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')
}

/// RGW's bucket-name rules (relaxed enough for the `_` RGW allows).
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    if name.len() < 3 || name.len() > 63 {
        return Err(format!(
            "must be 3 to 63 characters long, not {}",
            name.len()
        ));
    }
    if let Some(bad) = name.chars().find(|c| !is_bucket_char(*c)) {
        return Err(format!(
            "contains {bad:?}; use lowercase letters, digits, '.', '-' and '_'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
