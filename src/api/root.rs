//! The entry point and the list of operations.

use std::sync::Arc;

use poem::Request;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;

use super::access::{Key, Read};
use super::docs::{get_link, LinkDoc};
use super::wire::{base_url, negotiate, ApiResult, Problem, Rep};
use super::{ApiTags, AppState};

/// The entry point.
#[derive(Debug, Clone, Object)]
pub struct RootDoc {
    /// The service name.
    pub service: String,
    /// Its version.
    pub version: String,
    /// Every collection, the docs and the spec.
    pub links: Vec<LinkDoc>,
}

/// One registered operation.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct OperationDoc {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Stages of a run.
    pub stages: i32,
    /// JSON Schema of its input.
    pub input_schema: Value,
    /// Where to submit it.
    pub links: Vec<LinkDoc>,
}

/// The registered operations.
#[derive(Debug, Clone, Object)]
pub struct OperationsDoc {
    /// By name.
    pub operations: Vec<OperationDoc>,
}

/// Entry point resources.
pub struct RootApi {
    pub state: Arc<AppState>,
}

#[OpenApi(tag = "ApiTags::Service")]
impl RootApi {
    /// Entry point
    ///
    /// Links to every collection, the documentation and the OpenAPI document.
    #[oai(path = "/", method = "get", operation_id = "getRoot")]
    // Public: the one operation without a key.
    async fn root(&self, req: &Request) -> ApiResult<RootDoc> {
        let enc = negotiate(req).map_err(|p| p.for_req(req))?;
        let b = base_url(req, self.state.public_url.as_deref());
        let m = Some(enc.media());
        let post = |rel: &str, href: String| LinkDoc {
            rel: rel.into(),
            href,
            method: "POST".into(),
            media_type: m.map(str::to_string),
        };
        Ok(Rep::new(
            RootDoc {
                service: "longrun".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                links: vec![
                    get_link("self", format!("{b}/"), m),
                    get_link("jobs", format!("{b}/api/v1/jobs"), m),
                    get_link(
                        "events",
                        format!("{b}/api/v1/events"),
                        Some("text/event-stream"),
                    ),
                    get_link("stats", format!("{b}/api/v1/stats"), m),
                    get_link("operations", format!("{b}/api/v1/operations"), m),
                    post("actions", format!("{b}/api/v1/jobs/actions")),
                    post("imports", format!("{b}/api/v1/imports")),
                    post("comparisons", format!("{b}/api/v1/comparisons")),
                    post("exports", format!("{b}/api/v1/exports")),
                    get_link("tasks", format!("{b}/tasks"), m),
                    get_link("tools", format!("{b}/api/tools"), m),
                    get_link("docs", format!("{b}/docs"), Some("text/html")),
                    get_link("ui", format!("{b}/ui/"), Some("text/html")),
                    get_link(
                        "openapi",
                        format!("{b}/openapi.json"),
                        Some("application/json"),
                    ),
                    get_link(
                        "openapi:yaml",
                        format!("{b}/openapi.yaml"),
                        Some("application/yaml"),
                    ),
                ],
            },
            enc,
            "service",
        ))
    }

    /// Registered operations
    ///
    /// Every operation this service runs, with the JSON Schema of its input.
    #[oai(
        path = "/api/v1/operations",
        method = "get",
        operation_id = "listOperations"
    )]
    async fn operations(&self, _key: Key<Read>, req: &Request) -> ApiResult<OperationsDoc> {
        let enc = negotiate(req).map_err(|p: Problem| p.for_req(req))?;
        let b = base_url(req, self.state.public_url.as_deref());
        let ops = self
            .state
            .engine
            .registry()
            .all()
            .map(|op| {
                let href = match op.name() {
                    "import" => format!("{b}/api/v1/imports"),
                    "compare" => format!("{b}/api/v1/comparisons"),
                    "export" => format!("{b}/api/v1/exports"),
                    _ => format!("{b}/api/v1/jobs"),
                };
                OperationDoc {
                    name: op.name().into(),
                    description: op.description().into(),
                    stages: op.stages(),
                    input_schema: op.input_schema(),
                    links: vec![LinkDoc {
                        rel: "submit".into(),
                        href,
                        method: "POST".into(),
                        media_type: Some(enc.media().into()),
                    }],
                }
            })
            .collect();
        Ok(Rep::new(
            OperationsDoc { operations: ops },
            enc,
            "operations",
        ))
    }
}
