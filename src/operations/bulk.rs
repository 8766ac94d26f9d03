//! Bulk actions: cancel, restart or delete, in batches, the jobs of the submitter's tenant that
//! a filter matched when the action was made. A bulk action is a job of the control lane
//! (`domain::lane`): its own loops claim it, so it starts at once however busy the workers are.
//!
//! What it acts on: the filter, the tenant from `Context::owner` (never from input), jobs
//! created before the bulk action itself (so later submissions are left alone) and never a job
//! of the control lane. It walks them by id in batches of `BATCH`, checks the cancel token
//! between batches, and reports progress and one message per batch.
//!
//! Acting twice on a job does no harm: every move goes through the engine's use-cases, whose
//! state machine refuses an illegal one (counted as skipped). Restart is the one action whose
//! result the filter may match again (a restarted job that failed again is FAILED again), so a
//! restart moves only a job that ended before the bulk action was made (`finishedBefore` is at
//! most the action's creation, and the restart itself checks it in its transaction): a job it
//! restarted has ended, if at all, after that, and is never restarted by it twice.
//!
//! A crash (or a shutdown) ends the run without its summary; the job is claimed again and goes
//! on from its checkpoint, a `checkpoint` message written before each batch is acted on: what was
//! done up to the batch, and where the batch ends. The batch in flight is walked again; a job in
//! it that the earlier run moved is known by the note each move leaves in the moved job's own
//! state message (`by bulk action <id>`) and counted as acted, not moved again.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{Context, OpError, Operation};
use crate::domain::{JobFilter, JobStatus, Level, RunLease};

/// Jobs acted on between two checkpoints (and two looks at the cancel token).
pub const BATCH: u64 = 100;

/// What a bulk action does to each job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Cancel,
    Restart,
    Delete,
}

impl Action {
    pub fn parse(s: &str) -> Result<Action, String> {
        match s {
            "cancel" => Ok(Action::Cancel),
            "restart" => Ok(Action::Restart),
            "delete" => Ok(Action::Delete),
            other => Err(format!(
                "`action` must be cancel, restart or delete, not `{other}`"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Cancel => "cancel",
            Action::Restart => "restart",
            Action::Delete => "delete",
        }
    }

    /// The statuses a job may have for this action to move it.
    pub fn moves_from(self) -> &'static [JobStatus] {
        match self {
            Action::Cancel => &[
                JobStatus::Queued,
                JobStatus::Started,
                JobStatus::Processing,
                JobStatus::Saving,
            ],
            Action::Restart => &[JobStatus::Failed, JobStatus::Cancelled],
            Action::Delete => &[
                JobStatus::Queued,
                JobStatus::Started,
                JobStatus::Processing,
                JobStatus::Saving,
                JobStatus::Success,
                JobStatus::Failed,
                JobStatus::Cancelled,
            ],
        }
    }

    fn participle(self) -> &'static str {
        match self {
            Action::Cancel => "cancelled",
            Action::Restart => "restarted",
            Action::Delete => "deleted",
        }
    }

    fn phase(self) -> &'static str {
        match self {
            Action::Cancel => "Cancelling the matched jobs",
            Action::Restart => "Restarting the matched jobs",
            Action::Delete => "Deleting the matched jobs",
        }
    }
}

/// The checked input of a bulk action.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkSpec {
    pub action: Action,
    pub filter: JobFilter,
}

impl BulkSpec {
    /// Read and check an input: a known action, a filter whose statuses the action can move,
    /// and, for restart and delete, at least one filter (as the purge asks).
    pub fn from_input(v: &Value) -> Result<BulkSpec, String> {
        let obj = v
            .as_object()
            .ok_or("the input is an object with `action` and `filter`")?;
        if let Some(k) = obj
            .keys()
            .find(|k| !["action", "filter"].contains(&k.as_str()))
        {
            return Err(format!("`{k}` is not a field of a bulk action"));
        }
        let action = Action::parse(
            v.get("action")
                .and_then(Value::as_str)
                .ok_or("`action` is required: cancel, restart or delete")?,
        )?;
        let filter = match v.get("filter") {
            None | Some(Value::Null) => JobFilter::default(),
            Some(f) => JobFilter::from_json(f).map_err(|e| format!("filter: {e}"))?,
        };
        let spec = BulkSpec { action, filter };
        spec.check()?;
        Ok(spec)
    }

