//! Seed 002's dialect at `/api/xml-data-compare/v1/`: the comparison submitted in the vendor's
//! forms (`inputA`/`input-a`, `type` = `http` | `string` | `file`, an output location), its job
//! in the seed's shapes (`jobId`, `jobStatus`, `phaseDescription`, `link` / `<links>`), DELETE,
//! and the download by job id. A view over the canonical comparison: the same parsing
//! (`ComparisonsApi`), the same `compare` jobs, the same download handler; the result is
//! written as a DeltaXML well-formed delta (`src/compare/DELTAXML.md`).

use std::sync::Arc;

use futures::TryStreamExt;
use poem::http::header;
use poem::Request;
use poem_openapi::param::{Header, Path};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiRequest, ApiResponse, Object, OpenApi};
use serde_json::Value;
use uuid::Uuid;

use crate::api::access::{job_for, Admin, Caller, Key, Read, Submission};
use crate::api::comparisons::{CompareAnswer, CompareRequest, ComparisonsApi, Parts, View};
use crate::api::downloads::{serve_file, Download};
use crate::api::wire::{
    base_url, negotiate, Enc, Problem, Streamed, XmlShape, JSON, MULTIPART, XML,
};
use crate::api::{ApiTags, AppState};
use crate::domain::signals::{XML_DATA_COMPARE, XML_DATA_COMPARE_ROOT};
use crate::domain::{Job, JobStatus, OutputFile};
use crate::operations::compare::{object_key, STAGES};

/// The output of a successful job.
#[derive(Debug, Clone, Object)]
pub struct XdcOutput {
    /// Always `http`: the result is read from `uri`.
    #[oai(rename = "type")]
    pub kind: String,
    /// Its size in bytes.
    pub size: i64,
    /// Where to GET it.
    pub uri: String,
}

/// A HATEOAS link of the dialect: `delete`/`cancel` (HTTP DELETE), `result` (GET), `self`.
#[derive(Debug, Clone, Object)]
pub struct XdcLink {
    pub rel: String,
    pub href: String,
}

/// The job in seed 002's shape.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct XdcJob {
    pub job_id: Uuid,
    /// When the comparison started (`2019-02-07T13:50:58.528+0000`).
    pub start_time: Option<String>,
    /// When it ended.
    pub finished_time: Option<String>,
    /// QUEUED, STARTED, PROCESSING, SAVING, FAILED, SUCCESS, CANCELLED or DELETED.
    pub job_status: String,
    /// `Inputs Loading -'inputA'`, `Inputs Loading -'inputB'`, `Comparison in progress` or
    /// `Output processing in progress`.
    pub phase_description: Option<String>,
    pub total_number_of_stages: i32,
    pub current_stage: i32,
    /// On SUCCESS: where the result is.
    pub output: Option<XdcOutput>,
    /// The links (`<links><link>…</link></links>` in XML).
    pub link: Vec<XdcLink>,
}

/// The seed's time form: milliseconds and a `+0000` offset.
fn seed_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

/// The compare operation's stage names as the seed spells them.
pub fn phase_description(phase: Option<&str>) -> Option<String> {
    let p = phase?;
    const SEED: [&str; 4] = [
        "Inputs Loading -'inputA'",
        "Inputs Loading -'inputB'",
        "Comparison in progress",
        "Output processing in progress",
    ];
    STAGES
        .iter()
        .position(|s| *s == p)
        .map(|i| SEED[i].to_string())
}

fn job_path(id: Uuid) -> String {
    format!("{XML_DATA_COMPARE_ROOT}/jobs/{id}")
}

