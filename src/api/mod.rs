//! The HTTP edge: parse, negotiate JSON/XML, answer with problem documents. Calls the engine's
//! use-cases only; never sees a database entity.

pub mod access;
mod comparisons;
pub mod compat;
pub mod docs;
mod downloads;
mod exports;
mod idempotency;
mod imports;
mod jobs;
mod root;
mod signals;
mod strict;
pub mod wire;

use std::sync::Arc;

use poem::http::StatusCode;
use poem::{Endpoint, EndpointExt, IntoResponse, PathPattern, Response, Route};
use poem_openapi::{OpenApiService, Tags};

use crate::engine::Engine;
use wire::{problem_enc, Problem};

/// What every handler shares.
pub struct AppState {
    pub engine: Arc<Engine>,
    pub public_url: Option<String>,
    /// How long a synchronous submission waits for its result.
    pub sync_limit: std::time::Duration,
    /// Largest document per comparison input.
    pub max_input_size: u64,
    /// Deepest nesting of a compared document.
    pub max_depth: usize,
    /// Key of share-link signatures.
    pub share_key: Vec<u8>,
    /// Per-key submission rates.
    pub gate: Arc<access::Gate>,
    /// The limits on what a request may carry.
    pub limits: Limits,
    /// Job documents rendered for polling clients.
    pub renders: wire::Renders,
    /// The proxies whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The tenant whose admin keys see every tenant on `/metrics`.
    pub operator_tenant: Option<String>,
}

/// Limits on request bodies and inputs (each configurable; see the README's settings).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub max_body_size: u64,
    /// Most records an import may hold.
    pub max_import_records: u64,
    /// Most parts a multipart form may have.
    pub max_parts: usize,
    /// Largest document per comparison input, and so the largest job input.
    pub max_input_size: u64,
    /// Most values a body read whole may hold.
    pub max_body_values: usize,
}

impl Limits {
    /// The largest body a request to `path` may send: imports are streamed record by record
    /// (`LONGRUN_MAX_BODY_SIZE`); a comparison carries two documents; every other body is read
    /// whole, so it is held to one input (`LONGRUN_MAX_INPUT_SIZE`) and its envelope.
    pub fn body_limit(&self, path: &str) -> u64 {
        match path {
            "/api/v1/imports" | "/api/tools/import" => self.max_body_size,
            "/api/v1/comparisons" => self.max_input_size * 2 + ENVELOPE,
            _ => self.max_input_size + ENVELOPE,
        }
        .min(self.max_body_size)
    }

    fn setting(path: &str) -> &'static str {
        match path {
            "/api/v1/imports" | "/api/tools/import" => "LONGRUN_MAX_BODY_SIZE",
            _ => "LONGRUN_MAX_INPUT_SIZE",
        }
    }
}

/// Room for what surrounds an input in a body (operation, options, `async`).
const ENVELOPE: u64 = 1 << 20;

/// A body that is read whole (JSON or XML, except large imports, which are streamed) is read here
/// first, up to its route's limit (a 413 as it passes it, never read beyond), its values counted
/// before anything parses it (a 413 over `LONGRUN_MAX_BODY_VALUES`: a parsed tree costs tens of
/// bytes per value), and a JSON body that breaks its operation's schema in the served document is
/// a 400 before the handler sees it. The body is put back otherwise.
async fn bounded_body(
    schemas: &strict::BodySchemas,
    limits: &Limits,
    req: &mut poem::Request,
) -> Option<Response> {
    let ct = req
        .headers()
        .get(poem::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(wire::media_type)
        .unwrap_or_default();
    // What the payloads parse as JSON (`application/json` and any `application/…+json`) or XML.
    let is_json =
        ct == "application/json" || (ct.starts_with("application/") && ct.ends_with("+json"));
    let is_xml = wire::is_xml(&ct) || ct.ends_with("+xml");
    // A form is read part by part under its own limits; a large import is streamed. A caller
    // without a valid key is answered 401 by its operation before any body is read.
    if ct.starts_with("multipart/")
        || streamed_and_large(req)
        || access::authenticated_tenant(req).is_none()
    {
        return None;
    }
    let path = req.uri().path().to_string();
    let max = limits.body_limit(&path);
    let refuse = |req: &poem::Request, status: u16, slug: &str, detail: String| {
        Some(
            Problem::new(status, slug, detail)
                .for_req(req)
                .into_response(),
        )
    };
    let body = match req.take_body().into_bytes_limit(max as usize).await {
        Ok(b) => b,
        Err(poem::error::ReadBodyError::PayloadTooLarge) => {
            return refuse(
                req,
                413,
                "payload-too-large",
                format!(
                    "the body is larger than the limit of {max} bytes ({})",
                    Limits::setting(&path)
                ),
            )
        }
        Err(e) => {
            return refuse(
                req,
                400,
                "bad-request",
                format!("reading the body failed: {e}"),
            )
        }
    };
    let imports = matches!(path.as_str(), "/api/v1/imports" | "/api/tools/import");
    if !imports {
        let values = if is_json {
            crate::formats::bounds::json_values(&body)
        } else if is_xml {
            crate::formats::bounds::xml_nodes(&body)
        } else {
            0
        };
        if values > limits.max_body_values {
            return refuse(
                req,
                413,
                "payload-too-large",
                format!(
                    "the body holds more than {} values (LONGRUN_MAX_BODY_VALUES); large data \
                     goes in as a document (a string, a file part, or an import)",
                    limits.max_body_values
                ),
            );
        }
    }
    if is_json {
        if let Some(schema) = schemas.schema(req.method().as_str(), &path) {
            // Bodies that are not JSON at all are left to the handler, which names the position.
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) {
                if let Err(why) = schemas.check(schema, &value) {
                    return refuse(
                        req,
                        400,
                        "bad-request",
                        format!("the body does not fit its schema: {why}"),
                    );
                }
            }
        }
    }
    req.set_body(body);
    None
}

