//! `POST /api/v1/comparisons` (seed 002): two XML or two JSON documents, given inline, by URI
//! or as multipart file parts; answered synchronously with the result when it is ready within the
//! sync limit, else (or when asked to be asynchronous) with the job.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use poem::http::header;
use poem::Request;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseFromJSON, ParseResult, ToJSON, Type};
use poem_openapi::{ApiRequest, ApiResponse, Enum, Object, OpenApi};
use serde_json::Value;
use uuid::Uuid;

use super::access::{Caller, Key, Submission};
use super::docs::{AsyncOptions, JobDoc};
use super::wire::{
    base_url, correlation_id, negotiate, Prefer, Problem, Rep, Streamed, XmlShape, JSON, MULTIPART,
    XML,
};
use super::{ApiTags, AppState};
use crate::compare::{DocFormat, Limits};
use crate::domain::signals::{
    as_priority, as_time, AsyncRequest, NotificationTarget, NotifyFormat,
};
use crate::domain::{file_href, job_href, JobStatus};
use crate::engine::NewJob;
use crate::operations::compare::{check_documents, CompareOptions, Source, Spec};

/// One input: the document itself, or where to fetch it.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct CompareInput {
    /// The document (XML or JSON text). In an XML request body, escape it or wrap it in CDATA.
    pub content: Option<String>,
    /// An http(s) URL the service fetches the document from when the job runs.
    pub uri: Option<String>,
}

/// Document format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum FormatDoc {
    Xml,
    Json,
}

/// How to compare.
#[derive(Debug, Clone, Default, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompareOptionsDoc {
    /// XML: attributes (e.g. `id`) that identify an element among its siblings.
    pub key_attributes: Option<Vec<String>>,
    /// JSON: fields (e.g. `id`) that identify an object among the elements of an array.
    pub key_fields: Option<Vec<String>>,
    /// XML: ignore text nodes that are whitespace only.
    pub ignore_whitespace: Option<bool>,
    /// XML: ignore comments.
    pub ignore_comments: Option<bool>,
}

/// A comparison request.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompareRequest {
    /// The first (old) document.
    #[oai(rename = "inputA")]
    pub input_a: CompareInput,
    /// The second (new) document.
    #[oai(rename = "inputB")]
    pub input_b: CompareInput,
    /// `xml` or `json`; detected from the inputs when absent.
    pub format: Option<FormatDoc>,
    /// How to compare.
    pub options: Option<CompareOptionsDoc>,
    /// Present (even empty, `<async/>`): answer 201 with the job at once.
    #[oai(rename = "async")]
    pub async_options: Option<AsyncOptions>,
    /// Correlation id (the `X-Correlation-Id` header wins).
    pub correlation_id: Option<String>,
}

impl XmlShape for CompareRequest {
    fn shape() -> crate::formats::xml::Shape {
        use crate::formats::xml::Shape;
        let input = || {
            Shape::Object(vec![
                ("content".into(), Shape::String),
                ("uri".into(), Shape::String),
            ])
        };
        Shape::Object(vec![
            ("inputA".into(), input()),
            ("inputB".into(), input()),
            ("format".into(), Shape::String),
            (
                "options".into(),
                Shape::Object(vec![
                    (
                        "keyAttributes".into(),
                        Shape::Array(Box::new(Shape::String)),
                    ),
                    ("keyFields".into(), Shape::Array(Box::new(Shape::String))),
                    ("ignoreWhitespace".into(), Shape::Boolean),
                    ("ignoreComments".into(), Shape::Boolean),
                ]),
            ),
            ("async".into(), AsyncOptions::shape()),
            ("correlationId".into(), Shape::String),
        ])
    }
}

