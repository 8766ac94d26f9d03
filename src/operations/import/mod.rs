//! The tools import of seed 000: validate each record, upsert valid ones by `tool_id` in batches,
//! keep each failed record with its reason, and write a report of them.

mod validate;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{Context, OpError, Operation};
use crate::domain::{RunLease, ToolWrite};
use crate::formats::records::{self, BodyFormat};

pub use validate::{validate_record, Validator, FIELDS as RECORD_FIELDS};

/// Records written per transaction.
pub const BATCH: usize = 1000;
/// Nesting allowed inside one record.
pub const RECORD_DEPTH: usize = 16;

/// Where the import keeps tools and failed records (the store implements it).
#[async_trait]
pub trait ToolCatalog: Send + Sync {
    /// Write one batch under the job's fence; `Ok(false)` when the fence no longer holds.
    async fn write_batch(&self, lease: &RunLease, batch: &[ToolWrite]) -> Result<bool, String>;
    /// Failed records after index `after` (record with its reason), in input order.
    async fn failed_after(
        &self,
        job_id: uuid::Uuid,
        after: Option<i64>,
        limit: u64,
    ) -> Result<Vec<(i64, Value, String)>, String>;
}

/// The import operation.
pub struct ImportOperation {
    catalog: Arc<dyn ToolCatalog>,
}

impl ImportOperation {
    /// An import writing into `catalog`.
    pub fn new(catalog: Arc<dyn ToolCatalog>) -> ImportOperation {
        ImportOperation { catalog }
    }
}

/// Parse the stored body format name.
pub fn body_format(name: &str) -> Option<BodyFormat> {
    match name {
        "json" => Some(BodyFormat::Json),
        "xml" => Some(BodyFormat::Xml),
        "ndjson" => Some(BodyFormat::Ndjson),
        _ => None,
    }
}

#[async_trait]
impl Operation for ImportOperation {
    fn name(&self) -> &str {
        "import"
    }

    fn description(&self) -> &str {
        "Import tool records into the catalog (upsert by tool_id); failed records are reported with reasons."
    }

    fn stages(&self) -> i32 {
        2
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": {"type": "array", "items": validate::record_schema()},
                "async": {"type": "object"}
            }
        })
    }

    fn validate(&self, input: &Value) -> Result<(), String> {
        let fmt = input
            .get("format")
            .and_then(Value::as_str)
            .and_then(body_format);
        if fmt.is_none() {
            return Err("an import needs its records as a request body".into());
        }
        Ok(())
    }

    async fn run(&self, ctx: &mut Context) -> Result<Value, OpError> {
        let fmt = ctx
            .input()
            .get("format")
            .and_then(Value::as_str)
            .and_then(body_format)
            .ok_or_else(|| OpError::failed("input", "the stored input has no known format"))?;
        let total = ctx.input().get("records").and_then(Value::as_i64);
        ctx.stage(1, 2, "Importing records").await?;
        let reader = ctx.open_input().await?;

        // The body is parsed on a blocking thread (streaming, one record at a time) and handed
        // over in batches; the bounded channel keeps memory flat and lets a cancel stop the
        // parser as soon as this side stops receiving.
        let (tx, mut rx) = mpsc::channel::<Vec<ToolWrite>>(4);
        let job_id = ctx.lease().job_id();
        let parser = tokio::task::spawn_blocking(move || {
            let sync = tokio_util::io::SyncIoBridge::new(reader);
            let mut validator = Validator::new(job_id);
            let mut batch = Vec::with_capacity(BATCH);
            let scan = records::scan(sync, fmt, RECORD_DEPTH, |idx, rec| {
                batch.push(validator.check(idx, rec));
                if batch.len() >= BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    tx.blocking_send(full).map_err(|_| {
                        records::RecordsError::Io(std::io::Error::other("import stopped"))
                    })?;
                }
                Ok(())
            });
            if scan.is_ok() && !batch.is_empty() {
                let _ = tx.blocking_send(batch);
            }
            scan.map(|s| s.records)
        });

        let mut done: i64 = 0;
        let mut failed: i64 = 0;
        let mut stopped = None;
        while let Some(batch) = rx.recv().await {
            if let Err(e) = ctx.checkpoint() {
                stopped = Some(e);
                break;
            }
            failed += batch
                .iter()
                .filter(|w| matches!(w, ToolWrite::Failed { .. }))
                .count() as i64;
            let owned = self
                .catalog
                .write_batch(ctx.lease(), &batch)
                .await
                .map_err(|e| OpError::failed("storage", e))?;
            if !owned {
                // Someone else owns the job now (or it was cancelled or deleted): stop writing.
                stopped = Some(OpError::Cancelled);
                break;
            }
            done += batch.len() as i64;
            ctx.progress(done, total, "records").await?;
        }
        drop(rx);
        let scanned = parser
            .await
            .map_err(|e| OpError::failed("internal", e.to_string()))?;
        if let Some(e) = stopped {
            return Err(e);
        }
        let scanned = scanned.map_err(|e| OpError::failed("input", e.to_string()))?;
        ctx.progress(done, Some(scanned as i64), "records").await?;
        ctx.flush().await?;

        ctx.saving("Writing the report of failed records").await?;
        let mut sink = ctx
            .create_file("failed-records.json", "application/json")
            .await?;
        sink.write(b"[").await?;
        let mut after = None;
        let mut first = true;
        loop {
            ctx.checkpoint()?;
            let page = self
                .catalog
                .failed_after(job_id, after, 1000)
                .await
                .map_err(|e| OpError::failed("storage", e))?;
            if page.is_empty() {
                break;
            }
            for (idx, record, reason) in &page {
                let mut item = record.clone();
                if let Value::Object(m) = &mut item {
                    m.insert("reason".into(), reason.clone().into());
                    m.insert("record".into(), json!(idx + 1));
                }
                if !first {
                    sink.write(b",").await?;
                }
                first = false;
                sink.write(item.to_string().as_bytes()).await?;
                sink.add_rows(1);
            }
            after = page.last().map(|p| p.0);
        }
        sink.write(b"]").await?;
        let file = sink.finish().await?;
        ctx.add_file(file).await?;
        Ok(json!({
            "totalRecords": scanned,
            "importedRecords": done - failed,
            "failedRecords": failed,
        }))
    }
}
