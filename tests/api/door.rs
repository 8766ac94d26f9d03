//! The door: a caller's tenant comes only from its key, and what it may do is decided on the
//! matched operation from the values its handler acts on. Each hole found by an attack is a test
//! here, and the matrix walks every operation of the served document (plus the dialects' query
//! effects and the routes outside the document) with every scope, another tenant's key and no
//! key.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

async fn submit(app: &TestApp, key: &str, body: Value) -> Value {
    let (s, j, _) = keyed(app, Method::POST, "/api/v1/jobs", Some(key), Some(&body)).await;
    assert_eq!(s, 201, "{j}");
    j
}

// ---------------------------------------------------------------------------------------------
// Hole 1: a tenant read another's job list through the `request` operation's `input.owner`.
// ---------------------------------------------------------------------------------------------

async fn request_operation_reads_only_for_its_owner(backend: &'static str) {
    let app = TestApp::spawn(backend, 2).await;
    let acme = app.key("acme", "submit").await;
    let evil = app.key("evil", "submit").await;
    let secret = submit(
        &app,
        &acme,
        json!({"operation": "sleepy", "input": {"ms": 1}, "correlationId": "acme-secret-42"}),
    )
    .await;
    ended_as(&app, &link(&secret, "self").unwrap(), &acme).await;

    // An input that names a tenant is refused, naming the field, in JSON and in XML, on the
    // generic route and wherever the identity hides.
    for input in [
        json!({"uri": "/api/v1/jobs", "owner": "acme"}),
        json!({"uri": "/api/v1/jobs", "Tenant": "acme"}),
        json!({"uri": "/api/v1/jobs", "options": {"tenant_id": "acme"}}),
    ] {
        let (s, p, _) = keyed(
            &app,
            Method::POST,
            "/api/v1/jobs",
            Some(&evil),
            Some(&json!({"operation": "request", "input": input})),
        )
        .await;
        assert_eq!(s, 400, "{p}");
        assert_eq!(p["type"], "urn:longrun:problem:bad-request");
        assert!(p["detail"].as_str().unwrap().contains("input."), "{p}");
    }
    let xml = "<job><operation>request</operation><input><uri>/api/v1/jobs</uri>\
               <owner>acme</owner></input></job>";
    let r = app
        .http
        .post(app.url("/api/v1/jobs"))
        .bearer_auth(&evil)
        .header("content-type", "application/xml")
        .header("accept", "application/xml")
        .body(xml)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("input.owner"), "{text}");
    // The dedicated routes' bodies cannot carry an identity either (their schemas are closed).
    let (s, p, _) = keyed(
        &app,
        Method::POST,
        "/api/v1/exports",
        Some(&evil),
        Some(&json!({"dataset": "jobs", "format": "ndjson", "owner": "acme"})),
    )
    .await;
    assert_eq!(s, 400, "{p}");
    // Nothing was stored by the refusals.
    let (_, list, _) = get_as(&app, "/api/v1/jobs", Some(&evil)).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0, "{list}");

    // A credential among its replayed headers is refused; without the field and the header it
    // runs as evil: the answer holds only evil's jobs.
    let (s, p, _) = keyed(
        &app,
        Method::POST,
        "/api/v1/jobs",
        Some(&evil),
        Some(
            &json!({"operation": "request", "input": {"uri": "/api/v1/jobs",
               "headers": [["authorization", format!("Bearer {acme}")]]}}),
        ),
    )
    .await;
    assert_eq!(s, 400, "{p}");
    let job = submit(
        &app,
        &evil,
        json!({"operation": "request", "input": {"uri": "/api/v1/jobs",
               "headers": [["accept", "application/json"]]}}),
    )
    .await;
    let done = ended_as(&app, &link(&job, "self").unwrap(), &evil).await;
    assert_eq!(done["jobStatus"], "SUCCESS", "{done}");
    let file = link(&done, "file").unwrap();
    let (s, _, body) = get_as(&app, &file, Some(&evil)).await;
    assert_eq!(s, 200);
    assert!(!body.contains("acme-secret-42"), "{body}");
    assert!(
        body.contains(&job["jobId"].as_str().unwrap()[..8]),
        "{body}"
    );

    // A background request, with `owner` in its query, reads as its submitter too.
    let (s, bg, _) = get_as(
        &app,
        "/api/v1/jobs?bgrs=yes&owner=acme&tenant=acme",
        Some(&evil),
    )
    .await;
    assert_eq!(s, 201, "{bg}");
    let monitor = link(&bg, "monitor").unwrap();
    let done = ended_as(&app, &monitor, &evil).await;
    assert_eq!(done["jobStatus"], "SUCCESS", "{done}");
    let rid = bg["request"].as_str().unwrap();
    let (s, _, body) = get_as(&app, &format!("/bgrs/{rid}/result"), Some(&evil)).await;
    assert_eq!(s, 200, "{body}");
    assert!(!body.contains("acme-secret-42"), "{body}");

    // A background GET of acme's job by evil is evil's job, and its answer is a 404.
    let (s, bg, _) = keyed(
        &app,
        Method::GET,
        &format!("{}?bgrs=yes", link(&secret, "self").unwrap()),
        Some(&evil),
        None,
    )
    .await;
    assert_eq!(s, 201, "{bg}");
    let done = ended_as(&app, &link(&bg, "monitor").unwrap(), &evil).await;
    assert_eq!(done["summary"]["status"], 404, "{done}");
    let rid = bg["request"].as_str().unwrap();
    let (_, _, body) = get_as(&app, &format!("/bgrs/{rid}/result"), Some(&evil)).await;
    assert!(!body.contains("acme-secret-42"), "{body}");

    // A deleted background request is gone for its owner, and not found for anyone else, with
    // a made-up link or without a key.
    let (s, _, _) = keyed(
        &app,
        Method::DELETE,
        &link(&bg, "monitor").unwrap(),
        Some(&evil),
        None,
    )
    .await;
    assert_eq!(s, 403, "a submit key does not delete");
    let evil_admin = app.key("evil", "admin").await;
    let (s, _, _) = keyed(
        &app,
        Method::DELETE,
        &link(&bg, "monitor").unwrap(),
        Some(&evil_admin),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let rid = bg["request"].as_str().unwrap();
    for (key, want) in [
        (Some(evil.as_str()), 410),
        (Some(acme.as_str()), 404),
        (None, 404),
    ] {
        let (s, p, _) = get_as(&app, &format!("/bgrs/{rid}?sig=x&expires=0"), key).await;
        let want = if key == Some(evil.as_str()) {
            404
        } else {
            want
        };
        assert_eq!(s, want, "{p}");
        let (s, p, _) = get_as(&app, &format!("/bgrs/{rid}"), key).await;
        let want = if key.is_none() {
            401
        } else if key == Some(evil.as_str()) {
            410
        } else {
            404
        };
        assert_eq!(s, want, "{p}");
    }
    app.stop().await;
}

