//! The engine: use-cases the API calls (submit, get, list, cancel, restart, delete, purge), the
//! worker pool that claims and runs jobs, and the background duties (recovery, retention).

mod actions;
mod feed;
mod host;
pub mod maintenance;
mod signals;
mod stats;
mod worker;

pub use feed::FeedItem;
pub use signals::{DeliveryConfig, DeliveryMetrics};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::blobs::{BlobError, Blobs};
use crate::domain::{
    Cursor, Job, JobFilter, JobOptions, JobStatus, Level, Message, OutputFile, Progress,
};
use crate::operations::Registry;
use crate::store::{Page, Store, StoreError};

/// Errors of the use-case layer, turned into problem documents at the API edge.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no job with id {0}")]
    NotFound(Uuid),
    #[error("job {0} was deleted")]
    Gone(Uuid),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, EngineError>;

/// Tunables of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Jobs run at once by this process.
    pub workers: usize,
    /// How long a claim holds without a heartbeat.
    pub lease: Duration,
    /// Runs (first + recoveries) before a job whose worker keeps dying is FAILED.
    pub max_attempts: i32,
    /// How often idle workers look for work when not woken.
    pub poll: Duration,
    /// How long running jobs get to reach a checkpoint at shutdown.
    pub grace: Duration,
    /// How long finished jobs are kept.
    pub retention: Duration,
    /// Minimum time between two progress writes of one job.
    pub progress_throttle: Duration,
    /// How completion signals are sent.
    pub deliveries: DeliveryConfig,
    /// The longest run of each operation (`LONGRUN_MAX_RUNTIME`).
    pub max_runtime: crate::domain::deadline::MaxRuntime,
    /// The jobs a tenant or an operation may run at once across every instance
    /// (`LONGRUN_TENANT_CONCURRENCY`, `LONGRUN_OPERATION_CONCURRENCY`).
    pub concurrency: crate::domain::concurrency::Concurrency,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 2,
            lease: Duration::from_secs(30),
            max_attempts: 3,
            poll: Duration::from_millis(500),
            grace: Duration::from_secs(20),
            retention: Duration::from_secs(7 * 24 * 3600),
            progress_throttle: Duration::from_millis(250),
            deliveries: DeliveryConfig::default(),
            max_runtime: Default::default(),
            concurrency: Default::default(),
        }
    }
}

/// How long a job snapshot may be served without hearing of a write.
pub const SNAPSHOT_AGE: std::time::Duration = std::time::Duration::from_millis(500);

/// Inputs longer than this (as JSON text) are kept in the object store, not in the jobs table:
/// a row stays within one database page, so reading a page of the job list costs the same
/// whatever was submitted (BENCHMARKS.md).
pub const INLINE_INPUT: usize = 2 * 1024;

/// The key that marks a job's `input` as kept in the object store under its `input_blob`.
const STORED_INPUT: &str = "longrun:storedInput";

fn stored_input_marker(bytes: usize) -> Value {
    serde_json::json!({ STORED_INPUT: { "bytes": bytes } })
}

/// The input an operation sees: the stored one read back when the job's input was kept in the
/// object store (its `input` is then the marker and `input_blob` names the object).
pub(crate) async fn stored_input(blobs: &crate::blobs::Blobs, job: &Job) -> Result<Value> {
    match (&job.input_blob, job.input.get(STORED_INPUT)) {
        (Some(key), Some(_)) => {
            use futures::TryStreamExt;
            let read = blobs.get(key, None).await?;
            let chunks: Vec<bytes::Bytes> = read.stream.try_collect().await?;
            serde_json::from_slice(&chunks.concat())
                .map_err(|e| EngineError::BadInput(format!("the stored input is not JSON: {e}")))
        }
        _ => Ok(job.input.clone()),
    }
}

/// A submission, before it is a job.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: Uuid,
    pub operation: String,
    pub input: Value,
    pub input_blob: Option<String>,
    pub correlation_id: Option<String>,
    pub options: JobOptions,
    /// The submitter's identity, when known.
    pub owner: Option<String>,
}