fn doc(base: &str, job: &Job, files: &[OutputFile]) -> XdcJob {
    let mut link = Vec::new();
    if job.status != JobStatus::Deleted {
        link.push(XdcLink {
            rel: "self".into(),
            href: job_path(job.id),
        });
    }
    if job.status == JobStatus::Queued || job.status.is_running() {
        for rel in ["delete", "cancel"] {
            link.push(XdcLink {
                rel: rel.into(),
                href: job_path(job.id),
            });
        }
    }
    let output = (job.status == JobStatus::Success)
        .then(|| files.first())
        .flatten()
        .map(|f| XdcOutput {
            kind: "http".into(),
            size: f.size,
            uri: format!("{base}{XML_DATA_COMPARE_ROOT}/downloads/{}", job.id),
        });
    if let Some(o) = &output {
        link.push(XdcLink {
            rel: "result".into(),
            href: o.uri.clone(),
        });
    }
    XdcJob {
        job_id: job.id,
        start_time: job.started.map(seed_time),
        finished_time: job
            .status
            .is_end()
            .then_some(job.finished)
            .flatten()
            .map(seed_time),
        job_status: job.status.as_str().into(),
        phase_description: phase_description(job.phase.as_deref()),
        total_number_of_stages: job.total_stages,
        current_stage: job.current_stage,
        output,
        link,
    }
}

/// The XML form, as the seed shows it: `<output type="http">`, `<links><link><rel/><href/>`.
fn job_xml(j: &XdcJob) -> String {
    use crate::formats::xml::escape_into;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><job>");
    let el = |out: &mut String, name: &str, text: &str| {
        out.push('<');
        out.push_str(name);
        out.push('>');
        escape_into(out, text, false);
        out.push_str("</");
        out.push_str(name);
        out.push('>');
    };
    el(&mut out, "jobId", &j.job_id.to_string());
    if let Some(t) = &j.start_time {
        el(&mut out, "startTime", t);
    }
    if let Some(t) = &j.finished_time {
        el(&mut out, "finishedTime", t);
    }
    el(&mut out, "jobStatus", &j.job_status);
    if let Some(p) = &j.phase_description {
        el(&mut out, "phaseDescription", p);
    }
    if let Some(o) = &j.output {
        out.push_str("<output type=\"");
        escape_into(&mut out, &o.kind, true);
        out.push_str("\">");
        el(&mut out, "size", &o.size.to_string());
        el(&mut out, "uri", &o.uri);
        out.push_str("</output>");
    }
    el(
        &mut out,
        "totalNumberOfStages",
        &j.total_number_of_stages.to_string(),
    );
    el(&mut out, "currentStage", &j.current_stage.to_string());
    if j.link.is_empty() {
        out.push_str("<links/>");
    } else {
        out.push_str("<links>");
        for l in &j.link {
            out.push_str("<link>");
            el(&mut out, "rel", &l.rel);
            el(&mut out, "href", &l.href);
            out.push_str("</link>");
        }
        out.push_str("</links>");
    }
    out.push_str("</job>");
    out
}

/// The job in JSON or XML, with status `S` (and a Location when created).
pub struct XdcJobAnswer<const S: u16> {
    job: Box<XdcJob>,
    enc: Enc,
    location: Option<String>,
}

impl<const S: u16> poem::IntoResponse for XdcJobAnswer<S> {
    fn into_response(self) -> poem::Response {
        let body = match self.enc {
            Enc::Xml => job_xml(&self.job),
            Enc::Json => self.job.to_json_string(),
        };
        let mut r = poem::Response::builder()
            .status(poem::http::StatusCode::from_u16(S).unwrap_or_default())
            .content_type(self.enc.media())
            .header(header::VARY, "Accept");
        if let Some(l) = self.location {
            r = r.header(header::LOCATION, l);
        }
        r.body(body)
    }
}

fn job_meta(status: u16, description: &'static str) -> MetaResponse {
    MetaResponse {
        description,
        status: Some(status),
        status_range: None,
        content: ["application/json", "application/xml"]
            .into_iter()
            .map(|content_type| MetaMediaType {
                content_type,
                schema: XdcJob::schema_ref(),
            })
            .collect(),
        headers: vec![],
    }
}