/// Whether a request carries a body (announced by length or sent chunked) or says what it is.
fn has_body(req: &poem::Request) -> bool {
    let h = req.headers();
    h.contains_key(poem::http::header::CONTENT_TYPE)
        || h.contains_key(poem::http::header::TRANSFER_ENCODING)
        || h.get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// Import bodies are streamed record by record, never held whole; the whole-body check holds
/// them in memory, so it sees only small ones (what hand-written and generated clients send to
/// try the service). Larger ones are checked by the streaming parser: the envelope, then each
/// record, whose failures are reported per record.
const STRICT_STREAMED_MAX: u64 = 1 << 20;

fn streamed_and_large(req: &poem::Request) -> bool {
    let streamed = matches!(req.uri().path(), "/api/v1/imports" | "/api/tools/import");
    let len = req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    streamed && len.is_none_or(|n| n > STRICT_STREAMED_MAX)
}

/// A body announced larger than the limit is refused before it is read (bodies without a length
/// are counted as they are read by the handlers that stream them).
fn body_too_large(state: &AppState, req: &poem::Request) -> Option<Response> {
    let path = req.uri().path();
    let max = state.limits.body_limit(path);
    let len: u64 = req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (len > max).then(|| {
        Problem::new(
            413,
            "payload-too-large",
            format!(
                "the body has {len} bytes; the limit is {max} ({})",
                Limits::setting(path)
            ),
        )
        .for_req(req)
        .into_response()
    })
}

/// Groups of the OpenAPI document.
#[derive(Tags)]
pub enum ApiTags {
    /// Entry point and operations.
    Service,
    /// Jobs: read, list, cancel, restart, delete, messages, operator, result, files.
    Jobs,
    /// Tool imports (canonical and seed 000's dialect) and the tools catalog.
    Imports,
    /// Comparisons of two XML or two JSON documents (seed 002).
    Comparisons,
    /// Exports of the tools catalog or the job collection as data file sets (seed 004).
    Exports,
    /// The seed systems' own dialects: tasks (seed 003) and background requests (seed 001).
    Dialects,
    /// Output files.
    Downloads,
}

type Apis = (
    root::RootApi,
    jobs::JobsApi,
    signals::EventsApi,
    imports::ImportsApi,
    comparisons::ComparisonsApi,
    exports::ExportsApi,
    compat::tasks::TasksApi,
    compat::bgrs::BgrsApi,
    downloads::DownloadsApi,
);

/// The OpenAPI service (also used to write `openapi/openapi.yaml`).
pub fn openapi(state: Arc<AppState>) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            root::RootApi {
                state: state.clone(),
            },
            jobs::JobsApi {
                state: state.clone(),
            },
            signals::EventsApi {
                state: state.clone(),
            },
            imports::ImportsApi {
                state: state.clone(),
            },
            comparisons::ComparisonsApi {
                state: state.clone(),
            },
            exports::ExportsApi {
                state: state.clone(),
            },
            compat::tasks::TasksApi {
                state: state.clone(),
            },
            compat::bgrs::BgrsApi {
                state: state.clone(),
            },
            downloads::DownloadsApi { state },
        ),
        "longrun",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Long-running work over HTTP: submit work and get 201 + Location, follow the job's links \
         (monitor, cancel, result, datafileset, file, operator), read it as JSON or XML. \
         Any GET under /api/ also runs in the background when given `bgrs=yes` (or `1`) or \
         `Prefer: respond-async`: it answers 201 with `{\"request\": id}` and a Location under \
         /bgrs/{id} (seed 001).",
    )
}

