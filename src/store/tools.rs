//! The tools catalog (seed 000) and the failed records of imports (its `task_progress`).

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::Value;
use uuid::Uuid;

use super::entities::{jobs, record_outcomes, tools};
use super::{from_ms, ms, Result, Store, StoreError};
use crate::domain::{RunLease, ToolRow, ToolWrite};

impl Store {
    /// Write one batch of an import under the run lease: tools upserted by `tool_id`, failed
    /// records upserted by (job, record index), so a re-run after a crash creates no duplicates.
    /// Returns false (and writes nothing) when the worker no longer owns the job.
    ///
    /// The catalog rows are written by the driver's `upsert_tools`, the one statement of each
    /// database.
    pub async fn write_import_batch(&self, lease: &RunLease, batch: &[ToolWrite]) -> Result<bool> {
        if batch.is_empty() {
            return Ok(true);
        }
        let now = ms(Utc::now());
        let job_id = lease.job_id().to_string();
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
            .cond_where(self.fenced(lease))
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
            self.driver
                .upsert_tools(&txn, &tenant, &job_id, now, &imported)
                .await?;
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
