//! `[http]`: the metrics and status endpoints.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{invalid, Config, ConfigError, Secret};

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

fn default_http_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}

impl Config {
    pub(super) fn validate_http(&self) -> Result<(), ConfigError> {
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
        Ok(())
    }
}
