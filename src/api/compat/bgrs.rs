//! Seed 001's background requests: any GET under `/api/` with `bgrs=yes` (or `1`), or with
//! `Prefer: respond-async`, runs as a `request` job; `/bgrs/{id}`, `/bgrs/{id}/details` and
//! `/bgrs/{id}/result` show it. Only the owner, or the holder of a signed expiring share link,
//! may read them.

use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use poem::endpoint::BoxEndpoint;
use poem::http::{header, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::api::access::{job_for, Key, KeyOrLink, Submission, Submit};
use crate::api::docs::{get_link, LinkDoc};
use crate::api::wire::{base_url, negotiate, Enc, Prefer, Problem, Rep};
use crate::api::{ApiTags, AppState};
use crate::domain::signals::{share_sig, share_valid};
use crate::domain::{job_href, Job, JobStatus};
use crate::engine::{EngineError, NewJob};
use crate::operations::request::{Answer, InProcess, Posted, ANSWER_HEADERS};

/// Calls the service's own endpoint in-process (set once the endpoint is built). It holds the
/// endpoint weakly: the endpoint owns the engine, which owns this client.
#[derive(Default)]
pub struct SelfClient {
    endpoint: OnceLock<Weak<BoxEndpoint<'static, Response>>>,
}

impl SelfClient {
    pub fn set(&self, ep: &Arc<BoxEndpoint<'static, Response>>) {
        let _ = self.endpoint.set(Arc::downgrade(ep));
    }
}

#[async_trait]
impl InProcess for SelfClient {
    async fn call(
        &self,
        uri: &str,
        headers: &[(String, String)],
        origin: Option<&str>,
        owner: &str,
        posted: Option<Posted>,
    ) -> Result<Answer, String> {
        let ep = self
            .endpoint
            .get()
            .and_then(Weak::upgrade)
            .ok_or("the service is not serving HTTP in this process")?;
        let uri: poem::http::Uri = uri
            .parse()
            .map_err(|e| format!("`{uri}` is not a path and query: {e}"))?;
        let method = if posted.is_some() {
            poem::http::Method::POST
        } else {
            poem::http::Method::GET
        };
        let mut req = Request::builder().method(method).uri(uri);
        // Only the headers that shape an answer; never a credential (the identity is `owner`).
        for (k, v) in headers {
            if ANSWER_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        // The links' origin, as the submission's was checked (`intercept`) or as a directly
        // submitted job named it (a scheme and a host, checked by the operation): given as
        // forwarded headers the inner request believes, and checked again as links are made.
        if let Some((proto, host)) = origin.and_then(|o| o.split_once("://")) {
            let host = host.trim_end_matches('/');
            req = req
                .header("host", host)
                .header("x-forwarded-proto", proto)
                .header("x-forwarded-host", host);
        }
        let (mut req, scope) = match posted {
            Some(p) => (
                req.header(header::CONTENT_TYPE, p.content_type)
                    .body(poem::Body::from_bytes_stream(p.body)),
                crate::domain::access::Scope::Submit,
            ),
            None => (req.finish(), crate::domain::access::Scope::Read),
        };
        crate::api::access::run_as(&mut req, owner, scope);
        if origin.is_some() {
            req.extensions_mut()
                .insert(crate::api::wire::TrustedForwarding);
        }
        let resp = match ep.call(req).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let body = resp
            .into_body()
            .into_bytes_stream()
            .map(|r| r.map_err(|e| e.to_string()))
            .boxed();
        Ok(Answer {
            status,
            content_type,
            body,
        })
    }
}

fn is_bgrs(v: &str) -> bool {
    matches!(v, "yes" | "1" | "true")
}

/// The encoding of the `{"request": id}` answer: Accept only (`format=` belongs to the request
/// being run, e.g. `format=csv`).
fn answer_enc(req: &Request) -> Enc {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("xml") && !accept.contains("json") {
        Enc::Xml
    } else {
        Enc::Json
    }
}

/// Whether a request asks to run in the background: a GET under /api/ (or a seed dialect's
/// route, `BACKGROUND_PATHS`) with `bgrs=yes` or `Prefer: respond-async`, or a POST there with
/// `bgrs=yes` (`Prefer: respond-async` on a POST keeps its own meaning: a comparison answered
/// with its job).
pub fn wants_background(req: &Request) -> bool {
    if !crate::operations::request::may_run_in_background(req.uri().path()) {
        return false;
    }
    let query = req.uri().query().unwrap_or("");
    let bgrs =
        || url::form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == "bgrs" && is_bgrs(&v));
    match *req.method() {
        poem::http::Method::GET => bgrs() || Prefer::of(req).respond_async,
        poem::http::Method::POST => bgrs(),
        _ => false,
    }
}

/// If `req` asks to run in the background, store it as a `request` job and answer at once. That
/// is a submission (`submit` scope, counted against the key's rate), decided here on the same
/// decoded query that chose to run it in the background; the job runs its GET for the
/// submitter's tenant with the `read` scope.
pub async fn intercept(state: &AppState, req: &mut Request) -> Option<Response> {
    if crate::api::access::is_in_process(req) || !wants_background(req) {
        return None;
    }
    let enc = answer_enc(req);
    let key = match Key::<Submission>::admit(req) {
        Ok(k) => k,
        Err(mut p) => {
            p.enc = Some(enc);
            return Some(p.into_response());
        }
    };
    let query = req.uri().query().unwrap_or("");
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let rest: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| k != "bgrs").collect();
    let mut uri = req.uri().path().to_string();
    if !rest.is_empty() {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in rest {
            q.append_pair(k, v);
        }
        uri = format!("{uri}?{}", q.finish());
    }
    let name = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| uri.clone());
    // The origin its links will use is this request's, as checked now (`base_url`), never the
    // client's own forwarded headers.
    // (With LONGRUN_PUBLIC_URL every link uses that anyway.)
    let origin = state.public_url.is_none().then(|| base_url(req, None));
    let headers: Vec<Value> = ANSWER_HEADERS
        .iter()
        .filter_map(|h| {
            let v = req.headers().get(*h)?.to_str().ok()?;
            Some(json!([h, v]))
        })
        .collect();
    let id = Uuid::now_v7();
    let mut input = json!({"uri": uri, "name": name, "headers": headers});
    if let Some(o) = origin {
        input["origin"] = o.into();
    }
    // A POST's body is kept in the object store (within its route's limit) for the job to send.
    let input_blob = if req.method() == poem::http::Method::POST {
        match keep_body(state, req, id).await {
            Ok((key, content_type)) => {
                input["method"] = "POST".into();
                input["contentType"] = content_type.into();
                Some(key)
            }
            Err(mut p) => {
                p.enc = Some(enc);
                return Some(p.for_req(req).into_response());
            }
        }
    } else {
        None
    };
    let kept = input_blob.clone();
    let submitted = state
        .engine
        .submit(NewJob {
            id,
            operation: "request".into(),
            input,
            input_blob,
            correlation_id: crate::api::wire::correlation_id(req, None),
            options: Default::default(),
            owner: key.owner(),
        })
        .await;
    let job = match submitted {
        Ok(j) => j,
        Err(e) => {
            if let Some(key) = kept {
                let _ = state.engine.blobs().delete(&key).await;
            }
            let mut p = Problem::from(e).for_req(req);
            p.enc = Some(enc);
            return Some(p.into_response());
        }
    };
    let base = base_url(req, state.public_url.as_deref());
    let rid = job.id.simple().to_string();
    let doc = BgrsAccepted {
        request: rid.clone(),
        links: vec![
            get_link("self", format!("{base}/bgrs/{rid}"), Some(enc.media())),
            get_link("result", format!("{base}/bgrs/{rid}/result"), None),
            get_link("monitor", job_href(&base, job.id), Some(enc.media())),
        ],
    };
    Some(
        Rep::<BgrsAccepted, 201>::new(doc, enc, "background")
            .header(header::LOCATION, format!("{base}/bgrs/{rid}"))
            .into_response(),
    )
}

