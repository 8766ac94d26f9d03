//! `GET /api/v1/stats`: the numbers of the caller's jobs (an operator's, of every tenant or of
//! one) and the service's instances, from counts the database keeps, never by scanning jobs.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::{Object, OpenApi};

use super::access::{Key, Read};
use super::docs::{get_link, JobStatusDoc, LinkDoc};
use super::wire::{base_url, negotiate, ApiResult, Encoding, Problem, Rep};
use super::{ApiTags, AppState};
use crate::domain::stats::{NodeStats, OperationStats, Period, Stats, StatusCount};

/// Jobs in one status.
#[derive(Debug, Clone, Object)]
pub struct StatusCountDoc {
    /// The status.
    pub status: JobStatusDoc,
    /// How many jobs are in it.
    pub count: i64,
}

/// Run times of one operation's jobs that ended (SUCCESS or FAILED) in the last hour, from a
/// histogram whose buckets are within about 9 % of the times in them.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct RunTimeDoc {
    /// Runs measured.
    pub samples: i64,
    /// The median run time, in milliseconds (absent without samples).
    #[oai(skip_serializing_if_is_none)]
    pub p50_ms: Option<i64>,
    /// The 95th percentile, in milliseconds (absent without samples).
    #[oai(skip_serializing_if_is_none)]
    pub p95_ms: Option<i64>,
}

/// The numbers of one operation.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct OperationStatsDoc {
    /// Its name.
    pub operation: String,
    /// Its jobs by status, every status listed.
    pub counts: Vec<StatusCountDoc>,
    /// Queue depth: its jobs waiting for a worker.
    pub queued: i64,
    /// Its jobs a worker runs now (STARTED, PROCESSING or SAVING).
    pub running: i64,
    /// When its oldest queued job was submitted (absent when none waits).
    #[oai(skip_serializing_if_is_none)]
    pub oldest_queued_at: Option<DateTime<Utc>>,
    /// How long its oldest queued job has waited, in seconds (absent when none waits).
    #[oai(skip_serializing_if_is_none)]
    pub oldest_queued_seconds: Option<f64>,
    /// Run times over the last hour.
    pub run_time: RunTimeDoc,
}

/// Jobs that ended in one minute or hour.
#[derive(Debug, Clone, Object)]
pub struct PeriodDoc {
    /// When the minute or hour starts.
    pub start: DateTime<Utc>,
    /// Jobs that ended SUCCESS.
    pub completed: i64,
    /// Jobs that ended FAILED.
    pub failed: i64,
    /// Jobs that ended CANCELLED.
    pub cancelled: i64,
}

/// One instance of the service.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct NodeDoc {
    /// Its id, the one a running job's lease names.
    pub id: String,
    /// `all` (API and workers), `api` or `worker`.
    pub role: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it last said it was alive (every 5 s).
    pub heartbeat_at: DateTime<Utc>,
    /// Whether it said so in the last 15 s.
    pub alive: bool,
    /// The caller's jobs it runs now.
    pub running: i64,
}

/// The numbers of the collection.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct StatsDoc {
    /// When these numbers were read.
    pub generated_at: DateTime<Utc>,
    /// The tenant counted; absent when an operator counts every tenant.
    #[oai(skip_serializing_if_is_none)]
    pub tenant: Option<String>,
    /// Jobs in the collection.
    pub total: i64,
    /// Jobs by status, every status listed.
    pub counts: Vec<StatusCountDoc>,
    /// By operation, those with jobs in the collection.
    pub operations: Vec<OperationStatsDoc>,
    /// Jobs ended per minute over the last 60 minutes, oldest first; the last is this minute.
    pub per_minute: Vec<PeriodDoc>,
    /// Jobs ended per hour over the last 48 hours, oldest first; the last is this hour.
    pub per_hour: Vec<PeriodDoc>,
    /// The instances heard from in the last hour.
    pub nodes: Vec<NodeDoc>,
    /// `self`, `jobs`, `events`.
    pub links: Vec<LinkDoc>,
}

fn counts(c: Vec<StatusCount>) -> Vec<StatusCountDoc> {
    c.into_iter()
        .map(|c| StatusCountDoc {
            status: c.status.into(),
            count: c.count,
        })
        .collect()
}

fn periods(p: Vec<Period>) -> Vec<PeriodDoc> {
    p.into_iter()
        .map(|p| PeriodDoc {
            start: p.start,
            completed: p.completed,
            failed: p.failed,
            cancelled: p.cancelled,
        })
        .collect()
}

