//! The edge's plumbing: choosing JSON or XML, problem documents, and a response type that
//! carries either encoding while documenting both in the OpenAPI document.

use poem::http::{header, HeaderValue, StatusCode};
use poem::{IntoResponse, Request, Response};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, ToJSON, Type};
use poem_openapi::{ApiResponse, Object};

use crate::engine::EngineError;
use crate::formats::xml::to_xml;

/// The two encodings of every document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enc {
    Json,
    Xml,
}

impl Enc {
    /// The media type of a document in this encoding.
    pub fn media(self) -> &'static str {
        match self {
            Enc::Json => "application/json",
            Enc::Xml => "application/xml",
        }
    }
}

fn query_param<'a>(req: &'a Request, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    let q = req.uri().query()?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Pick the encoding from `format=` or `Accept` (q-values honoured; `*/*` → JSON).
pub fn negotiate(req: &Request) -> Result<Enc, Problem> {
    if let Some(f) = query_param(req, "format") {
        return match f.as_ref() {
            "json" => Ok(Enc::Json),
            "xml" => Ok(Enc::Xml),
            other => Err(Problem::new(
                406,
                "not-acceptable",
                format!("format `{other}` is not offered; use format=json or format=xml"),
            )),
        };
    }
    let Some(accept) = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(Enc::Json);
    };
    if accept.trim().is_empty() {
        return Ok(Enc::Json);
    }
    let mut best: Option<(f32, usize, Enc)> = None;
    for (i, mt, q) in accepted(accept) {
        let enc = match mt.as_str() {
            "application/json" | "application/problem+json" | "application/*" | "*/*" => Enc::Json,
            "application/xml" | "text/xml" | "application/problem+xml" => Enc::Xml,
            _ => continue,
        };
        // Higher q wins; on a tie the earlier entry, as clients list preference first.
        if best.map(|(bq, _, _)| q > bq).unwrap_or(true) {
            best = Some((q, i, enc));
        }
    }
    best.map(|b| b.2).ok_or_else(|| {
        Problem::new(
            406,
            "not-acceptable",
            format!("none of `{accept}` is offered; ask for application/json or application/xml"),
        )
    })
}

/// The entries of an `Accept` value a client takes (q > 0): position, media type, q.
fn accepted(accept: &str) -> impl Iterator<Item = (usize, String, f32)> + '_ {
    accept.split(',').enumerate().filter_map(|(i, part)| {
        let mut bits = part.split(';');
        let mt = bits.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0f32;
        for p in bits {
            if let Some(v) = p.trim().strip_prefix("q=") {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        (q > 0.0).then_some((i, mt, q))
    })
}

/// Whether `Accept` prefers a server-sent event stream to a document: it names
/// `text/event-stream` with a higher q than any JSON or XML type (on a tie, earlier).
pub fn wants_event_stream(req: &Request) -> bool {
    let Some(accept) = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    // The best (q, position) of each kind.
    let mut stream: Option<(f32, usize)> = None;
    let mut doc: Option<(f32, usize)> = None;
    for (i, mt, q) in accepted(accept) {
        let slot = match mt.as_str() {
            "text/event-stream" => &mut stream,
            "application/json"
            | "application/problem+json"
            | "application/*"
            | "*/*"
            | "application/xml"
            | "text/xml"
            | "application/problem+xml" => &mut doc,
            _ => continue,
        };
        if slot.is_none_or(|(bq, _)| q > bq) {
            *slot = Some((q, i));
        }
    }
    match (stream, doc) {
        (Some(_), None) => true,
        (Some((sq, si)), Some((dq, di))) => sq > dq || (sq == dq && si < di),
        _ => false,
    }
}

/// The bare, lower-case media type of a Content-Type value (`application/xml; charset=x` → `application/xml`).
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// True for the XML media types a body may be sent as.
pub fn is_xml(content_type: &str) -> bool {
    matches!(
        media_type(content_type).as_str(),
        "application/xml" | "text/xml"
    )
}

/// The correlation id of a submission: the `X-Correlation-Id` header, else `fallback` (from the
/// body); trimmed, at most 200 characters, absent when empty.
pub fn correlation_id(req: &Request, fallback: Option<String>) -> Option<String> {
    req.headers()
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(fallback)
        .map(|s| s.trim().chars().take(200).collect::<String>())
        .filter(|s| !s.is_empty())
}

pub use crate::domain::hex;

/// What a client asked for with `Prefer` (RFC 7240).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prefer {
    /// `respond-async`: answer 201 at once, do not wait for the result.
    pub respond_async: bool,
    /// `wait=N`: hold the answer up to N seconds (capped at 60).
    pub wait: Option<u64>,
}

