//! The delivery log: each callback and notification of a job with every try (time, HTTP status
//! or error, duration, next try), the deliveries of a tenant (or, for the operator, of every
//! tenant) by state, and a redelivery on request.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::{Enum, Object, OpenApi};
use uuid::Uuid;

use super::access::{job_for, Key, Read, Submit};
use super::docs::{get_link, LinkDoc};
use super::jobs::id_of;
use super::wire::{base_url, negotiate, ApiResult, Encoding, Problem, Rep};
use super::{ApiTags, AppState};
use crate::domain::job_href;
use crate::domain::signals::DeliveryStatus;
use crate::store::DeliveryState;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum DeliveryStateDoc {
    /// Not tried yet.
    Pending,
    /// Tried and failed; the next try is due at `nextTryAt`.
    Retrying,
    /// The receiver answered 2xx.
    Delivered,
    /// No tries left, or the receiver answered 410 Gone.
    GivenUp,
    /// Not sent: its endpoint was switched off after failing for `LONGRUN_DELIVERY_DISABLE_AFTER`
    /// (see `GET /api/v1/endpoints`).
    Disabled,
}

impl From<DeliveryStatus> for DeliveryStateDoc {
    fn from(s: DeliveryStatus) -> Self {
        match s {
            DeliveryStatus::Pending => DeliveryStateDoc::Pending,
            DeliveryStatus::Retrying => DeliveryStateDoc::Retrying,
            DeliveryStatus::Delivered => DeliveryStateDoc::Delivered,
            DeliveryStatus::GivenUp => DeliveryStateDoc::GivenUp,
            DeliveryStatus::Disabled => DeliveryStateDoc::Disabled,
        }
    }
}

impl From<DeliveryStateDoc> for DeliveryStatus {
    fn from(s: DeliveryStateDoc) -> Self {
        match s {
            DeliveryStateDoc::Pending => DeliveryStatus::Pending,
            DeliveryStateDoc::Retrying => DeliveryStatus::Retrying,
            DeliveryStateDoc::Delivered => DeliveryStatus::Delivered,
            DeliveryStateDoc::GivenUp => DeliveryStatus::GivenUp,
            DeliveryStateDoc::Disabled => DeliveryStatus::Disabled,
        }
    }
}

/// One try of a delivery.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AttemptDoc {
    /// When the try started.
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// What went wrong when nothing answered (refused, timed out, …), or why an answer ended
    /// the tries.
    pub error: Option<String>,
    /// How long the try took, in milliseconds.
    pub duration_ms: i64,
    /// When the next try was due after this one (absent: delivered or given up).
    pub next_try_at: Option<DateTime<Utc>>,
}

/// One delivery: a GET callback (seed 002) or a notification event (seed 004).
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct DeliveryDoc {
    /// Its `webhook-id`, the same on every try and redelivery.
    pub id: String,
    /// The job it tells of.
    pub job_id: Uuid,
    /// `callback` or `notification`.
    pub kind: String,
    /// `GET` (callback) or `POST` (notification).
    pub method: String,
    /// Where it is sent.
    pub target: String,
    /// Where it stands.
    pub state: DeliveryStateDoc,
    /// When it was made (the job's end).
    pub created_time: DateTime<Utc>,
    /// When the next try is due, while one is.
    pub next_try_at: Option<DateTime<Utc>>,
    /// Every try, oldest first.
    pub attempts: Vec<AttemptDoc>,
    /// `operator:subject` (the job) and `redeliver`.
    pub links: Vec<LinkDoc>,
}

/// A job's deliveries.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct JobDeliveriesDoc {
    /// The job.
    pub job_id: Uuid,
    /// Its deliveries, oldest first (none when it asked for no callback or notification, or
    /// has not ended yet).
    pub deliveries: Vec<DeliveryDoc>,
    /// `self` and `operator:subject`.
    pub links: Vec<LinkDoc>,
}

/// A page of deliveries.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeliveryListDoc {
    /// The deliveries of this page, newest first.
    pub deliveries: Vec<DeliveryDoc>,
    /// `self`, and `next` while more follow.
    pub links: Vec<LinkDoc>,
}

