//! Group commit of submissions: concurrent `insert_job` calls are written by one task, many jobs
//! per transaction, and each caller is answered only after the commit that holds its job. A
//! `201` still means committed; SQLite's single writer is no longer fought over.

use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait, EntityTrait, Statement};
use tokio::sync::{mpsc, oneshot};

use super::entities::{job_messages, jobs};
use super::{ms, to_active, Result, Store, StoreError};
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
            self.changes.touch(job.id);
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
        // The collection's event streams hear of it at once.
        self.changes.touch(job.id);
        Ok(())
    }

    /// Write jobs with their first messages in one transaction; their task numbers, in order.
    async fn write_jobs(&self, batch: &[(&Job, &str)]) -> Result<Vec<i64>> {
        self.driver.write_jobs(self, batch).await
    }
}

/// The inserts of a batch of jobs numbered up to `last`, and of their first messages.
pub(super) fn rows(
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
pub(super) async fn reserve(
    db: &impl ConnectionTrait,
    driver: &dyn super::driver::Driver,
    name: &str,
    n: i64,
) -> Result<i64> {
    let sql = format!(
        "INSERT INTO sequences (name, value) VALUES ({}, {}) \
         ON CONFLICT (name) DO UPDATE SET value = sequences.value + excluded.value \
         RETURNING value",
        driver.param(1),
        driver.param(2)
    );
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            [name.into(), n.into()],
        ))
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("sequence {name} vanished")))?;
    Ok(row.try_get::<i64>("", "value")?)
}