/// Store the body of a background POST as `inputs/{id}.body`, refusing it (413) past its
/// route's limit; its key and content type.
async fn keep_body(
    state: &AppState,
    req: &mut Request,
    id: Uuid,
) -> Result<(String, String), Problem> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let limit = state.limits.body_limit(req.uri().path());
    let key = format!("inputs/{id}.body");
    let mut writer = state.engine.blobs().writer(&key);
    let mut body = req.take_body().into_bytes_stream();
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                writer.abort().await;
                return Err(Problem::bad_request(format!(
                    "the body could not be read: {e}"
                )));
            }
        };
        size += chunk.len() as u64;
        if size > limit {
            writer.abort().await;
            return Err(crate::api::bodies::too_large(limit, req.uri().path()));
        }
        if let Err(e) = writer.write(&chunk).await {
            writer.abort().await;
            return Err(Problem::from(EngineError::from(e)));
        }
    }
    writer
        .finish()
        .await
        .map_err(|e| Problem::from(EngineError::from(e)))?;
    Ok((key, content_type))
}

/// The immediate answer to a background request.
#[derive(Debug, Clone, Object)]
pub struct BgrsAccepted {
    /// The background request id.
    pub request: String,
    /// `self` (its status), `result` and `monitor` (the job).
    pub links: Vec<LinkDoc>,
}

