//! `[filter]`: which buckets and keys are captured.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{check_bucket_name, invalid, is_bucket_char, Config, ConfigError};

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

impl Config {
    pub(super) fn validate_filter(&self) -> Result<(), ConfigError> {
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
}
