//! Operations: the work a job does. An operation sees only its `Context` — its validated input,
//! a stage/progress reporter, a message log, the cancel token and a writer for output files —
//! never HTTP or the database.

pub mod bulk;
pub mod compare;
pub mod export;
pub mod import;
pub mod noop;
pub mod request;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::domain::{Level, OutputFile, Progress, RunLease};

/// Why an operation stopped without a result.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The cancel token fired and the operation stopped at a checkpoint.
    #[error("cancelled")]
    Cancelled,
    /// The work failed; `detail` is for a person, `kind` names the kind of failure.
    #[error("{detail}")]
    Failed { kind: &'static str, detail: String },
}

impl OpError {
    /// A failure with a detail a person can act on.
    pub fn failed(kind: &'static str, detail: impl Into<String>) -> OpError {
        OpError::Failed {
            kind,
            detail: detail.into(),
        }
    }
}

/// What the engine lends an operation; implemented by the engine, so operations stay unaware of
/// where state is kept.
#[async_trait]
pub trait Host: Send + Sync {
    /// Record stage/phase/progress (already throttled by the context).
    async fn report(&self, report: Report) -> Result<(), OpError>;
    /// Append a line to the job's log.
    async fn message(&self, level: Level, text: &str) -> Result<(), OpError>;
    /// Open the job's stored input body.
    async fn open_input(&self) -> Result<Box<dyn tokio::io::AsyncBufRead + Send + Unpin>, OpError>;
    /// Start writing an output file.
    async fn create_file(&self, name: &str, content_type: &str) -> Result<FileSink, OpError>;
    /// Record a completed output file.
    async fn add_file(&self, file: FileDone) -> Result<OutputFile, OpError>;
}

/// A progress report as it goes to the host.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub saving: bool,
    pub phase: Option<String>,
    pub stage: Option<(i32, i32)>,
    pub progress: Option<Progress>,
}

/// An output file being written.
pub struct FileSink {
    pub(crate) writer: crate::blobs::BlobWriter,
    pub(crate) key: String,
    pub(crate) name: String,
    pub(crate) content_type: String,
    pub(crate) rows: Option<i64>,
}

/// A written output file, ready to be recorded.
pub struct FileDone {
    pub key: String,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub rows: Option<i64>,
}

impl FileSink {
    /// Append bytes to the file.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), OpError> {
        self.writer
            .write(data)
            .await
            .map_err(|e| OpError::failed("storage", e.to_string()))
    }
    /// Count rows (for data file sets).
    pub fn add_rows(&mut self, n: i64) {
        *self.rows.get_or_insert(0) += n;
    }
    /// Complete the upload.
    pub async fn finish(self) -> Result<FileDone, OpError> {
        let size = self
            .writer
            .finish()
            .await
            .map_err(|e| OpError::failed("storage", e.to_string()))?;
        Ok(FileDone {
            key: self.key,
            name: self.name,
            content_type: self.content_type,
            size,
            rows: self.rows,
        })
    }
}

/// Everything an operation may see while it runs.
pub struct Context {
    input: Value,
    host: Arc<dyn Host>,
    cancel: CancellationToken,
    lease: RunLease,
    owner: String,
    last_flush: Option<Instant>,
    throttle: Duration,
    pending: Report,
}

impl Context {
    /// Build a context (the engine does this).
    pub(crate) fn new(
        input: Value,
        host: Arc<dyn Host>,
        cancel: CancellationToken,
        lease: RunLease,
        owner: String,
        throttle: Duration,
    ) -> Context {
        Context {
            input,
            host,
            cancel,
            lease,
            owner,
            last_flush: None,
            throttle,
            pending: Report::default(),
        }
    }

    /// The validated input of the submission.
    pub fn input(&self) -> &Value {
        &self.input
    }

