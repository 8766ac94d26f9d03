//! Persistence: the only room that knows SQL, sea-orm entities, or which database is in use.
//! Everything it hands out is a domain type.

mod changes;
mod driver;
mod endpoints;
mod entities;
mod feed;
mod idempotency;
mod keys;
mod listen;
mod outbox;
mod run;
mod stats;
mod submit;
mod tools;

pub use changes::{Changes, Ring, Snapshot, Subscription};
pub use endpoints::Endpoint;
pub use idempotency::{KeptAnswer, Reservation};
pub use keys::KeyRecord;
pub use listen::Signal;
pub use outbox::DeliveryState;
pub use run::Beat;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, Database, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::{
    Cursor, Job, JobFilter, JobOptions, JobStatus, Lease, Level, Message, OutputFile, Progress,
};
use entities::{job_files, job_messages, jobs, settings};

/// Errors of the store room.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the job changed concurrently too often; try again")]
    Contention,
    #[error("a job cannot move from {0} to {1}")]
    IllegalMove(JobStatus, JobStatus),
}

/// Shorthand for store results.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Milliseconds since the epoch, the stored form of every time.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

/// A page of the audit collection.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Job>,
    pub next: Option<Cursor>,
    pub prev: Option<Cursor>,
}

/// What a worker writes about the job it runs; unset fields are left alone.
#[derive(Debug, Clone, Default)]
pub struct RunPatch {
    pub status: Option<JobStatus>,
    pub phase: Option<String>,
    pub total_stages: Option<i32>,
    pub current_stage: Option<i32>,
    pub progress: Option<Progress>,
}

/// The store: a pool of connections to SQLite or PostgreSQL.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// Everything that differs between the databases.
    driver: std::sync::Arc<dyn driver::Driver>,
    changes: std::sync::Arc<Changes>,
    url: String,
    /// Whether live keys exist, and when that was last read.
    keys_known: std::sync::Arc<std::sync::Mutex<Option<(bool, std::time::Instant)>>>,
    /// The group-commit writer of submissions.
    submissions: Option<submit::Queue>,
    /// On SQLite, the one writer at a time inside this process (see `writing`).
    gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The connection of large writes (import batches): on a SQLite file, the submission
    /// writer's own connection, whose page cache stays warm between batches; else the pool.
    bulk: DatabaseConnection,
}

impl Store {
    /// Connect to `url` (`sqlite://path?mode=rwc` or `postgres://…`); SQLite runs in WAL mode.
    pub async fn connect(url: &str) -> Result<Store> {
        let driver: std::sync::Arc<dyn driver::Driver> = driver::for_url(url).into();
        let db = Database::connect(driver.options(url, driver.pool_size())).await?;
        let mut store = Store {
            bulk: db.clone(),
            db,
            driver: driver.clone(),
            changes: Default::default(),
            url: url.to_string(),
            keys_known: Default::default(),
            submissions: None,
            gate: Default::default(),
        };
        // Where the database takes one writer at a time, the submission writer keeps a
        // connection of its own: its page cache stays warm (a pooled connection finds its cache
        // stale after every other connection's write) and it never waits for the pool.
        let mut writer = store.clone();
        if driver.one_writer() && !url.contains(":memory:") {
            writer.db = Database::connect(driver.options(url, 1)).await?;
            store.bulk = writer.db.clone();
        }
        store.submissions = Some(submit::start(writer));
        Ok(store)
    }

    /// Wait for this process's turn to write. SQLite has one writer; connections that meet at
    /// its lock back off in sleeps of milliseconds, so the frequent writers of this process (the
    /// submission writer, claims, transitions, progress, heartbeats, import batches) queue here
    /// instead. PostgreSQL needs no turn.
    pub(crate) async fn writing(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if self.driver.one_writer() {
            Some(self.gate.lock().await)
        } else {
            None
        }
    }

    /// Apply every pending migration (several instances may start at once).
    pub async fn migrate(&self) -> Result<()> {
        self.driver.migrate(self).await
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.driver.backend()
    }

    /// The change signals of the jobs written through this store.
    pub fn changes(&self) -> &std::sync::Arc<Changes> {
        &self.changes
    }

