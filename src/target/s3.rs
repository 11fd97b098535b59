//! A log target in an S3 bucket (any S3 endpoint, path-style), through the
//! one S3 client (`crate::s3`).

use async_trait::async_trait;
use bytes::Bytes;

use super::store::{Head, LogStore, PartUpload, Reader, StoreError};
use crate::s3::{Level, ListedObject, MultipartWriter, ObjectInfo, S3};

/// Parts uploading at once: steady throughput, memory of a few parts.
const PARTS_IN_FLIGHT: usize = 2;

pub struct S3Store {
    pub(super) s3: S3,
    pub(super) bucket: String,
}

#[async_trait]
impl LogStore for S3Store {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        self.s3
            .put_bytes(&self.bucket, key, &ObjectInfo::default(), bytes)
            .await?;
        Ok(())
    }

    async fn read(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        Ok(self.s3.get_small(&self.bucket, key).await?)
    }

    async fn open(&self, key: &str) -> Result<Option<Reader>, StoreError> {
        let Some((_, body)) = self.s3.get(&self.bucket, key, None).await? else {
            return Ok(None);
        };
        Ok(Some(Box::new(Box::pin(body.into_async_read()))))
    }

    async fn head(&self, key: &str) -> Result<Option<Head>, StoreError> {
        Ok(self.s3.head(&self.bucket, key).await?.map(|info| Head {
            size: info.size,
            etag: info.etag.map(|e| crate::s3::bare_etag(&e).to_string()),
        }))
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
    ) -> Result<Vec<ListedObject>, StoreError> {
        Ok(self.s3.list_all(&self.bucket, prefix, after).await?)
    }

    async fn list_level(&self, prefix: &str) -> Result<Level, StoreError> {
        Ok(self.s3.list_level(&self.bucket, prefix).await?)
    }

    async fn start_upload(&self, key: &str) -> Result<Box<dyn PartUpload>, StoreError> {
        let writer =
            MultipartWriter::start(&self.s3, &self.bucket, key, None, PARTS_IN_FLIGHT).await?;
        Ok(Box::new(writer))
    }

    async fn abort_upload(&self, key: &str, id: &str) -> Result<(), StoreError> {
        Ok(self.s3.abort_multipart(&self.bucket, key, id).await?)
    }

    async fn make_durable(&self, _keys: &[String]) -> Result<(), StoreError> {
        Ok(())
    }

    fn checks_etag(&self) -> bool {
        true
    }
}

#[async_trait]
impl PartUpload for MultipartWriter {
    fn id(&self) -> Option<&str> {
        Some(MultipartWriter::id(self))
    }

    async fn send(&mut self, part: Bytes) -> Result<(), StoreError> {
        Ok(MultipartWriter::send(self, part).await?)
    }

    async fn finish(self: Box<Self>) -> Result<(), StoreError> {
        Ok(MultipartWriter::finish(*self).await?)
    }

    async fn abort(self: Box<Self>) -> Result<(), StoreError> {
        Ok(MultipartWriter::abort(*self).await?)
    }
}