    /// The tenant the job belongs to; what it reads and writes is that tenant's.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The token that fires when the job must stop.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// A checkpoint: `Err(Cancelled)` once a stop was asked.
    pub fn checkpoint(&self) -> Result<(), OpError> {
        if self.cancel.is_cancelled() {
            Err(OpError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// The run lease, to hand to ports that write on the job's behalf (they write only while
    /// it holds).
    pub fn lease(&self) -> &RunLease {
        &self.lease
    }

    /// Enter stage `current` of `total` with a phase description; always written at once.
    pub async fn stage(&mut self, current: i32, total: i32, phase: &str) -> Result<(), OpError> {
        self.checkpoint()?;
        self.pending.stage = Some((current, total));
        self.pending.phase = Some(phase.to_string());
        self.pending.progress = Some(Progress::default());
        self.flush().await?;
        self.host
            .message(Level::Info, &format!("stage {current} of {total}: {phase}"))
            .await
    }

    /// Enter SAVING (the result is being written).
    pub async fn saving(&mut self, phase: &str) -> Result<(), OpError> {
        self.checkpoint()?;
        self.pending.saving = true;
        self.pending.phase = Some(phase.to_string());
        self.flush().await
    }

    /// Report progress inside the current stage; written at most once per throttle interval.
    pub async fn progress(
        &mut self,
        amount: i64,
        total: Option<i64>,
        unit: &str,
    ) -> Result<(), OpError> {
        self.pending.progress = Some(Progress {
            amount,
            total,
            unit: Some(unit.to_string()),
        });
        let due = self
            .last_flush
            .map(|t| t.elapsed() >= self.throttle)
            .unwrap_or(true);
        if due {
            self.flush().await?;
        }
        Ok(())
    }

    /// Write whatever is pending now.
    pub async fn flush(&mut self) -> Result<(), OpError> {
        let report = std::mem::take(&mut self.pending);
        if report.phase.is_none()
            && report.stage.is_none()
            && report.progress.is_none()
            && !report.saving
        {
            return Ok(());
        }
        self.last_flush = Some(Instant::now());
        self.host.report(report).await
    }

    /// Log a line in the job's messages.
    pub async fn message(&self, level: Level, text: &str) -> Result<(), OpError> {
        self.host.message(level, text).await
    }

    /// Open the stored input body (for operations whose input is too large to hold).
    pub async fn open_input(
        &self,
    ) -> Result<Box<dyn tokio::io::AsyncBufRead + Send + Unpin>, OpError> {
        self.host.open_input().await
    }

    /// Start an output file.
    pub async fn create_file(&self, name: &str, content_type: &str) -> Result<FileSink, OpError> {
        self.host.create_file(name, content_type).await
    }

    /// Record a finished output file; it becomes a `file` link when the job succeeds.
    pub async fn add_file(&self, file: FileDone) -> Result<OutputFile, OpError> {
        self.host.add_file(file).await
    }
}

/// A kind of work the service can run.
#[async_trait]
pub trait Operation: Send + Sync + 'static {
    /// The name clients use (`import`, ...).
    fn name(&self) -> &str;
    /// One line for people.
    fn description(&self) -> &str;
    /// JSON Schema of the input, as published at `/api/v1/operations`.
    fn input_schema(&self) -> Value;
    /// How many stages a run has (shown while queued as `0 of N`).
    fn stages(&self) -> i32 {
        1
    }
    /// Check a submitted input before anything is stored; `Err` is a 400 with that detail.
    fn validate(&self, _input: &Value) -> Result<(), String> {
        Ok(())
    }
    /// The whole check of a submission, whatever route made it: `validate`, plus what needs
    /// waiting (resolving a name, parsing a large document off the async threads). The engine
    /// calls this, and only this, before a job is stored.
    async fn admit(&self, input: &Value) -> Result<(), String> {
        self.validate(input)
    }
    /// Do the work; return the result summary.
    async fn run(&self, ctx: &mut Context) -> Result<Value, OpError>;
}

/// The registered operations by name.
#[derive(Clone, Default)]
pub struct Registry {
    ops: BTreeMap<String, Arc<dyn Operation>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }
    /// Add (or replace) an operation.
    pub fn register(&mut self, op: Arc<dyn Operation>) {
        self.ops.insert(op.name().to_string(), op);
    }
    /// Look one up.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Operation>> {
        self.ops.get(name).cloned()
    }
    /// All, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Operation>> {
        self.ops.values()
    }
}