impl Prefer {
    /// Read every `Prefer` header of a request.
    pub fn of(req: &Request) -> Prefer {
        let mut p = Prefer::default();
        for v in req.headers().get_all("prefer") {
            let Ok(v) = v.to_str() else { continue };
            for pref in v.split(',') {
                let pref = pref.split(';').next().unwrap_or("").trim();
                let (name, value) = match pref.split_once('=') {
                    Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                    None => (pref, None),
                };
                if name.eq_ignore_ascii_case("respond-async") {
                    p.respond_async = true;
                } else if name.eq_ignore_ascii_case("wait") {
                    p.wait = value.and_then(|v| v.parse::<u64>().ok()).map(|n| n.min(60));
                }
            }
        }
        p
    }
}

/// The encoding a problem should use: XML when the client asked for it, JSON otherwise.
pub fn problem_enc(req: &Request) -> Enc {
    negotiate(req).unwrap_or(Enc::Json)
}

/// Set on a request whose `X-Forwarded-Proto` and `X-Forwarded-Host` may be believed: it came
/// from a configured proxy (`LONGRUN_TRUSTED_PROXIES`), or it is a background request's inner
/// GET, whose forwarded headers the service wrote itself from a checked origin.
#[derive(Debug, Clone, Copy)]
pub struct TrustedForwarding;

/// Mark `req` as forwarded by a trusted proxy when its peer is one of `proxies`.
pub fn mark_forwarding(req: &mut Request, proxies: &[ipnet::IpNet]) {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
    if peer.is_some_and(|ip| proxies.iter().any(|p| p.contains(&ip))) {
        req.extensions_mut().insert(TrustedForwarding);
    }
}

/// A `Host` value that may stand in a link: a name or an IPv4 address of letters, digits, `.`,
/// `-` and `_`, or a bracketed IPv6 address, with an optional port.
fn valid_host(h: &str) -> bool {
    if h.is_empty() || h.len() > 255 {
        return false;
    }
    let (host, port) = match h.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) if v6.parse::<std::net::Ipv6Addr>().is_ok() => ("v6", port),
            _ => return false,
        },
        None => match h.rsplit_once(':') {
            Some((host, _)) => (host, &h[host.len()..]),
            None => (h, ""),
        },
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| {
            !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
        });
    port_ok
        && !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Base URL for links: the configured public URL, else the request's own origin: its `Host`,
/// or the forwarded scheme and host when a trusted proxy sent them. Values that are not a
/// scheme (`http`, `https`) and a host are ignored, so nothing a client sends ends up in a link
/// but a host name.
pub fn base_url(req: &Request, public: Option<&str>) -> String {
    if let Some(p) = public {
        return p.to_string();
    }
    let h = req.headers();
    let get = |n: &str| {
        h.get(n)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(',').next().unwrap_or("").trim().to_string())
    };
    let trusted = req.extensions().get::<TrustedForwarding>().is_some();
    let proto = trusted
        .then(|| get("x-forwarded-proto"))
        .flatten()
        .map(|p| p.to_ascii_lowercase())
        .filter(|p| p == "http" || p == "https")
        .unwrap_or_else(|| "http".into());
    let host = trusted
        .then(|| get("x-forwarded-host"))
        .flatten()
        .filter(|h| valid_host(h))
        .or_else(|| get("host").filter(|h| valid_host(h)))
        .unwrap_or_else(|| "localhost".into());
    format!("{proto}://{host}")
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct Problem {
    /// Stable URI naming the kind of problem.
    #[oai(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for a person to act on.
    pub detail: String,
    /// The request path.
    pub instance: Option<String>,
    #[oai(skip)]
    pub enc: Option<Enc>,
    #[oai(skip)]
    pub retry_after: Option<u64>,
    /// A 401: the answer says how to authenticate (`WWW-Authenticate: Bearer`).
    #[oai(skip)]
    pub www_authenticate: bool,
}

