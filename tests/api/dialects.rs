//! The seed dialects over the one job model: tasks (seed 003), exports as data file sets
//! (seed 004) and background requests (seed 001).

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

async fn get_with(app: &TestApp, href: &str, key: Option<&str>) -> reqwest::Response {
    let mut r = app.http.get(href);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    r.send().await.unwrap()
}

/// WAITING behind a full pool, RUNNING, cancel=true twice, FINISHED with a result, FAILED with an
/// exception report, prune on running (no effect) and on finished (gone).
async fn tasks_dialect(b: &'static str) {
    let app = TestApp::spawn(b, 1).await;
    let blocker = app.sleepy(json!({"ms": 100, "steps": 100})).await;
    app.wait_status(&blocker, "PROCESSING").await;
    let waiting = app.sleepy(json!({"ms": 150, "steps": 3})).await;
    let (_, _, wj) = app.get(&waiting).await;
    let n = wj["taskId"].as_i64().unwrap();
    let (_, _, bj) = app.get(&blocker).await;
    let bn = bj["taskId"].as_i64().unwrap();
    assert!(n > bn && bn >= 1);

    let (s, h, t) = app.get(&app.url(&format!("/tasks/{n}.json"))).await;
    assert_eq!(s, 200);
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let task = &t["task"];
    assert_eq!(task["id"], n);
    assert_eq!(task["status"], "WAITING");
    assert_eq!(task["href"], app.url(&format!("/tasks/{n}.json")));
    assert!(task["description"].as_str().unwrap().contains("sleepy"));
    assert!(task["progress"]["task"].is_string());
    assert!(task["progress"]["amount"].is_number());
    let r = app
        .http
        .get(app.url(&format!("/tasks/{n}.xml")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/xml");
    let xml = r.text().await.unwrap();
    assert!(
        xml.contains(&format!("<task><id>{n}</id><status>WAITING</status>")),
        "{xml}"
    );
    assert!(
        xml.contains("<atom:link xmlns:atom=\"http://www.w3.org/2005/Atom\" rel=\"alternate\""),
        "{xml}"
    );

    // The running blocker: cancel=true returns at once; repeating it is harmless.
    let (_, _, t) = app.get(&app.url(&format!("/tasks/{bn}?cancel=true"))).await;
    assert!(
        ["RUNNING", "CANCELLED"].contains(&t["task"]["status"].as_str().unwrap()),
        "{t}"
    );
    let (s, _, _) = app.get(&app.url(&format!("/tasks/{bn}?cancel=true"))).await;
    assert_eq!(s, 200);
    app.wait_end(&blocker).await;
    let (_, _, t) = app.get(&app.url(&format!("/tasks/{bn}?cancel=true"))).await;
    assert_eq!(t["task"]["status"], "CANCELLED");

    // Prune has no effect on an unfinished task.
    app.wait_status(&waiting, "PROCESSING").await;
    let (_, _, t) = app.get(&app.url(&format!("/tasks/{n}?prune=true"))).await;
    assert_eq!(t["task"]["status"], "RUNNING");
    app.wait_end(&waiting).await;
    let (_, _, t) = app.get(&app.url(&format!("/tasks/{n}"))).await;
    assert_eq!(t["task"]["status"], "FINISHED");
    assert_eq!(t["task"]["result"]["steps"], 3);
    assert!(t["task"].get("progress").is_none());
    // …and removes a finished one.
    let (s, _, _) = app.get(&app.url(&format!("/tasks/{n}?prune=true"))).await;
    assert_eq!(s, 200);
    let r = app
        .http
        .get(app.url(&format!("/tasks/{n}")))
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "no task").await;
    assert_eq!(app.http.get(&waiting).send().await.unwrap().status(), 404);

    // A failed task carries its exception report.
    let failed = app.sleepy(json!({"ms": 1, "fail": true})).await;
    let fj = app.wait_end(&failed).await;
    let fnum = fj["taskId"].as_i64().unwrap();
    let (_, _, t) = app.get(&app.url(&format!("/tasks/{fnum}"))).await;
    assert_eq!(t["task"]["status"], "FAILED");
    assert_eq!(t["task"]["exception"]["detail"], "asked to fail");

    let (_, _, list) = app.get(&app.url("/tasks")).await;
    let ids: Vec<i64> = list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [fnum, bn], "newest first, pruned gone");
    let r = app.http.get(app.url("/tasks/x7")).send().await.unwrap();
    assert_problem(r, 404, "no task").await;
    app.stop().await;
}
crate::per_backend!(tasks_dialect);

