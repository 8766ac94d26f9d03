//! Bulk actions (`POST /api/v1/jobs/actions`): a job of its own that cancels, restarts or
//! deletes what its filter matched when it was made, in a lane the workers' queue cannot hold
//! up, for its own tenant only, and that survives a crash without acting on a job twice.

use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

use crate::crash::{free_port, start_with, wait_up};
use crate::helpers::*;

const ACTIONS: &str = "/api/v1/jobs/actions";

async fn submit(app: &TestApp, key: &str, body: Value) -> Value {
    let (s, j, _) = keyed(app, Method::POST, "/api/v1/jobs", Some(key), Some(&body)).await;
    assert_eq!(s, 201, "{j}");
    j
}

/// Every job of the tenant of `key` (walking the `next` links), by id.
async fn all_jobs(app: &TestApp, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut next = Some("/api/v1/jobs?limit=1000".to_string());
    while let Some(href) = next {
        let (s, page, _) = get_as(app, &href, Some(key)).await;
        assert_eq!(s, 200, "{page}");
        out.extend(page["jobs"].as_array().unwrap().iter().cloned());
        next = link(&page, "next");
    }
    out
}

fn count(jobs: &[Value], f: impl Fn(&Value) -> bool) -> usize {
    jobs.iter().filter(|j| f(j)).count()
}

/// POST a bulk action; (status, document, Location).
async fn act(app: &TestApp, key: &str, body: Value) -> (u16, Value, Option<String>) {
    let r = app
        .http
        .post(app.url(ACTIONS))
        .bearer_auth(key)
        .header("accept", "application/json")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let loc = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    let doc: Value = r.json().await.unwrap();
    if status >= 400 {
        assert!(ct.starts_with("application/problem+json"), "{ct}: {doc}");
    }
    (status, doc, loc)
}

/// The summary of an ended bulk action (its `result`), checked to add up.
async fn summary(app: &TestApp, key: &str, job: &Value) -> Value {
    assert_eq!(job["jobStatus"], "SUCCESS", "{job}");
    let (s, result, _) = get_as(app, &link(job, "result").unwrap(), Some(key)).await;
    assert_eq!(s, 200, "{result}");
    let sum = result["summary"].clone();
    assert_eq!(
        sum["matched"].as_u64().unwrap(),
        sum["acted"].as_u64().unwrap() + sum["skipped"].as_u64().unwrap(),
        "{sum}"
    );
    assert_eq!(
        sum["skipped"].as_u64().unwrap(),
        sum["skippedBecause"]["illegalState"].as_u64().unwrap()
            + sum["skippedBecause"]["gone"].as_u64().unwrap(),
        "{sum}"
    );
    sum
}

