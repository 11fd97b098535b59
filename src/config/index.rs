//! `[index]` and `[index.rados]`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{invalid, positive, Config, ConfigError};
use crate::index::{IndexLayout, IndexMode, MAX_SHARDS};

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

fn default_index_path() -> PathBuf {
    PathBuf::from("/var/lib/zonelog/index")
}
fn default_shards() -> u32 {
    64
}
fn default_mode() -> IndexMode {
    IndexMode::EveryWrite
}
pub(super) fn default_ceph_conf() -> PathBuf {
    PathBuf::from("/etc/ceph/ceph.conf")
}
pub(super) fn default_rados_op_timeout() -> Duration {
    Duration::from_secs(30)
}
pub(super) fn default_rados_user() -> String {
    "admin".into()
}

/// A Ceph client name as librados wants it: without `client.`.
pub(super) fn validate_rados_user(field: &str, user: &str) -> Result<(), ConfigError> {
    if user.is_empty() || user.starts_with("client.") {
        return Err(invalid(
            field,
            format!("{user:?}: give the client name without \"client.\", e.g. \"zonelog\""),
        ));
    }
    Ok(())
}

impl Config {
    pub(super) fn validate_index(&self) -> Result<(), ConfigError> {
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
                validate_rados_user("index.rados.user", &rados.user)?;
            }
        }
        Ok(())
    }
}