#[tokio::test]
async fn request_operation_reads_only_for_its_owner_sqlite() {
    request_operation_reads_only_for_its_owner("sqlite").await;
}

#[tokio::test]
async fn request_operation_reads_only_for_its_owner_postgres() {
    if postgres_or_skip() {
        request_operation_reads_only_for_its_owner("postgres").await;
    }
}

// ---------------------------------------------------------------------------------------------
// Hole 2: a read key pruned a task through `prun%65=true` (the check read the raw query).
// ---------------------------------------------------------------------------------------------

async fn encoded_queries_cannot_widen_a_scope(backend: &'static str) {
    let app = TestApp::spawn(backend, 2).await;
    let read = app.key("acme", "read").await;
    let submit_key = app.key("acme", "submit").await;
    let admin = app.key("acme", "admin").await;
    let job = submit(
        &app,
        &submit_key,
        json!({"operation": "sleepy", "input": {"ms": 1}}),
    )
    .await;
    ended_as(&app, &link(&job, "self").unwrap(), &read).await;
    let task = job["taskId"].as_i64().unwrap();

    for q in [
        "prune=true",
        "prun%65=true",
        "%70rune=true",
        "%70%72%75%6E%65=%74rue",
        "prune=false&prune=true",
        "prune=true&prune=false",
        "prune=TRUE",
        "prune=1",
        "prune=yes",
        "Prune=true&prune=true",
    ] {
        let (s, p, _) = get_as(&app, &format!("/tasks/{task}?{q}"), Some(&read)).await;
        // Refused (403), or not a prune at all (400 for a value that is no boolean, 200 where
        // the value the handler reads is false): never a prune with the read scope.
        assert!([403, 400, 200].contains(&s), "{q}: {s} {p}");
        let (s, t, _) = get_as(&app, &format!("/tasks/{task}"), Some(&read)).await;
        assert_eq!(s, 200, "after {q}, the task must still be there: {t}");
    }
    let (s, p, _) = get_as(&app, &format!("/tasks/{task}?prun%65=true"), Some(&read)).await;
    assert_eq!(s, 403, "{p}");
    assert_eq!(p["type"], "urn:longrun:problem:insufficient-scope");
    assert!(p["detail"].as_str().unwrap().contains("prune=true"), "{p}");

    // Cancel the same ways, on a running task: refused for read, the job untouched.
    let long = submit(
        &app,
        &submit_key,
        json!({"operation": "sleepy", "input": {"ms": 100, "steps": 600}}),
    )
    .await;
    let long_task = long["taskId"].as_i64().unwrap();
    for q in [
        "c%61ncel=true",
        "%63ancel=%74rue",
        "cancel=false&cancel=true",
    ] {
        let (s, p, _) = get_as(&app, &format!("/tasks/{long_task}?{q}"), Some(&read)).await;
        assert!([403, 200].contains(&s), "{q}: {s} {p}");
        let (_, j, _) = get_as(&app, &link(&long, "self").unwrap(), Some(&read)).await;
        assert_ne!(j["jobStatus"], "CANCELLED", "{q}: {j}");
        assert_ne!(j["cancelRequested"], true, "{q}: {j}");
    }
    // The encoded forms do what they say for a key that may.
    let (s, t, _) = get_as(
        &app,
        &format!("/tasks/{long_task}?c%61ncel=true"),
        Some(&submit_key),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    ended_as(&app, &link(&long, "self").unwrap(), &read).await;
    let (s, p, _) = get_as(
        &app,
        &format!("/tasks/{task}?prun%65=true"),
        Some(&submit_key),
    )
    .await;
    assert_eq!(s, 403, "{p}");
    let (s, _, _) = get_as(&app, &format!("/tasks/{task}?prun%65=true"), Some(&admin)).await;
    assert_eq!(s, 200);
    let (s, _, _) = get_as(&app, &format!("/tasks/{task}"), Some(&read)).await;
    assert_eq!(s, 404);

    // A background request is a submission, however `bgrs` is spelled.
    for q in ["bgrs=yes", "bgr%73=yes", "bgrs=no&bgrs=1"] {
        let (s, p, _) = get_as(&app, &format!("/api/tools?{q}"), Some(&read)).await;
        assert_eq!(s, 403, "{q}: {p}");
    }
    let (_, list, _) = get_as(&app, "/api/v1/jobs", Some(&read)).await;
    let ops: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        ["sleepy"],
        "only the cancelled job, no request job: {list}"
    );
    app.stop().await;
}

