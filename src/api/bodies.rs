//! What a request body may be, decided before any handler reads it: its route's size limit
//! (announced or counted as it is read), the number of values it holds, and its schema.

use poem::{IntoResponse, Response};

use super::wire::{self, Problem};
use super::{access, strict, AppState};

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

/// The routes whose bodies are streamed record by record (imports), never read whole. Any other
/// spelling of a path gets the limit of a body read whole, the smaller one.
fn is_streamed(path: &str) -> bool {
    matches!(path, "/api/v1/imports" | "/api/tools/import")
}

impl Limits {
    /// The largest body a request to `path` may send: imports are streamed record by record
    /// (`LONGRUN_MAX_BODY_SIZE`); a comparison carries two documents; every other body is read
    /// whole, so it is held to one input (`LONGRUN_MAX_INPUT_SIZE`) and its envelope.
    pub fn body_limit(&self, path: &str) -> u64 {
        if is_streamed(path) {
            return self.max_body_size;
        }
        match path {
            "/api/v1/comparisons" => self.max_input_size * 2 + ENVELOPE,
            _ => self.max_input_size + ENVELOPE,
        }
        .min(self.max_body_size)
    }

    fn setting(path: &str) -> &'static str {
        if is_streamed(path) {
            "LONGRUN_MAX_BODY_SIZE"
        } else {
            "LONGRUN_MAX_INPUT_SIZE"
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
pub(super) async fn bounded_body(
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
            return Some(too_large(max, &path).for_req(req).into_response())
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
    if !is_streamed(&path) {
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
pub(super) fn has_body(req: &poem::Request) -> bool {
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
    let streamed = is_streamed(req.uri().path());
    let len = req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    streamed && len.is_none_or(|n| n > STRICT_STREAMED_MAX)
}

/// A body announced larger than the limit is refused before it is read (bodies without a length
/// are counted as they are read by the handlers that stream them).
pub(super) fn body_too_large(state: &AppState, req: &poem::Request) -> Option<Response> {
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

/// The 413 of a body past `max`, the limit of `path`'s route.
pub(crate) fn too_large(max: u64, path: &str) -> Problem {
    Problem::new(
        413,
        "payload-too-large",
        format!(
            "the body is larger than the limit of {max} bytes ({})",
            Limits::setting(path)
        ),
    )
}
