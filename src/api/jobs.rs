//! The canonical job resources: `/api/v1/jobs…`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::http::header;
use poem::Request;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiRequest, Enum, Object, OpenApi};
use serde_json::Value;
use uuid::Uuid;

use super::access::{job_for, snapshot_for, Admin, Caller, Key, Read, Submission, Submit};
use super::docs::*;
use super::wire::{
    base_url, correlation_id, negotiate, render, time_text, wants_event_stream, Also, ApiResult,
    Enc, Encoding, Prefer, Problem, Rep, StatusText, TimeText, XmlBody, XmlShape,
};
use super::{ApiTags, AppState};
use crate::domain::{job_href, retry_after_secs, Cursor, JobFilter, JobStatus};
use crate::engine::Cancelled;

/// A submission of any registered operation.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubmitRequest {
    /// The operation's name (see `/api/v1/operations`).
    pub operation: String,
    /// Its input, as its input schema describes.
    pub input: Option<Value>,
    /// Asynchronous options.
    #[oai(rename = "async")]
    pub async_options: Option<AsyncOptions>,
    /// Correlation id (the `X-Correlation-Id` header wins).
    pub correlation_id: Option<String>,
}

impl XmlShape for SubmitRequest {
    fn shape() -> crate::formats::xml::Shape {
        use crate::formats::xml::Shape;
        Shape::Object(vec![
            ("operation".into(), Shape::String),
            ("input".into(), Shape::Map),
            ("async".into(), AsyncOptions::shape()),
            ("correlationId".into(), Shape::String),
        ])
    }
}

/// A submission in JSON or XML.
#[derive(ApiRequest)]
pub enum SubmitBody {
    Json(Json<SubmitRequest>),
    Xml(XmlBody<SubmitRequest>),
}

/// What a bulk action does to each job it matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum BulkActionKind {
    /// Cancel queued and running jobs (scope `submit`).
    Cancel,
    /// Run FAILED and CANCELLED jobs again (scope `admin`).
    Restart,
    /// Delete jobs, cancelling running ones (scope `admin`).
    Delete,
}

/// A bulk action on the jobs the filter matches.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkActionRequest {
    /// `cancel`, `restart` or `delete`.
    pub action: BulkActionKind,
    /// The audit filters, as `GET /api/v1/jobs` takes them; restart and delete need at least
    /// one.
    pub filter: Option<super::exports::AuditFilter>,
    /// Asynchronous options (callback, notification) of the bulk action's own job.
    #[oai(rename = "async")]
    pub async_options: Option<AsyncOptions>,
    /// Correlation id (the `X-Correlation-Id` header wins).
    pub correlation_id: Option<String>,
}

impl XmlShape for BulkActionRequest {
    fn shape() -> crate::formats::xml::Shape {
        use crate::formats::xml::Shape;
        Shape::Object(vec![
            ("action".into(), Shape::String),
            ("filter".into(), super::exports::AuditFilter::shape()),
            ("async".into(), AsyncOptions::shape()),
            ("correlationId".into(), Shape::String),
        ])
    }
}

/// A bulk action in JSON or XML.
#[derive(ApiRequest)]
pub enum BulkActionBody {
    Json(Json<BulkActionRequest>),
    Xml(XmlBody<BulkActionRequest>),
}

/// The answer to a submission: 201 + Location with the job; with `Prefer: wait=N` (and no
/// `respond-async`) the job is awaited up to N seconds and answered 200 if it ended.
pub(crate) async fn created(
    state: &AppState,
    req: &Request,
    enc: super::wire::Enc,
    job: crate::domain::Job,
) -> ApiResult<JobDoc, 201> {
    let base = base_url(req, state.public_url.as_deref());
    let prefer = Prefer::of(req);
    let mut status = 201;
    let mut answer = (job, Vec::new());
    if let (Some(n), false) = (prefer.wait, prefer.respond_async) {
        if let Some(ended) = state
            .engine
            .wait_end(answer.0.id, std::time::Duration::from_secs(n))
            .await?
        {
            answer = state.engine.get_with_files(ended.id).await?;
            status = 200;
        }
    }
    let (job, files) = answer;
    let mut rep = Rep::new(JobDoc::new(&base, &job, &files, enc.media()), enc, "job")
        .header(header::LOCATION, job_href(&base, job.id))
        .header(header::ETAG, job.etag())
        .status(status);
    if let Some(n) = prefer.wait {
        rep = rep.header(
            poem::http::HeaderName::from_static("preference-applied"),
            format!("wait={n}"),
        );
    }
    Ok(rep)
}

