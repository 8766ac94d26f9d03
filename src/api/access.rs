//! The door: who is calling (an API key, or anyone while the service runs open), whether the
//! key's scope allows the request, and the per-key submission rate. Handlers read the caller's
//! tenant with `wire::caller` and answer 404 for another tenant's objects.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use poem::http::header;
use poem::{IntoResponse, Request, Response};

use super::wire::Problem;
use super::AppState;
use crate::domain::access::{key_digest, rule, Bucket, Rate, Scope, OPEN_TENANT};

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: String,
    pub scope: Scope,
    /// The key's id; None while the service runs open.
    pub key: Option<String>,
}

/// Per-key token buckets of one instance.
pub struct Gate {
    rate: Option<Rate>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Gate {
    pub fn new(rate: Option<Rate>) -> Gate {
        Gate {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take a submission from `key`'s bucket, or the seconds to wait.
    fn take(&self, key: &str) -> Result<(), u64> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            buckets.clear();
        }
        let b = buckets
            .entry(key.to_string())
            .or_insert_with(|| Bucket::full(rate, now));
        b.take(rate, now)
            .map_err(|wait| wait.as_secs_f64().ceil().max(1.0) as u64)
    }
}

fn bearer(req: &Request) -> Option<&str> {
    let auth = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (kind, token) = auth.trim().split_once(' ')?;
    kind.eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A link signed for anyone (a share link or a signed download): its handler checks it.
fn signed(req: &Request) -> bool {
    let q = req.uri().query().unwrap_or("");
    let has = |k: &str| {
        q.split('&')
            .any(|kv| kv.split_once('=').map(|(a, _)| a) == Some(k))
    };
    matches!(
        *req.method(),
        poem::http::Method::GET | poem::http::Method::HEAD
    ) && has("sig")
        && has("expires")
}

fn unauthorized(req: &Request, detail: &str) -> Response {
    let mut r = Problem::new(401, "unauthorized", detail)
        .for_req(req)
        .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"longrun\""),
    );
    r
}

/// Admit a request: on success the `Caller` (if any) is in its extensions; otherwise the
/// answer (401, 403, 429 or 503) to send instead.
pub async fn admit(state: &AppState, req: &mut Request) -> Result<(), Response> {
    // In-process background requests carry the identity they were submitted with.
    if let Some(run_as) = req.extensions().get::<super::compat::bgrs::RunAs>() {
        let tenant = run_as.0.clone();
        req.extensions_mut().insert(Caller {
            tenant,
            scope: Scope::Read,
            key: None,
        });
        return Ok(());
    }
    let need = rule(
        req.method().as_str(),
        req.uri().path(),
        req.uri().query().unwrap_or(""),
        super::compat::bgrs::wants_background(req),
    );
    let store = state.engine.store();
    let unavailable = |e: crate::store::StoreError| {
        Problem::new(
            503,
            "unavailable",
            format!("storage is not available right now: {e}"),
        )
        .for_req(req)
        .into_response()
    };
    let key = match bearer(req) {
        Some(token) => store
            .key_by_digest(&key_digest(token))
            .await
            .map_err(unavailable)?,
        None => None,
    };
    let caller = match key {
        Some(k) => Caller {
            tenant: k.tenant,
            scope: Scope::parse(&k.scope).unwrap_or(Scope::Read),
            key: Some(k.id),
        },
        None => {
            let open = !store.any_keys().await.map_err(unavailable)?;
            if open {
                Caller {
                    tenant: OPEN_TENANT.into(),
                    scope: Scope::Admin,
                    key: None,
                }
            } else if need.scope.is_none() || signed(req) {
                return Ok(());
            } else if bearer(req).is_some() {
                return Err(unauthorized(
                    req,
                    "this API key is not known or was revoked",
                ));
            } else {
                return Err(unauthorized(
                    req,
                    "an API key is needed: send `Authorization: Bearer <key>`",
                ));
            }
        }
    };
    if let Some(scope) = need.scope {
        if caller.scope < scope {
            return Err(Problem::new(
                403,
                "insufficient-scope",
                format!(
                    "this key's scope is `{}`; {} {} needs `{}`",
                    caller.scope.as_str(),
                    req.method(),
                    req.uri().path(),
                    scope.as_str()
                ),
            )
            .for_req(req)
            .into_response());
        }
    }
    if need.submission {
        if let Some(key) = &caller.key {
            if let Err(wait) = state.gate.take(key) {
                let mut p = Problem::new(
                    429,
                    "too-many-requests",
                    format!(
                        "this key has used its submissions for now (LONGRUN_RATE_LIMIT); retry in {wait} s"
                    ),
                )
                .for_req(req);
                p.retry_after = Some(wait);
                return Err(p.into_response());
            }
        }
    }
    req.extensions_mut().insert(caller);
    Ok(())
}

/// The job `id` if the caller's tenant owns it: 404 for a missing or foreign job (never 403, so
/// ids leak nothing), 410 for the caller's own deleted job.
pub async fn job_for(
    state: &AppState,
    req: &Request,
    id: uuid::Uuid,
) -> Result<crate::domain::Job, Problem> {
    match state.engine.find(id).await? {
        Some(j) if super::wire::owns(req, &j.owner) => {
            if j.status == crate::domain::JobStatus::Deleted {
                Err(crate::engine::EngineError::Gone(id).into())
            } else {
                Ok(j)
            }
        }
        _ => Err(Problem::not_found(format!("no job with id `{id}`"))),
    }
}

/// Like `job_for`, from the engine's shared snapshot (the job with its files).
pub async fn snapshot_for(
    state: &AppState,
    req: &Request,
    id: uuid::Uuid,
) -> Result<crate::store::Snapshot, Problem> {
    match state.engine.snapshot(id).await? {
        Some(s) if super::wire::owns(req, &s.0.owner) => {
            if s.0.status == crate::domain::JobStatus::Deleted {
                Err(crate::engine::EngineError::Gone(id).into())
            } else {
                Ok(s)
            }
        }
        _ => Err(Problem::not_found(format!("no job with id `{id}`"))),
    }
}