/// The OpenAPI document as served, in JSON and YAML. poem-openapi writes a described field of a
/// named type as `allOf: [{$ref}, {description}]`; the second member repeats the field's own
/// description and makes code generators give up on the type, so it is left out.
pub fn spec_documents(api: &OpenApiService<Apis, ()>) -> (String, String) {
    fn plain_refs(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::Array(all)) = m.get_mut("allOf") {
                    if all.len() > 1 && all[0].get("$ref").is_some() {
                        all.retain(|s| {
                            s.as_object()
                                .is_none_or(|o| o.keys().any(|k| k != "description"))
                        });
                    }
                }
                m.values_mut().for_each(plain_refs);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(plain_refs),
            _ => {}
        }
    }
    let mut doc: serde_json::Value = serde_json::from_str(&api.spec()).expect("the spec is JSON");
    plain_refs(&mut doc);
    let examples = serde_json::from_str(EXAMPLES).expect("openapi/examples.json is JSON");
    add_examples(&mut doc, &examples);
    (
        serde_json::to_string_pretty(&doc).expect("the spec serializes"),
        serde_yaml::to_string(&doc).expect("the spec serializes"),
    )
}

/// Request and answer bodies captured from a running service, by operation id:
/// `{"request": {media type: example}, "response": {status: {media type: example}}}`. Written by
/// `LONGRUN_WRITE_EXAMPLES=1 cargo test --test api openapi`.
const EXAMPLES: &str = include_str!("../../openapi/examples.json");