/// The most matches the job list counts (past it, `count` is left out): counting 1,000 index
/// entries costs about a tenth of the page itself, 10,000 cost more than the page.
const COUNT_CAP: u64 = 1_000;

/// The job collection and each job's sub-resources.
pub struct JobsApi {
    pub state: Arc<AppState>,
}

fn parse_time(name: &str, v: &Option<String>) -> Result<Option<DateTime<Utc>>, Problem> {
    v.as_deref()
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    Problem::bad_request(format!(
                        "`{name}` must be an RFC 3339 time like 2026-01-31T12:00:00Z: {e}"
                    ))
                })
        })
        .transpose()
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn filter(
    caller: &Caller,
    status: &[String],
    operation: &Option<String>,
    correlation_id: &Option<String>,
    created_after: &Option<String>,
    created_before: &Option<String>,
    finished_after: &Option<String>,
    finished_before: &Option<String>,
) -> Result<JobFilter, Problem> {
    let mut statuses = Vec::new();
    for s in status.iter().flat_map(|s| s.split(',')) {
        // A deleted job does not exist: DELETED is only ever the answer to a DELETE.
        let st: JobStatus = s
            .trim_matches(' ')
            .parse()
            .ok()
            .filter(|st| *st != JobStatus::Deleted)
            .ok_or_else(|| {
                Problem::bad_request(format!(
                    "unknown status `{s}`; use QUEUED, STARTED, PROCESSING, SAVING, SUCCESS, FAILED or CANCELLED (a deleted job is not in the collection)"
                ))
            })?;
        statuses.push(st);
    }
    Ok(JobFilter {
        statuses,
        operation: operation.clone(),
        correlation_id: correlation_id.clone(),
        created_after: parse_time("createdAfter", created_after)?,
        created_before: parse_time("createdBefore", created_before)?,
        finished_after: parse_time("finishedAfter", finished_after)?,
        finished_before: parse_time("finishedBefore", finished_before)?,
        search: None,
        priority: None,
        owner: caller.owner(),
        work_lane_only: false,
    })
}

pub(super) fn id_of(id: &str) -> Result<Uuid, Problem> {
    id.parse()
        .map_err(|_| Problem::not_found(format!("no job with id `{id}` (ids are UUIDs)")))
}

/// What the result and data-file-set resources show of a successful job.
pub(super) struct FilesView {
    pub enc: super::wire::Enc,
    pub job: crate::domain::Job,
    pub files: Vec<FileDoc>,
    pub links: Vec<LinkDoc>,
}

/// The live files of job `id` once it is SUCCESS (409 before; another tenant's job is a 404),
/// with `self` (at `self_href(base)`), `operator:subject` and `file` links: the result's, and
/// every data file set's (`resource` is `datafileset`: files at seed 004's addresses).
pub(super) async fn files_view(
    state: &AppState,
    key: &Caller,
    req: &Request,
    id: Uuid,
    resource: &str,
    self_href: impl FnOnce(&str) -> String,
) -> Result<FilesView, Problem> {
    let enc = negotiate(req)?;
    job_for(state, key, id).await?;
    let (job, files) = state.engine.get_with_files(id).await?;
    if job.status != JobStatus::Success {
        return Err(Problem::new(
            409,
            "no-result-yet",
            format!(
                "job {id} is {}; its {resource} exists once it is SUCCESS",
                job.status
            ),
        ));
    }
    let base = base_url(req, state.public_url.as_deref());
    let live: Vec<_> = files.iter().filter(|f| !f.consumed).collect();
    let mut links = vec![
        get_link("self", self_href(&base), Some(enc.media())),
        get_link("operator:subject", job_href(&base, id), Some(enc.media())),
    ];
    // A data file set's files have seed 004's addresses; a result's the download's.
    let in_set = resource == "datafileset";
    let href = |f: &crate::domain::OutputFile| {
        if in_set {
            crate::domain::datafile_href(&base, id, f.id)
        } else {
            crate::domain::file_href(&base, f.id)
        }
    };
    links.extend(
        live.iter()
            .map(|f| get_link("file", href(f), Some(&f.content_type))),
    );
    let docs = live
        .iter()
        .map(|f| {
            if in_set {
                FileDoc::in_set(&base, f)
            } else {
                FileDoc::new(&base, f)
            }
        })
        .collect();
    Ok(FilesView {
        enc,
        job,
        files: docs,
        links,
    })
}

