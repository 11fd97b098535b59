//! `[target]`: where log objects go.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use url::Url;

use super::{
    check_bucket_name, default_region, invalid, require_credentials, validate_http_url,
    ConfigError, Secret,
};

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

impl TargetConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
