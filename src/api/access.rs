//! The door, in two steps that both live here.
//!
//! 1. **Who calls** — `authenticate`, before routing, for every request: the credential (the
//!    bearer key, nothing else) becomes the request's `Door`: a key's tenant and scope, the open
//!    tenant while no key exists, or nobody. It refuses nothing but an unavailable store.
//! 2. **What the matched operation needs** — after routing, on the operation itself: every
//!    handler that is not public takes a `Key<Need>` (or a `KeyOrLink`) as its first parameter,
//!    declared beside its handler. Extracting it answers 401 (no or unknown key), 403 (too small a
//!    scope) or 429 (a submission over the key's rate), before any other parameter or the body is
//!    read. It is also the only way a handler learns the caller's tenant: `Caller` has no public
//!    constructor, and nothing in a body, an input, a query or another header is read for it.
//!
//! A handler whose effect depends on a decoded parameter (seed 003's `/tasks/{n}?prune=true`)
//! asks for more with `Key::at_least`, on the value it is about to act on.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use poem::http::header;
use poem::{IntoResponse, Request, RequestBody, Response};
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use super::wire::Problem;
use super::AppState;
use crate::domain::access::{key_digest, Bucket, Rate, Scope, OPEN_TENANT};

/// The authenticated caller of a request: a tenant and the scope its credential grants.
#[derive(Debug, Clone)]
pub struct Caller {
    tenant: String,
    scope: Scope,
    /// The key's id; None while the service runs open and for in-process requests.
    key: Option<String>,
    /// A background request's inner GET, run in-process for the tenant that submitted it.
    in_process: bool,
}

impl Caller {
    /// The tenant the caller acts for.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The owner to store on what the caller creates.
    pub fn owner(&self) -> Option<String> {
        Some(self.tenant.clone())
    }

    /// Whether the caller may see an object of tenant `owner` (jobs made before tenants
    /// existed belong to the open tenant). Others get a 404, never a 403.
    pub fn owns(&self, owner: &Option<String>) -> bool {
        owner.as_deref().unwrap_or(OPEN_TENANT) == self.tenant
    }

    /// Whether the caller may see every tenant's numbers (`/metrics`): the open service's
    /// caller, or a key of the operator's tenant (`LONGRUN_OPERATOR_TENANT`).
    pub fn sees_all_tenants(&self, operator: Option<&str>) -> bool {
        (self.key.is_none() && !self.in_process) || operator == Some(self.tenant.as_str())
    }

    /// Whether the caller may see one object of tenant `owner` that the operator may see too
    /// (an endpoint): its own, or any as the operator. Others get a 404, never a 403.
    pub fn sees_tenant(&self, operator: Option<&str>, owner: &str) -> bool {
        self.sees_all_tenants(operator) || owner == self.tenant
    }

    /// The tenant whose collection-wide numbers or lists (`what`) the caller reads, given the
    /// `tenant` it asked for: the operator any one or, asking none, every tenant (`None`);
    /// another caller its own, and naming another is refused with 403. The one reading of
    /// `?tenant=` for stats, deliveries and endpoints.
    pub fn tenant_scope(
        &self,
        operator: Option<&str>,
        asked: Option<String>,
        what: &str,
    ) -> Result<Option<String>, Problem> {
        match (asked, self.sees_all_tenants(operator)) {
            (asked, true) => Ok(asked),
            (Some(t), false) if t != self.tenant() => Err(Problem::new(
                403,
                "forbidden",
                format!("only a key of the operator's tenant may read another tenant's {what}"),
            )),
            (_, false) => Ok(Some(self.tenant().to_string())),
        }
    }

    /// Whether this is a background request's inner GET.
    pub fn in_process(&self) -> bool {
        self.in_process
    }
}

/// What the credential of a request says, put in its extensions by `authenticate` (or by
/// `run_as` for an in-process request) and read only by this module.
#[derive(Clone)]
struct Door {
    who: Who,
    /// The submission rates; None for an in-process request, which never submits.
    gate: Option<Arc<Gate>>,
}

