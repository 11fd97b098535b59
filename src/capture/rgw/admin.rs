//! A SigV4-signed HTTP client for RGW's admin REST API (`/admin/log`,
//! `/admin/metadata`, ...), the API a multisite sync peer uses.
//!
//! RGW authenticates admin calls exactly like S3 calls (SigV4, service `s3`),
//! so one signer serves both; the admin caps of the user decide what it may
//! read. `aws-sigv4` does the signing, `reqwest` the transport.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::Secret;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot reach {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error(
        "{endpoint} refused {what} ({status} {code}): the user needs the admin cap {cap}; \
         add it with `radosgw-admin caps add --uid=USER --caps=\"{cap}\"`"
    )]
    MissingCap {
        endpoint: String,
        what: String,
        status: u16,
        code: String,
        cap: String,
    },
    #[error("{endpoint} refused the credentials for {what} ({status} {code}): check access_key and secret_key")]
    BadCredentials {
        endpoint: String,
        what: String,
        status: u16,
        code: String,
    },
    #[error("{endpoint}: {what} not found ({code})")]
    NotFound {
        endpoint: String,
        what: String,
        code: String,
    },
    #[error("{endpoint} answered {status} to {what}: {body}")]
    Http {
        endpoint: String,
        what: String,
        status: u16,
        body: String,
    },
    #[error("unexpected answer from {endpoint} to {what}: {reason}")]
    Decode {
        endpoint: String,
        what: String,
        reason: String,
    },
    #[error("cannot sign the request for {what}: {reason}")]
    Signing { what: String, reason: String },
    /// An S3 call (a listing, a HEAD, a bucket's notifications), made
    /// through the one S3 client with the same endpoint and keys.
    #[error(transparent)]
    S3(#[from] crate::s3::S3Error),
}

impl AdminError {
    /// Whether trying again later may help (RGW down or overloaded), as
    /// opposed to a configuration problem that needs an operator.
    pub fn is_transient(&self) -> bool {
        match self {
            AdminError::Unreachable { .. } => true,
            AdminError::Http { status, .. } => *status >= 500 || *status == 429,
            AdminError::S3(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// Signs and sends requests to one S3/RGW endpoint with one user's keys.
#[derive(Clone)]
pub struct SignedClient {
    http: reqwest::Client,
    endpoint: Url,
    access_key: String,
    secret_key: Secret,
    region: String,
}

/// A response whose status was a success.
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes::Bytes,
}

impl SignedClient {
    pub fn new(
        endpoint: Url,
        access_key: &str,
        secret_key: Secret,
        region: &str,
    ) -> Result<Self, AdminError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| AdminError::Unreachable {
                endpoint: endpoint.to_string(),
                reason: e.to_string(),
            })?;
        Ok(SignedClient {
            http,
            endpoint,
            access_key: access_key.to_string(),
            secret_key,
            region: region.to_string(),
        })
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// The same endpoint and keys as the one S3 client, for the S3 calls
    /// (this client signs only what S3 has no call for: the admin API,
    /// RGW's topics and its extensions).
    pub fn s3(&self, role: &'static str) -> crate::s3::S3 {
        crate::s3::S3::new(
            role,
            &self.endpoint,
            &self.region,
            &self.access_key,
            self.secret_key.expose(),
        )
    }

    /// Builds the URL for `path` (already percent-encoded) and `query`
    /// (`None` values are flags such as `&info`).
    pub fn url(&self, path: &str, query: &[(&str, Option<&str>)]) -> Url {
        let mut url = self.endpoint.clone();
        url.set_path(path);
        if !query.is_empty() {
            let encoded: Vec<String> = query
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{}={}", encode_query(k), encode_query(v)),
                    None => encode_query(k),
                })
                .collect();
            url.set_query(Some(&encoded.join("&")));
        }
        url
    }