/// Seed 001's view of a background request.
#[derive(Debug, Clone, Object)]
pub struct BgrsDoc {
    /// The task number.
    pub id: String,
    /// The request id.
    pub rid: String,
    /// Who asked (a digest of the credential), when known.
    pub user_id: Option<String>,
    /// The original path and query.
    pub name: String,
    pub created_dt: String,
    /// 1 queued, 2 started, 3 processing, 4 finished, 5 failed, 6 cancelled.
    pub status_id: String,
    pub status_name: String,
    /// Percent done, two decimals.
    pub progress: String,
    pub finished_dt: Option<String>,
    /// The HTTP status of the stored answer.
    pub status: Option<String>,
    /// Its content type.
    pub content_type: Option<String>,
    /// Where to read it.
    pub result: Option<String>,
    /// `self`, `details`, `result`, and the job.
    pub links: Vec<LinkDoc>,
}

/// One line of `/bgrs/{id}/details`.
#[derive(Debug, Clone, Object)]
pub struct BgrsDetail {
    pub id: String,
    pub rid: String,
    pub dt: String,
    pub details: String,
}

/// Signed links to a job's results.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ShareDoc {
    /// The signed link to a background request's result (`/bgrs/{id}/result`); only for
    /// background requests.
    pub href: Option<String>,
    /// Signed download links of the job's files.
    pub files: Vec<SharedFileDoc>,
    /// When the links stop working.
    pub expires: DateTime<Utc>,
}

/// A signed download link of one output file.
#[derive(Debug, Clone, Object)]
pub struct SharedFileDoc {
    /// File id.
    pub id: Uuid,
    /// File name.
    pub name: String,
    /// The signed `/downloads/{id}` link.
    pub href: String,
}