#[derive(Clone)]
enum Who {
    Caller(Caller),
    /// No key was sent, and keys exist.
    Nobody,
    /// A bearer key was sent that is not known (or was revoked).
    UnknownKey,
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

/// Step 1: who calls. Sets the request's `Door`; only an unavailable store is an answer here.
pub async fn authenticate(state: &AppState, req: &mut Request) -> Result<(), Response> {
    if req.extensions().get::<Door>().is_some() {
        // An in-process request: `run_as` decided already.
        return Ok(());
    }
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
    let who = match bearer(req) {
        Some(token) => match store
            .key_by_digest(&key_digest(token))
            .await
            .map_err(unavailable)?
        {
            Some(k) => Who::Caller(Caller {
                tenant: k.tenant,
                scope: Scope::parse(&k.scope).unwrap_or(Scope::Read),
                key: Some(k.id),
                in_process: false,
            }),
            None if store.any_keys().await.map_err(unavailable)? => Who::UnknownKey,
            None => open_caller(),
        },
        None if store.any_keys().await.map_err(unavailable)? => Who::Nobody,
        None => open_caller(),
    };
    req.extensions_mut().insert(Door {
        who,
        gate: Some(state.gate.clone()),
    });
    Ok(())
}

/// While no key exists, everyone is the open tenant with every right.
fn open_caller() -> Who {
    Who::Caller(Caller {
        tenant: OPEN_TENANT.into(),
        scope: Scope::Admin,
        key: None,
        in_process: false,
    })
}

/// Mark an in-process request (a background request's inner GET or POST) as made by `owner`,
/// with `scope`: `read` for a GET, `submit` for a POST — never more than the submitter, who
/// needed at least `submit`.
pub fn run_as(req: &mut Request, owner: &str, scope: Scope) {
    debug_assert!(scope != Scope::Admin);
    req.extensions_mut().insert(Door {
        who: Who::Caller(Caller {
            tenant: owner.to_string(),
            scope: scope.min(Scope::Submit),
            key: None,
            in_process: true,
        }),
        gate: None,
    });
}

/// The tenant the request's credential names, before any operation decided what it may do: the
/// `Idempotency-Key` middleware keeps keys per tenant. None without a valid credential.
pub fn authenticated_tenant(req: &Request) -> Option<&str> {
    match req.extensions().get::<Door>().map(|d| &d.who) {
        Some(Who::Caller(c)) => Some(&c.tenant),
        _ => None,
    }
}

/// Whether `req` is a background request's inner GET (made by `run_as`).
pub fn is_in_process(req: &Request) -> bool {
    matches!(
        req.extensions().get::<Door>().map(|d| &d.who),
        Some(Who::Caller(c)) if c.in_process
    )
}

/// What an operation needs of its caller.
pub trait Need: Send + Sync + 'static {
    const SCOPE: Scope;
    /// The name this need is declared under in the generated document, before
    /// `declare_security` turns it into the one `apiKey` scheme and the operation's scope.
    const DECLARED: &'static str;
    /// A submission: also counted against the key's rate (`LONGRUN_RATE_LIMIT`).
    const SUBMISSION: bool = false;
}

/// Read jobs, results, files, the catalog, tasks.
pub enum Read {}
/// Change the caller's own jobs without making one: cancel, share links.
pub enum Submit {}
/// Store a new job (submissions of every route, background requests).
pub enum Submission {}
/// Delete, restart, prune, purge; metrics.
pub enum Admin {}

impl Need for Read {
    const SCOPE: Scope = Scope::Read;
    const DECLARED: &'static str = "apiKey.read";
}
impl Need for Submit {
    const SCOPE: Scope = Scope::Submit;
    const DECLARED: &'static str = "apiKey.submit";
}
impl Need for Submission {
    const SCOPE: Scope = Scope::Submit;
    const DECLARED: &'static str = "apiKey.submit";
    const SUBMISSION: bool = true;
}
impl Need for Admin {
    const SCOPE: Scope = Scope::Admin;
    const DECLARED: &'static str = "apiKey.admin";
}

