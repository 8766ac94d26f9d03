//! A job's life through its links: states, links per state, cancel, delete, restart, queueing.

use serde_json::json;

use crate::helpers::*;

async fn import_lifecycle_json_and_xml_following_links(b: &'static str) {
    // The test client stands for a proxy on loopback too (the forwarded origin below).
    let app = TestApp::spawn_with(b, 2, |a| a.trusted_proxies = Some("127.0.0.1".into())).await;
    // JSON.
    let r = app.post_json("/api/v1/imports", &seed_payload()).await;
    assert_eq!(r.status(), 201);
    let loc = location(&r);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["jobStatus"], "QUEUED");
    assert_eq!(body["currentStage"], 0);
    assert_eq!(link(&body, "self").unwrap(), loc);
    let job = app.wait_end(&loc).await;
    assert_eq!(job["jobStatus"], "SUCCESS", "{job}");
    assert_eq!(
        rels(&job),
        [
            "self",
            "delete",
            "result",
            "datafileset",
            "file",
            "operator",
            "operator:messages",
            "task"
        ]
    );
    assert_eq!(job["currentStage"], job["totalNumberOfStages"]);
    assert_eq!(job["summary"]["importedRecords"], 3);
    assert_eq!(job["attempt"], 1);
    let (s, _, result) = app.get(&link(&job, "result").unwrap()).await;
    assert_eq!(s, 200);
    assert_eq!(result["summary"]["failedRecords"], 0);
    let (s, _, set) = app.get(&link(&job, "datafileset").unwrap()).await;
    assert_eq!(s, 200);
    assert_eq!(set["files"][0]["name"], "failed-records.json");
    let file = link(&job, "file").unwrap();
    // The job collection shows the same links, its files read for the page at once.
    let (s, _, list) = app.get(&app.url("/api/v1/jobs?status=SUCCESS")).await;
    assert_eq!(s, 200, "{list}");
    let listed = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["jobId"] == job["jobId"])
        .unwrap();
    assert_eq!(rels(listed), rels(&job));
    assert_eq!(link(listed, "file").unwrap(), file);
    assert_eq!(list["count"], 1);
    let r = app.http.get(&file).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(r.headers().contains_key("etag"));
    let file_tag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(r.text().await.unwrap(), "[]");
    let r = app
        .http
        .get(&file)
        .header("if-none-match", &file_tag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    // Links follow the origin the client used (through a trusted proxy too).
    let r = app
        .http
        .get(&loc)
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "jobs.example.org")
        .send()
        .await
        .unwrap();
    let proxied: serde_json::Value = r.json().await.unwrap();
    assert!(
        link(&proxied, "self")
            .unwrap()
            .starts_with("https://jobs.example.org/api/v1/jobs/"),
        "{proxied}"
    );
    // The correlation id comes from X-Correlation-Id (trimmed), else it is generated.
    for (given, want) in [(" demo-1 ", Some("demo-1")), ("   ", None)] {
        let r = app
            .http
            .post(app.url("/api/v1/imports"))
            .header("content-type", "application/json")
            .header("x-correlation-id", given)
            .body(r#"{"data": [{"tool_id": "C1", "tool_name": "c", "category": "c", "features": []}]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: serde_json::Value = r.json().await.unwrap();
        let got = v["correlationId"].as_str().unwrap();
        match want {
            Some(w) => assert_eq!(got, w),
            None => assert!(!got.trim().is_empty()),
        }
    }
    let (s, _, msgs) = app.get(&link(&job, "operator:messages").unwrap()).await;
    assert_eq!(s, 200);
    let texts: Vec<&str> = msgs["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert!(texts.iter().any(|t| t.starts_with("STARTED")), "{texts:?}");
    assert!(texts.contains(&"SUCCESS"), "{texts:?}");
    let (s, _, op) = app.get(&link(&job, "operator").unwrap()).await;
    assert_eq!(s, 200);
    assert_eq!(rels(&op), ["self", "operator:subject", "operator:messages"]);

    // XML in, XML out.
    let xml = "<import><data><tool><tool_id>X1</tool_id><tool_name>Xml Tool</tool_name><category>C</category>\
               <features><feature>a</feature></features><url>https://example.com/x</url></tool></data></import>";
    let r = app
        .http
        .post(app.url("/api/v1/imports"))
        .header("content-type", "application/xml")
        .header("accept", "application/xml")
        .body(xml)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["content-type"], "application/xml");
    let loc = location(&r);
    let text = r.text().await.unwrap();
    assert!(text.contains("<jobStatus>QUEUED</jobStatus>"), "{text}");
    assert!(text.contains("<link rel=\"monitor\""), "{text}");
    app.wait_end(&loc).await;
    let text = app
        .http
        .get(format!("{loc}?format=xml"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.starts_with("<?xml"), "{text}");
    assert!(text.contains("<jobStatus>SUCCESS</jobStatus>"), "{text}");
    assert!(!text.contains("rel=\"monitor\""), "{text}");
    assert!(text.contains("rel=\"result\""), "{text}");
    // A generic submission in XML, typed by shape (numbers stay numbers).
    let r = app
        .post_raw(
            "/api/v1/jobs",
            "application/xml",
            "<job><operation>sleepy</operation><input><ms>5</ms><steps>2</steps></input>\
             <async><keepResult>true</keepResult></async><correlationId>xml-1</correlationId></job>",
        )
        .await;
    assert_eq!(r.status(), 201);
    let job = app.wait_end(&location(&r)).await;
    assert_eq!(job["jobStatus"], "SUCCESS", "{job}");
    assert_eq!(job["summary"]["steps"], 2);
    assert_eq!(job["correlationId"], "xml-1");
    let (_, _, tool) = app.get(&app.url("/api/tools/X1")).await;
    assert_eq!(tool["features"], json!(["a"]));
    app.stop().await;
}
crate::per_backend!(import_lifecycle_json_and_xml_following_links);

async fn etag_and_retry_after(b: &'static str) {
    let app = TestApp::spawn(b, 1).await;
    let loc = app.sleepy(json!({"ms": 300})).await;
    let (_, h, _) = app.get(&loc).await;
    assert!(h.contains_key("retry-after"));
    let tag = h["etag"].to_str().unwrap().to_string();
    let job = app.wait_end(&loc).await;
    assert_eq!(job["jobStatus"], "SUCCESS");
    let (_, h, _) = app.get(&loc).await;
    assert!(!h.contains_key("retry-after"));
    let now = h["etag"].to_str().unwrap().to_string();
    assert_ne!(tag, now);
    let r = app
        .http
        .get(&loc)
        .header("if-none-match", &now)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = app
        .http
        .get(&loc)
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}
crate::per_backend!(etag_and_retry_after);

async fn one_worker_runs_one_job_at_a_time(b: &'static str) {
    let app = TestApp::spawn(b, 1).await;
    let a = app.sleepy(json!({"ms": 250})).await;
    let b2 = app.sleepy(json!({"ms": 10})).await;
    let c = app.sleepy(json!({"ms": 10})).await;
    app.wait_status(&a, "PROCESSING").await;
    for l in [&b2, &c] {
        let (_, _, j) = app.get(l).await;
        assert_eq!(j["jobStatus"], "QUEUED");
        assert_eq!(j["currentStage"], 0);
    }
    let ja = app.wait_end(&a).await;
    let jb = app.wait_end(&b2).await;
    let jc = app.wait_end(&c).await;
    // The queue is FIFO: each started after the previous one finished.
    assert!(jb["startTime"].as_str() >= ja["finishedTime"].as_str());
    assert!(jc["startTime"].as_str() >= jb["finishedTime"].as_str());
    app.stop().await;
}
crate::per_backend!(one_worker_runs_one_job_at_a_time);

async fn cancel_delete_restart(b: &'static str) {
    let app = TestApp::spawn(b, 1).await;
    // Cancel a running job: 202, then CANCELLED with operator:restart.
    let loc = app.sleepy(json!({"ms": 200, "steps": 50})).await;
    app.wait_status(&loc, "PROCESSING").await;
    let (_, _, job) = app.get(&loc).await;
    let r = app
        .http
        .post(link(&job, "cancel").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let job = app.wait_end(&loc).await;
    assert_eq!(job["jobStatus"], "CANCELLED");
    assert_eq!(
        rels(&job),
        [
            "self",
            "delete",
            "operator",
            "operator:messages",
            "operator:restart",
            "task"
        ]
    );
    // Cancelling again is idempotent.
    let r = app.http.post(format!("{loc}/cancel")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Restart: a new attempt that runs to the end.
    let r = app
        .http
        .post(link(&job, "operator:restart").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let again: serde_json::Value = r.json().await.unwrap();
    assert_eq!(again["attempt"], 2);
    assert!(link(&again, "monitor").is_some(), "{again}");
    // Cancel while queued or running, then restart a FAILED one.
    app.http.post(format!("{loc}/cancel")).send().await.unwrap();
    app.wait_end(&loc).await;
    let failing = app.sleepy(json!({"ms": 1, "fail": true})).await;
    let job = app.wait_end(&failing).await;
    assert_eq!(job["jobStatus"], "FAILED");
    assert_eq!(job["error"]["detail"], "asked to fail");
    assert!(link(&job, "operator:restart").is_some());
    // Restart of a SUCCESS job is an illegal move.
    let ok = app.sleepy(json!({"ms": 1})).await;
    let job = app.wait_end(&ok).await;
    let r = app.http.post(format!("{ok}/restart")).send().await.unwrap();
    assert_problem(r, 409, "only FAILED or CANCELLED").await;
    let r = app.http.post(format!("{ok}/cancel")).send().await.unwrap();
    assert_problem(r, 409, "cannot be cancelled").await;
    // DELETE → DELETED, then 410 on the job and its file.
    let file = link(&job, "file").unwrap();
    let r = app.http.delete(&ok).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let del: serde_json::Value = r.json().await.unwrap();
    assert_eq!(del["jobStatus"], "DELETED");
    assert!(rels(&del).is_empty());
    let r = app.http.get(&ok).send().await.unwrap();
    assert_problem(r, 410, "deleted").await;
    let r = app.http.get(&file).send().await.unwrap();
    assert_eq!(r.status(), 410);
    let r = app.http.delete(&ok).send().await.unwrap();
    assert_eq!(r.status(), 410);
    // DELETE of a running job stops it.
    let running = app.sleepy(json!({"ms": 100, "steps": 100})).await;
    app.wait_status(&running, "PROCESSING").await;
    let r = app.http.delete(&running).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let next = app.sleepy(json!({"ms": 1})).await;
    // The single worker is free again soon, so the next job runs.
    assert_eq!(app.wait_end(&next).await["jobStatus"], "SUCCESS");
    app.stop().await;
}
crate::per_backend!(cancel_delete_restart);

async fn read_once_files_are_removed_after_a_complete_download(b: &'static str) {
    let app = TestApp::spawn(b, 1).await;
    let r = app
        .post_json(
            "/api/v1/jobs",
            &json!({"operation": "sleepy", "input": {"ms": 1}, "async": {"keepResult": false}}),
        )
        .await;
    let loc = location(&r);
    let job = app.wait_end(&loc).await;
    let file = link(&job, "file").unwrap();
    // A range read does not consume it.
    let r = app
        .http
        .get(&file)
        .header("range", "bytes=0-4")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 0-4/17");
    assert_eq!(r.text().await.unwrap(), "hello");
    let r = app
        .http
        .get(&file)
        .header("range", "bytes=99-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    let r = app.http.get(&file).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "17");
    assert_eq!(r.text().await.unwrap(), "hello from sleepy");
    assert_eq!(app.wait_gone(&file).await, 410);
    let (_, _, job) = app.get(&loc).await;
    assert!(link(&job, "file").is_none());
    app.stop().await;
}
crate::per_backend!(read_once_files_are_removed_after_a_complete_download);