fn doc(d: DeliveryState, base: &str, media: Option<&str>) -> DeliveryDoc {
    let job = job_href(base, d.delivery.job_id);
    let pending = matches!(d.status, DeliveryStatus::Pending | DeliveryStatus::Retrying);
    DeliveryDoc {
        links: vec![
            get_link("operator:subject", job, media),
            LinkDoc {
                rel: "redeliver".into(),
                href: format!("{base}/api/v1/deliveries/{}/redeliver", d.delivery.id),
                method: "POST".into(),
                media_type: media.map(str::to_string),
            },
        ],
        method: d.delivery.method().to_string(),
        id: d.delivery.id,
        job_id: d.delivery.job_id,
        kind: d.delivery.kind.as_str().to_string(),
        target: d.delivery.url,
        state: d.status.into(),
        created_time: d.created,
        next_try_at: pending.then_some(d.next_at),
        attempts: d
            .tries
            .into_iter()
            .map(|a| AttemptDoc {
                at: a.at,
                status: a.status,
                error: a.error,
                duration_ms: a.duration_ms,
                next_try_at: a.next_at,
            })
            .collect(),
    }
}

/// Deliveries listed at most per page.
const PAGE_MAX: u64 = 1000;

/// The delivery log.
pub struct DeliveriesApi {
    pub state: Arc<AppState>,
}