#[tokio::test]
async fn encoded_queries_cannot_widen_a_scope_sqlite() {
    encoded_queries_cannot_widen_a_scope("sqlite").await;
}

#[tokio::test]
async fn encoded_queries_cannot_widen_a_scope_postgres() {
    if postgres_or_skip() {
        encoded_queries_cannot_widen_a_scope("postgres").await;
    }
}

// ---------------------------------------------------------------------------------------------
// The matrix: every operation × read / submit / admin of the owner, another tenant, no key.
// ---------------------------------------------------------------------------------------------

/// What a row of the matrix aims at; `Fresh…` targets are made anew for each request.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    /// A collection or the service itself: no resource of one tenant is named.
    Collection,
    /// The owner's ended comparison (with a file, a task and a result).
    Ended,
    /// A new ended job of the owner.
    FreshEnded,
    /// A new running job of the owner.
    FreshRunning,
    /// A new ended comparison of the owner (seed 002's dialect shows comparisons only).
    FreshComparison,
}

struct Row {
    /// The operation id in the document, or a name for a route outside it.
    op: &'static str,
    method: Method,
    /// With `{job}`, `{file}`, `{task}`, `{rid}`, `{ref}` filled in.
    path: &'static str,
    body: Option<Value>,
    /// None: public.
    need: Option<&'static str>,
    /// The answer when allowed.
    ok: u16,
    target: Target,
}

fn row(
    op: &'static str,
    method: Method,
    path: &'static str,
    need: Option<&'static str>,
    ok: u16,
    target: Target,
) -> Row {
    Row {
        op,
        method,
        path,
        body: None,
        need,
        ok,
        target,
    }
}

