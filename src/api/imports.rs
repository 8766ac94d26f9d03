//! Imports of tool records: the canonical `POST /api/v1/imports`, seed 000's own dialect
//! (`/api/tools/import…`), and the tools catalog.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use poem::http::header;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::registry::Registry;
use poem_openapi::types::Type;
use poem_openapi::{ApiRequest, Object, OpenApi};
use serde_json::{json, Value};
use uuid::Uuid;

use super::access::{Caller, Key, Read, Submission};
use super::docs::{get_link, AsyncOptions, JobDoc, LinkDoc};
use super::wire::{
    base_url, correlation_id, negotiate, Also, ApiResult, Problem, Rep, Streamed, JSON, NDJSON, XML,
};
use super::{ApiTags, AppState};
use crate::domain::signals::AsyncRequest;
use crate::domain::JobStatus;
use crate::engine::{EngineError, NewJob};
use crate::formats::records::{self, BodyFormat};
use crate::operations::import::{RECORD_DEPTH, RECORD_FIELDS};

/// One tool record (seed 000). A record that does not fit fails on its own and is reported with
/// its reason; the import goes on.
#[derive(Debug, Clone, Object)]
pub struct ToolRecord {
    /// Unique id of the tool (1–64 characters); records are upserted by it.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub tool_id: String,
    /// Name (1–200 characters).
    #[oai(validator(min_length = 1, max_length = 200))]
    pub tool_name: String,
    /// Category (1–100 characters).
    #[oai(validator(min_length = 1, max_length = 100))]
    pub category: String,
    /// Description (up to 4000 characters).
    #[oai(validator(max_length = 4000))]
    pub description: Option<String>,
    /// Features, a list of strings (up to 100, each up to 200 characters).
    #[oai(validator(max_items = 100))]
    pub features: Option<Vec<String>>,
    /// Absolute http(s) URL.
    pub url: Option<String>,
}

/// The name of a record's schema in the document. The whole-body check (`strict.rs`) stops at
/// it: a record is judged on its own by the import, which reports one that does not fit.
pub const RECORD_SCHEMA: &str = "#/components/schemas/ToolRecord";

/// One record of an import, declared as a `ToolRecord` so that clients type it; read as any
/// value, since a record that does not fit `ToolRecord` fails on its own (it is reported with
/// its reason) and the import goes on.
#[derive(Debug, Clone)]
pub struct ImportRecord;

impl Type for ImportRecord {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;
    fn name() -> std::borrow::Cow<'static, str> {
        "ToolRecord".into()
    }
    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        ToolRecord::schema_ref()
    }
    fn register(registry: &mut Registry) {
        ToolRecord::register(registry);
    }
    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }
    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl poem_openapi::types::ParseFromJSON for ImportRecord {
    fn parse_from_json(_: Option<Value>) -> poem_openapi::types::ParseResult<Self> {
        Ok(ImportRecord)
    }
}

impl poem_openapi::types::ToJSON for ImportRecord {
    fn to_json(&self) -> Option<Value> {
        None
    }
}

/// An import request: the records under `data`.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct ImportRequest {
    /// The records (at least one).
    #[oai(validator(min_items = 1))]
    pub data: Vec<ImportRecord>,
    /// Asynchronous options.
    #[oai(rename = "async")]
    pub async_options: Option<AsyncOptions>,
}

/// The body of an import: JSON or XML `{data, async}`, or NDJSON (one record per line).
#[derive(ApiRequest)]
pub enum ImportBody {
    Json(Streamed<ImportRequest, JSON>),
    Xml(Streamed<ImportRequest, XML>),
    Ndjson(Streamed<ImportRecord, NDJSON>),
}

/// Seed 000's import body as JSON: `{data, async}` like `ImportRequest`, or the records alone as
/// a bare array (the seed's sample payload).
#[derive(Debug, Clone)]
pub struct SeedImportRequest;

impl Type for SeedImportRequest {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;
    fn name() -> std::borrow::Cow<'static, str> {
        "SeedImportRequest".into()
    }
    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
        let mut list = MetaSchema::new("array");
        list.items = Some(Box::new(ImportRecord::schema_ref()));
        list.min_items = Some(1);
        list.description = Some("The records alone, as the seed's sample payload sends them.");
        let mut schema = MetaSchema::ANY;
        schema.description = Some(
            "`{data, async}` as for `/api/v1/imports`, or a bare array of records (seed 000's \
             sample payload).",
        );
        schema.one_of = vec![
            ImportRequest::schema_ref(),
            MetaSchemaRef::Inline(Box::new(list)),
        ];
        MetaSchemaRef::Inline(Box::new(schema))
    }
    fn register(registry: &mut Registry) {
        ImportRequest::register(registry);
        ImportRecord::register(registry);
    }
    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }
    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(self))
    }
}

