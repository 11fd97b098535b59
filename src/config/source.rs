//! `[sources.rgw]` and `[sources.notify]`: where changes are captured.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use url::Url;

use super::index::{
    default_ceph_conf, default_rados_op_timeout, default_rados_user, validate_rados_user,
};
use super::{
    default_region, invalid, positive, require_credentials, validate_http_url, validate_name,
    Config, ConfigError, S3EndpointConfig, Secret,
};

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
    /// With `enrich`: also read each put object's tags (one more request
    /// per put).
    #[serde(default)]
    pub enrich_tags: bool,
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
    /// Read-only RADOS access to the zone's log and index pools: a poll
    /// then reads only the logs whose objects changed.
    #[serde(default)]
    pub rados: Option<RgwRadosConfig>,
}

impl RgwSourceConfig {
    /// The pause between polls: with the RADOS probes an idle poll costs
    /// RGW nothing, so it is short.
    pub fn pause(&self) -> Duration {
        self.rados
            .as_ref()
            .map_or(self.poll_interval, |r| r.sweep_interval)
    }
}

/// `[sources.rgw.rados]` (docs/decisions.md, "Capture: which data-log
/// shards changed, seen from RADOS").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RgwRadosConfig {
    #[serde(default = "default_ceph_conf")]
    pub ceph_conf: PathBuf,
    /// Ceph client name without the `client.` prefix.
    #[serde(default = "default_rados_user")]
    pub user: String,
    pub keyring: Option<PathBuf>,
    /// The zone's log pool, where the data log lives.
    #[serde(default = "default_log_pool")]
    pub log_pool: String,
    /// The zone's bucket-index pool (of its default placement).
    #[serde(default = "default_index_pool")]
    pub index_pool: String,
    /// RGW's `rgw_data_log_obj_prefix`.
    #[serde(default = "default_datalog_prefix")]
    pub datalog_prefix: String,
    /// The pause between polls (replaces `poll_interval`).
    #[serde(default = "default_sweep_interval", with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// librados' timeout for each OSD and monitor call.
    #[serde(default = "default_rados_op_timeout", with = "humantime_serde")]
    pub op_timeout: Duration,
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

fn default_log_pool() -> String {
    "default.rgw.log".into()
}
fn default_index_pool() -> String {
    "default.rgw.buckets.index".into()
}
fn default_datalog_prefix() -> String {
    "data_log".into()
}
fn default_sweep_interval() -> Duration {
    Duration::from_secs(1)
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

impl Config {
    pub(super) fn validate_sources(&self) -> Result<(), ConfigError> {
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
            if let Some(rados) = &rgw.rados {
                validate_rados_user("sources.rgw.rados.user", &rados.user)?;
                for (field, pool) in [
                    ("sources.rgw.rados.log_pool", &rados.log_pool),
                    ("sources.rgw.rados.index_pool", &rados.index_pool),
                    ("sources.rgw.rados.datalog_prefix", &rados.datalog_prefix),
                ] {
                    if pool.is_empty() {
                        return Err(invalid(field, "is empty"));
                    }
                }
                positive("sources.rgw.rados.sweep_interval", rados.sweep_interval)?;
                positive("sources.rgw.rados.op_timeout", rados.op_timeout)?;
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
        Ok(())
    }
}
