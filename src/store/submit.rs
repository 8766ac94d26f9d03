//! Group commit of submissions: concurrent `insert_job` calls are written by one task, many jobs
//! per transaction, and each caller is answered only after the commit that holds its job. A
//! `201` still means committed; SQLite's single writer is no longer fought over.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::NotSet, TransactionTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
};
use tokio::sync::{mpsc, oneshot};

use super::entities::{job_messages, jobs, sequences};
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
        let txn = self.db.begin().await?;
        let last = reserve(&txn, "task", batch.len() as i64).await?;
        let first = last - batch.len() as i64 + 1;
        let numbers: Vec<i64> = (first..=last).collect();
        let rows = batch.iter().zip(&numbers).map(|((job, _), n)| {
            let mut j = (*job).clone();
            j.task_id = *n;
            to_active(&j)
        });
        jobs::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await?;
        let messages = batch.iter().map(|(job, text)| job_messages::ActiveModel {
            seq: NotSet,
            job_id: Set(job.id.to_string()),
            at: Set(ms(job.created)),
            level: Set(Level::Info.as_str().to_string()),
            kind: Set("state".to_string()),
            text: Set(text.to_string()),
            attempt: Set(job.attempt),
        });
        job_messages::Entity::insert_many(messages)
            .exec_without_returning(&txn)
            .await?;
        let payloads = batch
            .iter()
            .flat_map(|(job, _)| listen::payloads(job.id, true, false))
            .collect();
        self.announce(&txn, payloads).await?;
        txn.commit().await?;
        Ok(numbers)
    }
}

/// Take `n` numbers of a named sequence inside the caller's transaction; the last one taken.
pub(super) async fn reserve(db: &impl ConnectionTrait, name: &str, n: i64) -> Result<i64> {
    sequences::Entity::insert(sequences::ActiveModel {
        name: Set(name.to_string()),
        value: Set(0),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(db)
    .await?;
    sequences::Entity::update_many()
        .col_expr(
            sequences::Column::Value,
            Expr::col(sequences::Column::Value).add(n),
        )
        .filter(sequences::Column::Name.eq(name))
        .exec(db)
        .await?;
    let v: Option<i64> = sequences::Entity::find_by_id(name.to_string())
        .select_only()
        .column(sequences::Column::Value)
        .into_tuple()
        .one(db)
        .await?;
    v.ok_or_else(|| StoreError::Corrupt(format!("sequence {name} vanished")))
}
