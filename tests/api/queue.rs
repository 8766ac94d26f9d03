//! The order of the queue, through HTTP: priorities, the tenants taking turns, and jobs scheduled
//! for later; each on every database.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

/// Submit `body` to `/api/v1/jobs` with `key`; the job's document.
async fn submit(app: &TestApp, key: Option<&str>, body: Value) -> Value {
    let (s, job, text) = keyed(app, Method::POST, "/api/v1/jobs", key, Some(&body)).await;
    assert_eq!(s, 201, "{text}");
    job
}

/// Hold the only worker with a sleepy job until `let_go`; the job's document.
async fn hold(app: &TestApp, key: Option<&str>) -> Value {
    let job = submit(
        app,
        key,
        json!({"operation": "sleepy", "input": {"ms": 50, "steps": 2000}}),
    )
    .await;
    let href = link(&job, "self").unwrap();
    for _ in 0..500 {
        let (_, j, _) = get_as(app, &href, key).await;
        if j["jobStatus"] != "QUEUED" {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the holding job never started");
}

/// Cancel the holding job, so the worker takes the queue.
async fn let_go(app: &TestApp, key: Option<&str>, held: &Value) {
    let cancel = link(held, "cancel").unwrap();
    let (s, _, text) = keyed(app, Method::POST, &cancel, key, None).await;
    assert!(s == 200 || s == 202, "{s} {text}");
}

fn time(job: &Value, field: &str) -> DateTime<Utc> {
    job[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {job}"))
        .parse()
        .unwrap()
}

async fn higher_priorities_run_first(backend: &'static str) {
    let app = TestApp::spawn(backend, 1).await;
    let held = hold(&app, None).await;
    // Submitted in this order behind the busy worker; they must start high, high2, plain,
    // plain2, low: higher first, first in first out within a priority.
    let mut jobs = Vec::new();
    for (name, priority) in [
        ("low", Some(-3)),
        ("plain", None),
        ("high", Some(7)),
        ("plain2", Some(0)),
        ("high2", Some(7)),
    ] {
        let mut body = json!({"operation": "sleepy", "input": {"ms": 20}, "correlationId": name});
        if let Some(p) = priority {
            body["async"] = json!({"priority": p});
        }
        let job = submit(&app, None, body).await;
        assert_eq!(job["priority"], priority.unwrap_or(0), "{job}");
        jobs.push((name, link(&job, "self").unwrap()));
    }
    // Both encodings show it.
    let xml = app
        .http
        .get(&jobs[2].1)
        .header("accept", "application/xml")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(xml.contains("<priority>7</priority>"), "{xml}");
    let_go(&app, None, &held).await;
    let mut started = Vec::new();
    for (name, href) in &jobs {
        let job = app.wait_end(href).await;
        assert_eq!(job["jobStatus"], "SUCCESS", "{job}");
        started.push((time(&job, "startTime"), *name));
    }
    started.sort();
    let order: Vec<&str> = started.iter().map(|(_, n)| *n).collect();
    assert_eq!(order, ["high", "high2", "plain", "plain2", "low"]);
    // The audit filters take a priority: the list, and a bulk action's or export's filter.
    let (s, _, list) = app.get(&app.url("/api/v1/jobs?priority=7")).await;
    assert_eq!(s, 200, "{list}");
    let names: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["correlationId"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["high", "high2"], "{list}");
    let (s, _, list) = app.get(&app.url("/api/v1/jobs?priority=-3")).await;
    assert_eq!((s, list["jobs"].as_array().unwrap().len()), (200, 1));
    let r = app
        .http
        .get(app.url("/api/v1/jobs?priority=11"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "priority").await;
    let r = app
        .post_json(
            "/api/v1/exports",
            &json!({"dataset": "jobs", "format": "ndjson", "filter": {"priority": 7}}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let export = app.wait_end(&location(&r)).await;
    assert_eq!(export["summary"]["rows"], 2, "{export}");
    app.stop().await;
}
crate::per_backend!(higher_priorities_run_first);

async fn tenants_take_turns(backend: &'static str) {
    let app = TestApp::spawn_with(backend, 1, |a| a.rate_limit = Some("off".into())).await;
    let a = app.key("tenant-a", "submit").await;
    let b = app.key("tenant-b", "submit").await;
    let held = hold(&app, Some(&a)).await;
    // A queues 1,000 no-op jobs, then B queues 10.
    let noop = json!({"operation": "noop"});
    let a_jobs: Vec<Value> = futures::stream::iter(0..1000)
        .map(|_| submit(&app, Some(&a), noop.clone()))
        .buffered(8)
        .collect()
        .await;
    let mut b_jobs = Vec::new();
    for _ in 0..10 {
        b_jobs.push(submit(&app, Some(&b), noop.clone()).await);
    }
    let_go(&app, Some(&a), &held).await;
    let mut b_last = None;
    for job in &b_jobs {
        let done = ended_as(&app, &link(job, "self").unwrap(), &b).await;
        assert_eq!(done["jobStatus"], "SUCCESS");
        b_last = b_last.max(Some(time(&done, "finishedTime")));
    }
    // A's 200th job (in the order A submitted them) ends after all of B's.
    let a200 = ended_as(&app, &link(&a_jobs[199], "self").unwrap(), &a).await;
    assert!(
        b_last.unwrap() < time(&a200, "finishedTime"),
        "B's last ended at {b_last:?}, A's 200th at {}",
        a200["finishedTime"]
    );
    app.stop().await;
}
crate::per_backend!(tenants_take_turns);

async fn a_scheduled_job_waits_for_its_time(backend: &'static str) {
    let app = TestApp::spawn(backend, 1).await;
    let at_text = (Utc::now() + chrono::Duration::milliseconds(2500))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let at: DateTime<Utc> = at_text.parse().unwrap();
    let later = submit(
        &app,
        None,
        json!({"operation": "noop", "async": {"notBefore": at_text}}),
    )
    .await;
    assert_eq!(later["jobStatus"], "QUEUED");
    assert_eq!(time(&later, "notBefore"), at, "{later}");
    let href = link(&later, "self").unwrap();
    // Seed 003's tasks call a waiting job WAITING.
    let task = link(&later, "task").unwrap();
    let (_, t, _) = get_as(&app, &task, None).await;
    assert_eq!(t["task"]["status"], "WAITING", "{t}");
    // It does not hold the queue: a job submitted after it runs at once.
    let now = submit(&app, None, json!({"operation": "noop"})).await;
    let done = app.wait_end(&link(&now, "self").unwrap()).await;
    assert_eq!(done["jobStatus"], "SUCCESS");
    let (_, j, _) = get_as(&app, &href, None).await;
    assert_eq!(j["jobStatus"], "QUEUED", "{j}");
    assert!(Utc::now() < at, "the test was too slow to see the job wait");
    // Then it starts, not before its time.
    let done = app.wait_end(&href).await;
    assert_eq!(done["jobStatus"], "SUCCESS", "{done}");
    assert!(time(&done, "startTime") >= at, "{done}");
    // A job scheduled for an hour from now can be cancelled while it waits.
    let hour = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let waiting = submit(
        &app,
        None,
        json!({"operation": "noop", "async": {"notBefore": hour}}),
    )
    .await;
    let cancel = link(&waiting, "cancel").unwrap();
    let (s, j, text) = keyed(&app, Method::POST, &cancel, None, None).await;
    assert_eq!(s, 200, "{text}");
    assert_eq!(j["jobStatus"], "CANCELLED");
    app.stop().await;
}
crate::per_backend!(a_scheduled_job_waits_for_its_time);

async fn a_run_past_its_time_limit_fails(backend: &'static str) {
    let app = TestApp::spawn(backend, 1).await;
    // A sleepy job of 100 s asked to take at most one: the job shows its limit.
    let job = submit(
        &app,
        None,
        json!({"operation": "sleepy", "input": {"ms": 50, "steps": 2000},
               "async": {"timeout": "PT1S"}}),
    )
    .await;
    assert_eq!(job["timeout"], "PT1S", "{job}");
    let href = link(&job, "self").unwrap();
    let xml = app
        .http
        .get(&href)
        .header("accept", "application/xml")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(xml.contains("<timeout>PT1S</timeout>"), "{xml}");
    let done = app.wait_end(&href).await;
    assert_eq!(done["jobStatus"], "FAILED", "{done}");
    assert_eq!(
        done["error"]["type"], "urn:longrun:problem:timeout",
        "{done}"
    );
    let detail = done["error"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("PT1S") && detail.contains("timeout"),
        "{detail}"
    );
    let ran = time(&done, "finishedTime") - time(&done, "startTime");
    assert!(
        ran >= chrono::Duration::milliseconds(950) && ran < chrono::Duration::seconds(15),
        "ran {ran}"
    );
    // Its log says so.
    let (_, _, log) = app.get(&format!("{href}/messages")).await;
    assert!(log.to_string().contains("time limit of PT1S"), "{log}");
    // Within its limit (given in seconds) a job ends as it would have.
    let job = submit(
        &app,
        None,
        json!({"operation": "sleepy", "input": {"ms": 10, "steps": 2}, "async": {"timeout": 30}}),
    )
    .await;
    assert_eq!(job["timeout"], "PT30S", "{job}");
    let done = app.wait_end(&link(&job, "self").unwrap()).await;
    assert_eq!(done["jobStatus"], "SUCCESS", "{done}");
    app.stop().await;
}
crate::per_backend!(a_run_past_its_time_limit_fails);

/// `LONGRUN_MAX_RUNTIME` caps every run of its operation, a submission may ask for less, and
/// the error names which limit stopped it.
#[tokio::test]
async fn the_operations_limit_caps_its_runs() {
    let app = TestApp::spawn_with("sqlite", 1, |a| a.max_runtime = Some("sleepy=1s".into())).await;
    let long = json!({"operation": "sleepy", "input": {"ms": 50, "steps": 2000}});
    let job = submit(&app, None, long.clone()).await;
    assert_eq!(job["timeout"], "PT1S", "{job}");
    let done = app.wait_end(&link(&job, "self").unwrap()).await;
    assert_eq!(done["jobStatus"], "FAILED", "{done}");
    assert_eq!(
        done["error"]["type"], "urn:longrun:problem:timeout",
        "{done}"
    );
    assert!(
        done["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("LONGRUN_MAX_RUNTIME"),
        "{done}"
    );
    // Asking for more does not lift the cap; asking for less is kept.
    let mut body = long.clone();
    body["async"] = json!({"timeout": "PT1H"});
    assert_eq!(submit(&app, None, body.clone()).await["timeout"], "PT1S");
    body["async"] = json!({"timeout": 0.5});
    assert_eq!(submit(&app, None, body).await["timeout"], "PT0.5S");
    // Other operations have no limit.
    let noop = submit(&app, None, json!({"operation": "noop"})).await;
    assert!(noop.get("timeout").is_none(), "{noop}");
    app.stop().await;
}

/// Every submission route reads the same two fields of its `async` element (a multipart form
/// has them as fields of their own).
#[tokio::test]
async fn every_submission_route_takes_a_priority_and_a_time() {
    let app = TestApp::spawn("sqlite", 1).await;
    let held = hold(&app, None).await;
    let at = (Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    // The canonical import, as XML.
    let r = app
        .post_raw(
            "/api/v1/imports",
            "application/xml",
            format!(
                "<request><data><tool><tool_id>T1</tool_id><tool_name>A</tool_name>\
                 <category>Data</category><url>https://example.com/a</url></tool></data>\
                 <async><priority>-4</priority><notBefore>{at}</notBefore></async></request>"
            ),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let (_, _, job) = app.get(&location(&r)).await;
    assert_eq!(job["priority"], -4, "{job}");
    assert!(job["notBefore"].is_string(), "{job}");
    // Seed 000's import.
    let r = app
        .post_json(
            "/api/tools/import",
            &json!({"data": seed_payload()["data"], "async": {"priority": 3}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let view: Value = r.json().await.unwrap();
    let id = view["jobId"].as_str().unwrap();
    let (_, _, job) = app.get(&app.url(&format!("/api/v1/jobs/{id}"))).await;
    assert_eq!(job["priority"], 3, "{job}");
    // A multipart comparison: `priority` and `notBefore` fields (a time makes it asynchronous).
    let form = reqwest::multipart::Form::new()
        .text("inputA", "<a/>")
        .text("inputB", "<a/>")
        .text("priority", "9")
        .text("notBefore", at.clone());
    let r = app
        .http
        .post(app.url("/api/v1/comparisons"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (_, _, job) = app.get(&location(&r)).await;
    assert_eq!(
        (job["priority"].as_i64(), job["jobStatus"].as_str()),
        (Some(9), Some("QUEUED"))
    );
    let_go(&app, None, &held).await;
    app.stop().await;
}

/// A priority out of range, one that is not a number, or a time that is not RFC 3339 is a 400
/// problem that names the field, and stores nothing.
#[tokio::test]
async fn a_bad_priority_or_time_is_refused() {
    let app = TestApp::spawn("sqlite", 1).await;
    for (body, names) in [
        (
            json!({"operation": "noop", "async": {"priority": 11}}),
            "priority",
        ),
        (
            json!({"operation": "noop", "async": {"priority": "high"}}),
            "priority",
        ),
        (
            json!({"operation": "noop", "async": {"notBefore": "tomorrow"}}),
            "notBefore",
        ),
        (
            json!({"operation": "noop", "async": {"timeout": "P1M"}}),
            "timeout",
        ),
        (
            json!({"operation": "noop", "async": {"timeout": 0}}),
            "timeout",
        ),
        (
            json!({"operation": "noop", "async": {"timeout": -3}}),
            "timeout",
        ),
        (
            json!({"operation": "noop", "async": {"timeout": true}}),
            "timeout",
        ),
        (
            json!({"operation": "noop", "async": {"timeout": "PT"}}),
            "timeout",
        ),
    ] {
        let r = app.post_json("/api/v1/jobs", &body).await;
        let p = assert_problem(r, 400, names).await;
        assert!(
            p["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:longrun:problem:"),
            "{p}"
        );
    }
    for xml in [
        "<request><data/><async><priority>99</priority></async></request>",
        "<request><data/><async><notBefore>soon</notBefore></async></request>",
        "<request><data/><async><timeout>soon</timeout></async></request>",
    ] {
        let r = app
            .post_raw("/api/v1/imports", "application/xml", xml)
            .await;
        assert_eq!(r.status(), 400, "{xml}");
    }
    let (_, _, list) = app.get(&app.url("/api/v1/jobs")).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0, "{list}");
    app.stop().await;
}

/// The most of `jobs` (ended) that ran at one time, from their start and finish times.
fn most_at_once(jobs: &[&Value]) -> usize {
    let spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = jobs
        .iter()
        .map(|j| (time(j, "startTime"), time(j, "finishedTime")))
        .collect();
    spans
        .iter()
        .map(|(at, _)| spans.iter().filter(|(s, f)| s <= at && at < f).count())
        .max()
        .unwrap_or(0)
}

/// `LONGRUN_TENANT_CONCURRENCY` and `LONGRUN_OPERATION_CONCURRENCY`: with four workers free, a
/// tenant never runs more than its two at once and an operation capped at one runs alone, while
/// the workers take the other jobs meanwhile.
async fn a_tenant_and_an_operation_run_no_more_than_their_limits(backend: &'static str) {
    let app = TestApp::spawn_with(backend, 4, |a| {
        a.rate_limit = Some("off".into());
        a.tenant_concurrency = Some("2".into());
        a.operation_concurrency = Some("sleepy=1".into());
    })
    .await;
    let a = app.key("tenant-a", "submit").await;
    let b = app.key("tenant-b", "submit").await;
    let slow_noop = json!({"operation": "noop", "input": {"log": ["one", "two"], "pauseMs": 150}});
    let sleepy = json!({"operation": "sleepy", "input": {"ms": 50, "steps": 4}});
    let mut a_jobs = Vec::new();
    for _ in 0..6 {
        a_jobs.push(submit(&app, Some(&a), slow_noop.clone()).await);
    }
    // B's run one at a time (their operation's limit), beside A's two.
    let mut b_jobs = Vec::new();
    for _ in 0..3 {
        b_jobs.push(submit(&app, Some(&b), sleepy.clone()).await);
    }
    let mut a_done = Vec::new();
    for job in &a_jobs {
        a_done.push(ended_as(&app, &link(job, "self").unwrap(), &a).await);
    }
    let mut b_done = Vec::new();
    for job in &b_jobs {
        b_done.push(ended_as(&app, &link(job, "self").unwrap(), &b).await);
    }
    for j in a_done.iter().chain(&b_done) {
        assert_eq!(j["jobStatus"], "SUCCESS", "{j}");
    }
    let a_refs: Vec<&Value> = a_done.iter().collect();
    let b_refs: Vec<&Value> = b_done.iter().collect();
    assert_eq!(most_at_once(&a_refs), 2, "{a_done:#?}");
    assert_eq!(most_at_once(&b_refs), 1, "{b_done:#?}");
    // B's first started while A still had jobs to run: neither limit held the other back.
    let a_last_start = a_done.iter().map(|j| time(j, "startTime")).max().unwrap();
    let b_first_start = b_done.iter().map(|j| time(j, "startTime")).min().unwrap();
    assert!(
        b_first_start < a_last_start,
        "{b_first_start} {a_last_start}"
    );
    app.stop().await;
}
crate::per_backend!(a_tenant_and_an_operation_run_no_more_than_their_limits);

/// Two instances on one PostgreSQL database, four idle workers each, and a burst of one tenant's
/// jobs: the limit of two holds across both, although every worker claims at once.
#[tokio::test]
async fn a_tenants_limit_holds_across_two_instances() {
    if std::env::var("LONGRUN_TEST_POSTGRES_URL").is_err() {
        eprintln!("LONGRUN_TEST_POSTGRES_URL is not set: this multi-instance test was skipped");
        return;
    }
    let db = fresh_postgres().await;
    let shared = tempfile::tempdir().unwrap();
    let store = store_for("postgres", shared.path());
    let mk = |a: &mut longrun::config::ServeArgs| {
        a.database_url = Some(db.clone());
        a.store_url = Some(store.clone());
        a.tenant_concurrency = Some("2".into());
        a.rate_limit = Some("off".into());
    };
    let one = TestApp::spawn_with("postgres", 4, mk).await;
    let two = TestApp::spawn_with("postgres", 4, mk).await;
    // Rounds of 8 jobs submitted at once, half to each instance.
    let mut all = Vec::new();
    for _ in 0..3 {
        let round: Vec<Value> = futures::stream::iter(0..8)
            .map(|i| {
                let app = if i % 2 == 0 { &one } else { &two };
                submit(
                    app,
                    None,
                    json!({"operation": "noop", "input": {"log": ["x", "y"], "pauseMs": 100}}),
                )
            })
            .buffer_unordered(8)
            .collect()
            .await;
        for job in &round {
            all.push(one.wait_end(&link(job, "self").unwrap()).await);
        }
    }
    for j in &all {
        assert_eq!(j["jobStatus"], "SUCCESS", "{j}");
    }
    let refs: Vec<&Value> = all.iter().collect();
    assert_eq!(most_at_once(&refs), 2, "{all:#?}");
    two.stop().await;
    one.stop().await;
}
