//! [`Secret`]: a configured value that is never printed.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// A value that must never be printed: Debug and Serialize show a
/// placeholder, so a config dump or a log line cannot leak it.
#[derive(Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `given` is this secret, compared by SHA-256 digests in
    /// constant time: the time taken tells neither how much of a guess was
    /// right nor how long the secret is. An empty secret matches nothing.
    pub fn matches(&self, given: &[u8]) -> bool {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        !self.0.is_empty()
            && bool::from(Sha256::digest(given).ct_eq(&Sha256::digest(self.0.as_bytes())))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}
