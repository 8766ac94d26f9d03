//! Several instances on one PostgreSQL database: a shared queue, work done once, cancel, waits and
//! event streams across instances, and an instance killed with work in flight.

use std::time::Duration;

use serde_json::{json, Value};

use crate::crash::{free_port, start_with, wait_up};
use crate::helpers::*;

/// Two in-process instances on one fresh PostgreSQL database and one object store.
async fn pair(
    roles: [Option<longrun::config::Role>; 2],
) -> Option<(TestApp, TestApp, tempfile::TempDir)> {
    if std::env::var("LONGRUN_TEST_POSTGRES_URL").is_err() {
        eprintln!("LONGRUN_TEST_POSTGRES_URL is not set: this multi-instance test was skipped");
        return None;
    }
    let db = fresh_postgres().await;
    let shared = tempfile::tempdir().unwrap();
    let backend = if std::env::var("LONGRUN_TEST_S3_URL").is_ok() {
        "postgres+s3"
    } else {
        "postgres"
    };
    let store = store_for(backend, shared.path());
    let mk = |role: Option<longrun::config::Role>| {
        let (db, store) = (db.clone(), store.clone());
        move |a: &mut longrun::config::ServeArgs| {
            a.database_url = Some(db);
            a.store_url = Some(store);
            a.role = role;
        }
    };
    let a = TestApp::spawn_with("postgres", 2, mk(roles[0])).await;
    let b = TestApp::spawn_with("postgres", 2, mk(roles[1])).await;
    Some((a, b, shared))
}

/// 500 jobs submitted alternately to two instances: every one ends SUCCESS and its work was done
/// exactly once.
#[tokio::test]
async fn two_instances_share_one_queue() {
    let Some((a, b, dir)) = pair([None, None]).await else {
        return;
    };
    let effects = dir.path().join("effects.txt");
    let mut locs = Vec::new();
    for i in 0..500 {
        let app = if i % 2 == 0 { &a } else { &b };
        let r = app
            .post_json(
                "/api/v1/jobs",
                &json!({"operation": "count", "input": {"path": effects.display().to_string()}}),
            )
            .await;
        assert_eq!(r.status(), 201);
        locs.push(location(&r));
    }
    let mut ids = Vec::new();
    for (i, loc) in locs.iter().enumerate() {
        let app = if i % 2 == 0 { &b } else { &a };
        let j = app.wait_end(loc).await;
        assert_eq!(j["jobStatus"], "SUCCESS", "{j}");
        ids.push(j["jobId"].as_str().unwrap().to_string());
    }
    let text = std::fs::read_to_string(&effects).unwrap();
    let mut done: Vec<&str> = text.lines().collect();
    done.sort();
    ids.sort();
    assert_eq!(done, ids, "each job's work done exactly once");
    // Both instances did work.
    let (_, _, list) = a.get(&a.url("/api/v1/jobs?limit=1000")).await;
    let mut nodes = std::collections::HashSet::new();
    for j in list["jobs"].as_array().unwrap() {
        let (_, _, msgs) = a.get(&link(j, "operator:messages").unwrap()).await;
        for m in msgs["messages"].as_array().unwrap() {
            if let Some(n) = m["text"].as_str().unwrap().strip_prefix("STARTED on node ") {
                nodes.insert(n.split(' ').next().unwrap().to_string());
            }
        }
    }
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    // Both instances folded the counts as the jobs moved, at once; each reads them exact, and
    // lists both instances.
    let (x, y) = tokio::join!(a.engine.fold_stats_once(), b.engine.fold_stats_once());
    x.unwrap();
    y.unwrap();
    for app in [&a, &b] {
        let (_, _, s) = app.get(&app.url("/api/v1/stats")).await;
        assert_eq!(s["total"], 500, "{s}");
        let done = s["counts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["status"] == "SUCCESS");
        assert_eq!(done.unwrap()["count"], 500, "{s}");
        let ended: i64 = s["perHour"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["completed"].as_i64().unwrap())
            .sum();
        assert_eq!(ended, 500, "{s}");
        let ids: std::collections::HashSet<&str> = s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["alive"] == true)
            .map(|n| n["id"].as_str().unwrap())
            .collect();
        assert!(
            ids.contains(a.engine.node()) && ids.contains(b.engine.node()),
            "{s}"
        );
    }
    a.stop().await;
    b.stop().await;
}

