//! An S3 multipart upload whose id zonelog knows.
//!
//! `object_store`'s `put_multipart` hides the upload id, so an upload left
//! behind by a failed round (the target went away mid-upload, the abort
//! failed too) or by a kill could never be aborted, and the target kept
//! its parts. This starts the upload itself, so the collector can record
//! the id in its window plan before the first part, and hands
//! `WriteMultipart` (which keeps the part boundaries and the bound on
//! parts in flight) an upload that sends its parts under that id.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{MultipartId, MultipartUpload, PutPayload, PutResult, UploadPart};

#[derive(Debug)]
pub(crate) struct KnownUpload {
    store: Arc<AmazonS3>,
    path: Path,
    id: MultipartId,
    /// Part ids by index, filled in as parts finish (in any order).
    parts: Arc<Mutex<Vec<Option<PartId>>>>,
}

impl KnownUpload {
    pub(crate) async fn start(store: Arc<AmazonS3>, path: Path) -> object_store::Result<Self> {
        let id = store.create_multipart(&path).await?;
        Ok(KnownUpload {
            store,
            path,
            id,
            parts: Arc::new(Mutex::new(Vec::new())),
        })
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }
}

#[async_trait]
impl MultipartUpload for KnownUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let index = {
            let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
            parts.push(None);
            parts.len() - 1
        };
        let (store, path, id, parts) = (
            self.store.clone(),
            self.path.clone(),
            self.id.clone(),
            self.parts.clone(),
        );
        Box::pin(async move {
            let part = store.put_part(&path, &id, index, data).await?;
            parts.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(part);
            Ok(())
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let parts: Option<Vec<PartId>> = self
            .parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        let parts = parts.ok_or_else(|| object_store::Error::Generic {
            store: "S3",
            source: "a part of the multipart upload did not finish".into(),
        })?;
        self.store
            .complete_multipart(&self.path, &self.id, parts)
            .await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.store.abort_multipart(&self.path, &self.id).await
    }
}

/// Aborts an upload a failed or killed round left behind; one that is
/// gone already (completed or aborted) is fine.
pub(crate) async fn abort_left_behind(
    store: &AmazonS3,
    path: &Path,
    id: &str,
) -> object_store::Result<()> {
    match store.abort_multipart(path, &id.to_string()).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
