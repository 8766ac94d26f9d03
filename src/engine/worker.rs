//! The worker pool: claim under a lease, heartbeat, run, and finish under the fence.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::Utc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::host::JobHost;
use super::{failure_problem, Engine};
use crate::domain::{Fence, Job, JobStatus, Level};
use crate::operations::{Context, OpError};
use crate::store::Beat;
use futures::FutureExt;

impl Engine {
    /// Start `workers` claim loops; they end when `shutdown` is called.
    pub fn start_workers(self: &Arc<Self>) -> JoinSet<()> {
        let mut set = JoinSet::new();
        for _ in 0..self.cfg.workers {
            let me = self.clone();
            set.spawn(async move { me.worker_loop().await });
        }
        set
    }

    async fn worker_loop(self: Arc<Self>) {
        loop {
            if self.stop_claiming.is_cancelled() {
                return;
            }
            let now = Utc::now();
            let lease = chrono::Duration::from_std(self.cfg.lease).unwrap_or_default();
            match self.store.claim(&self.node, now + lease, now).await {
                Ok(Some(job)) => {
                    let waited = (now - job.created).num_milliseconds().max(0) as f64 / 1000.0;
                    self.metrics.observe(
                        "longrun_claim_latency_seconds",
                        &[("operation", &job.operation)],
                        waited,
                    );
                    self.run_job(job).await
                }
                Ok(None) => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.cfg.poll) => {}
                        _ = self.stop_claiming.cancelled() => return,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming failed; retrying");
                    tokio::time::sleep(self.cfg.poll).await;
                }
            }
        }
    }

    /// Run one claimed job to its end (or until it is lost or released).
    async fn run_job(self: &Arc<Self>, job: Job) {
        let fence = Fence {
            job_id: job.id,
            attempt: job.attempt,
            node: self.node.clone(),
        };
        let token = CancellationToken::new();
        if job.cancel_requested {
            token.cancel();
        }
        self.running.lock().unwrap().insert(job.id, token.clone());
        let lost = Arc::new(AtomicBool::new(false));
        let beat_done = CancellationToken::new();
        let heart = tokio::spawn(heartbeat(
            self.clone(),
            fence.clone(),
            token.clone(),
            lost.clone(),
            beat_done.clone(),
        ));
        tracing::info!(job_id = %job.id, correlation_id = %job.correlation_id, attempt = job.attempt, "job started");

        let result = match self.registry.get(&job.operation) {
            None => Err(OpError::failed(
                "operation",
                format!(
                    "operation `{}` is not registered on this node",
                    job.operation
                ),
            )),
            Some(op) => match super::stored_input(&self.blobs, &job).await {
                Err(e) => Err(OpError::failed("storage", e.to_string())),
                Ok(input) => {
                    let host = Arc::new(JobHost {
                        store: self.store.clone(),
                        blobs: self.blobs.clone(),
                        fence: fence.clone(),
                        input_blob: job.input_blob.clone(),
                        saving: AtomicBool::new(false),
                    });
                    let mut ctx = Context::new(
                        input,
                        host,
                        token.clone(),
                        fence.clone(),
                        job.owner
                            .clone()
                            .unwrap_or_else(|| crate::domain::access::OPEN_TENANT.into()),
                        self.cfg.progress_throttle,
                    );
                    // A panicking operation fails its job; it does not take the worker (and its
                    // heartbeat, which would hold the lease forever) with it.
                    let r = match std::panic::AssertUnwindSafe(op.run(&mut ctx))
                        .catch_unwind()
                        .await
                    {
                        Ok(r) => r,
                        Err(panic) => {
                            let what = panic
                                .downcast_ref::<&str>()
                                .map(|s| s.to_string())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_else(|| "a panic".into());
                            tracing::error!(job_id = %job.id, panic = %what, "operation panicked");
                            Err(OpError::failed(
                                "internal",
                                format!("the operation stopped on an internal error: {what}"),
                            ))
                        }
                    };
                    if r.is_ok() {
                        let _ = ctx.flush().await;
                    }
                    r
                }
            },
        };
        beat_done.cancel();
        let _ = heart.await;
        self.running.lock().unwrap().remove(&job.id);
        if lost.load(Ordering::SeqCst) {
            tracing::warn!(job_id = %job.id, "lease lost; result of this run discarded");
            return;
        }
        if let Err(e) = self.finish(&fence, result).await {
            tracing::error!(job_id = %job.id, error = %e, "could not record the end of a job");
        }
    }

    /// Record how a run ended, only if this worker still owns the job.
    async fn finish(
        &self,
        fence: &Fence,
        result: Result<serde_json::Value, OpError>,
    ) -> Result<(), crate::store::StoreError> {
        let releasing = self.is_stopping();
        let res = self
            .store
            .transition(fence.job_id, |j| {
                let owned = j.attempt == fence.attempt
                    && j.status.is_running()
                    && j.lease.as_ref().map(|l| l.owner.as_str()) == Some(fence.node.as_str());
                if !owned {
                    return Err(());
                }
                let now = Utc::now();
                let msg = match &result {
                    Ok(summary) => {
                        debug_assert!(j.status.can_move_to(JobStatus::Success));
                        j.status = JobStatus::Success;
                        j.summary = Some(summary.clone());
                        j.current_stage = j.total_stages;
                        j.phase = Some("Completed".into());
                        j.finished = Some(now);
                        (Level::Info, "SUCCESS".to_string())
                    }
                    Err(OpError::Cancelled) if releasing && !j.cancel_requested => {
                        j.status = JobStatus::Queued;
                        j.attempt += 1;
                        j.phase = Some("Released at shutdown; waiting for a free worker".into());
                        j.started = None;
                        (
                            Level::Warning,
                            format!(
                                "released at shutdown of node {}; queued again as attempt {}",
                                fence.node, j.attempt
                            ),
                        )
                    }
                    Err(OpError::Cancelled) => {
                        j.status = JobStatus::Cancelled;
                        j.phase = Some("Cancelled".into());
                        j.finished = Some(now);
                        (Level::Info, "CANCELLED".to_string())
                    }
                    Err(OpError::Failed { kind, detail }) => {
                        j.error = Some(failure_problem(kind, detail, j));
                        j.status = JobStatus::Failed;
                        j.finished = Some(now);
                        (Level::Error, format!("FAILED: {detail}"))
                    }
                };
                j.lease = None;
                Ok(Some((msg.0, "state".to_string(), msg.1)))
            })
            .await?;
        if let Ok(Some(job)) = res {
            if let (Some(start), Some(end)) = (job.started, job.finished) {
                self.metrics.observe(
                    "longrun_job_duration_seconds",
                    &[
                        ("operation", &job.operation),
                        ("status", job.status.as_str()),
                    ],
                    (end - start).num_milliseconds().max(0) as f64 / 1000.0,
                );
            }
            tracing::info!(job_id = %job.id, correlation_id = %job.correlation_id, status = %job.status, "job ended");
            if job.status == JobStatus::Queued {
                self.wake.notify_one();
            }
        }
        Ok(())
    }
}

async fn heartbeat(
    engine: Arc<Engine>,
    fence: Fence,
    token: CancellationToken,
    lost: Arc<AtomicBool>,
    done: CancellationToken,
) {
    let every = engine.cfg.lease / 3;
    loop {
        tokio::select! {
            _ = done.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(engine.cfg.lease).unwrap_or_default();
        match engine.store.heartbeat(&fence, until, now).await {
            Ok(Beat::Alive { cancel }) => {
                if cancel {
                    token.cancel();
                }
            }
            Ok(Beat::Lost) => {
                lost.store(true, Ordering::SeqCst);
                token.cancel();
                return;
            }
            Err(e) => tracing::warn!(job_id = %fence.job_id, error = %e, "heartbeat failed"),
        }
    }
}