fn title(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

impl Problem {
    /// A problem of `status` with a stable type slug.
    pub fn new(status: u16, slug: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("urn:longrun:problem:{slug}"),
            title: title(status).to_string(),
            status,
            detail: detail.into(),
            instance: None,
            enc: None,
            retry_after: None,
            www_authenticate: false,
        }
    }
    /// Set the encoding (from the request).
    pub fn for_req(mut self, req: &Request) -> Problem {
        self.enc = Some(problem_enc(req));
        if self.instance.is_none() {
            self.instance = Some(req.uri().path().to_string());
        }
        self
    }
    /// 400.
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(400, "bad-request", detail)
    }
    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(404, "not-found", detail)
    }
}

impl From<EngineError> for Problem {
    fn from(e: EngineError) -> Problem {
        match &e {
            EngineError::NotFound(_) => Problem::new(404, "not-found", e.to_string()),
            EngineError::Gone(_) => Problem::new(410, "gone", e.to_string()),
            EngineError::Conflict(_) => Problem::new(409, "illegal-state-change", e.to_string()),
            EngineError::BadInput(_) => Problem::new(400, "bad-request", e.to_string()),
            EngineError::Store(_) | EngineError::Blob(_) => {
                tracing::error!(error = %e, "internal error");
                Problem::new(
                    503,
                    "unavailable",
                    format!("storage is not available right now: {e}"),
                )
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let value = self.to_json().unwrap_or_default();
        let (body, ct) = match self.enc.unwrap_or(Enc::Json) {
            Enc::Json => (value.to_string(), "application/problem+json"),
            Enc::Xml => (to_xml("problem", &value), "application/problem+xml"),
        };
        let mut r = Response::builder()
            .status(status)
            .content_type(ct)
            .body(body);
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.www_authenticate {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"longrun\""),
            );
        }
        r
    }
}

impl ApiResponse for Problem {
    fn meta() -> MetaResponses {
        let content = || {
            vec![
                MetaMediaType {
                    content_type: "application/problem+json",
                    schema: <Problem as Type>::schema_ref(),
                },
                MetaMediaType {
                    content_type: "application/problem+xml",
                    schema: <Problem as Type>::schema_ref(),
                },
            ]
        };
        let r = |status: u16, description: &'static str| MetaResponse {
            description,
            status: Some(status),
            status_range: None,
            content: content(),
            headers: vec![],
        };
        MetaResponses {
            responses: vec![
                r(400, "The request is malformed or invalid"),
                r(
                    401,
                    "An API key is needed, or the one given is unknown or revoked",
                ),
                r(403, "The key's scope does not allow this"),
                r(404, "No such resource"),
                r(406, "Neither JSON nor XML is acceptable to the client"),
                r(409, "The resource is not in a state that allows this"),
                r(410, "The resource was deleted"),
                r(413, "The body is too large"),
                r(415, "The body's content type is not accepted"),
                r(429, "The key's submission rate is used up; see Retry-After"),
                r(502, "An input given by URI could not be fetched"),
                r(503, "Storage is not available right now"),
                r(504, "An input given by URI was not fetched in time"),
            ],
        }
    }
    fn register(registry: &mut Registry) {
        <Problem as Type>::register(registry);
    }
}

/// A document in the encoding the client chose, with status `S` and extra headers.
pub struct Rep<T, const S: u16 = 200> {
    value: Option<T>,
    /// The body rendered earlier (see `Renders`), used instead of `value`.
    rendered: Option<bytes::Bytes>,
    pub enc: Enc,
    pub root: &'static str,
    pub status: Option<u16>,
    pub headers: Vec<(header::HeaderName, String)>,
}

