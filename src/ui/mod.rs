//! The dashboard at `/ui`: plain HTML, CSS and JavaScript modules compiled into the binary. The
//! page speaks only the public HTTP API (it starts at `GET /` and follows links), so nothing here
//! touches the engine; this room only serves files.

use std::sync::OnceLock;

use poem::http::{header, Method, StatusCode};
use poem::{Endpoint, Request, Response};
use sha2::{Digest, Sha256};

use crate::api::wire::Problem;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Every file of the dashboard; `index.html` is the page itself.
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("assets/index.html"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/api.js"),
    },
    Asset {
        name: "events.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/events.js"),
    },
    Asset {
        name: "dom.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/dom.js"),
    },
    Asset {
        name: "overview.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/overview.js"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("assets/icon.svg"),
    },
];

/// The page may load and reach only its own origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Strong validators, one per asset, from its bytes.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let d = Sha256::digest(a.body);
                let hex: String = d[..12].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

/// The endpoint nested at `/ui`: `/ui` redirects to `/ui/`, which is the page; `/ui/{file}` are
/// its assets; `/ui/jobs/{id}` is the page too (it opens that job). Answers carry an `ETag` (`If-None-Match` gives `304`) and `Cache-Control:
/// no-cache`, so a new binary's files are picked up at once.
pub fn endpoint() -> impl Endpoint<Output = Response> {
    poem::endpoint::make_sync(|req: Request| -> poem::Result<Response> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Err(Problem::new(
                405,
                "method-not-allowed",
                format!("{} only answers GET", req.original_uri().path()),
            )
            .for_req(&req)
            .into());
        }
        let original = req.original_uri().path();
        let rest = req.uri().path().trim_start_matches('/');
        if rest.is_empty() && !original.ends_with('/') {
            // The page's assets are relative to `/ui/`.
            return Ok(Response::builder()
                .status(StatusCode::PERMANENT_REDIRECT)
                .header(header::LOCATION, format!("{original}/"))
                .finish());
        }
        // `/ui/jobs/{id}` is a deep link to one job: the page, whose relative references then
        // resolve under `/ui/jobs/`, so the assets are answered there too.
        let name = match rest.strip_prefix("jobs/") {
            Some(id) if !id.is_empty() && !id.contains('/') => {
                if ASSETS.iter().any(|a| a.name == id) {
                    id
                } else {
                    "index.html"
                }
            }
            _ if rest.is_empty() => "index.html",
            _ => rest,
        };
        let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
            return Err(
                Problem::not_found(format!("the dashboard has no file `{name}`"))
                    .for_req(&req)
                    .into(),
            );
        };
        let (asset, etag) = (&ASSETS[i], &etags()[i]);
        let fresh = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
        let builder = Response::builder()
            .header(header::ETAG, etag.as_str())
            .header(header::CACHE_CONTROL, "no-cache")
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .header(header::CONTENT_SECURITY_POLICY, CSP)
            .header(header::REFERRER_POLICY, "no-referrer");
        if fresh {
            return Ok(builder.status(StatusCode::NOT_MODIFIED).finish());
        }
        Ok(builder.content_type(asset.content_type).body(asset.body))
    })
}