impl StatsDoc {
    fn new(s: Stats, tenant: Option<String>, links: Vec<LinkDoc>) -> StatsDoc {
        let now = s.generated_at;
        StatsDoc {
            generated_at: now,
            tenant,
            total: s.total,
            counts: counts(s.counts),
            operations: s
                .operations
                .into_iter()
                .map(|o: OperationStats| OperationStatsDoc {
                    operation: o.operation,
                    counts: counts(o.counts),
                    queued: o.queued,
                    running: o.running,
                    oldest_queued_seconds: o
                        .oldest_queued_at
                        .map(|t| ((now - t).num_milliseconds().max(0) as f64) / 1000.0),
                    oldest_queued_at: o.oldest_queued_at,
                    run_time: RunTimeDoc {
                        samples: o.samples,
                        p50_ms: o.p50_ms,
                        p95_ms: o.p95_ms,
                    },
                })
                .collect(),
            per_minute: periods(s.per_minute),
            per_hour: periods(s.per_hour),
            nodes: s
                .nodes
                .into_iter()
                .map(|n: NodeStats| NodeDoc {
                    id: n.node.id,
                    role: n.node.role,
                    started_at: n.node.started_at,
                    heartbeat_at: n.node.heartbeat_at,
                    alive: n.alive,
                    running: n.running,
                })
                .collect(),
            links,
        }
    }
}

/// The collection's numbers.
pub struct StatsApi {
    pub state: Arc<AppState>,
}

#[OpenApi(tag = "ApiTags::Jobs")]
impl StatsApi {
    /// Numbers of the collection
    ///
    /// The caller's jobs by status and by operation, each operation's queue depth, oldest
    /// queued job and run times (p50, p95) over the last hour, the jobs ended per minute over
    /// the last hour and per hour over the last 48 hours, and the service's instances with
    /// their heartbeats and the caller's jobs each runs. Read from counts the database keeps
    /// as jobs change, not by counting jobs, so it stays cheap on a large collection.
    ///
    /// A key of the operator's tenant (`LONGRUN_OPERATOR_TENANT`), or any caller of a service
    /// without keys, counts every tenant, or one with `tenant`; any other key counts its own
    /// tenant only, and naming another is refused with 403.
    #[oai(path = "/api/v1/stats", method = "get", operation_id = "getStats")]
    async fn stats(
        &self,
        key: Key<Read>,
        req: &Request,
        /// One tenant's numbers (an operator's key may name any; another key only its own).
        #[oai(validator(min_length = 1, max_length = 64))]
        tenant: Query<Option<String>>,
        /// Minutes in `perMinute`, up to this one (1 to 60, default 60).
        #[oai(validator(minimum(value = "1"), maximum(value = "60")))]
        minutes: Query<Option<i64>>,
        /// Hours in `perHour`, up to this one (1 to 48, default 48).
        #[oai(validator(minimum(value = "1"), maximum(value = "48")))]
        hours: Query<Option<i64>>,
        /// `json` or `xml` (overrides Accept).
        #[oai(name = "format")]
        _format: Query<Option<Encoding>>,
    ) -> ApiResult<StatsDoc> {
        let run = async {
            let enc = negotiate(req)?;
            let tenant =
                key.tenant_scope(self.state.operator_tenant.as_deref(), tenant.0, "numbers")?;
            let window = (minutes.0.unwrap_or(60), hours.0.unwrap_or(48));
            if !(1..=60).contains(&window.0) || !(1..=48).contains(&window.1) {
                return Err(Problem::bad_request(
                    "minutes must be between 1 and 60, and hours between 1 and 48",
                ));
            }
            let stats = self.state.engine.stats(tenant.as_deref(), window).await?;
            let b = base_url(req, self.state.public_url.as_deref());
            let m = Some(enc.media());
            // `self` keeps the query as it was read.
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
                q.append_pair(&k, &v);
            }
            let q = q.finish();
            let this = if q.is_empty() {
                format!("{b}/api/v1/stats")
            } else {
                format!("{b}/api/v1/stats?{q}")
            };
            let links = vec![
                get_link("self", this, m),
                get_link("jobs", format!("{b}/api/v1/jobs"), m),
                get_link(
                    "events",
                    format!("{b}/api/v1/events"),
                    Some("text/event-stream"),
                ),
            ];
            Ok(Rep::new(StatsDoc::new(stats, tenant, links), enc, "stats")
                .header(poem::http::header::CACHE_CONTROL, "no-cache"))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }
}