impl<T, const S: u16> Rep<T, S> {
    /// A document with root element `root` (for XML).
    pub fn new(value: T, enc: Enc, root: &'static str) -> Self {
        Rep {
            value: Some(value),
            rendered: None,
            enc,
            root,
            status: None,
            headers: Vec::new(),
        }
    }
    /// A document rendered earlier by `render`.
    pub fn rendered(body: bytes::Bytes, enc: Enc) -> Self {
        Rep {
            value: None,
            rendered: Some(body),
            enc,
            root: "",
            status: None,
            headers: Vec::new(),
        }
    }
    /// Add a header.
    pub fn header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    /// Answer with another status than the documented default.
    pub fn status(mut self, s: u16) -> Self {
        self.status = Some(s);
        self
    }
}

impl<T: ToJSON, const S: u16> IntoResponse for Rep<T, S> {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status.unwrap_or(S)).unwrap_or(StatusCode::OK);
        let mut r = if status == StatusCode::NOT_MODIFIED {
            Response::builder().status(status).finish()
        } else {
            let body = match (self.rendered, &self.value) {
                (Some(b), _) => b,
                (None, Some(v)) => render(v, self.enc, self.root),
                (None, None) => bytes::Bytes::new(),
            };
            Response::builder()
                .status(status)
                .content_type(self.enc.media())
                .body(body)
        };
        r.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Accept"));
        for (k, v) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                r.headers_mut().append(k, v);
            }
        }
        r
    }
}

/// A document's body in encoding `enc` (`root` names the XML root element).
pub fn render<T: ToJSON>(value: &T, enc: Enc, root: &str) -> bytes::Bytes {
    let value = value.to_json().unwrap_or_default();
    match enc {
        Enc::Json => serde_json::to_vec(&value).unwrap_or_default().into(),
        Enc::Xml => to_xml(root, &value).into(),
    }
}

/// Rendered job documents, shared while the job's snapshot is current: the clients polling one
/// job get one rendering per snapshot, base URL and encoding instead of one each. An entry holds
/// its snapshot, so comparing snapshots by address is sound; a newer snapshot replaces the entry.
#[derive(Default)]
pub struct Renders(std::sync::Mutex<RenderMap>);

type RenderMap =
    std::collections::HashMap<uuid::Uuid, Vec<(crate::store::Snapshot, Enc, String, bytes::Bytes)>>;

/// Jobs whose renderings are kept at most (the map is emptied beyond).
const RENDERS_MAX: usize = 10_000;

impl Renders {
    /// The body of `snap` for `base` and `enc`, rendered by `make` if not kept yet.
    pub fn get_or(
        &self,
        snap: &crate::store::Snapshot,
        enc: Enc,
        base: &str,
        make: impl FnOnce() -> bytes::Bytes,
    ) -> bytes::Bytes {
        let id = snap.0.id;
        let found = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .and_then(|v| {
                v.iter()
                    .find(|(s, e, b, _)| std::sync::Arc::ptr_eq(s, snap) && *e == enc && b == base)
                    .map(|(.., body)| body.clone())
            });
        if let Some(body) = found {
            return body;
        }
        let body = make();
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= RENDERS_MAX {
            map.clear();
        }
        let kept = map.entry(id).or_default();
        kept.retain(|(s, ..)| std::sync::Arc::ptr_eq(s, snap));
        if kept.len() < 8 {
            kept.push((snap.clone(), enc, base.to_string(), body.clone()));
        }
        body
    }
}

impl<T: ToJSON + Type, const S: u16> ApiResponse for Rep<T, S> {
    fn meta() -> MetaResponses {
        let schema: MetaSchemaRef = T::schema_ref();
        MetaResponses {
            responses: vec![MetaResponse {
                description: match S {
                    201 => "Created: the job, with its Location",
                    202 => "Accepted: the change is under way",
                    _ => "OK",
                },
                status: Some(S),
                status_range: None,
                content: vec![
                    MetaMediaType {
                        content_type: "application/json",
                        schema: schema.clone(),
                    },
                    MetaMediaType {
                        content_type: "application/xml",
                        schema,
                    },
                ],
                headers: vec![],
            }],
        }
    }
    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// The usual result of a handler.
pub type ApiResult<T, const S: u16 = 200> = Result<Rep<T, S>, Problem>;

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.title, self.detail)
    }
}

impl std::error::Error for Problem {}

impl poem::error::ResponseError for Problem {
    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
    fn as_response(&self) -> Response {
        self.clone().into_response()
    }
}

