//! Multipart uploads whose id the caller knows, with a bound on the parts
//! in flight.
//!
//! The collector records an upload's id in its window plan before the
//! first part goes out, so the round that resumes a plan aborts an upload
//! a killed or failed round left at the target (which keeps the parts of
//! an unfinished upload until someone aborts it).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use tokio::task::JoinSet;

use super::{ObjectInfo, S3Error, S3ErrorKind, S3};

impl S3 {
    /// Starts a multipart upload (with the content type and user metadata
    /// of `info`, when given); returns its id.
    pub async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        info: Option<&ObjectInfo>,
    ) -> Result<String, S3Error> {
        let target = format!("{bucket}/{key}");
        self.count();
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .set_content_type(info.and_then(|i| i.content_type.clone()))
            .set_metadata(info.map(|i| i.metadata.clone()))
            .send()
            .await
            .map_err(|e| self.error("create multipart upload", target.clone(), e))?;
        upload.upload_id().map(str::to_string).ok_or_else(|| {
            self.stream_error(
                "create multipart upload",
                target,
                "the answer has no UploadId".into(),
            )
        })
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: i32,
        part: Bytes,
    ) -> Result<CompletedPart, S3Error> {
        self.count();
        let out = self
            .client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(part.len() as i64)
            .body(ByteStream::from(part))
            .send()
            .await
            .map_err(|e| self.error("upload part", format!("{bucket}/{key}"), e))?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(out.e_tag().map(str::to_string))
            .build())
    }

    /// Aborts an upload; one that is gone already (completed or aborted)
    /// is fine.
    pub async fn abort_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), S3Error> {
        self.count();
        match self
            .client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = self.error("abort multipart upload", format!("{bucket}/{key}"), e);
                match err.kind {
                    S3ErrorKind::NotFound => Ok(()),
                    _ => Err(err),
                }
            }
        }
    }

    /// Writes `body` (of `info.size` bytes) with its content type and user
    /// metadata: one PUT up to `threshold`, else a multipart upload with
    /// two parts in memory at most (one being sent, one being filled).
    /// Returns the bytes written.
    pub async fn put_stream(
        &self,
        bucket: &str,
        key: &str,
        info: &ObjectInfo,
        mut body: ByteStream,
        threshold: u64,
        part_size: usize,
    ) -> Result<u64, S3Error> {
        let target = format!("{bucket}/{key}");
        if info.size <= threshold {
            let bytes = body
                .collect()
                .await
                .map_err(|e| self.stream_error("GET body", target.clone(), e.to_string()))?
                .into_bytes();
            return self.put_bytes(bucket, key, info, bytes).await;
        }
        let mut upload = MultipartWriter::start(self, bucket, key, Some(info), 1).await?;
        let mut buffer = BytesMut::with_capacity(part_size);
        let mut written = 0u64;
        let mut finished = false;
        let sent = async {
            while !finished {
                match body.try_next().await {
                    Ok(Some(chunk)) => buffer.extend_from_slice(&chunk),
                    Ok(None) => finished = true,
                    Err(e) => {
                        return Err(self.stream_error("GET body", target.clone(), e.to_string()))
                    }
                }
                while buffer.len() >= part_size || (finished && !buffer.is_empty()) {
                    let part = buffer.split_to(buffer.len().min(part_size)).freeze();
                    written += part.len() as u64;
                    upload.send(part).await?;
                }
            }
            Ok(())
        }
        .await;
        match sent {
            Ok(()) => upload.finish().await.map(|()| written),
            Err(e) => {
                // Best effort: an abandoned upload only costs space until
                // the bucket's lifecycle rule (or this abort) removes it.
                let _ = upload.abort().await;
                Err(e)
            }
        }
    }
}

/// One multipart upload being sent, part by part, with at most
/// `concurrency` parts uploading at once.
pub struct MultipartWriter {
    s3: S3,
    bucket: String,
    key: String,
    id: String,
    concurrency: usize,
    in_flight: JoinSet<Result<CompletedPart, S3Error>>,
    done: Vec<CompletedPart>,
    next_number: i32,
}

impl MultipartWriter {
    pub async fn start(
        s3: &S3,
        bucket: &str,
        key: &str,
        info: Option<&ObjectInfo>,
        concurrency: usize,
    ) -> Result<Self, S3Error> {
        let id = s3.create_multipart(bucket, key, info).await?;
        Ok(MultipartWriter {
            s3: s3.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            id,
            concurrency: concurrency.max(1),
            in_flight: JoinSet::new(),
            done: Vec::new(),
            next_number: 1,
        })
    }

    /// The upload's id: what to abort if this upload is never finished.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Sends the next part, first waiting until fewer than `concurrency`
    /// parts are in flight.
    pub async fn send(&mut self, part: Bytes) -> Result<(), S3Error> {
        while self.in_flight.len() >= self.concurrency {
            self.join_one().await?;
        }
        let number = self.next_number;
        self.next_number += 1;
        let (s3, bucket, key, id) = (
            self.s3.clone(),
            self.bucket.clone(),
            self.key.clone(),
            self.id.clone(),
        );
        self.in_flight
            .spawn(async move { s3.upload_part(&bucket, &key, &id, number, part).await });
        Ok(())
    }

    async fn join_one(&mut self) -> Result<(), S3Error> {
        match self.in_flight.join_next().await {
            None => Ok(()),
            Some(Ok(part)) => {
                self.done.push(part?);
                Ok(())
            }
            Some(Err(e)) => Err(self.s3.stream_error(
                "upload part",
                format!("{}/{}", self.bucket, self.key),
                format!("the part's task ended: {e}"),
            )),
        }
    }

    /// Waits for every part, then completes the upload.
    pub async fn finish(mut self) -> Result<(), S3Error> {
        while !self.in_flight.is_empty() {
            self.join_one().await?;
        }
        let mut parts = std::mem::take(&mut self.done);
        parts.sort_by_key(|p| p.part_number());
        self.s3.count();
        self.s3
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                self.s3.error(
                    "complete multipart upload",
                    format!("{}/{}", self.bucket, self.key),
                    e,
                )
            })?;
        Ok(())
    }

    /// Stops the parts in flight and aborts the upload.
    pub async fn abort(mut self) -> Result<(), S3Error> {
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        self.s3
            .abort_multipart(&self.bucket, &self.key, &self.id)
            .await
    }
}
