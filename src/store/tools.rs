//! The tools catalog (seed 000) and the failed records of imports (its `task_progress`).

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr, Statement, TransactionTrait,
};
use serde_json::Value;
use uuid::Uuid;

use super::entities::{jobs, record_outcomes, tools};
use super::{fenced, from_ms, ms, Result, Store, StoreError};
use crate::domain::{Fence, ToolRow, ToolWrite};

impl Store {
    /// Write one batch of an import under the job's fence: tools upserted by `tool_id`, failed
    /// records upserted by (job, record index), so a re-run after a crash creates no duplicates.
    /// Returns false (and writes nothing) when the worker no longer owns the job.
    ///
    /// The catalog rows are written by `upsert_tools`, the one statement of each database.
    pub async fn write_import_batch(&self, fence: &Fence, batch: &[ToolWrite]) -> Result<bool> {
        if batch.is_empty() {
            return Ok(true);
        }
        let now = ms(Utc::now());
        let job_id = fence.job_id.to_string();
        let mut imported: Vec<&ToolRow> = Vec::with_capacity(batch.len());
        let mut outcomes = Vec::new();
        for w in batch {
            match w {
                // Imported records are in the catalog; outcomes keep the failed ones only.
                ToolWrite::Imported { tool, .. } => imported.push(tool),
                ToolWrite::Failed {
                    idx,
                    record,
                    reason,
                } => {
                    let tool_id = record
                        .get("tool_id")
                        .and_then(Value::as_str)
                        .map(|s| s.chars().take(64).collect());
                    outcomes.push(record_outcomes::ActiveModel {
                        job_id: Set(job_id.clone()),
                        idx: Set(*idx as i64),
                        status: Set("FAILED".into()),
                        tool_id: Set(tool_id),
                        record: Set(record.to_string()),
                        reason: Set(Some(reason.clone())),
                    });
                }
            }
        }
        let backend = self.bulk().get_database_backend();
        // Touching the row under the fence both checks ownership and, on PostgreSQL, locks the
        // row so a new owner cannot interleave with this batch. Its progress counts the records
        // written by this attempt (a claim sets it to 0, and a new attempt starts from the first
        // record), so it stays exact whatever the progress reports in between were. The catalog
        // entries belong to the job's tenant, which the same statement returns.
        let touch = Query::update()
            .table(jobs::Entity)
            .value(jobs::Column::UpdatedAt, now)
            .value(
                jobs::Column::ProgressAmount,
                Expr::col(jobs::Column::ProgressAmount).add(batch.len() as i64),
            )
            .cond_where(fenced(fence))
            .returning_col(jobs::Column::Owner)
            .to_owned();
        let _turn = self.writing().await;
        let txn = self.bulk().begin().await?;
        let owned = txn.query_one_raw(backend.build(&touch)).await?;
        let Some(owned) = owned else {
            txn.rollback().await?;
            return Ok(false);
        };
        let tenant = owned
            .try_get::<Option<String>>("", "owner")?
            .unwrap_or_else(|| crate::domain::access::OPEN_TENANT.to_string());
        if !imported.is_empty() {
            upsert_tools(&txn, &tenant, &job_id, now, &imported).await?;
        }
        if outcomes.is_empty() {
            txn.commit().await?;
            return Ok(true);
        }
        record_outcomes::Entity::insert_many(outcomes)
            .on_conflict(
                OnConflict::columns([record_outcomes::Column::JobId, record_outcomes::Column::Idx])
                    .update_columns([
                        record_outcomes::Column::Status,
                        record_outcomes::Column::ToolId,
                        record_outcomes::Column::Record,
                        record_outcomes::Column::Reason,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Failed records of an import job.
    pub async fn failed_count(&self, job_id: Uuid) -> Result<u64> {
        Ok(record_outcomes::Entity::find()
            .filter(record_outcomes::Column::JobId.eq(job_id.to_string()))
            .filter(record_outcomes::Column::Status.eq("FAILED"))
            .count(self.conn())
            .await?)
    }

    /// The failed records of an import, each with its reason, in input order (after `after_idx`).
    pub async fn failed_records(
        &self,
        job_id: Uuid,
        after_idx: Option<i64>,
        limit: u64,
    ) -> Result<Vec<(i64, Value, String)>> {
        let mut q = record_outcomes::Entity::find()
            .filter(record_outcomes::Column::JobId.eq(job_id.to_string()))
            .filter(record_outcomes::Column::Status.eq("FAILED"));
        if let Some(a) = after_idx {
            q = q.filter(record_outcomes::Column::Idx.gt(a));
        }
        let rows = q
            .order_by_asc(record_outcomes::Column::Idx)
            .limit(limit)
            .all(self.conn())
            .await?;
        rows.into_iter()
            .map(|r| {
                let v = serde_json::from_str(&r.record)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok((r.idx, v, r.reason.unwrap_or_default()))
            })
            .collect()
    }

    /// A page of a tenant's catalog ordered by `tool_id`, starting after `after`.
    pub async fn list_tools(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<ToolRow>> {
        let mut q = tools::Entity::find().filter(tools::Column::Tenant.eq(tenant));
        if let Some(a) = after {
            q = q.filter(tools::Column::ToolId.gt(a));
        }
        q.order_by_asc(tools::Column::ToolId)
            .limit(limit)
            .all(self.conn())
            .await?
            .into_iter()
            .map(to_tool)
            .collect()
    }

    /// One tool of a tenant's catalog.
    pub async fn get_tool(&self, tenant: &str, tool_id: &str) -> Result<Option<ToolRow>> {
        tools::Entity::find_by_id((tenant.to_string(), tool_id.to_string()))
            .one(self.conn())
            .await?
            .map(to_tool)
            .transpose()
    }

    /// Number of tools in a tenant's catalog.
    pub async fn count_tools(&self, tenant: &str) -> Result<u64> {
        Ok(tools::Entity::find()
            .filter(tools::Column::Tenant.eq(tenant))
            .count(self.conn())
            .await?)
    }
}

const CATALOG_INSERT: &str = "INSERT INTO catalog (tenant, tool_id, tool_name, category, \
    description, features, url, job_id, updated_at)";
const CATALOG_UPDATE: &str = "ON CONFLICT (tenant, tool_id) DO UPDATE SET \
    tool_name = excluded.tool_name, category = excluded.category, \
    description = excluded.description, features = excluded.features, url = excluded.url, \
    job_id = excluded.job_id, updated_at = excluded.updated_at";

/// Upsert a batch of tools of `tenant` by `tool_id`, inside the caller's transaction.
///
/// On SQLite the rows are bound values of one statement: binding is a cheap call in the same
/// process. On PostgreSQL the batch travels as one JSON array in one parameter, spread into rows
/// by `jsonb_array_elements`: a statement of constant text, prepared once, instead of one with
/// thousands of parameters. There an upsert (`ON CONFLICT`) costs about twice a plain insert,
/// since each row is inserted speculatively, so a batch whose first tool is not in the catalog
/// yet (a new import, the usual large one) is first inserted plainly, under a savepoint; should
/// any of its tools be there after all (or be added by a concurrent import meanwhile), the
/// unique key refuses that insert, and the batch is upserted instead.
async fn upsert_tools(
    txn: &DatabaseTransaction,
    tenant: &str,
    job_id: &str,
    now: i64,
    tools: &[&ToolRow],
) -> Result<()> {
    let features = |t: &ToolRow| serde_json::to_string(&t.features).unwrap_or_else(|_| "[]".into());
    if txn.get_database_backend() != DbBackend::Postgres {
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
                features(t).into(),
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
        return Ok(());
    }
    let rows: Vec<_> = tools
        .iter()
        .map(|t| {
            (
                &t.tool_id,
                &t.tool_name,
                &t.category,
                &t.description,
                features(t),
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

fn to_tool(m: tools::Model) -> Result<ToolRow> {
    Ok(ToolRow {
        features: serde_json::from_str(&m.features)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        job_id: m
            .job_id
            .parse()
            .map_err(|_| StoreError::Corrupt(m.job_id.clone()))?,
        tool_id: m.tool_id,
        tool_name: m.tool_name,
        category: m.category,
        description: m.description,
        url: m.url,
        updated: from_ms(m.updated_at),
    })
}