fn rows() -> Vec<Row> {
    use Method as M;
    use Target::*;
    let with = |mut r: Row, body: Value| {
        r.body = Some(body);
        r
    };
    vec![
        row("getRoot", M::GET, "/", None, 200, Collection),
        row(
            "listOperations",
            M::GET,
            "/api/v1/operations",
            Some("read"),
            200,
            Collection,
        ),
        row("getJob", M::GET, "{job}", Some("read"), 200, Ended),
        row(
            "deleteJob",
            M::DELETE,
            "{job}",
            Some("admin"),
            200,
            FreshEnded,
        ),
        with(
            row(
                "submitJob",
                M::POST,
                "/api/v1/jobs",
                Some("submit"),
                201,
                Collection,
            ),
            json!({"operation": "sleepy", "input": {"ms": 1}}),
        ),
        row(
            "listJobs",
            M::GET,
            "/api/v1/jobs",
            Some("read"),
            200,
            Collection,
        ),
        row(
            "purgeJobs",
            M::DELETE,
            "/api/v1/jobs?status=CANCELLED&correlationId=none",
            Some("admin"),
            200,
            Collection,
        ),
        // A bulk action's need is its action's: cancel needs `submit`, restart and delete
        // `admin` (the document declares the least, `submit`).
        with(
            row(
                "bulkJobAction",
                M::POST,
                "/api/v1/jobs/actions",
                Some("submit"),
                201,
                Collection,
            ),
            json!({"action": "cancel", "filter": {"correlationId": "none"}}),
        ),
        with(
            row(
                "bulkJobAction:restart",
                M::POST,
                "/api/v1/jobs/actions",
                Some("admin"),
                201,
                Collection,
            ),
            json!({"action": "restart", "filter": {"correlationId": "none"}}),
        ),
        with(
            row(
                "bulkJobAction:delete",
                M::POST,
                "/api/v1/jobs/actions",
                Some("admin"),
                201,
                Collection,
            ),
            json!({"action": "delete", "filter": {"correlationId": "none"}}),
        ),
        row(
            "cancelJob",
            M::POST,
            "{job}/cancel",
            Some("submit"),
            202,
            FreshRunning,
        ),
        row(
            "restartJob",
            M::POST,
            "{job}/restart",
            Some("admin"),
            200,
            FreshEnded,
        ),
        row(
            "getJobMessages",
            M::GET,
            "{job}/messages",
            Some("read"),
            200,
            Ended,
        ),
        row(
            "getJobOperator",
            M::GET,
            "{job}/operator",
            Some("read"),
            200,
            Ended,
        ),
        row(
            "getJobResult",
            M::GET,
            "{job}/result",
            Some("read"),
            200,
            Ended,
        ),
        row(
            "getJobDataFileSet",
            M::GET,
            "{job}/datafileset",
            Some("read"),
            200,
            Ended,
        ),
        row(
            "jobEvents",
            M::GET,
            "{job}/events",
            Some("read"),
            200,
            Ended,
        ),
        row(
            "streamEvents",
            M::GET,
            "/api/v1/events",
            Some("read"),
            200,
            Collection,
        ),
        row(
            "getStats",
            M::GET,
            "/api/v1/stats",
            Some("read"),
            200,
            Collection,
        ),
        row(
            "getJobDeliveries",
            M::GET,
            "{job}/deliveries",
            Some("read"),
            200,
            Ended,
        ),
        row(
            "listDeliveries",
            M::GET,
            "/api/v1/deliveries",
            Some("read"),
            200,
            Collection,
        ),
        // No such delivery: past the door, the handler's 404 (another tenant's is tested in
        // `delivery_log`).
        row(
            "redeliver",
            M::POST,
            "/api/v1/deliveries/msg_0/redeliver",
            Some("submit"),
            404,
            Collection,
        ),
        row(
            "listEndpoints",
            M::GET,
            "/api/v1/endpoints",
            Some("read"),
            200,
            Collection,
        ),
        row(
            "enableEndpoint",
            M::POST,
            "/api/v1/endpoints/ep_0/enable",
            Some("submit"),
            404,
            Collection,
        ),
        with(
            row(
                "submitImport",
                M::POST,
                "/api/v1/imports",
                Some("submit"),
                201,
                Collection,
            ),
            json!({"data": [{"tool_id": "M1", "tool_name": "Matrix", "category": "Test"}]}),
        ),
        with(
            row(
                "startToolsImport",
                M::POST,
                "/api/tools/import",
                Some("submit"),
                201,
                Collection,
            ),
            json!({"data": [{"tool_id": "M2", "tool_name": "Matrix", "category": "Test"}]}),
        ),
        row(
            "getToolsImportStatus",
            M::GET,
            "/api/tools/import/status/{ref}",
            Some("read"),
            200,
            Ended,
        ),
        row(
            "listToolsImportErrors",
            M::GET,
            "/api/tools/import/status/{ref}/errors",
            Some("read"),
            200,
            Ended,
        ),
        row(
            "listTools",
            M::GET,
            "/api/tools",
            Some("read"),
            200,
            Collection,
        ),
        row(
            "getTool",
            M::GET,
            "/api/tools/V001",
            Some("read"),
            200,
            Ended,
        ),
        with(
            row(
                "compare",
                M::POST,
                "/api/v1/comparisons",
                Some("submit"),
                201,
                Collection,
            ),
            json!({"inputA": {"content": "{\"a\":1}"}, "inputB": {"content": "{\"a\":2}"},
                   "async": {}}),
        ),
        with(
            row(
                "export",
                M::POST,
                "/api/v1/exports",
                Some("submit"),
                201,
                Collection,
            ),
            json!({"dataset": "tools", "format": "csv"}),
        ),
        with(
            row(
                "xdcCompare",
                M::POST,
                "/api/xml-data-compare/v1/compare",
                Some("submit"),
                201,
                Collection,
            ),
            json!({"inputA": {"type": "string", "content": "<a/>"},
                   "inputB": {"type": "string", "content": "<b/>"}, "async": {}}),
        ),
        row(
            "xdcGetJob",
            M::GET,
            "/api/xml-data-compare/v1/jobs/{jobid}",
            Some("read"),
            200,
            Ended,
        ),
        row(
            "xdcDeleteJob",
            M::DELETE,
            "/api/xml-data-compare/v1/jobs/{jobid}",
            Some("admin"),
            200,
            FreshComparison,
        ),
        row(
            "xdcDownload",
            M::GET,
            "/api/xml-data-compare/v1/downloads/{jobid}",
            Some("read"),
            200,
            Ended,
        ),
        row("listTasks", M::GET, "/tasks", Some("read"), 200, Collection),
        row("getTask", M::GET, "/tasks/{task}", Some("read"), 200, Ended),
        row(
            "getBackgroundRequest",
            M::GET,
            "/bgrs/{rid}",
            Some("read"),
            200,
            Ended,
        ),
        row(
            "getBackgroundRequestDetails",
            M::GET,
            "/bgrs/{rid}/details",
            Some("read"),
            200,
            Ended,
        ),
        row(
            "getBackgroundRequestResult",
            M::GET,
            "/bgrs/{rid}/result",
            Some("read"),
            200,
            Ended,
        ),
        row(
            "shareJob",
            M::POST,
            "{job}/share",
            Some("submit"),
            200,
            Ended,
        ),
        row("download", M::GET, "{file}", Some("read"), 200, Ended),
        row(
            "getDataFileSet",
            M::GET,
            "/datafilesets/{set}",
            Some("read"),
            200,
            Ended,
        ),
        row(
            "getDataFile",
            M::GET,
            "/datafilesets/{set}/datafiles/{setfile}/data",
            Some("read"),
            200,
            Ended,
        ),
        // The dialects' effects chosen by a query parameter.
        row(
            "getTask?cancel",
            M::GET,
            "/tasks/{task}?cancel=true",
            Some("submit"),
            200,
            FreshRunning,
        ),
        row(
            "getTask?prune",
            M::GET,
            "/tasks/{task}?prune=true",
            Some("admin"),
            200,
            FreshEnded,
        ),
        row(
            "bgrs:listJobs",
            M::GET,
            "/api/v1/jobs?bgrs=yes",
            Some("submit"),
            201,
            Collection,
        ),
        // Any GET under /api/ runs in the background (seed 001): another tenant's is accepted as
        // its own job, whose answer is a 404 (checked in `request_operation_…`).
        row(
            "bgrs:getJob",
            M::GET,
            "{job}?bgrs=yes",
            Some("submit"),
            201,
            Collection,
        ),
        // Outside the document.
        row(
            "metrics",
            M::GET,
            "/metrics",
            Some("admin"),
            200,
            Collection,
        ),
        row("healthz", M::GET, "/healthz", None, 200, Collection),
        row("readyz", M::GET, "/readyz", None, 200, Collection),
        row(
            "openapi.json",
            M::GET,
            "/openapi.json",
            None,
            200,
            Collection,
        ),
        row(
            "openapi.yaml",
            M::GET,
            "/openapi.yaml",
            None,
            200,
            Collection,
        ),
        row("docs", M::GET, "/docs", None, 200, Collection),
        row("ui", M::GET, "/ui/", None, 200, Collection),
    ]
}

