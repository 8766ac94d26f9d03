//! The HTTP edge: parse, negotiate JSON/XML, answer with problem documents. Calls the engine's
//! use-cases only; never sees a database entity.

pub mod access;
mod bodies;
mod comparisons;
pub mod compat;
mod deliveries;
pub mod docs;
mod downloads;
mod endpoints;
mod exports;
mod headers;
mod idempotency;
mod imports;
mod jobs;
mod live;
mod prometheus;
mod root;
mod signals;
mod stats;
mod strict;
pub mod wire;

use std::sync::Arc;

use poem::http::StatusCode;
use poem::{Endpoint, EndpointExt, IntoResponse, PathPattern, Response, Route};
use poem_openapi::{OpenApiService, Tags};

use crate::engine::Engine;
use wire::{problem_enc, Problem};

pub use bodies::Limits;

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
    /// The seed systems' own dialects: tasks (seed 003), background requests (seed 001) and the
    /// comparison service's routes (seed 002).
    Dialects,
    /// Output files.
    Downloads,
}

type Apis = (
    root::RootApi,
    jobs::JobsApi,
    signals::EventsApi,
    live::LiveApi,
    stats::StatsApi,
    deliveries::DeliveriesApi,
    endpoints::EndpointsApi,
    imports::ImportsApi,
    comparisons::ComparisonsApi,
    exports::ExportsApi,
    compat::tasks::TasksApi,
    compat::bgrs::BgrsApi,
    compat::xml_data_compare::XmlDataCompareApi,
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
            live::LiveApi {
                state: state.clone(),
            },
            stats::StatsApi {
                state: state.clone(),
            },
            deliveries::DeliveriesApi {
                state: state.clone(),
            },
            endpoints::EndpointsApi {
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
            compat::xml_data_compare::XmlDataCompareApi {
                state: state.clone(),
            },
            downloads::DownloadsApi { state },
        ),
        "longrun",
        env!("CARGO_PKG_VERSION"),
    )
    .server(poem_openapi::ServerObject::new("/").description("this service"))
    .license(poem_openapi::LicenseObject::new("MIT OR Apache-2.0"))
    .contact(poem_openapi::ContactObject::new().name("the longrun maintainers"))
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
    access::declare_security(&mut doc);
    headers::declare_headers(&mut doc);
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
/// `application/json; charset=utf-8`). A document's XML encoding has the same fields as its JSON
/// one, and its schema is the same: its example is the JSON example, which a schema can check
/// and Swagger UI shows as XML (an XML text under an object schema is not a valid example).
/// Bodies that are text or bytes (a delta, a download) keep their text.
fn add_examples(doc: &mut serde_json::Value, examples: &serde_json::Value) {
    fn set(content: Option<&mut serde_json::Value>, by_type: &serde_json::Value) {
        let Some(content) = content.and_then(|c| c.as_object_mut()) else {
            return;
        };
        for (media_type, media) in content.iter_mut() {
            let essence = media_type.split(';').next().unwrap_or_default().trim();
            let Some(media) = media.as_object_mut() else {
                continue;
            };
            let text = media
                .get("schema")
                .and_then(|s| s.get("type"))
                .is_some_and(|t| t == "string");
            let example = match by_type.get(essence) {
                Some(e) => Some(e),
                None if essence == "application/xml" && !text => by_type.get("application/json"),
                None => None,
            };
            if let Some(example) = example {
                media.insert("example".into(), example.clone());
            }
        }
    }
    // A problem of each status, as the service answered it somewhere, on every operation that
    // documents that status (in both of its encodings), referred to from `components.examples`.
    let problems = examples["problems"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (status, problem) in &problems {
        doc["components"]["examples"][format!("Problem{status}")] = serde_json::json!({
            "summary": format!("A {status} problem, as the service answers it"),
            "value": problem,
        });
    }
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for responses in paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses"))
        .filter_map(|r| r.as_object_mut())
    {
        for status in problems.keys() {
            if let Some(content) = responses
                .get_mut(status)
                .and_then(|r| r.get_mut("content"))
                .and_then(|c| c.as_object_mut())
            {
                let name = format!("Problem{status}");
                for (media_type, media) in content.iter_mut() {
                    if media_type.starts_with("application/problem+") {
                        media["examples"] = serde_json::json!({
                            &name: {"$ref": format!("#/components/examples/{name}")}
                        });
                    }
                }
            }
        }
    }
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
                        .body(prometheus::metrics_text(&st, &key).await)
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
                } else if let Some(too_large) = bodies::body_too_large(&bgrs_state, &req) {
                    too_large
                } else if let Some(refused) = if bodies::has_body(&req) {
                    Box::pin(bodies::bounded_body(
                        &body_schemas,
                        &bgrs_state.limits,
                        &mut req,
                    ))
                    .await
                } else {
                    None
                } {
                    refused
                } else if let Some(answer) = if compat::bgrs::wants_background(&req) {
                    Box::pin(compat::bgrs::intercept(&bgrs_state, &mut req)).await
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
                let route = prometheus::route_label(&answer, &method, &path, &allowed);
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
    /// methods. Where several do, the one with the most literal segments, as the router picks
    /// it (`/api/v1/jobs/actions` is not a job `{id}`).
    fn find(&self, path: &str) -> Option<(&str, &str)> {
        let segs: Vec<&str> = path.split('/').collect();
        self.0
            .iter()
            .filter(|(_, tpl, _)| {
                tpl.len() == segs.len()
                    && tpl
                        .iter()
                        .zip(&segs)
                        .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
            })
            .min_by_key(|(_, tpl, _)| tpl.iter().filter(|t| t.starts_with('{')).count())
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