fn unauthorized(req: &Request, detail: &str) -> Problem {
    let mut p = Problem::new(401, "unauthorized", detail).for_req(req);
    p.www_authenticate = true;
    p
}

/// The one decision: may the request's caller do what `scope` allows (and one more submission)?
/// `why` names what needs the scope, for the 403's detail.
fn decide(req: &Request, scope: Scope, submission: bool, why: &str) -> Result<Caller, Problem> {
    let Some(door) = req.extensions().get::<Door>() else {
        // Never reached through `api::app`; refuse rather than guess.
        return Err(unauthorized(req, "an API key is needed"));
    };
    let caller = match &door.who {
        Who::Caller(c) => c,
        Who::Nobody => {
            return Err(unauthorized(
                req,
                "an API key is needed: send `Authorization: Bearer <key>`",
            ))
        }
        Who::UnknownKey => {
            return Err(unauthorized(
                req,
                "this API key is not known or was revoked",
            ))
        }
    };
    if caller.scope < scope {
        return Err(Problem::new(
            403,
            "insufficient-scope",
            format!(
                "this key's scope is `{}`; {why} needs `{}`",
                caller.scope.as_str(),
                scope.as_str()
            ),
        )
        .for_req(req));
    }
    if submission {
        if let (Some(key), Some(gate)) = (&caller.key, &door.gate) {
            if let Err(wait) = gate.take(key) {
                let mut p = Problem::new(
                    429,
                    "too-many-requests",
                    format!(
                        "this key has used its submissions for now (LONGRUN_RATE_LIMIT); retry in {wait} s"
                    ),
                )
                .for_req(req);
                p.retry_after = Some(wait);
                return Err(p);
            }
        }
    }
    Ok(caller.clone())
}

fn what(req: &Request) -> String {
    format!("{} {}", req.method(), req.uri().path())
}

/// A caller whose key allows what `N` needs. The first parameter of every operation that is not
/// public; the handler reads the tenant from it.
pub struct Key<N: Need> {
    caller: Caller,
    need: PhantomData<N>,
}

impl<N: Need> Key<N> {
    /// Admit `req` for `N` outside the OpenAPI operations (e.g. `/metrics`).
    pub fn admit(req: &Request) -> Result<Key<N>, Problem> {
        decide(req, N::SCOPE, N::SUBMISSION, &what(req)).map(|caller| Key {
            caller,
            need: PhantomData,
        })
    }

    /// The same caller for an effect that needs more, chosen by a decoded parameter (`what`
    /// names it for the 403): `/tasks/{n}?prune=true` needs `admin`.
    pub fn at_least<M: Need>(&self, req: &Request, what: &str) -> Result<Key<M>, Problem> {
        decide(req, M::SCOPE, M::SUBMISSION, what).map(|caller| Key {
            caller,
            need: PhantomData,
        })
    }
}

impl<N: Need> Deref for Key<N> {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.caller
    }
}

impl<'a, N: Need> ApiExtractor<'a> for Key<N> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_schemes(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![N::DECLARED]
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        Ok(Key::admit(req)?)
    }
}

/// The one security scheme of the document: a bearer API key (`longrun keys create`).
pub const SCHEME: &str = "apiKey";

fn register_schemes(registry: &mut Registry) {
    registry.create_security_scheme(
        SCHEME,
        MetaSecurityScheme {
            ty: "http",
            description: Some(
                "An API key made by `longrun keys create`, sent as `Authorization: Bearer <key>`. \
                 Each operation names the scope it needs (`read` < `submit` < `admin`) in its \
                 `x-required-scope`. While no key exists, the service is open and needs none.",
            ),
            name: None,
            key_in: None,
            scheme: Some("bearer"),
            bearer_format: Some("lr_…"),
            flows: None,
            openid_connect_url: None,
        },
    );
}