    /// Sends a signed request; `what` names it in errors. Any non-2xx status
    /// becomes a typed error that says which endpoint refused and why.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Vec<u8>,
        what: &str,
    ) -> Result<Reply, AdminError> {
        self.send_with_headers(method, url, &[], body, what).await
    }

    /// Like [`send`](Self::send), with extra headers (such as
    /// `x-amz-copy-source`), which are signed too.
    pub async fn send_with_headers(
        &self,
        method: Method,
        url: Url,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        what: &str,
    ) -> Result<Reply, AdminError> {
        let endpoint = self.endpoint.to_string();
        let signed_headers = self.sign(method.as_str(), url.as_str(), headers, &body, what)?;
        let mut request = self.http.request(method, url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        for (name, value) in &signed_headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| AdminError::Unreachable {
                endpoint: endpoint.clone(),
                reason: error_chain(&e),
            })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| AdminError::Unreachable {
                endpoint: endpoint.clone(),
                reason: error_chain(&e),
            })?;
        if status.is_success() {
            return Ok(Reply {
                status,
                headers,
                body,
            });
        }
        Err(classify_failure(&endpoint, what, status, &body))
    }

    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, Option<&str>)],
        what: &str,
    ) -> Result<T, AdminError> {
        let reply = self
            .send(Method::GET, self.url(path, query), Vec::new(), what)
            .await?;
        serde_json::from_slice(&reply.body).map_err(|e| AdminError::Decode {
            endpoint: self.endpoint.to_string(),
            what: what.to_string(),
            reason: format!(
                "{e}; body starts with {:?}",
                String::from_utf8_lossy(&reply.body[..reply.body.len().min(200)])
            ),
        })
    }

    fn sign(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        what: &str,
    ) -> Result<Vec<(String, String)>, AdminError> {
        let signing_error = |reason: String| AdminError::Signing {
            what: what.to_string(),
            reason,
        };
        let identity: Identity = Credentials::new(
            &self.access_key,
            self.secret_key.expose(),
            None,
            None,
            "zonelog-config",
        )
        .into();
        // S3 signs paths exactly as sent (no double encoding, no
        // normalisation) and wants the payload hash in x-amz-content-sha256.
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| signing_error(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            method,
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| signing_error(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| signing_error(e.to_string()))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
}

/// RFC 3986 unreserved characters stay; everything else is percent-encoded,
/// which is what SigV4 canonicalisation expects.
pub fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Encodes an object key or bucket for a URL path: like [`encode_query`] but
/// keeping `/`.
pub fn encode_path(s: &str) -> String {
    s.split('/').map(encode_query).collect::<Vec<_>>().join("/")
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The admin cap a path needs, to name it when RGW says AccessDenied.
fn cap_for(what: &str) -> Option<&'static str> {
    if what.contains("data log trim") {
        Some("datalog=write")
    } else if what.contains("bucket-index log trim") {
        Some("bilog=write")
    } else if what.contains("data log") {
        Some("datalog=read")
    } else if what.contains("bucket-index log") {
        Some("bilog=read")
    } else if what.contains("metadata") {
        Some("metadata=read")
    } else if what.contains("bucket info") {
        Some("buckets=read")
    } else {
        None
    }
}

fn classify_failure(endpoint: &str, what: &str, status: StatusCode, body: &[u8]) -> AdminError {
    let text = String::from_utf8_lossy(body);
    let code =
        error_code(&text).unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_string());
    let (endpoint, what_s) = (endpoint.to_string(), what.to_string());
    match status {
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => {
            let credential_codes = [
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "RequestTimeTooSkewed",
            ];
            match cap_for(what) {
                Some(cap) if !credential_codes.contains(&code.as_str()) => AdminError::MissingCap {
                    endpoint,
                    what: what_s,
                    status: status.as_u16(),
                    code,
                    cap: cap.to_string(),
                },
                _ => AdminError::BadCredentials {
                    endpoint,
                    what: what_s,
                    status: status.as_u16(),
                    code,
                },
            }
        }
        StatusCode::NOT_FOUND => AdminError::NotFound {
            endpoint,
            what: what_s,
            code,
        },
        _ => AdminError::Http {
            endpoint,
            what: what_s,
            status: status.as_u16(),
            body: text.chars().take(500).collect(),
        },
    }
}

/// RGW answers errors as JSON (`{"Code":...}`) on admin paths and as XML
/// (`<Code>...</Code>`) on S3 paths.
fn error_code(body: &str) -> Option<String> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        if let Some(code) = v.get("Code").and_then(|c| c.as_str()) {
            return Some(code.to_string());
        }
    }
    let start = body.find("<Code>")? + "<Code>".len();
    let end = body[start..].find("</Code>")? + start;
    Some(body[start..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_from_json_and_xml() {
        assert_eq!(
            error_code(r#"{"Code":"AccessDenied","RequestId":"x"}"#).as_deref(),
            Some("AccessDenied")
        );
        assert_eq!(
            error_code("<?xml?><Error><Code>NoSuchBucket</Code></Error>").as_deref(),
            Some("NoSuchBucket")
        );
        assert_eq!(error_code("garbage"), None);
    }

    #[test]
    fn missing_cap_is_named() {
        let e = classify_failure(
            "http://rgw",
            "data log shard 3",
            StatusCode::FORBIDDEN,
            br#"{"Code":"AccessDenied"}"#,
        );
        assert!(e.to_string().contains("datalog=read"), "{e}");
        let e = classify_failure(
            "http://rgw",
            "data log shard 3",
            StatusCode::FORBIDDEN,
            br#"{"Code":"InvalidAccessKeyId"}"#,
        );
        assert!(matches!(e, AdminError::BadCredentials { .. }), "{e}");
    }

    #[test]
    fn query_encoding_is_sigv4_style() {
        assert_eq!(encode_query("a b/c:d~"), "a%20b%2Fc%3Ad~");
        assert_eq!(encode_path("dir/a b"), "dir/a%20b");
    }
}
