//! PostgreSQL: many instances on one database. Claims skip rows another instance holds, every
//! job write is announced with NOTIFY in its transaction, and migrations run under an advisory
//! lock.

use async_trait::async_trait;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseTransaction, DbBackend, SqlErr, Statement,
    TransactionTrait,
};

use super::super::listen::{self, CHANNEL};
use super::super::{submit, Backend, Result, Store, StoreError};
use super::{base_options, claim_sql, nodelay, Driver, Limits, CATALOG_INSERT, CATALOG_UPDATE};
use crate::domain::{Job, Lane, ToolRow};

pub(in crate::store) struct Postgres;

#[async_trait]
impl Driver for Postgres {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn options(&self, url: &str, max: u32) -> ConnectOptions {
        let mut opts = base_options(url, max);
        let port = url::Url::parse(url)
            .ok()
            .and_then(|u| u.port())
            .unwrap_or(5432);
        // The database driver leaves Nagle's algorithm on; every new connection turns it off.
        opts.map_sqlx_postgres_pool_opts(move |pool| {
            pool.after_connect(move |_, _| {
                Box::pin(async move {
                    nodelay::to_port(port);
                    Ok(())
                })
            })
        });
        opts
    }

    fn pool_size(&self) -> u32 {
        16
    }

    fn one_writer(&self) -> bool {
        false
    }

    fn now_ms(&self) -> &'static str {
        "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
    }

    fn claim(&self, node: &str, lease_ms: i64, lane: Lane, limits: &Limits) -> Statement {
        // Many instances claim at once without blocking each other.
        // The planner finds the claim's index (migration m0010) itself.
        const HINT: &str = "";
        let (sql, values) = claim_sql(self, HINT, lane, node, lease_ms, limits);
        Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
    }

    fn limit_turn(&self, key: &str) -> Option<Statement> {
        // Released when the claim's transaction ends; the first number keeps these apart from
        // any other program's advisory locks on the same database.
        Some(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(1819045490, hashtext($1))",
            [key.into()],
        ))
    }

    fn param(&self, n: usize) -> String {
        format!("${n}")
    }

    fn skip_locked(&self) -> &'static str {
        "FOR UPDATE SKIP LOCKED"
    }

    fn compact_stats(&self) -> Option<&'static str> {
        Some("VACUUM (ANALYZE) job_count_deltas, job_end_log")
    }

    /// Several instances may start at once: an advisory lock held for the migrating
    /// transaction lets one migrate while the others wait.
    async fn migrate(&self, store: &Store) -> Result<()> {
        let txn = store.db.begin().await?;
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(7470426172)")
            .await?;
        Migrator::up(&txn, None).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn write_jobs(&self, store: &Store, batch: &[(&Job, &str)]) -> Result<Vec<i64>> {
        let txn = store.db.begin().await?;
        let last = submit::reserve(&txn, self, "task", batch.len() as i64).await?;
        let (jobs, messages) = submit::rows(batch, last);
        jobs.exec_without_returning(&txn).await?;
        messages.exec_without_returning(&txn).await?;
        let payloads: Vec<String> = batch
            .iter()
            .flat_map(|(job, _)| listen::payloads(job.id, true, false))
            .collect();
        if let Some(stmt) = self.notify(&payloads) {
            txn.execute_raw(stmt).await?;
        }
        txn.commit().await?;
        Ok((last - batch.len() as i64 + 1..=last).collect())
    }

    /// The batch travels as one JSON array in one parameter, spread into rows by
    /// `jsonb_array_elements`: a statement of constant text, prepared once, instead of one with
    /// thousands of parameters. An upsert (`ON CONFLICT`) costs about twice a plain insert,
    /// since each row is inserted speculatively, so a batch whose first tool is not in the
    /// catalog yet (a new import, the usual large one) is first inserted plainly, under a
    /// savepoint; should any of its tools be there after all (or be added by a concurrent
    /// import meanwhile), the unique key refuses that insert, and the batch is upserted instead.
    async fn upsert_tools(
        &self,
        txn: &DatabaseTransaction,
        tenant: &str,
        job_id: &str,
        now: i64,
        tools: &[&ToolRow],
    ) -> Result<()> {
        let rows: Vec<_> = tools
            .iter()
            .map(|t| {
                (
                    &t.tool_id,
                    &t.tool_name,
                    &t.category,
                    &t.description,
                    super::features(t),
                    &t.url,
                )
            })
            .collect();
        let json = serde_json::to_string(&rows)
            .map_err(|e| StoreError::Corrupt(format!("a batch of tools: {e}")))?;
        let insert = format!(
            "{CATALOG_INSERT} SELECT $1, r->>0, r->>1, r->>2, r->>3, r->>4, r->>5, $2, $3 \
             FROM jsonb_array_elements($4::jsonb) AS r"
        );
        let values = || -> Vec<sea_orm::Value> {
            vec![
                tenant.into(),
                job_id.into(),
                now.into(),
                json.clone().into(),
            ]
        };
        let first = tools.first().map(|t| t.tool_id.clone()).unwrap_or_default();
        let known = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT EXISTS (SELECT 1 FROM catalog WHERE tenant = $1 AND tool_id = $2) AS known",
                [tenant.into(), first.into()],
            ))
            .await?
            .map(|row| row.try_get::<bool>("", "known"))
            .transpose()?
            .unwrap_or(true);
        if !known {
            let fresh = txn.begin().await?;
            match fresh
                .execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    insert.clone(),
                    values(),
                ))
                .await
            {
                Ok(_) => {
                    fresh.commit().await?;
                    return Ok(());
                }
                Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                    fresh.rollback().await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("{insert} {CATALOG_UPDATE}"),
            values(),
        ))
        .await?;
        Ok(())
    }

    /// One statement for all of them (a batch of submissions announces hundreds).
    fn notify(&self, payloads: &[String]) -> Option<Statement> {
        if payloads.is_empty() {
            return None;
        }
        let calls: Vec<String> = (0..payloads.len())
            .map(|i| format!("pg_notify($1, ${})", i + 2))
            .collect();
        let mut values: Vec<sea_orm::Value> = vec![CHANNEL.into()];
        values.extend(payloads.iter().cloned().map(Into::into));
        Some(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("SELECT {}", calls.join(", ")),
            values,
        ))
    }

    /// A channel fed by a task that reconnects by itself and says `Missed` whenever it may
    /// have missed something.
    fn listen(&self, url: &str) -> Option<tokio::sync::mpsc::Receiver<crate::store::Signal>> {
        Some(listen::start(url.to_string()))
    }
}
