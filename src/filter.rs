//! Which changes are captured: bucket names, bucket-name prefixes, and
//! optional key prefixes per bucket. Applied before the index, so nothing
//! outside the filter is ever stored.
//!
//! A bucket of an RGW tenant is named `tenant/bucket`, as RGW's data log
//! and metadata name it: only an entry that names the tenant matches it
//! (`"t1/photos"`, or the prefix `"t1/"` for all of tenant t1's buckets),
//! so a prefix meant for the global namespace never picks up a tenant's
//! bucket of a similar name.

use std::collections::BTreeMap;

use crate::config::FilterConfig;

#[derive(Debug, Clone)]
pub struct Filter {
    buckets: Vec<String>,
    bucket_prefixes: Vec<String>,
    key_prefixes: BTreeMap<String, Vec<String>>,
}

impl Filter {
    pub fn new(config: &FilterConfig) -> Self {
        Filter {
            buckets: config.buckets.clone(),
            bucket_prefixes: config.bucket_prefixes.clone(),
            key_prefixes: config.key_prefixes.clone(),
        }
    }

    /// Whether any change in this bucket can be captured: lets capture skip
    /// whole buckets without looking at their logs.
    pub fn matches_bucket(&self, bucket: &str) -> bool {
        self.buckets.iter().any(|b| b == bucket)
            || self
                .bucket_prefixes
                .iter()
                .any(|p| bucket.starts_with(p.as_str()))
    }

    pub fn matches(&self, bucket: &str, key: &str) -> bool {
        self.matches_bucket(bucket) && self.matches_key(bucket, key)
    }

    /// The key-prefix part alone: whether `key` is wanted in `bucket`
    /// given that the bucket is.
    pub fn matches_key(&self, bucket: &str, key: &str) -> bool {
        match self.key_prefixes.get(bucket) {
            Some(prefixes) => prefixes.iter().any(|p| key.starts_with(p.as_str())),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_prefixes_and_key_prefixes() {
        let f = Filter::new(&FilterConfig {
            buckets: vec!["photos".into()],
            bucket_prefixes: vec!["backup-".into()],
            key_prefixes: [("photos".to_string(), vec!["2026/".to_string()])].into(),
        });
        assert!(f.matches("photos", "2026/a.jpg"));
        assert!(!f.matches("photos", "2025/a.jpg"));
        assert!(f.matches("backup-01", "anything"));
        assert!(!f.matches("photosx", "2026/a.jpg"));
        assert!(!f.matches("other", "x"));
        assert!(f.matches_bucket("photos"));
    }

    #[test]
    fn tenant_buckets_match_only_a_tenant_entry() {
        let f = Filter::new(&FilterConfig {
            buckets: vec!["t1/photos".into()],
            bucket_prefixes: vec!["backup-".into(), "t2/".into()],
            key_prefixes: BTreeMap::new(),
        });
        assert!(f.matches_bucket("t1/photos"));
        assert!(!f.matches_bucket("photos"));
        assert!(!f.matches_bucket("t1/backup-01"));
        assert!(f.matches_bucket("t2/anything"));
        assert!(!f.matches_bucket("t3/photos"));
    }
}