/// The engine: one per process.
pub struct Engine {
    pub(crate) store: Store,
    pub(crate) blobs: Blobs,
    pub(crate) registry: Arc<Registry>,
    /// The operations of the control lane (`domain::lane`): run by the control loops, stored
    /// only by `submit_control`, never by `submit`.
    pub(crate) control: Registry,
    pub(crate) node: String,
    pub(crate) cfg: EngineConfig,
    pub(crate) wake: Notify,
    /// Wakes a control loop (a bulk action was stored).
    pub(crate) wake_control: Notify,
    pub(crate) running: Mutex<HashMap<Uuid, Run>>,
    pub(crate) stopping: AtomicBool,
    pub(crate) stop_claiming: CancellationToken,
    pub(crate) delivery_metrics: DeliveryMetrics,
    pub(crate) metrics: crate::metrics::Metrics,
    /// The last stats reads, shared while no job changes (`stats.rs`).
    stats_cache: stats::StatsCache,
}

/// Answer of a cancel request.
#[derive(Debug, Clone)]
pub enum Cancelled {
    /// The job is CANCELLED.
    Done(Job),
    /// The stop was asked of a running job and is under way.
    Pending(Job),
}

impl Engine {
    /// Build an engine; workers start with `start_workers`.
    pub fn new(
        store: Store,
        blobs: Blobs,
        registry: Arc<Registry>,
        cfg: EngineConfig,
    ) -> Arc<Engine> {
        let node = format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "node".into()),
            &Uuid::now_v7().simple().to_string()[20..]
        );
        Arc::new_cyclic(|me: &std::sync::Weak<Engine>| {
            let mut control = Registry::new();
            control.register(Arc::new(crate::operations::bulk::BulkOperation::new(
                Arc::new(actions::Actions(me.clone())),
            )));
            Engine {
                store,
                blobs,
                registry,
                control,
                node,
                cfg,
                wake: Notify::new(),
                wake_control: Notify::new(),
                running: Mutex::new(HashMap::new()),
                stopping: AtomicBool::new(false),
                stop_claiming: CancellationToken::new(),
                delivery_metrics: DeliveryMetrics::default(),
                metrics: Default::default(),
                stats_cache: Default::default(),
            }
        })
    }

    /// This process's node id (shown on the operator resource).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The operations this engine runs.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The object store (for downloads).
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// Counters of the delivery sender.
    pub fn delivery_metrics(&self) -> &DeliveryMetrics {
        &self.delivery_metrics
    }

    /// Counters and histograms of this process.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// May deliveries and fetches reach loopback and private addresses?
    pub fn allow_private(&self) -> bool {
        self.cfg.deliveries.allow_private
    }

    /// The store (for the catalog views and readiness).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Store a new job of a public operation as QUEUED and wake a worker. The control lane's
    /// operations are not public: they are unknown here, whatever route submits them.
    pub async fn submit(&self, new: NewJob) -> Result<Job> {
        let op = self.registry.get(&new.operation).ok_or_else(|| {
            EngineError::BadInput(format!("unknown operation `{}`", new.operation))
        })?;
        let job = self.store_new(op, new).await?;
        self.wake.notify_one();
        Ok(job)
    }

    /// Store a new job of a control-lane operation (a bulk action) as QUEUED and wake a control
    /// loop. Only the routes that decided the caller may do what it does call this.
    pub(crate) async fn submit_control(&self, new: NewJob) -> Result<Job> {
        let op = self.control.get(&new.operation).ok_or_else(|| {
            EngineError::BadInput(format!("unknown operation `{}`", new.operation))
        })?;
        let job = self.store_new(op, new).await?;
        self.wake_control.notify_one();
        Ok(job)
    }

    /// Check a submission through its operation and store it as QUEUED.
    async fn store_new(
        &self,
        op: Arc<dyn crate::operations::Operation>,
        new: NewJob,
    ) -> Result<Job> {
        if let Some(field) = crate::domain::access::identity_field(&new.input) {
            return Err(EngineError::BadInput(format!(
                "`{field}`: a job acts for the tenant of the API key that submits it; an input \
                 cannot name one"
            )));
        }
        op.admit(&new.input).await.map_err(EngineError::BadInput)?;
        // A large input goes to the object store, so the jobs table, lists and polls never
        // carry it; the worker reads it back (`stored_input`).
        let (input, input_blob, stored) = match new.input_blob {
            None => {
                let text = new.input.to_string();
                if text.len() > INLINE_INPUT {
                    let key = format!("inputs/{}.json", new.id);
                    let n = text.len();
                    self.blobs.put(&key, bytes::Bytes::from(text)).await?;
                    (stored_input_marker(n), Some(key.clone()), Some(key))
                } else {
                    (new.input, None, None)
                }
            }
            blob => (new.input, blob, None),
        };
        // Stored times have millisecond precision; the first answer must match later reads.
        let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 3);
        let phase = waiting_phase(&new.operation);
        // The limit a run will have: the submission's, capped by the operation's.
        let mut options = new.options;
        options.timeout = self.cfg.max_runtime.limit(&new.operation, options.timeout);
        let mut job = Job {
            id: new.id,
            task_id: 0,
            owner: new.owner,
            reference: crate::domain::new_reference(),
            operation: new.operation,
            status: JobStatus::Queued,
            phase: Some(phase.into()),
            total_stages: op.stages(),
            current_stage: 0,
            progress: Progress::default(),
            created: now,
            started: None,
            finished: None,
            updated: now,
            correlation_id: new
                .correlation_id
                .unwrap_or_else(|| Uuid::now_v7().to_string()),
            attempt: 1,
            max_attempts: self.cfg.max_attempts,
            input,
            input_blob,
            options,
            summary: None,
            error: None,
            cancel_requested: false,
            version: 1,
            lease: None,
        };
        if let Err(e) = self.store.insert_job(&mut job, "QUEUED").await {
            if let Some(key) = stored {
                let _ = self.blobs.delete(&key).await;
            }
            return Err(e.into());
        }
        Ok(job)
    }

    /// A job by its short reference, tombstones included (the caller decides, after checking
    /// who may see it, whether a deleted one is gone).
    pub async fn find_by_reference(&self, reference: &str) -> Result<Option<Job>> {
        Ok(self.store.job_by_reference(reference).await?)
    }

    /// A job, tombstones included.
    pub async fn find(&self, id: Uuid) -> Result<Option<Job>> {
        Ok(self.store.get_job(id).await?)
    }

    /// A job (tombstones included) with its files when it is SUCCESS, shared with other readers
    /// of the same job until it changes: polls of one job cost no database read each. A write
    /// through this process drops it at once; one this process does not hear of (another
    /// instance without LISTEN) shows after at most `SNAPSHOT_AGE`.
    pub async fn snapshot(&self, id: Uuid) -> Result<Option<crate::store::Snapshot>> {
        let changes = self.store.changes();
        if let Some(s) = changes.recalled(id, SNAPSHOT_AGE) {
            return Ok(Some(s));
        }
        let mark = changes.mark(id);
        let Some(job) = self.store.get_job(id).await? else {
            return Ok(None);
        };
        let files = if job.status == JobStatus::Success {
            self.store.files(id).await?
        } else {
            Vec::new()
        };
        let snap = Arc::new((job, files));
        changes.remember(id, mark, snap.clone());
        Ok(Some(snap))
    }

    /// A job that is not a tombstone.
    pub async fn get(&self, id: Uuid) -> Result<Job> {
        match self.store.get_job(id).await? {
            None => Err(EngineError::NotFound(id)),
            Some(j) if j.status == JobStatus::Deleted => Err(EngineError::Gone(id)),
            Some(j) => Ok(j),
        }
    }

    /// A job with its output files.
    pub async fn get_with_files(&self, id: Uuid) -> Result<(Job, Vec<OutputFile>)> {
        let job = self.get(id).await?;
        let files = if job.status == JobStatus::Success {
            self.store.files(id).await?
        } else {
            Vec::new()
        };
        Ok((job, files))
    }

    /// A page of the audit collection.
    pub async fn list(
        &self,
        filter: &JobFilter,
        descending: bool,
        cursor: Option<Cursor>,
        limit: u64,
    ) -> Result<Page> {
        Ok(self
            .store
            .list_jobs(filter, descending, cursor, limit)
            .await?)
    }

    /// Jobs matching `filter` when at most `cap` do (a count that stays cheap), else None.
    pub async fn count_upto(&self, filter: &JobFilter, cap: u64) -> Result<Option<u64>> {
        Ok(self.store.count_jobs_upto(filter, cap).await?)
    }

    /// A job's log.
    pub async fn messages(&self, id: Uuid) -> Result<Vec<Message>> {
        self.messages_after(id, 0).await
    }

    /// A job's log after line `after` (its `seq`).
    pub async fn messages_after(&self, id: Uuid, after: i64) -> Result<Vec<Message>> {
        self.get(id).await?;
        Ok(self.store.messages_after(id, after, None).await?)
    }

    /// Ask a job to stop. Idempotent; SUCCESS and FAILED jobs refuse (409).
    pub async fn cancel(&self, id: Uuid) -> Result<Cancelled> {
        self.cancel_noted(id, None).await
    }

    /// `cancel`, with `note` (who asked) at the end of the state message.
    pub(crate) async fn cancel_noted(&self, id: Uuid, note: Option<&str>) -> Result<Cancelled> {
        let by = noted(note);
        let res = self
            .store
            .transition(id, |j| match j.status {
                JobStatus::Deleted => Err(EngineError::Gone(id)),
                JobStatus::Cancelled => Ok(None),
                JobStatus::Queued => {
                    j.status = JobStatus::Cancelled;
                    j.finished = Some(Utc::now());
                    j.phase = Some("Cancelled before it started".into());
                    Ok(Some((
                        Level::Info,
                        "state".into(),
                        format!("CANCELLED while queued{by}"),
                    )))
                }
                s if s.is_running() => {
                    if j.cancel_requested {
                        return Ok(None);
                    }
                    j.cancel_requested = true;
                    Ok(Some((
                        Level::Info,
                        "state".into(),
                        format!("cancel requested{by}"),
                    )))
                }
                s => Err(EngineError::Conflict(format!(
                    "job {id} is {s} and cannot be cancelled"
                ))),
            })
            .await?;
        let job = res?.ok_or(EngineError::NotFound(id))?;
        if job.status.is_running() {
            self.stop_local(id);
            Ok(Cancelled::Pending(job))
        } else {
            Ok(Cancelled::Done(job))
        }
    }

    /// Run a FAILED or CANCELLED job again as a new attempt with the same input.
    pub async fn restart(&self, id: Uuid) -> Result<Job> {
        self.restart_noted(id, None, None).await
    }

    /// `restart`, with `note` (who asked) at the end of the state message; with
    /// `ended_before`, only a job that ended before then (checked in the same transaction).
    pub(crate) async fn restart_noted(
        &self,
        id: Uuid,
        note: Option<&str>,
        ended_before: Option<chrono::DateTime<Utc>>,
    ) -> Result<Job> {
        let by = noted(note);
        let res = self
            .store
            .transition(id, |j| {
                if j.status == JobStatus::Deleted {
                    return Err(EngineError::Gone(id));
                }
                if !matches!(j.status, JobStatus::Failed | JobStatus::Cancelled) {
                    return Err(EngineError::Conflict(format!(
                        "job {id} is {}; only FAILED or CANCELLED jobs can be restarted",
                        j.status
                    )));
                }
                if let Some(t) = ended_before {
                    if j.finished.is_none_or(|f| f >= t) {
                        return Err(EngineError::Conflict(format!(
                            "job {id} ended after {t}; it is not restarted again"
                        )));
                    }
                }
                j.status = JobStatus::Queued;
                j.attempt += 1;
                j.cancel_requested = false;
                j.error = None;
                j.summary = None;
                j.started = None;
                j.finished = None;
                j.current_stage = 0;
                j.progress = Progress::default();
                j.lease = None;
                j.phase = Some(waiting_phase(&j.operation).into());
                Ok(Some((
                    Level::Info,
                    "state".into(),
                    format!("restarted as attempt {}{by}", j.attempt),
                )))
            })
            .await?;
        let job = res?.ok_or(EngineError::NotFound(id))?;
        // The new attempt's outputs are its own (the store shows only the current attempt's
        // files), so a fast run that ends meanwhile keeps them; only earlier ones go.
        self.forget_earlier_outputs(id, job.attempt).await?;
        match crate::domain::Lane::of(&job.operation) {
            crate::domain::Lane::Work => self.wake.notify_one(),
            crate::domain::Lane::Control => self.wake_control.notify_one(),
        }
        Ok(job)
    }

    /// Cancel if needed, remove outputs, and leave a DELETED tombstone (the id then answers 410).
    pub async fn delete(&self, id: Uuid) -> Result<Job> {
        self.delete_noted(id, None).await
    }

    /// `delete`, with `note` (who asked) at the end of the state message.
    pub(crate) async fn delete_noted(&self, id: Uuid, note: Option<&str>) -> Result<Job> {
        let by = noted(note);
        let res = self
            .store
            .transition(id, |j| {
                if j.status == JobStatus::Deleted {
                    return Err(EngineError::Gone(id));
                }
                let was = j.status;
                j.status = JobStatus::Deleted;
                j.cancel_requested = true;
                j.lease = None;
                // An ended job keeps when it ended; times are kept to the millisecond, as
                // every stored time is, so the answer equals what a later read would show.
                j.finished = j
                    .finished
                    .or_else(|| Some(chrono::SubsecRound::trunc_subsecs(Utc::now(), 3)));
                Ok(Some((
                    Level::Info,
                    "state".into(),
                    format!("DELETED (was {was}){by}"),
                )))
            })
            .await?;
        let job = res?.ok_or(EngineError::NotFound(id))?;
        self.stop_local(id);
        self.consume_outputs(id).await?;
        if let Some(key) = &job.input_blob {
            self.blobs.delete(key).await?;
        }
        Ok(job)
    }

    /// Remove ended jobs matching `filter` with their files; returns how many.
    pub async fn purge(&self, filter: &JobFilter) -> Result<u64> {
        if filter.is_empty() {
            return Err(EngineError::BadInput(
                "a bulk delete needs at least one filter".into(),
            ));
        }
        let mut n = 0;
        loop {
            let batch = self.store.ended_jobs(filter, 200, false).await?;
            if batch.is_empty() {
                return Ok(n);
            }
            for job in batch {
                n += u64::from(self.erase(&job).await?);
            }
        }
    }

    /// Remove an ended job entirely (seed 003's prune); unfinished jobs, and jobs that
    /// changed since `job` was read, are left alone.
    pub async fn prune(&self, job: &Job) -> Result<bool> {
        if !job.status.is_end() {
            return Ok(false);
        }
        self.erase(job).await
    }

    /// Remove a job entirely if it is still as `job` shows it (so a restart in between is never
    /// lost): rows first, in one conditional transaction, then the objects they named.
    pub(crate) async fn erase(&self, job: &Job) -> Result<bool> {
        let Some(files) = self.store.remove_job(job).await? else {
            return Ok(false);
        };
        for f in &files {
            self.blobs.delete(&f.object_key).await?;
        }
        if let Some(key) = &job.input_blob {
            self.blobs.delete(key).await?;
        }
        Ok(true)
    }

    /// Delete a deleted job's output objects, keeping the rows as consumed markers (410).
    async fn consume_outputs(&self, id: Uuid) -> Result<()> {
        for f in &self.store.files(id).await? {
            self.blobs.delete(&f.object_key).await?;
            self.store.consume_file(f.id).await?;
        }
        Ok(())
    }

    /// Remove what attempts before `attempt` wrote: objects first, then their records.
    pub(crate) async fn forget_earlier_outputs(&self, id: Uuid, attempt: i32) -> Result<()> {
        let files = self.store.files_before(id, attempt).await?;
        for f in &files {
            self.blobs.delete(&f.object_key).await?;
        }
        let ids: Vec<Uuid> = files.iter().map(|f| f.id).collect();
        self.store.forget_files(&ids).await?;
        Ok(())
    }

    /// Fire the cancel token of a job if it runs in this process.
    pub(crate) fn stop_local(&self, id: Uuid) {
        if let Some(r) = self.running.lock().unwrap().get(&id) {
            r.token.cancel();
        }
    }

    /// An output file with its job, whether or not it is gone.
    pub async fn file_record(&self, id: Uuid) -> Result<(OutputFile, Job)> {
        let f = self
            .store
            .file(id)
            .await?
            .ok_or(EngineError::NotFound(id))?;
        match self.store.get_job(f.job_id).await? {
            Some(j) => Ok((f, j)),
            None => Err(EngineError::NotFound(id)),
        }
    }

    /// An output file (and whether it is gone).
    pub async fn file(&self, id: Uuid) -> Result<(OutputFile, Job)> {
        let (f, job) = self.file_record(id).await?;
        if f.consumed || job.status == JobStatus::Deleted {
            return Err(EngineError::Gone(id));
        }
        Ok((f, job))
    }

    /// The first live output of a job, read whole (for answers that carry a small result
    /// themselves); `Gone` when it was removed.
    pub async fn read_first_output(&self, id: Uuid) -> Result<(OutputFile, bytes::Bytes)> {
        use futures::TryStreamExt;
        let (_, files) = self.get_with_files(id).await?;
        let file = files
            .into_iter()
            .find(|f| !f.consumed)
            .ok_or(EngineError::Gone(id))?;
        let read = self.blobs.get(&file.object_key, None).await?;
        let chunks: Vec<bytes::Bytes> = read.stream.try_collect().await?;
        Ok((file, bytes::Bytes::from(chunks.concat())))
    }

    /// After the first complete download of a read-once file: forget it and remove its object.
    pub async fn consume(&self, file: &OutputFile) -> Result<()> {
        if self.store.consume_file(file.id).await? {
            self.store.changes().touch(file.job_id);
            self.blobs.delete(&file.object_key).await?;
            self.store
                .append_message(
                    file.job_id,
                    Level::Info,
                    "download",
                    &format!(
                        "{} downloaded once and removed (keepResult: false)",
                        file.name
                    ),
                    0,
                )
                .await?;
        }
        Ok(())
    }

    /// Is the engine shutting down?
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// The phase of a queued job: what it waits for, by its lane.
fn waiting_phase(operation: &str) -> &'static str {
    match crate::domain::Lane::of(operation) {
        crate::domain::Lane::Work => "Waiting for a free worker",
        crate::domain::Lane::Control => {
            "Waiting for a control loop (bulk actions do not queue behind jobs)"
        }
    }
}

/// The end of a state message that says who asked for the move.
fn noted(note: Option<&str>) -> String {
    note.map(|n| format!(" {n}")).unwrap_or_default()
}

/// A run of this process: its lease and the token that stops it.
pub(crate) struct Run {
    pub lease: crate::domain::RunLease,
    pub token: CancellationToken,
}

/// A problem document stored as a job's `error`.
/// The kind of failure of a run stopped at its time limit (its problem type is
/// `urn:longrun:problem:timeout`).
pub(crate) const TIMEOUT: &str = "timeout";

pub(crate) fn failure_problem(kind: &str, detail: &str, job: &Job) -> Value {
    let kind = match kind {
        TIMEOUT => crate::domain::deadline::TIMEOUT_PROBLEM.to_string(),
        other => format!("urn:longrun:problem:job-{other}"),
    };
    json!({
        "type": kind,
        "title": "The job failed",
        "status": 500,
        "detail": detail,
        "stage": job.current_stage,
        "phase": job.phase,
        "attempt": job.attempt,
    })
}
