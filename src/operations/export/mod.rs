//! Exports as data file sets (seed 004): the tools catalog or the job collection (with the audit
//! filters), streamed page by page into one or more files of `partSize` rows each, as CSV,
//! NDJSON, JSON or XML.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{Context, FileSink, OpError, Operation};
use crate::domain::JobFilter;

/// What can be exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataset {
    Tools,
    Jobs,
}

impl Dataset {
    pub fn parse(s: &str) -> Result<Dataset, String> {
        match s {
            "tools" => Ok(Dataset::Tools),
            "jobs" => Ok(Dataset::Jobs),
            other => Err(format!("`dataset` must be tools or jobs, not `{other}`")),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Dataset::Tools => "tools",
            Dataset::Jobs => "jobs",
        }
    }
    /// The columns of a row, in order (CSV header).
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Dataset::Tools => &crate::operations::import::RECORD_FIELDS,
            Dataset::Jobs => &[
                "jobId",
                "taskId",
                "operation",
                "jobStatus",
                "phaseDescription",
                "currentStage",
                "totalNumberOfStages",
                "createdTime",
                "startTime",
                "finishedTime",
                "correlationId",
                "attempt",
                "summary",
                "error",
            ],
        }
    }
    fn item(self) -> &'static str {
        match self {
            Dataset::Tools => "tool",
            Dataset::Jobs => "job",
        }
    }
}

/// File encodings of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Ndjson,
    Json,
    Xml,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Result<ExportFormat, String> {
        match s {
            "csv" => Ok(ExportFormat::Csv),
            "ndjson" => Ok(ExportFormat::Ndjson),
            "json" => Ok(ExportFormat::Json),
            "xml" => Ok(ExportFormat::Xml),
            other => Err(format!(
                "`format` must be csv, ndjson, json or xml, not `{other}`"
            )),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Ndjson => "ndjson",
            ExportFormat::Json => "json",
            ExportFormat::Xml => "xml",
        }
    }
    fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv",
            ExportFormat::Ndjson => "application/x-ndjson",
            ExportFormat::Json => "application/json",
            ExportFormat::Xml => "application/xml",
        }
    }
}

/// The checked input of an export.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSpec {
    pub dataset: Dataset,
    pub format: ExportFormat,
    pub filter: JobFilter,
    pub part_size: u64,
}

/// Rows per part when none is given.
pub const DEFAULT_PART_SIZE: u64 = 100_000;

impl ExportSpec {
    pub fn from_input(v: &Value) -> Result<ExportSpec, String> {
        let dataset = Dataset::parse(
            v.get("dataset")
                .and_then(Value::as_str)
                .ok_or("`dataset` is required: tools or jobs")?,
        )?;
        let format = match v.get("format").and_then(Value::as_str) {
            None => ExportFormat::Csv,
            Some(f) => ExportFormat::parse(f)?,
        };
        let filter = match v.get("filter") {
            None | Some(Value::Null) => JobFilter::default(),
            Some(f) => JobFilter::from_json(f).map_err(|e| format!("filter: {e}"))?,
        };
        if dataset == Dataset::Tools && !filter.is_empty() {
            return Err("`filter` applies to the jobs dataset only".into());
        }
        let part_size = match v.get("partSize") {
            None | Some(Value::Null) => DEFAULT_PART_SIZE,
            Some(p) => p
                .as_u64()
                .filter(|p| *p >= 1)
                .ok_or("`partSize` must be a whole number of rows, at least 1")?,
        };
        Ok(ExportSpec {
            dataset,
            format,
            filter,
            part_size,
        })
    }

    pub fn to_input(&self) -> Value {
        json!({
            "dataset": self.dataset.as_str(),
            "format": self.format.as_str(),
            "filter": self.filter.to_json(),
            "partSize": self.part_size,
        })
    }
}

