//! The one S3 client of zonelog, through the AWS SDK: the log target, the
//! backup's source and destination, and `target create-bucket` all speak S3
//! through it (docs/decisions.md, "One S3 client stack").
//!
//! The SDK, because a backup must address every key S3 allows, byte for
//! byte (control characters, empty segments such as `a//b` or `dir/`, `.`
//! and `..` segments), read given versions, copy user metadata, and because
//! the collector must know its multipart uploads' ids to abort one a killed
//! round left behind. Only the RGW admin API, which is not S3, is signed by
//! hand (`capture::rgw::admin`).

mod list;
mod multipart;
mod notification;

pub use list::{Level, ListedObject, ObjectVersion, VersionsPage};
pub use multipart::MultipartWriter;
pub use notification::TopicNotification;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use url::Url;

use crate::config::S3EndpointConfig;

/// Why an S3 call failed, as far as the caller must tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3ErrorKind {
    /// The object or version does not exist (404).
    NotFound,
    /// The bucket does not exist.
    NoSuchBucket,
    /// Wrong keys, signature or permissions (401/403): retrying cannot help.
    Denied,
    /// No answer, a timeout, or a 5xx/503 slow-down: worth retrying.
    Transient,
    /// Anything else the server refused.
    Refused,
    /// The destination cannot hold this object under this key (a name too
    /// long, a file where a directory must be): retrying cannot help, and
    /// the record is set aside so the backup goes on.
    Unstorable,
}

/// What an object must still be for a conditional GET to give it.
#[derive(Debug, Clone)]
pub enum Unchanged {
    /// Its ETag is this (`If-Match`).
    Etag(String),
    /// Not modified after this second (`If-Unmodified-Since`).
    Since(chrono::DateTime<chrono::Utc>),
}

#[derive(Debug, thiserror::Error)]
#[error("{role} {endpoint}: {op} {target} failed: {reason}")]
pub struct S3Error {
    pub role: &'static str,
    pub endpoint: String,
    pub op: &'static str,
    pub target: String,
    pub reason: String,
    pub kind: S3ErrorKind,
}

impl S3Error {
    pub fn is_transient(&self) -> bool {
        self.kind == S3ErrorKind::Transient
    }
}

/// What a GET or HEAD tells about an object.
#[derive(Debug, Clone, Default)]
pub struct ObjectInfo {
    pub size: u64,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub content_type: Option<String>,
    pub metadata: HashMap<String, String>,
    /// `Last-Modified`, whole seconds.
    pub last_modified: Option<chrono::DateTime<chrono::Utc>>,
    /// `x-amz-storage-class`; RGW leaves it out for the default class.
    pub storage_class: Option<String>,
    /// `x-amz-server-side-encryption` (`AES256`, `aws:kms`), or `SSE-C`
    /// when the object is encrypted with a customer-provided key.
    pub encryption: Option<String>,
    /// The algorithm of the additional checksum the object carries, when
    /// the store keeps one (RGW from Tentacle on).
    pub checksum_algorithm: Option<String>,
}

/// A listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub etag: String,
}

/// One S3 endpoint with its keys; `role` ("source", "destination") names it
/// in every error so an operator knows which side refused.
#[derive(Clone)]
pub struct S3 {
    client: aws_sdk_s3::Client,
    role: &'static str,
    endpoint: String,
    requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl S3 {
    pub fn new(role: &'static str, endpoint: &Url, region: &str, access: &str, secret: &str) -> S3 {
        let credentials = Credentials::new(access, secret, None, None, "zonelog-config");
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(endpoint.as_str().trim_end_matches('/'))
            .credentials_provider(credentials)
            .force_path_style(true)
            // RGW before Squid rejects the SDK's default CRC trailers
            // (aws-chunked uploads); MD5/ETag checks stay.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(RetryConfig::standard().with_max_attempts(4))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .read_timeout(Duration::from_secs(120))
                    .build(),
            )
            .build();
        S3 {
            client: aws_sdk_s3::Client::from_conf(config),
            role,
            endpoint: endpoint.as_str().trim_end_matches('/').to_string(),
            requests: Default::default(),
        }
    }

    pub fn from_config(role: &'static str, config: &S3EndpointConfig) -> S3 {
        S3::new(
            role,
            &config.endpoint,
            &config.region,
            &config.access_key,
            config.secret_key.expose(),
        )
    }

    pub fn describe(&self) -> String {
        format!("{} {}", self.role, self.endpoint)
    }

