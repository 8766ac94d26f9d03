//! The writes of a running job, every one under its `RunLease` and checked by `fenced`, the
//! one condition that says a lease still holds: the claim that grants a lease, its renewal,
//! progress, messages, output files, the end of the run; and the recovery of runs whose lease
//! ran out. Lease times are the database's clock (`Driver::now_ms`), never a node's.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};
use uuid::Uuid;

use super::driver::{running_of, Limits};
use super::entities::{job_files, jobs};
use super::{from_ms, insert_message, listen, ms, to_file, to_job, Result, RunPatch, Store};
use crate::domain::concurrency::{Cap, Concurrency};
use crate::domain::{Job, JobStatus, Lane, Level, OutputFile, RunLease};

/// The answer to a renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Lease renewed until `until` (the database's clock); `cancel` is true when someone asked
    /// the job to stop.
    Alive { cancel: bool, until: DateTime<Utc> },
    /// The lease no longer holds: stop at once, write nothing.
    Lost,
}

/// What the check of a claim against its limits found.
enum Checked {
    /// Its limit (this one) is full: the claim is undone.
    Over(Cap),
    /// Within its limits, seen by the claim statement itself.
    Within,
    /// Within its limits, seen after waiting for the claims before it under the same limits.
    WithinAfterWaiting,
}

