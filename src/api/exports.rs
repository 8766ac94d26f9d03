//! `POST /api/v1/exports` (seed 004): the tools catalog or the job collection as a data file set;
//! seed 004's addresses of a job's data file set (`/datafilesets/{code}`) and of its files
//! (`/datafilesets/{code}/datafiles/{fileCode}/data`, served as `/downloads/{fileId}` serves them).

use std::sync::Arc;

use poem::Request;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiRequest, Enum, Object, OpenApi};

use super::access::{Caller, Key, KeyOrLink, Read, Submission};
use super::docs::{AsyncOptions, DataFileSetDoc, JobDoc};
use super::downloads::{serve_file, Download};
use super::wire::{
    correlation_id, negotiate, time_text, Also, ApiResult, Problem, Rep, TimeText, XmlBody,
    XmlShape,
};
use super::{ApiTags, AppState};
use crate::domain::{datafileset_href, JobFilter};
use crate::engine::NewJob;
use crate::operations::export::{Dataset, ExportFormat, ExportSpec, DEFAULT_PART_SIZE};

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum DatasetDoc {
    Tools,
    Jobs,
}

/// File encoding of the parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ExportFormatDoc {
    Csv,
    Ndjson,
    Json,
    Xml,
}

/// The audit filters, as `GET /api/v1/jobs` takes them: the jobs an export (of the jobs
/// dataset) or a bulk action is about.
#[derive(Debug, Clone, Default, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditFilter {
    /// Statuses to include.
    pub status: Option<Vec<String>>,
    pub operation: Option<String>,
    pub correlation_id: Option<String>,
    /// RFC 3339 times.
    pub created_after: Option<TimeText>,
    pub created_before: Option<TimeText>,
    pub finished_after: Option<TimeText>,
    pub finished_before: Option<TimeText>,
    /// The start of a job's id or of its correlation id (letter case aside), up to 200
    /// characters.
    pub search: Option<String>,
    /// Only jobs of this priority (-10 to 10).
    #[oai(validator(minimum(value = "-10"), maximum(value = "10")))]
    pub priority: Option<i32>,
}

impl AuditFilter {
    /// The filter for `caller`'s jobs, or the problem with it.
    pub fn for_caller(self, caller: &Caller) -> Result<JobFilter, Problem> {
        let mut f = super::jobs::filter(
            caller,
            &self.status.unwrap_or_default(),
            &self.operation,
            &self.correlation_id,
            &time_text(&self.created_after),
            &time_text(&self.created_before),
            &time_text(&self.finished_after),
            &time_text(&self.finished_before),
        )?;
        f.search =
            crate::domain::search_prefix(self.search.as_deref()).map_err(Problem::bad_request)?;
        f.priority = match self.priority {
            Some(p) => crate::domain::signals::as_priority(&p.into(), "priority")
                .map_err(Problem::bad_request)?,
            None => None,
        };
        Ok(f)
    }
}

impl XmlShape for AuditFilter {
    fn shape() -> crate::formats::xml::Shape {
        use crate::formats::xml::Shape;
        Shape::Object(vec![
            ("status".into(), Shape::Array(Box::new(Shape::String))),
            ("operation".into(), Shape::String),
            ("correlationId".into(), Shape::String),
            ("createdAfter".into(), Shape::String),
            ("createdBefore".into(), Shape::String),
            ("finishedAfter".into(), Shape::String),
            ("finishedBefore".into(), Shape::String),
            ("search".into(), Shape::String),
            ("priority".into(), Shape::Integer),
        ])
    }
}

/// An export request.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportRequest {
    /// `tools` or `jobs`.
    pub dataset: DatasetDoc,
    /// `csv` (default), `ndjson`, `json` or `xml`.
    pub format: Option<ExportFormatDoc>,
    /// For `jobs`: the audit filters.
    pub filter: Option<AuditFilter>,
    /// Rows per file (default 100000); a new part starts every `partSize` rows.
    pub part_size: Option<u64>,
    /// Asynchronous options (callback, notification, keepResult).
    #[oai(rename = "async")]
    pub async_options: Option<AsyncOptions>,
    /// Correlation id (the `X-Correlation-Id` header wins).
    pub correlation_id: Option<String>,
}

impl XmlShape for ExportRequest {
    fn shape() -> crate::formats::xml::Shape {
        use crate::formats::xml::Shape;
        Shape::Object(vec![
            ("dataset".into(), Shape::String),
            ("format".into(), Shape::String),
            ("filter".into(), AuditFilter::shape()),
            ("partSize".into(), Shape::Integer),
            ("async".into(), AsyncOptions::shape()),
            ("correlationId".into(), Shape::String),
        ])
    }
}

/// An export in JSON or XML.
#[derive(ApiRequest)]
pub enum ExportBody {
    Json(Json<ExportRequest>),
    Xml(XmlBody<ExportRequest>),
}

/// Exports.
pub struct ExportsApi {
    pub state: Arc<AppState>,
}