    /// S3 requests sent so far (each page and part counts).
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count(&self) {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn error<E, R>(&self, op: &'static str, target: String, err: SdkError<E, R>) -> S3Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + HttpStatus,
    {
        let status = err.raw_response().map(HttpStatus::status);
        let code = err.code().map(str::to_string);
        let kind = match (&err, status, code.as_deref()) {
            (SdkError::DispatchFailure(_) | SdkError::TimeoutError(_), _, _) => {
                S3ErrorKind::Transient
            }
            (_, _, Some("NoSuchBucket")) => S3ErrorKind::NoSuchBucket,
            (_, Some(404), _) | (_, _, Some("NoSuchKey" | "NoSuchVersion" | "NotFound")) => {
                S3ErrorKind::NotFound
            }
            (_, Some(401 | 403), _) => S3ErrorKind::Denied,
            // RGW's and AWS's answers to a key over 1024 bytes.
            (_, _, Some("InvalidObjectName" | "KeyTooLongError")) => S3ErrorKind::Unstorable,
            (_, Some(s), _) if s >= 500 || s == 429 => S3ErrorKind::Transient,
            (_, None, _) => S3ErrorKind::Transient,
            _ => S3ErrorKind::Refused,
        };
        let reason = match (kind, code, status) {
            (S3ErrorKind::Denied, code, status) => format!(
                "refused (HTTP {}, {}): check the {} access_key/secret_key and the user's permissions",
                status.unwrap_or_default(),
                code.unwrap_or_else(|| "AccessDenied".into()),
                self.role
            ),
            (S3ErrorKind::Transient, None, None) => {
                format!("no answer: {}", DisplayErrorContext(&err))
            }
            (_, code, status) => format!(
                "HTTP {} {}{}",
                status.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                code.unwrap_or_default(),
                err.message().map(|m| format!(": {m}")).unwrap_or_default()
            ),
        };
        S3Error {
            role: self.role,
            endpoint: self.endpoint.clone(),
            op,
            target,
            reason,
            kind,
        }
    }

    fn stream_error(&self, op: &'static str, target: String, reason: String) -> S3Error {
        S3Error {
            role: self.role,
            endpoint: self.endpoint.clone(),
            op,
            target,
            reason,
            kind: S3ErrorKind::Transient,
        }
    }

    /// Opens an object (a given version, or the current one) for reading;
    /// `None` when it no longer exists.
    pub async fn get(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<(ObjectInfo, ByteStream)>, S3Error> {
        self.get_if(bucket, key, version_id, None).await
    }

    /// [`S3::get`], only if the object is still what `unchanged` says;
    /// `None` also when it is not (412).
    pub async fn get_if(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        unchanged: Option<&Unchanged>,
    ) -> Result<Option<(ObjectInfo, ByteStream)>, S3Error> {
        self.count();
        let mut request = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_string));
        match unchanged {
            Some(Unchanged::Etag(etag)) => request = request.if_match(etag),
            Some(Unchanged::Since(time)) => {
                request = request.if_unmodified_since(aws_sdk_s3::primitives::DateTime::from_secs(
                    time.timestamp(),
                ))
            }
            None => {}
        }
        match request.send().await {
            Ok(out) => {
                let info = ObjectInfo {
                    size: out.content_length().unwrap_or_default().max(0) as u64,
                    etag: out.e_tag().map(str::to_string),
                    version_id: out.version_id().map(str::to_string),
                    content_type: out.content_type().map(str::to_string),
                    metadata: out.metadata().cloned().unwrap_or_default(),
                    last_modified: out.last_modified().and_then(utc),
                    storage_class: out.storage_class().map(|c| c.as_str().to_string()),
                    ..ObjectInfo::default()
                };
                Ok(Some((info, out.body)))
            }
            Err(e) => {
                let changed =
                    unchanged.is_some() && e.raw_response().map(HttpStatus::status) == Some(412);
                let err = self.error("GET", format!("{bucket}/{key}"), e);
                if changed || matches!(err.kind, S3ErrorKind::NotFound | S3ErrorKind::NoSuchBucket)
                {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// An object's current state; `None` when it does not exist.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>, S3Error> {
        self.head_version(bucket, key, None).await
    }

    /// A given version's state (or the current one's); `None` when it does
    /// not exist.
    pub async fn head_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectInfo>, S3Error> {
        self.count();
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_string))
            // Without it no store names the object's checksum.
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectInfo {
                size: out.content_length().unwrap_or_default().max(0) as u64,
                etag: out.e_tag().map(str::to_string),
                version_id: out.version_id().map(str::to_string),
                content_type: out.content_type().map(str::to_string),
                metadata: out.metadata().cloned().unwrap_or_default(),
                last_modified: out.last_modified().and_then(utc),
                storage_class: out.storage_class().map(|c| c.as_str().to_string()),
                encryption: match (out.server_side_encryption(), out.sse_customer_algorithm()) {
                    (Some(sse), _) => Some(sse.as_str().to_string()),
                    (None, Some(_)) => Some("SSE-C".to_string()),
                    (None, None) => None,
                },
                checksum_algorithm: [
                    ("CRC32", out.checksum_crc32()),
                    ("CRC32C", out.checksum_crc32_c()),
                    ("CRC64NVME", out.checksum_crc64_nvme()),
                    ("SHA1", out.checksum_sha1()),
                    ("SHA256", out.checksum_sha256()),
                ]
                .into_iter()
                .find(|(_, value)| value.is_some_and(|v| !v.is_empty()))
                .map(|(name, _)| name.to_string()),
            })),
            Err(e) => {
                let err = self.error("HEAD", format!("{bucket}/{key}"), e);
                if err.kind == S3ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// A version's (or the current object's) tags; `None` when it does
    /// not exist.
    pub async fn object_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, S3Error> {
        self.count();
        match self
            .client
            .get_object_tagging()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_string))
            .send()
            .await
        {
            Ok(out) => Ok(Some(
                out.tag_set()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect(),
            )),
            Err(e) => {
                let err = self.error("GET tagging", format!("{bucket}/{key}"), e);
                if err.kind == S3ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    pub async fn put_bytes(
        &self,
        bucket: &str,
        key: &str,
        info: &ObjectInfo,
        bytes: Bytes,
    ) -> Result<u64, S3Error> {
        let len = bytes.len() as u64;
        self.count();
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_length(len as i64)
            .set_content_type(info.content_type.clone())
            .set_metadata(Some(info.metadata.clone()))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.error("PUT", format!("{bucket}/{key}"), e))?;
        Ok(len)
    }

    /// Reads a small object whole (a checkpoint); `None` when absent.
    pub async fn get_small(&self, bucket: &str, key: &str) -> Result<Option<Bytes>, S3Error> {
        let Some((_, body)) = self.get(bucket, key, None).await? else {
            return Ok(None);
        };
        let bytes = body
            .collect()
            .await
            .map_err(|e| self.stream_error("GET body", format!("{bucket}/{key}"), e.to_string()))?
            .into_bytes();
        Ok(Some(bytes))
    }

    /// Deletes an object; deleting an absent one is not an error.
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), S3Error> {
        self.count();
        match self
            .client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = self.error("DELETE", format!("{bucket}/{key}"), e);
                match err.kind {
                    S3ErrorKind::NotFound | S3ErrorKind::NoSuchBucket => Ok(()),
                    _ => Err(err),
                }
            }
        }
    }

    /// Creates a bucket; one that this user already owns is fine.
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        self.count();
        match self.client.create_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
            Err(e) => Err(self.error("create bucket", bucket.to_string(), e)),
        }
    }

    /// The names of the buckets this user owns.
    pub async fn list_buckets(&self) -> Result<Vec<String>, S3Error> {
        self.count();
        let out = self
            .client
            .list_buckets()
            .send()
            .await
            .map_err(|e| self.error("list buckets", String::new(), e))?;
        Ok(out
            .buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_string))
            .collect())
    }
}

/// The HTTP status of the SDK's raw response type.
pub trait HttpStatus {
    fn status(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status(&self) -> u16 {
        aws_sdk_s3::config::http::HttpResponse::status(self).as_u16()
    }
}

/// The SDK's time as chrono's; `None` outside chrono's range.
fn utc(time: &aws_sdk_s3::primitives::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

/// An S3 ETag without its quotes.
pub fn bare_etag(etag: &str) -> &str {
    etag.trim_matches('"')
}

/// Whether an ETag is the MD5 of the content (a single-part upload), so two
/// copies can be compared by it.
pub fn is_md5_etag(etag: &str) -> bool {
    let bare = bare_etag(etag);
    bare.len() == 32 && bare.bytes().all(|b| b.is_ascii_hexdigit())
}