/// The multipart form (seed 002): file parts `inputA` and `inputB`, and text fields.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct CompareForm {
    /// The first document (a file part, or a text field).
    #[oai(rename = "inputA")]
    pub input_a: FilePart,
    /// The second document.
    #[oai(rename = "inputB")]
    pub input_b: FilePart,
    /// `true`: answer 201 with the job at once.
    #[oai(rename = "async")]
    pub async_: Option<bool>,
    /// URL that receives a GET when the job ends.
    pub callback: Option<String>,
    /// Keep the result after its first complete download (default true).
    pub keep_result: Option<bool>,
    /// URL that receives a signed notification event when the job ends.
    pub notification: Option<String>,
    /// `json` (default) or `xml`: encoding of the notification event.
    pub notification_format: Option<FormatDoc>,
    /// `xml` or `json`.
    pub format: Option<FormatDoc>,
    /// Comma-separated key attributes (XML).
    pub key_attributes: Option<String>,
    /// Comma-separated key fields (JSON).
    pub key_fields: Option<String>,
    /// Ignore whitespace-only text (XML).
    pub ignore_whitespace: Option<bool>,
    /// Ignore comments (XML).
    pub ignore_comments: Option<bool>,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Higher runs first, from -10 to 10 (default 0).
    #[oai(validator(minimum(value = "-10"), maximum(value = "10")))]
    pub priority: Option<i32>,
    /// Not started before this RFC 3339 time (makes the request asynchronous).
    pub not_before: Option<chrono::DateTime<chrono::Utc>>,
    /// The longest the comparison may run: an ISO 8601 duration (`PT10M`) or seconds.
    pub timeout: Option<String>,
}

/// A file part of a form (documented as binary; the form is read by its own parser).
#[derive(Debug, Clone)]
pub struct FilePart;

impl Type for FilePart {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;
    fn name() -> std::borrow::Cow<'static, str> {
        "string_binary".into()
    }
    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "binary")))
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

impl ParseFromJSON for FilePart {
    fn parse_from_json(_: Option<Value>) -> ParseResult<Self> {
        Ok(FilePart)
    }
}

impl ToJSON for FilePart {
    fn to_json(&self) -> Option<Value> {
        None
    }
}

/// A comparison in JSON, XML or as a multipart form.
#[derive(ApiRequest)]
pub enum CompareBody {
    Json(Streamed<CompareRequest, JSON>),
    Xml(Streamed<CompareRequest, XML>),
    Form(Streamed<CompareForm, MULTIPART>),
}

/// One input as received.
pub(crate) enum Part {
    Content(Bytes),
    Uri(String),
}

/// A comparison request, whatever its encoding.
pub(crate) struct Parts {
    pub(crate) a: Part,
    pub(crate) b: Part,
    format: Option<DocFormat>,
    options: CompareOptions,
    /// Callback, notification and keepResult (they apply in both modes).
    signals: AsyncRequest,
    /// The client asked for the asynchronous answer (`async` element, `async=true`).
    pub(crate) respond_async: bool,
    correlation: Option<String>,
    /// What a dialect asks of the job besides (its delta form, output location, its name).
    pub(crate) view: View,
}

/// What a dialect's route adds to a comparison (nothing on the canonical route).
#[derive(Default)]
pub(crate) struct View {
    pub(crate) deltaxml: bool,
    pub(crate) output_key: Option<String>,
    pub(crate) dialect: Option<String>,
}

/// The answer: the result itself (synchronous), or the job.
pub enum CompareAnswer {
    /// 200: the delta document or JSON Patch.
    Result {
        body: Bytes,
        content_type: String,
        file_href: String,
        job_href: String,
    },
    /// 201: the job, with a Location to follow.
    Job(Box<Rep<JobDoc, 201>>),
}

impl poem::IntoResponse for CompareAnswer {
    fn into_response(self) -> poem::Response {
        match self {
            CompareAnswer::Job(r) => (*r).into_response(),
            CompareAnswer::Result {
                body,
                content_type,
                file_href,
                job_href,
            } => poem::Response::builder()
                .content_type(content_type)
                .header(header::CONTENT_LOCATION, file_href)
                .header(header::LINK, format!("<{job_href}>; rel=\"related\""))
                .body(body),
        }
    }
}

impl ApiResponse for CompareAnswer {
    fn meta() -> MetaResponses {
        let mut m = <Rep<JobDoc, 201> as ApiResponse>::meta();
        m.responses.insert(
            0,
            MetaResponse {
                description: "The comparison ended within the sync limit: its result, the \
                              delta document itself (XML, as bytes, for XML inputs) or an RFC 6902 JSON \
                              Patch (for JSON inputs). `Link rel=related` names the job.",
                status: Some(200),
                status_range: None,
                content: vec![
                    // The delta is a document of its own, not a value: it is declared as bytes,
                    // which is what a generated client hands back.
                    MetaMediaType {
                        content_type: crate::operations::compare::DELTA_TYPE,
                        schema: <poem_openapi::types::Binary<Vec<u8>> as Type>::schema_ref(),
                    },
                    MetaMediaType {
                        content_type: "application/json-patch+json",
                        schema: <Vec<Value> as Type>::schema_ref(),
                    },
                ],
                headers: vec![],
            },
        );
        m
    }
    fn register(registry: &mut Registry) {
        <Rep<JobDoc, 201> as ApiResponse>::register(registry);
    }
}