/// Sets each example of `examples` as the `example` of its operation's request body or answer,
/// matching media types by their essence (`application/json` also fits
/// `application/json; charset=utf-8`).
fn add_examples(doc: &mut serde_json::Value, examples: &serde_json::Value) {
    fn set(content: Option<&mut serde_json::Value>, by_type: &serde_json::Value) {
        let Some(content) = content.and_then(|c| c.as_object_mut()) else {
            return;
        };
        for (media_type, media) in content.iter_mut() {
            let essence = media_type.split(';').next().unwrap_or_default().trim();
            if let (Some(example), Some(media)) = (by_type.get(essence), media.as_object_mut()) {
                media.insert("example".into(), example.clone());
            }
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for op in paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
    {
        let Some(ex) = op
            .get("operationId")
            .and_then(|id| id.as_str())
            .and_then(|id| examples.get(id))
        else {
            continue;
        };
        set(op.pointer_mut("/requestBody/content"), &ex["request"]);
        for (status, by_type) in ex["response"].as_object().into_iter().flatten() {
            set(
                op.pointer_mut(&format!("/responses/{status}/content")),
                by_type,
            );
        }
    }
}

/// The whole HTTP application.
pub fn app(state: Arc<AppState>) -> impl Endpoint<Output = Response> {
    let metrics_state = state.clone();
    let ready_state = state.clone();
    let bgrs_state = state.clone();
    let count_state = state.clone();
    let api = openapi(state);
    let (spec_json, spec_yaml) = spec_documents(&api);
    let body_schemas = Arc::new(strict::BodySchemas::new(&spec_json));
    let allowed = Arc::new(Allowed::from_spec(&spec_json));
    // Swagger UI shows the document as served (with its examples), not the generated one.
    let docs_html = api.swagger_ui_html().replacen(&api.spec(), &spec_json, 1);
    let docs = poem::endpoint::make_sync(move |_| poem::web::Html(docs_html.clone()));
    Route::new()
        .at(
            "/openapi.json",
            poem::endpoint::make_sync(move |_| {
                Response::builder()
                    .content_type("application/json")
                    .body(spec_json.clone())
            }),
        )
        .at(
            "/openapi.yaml",
            poem::endpoint::make_sync(move |_| {
                Response::builder()
                    .content_type("application/yaml")
                    .body(spec_yaml.clone())
            }),
        )
        .at(
            "/metrics",
            poem::endpoint::make(move |req: poem::Request| {
                let st = metrics_state.clone();
                async move {
                    let key = match access::Key::<access::Admin>::admit(&req) {
                        Ok(k) => k,
                        Err(p) => return p.into_response(),
                    };
                    Response::builder()
                        .content_type("text/plain; version=0.0.4")
                        .body(metrics_text(&st, &key).await)
                }
            }),
        )
        .at(
            "/healthz",
            poem::endpoint::make_sync(|_| {
                Response::builder().content_type("text/plain").body("ok\n")
            }),
        )
        .at(
            "/readyz",
            poem::endpoint::make(move |req: poem::Request| {
                let st = ready_state.clone();
                async move {
                    let db = st.engine.store().ping().await;
                    let blobs = st.engine.blobs().ping().await;
                    match (db, blobs) {
                        (Ok(()), Ok(())) => Response::builder()
                            .content_type("text/plain")
                            .body("ready\n"),
                        (db, blobs) => {
                            let mut why = Vec::new();
                            if let Err(e) = db {
                                why.push(format!("database: {e}"));
                            }
                            if let Err(e) = blobs {
                                why.push(format!("object store: {e}"));
                            }
                            Problem::new(503, "unavailable", why.join("; "))
                                .for_req(&req)
                                .into_response()
                        }
                    }
                }
            }),
        )
        .nest("/docs", docs)
        .nest("/ui", crate::ui::endpoint())
        .nest("/", api)
        .around(move |ep, req| {
            let body_schemas = body_schemas.clone();
            let bgrs_state = bgrs_state.clone();
            let count_state = count_state.clone();
            let allowed = allowed.clone();
            async move {
                // Methods a client invents share one label, as unmatched paths do.
                let method = match req.method().as_str() {
                    m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m,
                    _ => "OTHER",
                }
                .to_string();
                let path = req.uri().path().to_string();
                let call = |req: poem::Request| async {
                    // What an error answer needs of the request: its URI and Accept.
                    let mut accept = poem::http::HeaderMap::new();
                    if let Some(a) = req.headers().get(poem::http::header::ACCEPT) {
                        accept.insert(poem::http::header::ACCEPT, a.clone());
                    }
                    let enc_req = (req.uri().clone(), accept);
                    match ep.call(req).await {
                        Ok(r) => r.into_response(),
                        Err(e) if e.is::<Problem>() => e.into_response(),
                        Err(e) => {
                            let pattern = e.data::<PathPattern>().cloned();
                            let mut r = problem_of(e, enc_req, &allowed);
                            if let Some(p) = pattern {
                                r.set_data(p);
                            }
                            r
                        }
                    }
                };
                let mut req = req;
                wire::mark_forwarding(&mut req, &bgrs_state.trusted_proxies);
                // Who calls; what the matched operation needs is decided after routing.
                let admitted = access::authenticate(&bgrs_state, &mut req).await;
                // The paths that few requests take are boxed (and entered only when they apply):
                // poem copies a request's future whole through each of its layers, so a plain
                // poll's future stays small.
                let answer = if let Err(refusal) = admitted {
                    refusal
                } else if let Some(too_large) = body_too_large(&bgrs_state, &req) {
                    too_large
                } else if let Some(refused) = if has_body(&req) {
                    Box::pin(bounded_body(&body_schemas, &bgrs_state.limits, &mut req)).await
                } else {
                    None
                } {
                    refused
                } else if let Some(answer) = if compat::bgrs::wants_background(&req) {
                    Box::pin(compat::bgrs::intercept(&bgrs_state, &req)).await
                } else {
                    None
                } {
                    answer
                } else if req.method() == poem::http::Method::POST
                    && req.headers().contains_key("idempotency-key")
                {
                    Box::pin(idempotency::handle(&bgrs_state, req, call)).await
                } else {
                    call(req).await
                };
                let route = route_label(&answer, &method, &path, &allowed);
                count_state.engine.metrics().count(
                    "longrun_http_requests_total",
                    &[
                        ("route", &route),
                        ("method", &method),
                        ("status", answer.status().as_str()),
                    ],
                    1,
                );
                Ok(answer)
            }
        })
}

/// The metrics label of a request: the route the router matched, named by its documented
/// template (`/api/v1/jobs/{id}`; the router names its parameters `param0`, …); for an answer
/// given before routing (a refused body, a background request, an idempotent replay), the
/// documented template its path fits; else one shared label. Never the raw path, so the series
/// stay as few as the routes.
fn route_label(answer: &Response, method: &str, path: &str, allowed: &Allowed) -> String {
    let matched = answer
        .data::<PathPattern>()
        .map(|p| crate::metrics::route_template(&p.0))
        .filter(|p| !p.is_empty());
    if let Some(pattern) = matched {
        return allowed
            .template_of(&pattern)
            .map(str::to_string)
            .unwrap_or(pattern);
    }
    match allowed.find(path) {
        Some((template, methods)) if methods.split(", ").any(|m| m == method) => {
            template.to_string()
        }
        _ => crate::metrics::UNMATCHED_ROUTE.to_string(),
    }
}

/// Counters, gauges and histograms in the Prometheus text format. The operator (the open
/// service, or an admin key of `LONGRUN_OPERATOR_TENANT`) sees everything, the jobs per tenant;
/// another tenant's admin sees its own tenant's jobs and queue, and not the process's counters,
/// which count every tenant's work.
async fn metrics_text(state: &AppState, caller: &access::Caller) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let operator = caller.sees_all_tenants(state.operator_tenant.as_deref());
    let mut out = String::new();
    if let Ok(rows) = state.engine.store().count_by_status().await {
        // `longrun_jobs`: the visible tenants' jobs summed by status and operation.
        let mut sums: Vec<(&str, &str, i64)> = Vec::new();
        for (tenant, status, op, n) in &rows {
            if !operator && tenant != caller.tenant() {
                continue;
            }
            match sums.iter_mut().find(|r| r.0 == status && r.1 == op) {
                Some(r) => r.2 += n,
                None => sums.push((status, op, *n)),
            }
        }
        out.push_str(if operator {
            "# HELP longrun_jobs Jobs stored, by status and operation (every tenant).\n"
        } else {
            "# HELP longrun_jobs Jobs stored, by status and operation (this key's tenant).\n"
        });
        out.push_str("# TYPE longrun_jobs gauge\n");
        for (status, op, n) in &sums {
            let labels = crate::metrics::labels(&[("status", status), ("operation", op)]);
            out.push_str(&format!("longrun_jobs{{{labels}}} {n}\n"));
        }
        let queued: i64 = sums.iter().filter(|r| r.0 == "QUEUED").map(|r| r.2).sum();
        out.push_str(&format!(
            "# HELP longrun_queue_depth Jobs waiting for a worker.\n# TYPE longrun_queue_depth gauge\nlongrun_queue_depth {queued}\n"
        ));
        if operator {
            out.push_str("# HELP longrun_tenant_jobs Jobs stored, by tenant, status and operation.\n# TYPE longrun_tenant_jobs gauge\n");
            for (tenant, status, op, n) in &rows {
                let labels = crate::metrics::labels(&[
                    ("tenant", tenant),
                    ("status", status),
                    ("operation", op),
                ]);
                out.push_str(&format!("longrun_tenant_jobs{{{labels}}} {n}\n"));
            }
        }
    }
    if !operator {
        return out;
    }
    let m = state.engine.delivery_metrics();
    for (name, help, v) in [
        (
            "longrun_deliveries_delivered_total",
            "Callbacks and notification events delivered.",
            m.delivered.load(Relaxed),
        ),
        (
            "longrun_delivery_failed_tries_total",
            "Delivery tries that failed (non-2xx, timeout, refused).",
            m.failed_tries.load(Relaxed),
        ),
        (
            "longrun_deliveries_given_up_total",
            "Deliveries given up after their last try or a 410 from the receiver.",
            m.given_up.load(Relaxed),
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
        ));
    }
    state.engine.metrics().render(&mut out);
    out
}