/// The body of seed 000's import: JSON `{data, async}` or a bare array of records, XML
/// `{data, async}`, or NDJSON (one record per line).
#[derive(ApiRequest)]
pub enum SeedImportBody {
    Json(Streamed<SeedImportRequest, JSON>),
    Xml(Streamed<ImportRequest, XML>),
    Ndjson(Streamed<ImportRecord, NDJSON>),
}

/// Seed 000's answer: its own field names plus `jobId` and `links`.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ImportStatusDoc {
    /// Short reference to poll with.
    pub task_reference: String,
    /// IN_PROGRESS, COMPLETED, FAILED or CANCELLED.
    pub status: String,
    /// Percent of records processed, like "45%".
    pub progress: Option<String>,
    /// Records imported (when ended).
    pub imported_records: Option<i64>,
    /// Records that failed, in total (when ended).
    pub failed_records: Option<i64>,
    /// The failed records in input order, each with a `reason` (when ended): all of them, or the
    /// first 1000 when `failed_records` is larger; the `errors` link lists all of them.
    pub errors: Option<Vec<Value>>,
    /// The job behind the task.
    #[oai(rename = "jobId")]
    pub job_id: Uuid,
    /// Links of the job.
    pub links: Vec<LinkDoc>,
}

/// The failed records of an import, a page at a time (seed 000's field names).
#[derive(Debug, Clone, Object)]
pub struct ImportErrorsDoc {
    /// The import's reference.
    pub task_reference: String,
    /// Records that failed, in total.
    pub failed_records: i64,
    /// This page of failed records in input order, each as sent with its `reason` and `record`
    /// (its 1-based position in the import).
    pub errors: Vec<Value>,
    /// `self`, `next` while there are more, and `monitor`, the import's status.
    pub links: Vec<LinkDoc>,
}

/// Most failed records an import status lists in `errors`; the rest are one link away.
const ERRORS_LISTED: u64 = 1000;

/// A page of the tools catalog.
#[derive(Debug, Clone, Object)]
pub struct ToolsDoc {
    /// Tools ordered by tool_id.
    pub tools: Vec<Value>,
    /// `self` and `next`.
    pub links: Vec<LinkDoc>,
}

/// A page of the catalog as JSON, XML or CSV.
pub enum ToolsAnswer {
    /// JSON or XML.
    Doc(Rep<ToolsDoc>),
    /// CSV with a header row; the next page is in a `Link` header.
    Csv(String, Option<String>),
}

impl poem::IntoResponse for ToolsAnswer {
    fn into_response(self) -> poem::Response {
        match self {
            ToolsAnswer::Doc(r) => r.into_response(),
            ToolsAnswer::Csv(body, next) => {
                let mut b = poem::Response::builder()
                    .content_type("text/csv; charset=utf-8")
                    .header(header::VARY, "Accept");
                if let Some(n) = next {
                    b = b.header(header::LINK, format!("<{n}>; rel=\"next\""));
                }
                b.body(body)
            }
        }
    }
}

impl poem_openapi::ApiResponse for ToolsAnswer {
    fn meta() -> poem_openapi::registry::MetaResponses {
        let mut m = <Rep<ToolsDoc> as poem_openapi::ApiResponse>::meta();
        m.responses[0]
            .content
            .push(poem_openapi::registry::MetaMediaType {
                content_type: "text/csv",
                schema: <String as Type>::schema_ref(),
            });
        m
    }
    fn register(registry: &mut Registry) {
        <Rep<ToolsDoc> as poem_openapi::ApiResponse>::register(registry);
    }
}

/// `format` of the catalog: `json`, `xml` or `csv` (overrides Accept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum CatalogEncoding {
    Json,
    Xml,
    Csv,
}