/// A body kept as a stream (large imports are never held in memory), documented with the
/// schema of `T`.
pub struct Streamed<T, const K: u8> {
    pub body: poem::Body,
    _t: std::marker::PhantomData<T>,
}

/// `Streamed` kinds.
pub const JSON: u8 = 0;
pub const XML: u8 = 1;
pub const NDJSON: u8 = 2;
pub const MULTIPART: u8 = 3;

impl<T: Type, const K: u8> Payload for Streamed<T, K> {
    const CONTENT_TYPE: &'static str = match K {
        JSON => "application/json",
        XML => "application/xml",
        MULTIPART => "multipart/form-data",
        _ => "application/x-ndjson",
    };
    fn check_content_type(ct: &str) -> bool {
        match K {
            JSON => media_type(ct) == "application/json",
            XML => is_xml(ct),
            MULTIPART => media_type(ct) == "multipart/form-data",
            _ => matches!(
                media_type(ct).as_str(),
                "application/x-ndjson" | "application/jsonl"
            ),
        }
    }
    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }
    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type, const K: u8> ParsePayload for Streamed<T, K> {
    const IS_REQUIRED: bool = true;
    async fn from_request(_request: &Request, body: &mut poem::RequestBody) -> poem::Result<Self> {
        Ok(Streamed {
            body: body.take()?,
            _t: std::marker::PhantomData,
        })
    }
}

/// An XML request body read into `T` by the same field names as its JSON form.
pub struct XmlBody<T>(pub T);

/// Types that can say how their XML form is shaped (which elements are lists, numbers, ...).
pub trait XmlShape {
    /// The shape of the root element.
    fn shape() -> crate::formats::xml::Shape;
}

/// Largest XML request body read whole.
const XML_BODY_LIMIT: usize = 4 * 1024 * 1024;

impl<T: Type> Payload for XmlBody<T> {
    const CONTENT_TYPE: &'static str = "application/xml";
    fn check_content_type(ct: &str) -> bool {
        is_xml(ct)
    }
    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }
    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + ParseFromJSON + XmlShape> ParsePayload for XmlBody<T> {
    const IS_REQUIRED: bool = true;
    async fn from_request(_req: &Request, body: &mut poem::RequestBody) -> poem::Result<Self> {
        let bytes = body
            .take()?
            .into_bytes_limit(XML_BODY_LIMIT)
            .await
            .map_err(|e| {
                Problem::new(
                    413,
                    "payload-too-large",
                    format!("an XML body may have at most {XML_BODY_LIMIT} bytes: {e}"),
                )
            })?;
        let limits = crate::formats::xml::XmlLimits {
            max_depth: 32,
            max_bytes: XML_BODY_LIMIT,
            ..Default::default()
        };
        let (_, value) = crate::formats::xml::from_xml(&bytes, &T::shape(), &limits)
            .map_err(|e| Problem::bad_request(format!("the XML body is not valid: {e}")))?;
        let parsed = T::parse_from_json(Some(value)).map_err(|e| {
            Problem::bad_request(format!("the XML body is not valid: {}", e.into_message()))
        })?;
        Ok(XmlBody(parsed))
    }
}

/// `format`: the encoding of the answer, overriding `Accept` (a value not offered is a 406).
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum Encoding {
    Json,
    Xml,
}

/// A query parameter holding an RFC 3339 time: documented as `date-time`, read as text (the
/// handler says what is wrong with it).
#[derive(Debug, Clone)]
pub struct TimeText(pub String);

impl Type for TimeText {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;
    fn name() -> std::borrow::Cow<'static, str> {
        "string_date-time".into()
    }
    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(
            poem_openapi::registry::MetaSchema::new_with_format("string", "date-time"),
        ))
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

impl poem_openapi::types::ParseFromParameter for TimeText {
    fn parse_from_parameter(value: &str) -> poem_openapi::types::ParseResult<Self> {
        Ok(TimeText(value.to_string()))
    }
}

/// The text of optional time parameters.
pub fn time_text(t: &Option<TimeText>) -> Option<String> {
    t.as_ref().map(|t| t.0.clone())
}

