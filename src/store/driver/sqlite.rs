//! SQLite: one file, one writer at a time, one process (instances scale out on PostgreSQL).

use async_trait::async_trait;
use migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::{Expr, Query, SqliteQueryBuilder};
use sea_orm::{
    ActiveModelTrait, ConnectOptions, ConnectionTrait, DatabaseTransaction, DbBackend, Iterable,
    QueryTrait, Statement, Value,
};

use super::super::entities::jobs;
use super::super::{submit, to_active, Backend, Result, Store, StoreError};
use super::{base_options, claim_sql, Driver, Limits, CATALOG_INSERT, CATALOG_UPDATE};
use crate::domain::{Job, Lane, ToolRow};

pub(in crate::store) struct Sqlite;

#[async_trait]
impl Driver for Sqlite {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn options(&self, url: &str, max: u32) -> ConnectOptions {
        let mut opts = base_options(url, max);
        // A local file needs no liveness ping before each use of a pooled connection.
        opts.test_before_acquire(false);
        // WAL lets readers run beside the one writer; NORMAL sync keeps every commit through a
        // process crash (kill -9), which is the durability promise of a 201.
        opts.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(std::time::Duration::from_secs(10))
                .create_if_missing(true)
                .foreign_keys(false)
        });
        opts
    }

    fn pool_size(&self) -> u32 {
        8
    }

    fn one_writer(&self) -> bool {
        true
    }

    fn now_ms(&self) -> &'static str {
        "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    }

    fn claim(&self, node: &str, lease_ms: i64, lane: Lane, limits: &Limits) -> Statement {
        // SQLite serialises writers, so a plain conditional UPDATE is enough.
        // Without statistics the planner would walk a status index and sort the work lane's
        // queue; the claim's index (migration m0010) holds its order. The control lane's few
        // jobs are found by operation, as the planner chooses.
        let hint = match lane {
            Lane::Work => " INDEXED BY idx_jobs_claim",
            Lane::Control => "",
        };
        let (sql, values) = claim_sql(self, hint, lane, node, lease_ms, limits);
        Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)
    }

    fn limit_turn(&self, _key: &str) -> Option<Statement> {
        // One writer at a time: the claim statement sees every running job.
        None
    }

    fn param(&self, n: usize) -> String {
        format!("?{n}")
    }

    fn skip_locked(&self) -> &'static str {
        ""
    }

    fn compact_stats(&self) -> Option<&'static str> {
        None
    }

    async fn migrate(&self, store: &Store) -> Result<()> {
        Migrator::up(&store.db, None).await?;
        Ok(())
    }

    /// One round trip to the database thread instead of five: one script takes the write
    /// lock, advances the task sequence, writes the jobs (each numbered from the sequence
    /// inside the script) and their messages, reads the last number and commits. Only the
    /// submission writer's own connection runs this.
    async fn write_jobs(&self, store: &Store, batch: &[(&Job, &str)]) -> Result<Vec<i64>> {
        let _turn = store.writing().await;
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
        let (_, messages) = submit::rows(batch, n);
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
        match store
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
                let _ = store.db.execute_unprepared("ROLLBACK").await;
                Err(e.into())
            }
        }
    }

    /// The rows are bound values of one statement: binding is a cheap call in the same process.
    async fn upsert_tools(
        &self,
        txn: &DatabaseTransaction,
        tenant: &str,
        job_id: &str,
        now: i64,
        tools: &[&ToolRow],
    ) -> Result<()> {
        let mut sql = format!("{CATALOG_INSERT} VALUES ");
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(tools.len() * 9);
        for (i, t) in tools.iter().enumerate() {
            sql.push_str(if i == 0 { "" } else { ", " });
            sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?, ?)");
            values.extend([
                tenant.into(),
                t.tool_id.clone().into(),
                t.tool_name.clone().into(),
                t.category.clone().into(),
                t.description.clone().into(),
                super::features(t).into(),
                t.url.clone().into(),
                job_id.into(),
                now.into(),
            ]);
        }
        sql.push(' ');
        sql.push_str(CATALOG_UPDATE);
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            sql,
            values,
        ))
        .await?;
        Ok(())
    }

    /// A single process already knows every write.
    fn notify(&self, _payloads: &[String]) -> Option<Statement> {
        None
    }

    fn listen(&self, _url: &str) -> Option<tokio::sync::mpsc::Receiver<crate::store::Signal>> {
        None
    }
}