impl JobsApi {
    /// `files_view` of a job's own `/result` or `/datafileset` resource.
    async fn files_view(
        &self,
        key: &Caller,
        req: &Request,
        id: &str,
        resource: &str,
    ) -> Result<FilesView, Problem> {
        let id = id_of(id)?;
        files_view(&self.state, key, req, id, resource, |base| {
            format!("{}/{resource}", job_href(base, id))
        })
        .await
    }

    fn base(&self, req: &Request) -> String {
        base_url(req, self.state.public_url.as_deref())
    }

    /// The job document with ETag and, while it runs, Retry-After.
    async fn job_rep<const S: u16>(
        &self,
        key: &Caller,
        req: &Request,
        id: Uuid,
    ) -> ApiResult<JobDoc, S> {
        let snap = snapshot_for(&self.state, key, id).await?;
        let enc = negotiate(req)?;
        let base = self.base(req);
        let body = self.state.renders.get_or(&snap, enc, &base, || {
            render(
                &JobDoc::new(&base, &snap.0, &snap.1, enc.media()),
                enc,
                "job",
            )
        });
        Ok(job_headers(Rep::rendered(body, enc), &snap.0))
    }

    fn job_rep_of<const S: u16>(
        &self,
        req: &Request,
        job: &crate::domain::Job,
        files: &[crate::domain::OutputFile],
    ) -> ApiResult<JobDoc, S> {
        let enc = negotiate(req)?;
        let base = self.base(req);
        let rep = Rep::new(JobDoc::new(&base, job, files, enc.media()), enc, "job");
        Ok(job_headers(rep, job))
    }
}

/// A job document's ETag, caching rule and, while it runs, its `Retry-After`.
fn job_headers<const S: u16>(rep: Rep<JobDoc, S>, job: &crate::domain::Job) -> Rep<JobDoc, S> {
    let rep = rep
        .header(header::ETAG, job.etag())
        .header(header::CACHE_CONTROL, "no-cache");
    match retry_after_secs(job, Utc::now()) {
        Some(s) => rep.header(header::RETRY_AFTER, s.to_string()),
        None => rep,
    }
}