impl<const S: u16> ApiResponse for XdcJobAnswer<S> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![job_meta(
                S,
                "The job in seed 002's shape (JSON: `link` array; XML: `<links>`).",
            )],
        }
    }
    fn register(registry: &mut Registry) {
        XdcJob::register(registry);
    }
}

/// The answer to a comparison: the result itself, or (asynchronous) the job.
pub enum XdcCompareAnswer {
    Result(CompareAnswer),
    Job(XdcJobAnswer<201>),
}

impl poem::IntoResponse for XdcCompareAnswer {
    fn into_response(self) -> poem::Response {
        match self {
            XdcCompareAnswer::Result(r) => r.into_response(),
            XdcCompareAnswer::Job(j) => j.into_response(),
        }
    }
}

impl ApiResponse for XdcCompareAnswer {
    fn meta() -> MetaResponses {
        let canonical = <CompareAnswer as ApiResponse>::meta();
        let mut responses: Vec<MetaResponse> = canonical
            .responses
            .into_iter()
            .filter(|r| r.status == Some(200))
            .collect();
        responses.push(job_meta(
            201,
            "Asynchronous (or not ended within the sync limit): the job, with a Location.",
        ));
        MetaResponses { responses }
    }
    fn register(registry: &mut Registry) {
        XdcJob::register(registry);
    }
}

/// A comparison request of the dialect: the canonical fields, the inputs also as `input-a` /
/// `input-b` and in the vendor's forms, and `outputLocation`.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct XdcInput {
    /// `http` (with `uri`), `string` (with `content`) or `file` (with `path`, an object key).
    #[oai(rename = "type")]
    pub kind: Option<String>,
    pub uri: Option<String>,
    pub content: Option<String>,
    /// An object-store key (relative, under the caller's shared area).
    pub path: Option<String>,
}

/// The request body (JSON or XML).
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct XdcRequest {
    #[oai(rename = "inputA")]
    pub input_a: Option<XdcInput>,
    #[oai(rename = "inputB")]
    pub input_b: Option<XdcInput>,
    #[oai(rename = "input-a")]
    pub input_a_dash: Option<XdcInput>,
    #[oai(rename = "input-b")]
    pub input_b_dash: Option<XdcInput>,
    /// An object-store key the result is also written to.
    pub output_location: Option<String>,
    /// As on `POST /api/v1/comparisons`.
    pub format: Option<String>,
    /// As on `POST /api/v1/comparisons`.
    pub options: Option<Value>,
    /// Present (even empty, `<async/>`): answer 201 with the job; `callback`, `keepResult`.
    #[oai(rename = "async")]
    pub async_options: Option<Value>,
    pub correlation_id: Option<String>,
}

impl XmlShape for XdcRequest {
    fn shape() -> crate::formats::xml::Shape {
        use crate::formats::xml::Shape;
        let Shape::Object(mut fields) = CompareRequest::shape() else {
            unreachable!("the request is an object")
        };
        let input = || {
            Shape::Object(vec![
                ("type".into(), Shape::String),
                ("content".into(), Shape::String),
                ("uri".into(), Shape::String),
                ("path".into(), Shape::String),
            ])
        };
        for (name, shape) in fields.iter_mut() {
            if name == "inputA" || name == "inputB" {
                *shape = input();
            }
        }
        fields.push(("input-a".into(), input()));
        fields.push(("input-b".into(), input()));
        fields.push(("outputLocation".into(), Shape::String));
        Shape::Object(fields)
    }
}

/// The dialect's comparison body.
#[derive(ApiRequest)]
pub enum XdcBody {
    Json(Streamed<XdcRequest, JSON>),
    Xml(Streamed<XdcRequest, XML>),
    Form(Streamed<crate::api::comparisons::CompareForm, MULTIPART>),
}

/// Seed 002's dialect.
pub struct XmlDataCompareApi {
    pub state: Arc<AppState>,
}

impl XmlDataCompareApi {
    fn canonical(&self) -> ComparisonsApi {
        ComparisonsApi {
            state: self.state.clone(),
        }
    }