#[OpenApi(tag = "ApiTags::Exports")]
impl ExportsApi {
    /// Export a dataset as a data file set (seed 004)
    ///
    /// The tools catalog, or the jobs matching the audit filters, streamed into files of
    /// `partSize` rows (CSV with a header row in every part, NDJSON, a JSON array or an XML
    /// document per part). Answers 201 with the job; on SUCCESS each part is a `file` link and the
    /// `datafileset` lists them with their row counts.
    #[oai(path = "/api/v1/exports", method = "post", operation_id = "export")]
    async fn export(
        &self,
        key: Key<Submission>,
        req: &Request,
        body: ExportBody,
        /// `wait=N`: answer 200 with the ended job if it ends within N seconds.
        #[oai(name = "Prefer")]
        _prefer: poem_openapi::param::Header<Option<String>>,
    ) -> Result<Also<Rep<JobDoc, 201>, 200>, Problem> {
        let run = async {
            let enc = negotiate(req)?;
            let r = match body {
                ExportBody::Json(b) => b.0,
                ExportBody::Xml(b) => b.0,
            };
            let filter = r.filter.unwrap_or_default().for_caller(&key)?;
            let spec = ExportSpec {
                dataset: match r.dataset {
                    DatasetDoc::Tools => Dataset::Tools,
                    DatasetDoc::Jobs => Dataset::Jobs,
                },
                format: match r.format.unwrap_or(ExportFormatDoc::Csv) {
                    ExportFormatDoc::Csv => ExportFormat::Csv,
                    ExportFormatDoc::Ndjson => ExportFormat::Ndjson,
                    ExportFormatDoc::Json => ExportFormat::Json,
                    ExportFormatDoc::Xml => ExportFormat::Xml,
                },
                filter,
                part_size: r.part_size.unwrap_or(DEFAULT_PART_SIZE),
            };
            let options = super::signals::job_options(
                &self.state,
                req,
                r.async_options
                    .map(|a| a.to_request())
                    .transpose()?
                    .unwrap_or_default(),
            )
            .await?;
            let job = self
                .state
                .engine
                .submit(NewJob {
                    id: uuid::Uuid::now_v7(),
                    owner: key.owner(),
                    operation: "export".into(),
                    input: spec.to_input(),
                    input_blob: None,
                    correlation_id: correlation_id(req, r.correlation_id),
                    options,
                })
                .await?;
            super::jobs::created(&self.state, req, enc, job).await
        };
        run.await.map(Also).map_err(|p: Problem| p.for_req(req))
    }

    /// A data file set (seed 004)
    ///
    /// The files of a job that ended in SUCCESS (the code is the job id): each with its name,
    /// size, content type, rows and its link in the seed's shape
    /// `/datafilesets/{code}/datafiles/{fileCode}/data`. 409 until the job is SUCCESS; another
    /// tenant's set is not found.
    #[oai(
        path = "/datafilesets/:code",
        method = "get",
        operation_id = "getDataFileSet"
    )]
    async fn datafileset(
        &self,
        key: Key<Read>,
        req: &Request,
        /// The data file set's code (its job's id).
        code: Path<String>,
    ) -> ApiResult<DataFileSetDoc> {
        let run = async {
            let id = set_code(&code)?;
            let v = super::jobs::files_view(&self.state, &key, req, id, "datafileset", |base| {
                datafileset_href(base, id)
            })
            .await?;
            Ok(Rep::new(
                DataFileSetDoc {
                    job_id: id,
                    files: v.files,
                    links: v.links,
                },
                v.enc,
                "dataFileSet",
            ))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// A data file of a set (seed 004)
    ///
    /// The file's bytes exactly as `/downloads/{fileId}` serves them: its content type,
    /// `Content-Length`, `ETag`, single `Range` requests, read-once files. A file of another
    /// set, or of another tenant, is not found.
    #[oai(
        path = "/datafilesets/:code/datafiles/:file_code/data",
        method = "get",
        operation_id = "getDataFile"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn datafile(
        &self,
        reader: KeyOrLink,
        req: &Request,
        /// The data file set's code (its job's id).
        code: Path<String>,
        /// The data file's code (its file id).
        file_code: Path<String>,
        /// A single byte range (`bytes=0-99`).
        #[oai(name = "Range")]
        range: Header<Option<String>>,
        /// An ETag from an earlier answer.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
        /// Expiry (Unix seconds) of a signed link.
        expires: Query<Option<i64>>,
        /// Signature of a signed link (made by `POST /api/v1/jobs/{id}/share`).
        sig: Query<Option<String>>,
    ) -> Result<Download, Problem> {
        let set = match set_code(&code) {
            Ok(s) => s,
            Err(_) => {
                return Err(Problem::not_found(format!("no file `{}`", file_code.0)).for_req(req))
            }
        };
        serve_file(
            &self.state,
            reader.caller(),
            req,
            &file_code,
            Some(set),
            range.0.as_deref(),
            if_none_match.0.as_deref(),
            (expires.0, sig.0.as_deref()),
        )
        .await
    }
}

/// A data file set's code: its job's id (anything else names no set).
fn set_code(code: &str) -> Result<uuid::Uuid, Problem> {
    code.parse()
        .map_err(|_| Problem::not_found(format!("no data file set `{code}`")))
}