    fn check(&self) -> Result<(), String> {
        if self.action != Action::Cancel && self.filter.is_empty() {
            return Err(format!(
                "a bulk {} needs at least one filter",
                self.action.as_str()
            ));
        }
        if let Some(s) = self
            .filter
            .statuses
            .iter()
            .find(|s| !self.action.moves_from().contains(s))
        {
            let can = self
                .action
                .moves_from()
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(format!(
                "a bulk {} acts on {can} jobs; `{s}` is not one of them",
                self.action.as_str()
            ));
        }
        Ok(())
    }

    pub fn to_input(&self) -> Value {
        json!({"action": self.action.as_str(), "filter": self.filter.to_json()})
    }
}

/// What became of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Moved (for a cancel of a running job: its stop was asked).
    Acted,
    /// The state machine refused the move (the job is in a state the action cannot move).
    IllegalState,
    /// The job was deleted meanwhile.
    Gone,
}

/// The jobs a bulk action acts on, and the moves (the engine implements it).
#[async_trait]
pub trait JobActions: Send + Sync {
    /// When job `id` was created.
    async fn created(&self, id: Uuid) -> Result<DateTime<Utc>, String>;
    /// How many jobs match now.
    async fn count(&self, filter: &JobFilter) -> Result<u64, String>;
    /// Ids of matching jobs after `after` and up to `upto`, ascending, at most `limit`.
    async fn ids(
        &self,
        filter: &JobFilter,
        after: Option<Uuid>,
        upto: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<Uuid>, String>;
    /// Move job `id` for bulk action `by`, leaving its note in the job's state message. A
    /// restart moves only a job that ended before `before`.
    async fn act(
        &self,
        action: Action,
        id: Uuid,
        by: Uuid,
        before: DateTime<Utc>,
    ) -> Result<Outcome, String>;
    /// Those of `ids` whose state messages carry the note of bulk action `by`.
    async fn moved_by(&self, ids: &[Uuid], by: Uuid) -> Result<HashSet<Uuid>, String>;
    /// The last checkpoint the job of `lease` wrote, in any attempt.
    async fn saved(&self, lease: &RunLease) -> Result<Option<Value>, String>;
    /// Write a checkpoint under `lease`; false when the lease no longer holds.
    async fn save(&self, lease: &RunLease, state: &Value) -> Result<bool, String>;
}

/// The note a move leaves in the moved job's state message.
pub fn note(by: Uuid) -> String {
    format!("by bulk action {by}")
}

/// What a bulk action has done so far (its checkpoint).
#[derive(Debug, Clone, Default, PartialEq)]
struct Tally {
    /// Jobs up to this id are done.
    through: Option<Uuid>,
    /// The batch in flight ends at this id.
    upto: Option<Uuid>,
    /// Matches counted at the first start (the progress total).
    total: u64,
    acted: u64,
    illegal: u64,
    gone: u64,
    batches: u64,
}

impl Tally {
    fn to_json(&self) -> Value {
        json!({
            "through": self.through, "upto": self.upto, "total": self.total,
            "acted": self.acted, "illegalState": self.illegal, "gone": self.gone,
            "batches": self.batches,
        })
    }

    fn from_json(v: &Value) -> Tally {
        let id = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
        };
        let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        Tally {
            through: id("through"),
            upto: id("upto"),
            total: n("total"),
            acted: n("acted"),
            illegal: n("illegalState"),
            gone: n("gone"),
            batches: n("batches"),
        }
    }

    fn done(&self) -> u64 {
        self.acted + self.illegal + self.gone
    }

    fn count(&mut self, o: Outcome) {
        match o {
            Outcome::Acted => self.acted += 1,
            Outcome::IllegalState => self.illegal += 1,
            Outcome::Gone => self.gone += 1,
        }
    }
}

/// The `bulk` operation (control lane only; submitted by `POST /api/v1/jobs/actions`).
pub struct BulkOperation {
    jobs: Arc<dyn JobActions>,
}

impl BulkOperation {
    pub fn new(jobs: Arc<dyn JobActions>) -> BulkOperation {
        BulkOperation { jobs }
    }
}