async fn files_of(app: &TestApp, job: &Value) -> Vec<(Value, String)> {
    let (_, _, set) = app.get(&link(job, "datafileset").unwrap()).await;
    let mut out = Vec::new();
    for f in set["files"].as_array().unwrap() {
        let body = app
            .http
            .get(f["href"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        out.push((f.clone(), body));
    }
    out
}

/// A 3-part export whose parts concatenate to the whole catalog; the jobs export with the audit
/// filters equals the audit list's answer.
async fn exports_as_data_file_sets(b: &'static str) {
    let app = TestApp::spawn(b, 2).await;
    let r = app
        .post_raw("/api/v1/imports", "application/json", generated(2500, "E"))
        .await;
    assert_eq!(r.status(), 201);
    let imp = location(&r);
    assert_eq!(app.wait_end(&imp).await["jobStatus"], "SUCCESS");

    let r = app
        .post_json(
            "/api/v1/exports",
            &json!({"dataset": "tools", "format": "ndjson", "partSize": 1000}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let job = app.wait_end(&location(&r)).await;
    assert_eq!(job["jobStatus"], "SUCCESS", "{job}");
    assert_eq!(job["summary"]["rows"], 2500);
    assert_eq!(job["summary"]["parts"], 3);
    let files = files_of(&app, &job).await;
    let rows: Vec<i64> = files
        .iter()
        .map(|(f, _)| f["rows"].as_i64().unwrap())
        .collect();
    assert_eq!(rows, [1000, 1000, 500]);
    assert_eq!(files[0].0["name"], "tools-0001.ndjson");
    assert_eq!(files[0].0["contentType"], "application/x-ndjson");
    let all: String = files.iter().map(|(_, b)| b.as_str()).collect();
    let ids: Vec<String> = all
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["tool_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut expected: Vec<String> = (0..2500).map(|i| format!("E{i}")).collect();
    expected.sort();
    assert_eq!(ids, expected);
    // The file links are on the job, one per part.
    assert_eq!(
        job["links"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["rel"] == "file")
            .count(),
        3
    );

    // CSV parts each carry the header; JSON and XML parts are whole documents.
    for (format, check) in [
        ("csv", "tool_id,tool_name"),
        ("json", "[{"),
        ("xml", "<tools><tool>"),
    ] {
        let r = app
            .post_json(
                "/api/v1/exports",
                &json!({"dataset": "tools", "format": format, "partSize": 2000}),
            )
            .await;
        let job = app.wait_end(&location(&r)).await;
        let files = files_of(&app, &job).await;
        assert_eq!(files.len(), 2);
        for (_, body) in &files {
            assert!(
                body.contains(check),
                "{format}: {}",
                &body[..body.len().min(200)]
            );
        }
        if format == "csv" {
            let data_rows: usize = files.iter().map(|(_, b)| b.lines().count() - 1).sum();
            assert_eq!(data_rows, 2500);
        }
        if format == "json" {
            let n: usize = files
                .iter()
                .map(|(_, b)| serde_json::from_str::<Vec<Value>>(b).unwrap().len())
                .sum();
            assert_eq!(n, 2500);
        }
    }

    // Jobs, with the audit filters, as an auditor takes them away.
    for i in 0..5 {
        let l = app.sleepy(json!({"ms": 1, "fail": i % 2 == 1})).await;
        app.wait_end(&l).await;
    }
    let r = app
        .post_json(
            "/api/v1/exports",
            &json!({"dataset": "jobs", "format": "csv", "filter": {"status": ["SUCCESS"], "operation": "sleepy"}}),
        )
        .await;
    let job = app.wait_end(&location(&r)).await;
    assert_eq!(job["jobStatus"], "SUCCESS", "{job}");
    let files = files_of(&app, &job).await;
    let mut csv = csv::Reader::from_reader(files[0].1.as_bytes());
    let exported: Vec<String> = csv.records().map(|r| r.unwrap()[0].to_string()).collect();
    let (_, _, list) = app
        .get(&app.url("/api/v1/jobs?status=SUCCESS&operation=sleepy&limit=1000"))
        .await;
    let listed: Vec<String> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["jobId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(exported, listed);
    assert_eq!(exported.len(), 3);

    // Bad requests.
    let r = app
        .post_json("/api/v1/exports", &json!({"dataset": "users"}))
        .await;
    assert_problem(r, 400, "users").await;
    let r = app
        .post_json(
            "/api/v1/exports",
            &json!({"dataset": "tools", "partSize": 0}),
        )
        .await;
    assert_problem(r, 400, "partSize").await;
    let r = app
        .post_json(
            "/api/v1/exports",
            &json!({"dataset": "jobs", "filter": {"status": ["DONE"]}}),
        )
        .await;
    assert_problem(r, 400, "DONE").await;
    app.stop().await;
}
crate::per_backend!(exports_as_data_file_sets);

/// GETs in the background over JSON, XML and CSV endpoints: the stored answer is byte-identical
/// to the synchronous one; only its owner (or a share link, until it expires) can read it.
async fn background_requests(b: &'static str) {
    let app = TestApp::spawn(b, 2).await;
    let r = app.post_json("/api/tools/import", &seed_payload()).await;
    let loc = location(&r);
    for _ in 0..200 {
        let (_, _, s) = app.get(&loc).await;
        if s["status"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The catalog was imported while the service ran open (tenant `default`); from now on
    // keys are needed.
    let alice = app.key("default", "submit").await;
    let bob = app.key("other", "submit").await;
    let (alice, bob) = (alice.as_str(), bob.as_str());
    for (path, accept, ct) in [
        ("/api/tools?format=csv", "*/*", "text/csv"),
        ("/api/tools", "application/json", "application/json"),
        ("/api/tools", "application/xml", "application/xml"),
    ] {
        let sync = app
            .http
            .get(app.url(path))
            .header("accept", accept)
            .bearer_auth(alice)
            .send()
            .await
            .unwrap();
        let sync_ct = sync.headers()["content-type"].to_str().unwrap().to_string();
        assert!(sync_ct.starts_with(ct));
        let sync_body = sync.bytes().await.unwrap();
        let sep = if path.contains('?') { '&' } else { '?' };
        let r = app
            .http
            .get(app.url(&format!("{path}{sep}bgrs=yes")))
            .header("accept", accept)
            .bearer_auth(alice)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let status_href = location(&r);
        let text = r.text().await.unwrap();
        // The answer is in the encoding the client reads.
        let rid = if accept.contains("xml") {
            let start = text.find("<request>").unwrap() + "<request>".len();
            text[start..start + 32].to_string()
        } else {
            let accepted: Value = serde_json::from_str(&text).unwrap();
            accepted["request"].as_str().unwrap().to_string()
        };
        assert_eq!(rid.len(), 32);
        assert!(status_href.ends_with(&format!("/bgrs/{rid}")));
        // Seed 001's fields, polled until finished.
        let mut doc = Value::Null;
        for _ in 0..300 {
            let r = get_with(&app, &status_href, Some(alice)).await;
            let text = r.text().await.unwrap();
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            doc = v[0].clone();
            if doc["status_name"] == "finished" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(doc["status_name"], "finished", "{doc}");
        assert_eq!(doc["rid"], rid);
        assert_eq!(doc["status_id"], "4");
        assert_eq!(doc["progress"], "100.00");
        assert_eq!(doc["status"], "200");
        assert_eq!(doc["name"], format!("{path}{sep}bgrs=yes"));
        assert!(doc["content_type"].as_str().unwrap().starts_with(ct));
        let created = doc["created_dt"].as_str().unwrap();
        assert_eq!(created.len(), 19, "{created}");
        assert!(doc["id"].as_str().unwrap().parse::<i64>().is_ok());
        let result_href = doc["result"].as_str().unwrap().to_string();
        let r = get_with(&app, &result_href, Some(alice)).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"].to_str().unwrap(), sync_ct);
        assert_eq!(r.bytes().await.unwrap(), sync_body, "{path} byte for byte");
        let details: Value = get_with(&app, &format!("{status_href}/details"), Some(alice))
            .await
            .json()
            .await
            .unwrap();
        assert!(details
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["rid"] == rid && d["dt"].is_string()));
        // Nobody else reads it.
        assert_eq!(get_with(&app, &result_href, Some(bob)).await.status(), 404);
        assert_eq!(get_with(&app, &status_href, Some(bob)).await.status(), 404);
        assert_eq!(get_with(&app, &result_href, None).await.status(), 401);
    }

    // Prefer: respond-async does the same; a share link works for anyone until it expires.
    let r = app
        .http
        .get(app.url("/api/v1/operations"))
        .header("prefer", "respond-async")
        .bearer_auth(alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let job_href = link(&v, "monitor").unwrap();
    let done = {
        let mut j = Value::Null;
        for _ in 0..300 {
            let r = get_with(&app, &job_href, Some(alice)).await;
            j = r.json().await.unwrap();
            if j["jobStatus"] == "SUCCESS" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        j
    };
    assert_eq!(done["operation"], "request");
    let share = |key: &str, ttl: u32| {
        app.http
            .post(format!("{job_href}/share?ttl={ttl}"))
            .bearer_auth(key)
            .send()
    };
    assert_eq!(share(bob, 60).await.unwrap().status(), 404);
    let s: Value = share(alice, 2).await.unwrap().json().await.unwrap();
    let href = s["href"].as_str().unwrap().to_string();
    let r = get_with(&app, &href, None).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("sleepy"));
    let tampered = href.replace("sig=", "sig=x");
    assert_eq!(get_with(&app, &tampered, None).await.status(), 404);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let r = get_with(&app, &href, None).await;
    assert_problem(r, 410, "expired").await;
    app.stop().await;
}
crate::per_backend!(background_requests);