/// A `status` filter value: statuses, comma-separated (only end states when `END`). Documented
/// by its pattern, read as text (the handler names a status it does not know).
#[derive(Debug, Clone)]
pub struct StatusText<const END: bool>(pub String);

impl<const END: bool> Type for StatusText<END> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;
    fn name() -> std::borrow::Cow<'static, str> {
        if END {
            "string_end_statuses".into()
        } else {
            "string_statuses".into()
        }
    }
    fn schema_ref() -> MetaSchemaRef {
        let one = if END {
            "SUCCESS|FAILED|CANCELLED"
        } else {
            "QUEUED|STARTED|PROCESSING|SAVING|SUCCESS|FAILED|CANCELLED"
        };
        let pattern = format!("^ *({one}) *(, *({one}) *)*$");
        let mut schema = poem_openapi::registry::MetaSchema::new("string");
        schema.pattern = Some(pattern);
        MetaSchemaRef::Inline(Box::new(schema))
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

impl<const END: bool> poem_openapi::types::ParseFromParameter for StatusText<END> {
    fn parse_from_parameter(value: &str) -> poem_openapi::types::ParseResult<Self> {
        Ok(StatusText(value.to_string()))
    }
}

impl ParseFromJSON for TimeText {
    fn parse_from_json(value: Option<serde_json::Value>) -> poem_openapi::types::ParseResult<Self> {
        match value {
            Some(serde_json::Value::String(s)) => Ok(TimeText(s)),
            other => Err(poem_openapi::types::ParseError::expected_type(
                other.unwrap_or_default(),
            )),
        }
    }
}

impl ToJSON for TimeText {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(serde_json::Value::String(self.0.clone()))
    }
}

/// A response `R` that may also answer `S`: 200 for a submission whose job ended within
/// `Prefer: wait`, 202 for a change under way, 304 for an unchanged document.
pub struct Also<R, const S: u16>(pub R);

impl<R: IntoResponse, const S: u16> IntoResponse for Also<R, S> {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl<R: ApiResponse, const S: u16> ApiResponse for Also<R, S> {
    fn meta() -> MetaResponses {
        let mut m = R::meta();
        if !m.responses.iter().any(|r| r.status == Some(S)) {
            let content = if S == 304 {
                vec![]
            } else {
                m.responses[0]
                    .content
                    .iter()
                    .map(|c| MetaMediaType {
                        content_type: c.content_type,
                        schema: c.schema.clone(),
                    })
                    .collect()
            };
            m.responses.push(MetaResponse {
                description: match S {
                    200 => "OK: the job ended within the time `Prefer: wait` asked for",
                    202 => "Accepted: the change is under way",
                    304 => "Not Modified: the document still has the ETag of `If-None-Match`",
                    _ => "Also",
                },
                status: Some(S),
                status_range: None,
                content,
                headers: vec![],
            });
        }
        m
    }
    fn register(registry: &mut Registry) {
        R::register(registry);
    }
}

#[cfg(test)]
mod origin_tests {
    use super::*;

    #[test]
    fn hosts_are_names_or_addresses_with_a_port() {
        for ok in [
            "localhost",
            "localhost:8080",
            "api.example.com",
            "10.0.0.1:443",
            "[::1]:8080",
            "[2001:db8::1]",
            "a_b.c",
        ] {
            assert!(valid_host(ok), "{ok}");
        }
        for bad in [
            "",
            "javascript://evil\"><script>",
            "a b",
            "a:b",
            "a:123456",
            "[::1",
            "[zz]:1",
            "a\"><b",
            "x/y",
            "a:",
        ] {
            assert!(!valid_host(bad), "{bad}");
        }
    }

    #[test]
    fn forwarded_headers_count_only_when_trusted() {
        let req = |trusted: bool| {
            let mut r = Request::builder()
                .header("host", "svc:8080")
                .header("x-forwarded-host", "api.example.com")
                .header("x-forwarded-proto", "https")
                .finish();
            if trusted {
                r.extensions_mut().insert(TrustedForwarding);
            }
            r
        };
        assert_eq!(base_url(&req(false), None), "http://svc:8080");
        assert_eq!(base_url(&req(true), None), "https://api.example.com");
        assert_eq!(base_url(&req(true), Some("https://pub")), "https://pub");
    }
}