/// True when the client asked for CSV (`format=csv`, or `text/csv` before JSON and XML).
fn wants_csv(req: &Request) -> bool {
    let q = req.uri().query().unwrap_or("");
    // `t=csv` is seed 001's spelling of `format=csv`.
    if url::form_urlencoded::parse(q.as_bytes())
        .any(|(k, v)| (k == "format" || k == "t") && v == "csv")
    {
        return true;
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept
        .split(',')
        .next()
        .map(|first| first.trim().starts_with("text/csv"))
        .unwrap_or(false)
}

/// The catalog rows as CSV (features joined with `|`).
fn tools_csv(rows: &[crate::domain::ToolRow]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(RECORD_FIELDS);
    for t in rows {
        let _ = w.write_record([
            t.tool_id.as_str(),
            t.tool_name.as_str(),
            t.category.as_str(),
            t.description.as_deref().unwrap_or(""),
            t.features.join("|").as_str(),
            t.url.as_deref().unwrap_or(""),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Imports and the tools catalog.
pub struct ImportsApi {
    pub state: Arc<AppState>,
}

impl ImportsApi {
    /// Stream the body into the object store while checking it, then store the job.
    /// `bare_ok`: a JSON body may be a bare array of records (seed 000's route only).
    async fn accept_import(
        &self,
        caller: &Caller,
        req: &Request,
        (body, fmt, name): (poem::Body, BodyFormat, &'static str),
        bare_ok: bool,
    ) -> Result<crate::domain::Job, Problem> {
        let id = Uuid::now_v7();
        let key = format!("inputs/{id}.{name}");
        let blobs = self.state.engine.blobs().clone();
        let mut writer = blobs.writer(&key);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(8);
        let max = self.state.limits.max_import_records;
        let max_body = self.state.limits.max_body_size;
        let checker = tokio::task::spawn_blocking(move || {
            let reader = ChannelReader {
                rx,
                buf: Bytes::new(),
            };
            records::scan(reader, fmt, RECORD_DEPTH, |n, _| {
                if n >= max {
                    Err(records::RecordsError::TooMany(max))
                } else {
                    Ok(())
                }
            })
        });
        let mut stream = body.into_bytes_stream();
        let mut failure: Option<Problem> = None;
        let mut read: u64 = 0;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    read += bytes.len() as u64;
                    if read > max_body {
                        failure = Some(Problem::new(
                            413,
                            "payload-too-large",
                            format!(
                                "the body is larger than the limit of {} bytes (LONGRUN_MAX_BODY_SIZE)",
                                max_body
                            ),
                        ));
                        break;
                    }
                    if let Err(e) = writer.write(&bytes).await {
                        failure = Some(EngineError::from(e).into());
                        break;
                    }
                    if tx.send(bytes).is_err() {
                        break; // the checker already found a problem
                    }
                }
                Err(e) => {
                    failure = Some(Problem::bad_request(format!(
                        "reading the body failed: {e}"
                    )));
                    break;
                }
            }
        }
        drop(tx);
        let scan = checker
            .await
            .map_err(|e| Problem::new(500, "internal", e.to_string()))?;
        let scan = match (failure, scan) {
            (Some(p), _) => Err(p),
            (None, Err(e @ records::RecordsError::TooMany(_))) => {
                Err(Problem::new(413, "payload-too-large", e.to_string()))
            }
            (None, Err(e)) => Err(Problem::bad_request(format!(
                "the import body is not valid: {e}"
            ))),
            (None, Ok(s)) if s.bare && !bare_ok => Err(Problem::bad_request(
                "the request must be an object with `data` (a bare array of records is taken by \
                 `/api/tools/import` only)",
            )),
            (None, Ok(s)) if s.records == 0 => Err(Problem::bad_request(
                "the import has no records: give at least one under `data` (or one NDJSON line)",
            )),
            (None, Ok(s)) => Ok(s),
        };
        let scan = match scan {
            Ok(s) => s,
            Err(p) => {
                writer.abort().await;
                let _ = blobs.delete(&key).await;
                return Err(p);
            }
        };
        writer
            .finish()
            .await
            .map_err(|e| Problem::from(EngineError::from(e)))?;
        let asked = match scan.envelope.get("async") {
            None => Ok(AsyncRequest::default()),
            Some(Value::Null) => {
                Err("`async` must be an object; leave it out instead of null".into())
            }
            Some(a) => AsyncRequest::from_value(a),
        };
        let options = match asked {
            Ok(a) => super::signals::job_options(&self.state, req, a).await,
            Err(e) => Err(Problem::bad_request(e)),
        };
        let options = match options {
            Ok(o) => o,
            Err(p) => {
                let _ = blobs.delete(&key).await;
                return Err(p);
            }
        };
        let job = self
            .state
            .engine
            .submit(NewJob {
                owner: caller.owner(),
                id,
                operation: "import".into(),
                input: json!({"format": name, "records": scan.records}),
                input_blob: Some(key.clone()),
                correlation_id: correlation_id(req, None),
                options,
            })
            .await;
        match job {
            Ok(j) => Ok(j),
            Err(e) => {
                let _ = blobs.delete(&key).await;
                Err(e.into())
            }
        }
    }

    async fn seed_status(
        &self,
        req: &Request,
        job: &crate::domain::Job,
    ) -> Result<ImportStatusDoc, Problem> {
        let enc = negotiate(req)?;
        let base = base_url(req, self.state.public_url.as_deref());
        let files = if job.status == JobStatus::Success {
            self.state
                .engine
                .store()
                .files(job.id)
                .await
                .map_err(EngineError::from)?
        } else {
            Vec::new()
        };
        let status = match job.status {
            JobStatus::Success => "COMPLETED",
            JobStatus::Failed => "FAILED",
            JobStatus::Cancelled => "CANCELLED",
            JobStatus::Deleted => "DELETED",
            _ => "IN_PROGRESS",
        };
        let ended = job.status.is_end();
        let percent = if job.status == JobStatus::Success {
            100
        } else if job.current_stage >= 1 {
            job.progress.percent().unwrap_or(0)
        } else {
            0
        };
        let (imported, failed_total, errors) = if ended {
            // Records written by the last attempt, less the failed ones among them.
            let failed_n = self
                .state
                .engine
                .store()
                .failed_count(job.id)
                .await
                .map_err(EngineError::from)?;
            let ok = (job.progress.amount.max(0) as u64).saturating_sub(failed_n);
            let failed = self
                .state
                .engine
                .store()
                .failed_records(job.id, None, ERRORS_LISTED)
                .await
                .map_err(EngineError::from)?;
            let errors: Vec<Value> = failed
                .into_iter()
                .map(|(_, mut rec, reason)| {
                    if let Value::Object(m) = &mut rec {
                        m.insert("reason".into(), reason.into());
                    }
                    rec
                })
                .collect();
            (Some(ok as i64), Some(failed_n as i64), Some(errors))
        } else {
            (None, None, None)
        };
        let mut links = JobDoc::new(&base, job, &files, enc.media()).links;
        // All the failed records, with their reasons, a page at a time (whatever the end state).
        if ended {
            links.push(get_link(
                "errors",
                format!("{base}/api/tools/import/status/{}/errors", job.reference),
                Some(enc.media()),
            ));
        }
        Ok(ImportStatusDoc {
            task_reference: job.reference.clone(),
            status: status.into(),
            progress: Some(format!("{percent}%")),
            imported_records: imported,
            failed_records: failed_total,
            errors,
            job_id: job.id,
            links,
        })
    }
}

impl ImportsApi {
    /// The import behind a seed reference. Another tenant's task is not found, deleted or not;
    /// one's own deleted task is gone.
    async fn seed_job(&self, key: &Caller, reference: &str) -> Result<crate::domain::Job, Problem> {
        let job = match self.state.engine.find_by_reference(reference).await? {
            Some(j) if j.operation == "import" && key.owns(&j.owner) => j,
            _ => {
                return Err(Problem::not_found(format!(
                    "no import task with reference `{reference}`"
                )))
            }
        };
        if job.status == JobStatus::Deleted {
            return Err(EngineError::Gone(job.id).into());
        }
        Ok(job)
    }
}

/// A blocking reader over chunks sent from the async side.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Bytes>,
    buf: Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.recv() {
                Ok(b) => self.buf = b,
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf = self.buf.slice(n..);
        Ok(n)
    }
}

#[OpenApi(tag = "ApiTags::Imports")]
impl ImportsApi {
    /// Submit an import
    ///
    /// Records under `data` (JSON or XML), or one record per line (`application/x-ndjson`).
    /// The body is streamed and checked before anything is stored: a malformed body is a 400
    /// and leaves nothing behind. Answers 201 with the job and its Location.
    #[oai(
        path = "/api/v1/imports",
        method = "post",
        operation_id = "submitImport"
    )]
    async fn submit(
        &self,
        key: Key<Submission>,
        req: &Request,
        body: ImportBody,
    ) -> Result<Also<Rep<JobDoc, 201>, 200>, Problem> {
        let run = async {
            let enc = negotiate(req)?;
            let body = match body {
                ImportBody::Json(b) => (b.body, BodyFormat::Json, "json"),
                ImportBody::Xml(b) => (b.body, BodyFormat::Xml, "xml"),
                ImportBody::Ndjson(b) => (b.body, BodyFormat::Ndjson, "ndjson"),
            };
            let job = self.accept_import(&key, req, body, false).await?;
            super::jobs::created(&self.state, req, enc, job).await
        };
        run.await.map(Also).map_err(|p: Problem| p.for_req(req))
    }

    /// Start a tools import (seed 000)
    ///
    /// Same body as `/api/v1/imports`, or the records alone as a bare JSON array (the seed's
    /// sample payload); answers in the seed's own fields (`task_reference`,
    /// `status`) plus `jobId` and `links`, with 201 and a Location to poll.
    #[oai(
        path = "/api/tools/import",
        method = "post",
        operation_id = "startToolsImport"
    )]
    async fn seed_submit(
        &self,
        key: Key<Submission>,
        req: &Request,
        body: SeedImportBody,
    ) -> ApiResult<ImportStatusDoc, 201> {
        let run = async {
            let enc = negotiate(req)?;
            let body = match body {
                SeedImportBody::Json(b) => (b.body, BodyFormat::Json, "json"),
                SeedImportBody::Xml(b) => (b.body, BodyFormat::Xml, "xml"),
                SeedImportBody::Ndjson(b) => (b.body, BodyFormat::Ndjson, "ndjson"),
            };
            let job = self.accept_import(&key, req, body, true).await?;
            let base = base_url(req, self.state.public_url.as_deref());
            let doc = self.seed_status(req, &job).await?;
            Ok(Rep::new(doc, enc, "task").header(
                header::LOCATION,
                format!("{base}/api/tools/import/status/{}", job.reference),
            ))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// Status of a tools import (seed 000)
    ///
    /// IN_PROGRESS with a percentage while it runs; COMPLETED with `imported_records` and the
    /// failed records (`errors`, each with its `reason`) when done.
    #[oai(
        path = "/api/tools/import/status/:task_reference",
        method = "get",
        operation_id = "getToolsImportStatus"
    )]
    async fn seed_status_get(
        &self,
        key: Key<Read>,
        req: &Request,
        task_reference: Path<String>,
    ) -> ApiResult<ImportStatusDoc> {
        let run = async {
            let enc = negotiate(req)?;
            let job = self.seed_job(&key, &task_reference).await?;
            let doc = self.seed_status(req, &job).await?;
            Ok(Rep::new(doc, enc, "task"))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// The failed records of a tools import (seed 000)
    ///
    /// Every record that failed, in input order, as sent with its `reason` and `record` (its
    /// position), `limit` a page (default and at most 1000) with a `next` link; `failed_records`
    /// is the total. The status's `errors` link leads here.
    #[oai(
        path = "/api/tools/import/status/:task_reference/errors",
        method = "get",
        operation_id = "listToolsImportErrors"
    )]
    async fn seed_errors(
        &self,
        key: Key<Read>,
        req: &Request,
        task_reference: Path<String>,
        /// Page size, 1 to 1000 (default 1000).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u64>>,
        /// Start after this record position (from the `next` link).
        after: Query<Option<i64>>,
    ) -> ApiResult<ImportErrorsDoc> {
        let run = async {
            let enc = negotiate(req)?;
            let job = self.seed_job(&key, &task_reference).await?;
            let limit = limit.0.unwrap_or(ERRORS_LISTED);
            if !(1..=ERRORS_LISTED).contains(&limit) {
                return Err(Problem::bad_request(format!(
                    "limit must be between 1 and {ERRORS_LISTED}, not {limit}"
                )));
            }
            let store = self.state.engine.store();
            let total = store
                .failed_count(job.id)
                .await
                .map_err(EngineError::from)?;
            // `after` is a 1-based record position, as `record` shows it.
            let page = store
                .failed_records(job.id, after.0.map(|a| a - 1), limit)
                .await
                .map_err(EngineError::from)?;
            let base = base_url(req, self.state.public_url.as_deref());
            let me = format!("{base}/api/tools/import/status/{}", job.reference);
            let m = Some(enc.media());
            let mut links = vec![
                get_link("self", format!("{base}{}", req.uri()), m),
                get_link("monitor", me.clone(), m),
            ];
            if page.len() as u64 == limit {
                if let Some((idx, _, _)) = page.last() {
                    links.push(get_link(
                        "next",
                        format!("{me}/errors?limit={limit}&after={}", idx + 1),
                        m,
                    ));
                }
            }
            let errors = page
                .into_iter()
                .map(|(idx, mut rec, reason)| {
                    if let Value::Object(m) = &mut rec {
                        m.insert("reason".into(), reason.into());
                        m.insert("record".into(), json!(idx + 1));
                    }
                    rec
                })
                .collect();
            Ok(Rep::new(
                ImportErrorsDoc {
                    task_reference: job.reference.clone(),
                    failed_records: total as i64,
                    errors,
                    links,
                },
                enc,
                "errors",
            ))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// The tools catalog
    ///
    /// Tools ordered by `tool_id`, `limit` per page (≤ 1000) with a `next` link; as JSON, XML or
    /// CSV (`format=csv` or `Accept: text/csv`, the next page in a `Link` header).
    #[oai(path = "/api/tools", method = "get", operation_id = "listTools")]
    async fn tools(
        &self,
        key: Key<Read>,
        req: &Request,
        /// Page size, 1 to 1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<i64>>,
        /// Start after this tool_id (from the `next` link).
        after: Query<Option<String>>,
        /// `json`, `xml` or `csv` (overrides Accept).
        #[oai(name = "format")]
        format: Query<Option<CatalogEncoding>>,
        /// The same as `format` (seed 001 spells `format=csv` as `t=csv`).
        #[oai(name = "t")]
        t: Query<Option<CatalogEncoding>>,
    ) -> Result<ToolsAnswer, Problem> {
        let run = async {
            let csv = wants_csv(req);
            let enc = match (csv, format.0, t.0) {
                (true, _, _) => super::wire::Enc::Json,
                (false, None, Some(CatalogEncoding::Xml)) => super::wire::Enc::Xml,
                (false, None, Some(_)) => super::wire::Enc::Json,
                _ => negotiate(req)?,
            };
            let limit = limit.0.unwrap_or(100);
            if !(1..=1000).contains(&limit) {
                return Err(Problem::bad_request(format!(
                    "limit must be between 1 and 1000, not {limit}"
                )));
            }
            let rows = self
                .state
                .engine
                .store()
                .list_tools(key.tenant(), after.0.as_deref(), limit as u64)
                .await
                .map_err(EngineError::from)?;
            let base = base_url(req, self.state.public_url.as_deref());
            let mut links = vec![get_link(
                "self",
                format!("{base}{}", req.uri()),
                Some(enc.media()),
            )];
            let mut next_href = None;
            if rows.len() as i64 == limit {
                if let Some(last) = rows.last() {
                    let mut q = url::form_urlencoded::Serializer::new(String::new());
                    q.append_pair("limit", &limit.to_string())
                        .append_pair("after", &last.tool_id);
                    if csv {
                        q.append_pair("format", "csv");
                    }
                    let href = format!("{base}/api/tools?{}", q.finish());
                    next_href = Some(href.clone());
                    links.push(get_link("next", href, Some(enc.media())));
                }
            }
            if csv {
                return Ok(ToolsAnswer::Csv(tools_csv(&rows), next_href));
            }
            Ok(ToolsAnswer::Doc(Rep::new(
                ToolsDoc {
                    tools: rows.iter().map(crate::domain::tool_json).collect(),
                    links,
                },
                enc,
                "catalog",
            )))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// One tool of the catalog
    ///
    /// The tool with this `tool_id` as the last import left it, in JSON or XML; 404 when
    /// no import has stored it.
    #[oai(path = "/api/tools/:tool_id", method = "get", operation_id = "getTool")]
    async fn tool(&self, key: Key<Read>, req: &Request, tool_id: Path<String>) -> ApiResult<Value> {
        let run = async {
            let enc = negotiate(req)?;
            let t = self
                .state
                .engine
                .store()
                .get_tool(key.tenant(), &tool_id)
                .await
                .map_err(EngineError::from)?
                .ok_or_else(|| Problem::not_found(format!("no tool `{}`", tool_id.0)))?;
            Ok(Rep::new(crate::domain::tool_json(&t), enc, "tool"))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }
}