#[OpenApi(tag = "ApiTags::Jobs")]
impl JobsApi {
    /// Read a job
    ///
    /// The job with its status, stage, phase, progress and the links valid now. Carries an ETag
    /// (`If-None-Match` answers 304) and, while the job runs, a `Retry-After` polling hint.
    #[oai(path = "/api/v1/jobs/:id", method = "get", operation_id = "getJob")]
    async fn get_job(
        &self,
        key: Key<Read>,
        req: &Request,
        /// Job id.
        id: Path<String>,
        /// `json` or `xml` (overrides Accept).
        #[oai(name = "format")]
        _format: Query<Option<Encoding>>,
        /// An ETag from an earlier answer.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
        /// `wait=N` (N ≤ 60): hold the answer until the job differs from `If-None-Match` (or
        /// from its state now) or N seconds pass; answered with `Preference-Applied`.
        #[oai(name = "Prefer")]
        _prefer: Header<Option<String>>,
    ) -> Result<Also<Rep<JobDoc>, 304>, Problem> {
        let id = id_of(&id).map_err(|p| p.for_req(req))?;
        let inm = if_none_match
            .0
            .as_deref()
            .map(|v| {
                v.split(',')
                    .map(|t| t.trim().to_string())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let run = async {
            negotiate(req)?;
            let prefer = Prefer::of(req);
            let mut rep = match prefer.wait {
                Some(n) => {
                    job_for(&self.state, &key, id).await?;
                    let seen = inm.iter().find(|t| t.as_str() != "*").map(String::as_str);
                    let (job, files) = self
                        .state
                        .engine
                        .wait_change(id, seen, std::time::Duration::from_secs(n))
                        .await?;
                    self.job_rep_of::<200>(req, &job, &files)?.header(
                        poem::http::HeaderName::from_static("preference-applied"),
                        format!("wait={n}"),
                    )
                }
                None => self.job_rep::<200>(&key, req, id).await?,
            };
            let etag = rep
                .headers
                .iter()
                .find(|(k, _)| k == header::ETAG)
                .map(|h| h.1.clone());
            if let Some(tag) = etag {
                if inm.iter().any(|t| *t == tag || t == "*") {
                    rep = rep.status(304);
                }
            }
            Ok(rep)
        };
        // Boxed: the long-poll branch's future is large, and every layer of routing above this
        // handler would otherwise copy it whole on each plain poll.
        Box::pin(run)
            .await
            .map(Also)
            .map_err(|p: Problem| p.for_req(req))
    }

    /// Submit a job of any registered operation
    ///
    /// Answers 201 with the job and a Location to follow. Imports have their own resource
    /// (`/api/v1/imports`) because their records are streamed.
    #[oai(path = "/api/v1/jobs", method = "post", operation_id = "submitJob")]
    async fn submit(
        &self,
        key: Key<Submission>,
        req: &Request,
        body: SubmitBody,
        /// `respond-async`, or `wait=N` (N ≤ 60): answer 200 with the ended job if it ends
        /// within N seconds, else 201 as usual.
        #[oai(name = "Prefer")]
        _prefer: Header<Option<String>>,
    ) -> Result<Also<Rep<JobDoc, 201>, 200>, Problem> {
        let run = async {
            let enc = negotiate(req)?;
            let body = match body {
                SubmitBody::Json(b) => b.0,
                SubmitBody::Xml(b) => b.0,
            };
            if body.operation == "import" {
                return Err(Problem::bad_request(
                    "imports carry their records as the body of POST /api/v1/imports",
                ));
            }
            let a = body
                .async_options
                .as_ref()
                .map(|a| a.to_request())
                .transpose()?
                .unwrap_or_default();
            let options = super::signals::job_options(&self.state, req, a).await?;
            let correlation = correlation_id(req, body.correlation_id);
            let job = self
                .state
                .engine
                .submit(crate::engine::NewJob {
                    owner: key.owner(),
                    id: Uuid::now_v7(),
                    operation: body.operation,
                    input: body.input.unwrap_or(Value::Null),
                    input_blob: None,
                    correlation_id: correlation,
                    options,
                })
                .await?;
            created(&self.state, req, enc, job).await
        };
        run.await.map(Also).map_err(|p: Problem| p.for_req(req))
    }

    /// Act on many jobs at once (bulk cancel, restart or delete)
    ///
    /// Cancels, restarts or deletes every job of the caller's tenant that the audit filters
    /// match and that was created before this request. Answers 201 with the bulk action's own
    /// job: follow Location for its progress and messages (one per batch of 100 jobs), cancel it
    /// through its `cancel` link, read its counts (`matched`, `acted`, `skipped` with
    /// `skippedBecause`) on its `result` once it is SUCCESS. A job in a state the action cannot
    /// move (a cancel of an ended job, a restart of a job that is not FAILED or CANCELLED or
    /// ended after the action was made) is skipped, never moved twice. Bulk actions run in a
    /// lane of their own, so one starts at once even when every worker is busy and the queue is
    /// long. `cancel` needs the `submit` scope; `restart` and `delete` need `admin`, and a
    /// filter.
    #[oai(
        path = "/api/v1/jobs/actions",
        method = "post",
        operation_id = "bulkJobAction"
    )]
    async fn bulk_action(
        &self,
        key: Key<Submission>,
        req: &Request,
        body: BulkActionBody,
        /// `respond-async`, or `wait=N` (N ≤ 60): answer 200 with the ended bulk action if it
        /// ends within N seconds, else 201 as usual.
        #[oai(name = "Prefer")]
        _prefer: Header<Option<String>>,
    ) -> Result<Also<Rep<JobDoc, 201>, 200>, Problem> {
        use crate::operations::bulk::{Action, BulkSpec};
        let run = async {
            let enc = negotiate(req)?;
            let r = match body {
                BulkActionBody::Json(b) => b.0,
                BulkActionBody::Xml(b) => b.0,
            };
            let action = match r.action {
                BulkActionKind::Cancel => Action::Cancel,
                BulkActionKind::Restart => Action::Restart,
                BulkActionKind::Delete => Action::Delete,
            };
            if action != Action::Cancel {
                key.at_least::<Admin>(req, &format!("a bulk {}", action.as_str()))?;
            }
            let filter = r.filter.unwrap_or_default().for_caller(&key)?;
            let spec = BulkSpec { action, filter };
            let a = r
                .async_options
                .as_ref()
                .map(|a| a.to_request())
                .transpose()?
                .unwrap_or_default();
            let options = super::signals::job_options(&self.state, req, a).await?;
            let job = self
                .state
                .engine
                .submit_control(crate::engine::NewJob {
                    owner: key.owner(),
                    id: Uuid::now_v7(),
                    operation: crate::domain::lane::BULK.into(),
                    input: spec.to_input(),
                    input_blob: None,
                    correlation_id: correlation_id(req, r.correlation_id),
                    options,
                })
                .await?;
            created(&self.state, req, enc, job).await
        };
        run.await.map(Also).map_err(|p: Problem| p.for_req(req))
    }

