//! The worker pool: claim a run lease, renew it, run, and finish under it; a run whose lease
//! cannot be renewed stops itself, and a run past its time limit is stopped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::host::JobHost;
use super::{failure_problem, Engine};
use crate::domain::{Job, JobStatus, Lane, LeaseClock, Level, RunLease};
use crate::operations::{Context, OpError};
use crate::store::Beat;
use futures::FutureExt;

/// How a run within a time limit ended.
enum Timed<T> {
    /// It ended by itself before its limit.
    Ended(T),
    /// It reached its limit and was stopped.
    Stopped,
}

/// Run `run` within `limit` (none: as long as it takes). At the limit the run's `token` is
/// cancelled, as a cancel does, so the operation stops at its next checkpoint; one that has not
/// stopped `grace` later is dropped where it waits.
async fn within<F: std::future::Future>(
    limit: Option<std::time::Duration>,
    token: &CancellationToken,
    grace: std::time::Duration,
    run: F,
) -> Timed<F::Output> {
    let Some(limit) = limit else {
        return Timed::Ended(run.await);
    };
    tokio::pin!(run);
    tokio::select! {
        r = &mut run => return Timed::Ended(r),
        _ = tokio::time::sleep(limit) => {}
    }
    token.cancel();
    let _ = tokio::time::timeout(grace, &mut run).await;
    Timed::Stopped
}

/// Claim loops of the control lane per instance: one bulk action may take long (a delete of
/// many jobs), and another (cancelling a flood of submissions) must still start at once.
pub const CONTROL_LOOPS: usize = 2;

impl Engine {
    /// Start `workers` claim loops of the work lane and `CONTROL_LOOPS` of the control lane;
    /// they end when `shutdown` is called.
    pub fn start_workers(self: &Arc<Self>) -> JoinSet<()> {
        let mut set = JoinSet::new();
        for _ in 0..self.cfg.workers {
            let me = self.clone();
            set.spawn(async move { me.worker_loop(Lane::Work).await });
        }
        for _ in 0..CONTROL_LOOPS {
            let me = self.clone();
            set.spawn(async move { me.worker_loop(Lane::Control).await });
        }
        set
    }