/// Comparisons.
pub struct ComparisonsApi {
    pub state: Arc<AppState>,
}

fn too_large(what: &str, max: u64) -> Problem {
    Problem::new(
        413,
        "payload-too-large",
        format!("{what} is larger than the limit of {max} bytes (LONGRUN_MAX_INPUT_SIZE)"),
    )
}

fn format_of_doc(f: Option<FormatDoc>) -> Option<DocFormat> {
    f.map(|f| match f {
        FormatDoc::Xml => DocFormat::Xml,
        FormatDoc::Json => DocFormat::Json,
    })
}

pub(crate) fn part_of(name: &str, i: CompareInput) -> Result<Part, Problem> {
    match (i.content, i.uri) {
        (Some(c), None) => Ok(Part::Content(Bytes::from(c))),
        (None, Some(u)) => Ok(Part::Uri(u)),
        (Some(_), Some(_)) => Err(Problem::bad_request(format!(
            "`{name}` has both `content` and `uri`; give one"
        ))),
        (None, None) => Err(Problem::bad_request(format!(
            "`{name}` needs `content` (the document) or `uri` (where to fetch it)"
        ))),
    }
}

/// Name a missing input plainly (the generic parser only says what type it expected).
fn require_inputs(v: &Value) -> Result<(), Problem> {
    for name in ["inputA", "inputB"] {
        if v.get(name).is_none_or(Value::is_null) {
            return Err(Problem::bad_request(format!(
                "`{name}` is required: {{\"content\": \"…\"}} or {{\"uri\": \"https://…\"}}"
            )));
        }
    }
    Ok(())
}

