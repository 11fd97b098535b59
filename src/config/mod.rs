//! The configuration file (TOML), with `ZONELOG_*` environment overrides.
//!
//! Loading is three steps, so that every error can name the field:
//! 1. parse the file into a TOML tree;
//! 2. lay the environment overrides onto the tree (`ZONELOG_INDEX__SHARDS=32`
//!    sets `index.shards`: sections are joined by a double underscore);
//! 3. deserialize with the field path tracked, then check the values.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

mod backup;
mod collector;
mod env;
mod filter;
mod http;
mod index;
mod log;
mod secret;
mod source;
mod target;

pub use self::http::HttpConfig;
/// `[collector] compression`: the type lives with the log format.
pub use crate::logs::{Compression, Layout};
pub use backup::{BackupConfig, DeletePolicy, DestinationConfig};
pub use collector::{CollectorConfig, Format};
pub use filter::FilterConfig;
pub use index::{IndexBackend, IndexConfig, RadosConfig};
pub use log::{LogConfig, LogFormat};
pub use secret::Secret;
pub use source::{
    default_check_interval, InitialSync, KeyEncoding, NotifySourceConfig, RgwRadosConfig,
    RgwSourceConfig, Sources,
};
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

// Shared by several sections.

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

fn default_region() -> String {
    "us-east-1".into()
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
        // One section after another, in this order: with several mistakes,
        // the first one found is the one reported.
        validate_name("zone", &self.zone)?;
        self.validate_log()?;
        self.validate_http()?;
        self.validate_sources()?;
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