    /// List jobs (audit)
    ///
    /// Filter by status (repeatable), operation, correlation id and time windows; sort by
    /// `createdTime` or `-createdTime`; page with `limit` and the opaque `cursor` of the `next`
    /// and `prev` links (also sent in an RFC 8288 `Link` header).
    #[oai(path = "/api/v1/jobs", method = "get", operation_id = "listJobs")]
    #[allow(clippy::too_many_arguments)]
    async fn list_jobs(
        &self,
        key: Key<Read>,
        req: &Request,
        /// Statuses to include (repeatable, or comma-separated).
        status: Query<Option<Vec<StatusText<false>>>>,
        /// Operation name.
        operation: Query<Option<String>>,
        /// Correlation id.
        #[oai(name = "correlationId")]
        correlation_id: Query<Option<String>>,
        /// Created after this RFC 3339 time.
        #[oai(name = "createdAfter")]
        created_after: Query<Option<TimeText>>,
        /// Created before this RFC 3339 time.
        #[oai(name = "createdBefore")]
        created_before: Query<Option<TimeText>>,
        /// Finished after this RFC 3339 time.
        #[oai(name = "finishedAfter")]
        finished_after: Query<Option<TimeText>>,
        /// Finished before this RFC 3339 time.
        #[oai(name = "finishedBefore")]
        finished_before: Query<Option<TimeText>>,
        /// The start of a job's id or of its correlation id (letter case aside), up to 200
        /// characters.
        search: Query<Option<String>>,
        /// Only jobs of this priority (-10 to 10).
        #[oai(validator(minimum(value = "-10"), maximum(value = "10")))]
        priority: Query<Option<i32>>,
        /// `createdTime` (oldest first, the default) or `-createdTime`.
        #[oai(validator(pattern = "^[+-]?createdTime$"))]
        sort: Query<Option<String>>,
        /// Page size, 1 to 1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<i64>>,
        /// Opaque cursor from a `next` or `prev` link.
        cursor: Query<Option<String>>,
        /// `json` or `xml` (overrides Accept).
        #[oai(name = "format")]
        _format: Query<Option<Encoding>>,
    ) -> ApiResult<JobListDoc> {
        let run = async {
            let enc = negotiate(req)?;
            // The query's filters read as a body's are: one reading, `AuditFilter::for_caller`.
            let f = super::exports::AuditFilter {
                status: status
                    .0
                    .clone()
                    .map(|v| v.into_iter().map(|s| s.0).collect()),
                operation: operation.0.clone(),
                correlation_id: correlation_id.0.clone(),
                created_after: created_after.0.clone(),
                created_before: created_before.0.clone(),
                finished_after: finished_after.0.clone(),
                finished_before: finished_before.0.clone(),
                search: search.0.clone(),
                priority: priority.0,
            }
            .for_caller(&key)?;
            let descending = match sort.0.as_deref() {
                None | Some("createdTime") | Some("+createdTime") => false,
                Some("-createdTime") => true,
                Some(other) => {
                    return Err(Problem::bad_request(format!(
                        "sort `{other}` is not offered; use createdTime or -createdTime"
                    )))
                }
            };
            let limit = limit.0.unwrap_or(100);
            if !(1..=1000).contains(&limit) {
                return Err(Problem::bad_request(format!(
                    "limit must be between 1 and 1000, not {limit}"
                )));
            }
            // An empty cursor is the first page.
            let cur = match cursor.0.as_deref().filter(|c| !c.is_empty()) {
                None => None,
                Some(c) => Some(Cursor::decode(c).ok_or_else(|| {
                    Problem::bad_request("cursor is not one this service gave out")
                })?),
            };
            let page = self
                .state
                .engine
                .list(&f, descending, cur, limit as u64)
                .await?;
            // The count is given when cheap: on the first page, up to COUNT_CAP matches; a first
            // page with no next one holds them all.
            let count = match (cur, page.next) {
                (Some(_), _) => None,
                (None, None) => Some(page.items.len() as u64),
                (None, Some(_)) => self.state.engine.count_upto(&f, COUNT_CAP).await?,
            };
            let base = self.base(req);
            let mut jobs = Vec::with_capacity(page.items.len());
            // Files only matter for SUCCESS jobs (their links are part of the document); the
            // page's are read in one query.
            let mut files = self.state.engine.files_of_jobs(&page.items).await?;
            for j in &page.items {
                let mine = files.remove(&j.id).unwrap_or_default();
                jobs.push(JobDoc::new(&base, j, &mine, enc.media()));
            }
            // Links keep every query parameter but the cursor.
            let keep: Vec<(String, String)> = req
                .uri()
                .query()
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .filter(|(k, _)| k != "cursor")
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let href = |c: Option<Cursor>| {
                let mut s = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in &keep {
                    s.append_pair(k, v);
                }
                if let Some(c) = c {
                    s.append_pair("cursor", &c.encode());
                }
                let q = s.finish();
                if q.is_empty() {
                    format!("{base}/api/v1/jobs")
                } else {
                    format!("{base}/api/v1/jobs?{q}")
                }
            };
            let mut links = vec![get_link("self", href(cur), Some(enc.media()))];
            let mut link_header = Vec::new();
            if let Some(n) = page.next {
                let h = href(Some(n));
                link_header.push(format!("<{h}>; rel=\"next\""));
                links.push(get_link("next", h, Some(enc.media())));
            }
            if let Some(p) = page.prev {
                let h = href(Some(p));
                link_header.push(format!("<{h}>; rel=\"prev\""));
                links.push(get_link("prev", h, Some(enc.media())));
            }
            let doc = JobListDoc { jobs, count, links };
            // JSON pages are written straight from the documents (see `docs`).
            let mut rep = match enc {
                super::wire::Enc::Json => Rep::rendered(
                    serde_json::to_vec(&doc)
                        .map_err(|e| Problem::new(500, "internal", e.to_string()))?
                        .into(),
                    enc,
                ),
                _ => Rep::new(doc, enc, "jobList"),
            };
            if !link_header.is_empty() {
                rep = rep.header(header::LINK, link_header.join(", "));
            }
            Ok(rep)
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// Cancel a job
    ///
    /// Asks the job to stop. 200 with the job once it is CANCELLED; 202 while a running job is
    /// on its way to its next checkpoint. Idempotent; a SUCCESS or FAILED job answers 409.
    #[oai(
        path = "/api/v1/jobs/:id/cancel",
        method = "post",
        operation_id = "cancelJob"
    )]
    async fn cancel_job(
        &self,
        key: Key<Submit>,
        req: &Request,
        id: Path<String>,
    ) -> Result<Also<Rep<JobDoc>, 202>, Problem> {
        let run = async {
            let id = id_of(&id)?;
            negotiate(req)?;
            job_for(&self.state, &key, id).await?;
            let status = match self.state.engine.cancel(id).await? {
                Cancelled::Done(_) => 200,
                Cancelled::Pending(_) => 202,
            };
            Ok(self.job_rep::<200>(&key, req, id).await?.status(status))
        };
        run.await.map(Also).map_err(|p: Problem| p.for_req(req))
    }