fn split_list(s: Option<String>) -> Vec<String> {
    s.map(|s| {
        s.split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

fn parse_bool(name: &str, v: &str) -> Result<bool, Problem> {
    match v.trim() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" | "" => Ok(false),
        other => Err(Problem::bad_request(format!(
            "form field `{name}` must be true or false, not `{other}`"
        ))),
    }
}

impl ComparisonsApi {
    fn limit(&self) -> u64 {
        self.state.max_input_size * 2 + 1024 * 1024
    }

    fn from_request(r: CompareRequest) -> Result<Parts, Problem> {
        let o = r.options.unwrap_or_default();
        Ok(Parts {
            a: part_of("inputA", r.input_a)?,
            b: part_of("inputB", r.input_b)?,
            format: format_of_doc(r.format),
            options: CompareOptions {
                key_attributes: o.key_attributes.unwrap_or_default(),
                key_fields: o.key_fields.unwrap_or_default(),
                ignore_whitespace: o.ignore_whitespace.unwrap_or(false),
                ignore_comments: o.ignore_comments.unwrap_or(false),
            },
            respond_async: r.async_options.is_some(),
            signals: r
                .async_options
                .map(|a| a.to_request())
                .transpose()?
                .unwrap_or_default(),
            correlation: r.correlation_id,
            view: View::default(),
        })
    }

    async fn read_json(&self, body: poem::Body) -> Result<Parts, Problem> {
        let v = self.json_value(body).await?;
        Self::parts_of(v, "JSON")
    }

    /// A JSON body as a value (within the route's size limit).
    pub(crate) async fn json_value(&self, body: poem::Body) -> Result<Value, Problem> {
        let bytes = body
            .into_bytes_limit(self.limit() as usize)
            .await
            .map_err(|_| too_large("the request body", self.limit()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Problem::bad_request(format!("the JSON body is not valid: {e}")))
    }

    /// A request (as a JSON value, whatever its encoding `what`) read into its parts.
    pub(crate) fn parts_of(v: Value, what: &str) -> Result<Parts, Problem> {
        require_inputs(&v)?;
        let r = CompareRequest::parse_from_json(Some(v)).map_err(|e| {
            Problem::bad_request(format!(
                "the {what} body is not valid: {}",
                e.into_message()
            ))
        })?;
        Self::from_request(r)
    }

    async fn read_xml(&self, body: poem::Body) -> Result<Parts, Problem> {
        let v = self.xml_value(body, CompareRequest::shape()).await?;
        Self::parts_of(v, "XML")
    }

    /// An XML body as the JSON value `shape` reads it into (parsed off the async threads).
    pub(crate) async fn xml_value(
        &self,
        body: poem::Body,
        shape: crate::formats::xml::Shape,
    ) -> Result<Value, Problem> {
        let limit = self.limit() as usize;
        let bytes = body
            .into_bytes_limit(limit)
            .await
            .map_err(|_| too_large("the request body", self.limit()))?;
        let limits = crate::formats::xml::XmlLimits {
            max_depth: 32,
            max_bytes: limit,
            max_values: self.state.limits.max_body_values,
        };
        // Documents up to twice the input limit: parsed off the async threads.
        let (_, v) = tokio::task::spawn_blocking(move || {
            crate::formats::xml::from_xml(&bytes, &shape, &limits)
        })
        .await
        .map_err(|e| Problem::new(500, "internal", e.to_string()))?
        .map_err(|e| Problem::bad_request(format!("the XML body is not valid: {e}")))?;
        Ok(v)
    }

    /// The multipart form. With `extra` (a dialect's form), the input parts may also be named
    /// `input-a` / `input-b`, and the text fields named in `extra` are collected into it.
    pub(crate) async fn read_form(
        &self,
        req: &Request,
        body: poem::Body,
        mut extra: Option<&mut Vec<(String, String)>>,
    ) -> Result<Parts, Problem> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let boundary = multer::parse_boundary(ct)
            .map_err(|e| Problem::bad_request(format!("multipart body: {e}")))?;
        let constraints = multer::Constraints::new().size_limit(
            multer::SizeLimit::new()
                .whole_stream(self.limit())
                .per_field(self.state.max_input_size),
        );
        let stream = body
            .into_bytes_stream()
            .map_err(|e| std::io::Error::other(e.to_string()));
        let mut form = multer::Multipart::with_constraints(stream, boundary, constraints);
        let (mut a, mut b) = (None, None);
        let mut async_flag = false;
        let mut asked = AsyncRequest::default();
        let mut notification_format = NotifyFormat::Json;
        let mut notification = None;
        let (mut format, mut options, mut correlation) = (None, CompareOptions::default(), None);
        let max = self.state.max_input_size;
        let mut parts = 0usize;
        while let Some(field) = form.next_field().await.map_err(|e| match e {
            multer::Error::FieldSizeExceeded { field_name, .. } => too_large(
                &format!("form field `{}`", field_name.unwrap_or_default()),
                max,
            ),
            multer::Error::StreamSizeExceeded { .. } => too_large("the request body", self.limit()),
            other => Problem::bad_request(format!("multipart body: {other}")),
        })? {
            parts += 1;
            if parts > self.state.limits.max_parts {
                return Err(Problem::new(
                    413,
                    "payload-too-large",
                    format!(
                        "the form has more than {} parts (LONGRUN_MAX_PARTS)",
                        self.state.limits.max_parts
                    ),
                ));
            }
            let name = field.name().unwrap_or("").to_string();
            let data = field.bytes().await.map_err(|e| match e {
                multer::Error::FieldSizeExceeded { .. } => {
                    too_large(&format!("form field `{name}`"), max)
                }
                multer::Error::StreamSizeExceeded { .. } => {
                    too_large("the request body", self.limit())
                }
                other => Problem::bad_request(format!("multipart field `{name}`: {other}")),
            })?;
            let text = || {
                String::from_utf8(data.to_vec()).map_err(|_| {
                    Problem::bad_request(format!("form field `{name}` is not UTF-8 text"))
                })
            };
            let dialect = extra.is_some();
            if let Some(extra) = extra.as_deref_mut() {
                if extra.iter().any(|(n, _)| *n == name) {
                    let v = text()?;
                    if let Some(slot) = extra.iter_mut().find(|(n, _)| *n == name) {
                        slot.1 = v;
                    }
                    continue;
                }
            }
            match name.as_str() {
                "inputA" => a = Some(Part::Content(data.clone())),
                "inputB" => b = Some(Part::Content(data.clone())),
                "input-a" if dialect => a = Some(Part::Content(data.clone())),
                "input-b" if dialect => b = Some(Part::Content(data.clone())),
                "async" => async_flag = parse_bool(&name, &text()?)?,
                "callback" => asked.callback = Some(text()?.trim().to_string()).filter(|s| !s.is_empty()),
                "keepResult" => asked.keep_result = Some(parse_bool(&name, &text()?)?),
                "priority" => {
                    asked.priority = as_priority(&Value::String(text()?), "priority")
                        .map_err(Problem::bad_request)?
                }
                "notBefore" => {
                    asked.not_before = as_time(&Value::String(text()?), "notBefore")
                        .map_err(Problem::bad_request)?
                }
                "timeout" => {
                    asked.timeout = crate::domain::deadline::as_timeout(
                        &Value::String(text()?),
                        "timeout",
                    )
                    .map_err(Problem::bad_request)?
                }
                "notification" => notification = Some(text()?.trim().to_string()),
                "notificationFormat" => {
                    notification_format = match text()?.trim() {
                        "xml" => NotifyFormat::Xml,
                        "json" | "" => NotifyFormat::Json,
                        other => {
                            return Err(Problem::bad_request(format!(
                                "form field `notificationFormat` must be json or xml, not `{other}`"
                            )))
                        }
                    }
                }
                "format" => {
                    format = Some(
                        crate::operations::compare::parse_format(text()?.trim())
                            .map_err(Problem::bad_request)?,
                    )
                }
                "keyAttributes" => options.key_attributes = split_list(Some(text()?)),
                "keyFields" => options.key_fields = split_list(Some(text()?)),
                "ignoreWhitespace" => options.ignore_whitespace = parse_bool(&name, &text()?)?,
                "ignoreComments" => options.ignore_comments = parse_bool(&name, &text()?)?,
                "correlationId" => correlation = Some(text()?),
                other => {
                    return Err(Problem::bad_request(format!(
                        "unknown form field `{other}`; use inputA, inputB, async, callback, keepResult, priority, notBefore, timeout, notification, notificationFormat, format, keyAttributes, keyFields, ignoreWhitespace, ignoreComments, correlationId"
                    )))
                }
            }
        }
        asked.notification = notification
            .filter(|u| !u.is_empty())
            .map(|url| NotificationTarget {
                url,
                format: notification_format,
            });
        let missing = |n: &str| Problem::bad_request(format!("the form has no `{n}` part"));
        Ok(Parts {
            a: a.ok_or_else(|| missing("inputA"))?,
            b: b.ok_or_else(|| missing("inputB"))?,
            format,
            options,
            // A job that is to wait for its time is answered at once.
            respond_async: async_flag || asked.not_before.is_some(),
            signals: asked,
            correlation,
            view: View::default(),
        })
    }
}

impl ComparisonsApi {
    /// Check the inputs (inline ones are parsed now, so a bad document is a 400 naming the input
    /// and the position), store them, and submit the job.
    pub(crate) async fn accept(
        &self,
        caller: &Caller,
        req: &Request,
        p: Parts,
    ) -> Result<(crate::domain::Job, bool), Problem> {
        let state = &self.state;
        let max = state.max_input_size;
        let limits = Limits {
            max_depth: state.max_depth,
            ..Limits::default()
        };
        let spec_options = Spec {
            format: p.format,
            a: Source::Content(String::new()),
            b: Source::Content(String::new()),
            options: p.options.clone(),
            deltaxml: false,
            output_key: None,
            dialect: None,
        };
        // The documents are checked now (a 400 naming the input and the position) by the
        // operation's own check, the one every route goes through; `uri` inputs by the
        // operation's admission when the job is submitted.
        let inline: Vec<(&str, Bytes)> = [("inputA", &p.a), ("inputB", &p.b)]
            .into_iter()
            .filter_map(|(name, part)| match part {
                Part::Content(bytes) => Some((name, bytes.clone())),
                Part::Uri(_) => None,
            })
            .collect();
        if let Some((name, _)) = inline.iter().find(|(_, b)| b.len() as u64 > max) {
            return Err(too_large(name, max));
        }
        check_documents(&inline, &spec_options, max, limits)
            .await
            .map_err(Problem::bad_request)?;
        let options = super::signals::job_options(state, req, p.signals).await?;
        let id = Uuid::now_v7();
        // Inline documents are kept as one stored body: A's bytes, then B's.
        let mut offset = 0u64;
        let mut stored = Vec::new();
        let mut source = |part: &Part| match part {
            Part::Uri(u) => Source::Uri(u.clone()),
            Part::Content(b) => {
                let s = Source::Stored {
                    offset,
                    length: b.len() as u64,
                };
                offset += b.len() as u64;
                stored.push(b.clone());
                s
            }
        };
        let spec = Spec {
            format: p.format,
            a: source(&p.a),
            b: source(&p.b),
            options: p.options,
            deltaxml: p.view.deltaxml,
            output_key: p.view.output_key,
            dialect: p.view.dialect,
        };
        let blobs = state.engine.blobs();
        let key = format!("inputs/{id}.cmp");
        let input_blob = if stored.is_empty() {
            None
        } else {
            let mut w = blobs.writer(&key);
            for b in &stored {
                if let Err(e) = w.write(b).await {
                    w.abort().await;
                    return Err(crate::engine::EngineError::from(e).into());
                }
            }
            w.finish()
                .await
                .map_err(|e| Problem::from(crate::engine::EngineError::from(e)))?;
            Some(key.clone())
        };
        let job = state
            .engine
            .submit(NewJob {
                owner: caller.owner(),
                id,
                operation: "compare".into(),
                input: spec.to_input(),
                input_blob,
                correlation_id: correlation_id(req, p.correlation),
                options,
            })
            .await;
        match job {
            Ok(j) => Ok((j, p.respond_async)),
            Err(e) => {
                let _ = blobs.delete(&key).await;
                Err(e.into())
            }
        }
    }

    /// The synchronous answer: the result if the job ends within the sync limit.
    pub(crate) async fn answer_sync(
        &self,
        req: &Request,
        job: crate::domain::Job,
    ) -> Result<CompareAnswer, Problem> {
        let engine = &self.state.engine;
        let base = base_url(req, self.state.public_url.as_deref());
        let Some(ended) = engine.wait_end(job.id, self.state.sync_limit).await? else {
            let enc = negotiate(req)?;
            return Ok(CompareAnswer::Job(Box::new(
                super::jobs::created(&self.state, req, enc, job).await?,
            )));
        };
        let me = job_href(&base, ended.id);
        match ended.status {
            JobStatus::Success => {
                let (file, body) = engine.read_first_output(ended.id).await?;
                if !ended.options.keep_result {
                    // The answer was the one complete read of a read-once result.
                    engine.consume(&file).await?;
                }
                Ok(CompareAnswer::Result {
                    body,
                    content_type: file.content_type.clone(),
                    file_href: file_href(&base, file.id),
                    job_href: me,
                })
            }
            JobStatus::Failed => {
                let err = ended.error.clone().unwrap_or(Value::Null);
                let kind = err["type"].as_str().unwrap_or_default().to_string();
                let detail = err["detail"]
                    .as_str()
                    .unwrap_or("the comparison failed")
                    .to_string();
                let (status, slug) = if kind.ends_with("job-bad-input") {
                    (400, "bad-request")
                } else if kind.ends_with("job-input-unavailable") {
                    (502, "input-unavailable")
                } else if kind.ends_with("job-input-timeout") {
                    (504, "input-timeout")
                } else if kind.ends_with("job-input-too-large") {
                    (413, "payload-too-large")
                } else {
                    (500, "job-failed")
                };
                let mut p = Problem::new(status, slug, detail);
                p.instance = Some(me);
                Err(p)
            }
            s => {
                let mut p = Problem::new(
                    409,
                    "illegal-state-change",
                    format!("the comparison ended {s} before its result was ready"),
                );
                p.instance = Some(me);
                Err(p)
            }
        }
    }
}

#[OpenApi(tag = "ApiTags::Comparisons")]
impl ComparisonsApi {
    /// Compare two documents (seed 002)
    ///
    /// Two XML or two JSON documents, each inline (`content`), by `uri`, or as a multipart file
    /// part. Without `async` (and without `Prefer: respond-async`) the answer is the result itself
    /// (200) when the comparison ends within the sync limit, else the job (201 + Location). With
    /// `async`, always 201. The result is an XML delta document (README: "The delta format") or an
    /// RFC 6902 JSON Patch.
    #[oai(
        path = "/api/v1/comparisons",
        method = "post",
        operation_id = "compare"
    )]
    async fn compare(
        &self,
        key: Key<Submission>,
        req: &Request,
        body: CompareBody,
        /// `respond-async` for the 201 answer at once; `wait=N` as on other submissions.
        #[oai(name = "Prefer")]
        _prefer: poem_openapi::param::Header<Option<String>>,
    ) -> Result<CompareAnswer, Problem> {
        let run = async {
            let enc = negotiate(req)?;
            let parts = match body {
                CompareBody::Json(b) => self.read_json(b.body).await?,
                CompareBody::Xml(b) => self.read_xml(b.body).await?,
                CompareBody::Form(b) => self.read_form(req, b.body, None).await?,
            };
            let (job, respond_async) = self.accept(&key, req, parts).await?;
            if respond_async || Prefer::of(req).respond_async {
                return Ok(CompareAnswer::Job(Box::new(
                    super::jobs::created(&self.state, req, enc, job).await?,
                )));
            }
            self.answer_sync(req, job).await
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }
}