/// Where exported rows come from (the store implements it): pages in a stable order.
#[async_trait]
pub trait ExportSource: Send + Sync {
    /// How many rows the export will have (for progress).
    async fn count(&self, dataset: Dataset, filter: &JobFilter) -> Result<u64, String>;
    /// Up to `limit` rows after the row keyed `after`, each with its key.
    async fn page(
        &self,
        dataset: Dataset,
        filter: &JobFilter,
        after: Option<String>,
        limit: u64,
    ) -> Result<Vec<(String, Value)>, String>;
}

/// A job as an export row.
pub fn job_row(j: &crate::domain::Job) -> Value {
    let t = |v: Option<chrono::DateTime<chrono::Utc>>| {
        v.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    };
    json!({
        "jobId": j.id.to_string(),
        "taskId": j.task_id,
        "operation": j.operation,
        "jobStatus": j.status.as_str(),
        "phaseDescription": j.phase,
        "currentStage": j.current_stage,
        "totalNumberOfStages": j.total_stages,
        "createdTime": t(Some(j.created)),
        "startTime": t(j.started),
        "finishedTime": t(j.finished),
        "correlationId": j.correlation_id,
        "attempt": j.attempt,
        "summary": j.summary,
        "error": j.error.as_ref().and_then(|e| e.get("detail")).cloned(),
    })
}

/// One cell of a CSV row: text as is, other values as JSON, lists of strings joined with `|`.
fn csv_cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("|"),
        Some(other) => other.to_string(),
    }
}

/// Writes one part in the chosen encoding.
struct PartWriter {
    sink: FileSink,
    format: ExportFormat,
    dataset: Dataset,
    rows: u64,
}

impl PartWriter {
    async fn start(ctx: &Context, spec: &ExportSpec, n: u32) -> Result<PartWriter, OpError> {
        let name = format!(
            "{}-{:04}.{}",
            spec.dataset.as_str(),
            n,
            spec.format.as_str()
        );
        let sink = ctx.create_file(&name, spec.format.content_type()).await?;
        let mut w = PartWriter {
            sink,
            format: spec.format,
            dataset: spec.dataset,
            rows: 0,
        };
        let head = match spec.format {
            ExportFormat::Csv => csv_line(spec.dataset.columns().iter().map(|c| c.to_string())),
            ExportFormat::Json => "[".into(),
            ExportFormat::Xml => format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><{}>",
                spec.dataset.as_str()
            ),
            ExportFormat::Ndjson => String::new(),
        };
        w.sink.write(head.as_bytes()).await?;
        Ok(w)
    }

    async fn row(&mut self, row: &Value) -> Result<(), OpError> {
        let text = match self.format {
            ExportFormat::Csv => {
                csv_line(self.dataset.columns().iter().map(|c| csv_cell(row.get(*c))))
            }
            ExportFormat::Ndjson => format!("{row}\n"),
            ExportFormat::Json => {
                format!("{}{row}", if self.rows == 0 { "" } else { "," })
            }
            ExportFormat::Xml => {
                let mut s = String::new();
                crate::formats::xml::write_element(&mut s, self.dataset.item(), row);
                s
            }
        };
        self.sink.write(text.as_bytes()).await?;
        self.sink.add_rows(1);
        self.rows += 1;
        Ok(())
    }

    async fn finish(mut self, ctx: &Context) -> Result<(), OpError> {
        let tail = match self.format {
            ExportFormat::Json => "]".to_string(),
            ExportFormat::Xml => format!("</{}>", self.dataset.as_str()),
            _ => String::new(),
        };
        self.sink.write(tail.as_bytes()).await?;
        let done = self.sink.finish().await?;
        ctx.add_file(done).await?;
        Ok(())
    }
}

fn csv_line(cells: impl Iterator<Item = String>) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(cells.collect::<Vec<_>>());
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// The export operation.
pub struct ExportOperation {
    source: Arc<dyn ExportSource>,
}

impl ExportOperation {
    pub fn new(source: Arc<dyn ExportSource>) -> Self {
        ExportOperation { source }
    }
}

const PAGE: u64 = 1000;