    async fn worker_loop(self: Arc<Self>, lane: Lane) {
        let wake = match lane {
            Lane::Work => &self.wake,
            Lane::Control => &self.wake_control,
        };
        loop {
            if self.stop_claiming.is_cancelled() {
                return;
            }
            let sent = Instant::now();
            match self
                .store
                .claim(&self.node, self.cfg.lease, lane, &self.cfg.concurrency)
                .await
            {
                Ok(Some((job, lease))) => {
                    let waited =
                        (Utc::now() - job.created).num_milliseconds().max(0) as f64 / 1000.0;
                    self.metrics.observe(
                        "longrun_claim_latency_seconds",
                        &[("operation", &job.operation)],
                        waited,
                    );
                    self.run_job(job, lease, sent, lane).await
                }
                Ok(None) => {
                    tokio::select! {
                        _ = wake.notified() => {}
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

    /// Run one claimed job to its end (or until its lease is lost or released). `sent` is when
    /// the claim was sent, where the lease's time starts on this node's clock.
    async fn run_job(self: &Arc<Self>, job: Job, lease: RunLease, sent: Instant, lane: Lane) {
        let token = CancellationToken::new();
        if job.cancel_requested {
            token.cancel();
        }
        let clock = Arc::new(Mutex::new(LeaseClock::new(self.cfg.lease, sent)));
        self.running.lock().unwrap().insert(
            job.id,
            super::Run {
                lease: lease.clone(),
                token: token.clone(),
            },
        );
        let lost = Arc::new(AtomicBool::new(false));
        let beat_done = CancellationToken::new();
        let heart = tokio::spawn(heartbeat(
            self.clone(),
            lease.clone(),
            clock.clone(),
            token.clone(),
            lost.clone(),
            beat_done.clone(),
        ));
        if job.attempt > 1 {
            // What earlier attempts wrote is no longer this job's output (the store already
            // shows only this attempt's files); remove it.
            if let Err(e) = self.forget_earlier_outputs(job.id, job.attempt).await {
                tracing::warn!(job_id = %job.id, error = %e, "removing outputs of earlier attempts failed");
            }
        }
        tracing::info!(job_id = %job.id, correlation_id = %job.correlation_id, attempt = job.attempt, "job started");

        let ops = match lane {
            Lane::Work => &*self.registry,
            Lane::Control => &self.control,
        };
        let result = match ops.get(&job.operation) {
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
                        lease: lease.clone(),
                        input_blob: job.input_blob.clone(),
                        saving: AtomicBool::new(false),
                    });
                    let mut ctx = Context::new(
                        input,
                        host,
                        token.clone(),
                        lease.clone(),
                        job.owner
                            .clone()
                            .unwrap_or_else(|| crate::domain::access::OPEN_TENANT.into()),
                        self.cfg.progress_throttle,
                    );
                    // A panicking operation fails its job; it does not take the worker (and its
                    // heartbeat, which would hold the lease forever) with it.
                    let limit = self
                        .cfg
                        .max_runtime
                        .limit(&job.operation, job.options.timeout);
                    let run = std::panic::AssertUnwindSafe(op.run(&mut ctx)).catch_unwind();
                    let r = match within(limit, &token, self.cfg.grace, run).await {
                        Timed::Ended(Ok(r)) => r,
                        Timed::Stopped => {
                            let limit = limit.unwrap_or_default();
                            let what = self.cfg.max_runtime.describe(&job.operation, limit);
                            tracing::warn!(job_id = %job.id, limit = %what, "job stopped at its time limit");
                            Err(OpError::failed(
                                super::TIMEOUT,
                                format!("the run was stopped at its time limit of {what}"),
                            ))
                        }
                        Timed::Ended(Err(panic)) => {
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
        self.forget_run(&lease);
        if lost.load(Ordering::SeqCst) {
            tracing::warn!(job_id = %job.id, attempt = lease.attempt(), "lease lost; this run stopped and its result was discarded");
            return;
        }
        // A failing database gets a few tries, while the lease still holds; after that the
        // lease runs out and recovery queues the job again (nothing is lost, the run is redone).
        let mut wait = std::time::Duration::from_millis(100);
        loop {
            match self.finish(&lease, &result).await {
                Ok(()) => return,
                Err(e) if !clock.lock().unwrap().expired(Instant::now() + wait) => {
                    tracing::warn!(job_id = %job.id, error = %e, "recording the end of a job failed; trying again");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::error!(job_id = %job.id, error = %e, "could not record the end of a job; its lease will run out and it will run again");
                    return;
                }
            }
        }
    }

    /// Drop the run of `lease` from the running map, unless a newer attempt took its place.
    fn forget_run(&self, lease: &RunLease) {
        let mut running = self.running.lock().unwrap();
        if running
            .get(&lease.job_id())
            .is_some_and(|r| r.lease.attempt() == lease.attempt())
        {
            running.remove(&lease.job_id());
        }
    }

    /// Record how a run ended, only while its lease holds.
    async fn finish(
        &self,
        lease: &RunLease,
        result: &Result<serde_json::Value, OpError>,
    ) -> Result<(), crate::store::StoreError> {
        let releasing = self.is_stopping();
        let res = self
            .store
            .end_run(lease, |j| {
                let (to, level, text) = run_outcome(j, result, releasing, lease.owner());
                apply_outcome(j, to, result, Utc::now());
                (level, text)
            })
            .await?;
        if let Some(job) = res {
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

/// The status a run ends in, with the message to log.
fn run_outcome(
    j: &Job,
    result: &Result<serde_json::Value, OpError>,
    releasing: bool,
    node: &str,
) -> (JobStatus, Level, String) {
    match result {
        Ok(_) => (JobStatus::Success, Level::Info, "SUCCESS".into()),
        Err(OpError::Cancelled) if releasing && !j.cancel_requested => (
            JobStatus::Queued,
            Level::Warning,
            format!(
                "released at shutdown of node {node}; queued again as attempt {}",
                j.attempt + 1
            ),
        ),
        Err(OpError::Cancelled) => (JobStatus::Cancelled, Level::Info, "CANCELLED".into()),
        Err(OpError::Failed { detail, .. }) => {
            (JobStatus::Failed, Level::Error, format!("FAILED: {detail}"))
        }
    }
}

/// Write the end of a run into the job: its status and what goes with it.
fn apply_outcome(
    j: &mut Job,
    to: JobStatus,
    result: &Result<serde_json::Value, OpError>,
    now: chrono::DateTime<Utc>,
) {
    match (to, result) {
        (JobStatus::Success, Ok(summary)) => {
            j.summary = Some(summary.clone());
            j.current_stage = j.total_stages;
            j.phase = Some("Completed".into());
            j.finished = Some(now);
        }
        (JobStatus::Queued, _) => {
            j.attempt += 1;
            j.phase = Some("Released at shutdown; waiting for a free worker".into());
            j.started = None;
        }
        (JobStatus::Failed, Err(OpError::Failed { kind, detail })) => {
            j.error = Some(failure_problem(kind, detail, j));
            j.finished = Some(now);
        }
        _ => {
            j.phase = Some("Cancelled".into());
            j.finished = Some(now);
        }
    }
    j.status = to;
}

/// Renew the lease every third of its length; stop the run (and mark it lost) when the lease
/// no longer holds, or when it could not be renewed in time (the database unreachable): by
/// then another node may take the job, so this one must have stopped writing.
async fn heartbeat(
    engine: Arc<Engine>,
    lease: RunLease,
    clock: Arc<Mutex<LeaseClock>>,
    token: CancellationToken,
    lost: Arc<AtomicBool>,
    done: CancellationToken,
) {
    let every = engine.cfg.lease / 3;
    let mut next = Instant::now() + every;
    loop {
        let stop_at = clock.lock().unwrap().stop_at();
        tokio::select! {
            _ = done.cancelled() => return,
            _ = tokio::time::sleep_until(next.min(stop_at).into()) => {}
        }
        if clock.lock().unwrap().expired(Instant::now()) {
            tracing::warn!(job_id = %lease.job_id(), "the lease could not be renewed in time; stopping this run");
            lost.store(true, Ordering::SeqCst);
            token.cancel();
            return;
        }
        let sent = Instant::now();
        next = sent + every;
        match engine.store.heartbeat(&lease, engine.cfg.lease).await {
            Ok(Beat::Alive { cancel, .. }) => {
                clock.lock().unwrap().renewed(sent);
                if cancel {
                    token.cancel();
                }
            }
            Ok(Beat::Lost) => {
                lost.store(true, Ordering::SeqCst);
                token.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(job_id = %lease.job_id(), error = %e, "renewing the lease failed; trying again");
                next = Instant::now() + (every / 4).max(std::time::Duration::from_millis(50));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;
    use serde_json::json;
    use tokio_util::sync::CancellationToken;

    use super::{within, Timed};

    #[tokio::test]
    async fn a_run_past_its_limit_is_cancelled_then_dropped() {
        let ms = Duration::from_millis;
        // Ends in time: its own result, the token untouched.
        let token = CancellationToken::new();
        let r = within(Some(ms(500)), &token, ms(50), async { 7 }).await;
        assert!(matches!(r, Timed::Ended(7)) && !token.is_cancelled());
        // No limit: as long as it takes.
        let r = within(None, &token, ms(50), tokio::time::sleep(ms(30))).await;
        assert!(matches!(r, Timed::Ended(())));
        // Past its limit: cancelled; a run that stops at its checkpoint is stopped.
        let token = CancellationToken::new();
        let t = token.clone();
        let started = std::time::Instant::now();
        let r = within(Some(ms(40)), &token, ms(5_000), async move {
            t.cancelled().await;
        })
        .await;
        assert!(matches!(r, Timed::Stopped) && token.is_cancelled());
        assert!(started.elapsed() < ms(2_000));
        // One that ignores the cancel is dropped after the grace.
        let token = CancellationToken::new();
        let started = std::time::Instant::now();
        let r = within(Some(ms(20)), &token, ms(60), std::future::pending::<()>()).await;
        assert!(matches!(r, Timed::Stopped));
        assert!(started.elapsed() >= ms(80));
    }

    use super::{apply_outcome, run_outcome};
    use crate::domain::job::tests::job;
    use crate::domain::JobStatus;
    use crate::operations::OpError;

    fn end(
        status: JobStatus,
        cancel: bool,
        result: Result<serde_json::Value, OpError>,
        releasing: bool,
    ) -> crate::domain::Job {
        let mut j = job(status);
        j.cancel_requested = cancel;
        let (to, _, _) = run_outcome(&j, &result, releasing, "node-a");
        assert!(j.status.can_move_to(to), "{} -> {to}", j.status);
        apply_outcome(&mut j, to, &result, Utc::now());
        j
    }

    #[test]
    fn every_end_of_a_run_is_a_legal_move() {
        let ok = end(JobStatus::Saving, false, Ok(json!({"n": 1})), false);
        assert_eq!(ok.status, JobStatus::Success);
        assert_eq!(ok.summary, Some(json!({"n": 1})));
        let failed = end(
            JobStatus::Processing,
            false,
            Err(OpError::failed("input", "bad")),
            false,
        );
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(failed.error.as_ref().unwrap()["detail"], "bad");
        let cancelled = end(JobStatus::Started, true, Err(OpError::Cancelled), false);
        assert_eq!(cancelled.status, JobStatus::Cancelled);
        // At shutdown a stopped run is queued again as the next attempt, unless a cancel was
        // asked: then it is cancelled.
        let released = end(JobStatus::Processing, false, Err(OpError::Cancelled), true);
        assert_eq!((released.status, released.attempt), (JobStatus::Queued, 2));
        assert!(released.finished.is_none());
        let asked = end(JobStatus::Processing, true, Err(OpError::Cancelled), true);
        assert_eq!(asked.status, JobStatus::Cancelled);
    }
}