#[OpenApi(tag = "ApiTags::Jobs")]
impl DeliveriesApi {
    /// A job's deliveries
    ///
    /// Each callback and notification the job asked for (made when it ended), with its
    /// `webhook-id`, target, state (`pending`, `retrying`, `delivered`, `given_up`) and every
    /// try: its time, the receiver's HTTP status or the error, how long it took and when the
    /// next was due. Linked from the job as `deliveries`.
    #[oai(
        path = "/api/v1/jobs/:id/deliveries",
        method = "get",
        operation_id = "getJobDeliveries"
    )]
    async fn job_deliveries(
        &self,
        key: Key<Read>,
        req: &Request,
        id: Path<String>,
        /// `json` or `xml` (overrides Accept).
        #[oai(name = "format")]
        _format: Query<Option<Encoding>>,
    ) -> ApiResult<JobDeliveriesDoc> {
        let run = async {
            let id = id_of(&id)?;
            let enc = negotiate(req)?;
            job_for(&self.state, &key, id).await?;
            let base = base_url(req, self.state.public_url.as_deref());
            let m = Some(enc.media());
            let list = self.state.engine.job_deliveries(id).await?;
            let me = job_href(&base, id);
            Ok(Rep::new(
                JobDeliveriesDoc {
                    job_id: id,
                    deliveries: list.into_iter().map(|d| doc(d, &base, m)).collect(),
                    links: vec![
                        get_link("self", format!("{me}/deliveries"), m),
                        get_link("operator:subject", me, m),
                    ],
                },
                enc,
                "deliveries",
            ))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// Deliveries by state
    ///
    /// The deliveries of the caller's jobs, newest first, of one state if `state` is given (for
    /// instance every `given_up` one, to send them again). A key of the operator's tenant
    /// (`LONGRUN_OPERATOR_TENANT`), or any caller of a service without keys, lists every
    /// tenant's, or one's with `tenant`; another key lists its own tenant's only.
    #[oai(
        path = "/api/v1/deliveries",
        method = "get",
        operation_id = "listDeliveries"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        key: Key<Read>,
        req: &Request,
        /// Only deliveries in this state.
        state: Query<Option<DeliveryStateDoc>>,
        /// One tenant's deliveries (an operator's key may name any; another key only its own).
        #[oai(validator(min_length = 1, max_length = 64))]
        tenant: Query<Option<String>>,
        /// Deliveries per page (1 to 1000, default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u64>>,
        /// Only deliveries listed after this one (the `next` link carries it).
        #[oai(validator(min_length = 1, max_length = 64))]
        before: Query<Option<String>>,
        /// `json` or `xml` (overrides Accept).
        #[oai(name = "format")]
        _format: Query<Option<Encoding>>,
    ) -> ApiResult<DeliveryListDoc> {
        let run = async {
            let enc = negotiate(req)?;
            let tenant = key.tenant_scope(
                self.state.operator_tenant.as_deref(),
                tenant.0,
                "deliveries",
            )?;
            let limit = limit.0.unwrap_or(100).clamp(1, PAGE_MAX);
            let list = self
                .state
                .engine
                .deliveries_in(
                    state.0.map(Into::into),
                    tenant.as_deref(),
                    before.0.as_deref(),
                    limit,
                )
                .await?;
            let base = base_url(req, self.state.public_url.as_deref());
            let m = Some(enc.media());
            let query = |before: Option<&str>| {
                let mut q = url::form_urlencoded::Serializer::new(String::new());
                if let Some(s) = state.0 {
                    q.append_pair("state", DeliveryStatus::from(s).as_str());
                }
                if let Some(t) = &tenant {
                    if key.sees_all_tenants(self.state.operator_tenant.as_deref()) {
                        q.append_pair("tenant", t);
                    }
                }
                if limit != 100 {
                    q.append_pair("limit", &limit.to_string());
                }
                if let Some(b) = before {
                    q.append_pair("before", b);
                }
                let q = q.finish();
                if q.is_empty() {
                    format!("{base}/api/v1/deliveries")
                } else {
                    format!("{base}/api/v1/deliveries?{q}")
                }
            };
            let mut links = vec![get_link("self", query(before.0.as_deref()), m)];
            if list.len() as u64 == limit {
                if let Some(last) = list.last() {
                    links.push(get_link("next", query(Some(&last.delivery.id)), m));
                }
            }
            Ok(Rep::new(
                DeliveryListDoc {
                    deliveries: list.into_iter().map(|d| doc(d, &base, m)).collect(),
                    links,
                },
                enc,
                "deliveries",
            ))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// Send a delivery again
    ///
    /// Sends the delivery again as soon as a sender is free: the same `webhook-id` (a receiver
    /// that keeps the ids it handled sees a repeat), a new `webhook-timestamp` and signature,
    /// and the retry schedule from its start; each try is added to its log. Refused with 409
    /// while a try of it is under way.
    #[oai(
        path = "/api/v1/deliveries/:id/redeliver",
        method = "post",
        operation_id = "redeliver"
    )]
    async fn redeliver(
        &self,
        key: Key<Submit>,
        req: &Request,
        /// The delivery's `webhook-id`.
        #[oai(validator(min_length = 1, max_length = 64))]
        id: Path<String>,
        /// `json` or `xml` (overrides Accept).
        #[oai(name = "format")]
        _format: Query<Option<Encoding>>,
    ) -> ApiResult<DeliveryDoc, 202> {
        let run = async {
            let enc = negotiate(req)?;
            let missing = || Problem::not_found(format!("no delivery with id `{}`", id.0));
            let found = self
                .state
                .engine
                .delivery(&id.0)
                .await?
                .ok_or_else(missing)?;
            // Another tenant's delivery is as absent as one that never was; the operator, who
            // lists every tenant's, may send any again.
            if !key.sees_all_tenants(self.state.operator_tenant.as_deref()) {
                job_for(&self.state, &key, found.delivery.job_id)
                    .await
                    .map_err(|p| {
                        if matches!(p.status, 404 | 410) {
                            missing()
                        } else {
                            p
                        }
                    })?;
            }
            if !self.state.engine.redeliver(&id.0).await? {
                return Err(Problem::new(
                    409,
                    "delivery-under-way",
                    "a try of this delivery is under way; ask again when it has ended",
                ));
            }
            let now = self
                .state
                .engine
                .delivery(&id.0)
                .await?
                .ok_or_else(missing)?;
            let base = base_url(req, self.state.public_url.as_deref());
            Ok(Rep::new(
                doc(now, &base, Some(enc.media())),
                enc,
                "delivery",
            ))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }
}
