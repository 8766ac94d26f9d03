//! Group commit of submissions: concurrent `insert_job` calls are written by one task, many jobs
//! per transaction, and each caller is answered only after the commit that holds its job. A
//! `201` still means committed; SQLite's single writer is no longer fought over.

use sea_orm::sea_query::{Expr, Query, SqliteQueryBuilder};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DbBackend, EntityTrait, Iterable,
    QueryTrait, Statement, Value,
};
use sea_orm::{ActiveValue::NotSet, TransactionTrait};
use tokio::sync::{mpsc, oneshot};

use super::entities::{job_messages, jobs};
use super::{listen, ms, to_active, Result, Store, StoreError};
use crate::domain::{Job, Level};

/// Most jobs written by one transaction.
const BATCH: usize = 256;

pub(super) struct Pending {
    job: Job,
    message: String,
    reply: oneshot::Sender<Result<i64>>,
}

pub(super) type Queue = mpsc::Sender<Pending>;

/// Start the writer of `store` (which must not hold a queue itself, or the writer would keep
/// itself alive); it ends when every sender is gone.
pub(super) fn start(store: Store) -> Queue {
    let (tx, mut rx) = mpsc::channel::<Pending>(4 * BATCH);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            let jobs: Vec<(&Job, &str)> =
                batch.iter().map(|p| (&p.job, p.message.as_str())).collect();
            match store.write_jobs(&jobs).await {
                Ok(numbers) => {
                    for (p, n) in batch.into_iter().zip(numbers) {
                        let _ = p.reply.send(Ok(n));
                    }
                }
                // One bad job must not fail the others: write each alone.
                Err(_) if batch.len() > 1 => {
                    for p in batch {
                        let r = store
                            .write_jobs(&[(&p.job, p.message.as_str())])
                            .await
                            .map(|n| n[0]);
                        let _ = p.reply.send(r);
                    }
                }
                Err(e) => {
                    for p in batch {
                        let _ = p.reply.send(Err(StoreError::Corrupt(e.to_string())));
                    }
                }
            }
        }
    });
    tx
}

impl Store {
    /// Store a new job and its first message; gives it the next task number (written into
    /// `job`). Returns once the job is committed.
    pub async fn insert_job(&self, job: &mut Job, message: &str) -> Result<()> {
        let Some(queue) = &self.submissions else {
            job.task_id = self.write_jobs(&[(job, message)]).await?[0];
            return Ok(());
        };
        let (reply, answer) = oneshot::channel();
        queue
            .send(Pending {
                job: job.clone(),
                message: message.to_string(),
                reply,
            })
            .await
            .map_err(|_| StoreError::Corrupt("the submission writer stopped".into()))?;
        job.task_id = answer
            .await
            .map_err(|_| StoreError::Corrupt("the submission writer stopped".into()))??;
        Ok(())
    }

    /// Write jobs with their first messages in one transaction; their task numbers, in order.
    async fn write_jobs(&self, batch: &[(&Job, &str)]) -> Result<Vec<i64>> {
        if self.backend == super::Backend::Sqlite {
            let _turn = self.writing().await;
            return self.write_jobs_sqlite(batch).await;
        }
        let txn = self.db.begin().await?;
        let last = reserve(&txn, "task", batch.len() as i64).await?;
        let (jobs, messages) = rows(batch, last);
        jobs.exec_without_returning(&txn).await?;
        messages.exec_without_returning(&txn).await?;
        let payloads = batch
            .iter()
            .flat_map(|(job, _)| listen::payloads(job.id, true, false))
            .collect();
        self.announce(&txn, payloads).await?;
        txn.commit().await?;
        Ok((last - batch.len() as i64 + 1..=last).collect())
    }