/// Whole milliseconds of a lease length.
fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl Store {
    /// The one condition of every write about a running job: the row is running, on the
    /// lease's attempt, owned by its node, and the lease has not run out by the database's clock.
    pub(super) fn fenced(&self, lease: &RunLease) -> Condition {
        Condition::all()
            .add(jobs::Column::Id.eq(lease.job_id().to_string()))
            .add(jobs::Column::Attempt.eq(lease.attempt()))
            .add(jobs::Column::LeaseOwner.eq(lease.owner()))
            .add(jobs::Column::Status.is_in(JobStatus::RUNNING.map(|s| s.as_str())))
            .add(Expr::col(jobs::Column::LeaseExpiresAt).gt(Expr::cust(self.driver.now_ms())))
    }

    /// Does `lease` still hold?
    pub async fn holds(&self, lease: &RunLease) -> Result<bool> {
        let n = jobs::Entity::find()
            .filter(self.fenced(lease))
            .count(&self.db)
            .await?;
        Ok(n == 1)
    }

    /// The database's clock.
    pub async fn db_now(&self) -> Result<DateTime<Utc>> {
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                format!("SELECT {} AS now", self.driver.now_ms()),
            ))
            .await?
            .ok_or_else(|| super::StoreError::Corrupt("the clock query answered nothing".into()))?;
        Ok(from_ms(row.try_get::<i64>("", "now")?))
    }

    /// Claim the oldest queued job of `lane` for `node` under a lease of `length` (from the
    /// database's clock): the job and the lease every write about this run must show. A job
    /// whose tenant or operation has as many running as `caps` allows, on every instance, waits.
    pub async fn claim(
        &self,
        node: &str,
        length: Duration,
        lane: Lane,
        caps: &Concurrency,
    ) -> Result<Option<(Job, RunLease)>> {
        // The limits a check below found full: the next try leaves their jobs waiting.
        let mut full: Vec<Cap> = Vec::new();
        loop {
            let limits = Limits { caps, full: &full };
            let stmt = self.driver.claim(node, millis(length), lane, &limits);
            // The claim and its STARTED message are one commit. The UPDATE is the
            // transaction's first statement, so on SQLite it takes the write lock before
            // reading anything.
            let turn = self.writing().await;
            let txn = self.db.begin().await?;
            let row = jobs::Entity::find().from_raw_sql(stmt).one(&txn).await?;
            let Some(row) = row else {
                txn.rollback().await?;
                return Ok(None);
            };
            let job = to_job(row)?;
            match self.over_limit(&txn, caps, &job).await? {
                Checked::Over(cap) => {
                    // Another instance claimed within the same limit first: this job waits.
                    txn.rollback().await?;
                    drop(turn);
                    full.push(cap);
                }
                Checked::Within => return self.claimed(txn, turn, job, node).await.map(Some),
                Checked::WithinAfterWaiting => {
                    // Started now, when its place is sure, not when the claim statement ran:
                    // a run that ended meanwhile ended before this one started.
                    let now = self.driver.now_ms();
                    let again = jobs::Entity::find()
                        .from_raw_sql(Statement::from_sql_and_values(
                            self.db.get_database_backend(),
                            format!(
                                "UPDATE jobs SET started_at = {now}, heartbeat_at = {now}, \
                                 updated_at = {now} WHERE id = {} RETURNING *",
                                self.driver.param(1)
                            ),
                            [job.id.to_string().into()],
                        ))
                        .one(&txn)
                        .await?;
                    let job = match again {
                        Some(row) => to_job(row)?,
                        None => job,
                    };
                    return self.claimed(txn, turn, job, node).await.map(Some);
                }
            }
        }
    }

    /// The limit this claim (not committed yet) would take past its number, checked where the
    /// claim statement cannot see the other instances' claims: one claim per limit at a time,
    /// each counting after the one before it has committed.
    async fn over_limit(
        &self,
        txn: &DatabaseTransaction,
        caps: &Concurrency,
        job: &Job,
    ) -> Result<Checked> {
        let mut waited = false;
        for cap in caps.caps_of(job.owner.as_deref(), &job.operation) {
            let Some(turn) = self.driver.limit_turn(&cap.key()) else {
                return Ok(Checked::Within);
            };
            waited = true;
            txn.execute_raw(turn).await?;
            let (sql, values) = running_of(&cap, |n| self.driver.param(n));
            let n: i64 = txn
                .query_one_raw(Statement::from_sql_and_values(
                    self.db.get_database_backend(),
                    sql,
                    values,
                ))
                .await?
                .map(|r| r.try_get("", "n"))
                .transpose()?
                .unwrap_or(0);
            if n > cap.limit() as i64 {
                return Ok(Checked::Over(cap));
            }
        }
        Ok(if waited {
            Checked::WithinAfterWaiting
        } else {
            Checked::Within
        })
    }

    /// Record a claim made in `txn` (its message, its news) and commit it.
    async fn claimed(
        &self,
        txn: DatabaseTransaction,
        turn: Option<tokio::sync::MutexGuard<'_, ()>>,
        job: Job,
        node: &str,
    ) -> Result<(Job, RunLease)> {
        let Some(deadline) = job.lease.as_ref().map(|l| l.expires) else {
            txn.rollback().await?;
            return Err(super::StoreError::Corrupt("a claim wrote no lease".into()));
        };
        self.announce(&txn, listen::payloads(job.id, false, false))
            .await?;
        insert_message(
            &txn,
            job.id,
            Level::Info,
            "state",
            &format!("STARTED on node {node} (attempt {})", job.attempt),
            job.attempt,
            Utc::now(),
        )
        .await?;
        txn.commit().await?;
        drop(turn);
        self.changes.touch(job.id);
        let lease = RunLease::granted(job.id, job.attempt, node.to_string(), deadline);
        Ok((job, lease))
    }

    /// Renew `lease` for another `length` and report whether a stop was asked.
    pub async fn heartbeat(&self, lease: &RunLease, length: Duration) -> Result<Beat> {
        let now = self.driver.now_ms();
        let stmt = Query::update()
            .table(jobs::Entity)
            .value(
                jobs::Column::LeaseExpiresAt,
                Expr::cust(format!("{now} + {}", millis(length))),
            )
            .value(jobs::Column::HeartbeatAt, Expr::cust(now))
            .cond_where(self.fenced(lease))
            .returning(
                Query::returning()
                    .columns([jobs::Column::CancelRequested, jobs::Column::LeaseExpiresAt]),
            )
            .to_owned();
        let backend = self.db.get_database_backend();
        let turn = self.writing().await;
        let row = self.db.query_one_raw(backend.build(&stmt)).await?;
        drop(turn);
        let Some(row) = row else {
            return Ok(Beat::Lost);
        };
        Ok(Beat::Alive {
            cancel: row.try_get::<bool>("", "cancel_requested")?,
            until: from_ms(row.try_get::<i64>("", "lease_expires_at")?),
        })
    }

    /// Progress, stage and phase of a run; false when the lease no longer holds. A status in
    /// the patch is written only from a status the state machine lets move to it.
    pub async fn worker_update(&self, lease: &RunLease, patch: RunPatch) -> Result<bool> {
        let mut am = jobs::ActiveModel {
            updated_at: Set(ms(Utc::now())),
            ..Default::default()
        };
        let mut cond = self.fenced(lease);
        if let Some(s) = patch.status {
            am.status = Set(s.as_str().to_string());
            cond = cond.add(jobs::Column::Status.is_in(s.sources().map(|s| s.as_str())));
        }
        if let Some(p) = patch.phase {
            am.phase = Set(Some(p));
        }
        if let Some(t) = patch.total_stages {
            am.total_stages = Set(t);
        }
        if let Some(c) = patch.current_stage {
            am.current_stage = Set(c);
        }
        if let Some(p) = patch.progress {
            am.progress_amount = Set(p.amount);
            am.progress_total = Set(p.total);
            am.progress_unit = Set(p.unit);
        }
        let turn = self.writing().await;
        let res = jobs::Entity::update_many()
            .set(am)
            .col_expr(
                jobs::Column::Version,
                Expr::col(jobs::Column::Version).add(1),
            )
            .filter(cond)
            .exec(&self.db)
            .await?;
        drop(turn);
        if res.rows_affected == 1 {
            self.changes.touch(lease.job_id());
            self.announce(&self.db, listen::payloads(lease.job_id(), false, false))
                .await?;
        }
        Ok(res.rows_affected == 1)
    }

    /// Run `write` in a transaction that first checks `lease` on the job's row (and on
    /// PostgreSQL locks the row, so whoever takes the job over waits for this commit); nothing
    /// is written and false is answered when the lease no longer holds.
    async fn under_lease<F>(&self, lease: &RunLease, write: F) -> Result<bool>
    where
        F: for<'t> FnOnce(
            &'t sea_orm::DatabaseTransaction,
        ) -> futures::future::BoxFuture<
            't,
            std::result::Result<(), sea_orm::DbErr>,
        >,
    {
        let turn = self.writing().await;
        let txn = self.db.begin().await?;
        let held = jobs::Entity::update_many()
            .col_expr(jobs::Column::UpdatedAt, Expr::value(ms(Utc::now())))
            .filter(self.fenced(lease))
            .exec(&txn)
            .await?;
        if held.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(false);
        }
        write(&txn).await?;
        txn.commit().await?;
        drop(turn);
        Ok(true)
    }

    /// A line of the run's log, tagged with its attempt; false when the lease no longer holds.
    pub async fn worker_message(
        &self,
        lease: &RunLease,
        level: Level,
        kind: &str,
        text: &str,
    ) -> Result<bool> {
        let (id, attempt) = (lease.job_id(), lease.attempt());
        let (kind, text) = (kind.to_string(), text.to_string());
        let written = self
            .under_lease(lease, move |txn| {
                Box::pin(async move {
                    insert_message(txn, id, level, &kind, &text, attempt, Utc::now())
                        .await
                        .map_err(|e| sea_orm::DbErr::Custom(e.to_string()))
                })
            })
            .await?;
        if written {
            // Followers of the log (here and on other instances) read the new line at once.
            self.changes.touch(id);
            self.announce(&self.db, listen::payloads(id, false, false))
                .await?;
        }
        Ok(written)
    }

    /// Record an output file of the run, as written by the lease's attempt; false (and no
    /// record) when the lease no longer holds.
    pub async fn add_file(&self, lease: &RunLease, f: &OutputFile) -> Result<bool> {
        let row = job_files::ActiveModel {
            id: Set(f.id.to_string()),
            job_id: Set(lease.job_id().to_string()),
            name: Set(f.name.clone()),
            content_type: Set(f.content_type.clone()),
            size: Set(f.size),
            etag: Set(f.etag.clone()),
            object_key: Set(f.object_key.clone()),
            rows: Set(f.rows),
            created_at: Set(ms(f.created)),
            consumed: Set(f.consumed),
            attempt: Set(lease.attempt()),
        };
        let done = self
            .under_lease(lease, move |txn| {
                Box::pin(async move {
                    job_files::Entity::insert(row)
                        .exec_without_returning(txn)
                        .await
                        .map(|_| ())
                })
            })
            .await?;
        if done {
            self.changes.touch(lease.job_id());
        }
        Ok(done)
    }

    /// End the run of `lease`: `change` moves the job out of its running state (to an end
    /// state, or back to QUEUED as the next attempt) and names the message to log. Through the
    /// one `transition`, so the state machine holds, with the lease checked in the same
    /// compare-and-set. None when the lease no longer holds.
    pub async fn end_run(
        &self,
        lease: &RunLease,
        mut change: impl FnMut(&mut Job) -> (Level, String),
    ) -> Result<Option<Job>> {
        let res = self
            .transition_under(lease.job_id(), Some(lease), |j| {
                if !holds(j, lease) {
                    return Err(());
                }
                let (level, text) = change(j);
                j.lease = None;
                Ok(Some((level, "state".to_string(), text)))
            })
            .await?;
        Ok(res.ok().flatten())
    }

    /// Running jobs whose lease ran out before `now` (the database's clock).
    pub async fn expired_leases(&self, now: DateTime<Utc>) -> Result<Vec<Job>> {
        jobs::Entity::find()
            .filter(jobs::Column::Status.is_in(JobStatus::RUNNING.map(|s| s.as_str())))
            .filter(jobs::Column::LeaseExpiresAt.lt(ms(now)))
            .order_by_asc(jobs::Column::Id)
            .limit(100)
            .all(&self.db)
            .await?
            .into_iter()
            .map(to_job)
            .collect()
    }

    /// The files of `job_id` written by attempts before `attempt` (no longer its outputs).
    pub async fn files_before(&self, job_id: Uuid, attempt: i32) -> Result<Vec<OutputFile>> {
        job_files::Entity::find()
            .filter(job_files::Column::JobId.eq(job_id.to_string()))
            .filter(job_files::Column::Attempt.lt(attempt))
            .all(&self.db)
            .await?
            .into_iter()
            .map(to_file)
            .collect()
    }

    /// Forget file records (their objects are removed by the caller first).
    pub async fn forget_files(&self, ids: &[Uuid]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let _turn = self.writing().await;
        job_files::Entity::delete_many()
            .filter(job_files::Column::Id.is_in(ids.iter().map(Uuid::to_string)))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

/// Does `job`, as read, still belong to the run of `lease`?
fn holds(job: &Job, lease: &RunLease) -> bool {
    job.attempt == lease.attempt()
        && job.status.is_running()
        && job.lease.as_ref().map(|l| l.owner.as_str()) == Some(lease.owner())
}

/// The condition that keeps only a job's outputs: files of the attempt the job is on.
pub(super) fn current_attempt() -> sea_orm::sea_query::SimpleExpr {
    Expr::cust(
        "job_files.attempt = (SELECT jobs.attempt FROM jobs WHERE jobs.id = job_files.job_id)",
    )
}