/// The methods each documented path takes, for the `Allow` header of a 405 (RFC 9110), and the
/// documented template a path fits.
struct Allowed(Vec<(String, Vec<String>, String)>);

impl Allowed {
    fn from_spec(spec: &str) -> Allowed {
        let doc: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let mut paths = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            let mut methods: Vec<String> = item
                .as_object()
                .into_iter()
                .flatten()
                .map(|(m, _)| m.to_ascii_uppercase())
                .filter(|m| {
                    ["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS"]
                        .contains(&m.as_str())
                })
                .collect();
            if methods.iter().any(|m| m == "GET") && !methods.iter().any(|m| m == "HEAD") {
                methods.push("HEAD".into());
            }
            let segments = path.split('/').map(str::to_string).collect();
            paths.push((path.clone(), segments, methods.join(", ")));
        }
        Allowed(paths)
    }

    /// The documented path `path` matches (`{name}` matches any one segment): its template, its
    /// methods.
    fn find(&self, path: &str) -> Option<(&str, &str)> {
        let segs: Vec<&str> = path.split('/').collect();
        self.0
            .iter()
            .find(|(_, tpl, _)| {
                tpl.len() == segs.len()
                    && tpl
                        .iter()
                        .zip(&segs)
                        .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
            })
            .map(|(t, _, m)| (t.as_str(), m.as_str()))
    }

    /// The methods of the documented path `path` matches.
    fn of(&self, path: &str) -> Option<&str> {
        self.find(path).map(|(_, m)| m)
    }

    /// The documented template `path` matches.
    fn template_of(&self, path: &str) -> Option<&str> {
        self.find(path).map(|(t, _)| t)
    }
}

