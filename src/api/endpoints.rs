//! The health of the endpoints deliveries go to: listed per tenant (the operator's key sees
//! every tenant's), and switched on again after the service switched one off.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::{Enum, Object, OpenApi};

use super::access::{Key, Read, Submit};
use super::docs::{get_link, LinkDoc};
use super::wire::{base_url, negotiate, ApiResult, Encoding, Problem, Rep};
use super::{ApiTags, AppState};
use crate::store::Endpoint;

/// Whether deliveries to an endpoint are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum EndpointStateDoc {
    /// Deliveries are sent.
    Enabled,
    /// Switched off after failing for `LONGRUN_DELIVERY_DISABLE_AFTER` without a success: its
    /// deliveries are recorded as `disabled` and not sent.
    Disabled,
}

/// One endpoint of a tenant: where its deliveries go.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct EndpointDoc {
    /// Its id.
    pub id: String,
    /// The tenant whose deliveries go there.
    pub tenant: String,
    /// Scheme, host, port and path (a callback's query is not part of it).
    pub target: String,
    /// Whether deliveries to it are sent.
    pub state: EndpointStateDoc,
    /// When its current run of failed tries began (absent while its last try succeeded).
    pub failing_since: Option<DateTime<Utc>>,
    /// Its last successful try.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Its last failed try.
    pub last_error_at: Option<DateTime<Utc>>,
    /// What that try came to.
    pub last_error: Option<String>,
    /// When it was switched off.
    pub disabled_at: Option<DateTime<Utc>>,
    /// How many deliveries it missed were sent again (in the answer to `enable` only).
    pub redelivered: Option<u64>,
    /// `enable` while it is switched off.
    pub links: Vec<LinkDoc>,
}

/// The endpoints of a tenant, or of every tenant.
#[derive(Debug, Clone, Object)]
pub struct EndpointListDoc {
    /// By tenant and target.
    pub endpoints: Vec<EndpointDoc>,
    /// `self` and `deliveries`.
    pub links: Vec<LinkDoc>,
}

fn doc(e: Endpoint, base: &str, media: Option<&str>) -> EndpointDoc {
    let mut links = Vec::new();
    if !e.enabled {
        links.push(LinkDoc {
            rel: "enable".into(),
            href: format!("{base}/api/v1/endpoints/{}/enable", e.id),
            method: "POST".into(),
            media_type: media.map(str::to_string),
        });
    }
    EndpointDoc {
        id: e.id,
        tenant: e.owner,
        target: e.target,
        state: if e.enabled {
            EndpointStateDoc::Enabled
        } else {
            EndpointStateDoc::Disabled
        },
        failing_since: e.failing_since,
        last_success_at: e.last_success_at,
        last_error_at: e.last_error_at,
        last_error: e.last_error,
        disabled_at: e.disabled_at,
        redelivered: None,
        links,
    }
}

/// Deliveries sent again at most when an endpoint is switched on (the oldest first); the rest
/// stay `disabled` and can be sent one by one with `redeliver`.
const REDELIVER_ON_ENABLE: u64 = 1_000;

/// Endpoint health.
pub struct EndpointsApi {
    pub state: Arc<AppState>,
}

#[OpenApi(tag = "ApiTags::Jobs")]
impl EndpointsApi {
    /// Endpoints and their health
    ///
    /// Where the caller's deliveries go, one row per scheme, host, port and path: whether
    /// deliveries to it are sent, when its current run of failures began, its last success and
    /// last error. One that has failed for `LONGRUN_DELIVERY_DISABLE_AFTER` (5 days by default)
    /// without a success is switched off: its deliveries are recorded as `disabled`, not sent,
    /// until `enable`. A key of the operator's tenant (`LONGRUN_OPERATOR_TENANT`), or any
    /// caller of a service without keys, sees every tenant's, or one's with `tenant`.
    #[oai(
        path = "/api/v1/endpoints",
        method = "get",
        operation_id = "listEndpoints"
    )]
    async fn list(
        &self,
        key: Key<Read>,
        req: &Request,
        /// One tenant's endpoints (an operator's key may name any; another key only its own).
        #[oai(validator(min_length = 1, max_length = 64))]
        tenant: Query<Option<String>>,
        /// `json` or `xml` (overrides Accept).
        #[oai(name = "format")]
        _format: Query<Option<Encoding>>,
    ) -> ApiResult<EndpointListDoc> {
        let run = async {
            let enc = negotiate(req)?;
            let operator = self.state.operator_tenant.as_deref();
            let owner = key.tenant_scope(operator, tenant.0, "endpoints")?;
            let list = self.state.engine.endpoints(owner.as_deref()).await?;
            let base = base_url(req, self.state.public_url.as_deref());
            let m = Some(enc.media());
            Ok(Rep::new(
                EndpointListDoc {
                    endpoints: list.into_iter().map(|e| doc(e, &base, m)).collect(),
                    links: vec![
                        get_link("self", format!("{base}/api/v1/endpoints"), m),
                        get_link("deliveries", format!("{base}/api/v1/deliveries"), m),
                    ],
                },
                enc,
                "endpoints",
            ))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// Switch an endpoint on again
    ///
    /// Deliveries to it are sent again from now on, and those it missed while switched off
    /// (the oldest 1,000) are sent again at once, each from the start of its retry schedule.
    /// The answer counts them in `redelivered`. An endpoint that is on stays on (0 sent again).
    #[oai(
        path = "/api/v1/endpoints/:id/enable",
        method = "post",
        operation_id = "enableEndpoint"
    )]
    async fn enable(
        &self,
        key: Key<Submit>,
        req: &Request,
        /// The endpoint's id.
        #[oai(validator(min_length = 1, max_length = 64))]
        id: Path<String>,
        /// `json` or `xml` (overrides Accept).
        #[oai(name = "format")]
        _format: Query<Option<Encoding>>,
    ) -> ApiResult<EndpointDoc> {
        let run = async {
            let enc = negotiate(req)?;
            let missing = || Problem::not_found(format!("no endpoint with id `{}`", id.0));
            let operator = self.state.operator_tenant.as_deref();
            let found = self
                .state
                .engine
                .endpoint(&id.0)
                .await?
                .ok_or_else(missing)?;
            // Another tenant's endpoint is as absent as one that never was.
            if !key.sees_tenant(operator, &found.owner) {
                return Err(missing());
            }
            let redelivered = self
                .state
                .engine
                .enable_endpoint(&id.0, REDELIVER_ON_ENABLE)
                .await?;
            let now = self
                .state
                .engine
                .endpoint(&id.0)
                .await?
                .ok_or_else(missing)?;
            let base = base_url(req, self.state.public_url.as_deref());
            let mut d = doc(now, &base, Some(enc.media()));
            d.redelivered = Some(redelivered);
            Ok(Rep::new(d, enc, "endpoint"))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }
}