    /// Restart a job
    ///
    /// A FAILED or CANCELLED job runs again as a new attempt with the same input; its messages
    /// are kept. Other states answer 409.
    #[oai(
        path = "/api/v1/jobs/:id/restart",
        method = "post",
        operation_id = "restartJob"
    )]
    async fn restart_job(
        &self,
        key: Key<Admin>,
        req: &Request,
        id: Path<String>,
    ) -> ApiResult<JobDoc> {
        let run = async {
            let id = id_of(&id)?;
            negotiate(req)?;
            job_for(&self.state, &key, id).await?;
            self.state.engine.restart(id).await?;
            self.job_rep::<200>(&key, req, id).await
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// Delete a job
    ///
    /// Cancels it if needed, removes its outputs and answers the job with `jobStatus: DELETED`.
    /// Afterwards the id (and its files) answer 410 Gone.
    #[oai(
        path = "/api/v1/jobs/:id",
        method = "delete",
        operation_id = "deleteJob"
    )]
    async fn delete_job(
        &self,
        key: Key<Admin>,
        req: &Request,
        id: Path<String>,
    ) -> ApiResult<JobDoc> {
        let run = async {
            let id = id_of(&id)?;
            let enc = negotiate(req)?;
            job_for(&self.state, &key, id).await?;
            let job = self.state.engine.delete(id).await?;
            let base = self.base(req);
            Ok(Rep::new(
                JobDoc::new(&base, &job, &[], enc.media()),
                enc,
                "job",
            ))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// Delete ended jobs in bulk
    ///
    /// Removes jobs in an end state that match the filters (at least one is required), with
    /// their files; answers how many were removed.
    #[oai(path = "/api/v1/jobs", method = "delete", operation_id = "purgeJobs")]
    #[allow(clippy::too_many_arguments)]
    async fn purge_jobs(
        &self,
        key: Key<Admin>,
        req: &Request,
        /// Statuses (end states; repeatable, or comma-separated).
        status: Query<Option<Vec<StatusText<true>>>>,
        /// Operation name.
        operation: Query<Option<String>>,
        /// Correlation id.
        #[oai(name = "correlationId")]
        correlation_id: Query<Option<String>>,
        /// Created after.
        #[oai(name = "createdAfter")]
        created_after: Query<Option<TimeText>>,
        /// Created before.
        #[oai(name = "createdBefore")]
        created_before: Query<Option<TimeText>>,
        /// Finished after.
        #[oai(name = "finishedAfter")]
        finished_after: Query<Option<TimeText>>,
        /// Finished before.
        #[oai(name = "finishedBefore")]
        finished_before: Query<Option<TimeText>>,
    ) -> ApiResult<PurgeDoc> {
        let run = async {
            let enc = negotiate(req)?;
            let f = filter(
                &key,
                &status
                    .iter()
                    .flatten()
                    .map(|s| s.0.clone())
                    .collect::<Vec<_>>(),
                &operation,
                &correlation_id,
                &time_text(&created_after),
                &time_text(&created_before),
                &time_text(&finished_after),
                &time_text(&finished_before),
            )?;
            if let Some(s) = f.statuses.iter().find(|s| !s.is_end()) {
                return Err(Problem::bad_request(format!(
                    "only ended jobs can be purged; `{s}` is not an end state"
                )));
            }
            let removed = self.state.engine.purge(&f).await?;
            Ok(Rep::new(PurgeDoc { removed }, enc, "purge"))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// A job's messages
    ///
    /// The append-only log: every state change, stage change, warning, error and retry, and the
    /// lines the operation writes. `after` gives only the lines after that `seq`. Asked for as
    /// `text/event-stream` (or with `follow=true`, the `follow` link), it is followed live: a
    /// `message` event per line as it is written, its `id` the line's `seq` (a reconnecting
    /// client sends `Last-Event-ID`), until the job has ended.
    #[oai(
        path = "/api/v1/jobs/:id/messages",
        method = "get",
        operation_id = "getJobMessages"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn messages(
        &self,
        key: Key<Read>,
        req: &Request,
        id: Path<String>,
        /// Only the lines after this `seq`.
        #[oai(validator(minimum(value = "0")))]
        after: Query<Option<i64>>,
        /// `true` to follow the log live as server-sent events (as `Accept: text/event-stream`).
        follow: Query<Option<bool>>,
        /// The `id` of the last event received before reconnecting a followed log (a `seq`).
        #[oai(name = "Last-Event-ID", validator(pattern = r"^\s*[0-9]{0,18}\s*$"))]
        last_event_id: Header<Option<String>>,
        /// `json` or `xml` (overrides Accept).
        #[oai(name = "format")]
        _format: Query<Option<Encoding>>,
    ) -> Result<Logged, Problem> {
        let run = async {
            let id = id_of(&id)?;
            let live = follow.0.unwrap_or(false) || wants_event_stream(req);
            let enc = if live { Enc::Json } else { negotiate(req)? };
            let mut after = after.0.unwrap_or(0);
            // Only a follower reconnects; an empty id is none (as EventSource sends it).
            let resumed = last_event_id
                .0
                .as_deref()
                .map(str::trim)
                .filter(|v| live && !v.is_empty());
            if let Some(v) = resumed {
                let seq: i64 = v.parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    Problem::bad_request(format!(
                        "Last-Event-ID `{v}` is not the `seq` of a line of this log"
                    ))
                })?;
                after = after.max(seq);
            }
            job_for(&self.state, &key, id).await?;
            if live {
                return Ok(Logged::Live(super::live::message_stream(
                    &self.state,
                    id,
                    after,
                )));
            }
            let msgs = self.state.engine.messages_after(id, after).await?;
            let last = msgs.last().map_or(after, |m| m.seq);
            let base = self.base(req);
            let me = job_href(&base, id);
            Ok(Logged::Doc(Rep::new(
                MessagesDoc {
                    job_id: id,
                    messages: msgs.into_iter().map(MessageDoc::from).collect(),
                    links: vec![
                        get_link("self", format!("{me}/messages"), Some(enc.media())),
                        get_link("operator:subject", me.clone(), Some(enc.media())),
                        get_link(
                            "follow",
                            format!("{me}/messages?follow=true&after={last}"),
                            Some("text/event-stream"),
                        ),
                    ],
                },
                enc,
                "messages",
            )))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// A job's operator
    ///
    /// The technical executor: node, attempt, lease and heartbeat, with `operator:messages` and,
    /// when the job is FAILED or CANCELLED, `operator:restart`.
    #[oai(
        path = "/api/v1/jobs/:id/operator",
        method = "get",
        operation_id = "getJobOperator"
    )]
    async fn operator(
        &self,
        key: Key<Read>,
        req: &Request,
        id: Path<String>,
    ) -> ApiResult<OperatorDoc> {
        let run = async {
            let id = id_of(&id)?;
            let enc = negotiate(req)?;
            let job = job_for(&self.state, &key, id).await?;
            let base = self.base(req);
            let me = job_href(&base, id);
            let m = Some(enc.media());
            let mut links = vec![
                get_link("self", format!("{me}/operator"), m),
                get_link("operator:subject", me.clone(), m),
                get_link("operator:messages", format!("{me}/messages"), m),
            ];
            if matches!(job.status, JobStatus::Failed | JobStatus::Cancelled) {
                links.push(LinkDoc {
                    rel: "operator:restart".into(),
                    href: format!("{me}/restart"),
                    method: "POST".into(),
                    media_type: m.map(str::to_string),
                });
            }
            Ok(Rep::new(
                OperatorDoc {
                    job_id: id,
                    job_status: job.status.into(),
                    node: job.lease.as_ref().map(|l| l.owner.clone()),
                    attempt: job.attempt,
                    max_attempts: job.max_attempts,
                    lease_expires: job.lease.as_ref().map(|l| l.expires),
                    heartbeat: job.lease.as_ref().and_then(|l| l.heartbeat),
                    cancel_requested: job.cancel_requested,
                    links,
                },
                enc,
                "operator",
            ))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// A job's result
    ///
    /// The result summary with the `file` links; 409 until the job is SUCCESS.
    #[oai(
        path = "/api/v1/jobs/:id/result",
        method = "get",
        operation_id = "getJobResult"
    )]
    async fn result(
        &self,
        key: Key<Read>,
        req: &Request,
        id: Path<String>,
    ) -> ApiResult<ResultDoc> {
        let run = async {
            let v = self.files_view(&key, req, &id, "result").await?;
            Ok(Rep::new(
                ResultDoc {
                    job_id: v.job.id,
                    job_status: v.job.status.into(),
                    summary: v.job.summary.clone(),
                    files: v.files,
                    links: v.links,
                },
                v.enc,
                "result",
            ))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// A job's data file set
    ///
    /// The output files, each with name, size, content type, rows and download link.
    #[oai(
        path = "/api/v1/jobs/:id/datafileset",
        method = "get",
        operation_id = "getJobDataFileSet"
    )]
    async fn datafileset(
        &self,
        key: Key<Read>,
        req: &Request,
        id: Path<String>,
    ) -> ApiResult<DataFileSetDoc> {
        let run = async {
            let v = self.files_view(&key, req, &id, "datafileset").await?;
            Ok(Rep::new(
                DataFileSetDoc {
                    job_id: v.job.id,
                    files: v.files,
                    links: v.links,
                },
                v.enc,
                "dataFileSet",
            ))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }
}

/// A job's log: a document (JSON or XML), or followed live as server-sent events.
pub enum Logged {
    Doc(Rep<MessagesDoc>),
    Live(super::live::Live<super::live::MessageStream>),
}

impl poem::IntoResponse for Logged {
    fn into_response(self) -> poem::Response {
        match self {
            Logged::Doc(r) => r.into_response(),
            Logged::Live(l) => l.into_response(),
        }
    }
}

impl poem_openapi::ApiResponse for Logged {
    fn meta() -> poem_openapi::registry::MetaResponses {
        let mut meta = Rep::<MessagesDoc>::meta();
        for r in &mut meta.responses {
            r.content
                .push(super::live::Live::<super::live::MessageStream>::media());
        }
        meta
    }
    fn register(registry: &mut poem_openapi::registry::Registry) {
        Rep::<MessagesDoc>::register(registry);
        <super::live::Live<super::live::MessageStream> as poem_openapi::ApiResponse>::register(
            registry,
        );
    }
}