/// A job submitted to an API-only instance runs on a worker instance; cancel, `Prefer: wait` and
/// the event stream on the API instance see what the worker instance does.
#[tokio::test]
async fn cancel_wait_and_events_across_instances() {
    use longrun::config::Role;
    let Some((api, worker, _dir)) = pair([Some(Role::Api), Some(Role::Worker)]).await else {
        return;
    };
    let loc = api.sleepy(json!({"ms": 200, "steps": 300})).await;
    // Held on the API instance until the worker instance changes the job.
    let (_, h, _) = api.get(&loc).await;
    let etag = h["etag"].to_str().unwrap().to_string();
    let r = api.long_poll(&loc, &etag, 20).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_ne!(v["jobStatus"], "QUEUED");
    let events_href = link(&v, "events").unwrap();
    let events = api.http.get(&events_href).send().await.unwrap();
    api.wait_status(&loc, "PROCESSING").await;
    // Cancel through the API instance: the worker instance stops the job.
    let t = std::time::Instant::now();
    let r = api.http.post(format!("{loc}/cancel")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let done = api.wait_end(&loc).await;
    assert_eq!(done["jobStatus"], "CANCELLED");
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "stopped long before its 60 s of work"
    );
    // The stream on the API instance saw the worker's states, ending with CANCELLED.
    let body = tokio::time::timeout(Duration::from_secs(20), events.text())
        .await
        .unwrap()
        .unwrap();
    assert!(body.contains("\"jobStatus\":\"PROCESSING\""), "{body}");
    assert!(body.contains("\"jobStatus\":\"CANCELLED\""), "{body}");
    // The API instance runs no work, the worker instance serves no HTTP.
    let (_, _, op) = api.get(&format!("{loc}/messages")).await;
    assert!(op.to_string().contains("STARTED on node"));
    api.stop().await;
    worker.stop().await;
}

/// The collection's stream and a followed log on the API instance show, as they happen, the
/// changes and the log lines a worker instance writes.
#[tokio::test]
async fn live_streams_across_instances() {
    use crate::live::Sse;
    use longrun::config::Role;
    let Some((api, worker, _dir)) = pair([Some(Role::Api), Some(Role::Worker)]).await else {
        return;
    };
    let mut all = Sse::open(&api, "/api/v1/events", None, None).await;
    let loc = api
        .sleepy(json!({"ms": 500, "steps": 3, "say": "far"}))
        .await;
    let id = loc.rsplit('/').next().unwrap().to_string();
    let mut log = Sse::open(&api, &format!("{loc}/messages?follow=true"), None, None).await;
    let lines = log
        .until(Duration::from_secs(30), |e| e.data["text"] == "far 3")
        .await;
    let texts: Vec<&str> = lines
        .iter()
        .filter_map(|e| e.data["text"].as_str())
        .collect();
    assert!(
        texts.contains(&"far 1") && texts.contains(&"far 2"),
        "{texts:?}"
    );
    let seen = all
        .until(Duration::from_secs(30), |e| {
            e.data["jobId"] == id && e.data["jobStatus"] == "SUCCESS"
        })
        .await;
    assert!(
        seen.iter()
            .any(|e| e.data["jobId"] == id && e.data["jobStatus"] == "PROCESSING"),
        "{seen:#?}"
    );
    api.stop().await;
    worker.stop().await;
}