fn dt(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn status_of(s: JobStatus) -> (&'static str, &'static str) {
    match s {
        JobStatus::Queued => ("1", "queued"),
        JobStatus::Started => ("2", "started"),
        JobStatus::Processing | JobStatus::Saving => ("3", "processing"),
        JobStatus::Success => ("4", "finished"),
        JobStatus::Failed => ("5", "failed"),
        JobStatus::Cancelled | JobStatus::Deleted => ("6", "cancelled"),
    }
}

/// The stored answer of a background request.
#[derive(ApiResponse)]
pub enum ResultAnswer {
    /// The answer byte for byte, with its original content type (and status).
    #[oai(status = 200)]
    Ok(Binary<Vec<u8>>, #[oai(header = "Content-Type")] String),
}

/// Background requests.
pub struct BgrsApi {
    pub state: Arc<AppState>,
}

impl BgrsApi {
    /// The request job, if the caller may see it: its owner, or a valid share link.
    async fn visible(
        &self,
        reader: &KeyOrLink,
        rid: &str,
        expires: Option<i64>,
        sig: Option<&str>,
    ) -> Result<Job, Problem> {
        let missing = || Problem::not_found(format!("no background request `{rid}`"));
        let id: Uuid = rid.parse().map_err(|_| missing())?;
        // Tombstones too: whether it was deleted is told only to whoever may see it.
        let job = match self.state.engine.find(id).await? {
            Some(j) if j.operation == "request" => j,
            _ => return Err(missing()),
        };
        let gone = |job: Job| {
            if job.status == JobStatus::Deleted {
                Err(EngineError::Gone(job.id).into())
            } else {
                Ok(job)
            }
        };
        // A share link works for anyone, with or without a key.
        if let (Some(exp), Some(sig)) = (expires, sig) {
            let tenant = job
                .owner
                .as_deref()
                .unwrap_or(crate::domain::access::OPEN_TENANT);
            if share_valid(&self.state.share_key, job.id, tenant, exp, sig) {
                if Utc::now().timestamp() > exp {
                    return Err(Problem::new(410, "gone", "this share link has expired"));
                }
                return gone(job);
            }
            return Err(missing());
        }
        match reader.caller() {
            Some(caller) if caller.owns(&job.owner) => gone(job),
            _ => Err(missing()),
        }
    }

    fn doc(&self, base: &str, job: &Job) -> BgrsDoc {
        let rid = job.id.simple().to_string();
        let (sid, sname) = status_of(job.status);
        let s = job.summary.as_ref();
        let done = job.status == JobStatus::Success;
        let progress = if job.status.is_end() {
            100.0
        } else {
            f64::from(job.current_stage.max(0)) * 100.0 / f64::from(job.total_stages.max(1))
        };
        BgrsDoc {
            id: job.task_id.to_string(),
            rid: rid.clone(),
            user_id: job.owner.clone(),
            name: job.input["name"].as_str().unwrap_or_default().to_string(),
            created_dt: dt(job.created),
            status_id: sid.into(),
            status_name: sname.into(),
            progress: format!("{progress:.2}"),
            finished_dt: job.finished.map(dt),
            status: s.and_then(|s| s.get("status")).map(|v| v.to_string()),
            content_type: s
                .and_then(|s| s.get("contentType"))
                .and_then(Value::as_str)
                .map(str::to_string),
            result: done.then(|| format!("{base}/bgrs/{rid}/result")),
            links: vec![
                get_link("self", format!("{base}/bgrs/{rid}"), None),
                get_link("details", format!("{base}/bgrs/{rid}/details"), None),
                get_link("monitor", job_href(base, job.id), None),
            ]
            .into_iter()
            .chain(done.then(|| get_link("result", format!("{base}/bgrs/{rid}/result"), None)))
            .collect(),
        }
    }
}

#[OpenApi(tag = "ApiTags::Dialects")]
impl BgrsApi {
    /// A background request (seed 001)
    ///
    /// `[{id, rid, name, created_dt, status_id, status_name, progress, finished_dt, status,
    /// content_type, result}]` as in the seed, plus links. Visible to its owner, or with a share
    /// link's `expires` and `sig`.
    #[oai(
        path = "/bgrs/:rid",
        method = "get",
        operation_id = "getBackgroundRequest"
    )]
    async fn get(
        &self,
        reader: KeyOrLink,
        req: &Request,
        rid: Path<String>,
        expires: Query<Option<i64>>,
        sig: Query<Option<String>>,
    ) -> Result<Rep<Vec<BgrsDoc>>, Problem> {
        let run = async {
            let enc = negotiate(req)?;
            let job = self
                .visible(&reader, &rid, expires.0, sig.0.as_deref())
                .await?;
            let base = base_url(req, self.state.public_url.as_deref());
            Ok(Rep::new(vec![self.doc(&base, &job)], enc, "bgrs"))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// The log of a background request (seed 001)
    ///
    /// `[{id, rid, dt, details}]`: the request's messages, oldest first, visible to its owner
    /// or to the holder of a share link.
    #[oai(
        path = "/bgrs/:rid/details",
        method = "get",
        operation_id = "getBackgroundRequestDetails"
    )]
    async fn details(
        &self,
        reader: KeyOrLink,
        req: &Request,
        rid: Path<String>,
        expires: Query<Option<i64>>,
        sig: Query<Option<String>>,
    ) -> Result<Rep<Vec<BgrsDetail>>, Problem> {
        let run = async {
            let enc = negotiate(req)?;
            let job = self
                .visible(&reader, &rid, expires.0, sig.0.as_deref())
                .await?;
            let rid = job.id.simple().to_string();
            let msgs = self.state.engine.messages(job.id).await?;
            Ok(Rep::new(
                msgs.into_iter()
                    .map(|m| BgrsDetail {
                        id: m.seq.to_string(),
                        rid: rid.clone(),
                        dt: dt(m.at),
                        details: m.text,
                    })
                    .collect(),
                enc,
                "details",
            ))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// The stored answer of a background request (seed 001)
    ///
    /// Byte for byte, with its original content type and status (CSV stays CSV).
    #[oai(
        path = "/bgrs/:rid/result",
        method = "get",
        operation_id = "getBackgroundRequestResult"
    )]
    async fn result(
        &self,
        reader: KeyOrLink,
        req: &Request,
        rid: Path<String>,
        expires: Query<Option<i64>>,
        sig: Query<Option<String>>,
    ) -> Result<poem_openapi::payload::Response<ResultAnswer>, Problem> {
        let run = async {
            let job = self
                .visible(&reader, &rid, expires.0, sig.0.as_deref())
                .await?;
            if job.status != JobStatus::Success {
                return Err(Problem::new(
                    409,
                    "no-result-yet",
                    format!("the background request is {}", status_of(job.status).1),
                ));
            }
            let (file, body) = self.state.engine.read_first_output(job.id).await?;
            let status = job
                .summary
                .as_ref()
                .and_then(|s| s.get("status"))
                .and_then(Value::as_u64)
                .and_then(|s| StatusCode::from_u16(s as u16).ok())
                .unwrap_or(StatusCode::OK);
            Ok(poem_openapi::payload::Response::new(ResultAnswer::Ok(
                Binary(body.to_vec()),
                file.content_type.clone(),
            ))
            .status(status))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// Share a job's results by signed links
    ///
    /// Signed links that work for anyone, without a key, until they expire (`ttl` seconds,
    /// default 3600, at most 7 days), then answer 410: a download link per output file and, for
    /// a background request, a link to `/bgrs/{id}/result` (and its status and details). Each
    /// link is an HMAC over the object's id, the tenant and the expiry. Only the owner may make
    /// them.
    #[oai(
        path = "/api/v1/jobs/:id/share",
        method = "post",
        operation_id = "shareJob"
    )]
    async fn share(
        &self,
        key: Key<Submit>,
        req: &Request,
        id: Path<String>,
        /// Seconds the links work (1–604800).
        #[oai(validator(minimum(value = "1"), maximum(value = "604800")))]
        ttl: Query<Option<i64>>,
    ) -> Result<Json<ShareDoc>, Problem> {
        let run = async {
            let ttl = ttl.0.unwrap_or(3600);
            if !(1..=604_800).contains(&ttl) {
                return Err(Problem::bad_request("`ttl` must be 1 to 604800 seconds"));
            }
            let uid: Uuid = id
                .parse()
                .map_err(|_| Problem::not_found(format!("no job with id `{}`", id.0)))?;
            let job = job_for(&self.state, &key, uid).await?;
            let (_, files) = self.state.engine.get_with_files(job.id).await?;
            if job.operation != "request" && files.iter().all(|f| f.consumed) {
                return Err(Problem::new(
                    409,
                    "nothing-to-share",
                    format!(
                        "job {} is {} and has no files to share yet",
                        job.id, job.status
                    ),
                ));
            }
            let tenant = job
                .owner
                .as_deref()
                .unwrap_or(crate::domain::access::OPEN_TENANT);
            let expires = Utc::now().timestamp() + ttl;
            let key = &self.state.share_key;
            let base = base_url(req, self.state.public_url.as_deref());
            Ok(Json(ShareDoc {
                href: (job.operation == "request").then(|| {
                    format!(
                        "{base}/bgrs/{}/result?expires={expires}&sig={}",
                        job.id.simple(),
                        share_sig(key, job.id, tenant, expires)
                    )
                }),
                files: files
                    .iter()
                    .filter(|f| !f.consumed)
                    .map(|f| SharedFileDoc {
                        id: f.id,
                        name: f.name.clone(),
                        href: format!(
                            "{}?expires={expires}&sig={}",
                            crate::domain::file_href(&base, f.id),
                            share_sig(key, f.id, tenant, expires)
                        ),
                    })
                    .collect(),
                expires: DateTime::from_timestamp(expires, 0).unwrap_or_default(),
            }))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }
}