/// The owner's resources a row can name.
struct Fixture {
    job: String,
    file: String,
    task: i64,
    rid: String,
    reference: String,
}

impl Fixture {
    fn fill(&self, path: &str) -> String {
        let last = |href: &str| href.rsplit('/').next().unwrap_or_default().to_string();
        path.replace("{jobid}", &last(&self.job))
            .replace("{setfile}", &last(&self.file))
            .replace("{set}", &last(&self.job))
            .replace("{job}", &self.job)
            .replace("{file}", &self.file)
            .replace("{task}", &self.task.to_string())
            .replace("{rid}", &self.rid)
            .replace("{ref}", &self.reference)
    }
}

async fn fixture(app: &TestApp, key: &str) -> Fixture {
    let (s, imp, _) = keyed(
        app,
        Method::POST,
        "/api/tools/import",
        Some(key),
        Some(&seed_payload()),
    )
    .await;
    assert_eq!(s, 201, "{imp}");
    ended_as(app, &link(&imp, "monitor").unwrap(), key).await;
    let (s, cmp, _) = keyed(
        app,
        Method::POST,
        "/api/v1/comparisons",
        Some(key),
        Some(
            &json!({"inputA": {"content": "{\"a\":1}"}, "inputB": {"content": "{\"a\":2}"},
                     "async": {}}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{cmp}");
    let cmp = ended_as(app, &link(&cmp, "self").unwrap(), key).await;
    let (s, bg, _) = get_as(app, "/api/tools?bgrs=yes", Some(key)).await;
    assert_eq!(s, 201, "{bg}");
    ended_as(app, &link(&bg, "monitor").unwrap(), key).await;
    Fixture {
        job: link(&cmp, "self").unwrap(),
        file: link(&cmp, "file").unwrap(),
        task: cmp["taskId"].as_i64().unwrap(),
        rid: bg["request"].as_str().unwrap().to_string(),
        reference: imp["task_reference"].as_str().unwrap().to_string(),
    }
}

/// A fixture whose job (and task) is new: FAILED (so it may be restarted), or running until it
/// is cancelled.
async fn fresh(app: &TestApp, key: &str, base: &Fixture, running: bool) -> Fixture {
    let input = if running {
        json!({"ms": 100, "steps": 600})
    } else {
        json!({"ms": 1, "fail": true})
    };
    let job = submit(app, key, json!({"operation": "sleepy", "input": input})).await;
    let href = link(&job, "self").unwrap();
    if running {
        for _ in 0..500 {
            let (_, j, _) = get_as(app, &href, Some(key)).await;
            if j["jobStatus"] == "PROCESSING" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    } else {
        ended_as(app, &href, key).await;
    }
    Fixture {
        job: href,
        file: base.file.clone(),
        task: job["taskId"].as_i64().unwrap(),
        rid: base.rid.clone(),
        reference: base.reference.clone(),
    }
}

/// A fixture whose job is a new ended comparison.
async fn fresh_comparison(app: &TestApp, key: &str, base: &Fixture) -> Fixture {
    let (s, cmp, _) = keyed(
        app,
        Method::POST,
        "/api/v1/comparisons",
        Some(key),
        Some(&json!({"inputA": {"content": "<a/>"}, "inputB": {"content": "<b/>"}, "async": {}})),
    )
    .await;
    assert_eq!(s, 201, "{cmp}");
    let cmp = ended_as(app, &link(&cmp, "self").unwrap(), key).await;
    Fixture {
        job: link(&cmp, "self").unwrap(),
        file: base.file.clone(),
        task: cmp["taskId"].as_i64().unwrap(),
        rid: base.rid.clone(),
        reference: base.reference.clone(),
    }
}

fn rank(scope: &str) -> u8 {
    match scope {
        "read" => 0,
        "submit" => 1,
        _ => 2,
    }
}

async fn access_matrix(backend: &'static str) {
    let app = TestApp::spawn(backend, 4).await;
    // The rows cover the served document exactly: a new operation needs a row.
    let (_, doc, _) = get_as(&app, "/openapi.json", None).await;
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str().map(str::to_string))
        .collect();
    let rows = rows();
    let covered: BTreeSet<String> = rows
        .iter()
        .map(|r| r.op.to_string())
        .filter(|op| documented.contains(op))
        .collect();
    assert_eq!(
        documented, covered,
        "every documented operation needs a row in the access matrix"
    );
    // The document declares what the door enforces: each operation's `x-required-scope` is the
    // least need of its rows (a variant such as `?prune=true` may need more), and an operation
    // without one is public (`security: []`).
    for op in doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
    {
        let id = op["operationId"].as_str().unwrap();
        let least = rows
            .iter()
            .filter(|r| r.op == id)
            .map(|r| r.need)
            .min_by_key(|need| need.map(rank));
        let declared = op["x-required-scope"].as_str();
        assert_eq!(declared, least.flatten(), "{id}: x-required-scope");
        match declared {
            Some(_) => assert_eq!(op["security"][0], json!({"apiKey": []}), "{id}"),
            None => assert_eq!(op["security"], json!([]), "{id}"),
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["apiKey"],
        json!({"type": "http", "scheme": "bearer", "bearerFormat": "lr_…",
               "description": doc["components"]["securitySchemes"]["apiKey"]["description"]})
    );

    let admin = app.key("acme", "admin").await;
    let keys = [
        ("read", app.key("acme", "read").await),
        ("submit", app.key("acme", "submit").await),
        ("admin", admin.clone()),
    ];
    let other = app.key("globex", "admin").await;
    let base = fixture(&app, &admin).await;
    let mut failures = Vec::new();
    for r in &rows {
        // Each caller: (who, key, expected status).
        let mut callers: Vec<(String, Option<&str>, u16)> = keys
            .iter()
            .map(|(scope, k)| {
                let want = match r.need {
                    Some(need) if rank(scope) < rank(need) => 403,
                    _ => r.ok,
                };
                (format!("acme {scope}"), Some(k.as_str()), want)
            })
            .collect();
        let foreign = if r.target == Target::Collection {
            r.ok
        } else {
            404
        };
        callers.push(("globex admin".into(), Some(&other), foreign));
        callers.push((
            "no key".into(),
            None,
            if r.need.is_some() { 401 } else { r.ok },
        ));
        for (who, key, want) in callers {
            let fx = match r.target {
                Target::FreshEnded => fresh(&app, &admin, &base, false).await,
                Target::FreshRunning => fresh(&app, &admin, &base, true).await,
                Target::FreshComparison => fresh_comparison(&app, &admin, &base).await,
                _ => Fixture {
                    job: base.job.clone(),
                    file: base.file.clone(),
                    task: base.task,
                    rid: base.rid.clone(),
                    reference: base.reference.clone(),
                },
            };
            let path = fx.fill(r.path);
            let (s, body, text) = keyed(&app, r.method.clone(), &path, key, r.body.as_ref()).await;
            if s != want {
                failures.push(format!(
                    "{} ({} {path}) as {who}: {s}, expected {want}: {}",
                    r.op,
                    r.method,
                    text.chars().take(200).collect::<String>()
                ));
            } else if [401, 403, 404].contains(&s) && r.op != "ui" {
                // Refusals are problem documents of the kind their status says.
                let kind = match s {
                    401 => "unauthorized",
                    403 => "insufficient-scope",
                    _ => "not-found",
                };
                if body["type"] != format!("urn:longrun:problem:{kind}") {
                    failures.push(format!("{} as {who}: {s} with {text}", r.op));
                }
            }
            if r.target == Target::FreshRunning {
                keyed(
                    &app,
                    Method::POST,
                    &format!("{}/cancel", fx.job),
                    Some(&admin),
                    None,
                )
                .await;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    app.stop().await;
}

#[tokio::test]
async fn access_matrix_sqlite() {
    access_matrix("sqlite").await;
}

#[tokio::test]
async fn access_matrix_postgres() {
    if postgres_or_skip() {
        access_matrix("postgres").await;
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics: one series per route template, however many paths are asked for.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_series_stay_bounded_by_the_routes() {
    let app = TestApp::spawn_with("sqlite", 1, |a| a.operator_tenant = Some("acme".into())).await;
    let admin = app.key("acme", "admin").await;
    let (client, base, admin_ref) = (&app.http, app.base.as_str(), admin.as_str());
    let paths: Vec<String> = (0..10_000)
        .map(|i| match i % 4 {
            0 => format!("/nothing/{i}"),
            1 => format!("/api/v1/jobs/{}", uuid::Uuid::now_v7()),
            2 => format!("/tasks/{i}"),
            _ => format!("/downloads/x{i}/y"),
        })
        .collect();
    let methods = (0..200).map(|i| format!("/api/v1/jobs|X{i}"));
    let paths = paths.into_iter().chain(methods);
    futures::stream::iter(paths)
        .for_each_concurrent(16, |p| async move {
            // `path|METHOD` for an invented method.
            let (path, method) = p.split_once('|').unwrap_or((&p, "GET"));
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let r = client
                .request(method, format!("{base}{path}"))
                .bearer_auth(admin_ref)
                .send()
                .await
                .unwrap();
            assert!([404, 405, 410].contains(&r.status().as_u16()), "{p}");
        })
        .await;
    let (s, _, text) = get_as(&app, "/metrics", Some(&admin)).await;
    assert_eq!(s, 200);
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("longrun_http_requests_total{"))
        .collect();
    assert!(series.len() <= 12, "{}", series.join("\n"));
    for want in [
        "route=\"unmatched\",method=\"GET\",status=\"404\"",
        "route=\"/api/v1/jobs/{id}\",method=\"GET\",status=\"404\"",
        "route=\"/tasks/{id}\",method=\"GET\",status=\"404\"",
        "route=\"/api/v1/jobs\",method=\"OTHER\",status=\"405\"",
    ] {
        assert!(
            series.iter().any(|l| l.contains(want)),
            "{want} in\n{}",
            series.join("\n")
        );
    }
    assert!(!text.contains("/nothing/"), "raw paths are never labels");
    assert!(!text.contains("X17"), "invented methods are never labels");
    app.stop().await;
}

/// `/metrics` counts another tenant's jobs only for the operator: a tenant's admin sees its own
/// tenant's jobs and queue, and not the process's counters, which count every tenant's work.
#[tokio::test]
async fn metrics_show_other_tenants_only_to_the_operator() {
    let app = TestApp::spawn_with("sqlite", 1, |a| a.operator_tenant = Some("ops".into())).await;
    let acme = app.key("acme", "admin").await;
    let globex = app.key("globex", "admin").await;
    let ops = app.key("ops", "admin").await;
    for _ in 0..3 {
        let j = submit(
            &app,
            &acme,
            json!({"operation": "sleepy", "input": {"ms": 1}}),
        )
        .await;
        ended_as(&app, &link(&j, "self").unwrap(), &acme).await;
    }
    let j = submit(&app, &globex, json!({"operation": "noop"})).await;
    ended_as(&app, &link(&j, "self").unwrap(), &globex).await;
    let metrics = |key: String| {
        let app = &app;
        async move { get_as(app, "/metrics", Some(&key)).await.2 }
    };
    let g = metrics(globex.clone()).await;
    assert!(
        g.contains("longrun_jobs{status=\"SUCCESS\",operation=\"noop\"} 1"),
        "{g}"
    );
    assert!(!g.contains("sleepy"), "globex sees nothing of acme: {g}");
    assert!(
        !g.contains("acme") && !g.contains("longrun_tenant_jobs"),
        "{g}"
    );
    assert!(!g.contains("longrun_http_requests_total"), "{g}");
    let a = metrics(acme).await;
    assert!(
        a.contains("longrun_jobs{status=\"SUCCESS\",operation=\"sleepy\"} 3"),
        "{a}"
    );
    assert!(!a.contains("noop"), "{a}");
    let o = metrics(ops).await;
    for want in [
        "longrun_jobs{status=\"SUCCESS\",operation=\"sleepy\"} 3",
        "longrun_tenant_jobs{tenant=\"acme\",status=\"SUCCESS\",operation=\"sleepy\"} 3",
        "longrun_tenant_jobs{tenant=\"globex\",status=\"SUCCESS\",operation=\"noop\"} 1",
        "longrun_http_requests_total{",
    ] {
        assert!(o.contains(want), "{want} in {o}");
    }
    let read = app.key("ops", "read").await;
    assert_eq!(get_as(&app, "/metrics", Some(&read)).await.0, 403);
    app.stop().await;
}

use futures::StreamExt;

/// A caller without a valid key is answered 401 by its operation before its body is read: a
/// body over every limit gets the 401, not the 413 that reading it would give.
#[tokio::test]
async fn no_key_is_refused_before_the_body_is_read() {
    let app = TestApp::spawn("sqlite", 1).await;
    app.key("acme", "admin").await;
    let zeros = format!(
        "{{\"operation\":\"noop\",\"input\":[{}0]}}",
        "0,".repeat(300_000)
    );
    for key in [None, Some("lr_not_a_key")] {
        let mut r = app
            .http
            .post(app.url("/api/v1/jobs"))
            .header("content-type", "application/json")
            .body(zeros.clone());
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{key:?}");
        assert!(r.headers().contains_key("www-authenticate"));
    }
    app.stop().await;
}
