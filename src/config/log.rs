//! `[log]`: zonelog's own log output.

use serde::{Deserialize, Serialize};

use super::{invalid, Config, ConfigError};

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

fn default_log_level() -> String {
    "info".into()
}

impl Config {
    pub(super) fn validate_log(&self) -> Result<(), ConfigError> {
        if let Err(e) = self.log.filter() {
            return Err(invalid(
                "log.level",
                format!(
                    "{:?} is not a log filter ({e}); write LEVEL or TARGET=LEVEL, comma-separated, e.g. \"info,zonelog=debug\"",
                    self.log.level
                ),
            ));
        }
        Ok(())
    }
}
