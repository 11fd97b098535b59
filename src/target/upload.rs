//! One log object streamed to the target, with what the target must
//! confirm computed on the way (size, ETag, SHA-256).

use bytes::BytesMut;
use md5::{Digest as _, Md5};
use sha2::Sha256;

use super::store::PartUpload;
use super::{Target, TargetError};

/// What a finished upload wrote, as confirmed by the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub parts: usize,
}

/// One object being streamed to the target.
pub struct Upload {
    target: Target,
    key: String,
    threshold: usize,
    part_size: usize,
    /// Bytes not sent yet: the whole object below the threshold, then the
    /// part being filled.
    pending: BytesMut,
    parts: Option<Box<dyn PartUpload>>,
    size: u64,
    sha256: Sha256,
    part_md5: Md5,
    part_fill: usize,
    part_md5s: Vec<[u8; 16]>,
}

impl Upload {
    pub(super) fn new(target: Target, key: String, threshold: usize, part_size: usize) -> Upload {
        Upload {
            target,
            key,
            threshold: threshold.max(1),
            part_size: part_size.max(1),
            pending: BytesMut::new(),
            parts: None,
            size: 0,
            sha256: Sha256::new(),
            part_md5: Md5::new(),
            part_fill: 0,
            part_md5s: Vec::new(),
        }
    }

    fn error(&self, what: &str, source: super::StoreError) -> TargetError {
        self.target.error(format!("{what} {}", self.key), source)
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), TargetError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.size += bytes.len() as u64;
        sha2::Digest::update(&mut self.sha256, bytes);
        // The part boundaries the upload will have, to predict the ETag.
        let mut rest = bytes;
        while !rest.is_empty() {
            let take = rest.len().min(self.part_size - self.part_fill);
            self.part_md5.update(&rest[..take]);
            self.part_fill += take;
            rest = &rest[take..];
            if self.part_fill == self.part_size {
                let md5 = std::mem::take(&mut self.part_md5).finalize();
                self.part_md5s.push(md5.into());
                self.part_fill = 0;
            }
        }
        if self.parts.is_none() {
            if self.pending.len() + bytes.len() <= self.threshold {
                self.pending.extend_from_slice(bytes);
                return Ok(());
            }
            let started = self.target.store.start_upload(&self.key).await;
            let parts = started.map_err(|e| self.error("start multipart upload of", e))?;
            // Sent from the next write on, so the caller can record the
            // upload's id before its first part: one chunk past the threshold.
            self.parts = Some(parts);
            self.pending.extend_from_slice(bytes);
            return Ok(());
        }
        self.pending.extend_from_slice(bytes);
        self.send_full_parts().await
    }

    async fn send_full_parts(&mut self) -> Result<(), TargetError> {
        while self.pending.len() >= self.part_size {
            let part = self.pending.split_to(self.part_size).freeze();
            self.send(part).await?;
        }
        Ok(())
    }

    async fn send(&mut self, part: bytes::Bytes) -> Result<(), TargetError> {
        let Some(parts) = self.parts.as_mut() else {
            return Err(TargetError::Verify {
                target: self.target.description.clone(),
                object: self.key.clone(),
                reason: "a part was sent before the multipart upload started".into(),
            });
        };
        let sent = parts.send(part).await;
        sent.map_err(|e| self.error("upload part of", e))
    }

    /// The S3 multipart upload this object is being sent as, once it is
    /// one: what to abort if the round does not finish it. Known after the
    /// write that created the upload and before any part is sent (parts
    /// go out from the next write on).
    pub fn upload_id(&self) -> Option<&str> {
        self.parts.as_ref().and_then(|p| p.id())
    }

    /// Completes the object and checks it: size from a HEAD, and on S3 the
    /// ETag against the MD5s of what was sent.
    pub async fn finish(mut self) -> Result<Uploaded, TargetError> {
        let expected_etag;
        let parts;
        if self.parts.is_none() {
            let md5 = Md5::digest(&self.pending);
            expected_etag = hex::encode(md5);
            parts = 1;
            let bytes = std::mem::take(&mut self.pending).freeze();
            let put = self.target.store.put(&self.key, bytes).await;
            put.map_err(|e| self.error("PUT", e))?;
        } else {
            self.send_full_parts().await?;
            if !self.pending.is_empty() {
                let last = std::mem::take(&mut self.pending).freeze();
                self.send(last).await?;
            }
            if self.part_fill > 0 {
                let md5 = std::mem::take(&mut self.part_md5).finalize();
                self.part_md5s.push(md5.into());
            }
            let mut all = Md5::new();
            for md5 in &self.part_md5s {
                all.update(md5);
            }
            parts = self.part_md5s.len();
            expected_etag = format!("{}-{parts}", hex::encode(all.finalize()));
            if let Some(upload) = self.parts.take() {
                let finished = upload.finish().await;
                finished.map_err(|e| self.error("complete multipart upload of", e))?;
            }
        }
        let head = self.target.store.head(&self.key).await;
        let head = head.map_err(|e| self.error("HEAD", e))?;
        let verify = |reason: String| TargetError::Verify {
            target: self.target.description.clone(),
            object: self.key.clone(),
            reason,
        };
        let Some(head) = head else {
            return Err(verify("it is not there after it was written".into()));
        };
        if head.size != self.size {
            return Err(verify(format!(
                "size {} instead of {}",
                head.size, self.size
            )));
        }
        if self.target.store.checks_etag() {
            if let Some(etag) = head.etag.as_deref() {
                // Stores that encrypt or compute ETags otherwise do not give
                // an MD5; only a well-formed MD5 ETag is held to it.
                let md5_like = etag
                    .split('-')
                    .next()
                    .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()));
                if md5_like && etag != expected_etag {
                    return Err(verify(format!("ETag {etag} instead of {expected_etag}")));
                }
            }
        }
        Ok(Uploaded {
            path: self.key.clone(),
            size: self.size,
            sha256: hex::encode(sha2::Digest::finalize(self.sha256)),
            parts,
        })
    }

    /// Gives up an unfinished object (a multipart upload is aborted so the
    /// target does not keep its parts).
    pub async fn abort(mut self) {
        if let Some(parts) = self.parts.take() {
            if let Err(e) = parts.abort().await {
                tracing::warn!(object = %self.key, error = %e, "could not abort a multipart upload");
            }
        }
    }
}