    /// Current versions of some jobs, in one query (for noticing writes of other instances).
    pub async fn versions(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>> {
        let rows: Vec<(String, i64)> = jobs::Entity::find()
            .select_only()
            .column(jobs::Column::Id)
            .column(jobs::Column::Version)
            .filter(jobs::Column::Id.is_in(ids.iter().map(|i| i.to_string())))
            .into_tuple()
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|(id, v)| Ok((parse_id(&id)?, v)))
            .collect()
    }

    /// Stored jobs (tombstones aside) by tenant, status and operation, from the counts the
    /// database keeps (`stats.rs`), not by counting jobs.
    pub async fn count_by_status(&self) -> Result<Vec<(String, String, String, i64)>> {
        Ok(self
            .job_counts(None)
            .await?
            .into_iter()
            .filter(|r| r.status != JobStatus::Deleted.as_str())
            .map(|r| (r.owner, r.status, r.operation, r.n))
            .collect())
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<()> {
        self.db.ping().await?;
        Ok(())
    }

    // ----- jobs -------------------------------------------------------------------------

    /// A job by its task number (seed 003).
    pub async fn job_by_task_id(&self, task_id: i64) -> Result<Option<Job>> {
        jobs::Entity::find()
            .filter(jobs::Column::TaskId.eq(task_id))
            .one(&self.db)
            .await?
            .map(to_job)
            .transpose()
    }

    /// A job by its short reference (the seed 000 `task_reference`).
    pub async fn job_by_reference(&self, reference: &str) -> Result<Option<Job>> {
        jobs::Entity::find()
            .filter(jobs::Column::Reference.eq(reference))
            .one(&self.db)
            .await?
            .map(to_job)
            .transpose()
    }

    /// One job by id, tombstones included.
    pub async fn get_job(&self, id: Uuid) -> Result<Option<Job>> {
        jobs::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .map(to_job)
            .transpose()
    }

    /// Read, change and write a job under optimistic concurrency (compare on `version`): the
    /// one way a job's status changes outside a claim (and a run's progress).
    ///
    /// `change` sees the current job and either edits it (returning a message to log) or refuses
    /// with its own error; it may be called again if the job changed meanwhile. A change of
    /// status the state machine does not allow is `StoreError::IllegalMove`, and nothing is
    /// written.
    pub async fn transition<E>(
        &self,
        id: Uuid,
        change: impl FnMut(&mut Job) -> std::result::Result<Option<(Level, String, String)>, E>,
    ) -> Result<std::result::Result<Option<Job>, E>> {
        self.transition_under(id, None, change).await
    }

    /// `transition`, and when `lease` is given, only while it holds (`run::fenced`, in the
    /// same compare-and-set).
    async fn transition_under<E>(
        &self,
        id: Uuid,
        lease: Option<&crate::domain::RunLease>,
        mut change: impl FnMut(&mut Job) -> std::result::Result<Option<(Level, String, String)>, E>,
    ) -> Result<std::result::Result<Option<Job>, E>> {
        for _ in 0..20 {
            let Some(old) = self.get_job(id).await? else {
                return Ok(Ok(None));
            };
            let mut new = old.clone();
            let msg = match change(&mut new) {
                Ok(m) => m,
                Err(e) => return Ok(Err(e)),
            };
            if new == old {
                return Ok(Ok(Some(old)));
            }
            if new.status != old.status && !old.status.can_move_to(new.status) {
                return Err(StoreError::IllegalMove(old.status, new.status));
            }
            new.version = old.version + 1;
            new.updated = Utc::now();
            let mut cas = Condition::all()
                .add(jobs::Column::Id.eq(id.to_string()))
                .add(jobs::Column::Version.eq(old.version));
            if let Some(lease) = lease {
                cas = cas.add(self.fenced(lease));
            }
            let turn = self.writing().await;
            let txn = self.db.begin().await?;
            let res = jobs::Entity::update_many()
                .set(diff(&old, &new))
                .filter(cas)
                .exec(&txn)
                .await?;
            if res.rows_affected == 1 {
                if let Some((level, kind, text)) = msg {
                    insert_message(&txn, id, level, &kind, &text, new.attempt, new.updated).await?;
                }
                // The deliveries of an end state are written with it, or not at all.
                let ended = new.status.is_end() && !old.status.is_end();
                let queued = if ended {
                    outbox::enqueue(&txn, &new).await?
                } else {
                    0
                };
                self.announce(
                    &txn,
                    listen::payloads(
                        id,
                        new.status == JobStatus::Queued && old.status != JobStatus::Queued,
                        new.cancel_requested && !old.cancel_requested,
                    ),
                )
                .await?;
                txn.commit().await?;
                self.changes.touch(id);
                if queued > 0 {
                    self.changes.outbox.notify_waiters();
                    self.changes.outbox.notify_one();
                }
                return Ok(Ok(Some(new)));
            }
            // The job changed meanwhile (read it again), or the lease no longer holds: then
            // there is nothing to write, whatever the row shows.
            txn.rollback().await?;
            drop(turn);
            if let Some(lease) = lease {
                if !self.holds(lease).await? {
                    return Ok(Ok(None));
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Err(StoreError::Contention)
    }

    /// The audit collection: one page in id (= creation) order.
    pub async fn list_jobs(
        &self,
        filter: &JobFilter,
        descending: bool,
        cursor: Option<Cursor>,
        limit: u64,
    ) -> Result<Page> {
        let mut q = jobs::Entity::find().filter(condition(filter));
        let backwards = cursor.map(|c| c.backwards).unwrap_or(false);
        // Walking backwards is walking the other sort order from the cursor, then flipping.
        let walk_desc = descending != backwards;
        if let Some(c) = cursor {
            let at = c.after.to_string();
            q = if walk_desc {
                q.filter(jobs::Column::Id.lt(at))
            } else {
                q.filter(jobs::Column::Id.gt(at))
            };
        }
        q = if walk_desc {
            q.order_by_desc(jobs::Column::Id)
        } else {
            q.order_by_asc(jobs::Column::Id)
        };
        // Every column the list renders, and not the input: whatever was submitted, a page
        // reads the same few bytes per job (a large input is in the object store anyway).
        let q = feed::without_input(q);
        let mut rows = q.limit(limit + 1).all(&self.db).await?;
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        if backwards {
            rows.reverse();
        }
        let items: Vec<Job> = rows.into_iter().map(to_job).collect::<Result<_>>()?;
        let first = items.first().map(|j| j.id);
        let last = items.last().map(|j| j.id);
        let (next, prev) = if backwards {
            (
                last.map(|id| Cursor {
                    after: id,
                    backwards: false,
                }),
                first.filter(|_| more).map(|id| Cursor {
                    after: id,
                    backwards: true,
                }),
            )
        } else {
            (
                last.filter(|_| more).map(|id| Cursor {
                    after: id,
                    backwards: false,
                }),
                first.filter(|_| cursor.is_some()).map(|id| Cursor {
                    after: id,
                    backwards: true,
                }),
            )
        };
        Ok(Page { items, next, prev })
    }

    /// Ids of the jobs matching `filter` after `after` and up to `upto` (both optional), in
    /// ascending order, at most `limit` (a bulk action's batches).
    pub async fn job_ids(
        &self,
        filter: &JobFilter,
        after: Option<Uuid>,
        upto: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<Uuid>> {
        let mut q = jobs::Entity::find()
            .select_only()
            .column(jobs::Column::Id)
            .filter(condition(filter));
        if let Some(a) = after {
            q = q.filter(jobs::Column::Id.gt(a.to_string()));
        }
        if let Some(u) = upto {
            q = q.filter(jobs::Column::Id.lte(u.to_string()));
        }
        q.order_by_asc(jobs::Column::Id)
            .limit(limit)
            .into_tuple::<String>()
            .all(&self.db)
            .await?
            .iter()
            .map(|s| parse_id(s))
            .collect()
    }

    /// Those of `ids` with a state message that contains `note`.
    pub async fn noted_jobs(
        &self,
        ids: &[Uuid],
        note: &str,
    ) -> Result<std::collections::HashSet<Uuid>> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        job_messages::Entity::find()
            .select_only()
            .column(job_messages::Column::JobId)
            .distinct()
            .filter(job_messages::Column::JobId.is_in(ids.iter().map(|i| i.to_string())))
            .filter(job_messages::Column::Kind.eq("state"))
            .filter(job_messages::Column::Text.contains(note))
            .into_tuple::<String>()
            .all(&self.db)
            .await?
            .iter()
            .map(|s| parse_id(s))
            .collect()
    }

    /// How many jobs match a filter.
    pub async fn count_jobs(&self, filter: &JobFilter) -> Result<u64> {
        Ok(jobs::Entity::find()
            .filter(condition(filter))
            .count(&self.db)
            .await?)
    }

    /// Jobs matching `filter`, if there are at most `cap` of them (counting stops past it).
    pub async fn count_jobs_upto(&self, filter: &JobFilter, cap: u64) -> Result<Option<u64>> {
        let n = jobs::Entity::find()
            .select_only()
            .column(jobs::Column::Id)
            .filter(condition(filter))
            .limit(cap + 1)
            .count(&self.db)
            .await?;
        Ok((n <= cap).then_some(n))
    }

    /// Jobs in an end state matching `filter` (at most `limit`), for purging; with
    /// `tombstones`, deleted ones too (retention removes those as well).
    pub async fn ended_jobs(
        &self,
        filter: &JobFilter,
        limit: u64,
        tombstones: bool,
    ) -> Result<Vec<Job>> {
        let c = if tombstones {
            with_tombstones(filter)
        } else {
            condition(filter)
        };
        jobs::Entity::find()
            .filter(c)
            .filter(
                jobs::Column::Status.is_in(
                    JobStatus::END
                        .iter()
                        .chain([JobStatus::Deleted].iter())
                        .map(|s| s.as_str()),
                ),
            )
            .order_by_asc(jobs::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(to_job)
            .collect()
    }

    /// Remove an ended job's row and everything that hangs off it (messages, files, outcomes),
    /// only if it is still as `seen` (same version, an end state or a tombstone): a job
    /// restarted meanwhile is left alone. The files it had, for the caller to remove their
    /// objects; None when the job was left alone (or is gone already).
    pub async fn remove_job(&self, seen: &Job) -> Result<Option<Vec<OutputFile>>> {
        let sid = seen.id.to_string();
        let _turn = self.writing().await;
        let txn = self.db.begin().await?;
        let files = job_files::Entity::find()
            .filter(job_files::Column::JobId.eq(sid.clone()))
            .all(&txn)
            .await?
            .into_iter()
            .map(to_file)
            .collect::<Result<Vec<_>>>()?;
        let gone = jobs::Entity::delete_many()
            .filter(jobs::Column::Id.eq(sid.clone()))
            .filter(jobs::Column::Version.eq(seen.version))
            .filter(
                jobs::Column::Status.is_in(
                    JobStatus::END
                        .iter()
                        .chain([JobStatus::Deleted].iter())
                        .map(|s| s.as_str()),
                ),
            )
            .exec(&txn)
            .await?;
        if gone.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(None);
        }
        job_messages::Entity::delete_many()
            .filter(job_messages::Column::JobId.eq(sid.clone()))
            .exec(&txn)
            .await?;
        job_files::Entity::delete_many()
            .filter(job_files::Column::JobId.eq(sid.clone()))
            .exec(&txn)
            .await?;
        entities::record_outcomes::Entity::delete_many()
            .filter(entities::record_outcomes::Column::JobId.eq(sid.clone()))
            .exec(&txn)
            .await?;
        entities::delivery_attempts::Entity::delete_many()
            .filter(
                entities::delivery_attempts::Column::DeliveryId.in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(entities::deliveries::Column::Id)
                        .from(entities::deliveries::Entity)
                        .and_where(entities::deliveries::Column::JobId.eq(sid.clone()))
                        .to_owned(),
                ),
            )
            .exec(&txn)
            .await?;
        entities::deliveries::Entity::delete_many()
            .filter(entities::deliveries::Column::JobId.eq(sid))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        self.changes.touch(seen.id);
        Ok(Some(files))
    }

    // ----- messages ---------------------------------------------------------------------

    /// Append one line to a job's log.
    pub async fn append_message(
        &self,
        job_id: Uuid,
        level: Level,
        kind: &str,
        text: &str,
        attempt: i32,
    ) -> Result<()> {
        let _turn = self.writing().await;
        insert_message(&self.db, job_id, level, kind, text, attempt, Utc::now()).await
    }

    /// A job's log, oldest first.
    pub async fn messages(&self, job_id: Uuid) -> Result<Vec<Message>> {
        self.messages_after(job_id, 0, None).await
    }

    // ----- files ------------------------------------------------------------------------

    /// The outputs of several jobs (files of their current attempts), by job, in one query.
    pub async fn files_of(
        &self,
        job_ids: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, Vec<OutputFile>>> {
        let mut by_job: std::collections::HashMap<Uuid, Vec<OutputFile>> = Default::default();
        if job_ids.is_empty() {
            return Ok(by_job);
        }
        let rows = job_files::Entity::find()
            .filter(job_files::Column::JobId.is_in(job_ids.iter().map(Uuid::to_string)))
            .filter(run::current_attempt())
            .order_by_asc(job_files::Column::CreatedAt)
            .order_by_asc(job_files::Column::Id)
            .all(&self.db)
            .await?;
        for row in rows {
            let f = to_file(row)?;
            by_job.entry(f.job_id).or_default().push(f);
        }
        Ok(by_job)
    }

    /// A job's outputs (the files of its current attempt), oldest first.
    pub async fn files(&self, job_id: Uuid) -> Result<Vec<OutputFile>> {
        job_files::Entity::find()
            .filter(job_files::Column::JobId.eq(job_id.to_string()))
            .filter(run::current_attempt())
            .order_by_asc(job_files::Column::CreatedAt)
            .order_by_asc(job_files::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(to_file)
            .collect()
    }

    /// One output file (of its job's current attempt).
    pub async fn file(&self, id: Uuid) -> Result<Option<OutputFile>> {
        job_files::Entity::find_by_id(id.to_string())
            .filter(run::current_attempt())
            .one(&self.db)
            .await?
            .map(to_file)
            .transpose()
    }

    /// Mark a file read-once as consumed; true for the one caller that flipped it.
    pub async fn consume_file(&self, id: Uuid) -> Result<bool> {
        let res = job_files::Entity::update_many()
            .col_expr(job_files::Column::Consumed, Expr::value(true))
            .filter(job_files::Column::Id.eq(id.to_string()))
            .filter(job_files::Column::Consumed.eq(false))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected == 1)
    }

    // ----- settings ---------------------------------------------------------------------

    /// A stored setting; the first writer of a key wins.
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String> {
        settings::Entity::insert(settings::ActiveModel {
            key: Set(key.to_string()),
            value: Set(value.to_string()),
        })
        .on_conflict_do_nothing()
        .exec(&self.db)
        .await?;
        let row = settings::Entity::find_by_id(key.to_string())
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("setting {key} vanished")))?;
        Ok(row.value)
    }

    pub(crate) fn conn(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The connection of large writes (see `bulk`); on SQLite, use it inside `writing`.
    pub(crate) fn bulk(&self) -> &DatabaseConnection {
        &self.bulk
    }
}

/// The audit collection's condition: the filter's, and never a tombstone (a deleted job does
/// not exist for a reader; only retention still sees it).
fn condition(f: &JobFilter) -> Condition {
    with_tombstones(f).add(jobs::Column::Status.ne(JobStatus::Deleted.as_str()))
}

/// The filter's condition, tombstones included.
fn with_tombstones(f: &JobFilter) -> Condition {
    let mut c = Condition::all();
    if !f.statuses.is_empty() {
        c = c.add(jobs::Column::Status.is_in(f.statuses.iter().map(|s| s.as_str())));
    }
    if let Some(owner) = &f.owner {
        c = c.add(jobs::Column::Owner.eq(owner.clone()));
    }
    if let Some(op) = &f.operation {
        c = c.add(jobs::Column::Operation.eq(op.clone()));
    }
    if f.work_lane_only {
        c = c.add(
            jobs::Column::Operation
                .is_not_in(crate::domain::lane::CONTROL_OPERATIONS.iter().copied()),
        );
    }
    if let Some(cid) = &f.correlation_id {
        c = c.add(jobs::Column::CorrelationId.eq(cid.clone()));
    }
    if let Some(p) = f.priority {
        c = c.add(jobs::Column::Priority.eq(p));
    }
    if let Some(t) = f.created_after {
        c = c.add(jobs::Column::CreatedAt.gt(ms(t)));
    }
    if let Some(t) = f.created_before {
        c = c.add(jobs::Column::CreatedAt.lt(ms(t)));
    }
    if let Some(t) = f.finished_after {
        c = c.add(jobs::Column::FinishedAt.gt(ms(t)));
    }
    if let Some(t) = f.finished_before {
        c = c.add(jobs::Column::FinishedAt.lt(ms(t)));
    }
    if let Some(p) = &f.search {
        // The same on both databases: lower-cased on both sides (SQLite's LIKE ignores ASCII
        // case, PostgreSQL's does not), the pattern's own wildcards escaped.
        let mut pattern = String::with_capacity(p.len() + 1);
        for ch in p.to_lowercase().chars() {
            if matches!(ch, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(ch);
        }
        pattern.push('%');
        let like = |col: jobs::Column| {
            use sea_orm::sea_query::ExprTrait;
            Expr::expr(sea_orm::sea_query::Func::lower(Expr::col(col)))
                .like(sea_orm::sea_query::LikeExpr::new(pattern.clone()).escape('\\'))
        };
        c = c.add(
            Condition::any()
                .add(like(jobs::Column::Id))
                .add(like(jobs::Column::CorrelationId)),
        );
    }
    c
}

async fn insert_message(
    db: &impl ConnectionTrait,
    job_id: Uuid,
    level: Level,
    kind: &str,
    text: &str,
    attempt: i32,
    at: DateTime<Utc>,
) -> Result<()> {
    job_messages::Entity::insert(job_messages::ActiveModel {
        seq: NotSet,
        job_id: Set(job_id.to_string()),
        at: Set(ms(at)),
        level: Set(level.as_str().to_string()),
        kind: Set(kind.to_string()),
        text: Set(text.to_string()),
        attempt: Set(attempt),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

fn parse_id(s: &str) -> Result<Uuid> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("bad id {s}")))
}

fn parse_json(s: Option<String>) -> Result<Option<Value>> {
    s.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

fn to_job(m: jobs::Model) -> Result<Job> {
    let status: JobStatus = m
        .status
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("status {}", m.status)))?;
    let lease = match (m.lease_owner, m.lease_expires_at) {
        (Some(owner), Some(exp)) => Some(Lease {
            owner,
            expires: from_ms(exp),
            heartbeat: m.heartbeat_at.map(from_ms),
        }),
        _ => None,
    };
    Ok(Job {
        id: parse_id(&m.id)?,
        task_id: m.task_id.unwrap_or(0),
        owner: m.owner,
        reference: m.reference,
        operation: m.operation,
        status,
        phase: m.phase,
        total_stages: m.total_stages,
        current_stage: m.current_stage,
        progress: Progress {
            amount: m.progress_amount,
            total: m.progress_total,
            unit: m.progress_unit,
        },
        created: from_ms(m.created_at),
        started: m.started_at.map(from_ms),
        finished: m.finished_at.map(from_ms),
        updated: from_ms(m.updated_at),
        correlation_id: m.correlation_id,
        attempt: m.attempt,
        max_attempts: m.max_attempts,
        input: parse_json(Some(m.input))?.unwrap_or(Value::Null),
        input_blob: m.input_blob,
        options: JobOptions {
            keep_result: m.keep_result,
            priority: m.priority,
            not_before: m.not_before.map(from_ms),
            timeout: m
                .timeout_ms
                .map(|t| std::time::Duration::from_millis(t.max(0) as u64)),
            ..JobOptions::default()
        }
        .with_signals_json(parse_json(m.async_request)?.as_ref()),
        summary: parse_json(m.summary)?,
        error: parse_json(m.error)?,
        cancel_requested: m.cancel_requested,
        version: m.version,
        lease,
    })
}

fn json_text(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

fn to_active(j: &Job) -> jobs::ActiveModel {
    jobs::ActiveModel {
        id: Set(j.id.to_string()),
        reference: Set(j.reference.clone()),
        operation: Set(j.operation.clone()),
        status: Set(j.status.as_str().to_string()),
        phase: Set(j.phase.clone()),
        total_stages: Set(j.total_stages),
        current_stage: Set(j.current_stage),
        progress_amount: Set(j.progress.amount),
        progress_total: Set(j.progress.total),
        progress_unit: Set(j.progress.unit.clone()),
        created_at: Set(ms(j.created)),
        started_at: Set(j.started.map(ms)),
        finished_at: Set(j.finished.map(ms)),
        updated_at: Set(ms(j.updated)),
        correlation_id: Set(j.correlation_id.clone()),
        attempt: Set(j.attempt),
        max_attempts: Set(j.max_attempts),
        input: Set(j.input.to_string()),
        input_blob: Set(j.input_blob.clone()),
        keep_result: Set(j.options.keep_result),
        async_request: Set(json_text(&j.options.signals_json())),
        summary: Set(json_text(&j.summary)),
        error: Set(json_text(&j.error)),
        cancel_requested: Set(j.cancel_requested),
        version: Set(j.version),
        lease_owner: Set(j.lease.as_ref().map(|l| l.owner.clone())),
        lease_expires_at: Set(j.lease.as_ref().map(|l| ms(l.expires))),
        heartbeat_at: Set(j.lease.as_ref().and_then(|l| l.heartbeat.map(ms))),
        task_id: Set(Some(j.task_id).filter(|t| *t > 0)),
        owner: Set(j.owner.clone()),
        priority: Set(j.options.priority),
        not_before: Set(j.options.not_before.map(ms)),
        timeout_ms: Set(j.options.timeout.map(|d| d.as_millis() as i64)),
    }
}

/// Only the columns that changed, so a concurrent heartbeat's lease extension is not undone.
fn diff(old: &Job, new: &Job) -> jobs::ActiveModel {
    let a = to_active(old);
    let mut b = to_active(new);
    macro_rules! keep_if_same {
        ($($f:ident),*) => {$(
            if a.$f == b.$f { b.$f = NotSet; }
        )*};
    }
    keep_if_same!(
        id,
        reference,
        operation,
        status,
        phase,
        total_stages,
        current_stage,
        progress_amount,
        progress_total,
        progress_unit,
        created_at,
        started_at,
        finished_at,
        correlation_id,
        attempt,
        max_attempts,
        input,
        input_blob,
        keep_result,
        async_request,
        summary,
        error,
        cancel_requested,
        lease_owner,
        lease_expires_at,
        heartbeat_at,
        task_id,
        owner,
        priority,
        not_before,
        timeout_ms
    );
    b
}

fn to_file(m: job_files::Model) -> Result<OutputFile> {
    Ok(OutputFile {
        id: parse_id(&m.id)?,
        job_id: parse_id(&m.job_id)?,
        name: m.name,
        content_type: m.content_type,
        size: m.size,
        etag: m.etag,
        object_key: m.object_key,
        rows: m.rows,
        created: from_ms(m.created_at),
        consumed: m.consumed,
        attempt: m.attempt,
    })
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Statement};

    /// The bundled SQLite is built with `.cargo/config.toml`'s flags: no memory statistics and
    /// no page cache shared by every connection (their global mutexes serialised the readers).
    #[tokio::test]
    async fn sqlite_is_built_without_its_global_mutexes() {
        let store = super::Store::connect("sqlite::memory:").await.unwrap();
        let rows = store
            .conn()
            .query_all_raw(Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "PRAGMA compile_options",
            ))
            .await
            .unwrap();
        let options: Vec<String> = rows
            .iter()
            .map(|r| r.try_get_by_index::<String>(0).unwrap())
            .collect();
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
    }
}
