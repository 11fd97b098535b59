//! The configuration file (TOML), with `ZONELOG_*` environment overrides.
//!
//! Loading is three steps, so that every error can name the field:
//! 1. parse the file into a TOML tree;
//! 2. lay the environment overrides onto the tree (`ZONELOG_INDEX__SHARDS=32`
//!    sets `index.shards`: sections are joined by a double underscore);
//! 3. deserialize with the field path tracked, then check the values.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use url::Url;

mod backup;
mod collector;
mod env;
mod filter;
mod index;
mod secret;
mod target;

pub use backup::{BackupConfig, DeletePolicy, DestinationConfig};
pub use collector::{CollectorConfig, Compression};
pub use filter::FilterConfig;
pub use index::{IndexBackend, IndexConfig, RadosConfig};
pub use secret::Secret;
pub use target::TargetConfig;

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

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
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