/// Two real processes; one is killed with SIGKILL while 20 imports are in flight: every import
/// ends SUCCESS on the other, and the messages show the recovery.
#[tokio::test]
async fn kill_9_one_of_two_instances() {
    if std::env::var("LONGRUN_TEST_POSTGRES_URL").is_err() {
        eprintln!("LONGRUN_TEST_POSTGRES_URL is not set: this multi-instance test was skipped");
        return;
    }
    let db = fresh_postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let ports = [free_port(), free_port()];
    // Each instance's node id starts with its HOSTNAME, so the operator resource tells which
    // instance holds a job.
    let names = ["instance-one", "instance-two"];
    // On S3 when the suite has one, else on a shared directory.
    let backend = if std::env::var("LONGRUN_TEST_S3_URL").is_ok() {
        "postgres+s3"
    } else {
        "postgres"
    };
    let store = store_for(backend, dir.path());
    let mut procs: Vec<_> = (0..2)
        .map(|i| {
            start_with(
                &db,
                &store,
                ports[i],
                &[("LONGRUN_WORKERS", "2"), ("HOSTNAME", names[i])],
            )
        })
        .collect();
    let bases = ports.map(|p| format!("http://127.0.0.1:{p}"));
    wait_up(&http, &bases[0]).await;
    wait_up(&http, &bases[1]).await;
    // Submitted alternately to both; kept as paths, read later from the survivor.
    let mut paths = Vec::new();
    for i in 0..20 {
        let base = &bases[i % 2];
        let r = http
            .post(format!("{base}/api/v1/imports"))
            .header("content-type", "application/json")
            .body(generated(6_000, &format!("K{i}-")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        paths.push(location(&r).replace(base.as_str(), ""));
    }
    // Wait until either instance holds a job that is not near its end (by the operator
    // resource's node), then kill that instance: its job must be taken over by the other.
    let mut victim = None;
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while victim.is_none() && std::time::Instant::now() < until {
        let v = json_of(
            &http,
            &format!("{}/api/v1/jobs?status=STARTED&status=PROCESSING", bases[0]),
        )
        .await;
        for j in v["jobs"].as_array().unwrap() {
            if j["progress"]["amount"].as_i64().unwrap_or(0) > 4_000 {
                continue;
            }
            let op = json_of(
                &http,
                &format!(
                    "{}/api/v1/jobs/{}/operator",
                    bases[0],
                    j["jobId"].as_str().unwrap()
                ),
            )
            .await;
            let node = op["node"].as_str().unwrap_or_default();
            victim = names
                .iter()
                .position(|n| node.starts_with(&format!("{n}-")));
            if victim.is_some() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let victim = victim.expect("no instance ever held a running job early in its work");
    procs[victim].kill9();
    let survivor = &bases[1 - victim];
    let deadline = std::time::Instant::now() + Duration::from_secs(5 + 10 + 120);
    let mut recovered = 0;
    for path in &paths {
        let loc = format!("{survivor}{path}");
        loop {
            let j: Value = http.get(&loc).send().await.unwrap().json().await.unwrap();
            if j["jobStatus"] == "SUCCESS" {
                if j["attempt"].as_i64().unwrap() > 1 {
                    recovered += 1;
                    let m: Value = http
                        .get(format!("{loc}/messages"))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    assert!(m.to_string().contains("lease"), "{m}");
                }
                break;
            }
            assert!(j["jobStatus"] != "FAILED", "{j}");
            assert!(std::time::Instant::now() < deadline, "{j}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(recovered >= 1, "at least one job was taken over");
    assert_eq!(count_tools(&http, survivor).await, 20 * 6_000);
    // The numbers of the collection after the kill: every job counted once, in its end state,
    // each end once (a job taken over was queued again, which is no end).
    let s = json_of(&http, &format!("{survivor}/api/v1/stats")).await;
    assert_eq!(s["total"], 20, "{s}");
    for c in s["counts"].as_array().unwrap() {
        let want = if c["status"] == "SUCCESS" { 20 } else { 0 };
        assert_eq!(c["count"], want, "{s}");
    }
    let ended: i64 = s["perHour"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["completed"].as_i64().unwrap() + p["failed"].as_i64().unwrap())
        .sum();
    assert_eq!(ended, 20, "{s}");
}

async fn submit_keyed(app: &TestApp, key: &str, ms: u64) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/jobs"))
        .header("idempotency-key", key)
        .json(&json!({"operation": "sleepy", "input": {"ms": ms}}))
        .send()
        .await
        .unwrap()
}

/// A retry while the first request with its key is still being handled (a slow upload) waits
/// for the first answer and replays it: one job, the same Location, no 409.
#[tokio::test]
async fn a_retry_in_flight_waits_for_the_first_answer() {
    let app = TestApp::spawn("sqlite", 1).await;
    let body = generated(2_000, "W").into_bytes();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tx.send(Ok(body[..body.len() / 2].to_vec())).await.unwrap();
    let first = {
        let r = app
            .http
            .post(app.url("/api/v1/imports"))
            .header("content-type", "application/json")
            .header("idempotency-key", "slow-1")
            .body(reqwest::Body::wrap_stream(futures::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|c| (c, rx)) },
            )));
        tokio::spawn(r.send())
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = {
        let r = app
            .http
            .post(app.url("/api/v1/imports"))
            .header("content-type", "application/json")
            .header("idempotency-key", "slow-1")
            .body(body.clone());
        tokio::spawn(r.send())
    };
    // The retry is waiting; the first upload now finishes.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !second.is_finished(),
        "the retry waits for the first answer"
    );
    tx.send(Ok(body[body.len() / 2..].to_vec())).await.unwrap();
    drop(tx);
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), 201);
    let second = second.await.unwrap().unwrap();
    assert_eq!(second.status(), 201);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(location(&second), location(&first));
    let (_, _, list) = app.get(&app.url("/api/v1/jobs")).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1, "{list}");
    app.stop().await;
}