    /// Read object `key` of the caller's shared area (a `file` input), within the input limit.
    async fn read_object(&self, caller: &Caller, name: &str, key: &str) -> Result<String, Problem> {
        let tenant = caller.owner().unwrap_or_default();
        let full =
            object_key(&tenant, key).map_err(|e| Problem::bad_request(format!("{name}: {e}")))?;
        let max = self.state.max_input_size;
        let read = self
            .state
            .engine
            .blobs()
            .get(&full, None)
            .await
            .map_err(|e| match e {
                crate::blobs::BlobError::NotFound => {
                    Problem::bad_request(format!("{name}: `{key}` is not an existing object key"))
                }
                other => crate::engine::EngineError::from(other).into(),
            })?;
        if read.size > max {
            return Err(Problem::new(
                413,
                "payload-too-large",
                format!("{name} is larger than the limit of {max} bytes (LONGRUN_MAX_INPUT_SIZE)"),
            ));
        }
        let bytes: Vec<bytes::Bytes> = read
            .stream
            .try_collect()
            .await
            .map_err(|e| Problem::from(crate::engine::EngineError::from(e)))?;
        String::from_utf8(bytes.concat())
            .map_err(|_| Problem::bad_request(format!("{name}: `{key}` is not UTF-8 text")))
    }

    /// The vendor's body turned into the canonical request: `input-a` → `inputA`, each input's
    /// `type` form into `content` / `uri`; returns the output location apart.
    async fn canonical_value(
        &self,
        caller: &Caller,
        mut v: Value,
    ) -> Result<(Value, Option<String>), Problem> {
        let Some(obj) = v.as_object_mut() else {
            return Err(Problem::bad_request("the body must be an object"));
        };
        for (dash, name) in [("input-a", "inputA"), ("input-b", "inputB")] {
            if let Some(i) = obj.remove(dash) {
                if obj.contains_key(name) {
                    return Err(Problem::bad_request(format!(
                        "give `{name}` or `{dash}`, not both"
                    )));
                }
                obj.insert(name.into(), i);
            }
            let Some(Value::Object(input)) = obj.get_mut(name) else {
                continue;
            };
            let kind = input.remove("type");
            let kind = kind.as_ref().and_then(Value::as_str).map(str::to_string);
            let has = |k: &str| input.get(k).is_some_and(|v| !v.is_null());
            match kind.as_deref() {
                None => {}
                Some("http") if has("uri") && !has("content") && !has("path") => {}
                Some("string") if has("content") && !has("uri") && !has("path") => {}
                Some("file") if has("path") && !has("uri") && !has("content") => {
                    let path = input.remove("path").unwrap_or_default();
                    let key = path.as_str().unwrap_or_default().to_string();
                    let text = self.read_object(caller, name, &key).await?;
                    input.insert("content".into(), Value::String(text));
                }
                Some(t @ ("http" | "string" | "file")) => {
                    let field = match t {
                        "http" => "uri",
                        "string" => "content",
                        _ => "path",
                    };
                    return Err(Problem::bad_request(format!(
                        "`{name}` of type `{t}` takes `{field}` only"
                    )));
                }
                Some(other) => {
                    return Err(Problem::bad_request(format!(
                        "`{name}`: type must be http, string or file, not `{other}`"
                    )))
                }
            }
            if input.contains_key("path") {
                return Err(Problem::bad_request(format!(
                    "`{name}`: `path` needs type `file`"
                )));
            }
        }
        let output = match obj.remove("outputLocation") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(Problem::bad_request("`outputLocation` must be a string")),
        };
        Ok((v, output))
    }

    /// The view's part of the job: the DeltaXML result, the output location, the dialect.
    fn view(&self, caller: &Caller, output: Option<String>) -> Result<View, Problem> {
        let tenant = caller.owner().unwrap_or_default();
        let output_key = match output.filter(|s| !s.is_empty()) {
            None => None,
            Some(o) => {
                // Checked now (a 400); the job keeps the key relative to its owner's area.
                object_key(&tenant, &o)
                    .map_err(|e| Problem::bad_request(format!("outputLocation: {e}")))?;
                Some(o)
            }
        };
        Ok(View {
            deltaxml: true,
            output_key,
            dialect: Some(XML_DATA_COMPARE.into()),
        })
    }

    /// 201: the created job, with a Location where it is polled.
    fn created(&self, req: &Request, enc: Enc, job: &Job) -> XdcJobAnswer<201> {
        let base = base_url(req, self.state.public_url.as_deref());
        XdcJobAnswer {
            job: Box::new(doc(&base, job, &[])),
            enc,
            location: Some(format!("{base}{}", job_path(job.id))),
        }
    }

    /// A job of this dialect's tenant that is a comparison and not deleted; else 404.
    async fn job(&self, caller: &Caller, id: &str) -> Result<Job, Problem> {
        let missing = || Problem::not_found(format!("no job `{id}`"));
        let id: Uuid = id.parse().map_err(|_| missing())?;
        match job_for(&self.state, caller, id).await {
            Ok(j) if j.operation == "compare" && j.status != JobStatus::Deleted => Ok(j),
            Ok(_) => Err(missing()),
            Err(p) if p.status == 410 => Err(missing()),
            Err(p) => Err(p),
        }
    }
}

