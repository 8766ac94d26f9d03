//! Who may do what: tenants see only their own objects (a foreign id is a 404 and changes
//! nothing), scopes allow and refuse, revoked keys are refused at once, the service refuses to
//! run open on a non-loopback address, and every limit answers its problem and leaves the
//! service healthy.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

/// One request with a key; (status, headers, body as JSON or Null).
async fn call(
    app: &TestApp,
    method: Method,
    href: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let href = if href.starts_with("http") {
        href.to_string()
    } else {
        app.url(href)
    };
    let mut r = app
        .http
        .request(method, href)
        .header("accept", "application/json");
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn wait_ended(app: &TestApp, href: &str, key: &str) -> Value {
    ended_as(app, href, key).await
}

/// Tenant B's admin key on each of tenant A's objects: 404 everywhere, and A's objects are as
/// they were.
async fn isolation_matrix(b: &'static str) {
    let app = TestApp::spawn(b, 2).await;
    let a = app.key("acme", "admin").await;
    let bk = app.key("globex", "admin").await;
    let (a, bk) = (a.as_str(), bk.as_str());

    // Tenant A: an import (catalog + seed reference), a comparison with a result file, a
    // long job to cancel, and a background request.
    let (s, h, imp) = call(
        &app,
        Method::POST,
        "/api/tools/import",
        Some(a),
        Some(seed_payload()),
    )
    .await;
    assert_eq!(s, 201, "{imp}");
    let status_href = h["location"].to_str().unwrap().to_string();
    let import_job = link(&imp, "monitor").unwrap();
    wait_ended(&app, &import_job, a).await;
    let (s, h, _) = call(
        &app,
        Method::POST,
        "/api/v1/comparisons",
        Some(a),
        Some(json!({"inputA": {"content": "{\"a\":1}"}, "inputB": {"content": "{\"a\":2}"}, "async": {}})),
    )
    .await;
    assert_eq!(s, 201);
    let cmp = h["location"].to_str().unwrap().to_string();
    let cmp_job = wait_ended(&app, &cmp, a).await;
    assert_eq!(cmp_job["jobStatus"], "SUCCESS");
    let file = link(&cmp_job, "file").unwrap();
    let task = cmp_job["taskId"].as_i64().unwrap();
    let (s, h, _) = call(
        &app,
        Method::POST,
        "/api/v1/jobs",
        Some(a),
        Some(json!({"operation": "sleepy", "input": {"ms": 60000}})),
    )
    .await;
    assert_eq!(s, 201);
    let long = h["location"].to_str().unwrap().to_string();
    let (s, _, bg) = call(&app, Method::GET, "/api/tools?bgrs=yes", Some(a), None).await;
    assert_eq!(s, 201, "{bg}");
    let rid = bg["request"].as_str().unwrap().to_string();

    // The long job settles in PROCESSING (stage 1 of its 60 s) before it is compared.
    for _ in 0..500 {
        let (_, _, j) = call(&app, Method::GET, &long, Some(a), None).await;
        if j["jobStatus"] == "PROCESSING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before_cmp = call(&app, Method::GET, &cmp, Some(a), None).await;
    let before_long = call(&app, Method::GET, &long, Some(a), None).await;

    // Every endpoint that takes an id, with B's key.
    let foreign: Vec<(Method, String)> = vec![
        (Method::GET, cmp.clone()),
        (Method::GET, format!("{cmp}/messages")),
        (Method::GET, format!("{cmp}/operator")),
        (Method::GET, format!("{cmp}/result")),
        (Method::GET, format!("{cmp}/datafileset")),
        (Method::GET, format!("{cmp}/events")),
        (Method::POST, format!("{cmp}/share")),
        (Method::POST, format!("{cmp}/restart")),
        (Method::DELETE, cmp.clone()),
        (Method::POST, format!("{long}/cancel")),
        (Method::DELETE, long.clone()),
        (Method::GET, file.clone()),
        (Method::GET, format!("/tasks/{task}")),
        (Method::GET, format!("/tasks/{task}.xml")),
        (Method::GET, format!("/tasks/{task}?cancel=true")),
        (Method::GET, format!("/tasks/{task}?prune=true")),
        (Method::GET, format!("/bgrs/{rid}")),
        (Method::GET, format!("/bgrs/{rid}/details")),
        (Method::GET, format!("/bgrs/{rid}/result")),
        (Method::GET, "/api/tools/V001".into()),
        (Method::GET, status_href.clone()),
    ];
    for (m, href) in &foreign {
        let (s, h, p) = call(&app, m.clone(), href, Some(bk), None).await;
        assert_eq!(s, 404, "{m} {href} answered {s}: {p}");
        assert!(
            h["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/problem"),
            "{m} {href}"
        );
    }
    // Nothing changed for A.
    let after_cmp = call(&app, Method::GET, &cmp, Some(a), None).await;
    assert_eq!(after_cmp.1["etag"], before_cmp.1["etag"]);
    let after_long = call(&app, Method::GET, &long, Some(a), None).await;
    assert_eq!(after_long.2["jobStatus"], before_long.2["jobStatus"]);
    assert_eq!(
        after_long.2["cancelRequested"],
        before_long.2["cancelRequested"]
    );
    let (s, _, _) = call(&app, Method::GET, &file, Some(a), None).await;
    assert_eq!(s, 200);
    assert_eq!(
        call(&app, Method::GET, &format!("/tasks/{task}"), Some(a), None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&app, Method::GET, "/api/tools/V001", Some(a), None)
            .await
            .0,
        200
    );

    // Collections show each tenant its own.
    let (_, _, jobs_b) = call(&app, Method::GET, "/api/v1/jobs", Some(bk), None).await;
    assert_eq!(jobs_b["jobs"].as_array().unwrap().len(), 0, "{jobs_b}");
    let (_, _, jobs_a) = call(&app, Method::GET, "/api/v1/jobs", Some(a), None).await;
    assert!(jobs_a["jobs"].as_array().unwrap().len() >= 4);
    let (_, _, tasks_b) = call(&app, Method::GET, "/tasks", Some(bk), None).await;
    assert_eq!(
        tasks_b.as_array().map(Vec::len).unwrap_or(0),
        0,
        "{tasks_b}"
    );
    let (_, _, tools_b) = call(&app, Method::GET, "/api/tools", Some(bk), None).await;
    assert_eq!(tools_b["tools"].as_array().unwrap().len(), 0);
    let (_, _, tools_a) = call(&app, Method::GET, "/api/tools", Some(a), None).await;
    assert_eq!(tools_a["tools"].as_array().unwrap().len(), 3);
    // B's bulk purge and B's exports do not reach A's jobs.
    let (s, _, purged) = call(
        &app,
        Method::DELETE,
        "/api/v1/jobs?status=SUCCESS",
        Some(bk),
        None,
    )
    .await;
    assert_eq!((s, purged["removed"].as_u64()), (200, Some(0)), "{purged}");
    let (s, h, _) = call(
        &app,
        Method::POST,
        "/api/v1/exports",
        Some(bk),
        Some(json!({"dataset": "jobs", "format": "ndjson"})),
    )
    .await;
    assert_eq!(s, 201);
    let ex = wait_ended(&app, h["location"].to_str().unwrap(), bk).await;
    assert_eq!(ex["summary"]["rows"], 1, "only B's export itself: {ex}");
    let (s, h, _) = call(
        &app,
        Method::POST,
        "/api/v1/exports",
        Some(bk),
        Some(json!({"dataset": "tools", "format": "ndjson"})),
    )
    .await;
    assert_eq!(s, 201);
    let ex = wait_ended(&app, h["location"].to_str().unwrap(), bk).await;
    assert_eq!(ex["summary"]["rows"], 0, "{ex}");
    // B importing the same tool ids makes B's own catalog, not a change to A's.
    let (s, _, imp_b) = call(
        &app,
        Method::POST,
        "/api/v1/imports",
        Some(bk),
        Some(json!({"data": [
        {"tool_name": "B's", "tool_id": "V001", "category": "Other", "features": []}]})),
    )
    .await;
    assert_eq!(s, 201, "{imp_b}");
    wait_ended(&app, &link(&imp_b, "monitor").unwrap(), bk).await;
    let (_, _, t_a) = call(&app, Method::GET, "/api/tools/V001", Some(a), None).await;
    assert_eq!(t_a["tool_name"], "University Scraper");
    let (_, _, t_b) = call(&app, Method::GET, "/api/tools/V001", Some(bk), None).await;
    assert_eq!(t_b["tool_name"], "B's");

    // Signed download links work without a key, for this file only, until they expire.
    let (s, _, share) = call(
        &app,
        Method::POST,
        &format!("{cmp}/share?ttl=2"),
        Some(a),
        None,
    )
    .await;
    assert_eq!(s, 200, "{share}");
    let signed = share["files"][0]["href"].as_str().unwrap().to_string();
    assert_eq!(call(&app, Method::GET, &signed, None, None).await.0, 200);
    assert_eq!(call(&app, Method::GET, &file, None, None).await.0, 401);
    let tampered = signed.replace("sig=", "sig=A");
    assert_eq!(call(&app, Method::GET, &tampered, None, None).await.0, 404);
    let later = signed.replace("expires=", "expires=9");
    assert_eq!(call(&app, Method::GET, &later, None, None).await.0, 404);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (s, _, p) = call(&app, Method::GET, &signed, None, None).await;
    assert_eq!(s, 410, "{p}");

    // A deleted import: gone for its tenant, still not found (not gone) for another.
    let (s, _, p) = call(&app, Method::DELETE, &import_job, Some(a), None).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        call(&app, Method::GET, &status_href, Some(a), None).await.0,
        410
    );
    assert_eq!(
        call(&app, Method::GET, &status_href, Some(bk), None)
            .await
            .0,
        404
    );

    call(&app, Method::POST, &format!("{long}/cancel"), Some(a), None).await;
    app.stop().await;
}
crate::per_backend!(isolation_matrix);

/// read < submit < admin, each allowed and refused where it should be; a revoked key is refused
/// on its next request; no key, or an unknown one, is a 401 with WWW-Authenticate.
#[tokio::test]
async fn scopes_and_revocation() {
    let app = TestApp::spawn("sqlite", 1).await;
    // While no key exists the service is open (it listens on loopback only).
    let (s, _, _) = call(&app, Method::GET, "/api/v1/jobs", None, None).await;
    assert_eq!(s, 200);
    let admin = app.key("acme", "admin").await;
    let submit = app.key("acme", "submit").await;
    let read = app.key("acme", "read").await;
    let (admin, submit, read) = (admin.as_str(), submit.as_str(), read.as_str());

    let (s, h, p) = call(&app, Method::GET, "/api/v1/jobs", None, None).await;
    assert_eq!(s, 401, "{p}");
    assert!(h["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    assert_eq!(p["type"], "urn:longrun:problem:unauthorized");
    assert_eq!(
        call(&app, Method::GET, "/api/v1/jobs", Some("lr_nope"), None)
            .await
            .0,
        401
    );
    // The entry point, health and the documents stay public.
    for open in ["/", "/healthz", "/openapi.json"] {
        assert_eq!(
            call(&app, Method::GET, open, None, None).await.0,
            200,
            "{open}"
        );
    }

    let noop = || Some(json!({"operation": "noop", "input": {}}));
    let (s, _, p) = call(&app, Method::POST, "/api/v1/jobs", Some(read), noop()).await;
    assert_eq!(s, 403, "{p}");
    assert_eq!(p["type"], "urn:longrun:problem:insufficient-scope");
    let (_, _, list) = call(&app, Method::GET, "/api/v1/jobs", Some(read), None).await;
    assert_eq!(
        list["count"], 0,
        "a refused submission stores nothing: {list}"
    );

    let (s, h, _) = call(&app, Method::POST, "/api/v1/jobs", Some(submit), noop()).await;
    assert_eq!(s, 201);
    let job = h["location"].to_str().unwrap().to_string();
    wait_ended(&app, &job, read).await;
    assert_eq!(call(&app, Method::GET, &job, Some(read), None).await.0, 200);
    assert_eq!(
        call(
            &app,
            Method::POST,
            &format!("{job}/cancel"),
            Some(read),
            None
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            &app,
            Method::POST,
            &format!("{job}/cancel"),
            Some(submit),
            None
        )
        .await
        .0,
        409
    );
    assert_eq!(
        call(&app, Method::DELETE, &job, Some(submit), None).await.0,
        403
    );
    assert_eq!(
        call(&app, Method::GET, "/metrics", Some(submit), None)
            .await
            .0,
        403
    );
    assert_eq!(
        call(&app, Method::GET, "/metrics", Some(admin), None)
            .await
            .0,
        200
    );
    let (s, _, _) = call(&app, Method::GET, &job, Some(read), None).await;
    assert_eq!(s, 200, "refusals changed nothing");
    assert_eq!(
        call(&app, Method::DELETE, &job, Some(admin), None).await.0,
        200
    );
    assert_eq!(call(&app, Method::GET, &job, Some(read), None).await.0, 410);

    // Revoked: refused on the very next request.
    let keys = app.engine.store().keys().await.unwrap();
    let submit_id = keys
        .iter()
        .find(|k| k.scope == "submit")
        .unwrap()
        .id
        .clone();
    assert!(app.engine.store().revoke_key(&submit_id).await.unwrap());
    let (s, _, p) = call(&app, Method::POST, "/api/v1/jobs", Some(submit), noop()).await;
    assert_eq!(s, 401, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("revoked"));
    app.stop().await;
}

/// Submissions per key are rate limited (429 + Retry-After); other keys and reads go on.
#[tokio::test]
async fn submission_rate_per_key() {
    let app = TestApp::spawn_with("sqlite", 1, |a| a.rate_limit = Some("3/m".into())).await;
    let k1 = app.key("acme", "submit").await;
    let k2 = app.key("acme", "submit").await;
    let noop = || Some(json!({"operation": "noop", "input": {}}));
    for _ in 0..3 {
        assert_eq!(
            call(&app, Method::POST, "/api/v1/jobs", Some(&k1), noop())
                .await
                .0,
            201
        );
    }
    let (s, h, p) = call(&app, Method::POST, "/api/v1/jobs", Some(&k1), noop()).await;
    assert_eq!(s, 429, "{p}");
    let wait: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&wait), "{wait}");
    assert_eq!(p["type"], "urn:longrun:problem:too-many-requests");
    assert_eq!(
        call(&app, Method::POST, "/api/v1/jobs", Some(&k2), noop())
            .await
            .0,
        201
    );
    let (_, _, list) = call(&app, Method::GET, "/api/v1/jobs", Some(&k1), None).await;
    assert_eq!(list["count"], 4);
    app.stop().await;
}

/// Bound to a non-loopback address with no keys, `longrun serve` refuses to start; with
/// --insecure-open it starts.
#[tokio::test]
async fn open_service_only_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
    let store = format!("file://{}/o", dir.path().display());
    let port = crate::crash::free_port();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_longrun"))
        .args(["serve", "--bind", &format!("0.0.0.0:{port}")])
        .args(["--database-url", &db, "--store-url", &store])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without API keys"), "{err}");
    // `longrun keys create` makes a key (printed once), `keys list` shows it without the secret.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_longrun"))
        .args(["keys", "create", "--tenant", "acme", "--scope", "read"])
        .args(["--database-url", &db])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(secret.starts_with("lr_"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_longrun"))
        .args(["keys", "list", "--database-url", &db])
        .output()
        .unwrap();
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(list.contains("acme") && list.contains(&secret[..10]) && !list.contains(&secret));
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_longrun"))
        .args(["keys", "create", "--tenant", "a b", "--database-url", &db])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    // With a key it serves on any address; only loopback is ever contacted here.
    let mut p = crate::crash::start_with(
        &db,
        &store,
        port,
        &[("LONGRUN_BIND", &format!("0.0.0.0:{port}"))],
    );
    let base = format!("http://127.0.0.1:{port}");
    crate::crash::wait_up(&reqwest::Client::new(), &base).await;
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/jobs"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    p.kill9();
    // Revoked by the command line, refused by the running service at once.
    let dir2 = tempfile::tempdir().unwrap();
    let db2 = format!("sqlite://{}/t.db?mode=rwc", dir2.path().display());
    let port2 = crate::crash::free_port();
    let mut p2 = crate::crash::start_with(
        &db2,
        &format!("file://{}/o", dir2.path().display()),
        port2,
        &[
            ("LONGRUN_BIND", &format!("0.0.0.0:{port2}")),
            ("LONGRUN_INSECURE_OPEN", "true"),
        ],
    );
    let base2 = format!("http://127.0.0.1:{port2}");
    crate::crash::wait_up(&reqwest::Client::new(), &base2).await;
    let r = reqwest::get(format!("{base2}/api/v1/jobs")).await.unwrap();
    assert_eq!(r.status(), 200, "--insecure-open serves without keys");
    p2.kill9();
}

/// Each limit answers its problem, stores nothing, and the service stays healthy.
#[tokio::test]
async fn limits() {
    let app = TestApp::spawn_with("sqlite", 1, |a| {
        a.max_body_size = Some("2KiB".into());
        a.max_import_records = Some(3);
        a.max_parts = Some(3);
        a.max_input_size = Some("1KiB".into());
        a.max_depth = Some(8);
    })
    .await;
    let count = |app: &TestApp| {
        let http = app.http.clone();
        let url = app.url("/api/v1/jobs");
        async move {
            let v: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            v["count"].as_u64().unwrap()
        }
    };
    // Body size, announced.
    let big = json!({"data": [{"tool_name": "x".repeat(3000), "tool_id": "T1", "category": "c", "features": []}]});
    let r = app.post_json("/api/v1/imports", &big).await;
    assert_problem(r, 413, "LONGRUN_MAX_BODY_SIZE").await;
    // Body size, streamed without a length.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = (0..5)
        .map(|i| {
            Ok(bytes::Bytes::from(if i == 0 {
                "{\"data\": [".to_string()
            } else {
                " ".repeat(1000)
            }))
        })
        .collect();
    let r = app
        .http
        .post(app.url("/api/v1/imports"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_problem(r, 413, "LONGRUN_MAX_BODY_SIZE").await;
    // Records per import.
    let recs: Vec<Value> = (0..4)
        .map(|i| json!({"tool_name": "n", "tool_id": format!("T{i}"), "category": "c", "features": []}))
        .collect();
    let r = app
        .post_json("/api/v1/imports", &json!({ "data": recs }))
        .await;
    assert_problem(r, 413, "LONGRUN_MAX_IMPORT_RECORDS").await;
    // Multipart parts.
    let mut form = reqwest::multipart::Form::new();
    for i in 0..4 {
        form = form.text("correlationId", format!("x{i}"));
    }
    let r = app
        .http
        .post(app.url("/api/v1/comparisons"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_problem(r, 413, "LONGRUN_MAX_PARTS").await;
    // Input size and depth of compared documents.
    let r = app
        .post_json(
            "/api/v1/comparisons",
            &json!({"inputA": {"content": format!("[\"{}\"]", "y".repeat(1500))}, "inputB": {"content": "[]"}}),
        )
        .await;
    assert_eq!(r.status(), 413);
    let deep = format!("{}{}", "[".repeat(20), "]".repeat(20));
    let r = app
        .post_json(
            "/api/v1/comparisons",
            &json!({"inputA": {"content": deep}, "inputB": {"content": "[]"}}),
        )
        .await;
    assert_problem(r, 400, "deeper").await;
    // `limit` on lists.
    let r = app
        .http
        .get(app.url("/api/v1/jobs?limit=1001"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "limit").await;
    let r = app
        .http
        .get(app.url("/api/tools?limit=0"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "limit").await;
    assert_eq!(count(&app).await, 0, "nothing was stored");
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}