fn storage(e: String) -> OpError {
    OpError::failed("storage", e)
}

#[async_trait]
impl Operation for BulkOperation {
    fn name(&self) -> &str {
        crate::domain::lane::BULK
    }
    fn description(&self) -> &str {
        "Cancels, restarts or deletes the jobs a filter matched when it was made, in batches \
         (POST /api/v1/jobs/actions)."
    }
    fn input_schema(&self) -> Value {
        json!({"type": "object", "required": ["action"], "properties": {
            "action": {"enum": ["cancel", "restart", "delete"]},
            "filter": {"type": "object"}}})
    }
    fn validate(&self, input: &Value) -> Result<(), String> {
        BulkSpec::from_input(input).map(|_| ())
    }
    async fn run(&self, ctx: &mut Context) -> Result<Value, OpError> {
        let spec = BulkSpec::from_input(ctx.input()).map_err(|e| OpError::failed("input", e))?;
        let me = ctx.lease().job_id();
        let made = self.jobs.created(me).await.map_err(storage)?;
        let earlier = |t: Option<DateTime<Utc>>| Some(t.map_or(made, |t| t.min(made)));
        let mut filter = spec.filter.clone();
        filter.owner = Some(ctx.owner().to_string());
        filter.work_lane_only = true;
        filter.created_before = earlier(filter.created_before);
        if spec.action == Action::Restart {
            filter.finished_before = earlier(filter.finished_before);
        }
        // The part of the filter no move changes: a job it matched still matches it after
        // being moved (used to find the moved jobs of a batch in flight at a crash).
        let fixed = JobFilter {
            statuses: Vec::new(),
            finished_after: None,
            finished_before: None,
            ..filter.clone()
        };
        let action = spec.action;
        ctx.stage(1, 1, action.phase()).await?;
        let mut tally = match self.jobs.saved(ctx.lease()).await.map_err(storage)? {
            Some(v) => {
                let t = Tally::from_json(&v);
                ctx.message(
                    Level::Info,
                    &format!(
                        "going on after {} of {} jobs ({} {}, {} skipped)",
                        t.done(),
                        t.total,
                        t.acted,
                        action.participle(),
                        t.illegal + t.gone
                    ),
                )
                .await?;
                t
            }
            None => Tally {
                total: self.jobs.count(&filter).await.map_err(storage)?,
                ..Tally::default()
            },
        };
        ctx.progress(tally.done() as i64, Some(tally.total as i64), "jobs")
            .await?;
        // The batch in flight when the last run stopped: walked again, every job that stayed
        // where the fixed part of the filter put it; those the last run moved are counted.
        if let Some(upto) = tally.upto {
            let mut after = tally.through;
            loop {
                ctx.checkpoint()?;
                let page = self
                    .jobs
                    .ids(&fixed, after, Some(upto), BATCH)
                    .await
                    .map_err(storage)?;
                let Some(&last) = page.last() else { break };
                let moved = self.jobs.moved_by(&page, me).await.map_err(storage)?;
                let still: HashSet<Uuid> = self
                    .jobs
                    .ids(&filter, after, Some(last), BATCH)
                    .await
                    .map_err(storage)?
                    .into_iter()
                    .collect();
                for id in page {
                    if moved.contains(&id) {
                        tally.count(Outcome::Acted);
                    } else if still.contains(&id) {
                        let o = self.jobs.act(action, id, me, made).await.map_err(storage)?;
                        tally.count(o);
                    }
                }
                after = Some(last);
            }
            tally.through = Some(upto);
            tally.upto = None;
        }
        loop {
            ctx.checkpoint()?;
            let ids = self
                .jobs
                .ids(&filter, tally.through, None, BATCH)
                .await
                .map_err(storage)?;
            let Some(&last) = ids.last() else { break };
            tally.upto = Some(last);
            if !self
                .jobs
                .save(ctx.lease(), &tally.to_json())
                .await
                .map_err(storage)?
            {
                return Err(OpError::Cancelled);
            }
            let before = tally.clone();
            for &id in &ids {
                let o = self.jobs.act(action, id, me, made).await.map_err(storage)?;
                tally.count(o);
            }
            tally.batches += 1;
            tally.through = Some(last);
            tally.upto = None;
            let skipped = (tally.illegal + tally.gone) - (before.illegal + before.gone);
            ctx.message(
                Level::Info,
                &format!(
                    "batch {}: {} {}, {skipped} skipped; {} of {} jobs done",
                    tally.batches,
                    tally.acted - before.acted,
                    action.participle(),
                    tally.done(),
                    tally.total.max(tally.done())
                ),
            )
            .await?;
            ctx.progress(
                tally.done() as i64,
                Some(tally.total.max(tally.done()) as i64),
                "jobs",
            )
            .await?;
        }
        ctx.flush().await?;
        Ok(json!({
            "action": action.as_str(),
            "filter": filter.to_json(),
            "matched": tally.done(),
            "acted": tally.acted,
            "skipped": tally.illegal + tally.gone,
            "skippedBecause": {"illegalState": tally.illegal, "gone": tally.gone},
            "batches": tally.batches,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_checked() {
        let ok =
            BulkSpec::from_input(&json!({"action": "cancel", "filter": {"status": ["QUEUED"]}}))
                .unwrap();
        assert_eq!(ok.action, Action::Cancel);
        assert_eq!(BulkSpec::from_input(&ok.to_input()).unwrap(), ok);
        // Cancel may act on every job of the tenant; restart and delete need a filter.
        assert!(BulkSpec::from_input(&json!({"action": "cancel"})).is_ok());
        for bad in [
            json!({"action": "delete"}),
            json!({"action": "restart", "filter": {}}),
            json!({"action": "explode", "filter": {"status": ["QUEUED"]}}),
            json!({"action": "cancel", "filter": {"status": ["SUCCESS"]}}),
            json!({"action": "restart", "filter": {"status": ["QUEUED"]}}),
            json!({"action": "cancel", "filter": {"status": ["NOPE"]}}),
            json!({"action": "cancel", "filter": {"createdAfter": "yesterday"}}),
            json!({"action": "cancel", "owner": "acme"}),
            json!([]),
        ] {
            assert!(BulkSpec::from_input(&bad).is_err(), "{bad}");
        }
    }

    use std::collections::HashMap;
    use std::sync::Mutex;

    use crate::domain::OutputFile;
    use crate::operations::{FileDone, FileSink, Host, Report};

    /// Jobs in memory: each id's status, and how often each was moved; the port fails (as a
    /// crash would stop the run) once `crash_after` moves were made.
    #[derive(Default)]
    struct World {
        jobs: Mutex<Vec<(Uuid, JobStatus)>>,
        moves: Mutex<HashMap<Uuid, u32>>,
        saved: Mutex<Option<Value>>,
        crash_after: Mutex<Option<usize>>,
    }

    #[async_trait]
    impl JobActions for World {
        async fn created(&self, _id: Uuid) -> Result<DateTime<Utc>, String> {
            Ok(Utc::now())
        }
        async fn count(&self, f: &JobFilter) -> Result<u64, String> {
            Ok(self.ids(f, None, None, u64::MAX).await?.len() as u64)
        }
        async fn ids(
            &self,
            f: &JobFilter,
            after: Option<Uuid>,
            upto: Option<Uuid>,
            limit: u64,
        ) -> Result<Vec<Uuid>, String> {
            let jobs = self.jobs.lock().unwrap();
            Ok(jobs
                .iter()
                .filter(|(id, st)| {
                    (f.statuses.is_empty() || f.statuses.contains(st))
                        && after.is_none_or(|a| *id > a)
                        && upto.is_none_or(|u| *id <= u)
                })
                .map(|(id, _)| *id)
                .take(limit as usize)
                .collect())
        }
        async fn act(
            &self,
            action: Action,
            id: Uuid,
            _by: Uuid,
            _before: DateTime<Utc>,
        ) -> Result<Outcome, String> {
            assert_eq!(action, Action::Cancel);
            let mut crash = self.crash_after.lock().unwrap();
            if let Some(n) = crash.as_mut() {
                if *n == 0 {
                    *crash = None;
                    return Err("the process died".into());
                }
                *n -= 1;
            }
            let mut jobs = self.jobs.lock().unwrap();
            let job = jobs.iter_mut().find(|(j, _)| *j == id).unwrap();
            if job.1 != JobStatus::Queued {
                return Ok(Outcome::IllegalState);
            }
            job.1 = JobStatus::Cancelled;
            *self.moves.lock().unwrap().entry(id).or_default() += 1;
            Ok(Outcome::Acted)
        }
        async fn moved_by(&self, ids: &[Uuid], _by: Uuid) -> Result<HashSet<Uuid>, String> {
            let moves = self.moves.lock().unwrap();
            Ok(ids
                .iter()
                .filter(|i| moves.contains_key(i))
                .copied()
                .collect())
        }
        async fn saved(&self, _lease: &RunLease) -> Result<Option<Value>, String> {
            Ok(self.saved.lock().unwrap().clone())
        }
        async fn save(&self, _lease: &RunLease, state: &Value) -> Result<bool, String> {
            *self.saved.lock().unwrap() = Some(state.clone());
            Ok(true)
        }
    }

    /// A host that keeps the messages.
    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    #[async_trait]
    impl Host for Log {
        async fn report(&self, _r: Report) -> Result<(), OpError> {
            Ok(())
        }
        async fn message(&self, _level: Level, text: &str) -> Result<(), OpError> {
            self.0.lock().unwrap().push(text.to_string());
            Ok(())
        }
        async fn open_input(
            &self,
        ) -> Result<Box<dyn tokio::io::AsyncBufRead + Send + Unpin>, OpError> {
            Err(OpError::failed("input", "none"))
        }
        async fn create_file(&self, _n: &str, _c: &str) -> Result<FileSink, OpError> {
            Err(OpError::failed("storage", "none"))
        }
        async fn add_file(&self, _f: FileDone) -> Result<OutputFile, OpError> {
            Err(OpError::failed("storage", "none"))
        }
    }

    async fn run_once(op: &BulkOperation, log: Arc<Log>) -> Result<Value, OpError> {
        let lease = RunLease::granted(Uuid::now_v7(), 1, "node".into(), Utc::now());
        let mut ctx = Context::new(
            json!({"action": "cancel", "filter": {"status": ["QUEUED"]}}),
            log,
            tokio_util::sync::CancellationToken::new(),
            lease,
            "acme".into(),
            std::time::Duration::ZERO,
        );
        op.run(&mut ctx).await
    }

    /// A run stopped in the middle of a batch goes on from its checkpoint: the jobs of the
    /// interrupted batch it had moved are counted, not moved again (though the filter no longer
    /// matches them), and the counts add up to every job once.
    #[tokio::test]
    async fn a_run_stopped_mid_batch_goes_on_and_moves_each_job_once() {
        let world = Arc::new(World::default());
        let n = 250;
        {
            let mut jobs = world.jobs.lock().unwrap();
            for i in 0..n {
                // Every tenth job has ended already: skipped.
                let st = if i % 10 == 0 {
                    JobStatus::Success
                } else {
                    JobStatus::Queued
                };
                jobs.push((Uuid::now_v7(), st));
            }
        }
        let queued = n - n / 10;
        *world.crash_after.lock().unwrap() = Some(130);
        let op = BulkOperation::new(world.clone());
        let first = run_once(&op, Arc::new(Log::default())).await;
        assert!(matches!(first, Err(OpError::Failed { .. })), "{first:?}");
        assert_eq!(world.moves.lock().unwrap().len(), 130);
        let log = Arc::new(Log::default());
        let sum = run_once(&op, log.clone()).await.unwrap();
        assert_eq!(sum["acted"], queued, "{sum}");
        assert_eq!(sum["matched"], queued, "{sum}");
        assert_eq!(sum["skipped"], 0, "{sum}");
        let moves = world.moves.lock().unwrap();
        assert_eq!(moves.len(), queued);
        assert!(moves.values().all(|m| *m == 1), "{moves:?}");
        let log = log.0.lock().unwrap();
        assert!(
            log.iter()
                .any(|m| m.starts_with("going on after 100 of 225 jobs")),
            "{log:?}"
        );
    }

    #[test]
    fn a_tally_round_trips() {
        let t = Tally {
            through: Some(Uuid::now_v7()),
            upto: None,
            total: 7,
            acted: 3,
            illegal: 2,
            gone: 1,
            batches: 1,
        };
        assert_eq!(Tally::from_json(&t.to_json()), t);
        assert_eq!(t.done(), 6);
    }
}