#[OpenApi(tag = "ApiTags::Dialects")]
impl XmlDataCompareApi {
    /// Compare two documents (seed 002's dialect)
    ///
    /// As `POST /api/v1/comparisons`, in the vendor's forms: inputs `inputA`/`inputB` or
    /// `input-a`/`input-b`, each `{"type": "http", "uri"}`, `{"type": "string", "content"}` or
    /// `{"type": "file", "path"}` (a key of the caller's shared area in the object store), and
    /// an optional `outputLocation` (such a key) the result is also written to. Without `async`
    /// the answer is the result, a DeltaXML well-formed delta; with `async` (`<async/>`, or the
    /// form field `async=true`) 201 with the job and a Location.
    #[oai(
        path = "/api/xml-data-compare/v1/compare",
        method = "post",
        operation_id = "xdcCompare"
    )]
    async fn compare(
        &self,
        key: Key<Submission>,
        req: &Request,
        body: XdcBody,
    ) -> Result<XdcCompareAnswer, Problem> {
        let run = async {
            let enc = negotiate(req)?;
            let api = self.canonical();
            let mut parts: Parts = match body {
                XdcBody::Json(b) => {
                    let v = api.json_value(b.body).await?;
                    let (v, out) = self.canonical_value(&key, v).await?;
                    let mut p = ComparisonsApi::parts_of(v, "JSON")?;
                    p.view = self.view(&key, out)?;
                    p
                }
                XdcBody::Xml(b) => {
                    let v = api.xml_value(b.body, XdcRequest::shape()).await?;
                    let (v, out) = self.canonical_value(&key, v).await?;
                    let mut p = ComparisonsApi::parts_of(v, "XML")?;
                    p.view = self.view(&key, out)?;
                    p
                }
                XdcBody::Form(b) => {
                    let mut extra = vec![("outputLocation".to_string(), String::new())];
                    let mut p = api.read_form(req, b.body, Some(&mut extra)).await?;
                    p.view = self.view(&key, extra.pop().map(|(_, v)| v))?;
                    p
                }
            };
            parts.view.dialect = Some(XML_DATA_COMPARE.into());
            let (job, respond_async) = api.accept(&key, req, parts).await?;
            if respond_async {
                return Ok(XdcCompareAnswer::Job(self.created(req, enc, &job)));
            }
            let id = job.id;
            match api.answer_sync(req, job).await? {
                CompareAnswer::Job(_) => {
                    // Not ended within the sync limit: the job, in this dialect's shape.
                    let job = self.state.engine.get(id).await?;
                    Ok(XdcCompareAnswer::Job(self.created(req, enc, &job)))
                }
                r => Ok(XdcCompareAnswer::Result(r)),
            }
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// Read a job (seed 002's dialect)
    #[oai(
        path = "/api/xml-data-compare/v1/jobs/:job_id",
        method = "get",
        operation_id = "xdcGetJob"
    )]
    async fn get_job(
        &self,
        key: Key<Read>,
        req: &Request,
        /// The job id.
        job_id: Path<String>,
    ) -> Result<XdcJobAnswer<200>, Problem> {
        let run = async {
            let enc = negotiate(req)?;
            let job = self.job(&key, &job_id).await?;
            let (job, files) = self.state.engine.get_with_files(job.id).await?;
            let base = base_url(req, self.state.public_url.as_deref());
            Ok(XdcJobAnswer {
                job: Box::new(doc(&base, &job, &files)),
                enc,
                location: None,
            })
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// Delete a job (seed 002's dialect)
    ///
    /// Stops a queued or running job, removes it with its outputs and answers it with
    /// `jobStatus` DELETED; an ended job is removed likewise. Afterwards the job is 404 here.
    #[oai(
        path = "/api/xml-data-compare/v1/jobs/:job_id",
        method = "delete",
        operation_id = "xdcDeleteJob"
    )]
    async fn delete_job(
        &self,
        key: Key<Admin>,
        req: &Request,
        /// The job id.
        job_id: Path<String>,
    ) -> Result<XdcJobAnswer<200>, Problem> {
        let run = async {
            let enc = negotiate(req)?;
            let job = self.job(&key, &job_id).await?;
            let job = self.state.engine.delete(job.id).await?;
            let base = base_url(req, self.state.public_url.as_deref());
            Ok(XdcJobAnswer {
                job: Box::new(doc(&base, &job, &[])),
                enc,
                location: None,
            })
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// Download a result (seed 002's dialect)
    ///
    /// The job's result by the job id, the same bytes as `/downloads/{fileId}` (with `Range`,
    /// `ETag`, read-once results).
    #[oai(
        path = "/api/xml-data-compare/v1/downloads/:job_id",
        method = "get",
        operation_id = "xdcDownload"
    )]
    async fn download(
        &self,
        key: Key<Read>,
        req: &Request,
        /// The job id.
        job_id: Path<String>,
        /// A single byte range (`bytes=0-99`).
        #[oai(name = "Range")]
        range: Header<Option<String>>,
        /// An ETag from an earlier answer.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
    ) -> Result<Download, Problem> {
        let job = self
            .job(&key, &job_id)
            .await
            .map_err(|p: Problem| p.for_req(req))?;
        let (_, files) = self
            .state
            .engine
            .get_with_files(job.id)
            .await
            .map_err(|e| Problem::from(e).for_req(req))?;
        let Some(file) = files.first().filter(|_| job.status == JobStatus::Success) else {
            return Err(Problem::not_found(format!(
                "job {} has no result (it is {})",
                job.id,
                job.status.as_str()
            ))
            .for_req(req));
        };
        serve_file(
            &self.state,
            Some(&key),
            req,
            &file.id.to_string(),
            None,
            range.0.as_deref(),
            if_none_match.0.as_deref(),
            (None, None),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_and_times_in_the_seeds_words() {
        let seed: Vec<_> = STAGES
            .iter()
            .map(|s| phase_description(Some(s)).unwrap())
            .collect();
        assert_eq!(
            seed,
            [
                "Inputs Loading -'inputA'",
                "Inputs Loading -'inputB'",
                "Comparison in progress",
                "Output processing in progress"
            ]
        );
        assert_eq!(phase_description(Some("Completed")), None);
        let t = chrono::DateTime::parse_from_rfc3339("2019-02-07T13:50:58.528Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(seed_time(t), "2019-02-07T13:50:58.528+0000");
    }
}