    /// The same on SQLite in one round trip to the database thread instead of five: one script
    /// takes the write lock, advances the task sequence, writes the jobs (each numbered from the
    /// sequence inside the script) and their messages, reads the last number and commits.
    /// Only the writer's own connection runs this.
    async fn write_jobs_sqlite(&self, batch: &[(&Job, &str)]) -> Result<Vec<i64>> {
        let n = batch.len() as i64;
        let seq = "(SELECT value FROM sequences WHERE name = 'task')";
        let mut jobs_insert = Query::insert()
            .into_table(jobs::Entity)
            .columns(jobs::Column::iter())
            .to_owned();
        for (k, (job, _)) in batch.iter().enumerate() {
            let row = to_active(job);
            let values = jobs::Column::iter().map(|c| match c {
                jobs::Column::TaskId => Expr::cust(format!("{seq} - {}", n - 1 - k as i64)),
                c => Expr::val(row.get(c).into_value().unwrap_or(Value::String(None))),
            });
            jobs_insert.values_panic(values);
        }
        let (_, messages) = rows(batch, n);
        let (jobs_sql, jobs_values) = jobs_insert.build(SqliteQueryBuilder);
        let (messages_sql, messages_values) = messages.as_query().build(SqliteQueryBuilder);
        let script = format!(
            "BEGIN IMMEDIATE; \
             INSERT INTO sequences (name, value) VALUES ('task', 0) ON CONFLICT (name) DO NOTHING; \
             UPDATE sequences SET value = value + {n} WHERE name = 'task'; \
             {jobs_sql}; {messages_sql}; SELECT value FROM sequences WHERE name = 'task'; COMMIT;"
        );
        // The values stay bound parameters (taken by the statements in order), never SQL text.
        let mut values = jobs_values.0;
        values.extend(messages_values.0);
        // All rows are read, so every statement of the script runs (COMMIT included).
        match self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                script,
                values,
            ))
            .await
        {
            Ok(rows) => {
                let last: i64 = rows
                    .first()
                    .ok_or_else(|| StoreError::Corrupt("the task sequence vanished".into()))?
                    .try_get("", "value")?;
                Ok((last - n + 1..=last).collect())
            }
            Err(e) => {
                // Whatever statement failed, the transaction must not stay open.
                let _ = self.db.execute_unprepared("ROLLBACK").await;
                Err(e.into())
            }
        }
    }
}

/// The inserts of a batch of jobs numbered up to `last`, and of their first messages.
fn rows(
    batch: &[(&Job, &str)],
    last: i64,
) -> (
    sea_orm::InsertMany<jobs::ActiveModel>,
    sea_orm::InsertMany<job_messages::ActiveModel>,
) {
    let first = last - batch.len() as i64 + 1;
    let jobs = batch.iter().zip(first..).map(|((job, _), n)| {
        let mut j = (*job).clone();
        j.task_id = n;
        to_active(&j)
    });
    let messages = batch.iter().map(|(job, text)| job_messages::ActiveModel {
        seq: NotSet,
        job_id: Set(job.id.to_string()),
        at: Set(ms(job.created)),
        level: Set(Level::Info.as_str().to_string()),
        kind: Set("state".to_string()),
        text: Set(text.to_string()),
        attempt: Set(job.attempt),
    });
    (
        jobs::Entity::insert_many(jobs),
        job_messages::Entity::insert_many(messages),
    )
}

/// Take `n` numbers of a named sequence inside the caller's transaction; the last one taken.
/// One statement (an upsert that returns the new value), so a batch pays one round trip.
pub(super) async fn reserve(db: &impl ConnectionTrait, name: &str, n: i64) -> Result<i64> {
    let backend = db.get_database_backend();
    let mark = if backend == DbBackend::Postgres {
        '$'
    } else {
        '?'
    };
    let sql = format!(
        "INSERT INTO sequences (name, value) VALUES ({mark}1, {mark}2) \
         ON CONFLICT (name) DO UPDATE SET value = sequences.value + excluded.value \
         RETURNING value"
    );
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [name.into(), n.into()],
        ))
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("sequence {name} vanished")))?;
    Ok(row.try_get::<i64>("", "value")?)
}
