//! The engine's side of a bulk action (`operations::bulk::JobActions`): the jobs it matches and
//! the moves, each through the use-case a client's own request goes through, so the state
//! machine decides every one.

use std::collections::HashSet;
use std::sync::Weak;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Engine, EngineError};
use crate::domain::{JobFilter, JobStatus, Level, RunLease};
use crate::operations::bulk::{note, Action, JobActions, Outcome};

/// The message kind of a bulk action's checkpoints.
const CHECKPOINT: &str = "checkpoint";

/// The port, holding the engine weakly (the engine owns the operation that holds it).
pub(super) struct Actions(pub Weak<Engine>);

impl Actions {
    fn engine(&self) -> Result<std::sync::Arc<Engine>, String> {
        self.0
            .upgrade()
            .ok_or_else(|| "the service is stopping".to_string())
    }
}

#[async_trait]
impl JobActions for Actions {
    async fn created(&self, id: Uuid) -> Result<DateTime<Utc>, String> {
        let e = self.engine()?;
        e.get(id)
            .await
            .map(|j| j.created)
            .map_err(|e| e.to_string())
    }

    async fn count(&self, filter: &JobFilter) -> Result<u64, String> {
        let e = self.engine()?;
        e.store.count_jobs(filter).await.map_err(|e| e.to_string())
    }

    async fn ids(
        &self,
        filter: &JobFilter,
        after: Option<Uuid>,
        upto: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<Uuid>, String> {
        let e = self.engine()?;
        e.store
            .job_ids(filter, after, upto, limit)
            .await
            .map_err(|e| e.to_string())
    }

    async fn act(
        &self,
        action: Action,
        id: Uuid,
        by: Uuid,
        before: DateTime<Utc>,
    ) -> Result<Outcome, String> {
        let e = self.engine()?;
        let note = note(by);
        let done = match action {
            Action::Cancel => {
                // A cancel of a job already cancelled (or already asked to stop) changes
                // nothing: not acted on.
                match e.store.get_job(id).await.map_err(|e| e.to_string())? {
                    None => return Ok(Outcome::Gone),
                    Some(j) if j.status == JobStatus::Deleted => return Ok(Outcome::Gone),
                    Some(j)
                        if j.status == JobStatus::Cancelled
                            || (j.status.is_running() && j.cancel_requested) =>
                    {
                        return Ok(Outcome::IllegalState)
                    }
                    Some(_) => e.cancel_noted(id, Some(&note)).await.map(|_| ()),
                }
            }
            Action::Restart => e
                .restart_noted(id, Some(&note), Some(before))
                .await
                .map(|_| ()),
            Action::Delete => e.delete_noted(id, Some(&note)).await.map(|_| ()),
        };
        match done {
            Ok(()) => Ok(Outcome::Acted),
            Err(EngineError::Conflict(_)) => Ok(Outcome::IllegalState),
            Err(EngineError::Gone(_) | EngineError::NotFound(_)) => Ok(Outcome::Gone),
            Err(EngineError::Store(crate::store::StoreError::IllegalMove(..))) => {
                Ok(Outcome::IllegalState)
            }
            Err(other) => Err(other.to_string()),
        }
    }

    async fn moved_by(&self, ids: &[Uuid], by: Uuid) -> Result<HashSet<Uuid>, String> {
        let e = self.engine()?;
        e.store
            .noted_jobs(ids, &note(by))
            .await
            .map_err(|e| e.to_string())
    }

    async fn saved(&self, lease: &RunLease) -> Result<Option<Value>, String> {
        let e = self.engine()?;
        let msgs = e
            .store
            .messages(lease.job_id())
            .await
            .map_err(|e| e.to_string())?;
        Ok(msgs
            .iter()
            .rev()
            .find(|m| m.kind == CHECKPOINT)
            .and_then(|m| serde_json::from_str(&m.text).ok()))
    }

    async fn save(&self, lease: &RunLease, state: &Value) -> Result<bool, String> {
        let e = self.engine()?;
        e.store
            .worker_message(lease, Level::Info, CHECKPOINT, &state.to_string())
            .await
            .map_err(|e| e.to_string())
    }
}