/// One worker busy with a long job and 60 jobs queued behind it: a bulk cancel of the queued
/// ones starts at once, cancels all 60 and nothing else, and says so in its result (JSON and
/// XML) and its messages.
async fn bulk_cancel_runs_while_every_worker_is_busy(backend: &'static str) {
    let app = TestApp::spawn(backend, 1).await;
    let key = app.key("acme", "submit").await;
    let long = submit(
        &app,
        &key,
        json!({"operation": "sleepy", "input": {"ms": 100, "steps": 600}}),
    )
    .await;
    let long_href = link(&long, "self").unwrap();
    for _ in 0..500 {
        let (_, j, _) = get_as(&app, &long_href, Some(&key)).await;
        if j["jobStatus"] == "PROCESSING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let n = 60;
    futures::stream::iter(0..n)
        .for_each_concurrent(8, |_| {
            let (app, key) = (&app, &key);
            async move {
                submit(app, key, json!({"operation": "sleepy", "input": {"ms": 1}})).await;
            }
        })
        .await;
    let before = all_jobs(&app, &key).await;
    assert_eq!(count(&before, |j| j["jobStatus"] == "QUEUED"), n);

    let (s, doc, loc) = act(
        &app,
        &key,
        json!({"action": "cancel", "filter": {"status": ["QUEUED"]}}),
    )
    .await;
    assert_eq!(s, 201, "{doc}");
    let loc = loc.expect("Location");
    assert_eq!(link(&doc, "self").as_deref(), Some(loc.as_str()));
    assert_eq!(doc["operation"], "bulk");
    // It ends long before the one worker is free again.
    let done = ended_as(&app, &loc, &key).await;
    let sum = summary(&app, &key, &done).await;
    assert_eq!(sum["action"], "cancel");
    assert_eq!(sum["matched"], n, "{sum}");
    assert_eq!(sum["acted"], n, "{sum}");
    assert_eq!(sum["skipped"], 0, "{sum}");
    assert_eq!(sum["filter"]["status"], json!(["QUEUED"]), "{sum}");
    assert!(sum["filter"]["createdBefore"].is_string(), "{sum}");

    let after = all_jobs(&app, &key).await;
    let sleepy: Vec<Value> = after
        .iter()
        .filter(|j| j["operation"] == "sleepy")
        .cloned()
        .collect();
    assert_eq!(count(&sleepy, |j| j["jobStatus"] == "CANCELLED"), n);
    let (_, running, _) = get_as(&app, &long_href, Some(&key)).await;
    assert_eq!(running["jobStatus"], "PROCESSING", "untouched: {running}");
    let (_, op, _) = get_as(&app, &link(&running, "operator").unwrap(), Some(&key)).await;
    assert_eq!(op["cancelRequested"], false, "{op}");
    // The bulk action is in the audit list, as a job of its own.
    assert_eq!(count(&after, |j| j["operation"] == "bulk"), 1);
    // One message per batch, and each cancelled job says who cancelled it.
    let (_, msgs, _) = get_as(&app, &format!("{loc}/messages"), Some(&key)).await;
    assert!(
        msgs.to_string()
            .contains("batch 1: 60 cancelled, 0 skipped"),
        "{msgs}"
    );
    let some = sleepy
        .iter()
        .find(|j| j["jobStatus"] == "CANCELLED")
        .unwrap();
    let (_, m, _) = get_as(
        &app,
        &format!("{}/messages", link(some, "self").unwrap()),
        Some(&key),
    )
    .await;
    assert!(
        m.to_string().contains(&format!(
            "CANCELLED while queued by bulk action {}",
            done["jobId"].as_str().unwrap()
        )),
        "{m}"
    );
    // The result in XML too.
    let r = app
        .http
        .get(link(&done, "result").unwrap())
        .bearer_auth(&key)
        .header("accept", "application/xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let xml = r.text().await.unwrap();
    assert!(xml.contains("<acted>60</acted>"), "{xml}");

    // A second cancel of the same finds nothing queued: nothing is acted on twice.
    let (s, _, loc2) = act(
        &app,
        &key,
        json!({"action": "cancel", "filter": {"status": ["QUEUED"]}}),
    )
    .await;
    assert_eq!(s, 201);
    let again = ended_as(&app, &loc2.unwrap(), &key).await;
    let sum = summary(&app, &key, &again).await;
    assert_eq!(
        (sum["matched"].as_u64(), sum["acted"].as_u64()),
        (Some(0), Some(0))
    );
    keyed(
        &app,
        Method::POST,
        &format!("{long_href}/cancel"),
        Some(&key),
        None,
    )
    .await;
    app.stop().await;
}
crate::per_backend!(bulk_cancel_runs_while_every_worker_is_busy);

/// Restart and delete need an admin key (403 and nothing stored for a submit key); with one
/// they act on the caller's tenant only, restart each job once, and never touch a bulk action.
async fn bulk_restart_and_delete_need_admin_and_stay_in_their_tenant(backend: &'static str) {
    let app = TestApp::spawn(backend, 2).await;
    let submit_key = app.key("acme", "submit").await;
    let admin = app.key("acme", "admin").await;
    let globex = app.key("globex", "admin").await;
    let failing = json!({"operation": "sleepy", "input": {"ms": 1, "fail": true}});
    let mut acme_jobs = Vec::new();
    for _ in 0..3 {
        let j = submit(&app, &submit_key, failing.clone()).await;
        acme_jobs.push(link(&j, "self").unwrap());
    }
    let mut globex_jobs = Vec::new();
    for _ in 0..2 {
        let j = submit(&app, &globex, failing.clone()).await;
        globex_jobs.push(link(&j, "self").unwrap());
    }
    for j in &acme_jobs {
        ended_as(&app, j, &admin).await;
    }
    for j in &globex_jobs {
        ended_as(&app, j, &globex).await;
    }
    let before = all_jobs(&app, &admin).await.len();
    for action in ["restart", "delete"] {
        let (s, p, loc) = act(
            &app,
            &submit_key,
            json!({"action": action, "filter": {"status": ["FAILED"]}}),
        )
        .await;
        assert_eq!(s, 403, "{p}");
        assert_eq!(p["type"], "urn:longrun:problem:insufficient-scope");
        assert!(p["detail"].as_str().unwrap().contains(action), "{p}");
        assert!(loc.is_none());
    }
    assert_eq!(all_jobs(&app, &admin).await.len(), before, "nothing stored");

    // Restart: no status filter, so a job that failed again after its restart would match;
    // it is restarted once all the same.
    let (s, doc, loc) = act(
        &app,
        &admin,
        json!({"action": "restart", "filter": {"operation": "sleepy"}}),
    )
    .await;
    assert_eq!(s, 201, "{doc}");
    let done = ended_as(&app, &loc.unwrap(), &admin).await;
    let sum = summary(&app, &admin, &done).await;
    assert_eq!(
        (sum["matched"].as_u64(), sum["acted"].as_u64()),
        (Some(3), Some(3)),
        "{sum}"
    );
    for j in &acme_jobs {
        let j = ended_as(&app, j, &admin).await;
        assert_eq!(
            (j["jobStatus"].as_str(), j["attempt"].as_i64()),
            (Some("FAILED"), Some(2)),
            "{j}"
        );
    }
    for j in &globex_jobs {
        let (_, j, _) = get_as(&app, j, Some(&globex)).await;
        assert_eq!(j["attempt"], 1, "another tenant's job is untouched: {j}");
    }

    // A bulk action never matches bulk actions.
    let (s, _, loc) = act(
        &app,
        &admin,
        json!({"action": "delete", "filter": {"operation": "bulk"}}),
    )
    .await;
    assert_eq!(s, 201);
    let done = ended_as(&app, &loc.unwrap(), &admin).await;
    assert_eq!(summary(&app, &admin, &done).await["matched"], 0);

    // Delete: acme's failed jobs go, globex's stay.
    let (s, _, loc) = act(
        &app,
        &admin,
        json!({"action": "delete", "filter": {"status": ["FAILED"]}}),
    )
    .await;
    assert_eq!(s, 201);
    let done = ended_as(&app, &loc.unwrap(), &admin).await;
    let sum = summary(&app, &admin, &done).await;
    assert_eq!(sum["acted"], 3, "{sum}");
    for j in &acme_jobs {
        let (s, _, _) = get_as(&app, j, Some(&admin)).await;
        assert_eq!(s, 410);
    }
    for j in &globex_jobs {
        let (s, j, _) = get_as(&app, j, Some(&globex)).await;
        assert_eq!((s, j["jobStatus"].as_str()), (200, Some("FAILED")), "{j}");
    }
    let left = all_jobs(&app, &admin).await;
    assert_eq!(
        count(&left, |j| j["operation"] == "bulk"),
        3,
        "the bulk actions stay"
    );
    app.stop().await;
}
crate::per_backend!(bulk_restart_and_delete_need_admin_and_stay_in_their_tenant);

/// The bulk operation is not a public one: the generic submission refuses it, in JSON and XML,
/// whatever the key's scope, and stores nothing.
async fn bulk_cannot_be_submitted_as_an_operation(backend: &'static str) {
    let app = TestApp::spawn(backend, 1).await;
    let admin = app.key("acme", "admin").await;
    for input in [
        json!({"action": "cancel"}),
        json!({"action": "delete", "filter": {"status": ["FAILED"]}}),
    ] {
        let (s, p, _) = keyed(
            &app,
            Method::POST,
            "/api/v1/jobs",
            Some(&admin),
            Some(&json!({"operation": "bulk", "input": input})),
        )
        .await;
        assert_eq!(s, 400, "{p}");
        assert_eq!(p["type"], "urn:longrun:problem:bad-request");
        assert!(p["detail"].as_str().unwrap().contains("bulk"), "{p}");
    }
    let r = app
        .http
        .post(app.url("/api/v1/jobs"))
        .bearer_auth(&admin)
        .header("content-type", "application/xml")
        .header("accept", "application/xml")
        .body("<job><operation>bulk</operation><input><action>cancel</action></input></job>")
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "bulk").await;
    let (_, ops, _) = get_as(&app, "/api/v1/operations", Some(&admin)).await;
    assert!(!ops.to_string().contains("\"bulk\""), "{ops}");
    assert!(all_jobs(&app, &admin).await.is_empty());
    app.stop().await;
}
crate::per_backend!(bulk_cannot_be_submitted_as_an_operation);

/// Bad bodies are 400 problems and store nothing; an XML body is taken as a JSON one is; an
/// `Idempotency-Key` answers a retry with the first answer.
async fn bulk_bad_input_is_refused_and_stores_nothing(backend: &'static str) {
    let app = TestApp::spawn(backend, 1).await;
    let admin = app.key("acme", "admin").await;
    for (body, says) in [
        (
            json!({"action": "explode", "filter": {"status": ["QUEUED"]}}),
            "explode",
        ),
        (json!({"filter": {"status": ["QUEUED"]}}), "BulkActionKind"),
        (
            json!({"action": "cancel", "filter": {"status": ["NOPE"]}}),
            "NOPE",
        ),
        (
            json!({"action": "cancel", "filter": {"status": ["DELETED"]}}),
            "DELETED",
        ),
        (
            json!({"action": "cancel", "filter": {"status": ["SUCCESS"]}}),
            "SUCCESS",
        ),
        (
            json!({"action": "restart", "filter": {"status": ["QUEUED"]}}),
            "QUEUED",
        ),
        (
            json!({"action": "cancel", "filter": {"createdAfter": "yesterday"}}),
            "createdAfter",
        ),
        (
            json!({"action": "cancel", "filter": {"owner": "globex"}}),
            "owner",
        ),
        (json!({"action": "cancel", "owner": "globex"}), "owner"),
        (json!({"action": "delete"}), "filter"),
        (json!({"action": "delete", "filter": {}}), "filter"),
        (json!({"action": "restart", "filter": {}}), "filter"),
    ] {
        let (s, p, loc) = act(&app, &admin, body.clone()).await;
        assert_eq!(s, 400, "{body}: {p}");
        assert_eq!(p["type"], "urn:longrun:problem:bad-request", "{body}: {p}");
        assert!(
            p["detail"].as_str().unwrap_or_default().contains(says),
            "{body}: {p}"
        );
        assert!(loc.is_none());
    }
    let r = app
        .http
        .post(app.url(ACTIONS))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{\"action\": \"cancel\",")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(all_jobs(&app, &admin).await.is_empty(), "nothing stored");

    // XML, as JSON.
    let r = app
        .http
        .post(app.url(ACTIONS))
        .bearer_auth(&admin)
        .header("content-type", "application/xml")
        .header("accept", "application/xml")
        .body(
            "<bulkAction><action>delete</action><filter><status><status>FAILED</status>\
             <status>CANCELLED</status></status><operation>sleepy</operation></filter>\
             </bulkAction>",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let loc = location(&r);
    let done = ended_as(&app, &loc, &admin).await;
    let sum = summary(&app, &admin, &done).await;
    assert_eq!(
        sum["filter"]["status"],
        json!(["FAILED", "CANCELLED"]),
        "{sum}"
    );
    assert_eq!(sum["filter"]["operation"], "sleepy", "{sum}");
    let r = app
        .http
        .post(app.url(ACTIONS))
        .bearer_auth(&admin)
        .header("content-type", "application/xml")
        .body("<bulkAction><action>delete</action></bulkAction>")
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "filter").await;

    // The same Idempotency-Key: one bulk action.
    let send = || {
        app.http
            .post(app.url(ACTIONS))
            .bearer_auth(&admin)
            .header("idempotency-key", "bulk-1")
            .json(&json!({"action": "cancel", "filter": {"status": ["QUEUED"]}}))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 201);
    let second = send().await.unwrap();
    assert_eq!(second.status(), 201);
    assert_eq!(location(&first), location(&second));
    let jobs = all_jobs(&app, &admin).await;
    assert_eq!(count(&jobs, |j| j["operation"] == "bulk"), 2, "{jobs:?}");
    app.stop().await;
}
crate::per_backend!(bulk_bad_input_is_refused_and_stores_nothing);

/// The real binary is killed with SIGKILL in the middle of a bulk cancel of 1,500 queued jobs
/// and started again on the same database: the action goes on from its checkpoint as its next
/// attempt and ends; every job is cancelled exactly once (one state message each) and the
/// counts say so.
async fn bulk_cancel_survives_kill_9(backend: &'static str) {
    let dir = tempfile::tempdir().unwrap();
    let db = database_for(backend, dir.path()).await;
    let store = store_for(backend, dir.path());
    let http = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start_with(&db, &store, port, &[]);
    wait_up(&http, &base).await;
    // Two imports, which the action must not touch. The jobs it matches wait for an hour, so
    // they stay queued throughout, even when an import ends early and frees the worker.
    let mut imports = Vec::new();
    for prefix in ["A", "B"] {
        let r = http
            .post(format!("{base}/api/v1/imports"))
            .header("content-type", "application/json")
            .body(generated(300_000, prefix))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        imports.push(location(&r));
    }
    let n = 1500;
    let not_before = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    futures::stream::iter(0..n)
        .for_each_concurrent(16, |_| {
            let (http, base, not_before) = (&http, &base, &not_before);
            async move {
                let r = http
                    .post(format!("{base}/api/v1/jobs"))
                    .json(&json!({"operation": "noop", "async": {"notBefore": not_before}}))
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                assert_eq!(status, 201, "{}", r.text().await.unwrap_or_default());
            }
        })
        .await;
    let r = http
        .post(format!("{base}{ACTIONS}"))
        .json(&json!({"action": "cancel", "filter": {"status": ["QUEUED"], "operation": "noop"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let bulk = location(&r);
    let mut killed = false;
    for _ in 0..4000 {
        let v = json_of(&http, &bulk).await;
        let done = v["progress"]["amount"].as_i64().unwrap_or(0);
        assert_ne!(
            v["jobStatus"], "SUCCESS",
            "the action ended before it could be killed"
        );
        if done > 0 {
            child.kill9();
            killed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(killed);
    let mut child = start_with(&db, &store, port, &[]);
    wait_up(&http, &base).await;
    // Jobs submitted after the action was made are not what it matched: left alone. They wait
    // for an hour too, so they are still QUEUED (what the action's filter names) when it ends.
    let later = 20;
    for _ in 0..later {
        let r = http
            .post(format!("{base}/api/v1/jobs"))
            .json(&json!({"operation": "noop", "correlationId": "later",
                "async": {"notBefore": not_before}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    // Up to four minutes: the whole suite may be running beside it on a small machine.
    let mut job = Value::Null;
    for _ in 0..2400 {
        job = json_of(&http, &bulk).await;
        if ["SUCCESS", "FAILED", "CANCELLED"].contains(&job["jobStatus"].as_str().unwrap_or("")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(job["jobStatus"], "SUCCESS", "{job}");
    assert_eq!(job["attempt"], 2, "{job}");
    let result = json_of(&http, &link(&job, "result").unwrap()).await;
    let sum = &result["summary"];
    assert_eq!(sum["matched"], n, "{sum}");
    assert_eq!(sum["acted"], n, "{sum}");
    assert_eq!(sum["skipped"], 0, "{sum}");
    let msgs = json_of(&http, &format!("{bulk}/messages")).await;
    assert!(msgs.to_string().contains("going on after"), "{msgs}");
    // Every noop job it matched: CANCELLED, with one CANCELLED message; the later ones queued.
    let mut ids = Vec::new();
    let mut queued = 0;
    let mut next = Some(format!("{base}/api/v1/jobs?operation=noop&limit=1000"));
    while let Some(u) = next {
        let page = json_of(&http, &u).await;
        for j in page["jobs"].as_array().unwrap() {
            if j["correlationId"] == "later" {
                assert_eq!(j["jobStatus"], "QUEUED", "{j}");
                queued += 1;
            } else {
                assert_eq!(j["jobStatus"], "CANCELLED", "{j}");
                ids.push(link(j, "self").unwrap());
            }
        }
        next = link(&page, "next");
    }
    assert_eq!((ids.len(), queued), (n, later));
    let twice: Vec<String> = futures::stream::iter(ids)
        .map(|href| {
            let http = &http;
            async move {
                let m = json_of(http, &format!("{href}/messages")).await;
                let cancels = m["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|m| {
                        m["kind"] == "state" && m["text"].as_str().unwrap().contains("CANCELLED")
                    })
                    .count();
                (href, cancels)
            }
        })
        .buffer_unordered(16)
        .filter_map(|(href, c)| async move { (c != 1).then(|| format!("{href}: {c}")) })
        .collect()
        .await;
    assert!(twice.is_empty(), "{twice:?}");
    // The imports were not a match: they run on.
    for import in &imports {
        let imp = json_of(&http, import).await;
        assert_ne!(imp["jobStatus"], "CANCELLED", "{imp}");
    }
    child.kill9();
}
crate::per_backend!(bulk_cancel_survives_kill_9);