#[async_trait]
impl Operation for ExportOperation {
    fn name(&self) -> &str {
        "export"
    }
    fn description(&self) -> &str {
        "Exports the tools catalog or the job collection (with the audit filters) as a data file set: CSV, NDJSON, JSON or XML files of partSize rows."
    }
    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["dataset"],
            "properties": {
                "dataset": {"type": "string", "enum": ["tools", "jobs"]},
                "format": {"type": "string", "enum": ["csv", "ndjson", "json", "xml"]},
                "filter": {"type": "object", "description": "the audit filters (jobs only): status, operation, correlationId, createdAfter, createdBefore, finishedAfter, finishedBefore"},
                "partSize": {"type": "integer", "minimum": 1}
            }
        })
    }
    fn stages(&self) -> i32 {
        2
    }
    fn validate(&self, input: &Value) -> Result<(), String> {
        ExportSpec::from_input(input).map(|_| ())
    }

    async fn run(&self, ctx: &mut Context) -> Result<Value, OpError> {
        let mut spec =
            ExportSpec::from_input(ctx.input()).map_err(|e| OpError::failed("bad-input", e))?;
        // An export reads only its own tenant's jobs or catalog.
        spec.filter.owner = Some(ctx.owner().to_string());
        let storage = |e: String| OpError::failed("storage", e);
        ctx.stage(1, 2, "Counting rows").await?;
        let total = self
            .source
            .count(spec.dataset, &spec.filter)
            .await
            .map_err(storage)?;
        ctx.stage(2, 2, "Exporting rows").await?;
        ctx.saving(&format!("Writing {} rows", total)).await?;
        let mut after: Option<String> = None;
        let mut part: Option<PartWriter> = None;
        let (mut parts, mut rows) = (0u32, 0u64);
        loop {
            ctx.checkpoint()?;
            let page = self
                .source
                .page(spec.dataset, &spec.filter, after.clone(), PAGE)
                .await
                .map_err(storage)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (_, row) in &page {
                if part.as_ref().is_some_and(|p| p.rows >= spec.part_size) {
                    part.take().expect("a part").finish(ctx).await?;
                }
                if part.is_none() {
                    parts += 1;
                    part = Some(PartWriter::start(ctx, &spec, parts).await?);
                }
                part.as_mut().expect("a part").row(row).await?;
                rows += 1;
            }
            ctx.progress(rows as i64, Some(total.max(rows) as i64), "rows")
                .await?;
            if (page.len() as u64) < PAGE {
                break;
            }
        }
        match part {
            Some(p) => p.finish(ctx).await?,
            // An empty export is one empty part, so the data file set always says what it is.
            None => {
                parts = 1;
                PartWriter::start(ctx, &spec, 1).await?.finish(ctx).await?
            }
        }
        Ok(json!({
            "dataset": spec.dataset.as_str(),
            "format": spec.format.as_str(),
            "rows": rows,
            "parts": parts,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_checks_and_round_trips() {
        let s = ExportSpec::from_input(&json!({"dataset": "jobs", "format": "ndjson",
            "filter": {"status": ["SUCCESS"], "createdAfter": "2026-01-01T00:00:00Z"}, "partSize": 10}))
        .unwrap();
        assert_eq!(ExportSpec::from_input(&s.to_input()).unwrap(), s);
        assert!(ExportSpec::from_input(&json!({"dataset": "users"})).is_err());
        assert!(ExportSpec::from_input(&json!({"dataset": "tools", "partSize": 0})).is_err());
        assert!(ExportSpec::from_input(&json!({"dataset": "tools", "format": "pdf"})).is_err());
        assert!(
            ExportSpec::from_input(&json!({"dataset": "tools", "filter": {"operation": "x"}}))
                .is_err()
        );
    }

    #[test]
    fn csv_cells() {
        assert_eq!(csv_cell(Some(&json!(["a", "b"]))), "a|b");
        assert_eq!(csv_cell(Some(&json!({"n": 1}))), "{\"n\":1}");
        assert_eq!(
            csv_line(["a,b".to_string(), "c".to_string()].into_iter()),
            "\"a,b\",c\n"
        );
    }
}