/// The same key and body answer the first job; another body is a 422; 50 concurrent identical
/// submissions make one job.
async fn idempotency_keys(b: &'static str) {
    let app = TestApp::spawn(b, 1).await;
    let r1 = submit_keyed(&app, "order-1", 5).await;
    assert_eq!(r1.status(), 201);
    let loc = location(&r1);
    let r2 = submit_keyed(&app, "order-1", 5).await;
    assert_eq!(r2.status(), 201);
    assert_eq!(location(&r2), loc);
    assert_eq!(r2.headers()["idempotent-replayed"], "true");
    let r3 = submit_keyed(&app, "order-1", 6).await;
    assert_problem(r3, 422, "different request").await;
    // A refused request does not use its key up.
    let r = app
        .http
        .post(app.url("/api/v1/jobs"))
        .header("idempotency-key", "order-2")
        .json(&json!({"operation": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(submit_keyed(&app, "order-2", 5).await.status(), 201);

    let mut tasks = Vec::new();
    for _ in 0..50 {
        let http = app.http.clone();
        let url = app.url("/api/v1/jobs");
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .header("idempotency-key", "burst")
                .json(&json!({"operation": "sleepy", "input": {"ms": 7}}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert!(codes.iter().all(|c| *c == 201 || *c == 409), "{codes:?}");
    let (_, _, list) = app.get(&app.url("/api/v1/jobs?limit=1000")).await;
    let burst = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["operation"] == "sleepy")
        .count();
    assert_eq!(burst, 3, "order-1, order-2 and one for the 50");
    app.stop().await;
}
crate::per_backend!(idempotency_keys);

/// A key used on one instance holds on another.
#[tokio::test]
async fn idempotency_keys_hold_across_instances() {
    let Some((a, b, _dir)) = pair([None, None]).await else {
        return;
    };
    let r1 = submit_keyed(&a, "shared", 5).await;
    assert_eq!(r1.status(), 201);
    let r2 = submit_keyed(&b, "shared", 5).await;
    assert_eq!(r2.status(), 201);
    assert_eq!(
        location(&r2).rsplit('/').next(),
        location(&r1).rsplit('/').next()
    );
    assert_eq!(submit_keyed(&b, "shared", 9).await.status(), 422);
    a.stop().await;
    b.stop().await;
}

/// Liveness, readiness and the Prometheus metrics.
#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::spawn(backends()[0], 1).await;
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let loc = app.sleepy(json!({"ms": 1})).await;
    app.wait_end(&loc).await;
    let m = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "longrun_jobs{status=\"SUCCESS\",operation=\"sleepy\"} 1",
        "longrun_queue_depth 0",
        "# TYPE longrun_job_duration_seconds histogram",
        "longrun_job_duration_seconds_count{operation=\"sleepy\",status=\"SUCCESS\"} 1",
        "longrun_claim_latency_seconds_count{operation=\"sleepy\"} 1",
        "longrun_http_requests_total{route=\"/api/v1/jobs/{id}\",method=\"GET\",status=\"200\"}",
        "longrun_deliveries_given_up_total 0",
    ] {
        assert!(m.contains(needle), "{needle} in\n{m}");
    }
    app.stop().await;
}
