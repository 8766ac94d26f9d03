//! The engine's side of an operation's `Context`: writes about one running job, each under
//! its run lease.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::Utc;
use uuid::Uuid;

use crate::blobs::Blobs;
use crate::domain::{JobStatus, Level, OutputFile, RunLease};
use crate::operations::{FileDone, FileSink, Host, OpError, Report};
use crate::store::{RunPatch, Store};

/// Host of one run of one job.
pub(crate) struct JobHost {
    pub store: Store,
    pub blobs: Blobs,
    pub lease: RunLease,
    pub input_blob: Option<String>,
    pub saving: AtomicBool,
}

fn storage(e: impl std::fmt::Display) -> OpError {
    OpError::failed("storage", e.to_string())
}

#[async_trait]
impl Host for JobHost {
    async fn report(&self, r: Report) -> Result<(), OpError> {
        if r.saving {
            self.saving.store(true, Ordering::SeqCst);
        }
        let status = if self.saving.load(Ordering::SeqCst) {
            JobStatus::Saving
        } else {
            JobStatus::Processing
        };
        let patch = RunPatch {
            status: Some(status),
            phase: r.phase,
            total_stages: r.stage.map(|s| s.1),
            current_stage: r.stage.map(|s| s.0),
            progress: r.progress,
        };
        match self.store.worker_update(&self.lease, patch).await {
            Ok(true) => Ok(()),
            // The fence no longer holds: the job was cancelled, deleted or taken over.
            Ok(false) => Err(OpError::Cancelled),
            Err(e) => Err(storage(e)),
        }
    }

    async fn message(&self, level: Level, text: &str) -> Result<(), OpError> {
        match self
            .store
            .worker_message(&self.lease, level, "operation", text)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(OpError::Cancelled),
            Err(e) => Err(storage(e)),
        }
    }

    async fn open_input(&self) -> Result<Box<dyn tokio::io::AsyncBufRead + Send + Unpin>, OpError> {
        let key = self
            .input_blob
            .as_deref()
            .ok_or_else(|| OpError::failed("input", "this job has no stored input body"))?;
        let r = self.blobs.reader(key).await.map_err(storage)?;
        Ok(Box::new(r))
    }

    async fn create_file(&self, name: &str, content_type: &str) -> Result<FileSink, OpError> {
        let key = format!(
            "jobs/{}/{}/{}-{}",
            self.lease.job_id(),
            self.lease.attempt(),
            Uuid::now_v7().simple(),
            name
        );
        Ok(FileSink {
            writer: self.blobs.writer(&key),
            key,
            name: name.to_string(),
            content_type: content_type.to_string(),
            rows: None,
        })
    }

    async fn add_file(&self, f: FileDone) -> Result<OutputFile, OpError> {
        let id = Uuid::now_v7();
        let file = OutputFile {
            id,
            job_id: self.lease.job_id(),
            name: f.name,
            content_type: f.content_type,
            size: f.size as i64,
            etag: format!("{}-{}", id.simple(), f.size),
            object_key: f.key,
            rows: f.rows,
            created: Utc::now(),
            consumed: false,
            attempt: self.lease.attempt(),
        };
        if !self
            .store
            .add_file(&self.lease, &file)
            .await
            .map_err(storage)?
        {
            // Not this run's to add any more: the object belongs to nobody.
            let _ = self.blobs.delete(&file.object_key).await;
            return Err(OpError::Cancelled);
        }
        Ok(file)
    }
}