/// Writes each operation's security as the document states it: poem-openapi lists the need of
/// the operation's `Key<N>` (or `KeyOrLink`) by its `DECLARED` name; this turns it into the one
/// `apiKey` scheme (OpenAPI 3.0 allows scopes only for OAuth schemes), the scope into
/// `x-required-scope` and a line of the description. An operation that takes no key is
/// declared public (`security: []`). So the document says what the extractor enforces.
pub fn declare_security(doc: &mut serde_json::Value) {
    use serde_json::{json, Value};
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for op in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(Value::as_object_mut)
    {
        let declared = op
            .remove("security")
            .and_then(|s| s.as_array().cloned())
            .unwrap_or_default();
        let mut scope = None;
        let mut open_with_link = false;
        for requirement in &declared {
            match requirement.as_object() {
                Some(r) if r.is_empty() => open_with_link = true,
                Some(r) => {
                    for name in r.keys() {
                        // Only a `Need` declares security here; anything else would be written
                        // as public, so it stops the document being made instead.
                        let need = name.strip_prefix("apiKey.").unwrap_or_else(|| {
                            panic!("security `{name}` is not a `Need` of access.rs")
                        });
                        scope = Some(need.to_string());
                    }
                }
                None => {}
            }
        }
        let Some(scope) = scope else {
            op.insert("security".into(), json!([]));
            continue;
        };
        let mut security = vec![json!({ SCHEME: [] })];
        let mut line = format!("Needs an API key with scope `{scope}`.");
        if open_with_link {
            security.push(json!({}));
            line.push_str(" Without a key, a signed link (`expires` and `sig`) is enough.");
        }
        op.insert("security".into(), Value::Array(security));
        op.insert("x-required-scope".into(), json!(scope));
        let description = match op.get("description").and_then(Value::as_str) {
            Some(d) => format!("{d}\n\n{line}"),
            None => line,
        };
        op.insert("description".into(), json!(description));
    }
}

/// A reader of one object: a caller with at least `read`, or — without a key — the holder of a
/// signed link (`expires` and `sig` in the query), which the handler must verify.
pub enum KeyOrLink {
    Key(Key<Read>),
    Link,
}

impl KeyOrLink {
    /// The caller, if the request came with one.
    pub fn caller(&self) -> Option<&Caller> {
        match self {
            KeyOrLink::Key(k) => Some(k),
            KeyOrLink::Link => None,
        }
    }
}

impl<'a> ApiExtractor<'a> for KeyOrLink {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_schemes(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![Read::DECLARED]
    }

    /// A signed link (`expires` and `sig`, declared as the operation's query parameters) stands
    /// for the key: the operation is also open without one.
    fn has_security_fallback() -> bool {
        true
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let anonymous = matches!(
            req.extensions().get::<Door>().map(|d| &d.who),
            Some(Who::Nobody | Who::UnknownKey)
        );
        let q = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes());
        let (mut sig, mut expires) = (false, false);
        for (k, _) in q {
            sig |= k == "sig";
            expires |= k == "expires";
        }
        if anonymous && sig && expires {
            return Ok(KeyOrLink::Link);
        }
        Ok(KeyOrLink::Key(Key::admit(req)?))
    }
}

/// The job `id` if the caller's tenant owns it: 404 for a missing or foreign job (never 403, so
/// ids leak nothing), 410 for the caller's own deleted job.
pub async fn job_for(
    state: &AppState,
    caller: &Caller,
    id: uuid::Uuid,
) -> Result<crate::domain::Job, Problem> {
    match state.engine.find(id).await? {
        Some(j) if caller.owns(&j.owner) => {
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
    caller: &Caller,
    id: uuid::Uuid,
) -> Result<crate::store::Snapshot, Problem> {
    match state.engine.snapshot(id).await? {
        Some(s) if caller.owns(&s.0.owner) => {
            if s.0.status == crate::domain::JobStatus::Deleted {
                Err(crate::engine::EngineError::Gone(id).into())
            } else {
                Ok(s)
            }
        }
        _ => Err(Problem::not_found(format!("no job with id `{id}`"))),
    }
}