/// Any framework error (bad parameter, unparsable body, unknown route, unsupported content
/// type) becomes a problem document in the encoding the client reads.
fn problem_of(
    e: poem::Error,
    (uri, headers): (poem::http::Uri, poem::http::HeaderMap),
    allowed: &Allowed,
) -> Response {
    let status = e.status();
    // `format` is how a client chooses the encoding: a value not offered is a 406, as from Accept.
    if let Some(p) = e.downcast_ref::<poem_openapi::error::ParseParamError>() {
        if p.name == "format" {
            let mut req = poem::Request::builder().uri(uri.clone()).finish();
            *req.headers_mut() = headers;
            let mut p = match wire::negotiate(&req) {
                Err(p) => p,
                Ok(_) => Problem::new(406, "not-acceptable", p.reason.clone()),
            }
            .for_req(&req);
            p.enc = Some(wire::Enc::Json);
            return p.into_response();
        }
    }
    let (slug, detail) = match status {
        StatusCode::NOT_FOUND => ("not-found", format!("nothing at {}", uri.path())),
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", format!("{} does not take this method", uri.path())),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported-media-type",
            format!("{e}; send application/json or application/xml (imports also take application/x-ndjson)"),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload-too-large", e.to_string()),
        s if s.is_client_error() => ("bad-request", e.to_string()),
        _ => ("internal", e.to_string()),
    };
    let mut req = poem::Request::builder().uri(uri.clone()).finish();
    *req.headers_mut() = headers;
    let mut p = Problem::new(status.as_u16(), slug, detail).for_req(&req);
    p.enc = Some(problem_enc(&req));
    let mut r = p.into_response();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        if let Some(m) = allowed
            .of(uri.path())
            .and_then(|m| poem::http::HeaderValue::from_str(m).ok())
        {
            r.headers_mut().insert(poem::http::header::ALLOW, m);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn examples_land_on_their_operation_by_media_type_essence() {
        let mut doc = json!({"paths": {"/things": {
            "post": {
                "operationId": "makeThing",
                "requestBody": {"content": {
                    "application/json; charset=utf-8": {"schema": {}},
                    "application/xml": {"schema": {}},
                    "multipart/form-data": {"schema": {}}
                }},
                "responses": {
                    "201": {"content": {"application/json": {"schema": {}}}},
                    "400": {"content": {"application/json": {"schema": {}}}}
                }
            },
            "parameters": [],
            "get": {"operationId": "listThings", "responses": {"200": {"description": "none"}}}
        }}});
        let examples = json!({
            "makeThing": {
                "request": {"application/json": {"name": "a"}, "application/xml": "<thing/>"},
                "response": {"201": {"application/json": {"id": 1}}, "404": {"application/json": {}}}
            },
            "listThings": {"response": {"200": {"application/json": []}}}
        });
        super::add_examples(&mut doc, &examples);
        let post = &doc["paths"]["/things"]["post"];
        let body = &post["requestBody"]["content"];
        assert_eq!(
            body["application/json; charset=utf-8"]["example"],
            json!({"name": "a"})
        );
        assert_eq!(body["application/xml"]["example"], "<thing/>");
        assert!(body["multipart/form-data"].get("example").is_none());
        assert_eq!(
            post["responses"]["201"]["content"]["application/json"]["example"],
            json!({"id": 1})
        );
        assert!(post["responses"]["400"]["content"]["application/json"]
            .get("example")
            .is_none());
        assert!(post["responses"].get("404").is_none());
        assert!(doc["paths"]["/things"]["get"]["responses"]["200"]
            .get("content")
            .is_none());
    }
}
