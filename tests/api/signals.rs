//! Completion signals: GET callbacks and notification events (signed, retried, durable),
//! refused destinations, long-polling with `Prefer: wait` and the live event stream.

use std::io::BufRead;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

use crate::crash::{free_port, start_with, wait_up};
use crate::helpers::*;

fn signal_args(a: &mut longrun::config::ServeArgs) {
    a.callback_allow_private = Some(true);
    a.webhook_secret = Some(TEST_SECRET.into());
    a.delivery_retries = Some("100ms,200ms,300ms".into());
    a.delivery_timeout = Some("2s".into());
}

/// Submit a sleepy job with an `async` element; returns its Location.
async fn sleepy_with(app: &TestApp, input: Value, async_: Value, correlation: &str) -> String {
    let r = app
        .http
        .post(app.url("/api/v1/jobs"))
        .header("x-correlation-id", correlation)
        .json(&json!({"operation": "sleepy", "input": input, "async": async_}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    location(&r)
}

fn query(uri: &str) -> std::collections::HashMap<String, String> {
    let u = url::Url::parse(&format!("http://x{uri}")).unwrap();
    u.query_pairs().into_owned().collect()
}

/// Whether python3 has the Standard Webhooks reference library; in CI it must.
fn reference_library() -> bool {
    let have = std::process::Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !have {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install the standardwebhooks package (pip install standardwebhooks)"
        );
        eprintln!("python3 with standardwebhooks is missing: this test was skipped (pip install standardwebhooks)");
    }
    have
}

/// The Standard Webhooks reference library (Python) verifies every delivery: callbacks and
/// notification events in JSON and XML, for SUCCESS, FAILED and CANCELLED jobs.
async fn every_delivery_verifies_with_the_reference_library(b: &'static str) {
    if !reference_library() {
        return;
    }
    let mut py = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/receiver.py"))
        .arg(TEST_SECRET)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(py.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let port: u16 = first.strip_prefix("PORT ").unwrap().parse().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&l).unwrap());
        }
    });
    let hook = format!("http://127.0.0.1:{port}");
    let app = TestApp::spawn_with(b, 2, signal_args).await;
    let mut jobs = Vec::new();
    for (kind, input) in [
        ("SUCCESS", json!({"ms": 5})),
        ("FAILED", json!({"ms": 5, "fail": true})),
        ("CANCELLED", json!({"ms": 200, "steps": 50})),
    ] {
        for format in ["json", "xml"] {
            let a = json!({
                "callback": format!("{hook}/cb?kind={kind}"),
                "notification": {"url": format!("{hook}/events/{kind}/{format}"), "format": format}
            });
            let loc = sleepy_with(&app, input.clone(), a, &format!("corr-{kind}-{format}")).await;
            if kind == "CANCELLED" {
                app.wait_status(&loc, "PROCESSING").await;
                let r = app.http.post(format!("{loc}/cancel")).send().await.unwrap();
                assert!(r.status() == 200 || r.status() == 202);
            }
            let job = app.wait_end(&loc).await;
            assert_eq!(job["jobStatus"], kind);
            jobs.push((kind, format, loc));
        }
    }
    let mut got = Vec::new();
    while got.len() < 12 {
        let v = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("12 deliveries")
            .unwrap();
        got.push(v);
    }
    for d in &got {
        assert_eq!(
            d["valid"], true,
            "signature refused by standardwebhooks: {d}"
        );
    }
    for (kind, format, loc) in &jobs {
        let id = loc.rsplit('/').next().unwrap();
        let cb = got
            .iter()
            .find(|d| d["method"] == "GET" && query(d["path"].as_str().unwrap())["jobId"] == id)
            .unwrap_or_else(|| panic!("callback of {kind}/{format}"));
        let q = query(cb["path"].as_str().unwrap());
        assert_eq!(q["jobStatus"], *kind);
        assert_eq!(q["job"], *loc);
        assert_eq!(q["kind"], *kind, "the callback's own query is kept");
        let ev = got
            .iter()
            .find(|d| d["method"] == "POST" && d["path"] == format!("/events/{kind}/{format}"))
            .unwrap_or_else(|| panic!("notification of {kind}/{format}"));
        let body = ev["body"].as_str().unwrap();
        if *format == "json" {
            assert_eq!(ev["headers"]["content-type"], "application/json");
            let n: Value = serde_json::from_str(body).unwrap();
            assert_eq!(n["workId"], id);
            // Seed 004: success or failure; the precise end state is a field.
            let outcome = if *kind == "SUCCESS" {
                "success"
            } else {
                "failure"
            };
            assert_eq!(n["status"], outcome);
            assert_eq!(n["fields"]["jobStatus"], *kind);
            assert_eq!(n["correlationId"], format!("corr-{kind}-{format}"));
            let rels: Vec<&str> = n["links"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["rel"].as_str().unwrap())
                .collect();
            assert_eq!(n["links"][0]["href"], *loc);
            if *kind == "SUCCESS" {
                assert_eq!(rels, ["operator:subject", "datafileset", "file"]);
                assert_eq!(n["fields"]["steps"], 3);
                // The file link is live and downloads.
                let f = n["links"][2]["href"].as_str().unwrap();
                let r = app.http.get(f).send().await.unwrap();
                assert_eq!(r.text().await.unwrap(), "hello from sleepy");
            } else {
                assert_eq!(rels, ["operator:subject"]);
            }
            if *kind == "FAILED" {
                assert_eq!(n["fields"]["error"], "asked to fail");
            }
        } else {
            assert_eq!(ev["headers"]["content-type"], "application/xml");
            let outcome = if *kind == "SUCCESS" {
                "success"
            } else {
                "failure"
            };
            assert!(body.contains(&format!(
                "<notification correlationId=\"corr-{kind}-{format}\" workId=\"{id}\" status=\"{outcome}\">"
            )), "{body}");
            assert!(
                body.contains(&format!("<jobStatus>{kind}</jobStatus>")),
                "{body}"
            );
            assert!(
                body.contains(&format!("<link rel=\"operator:subject\" href=\"{loc}\"/>")),
                "{body}"
            );
            assert!(body.contains("<fields>"), "{body}");
            if *kind == "SUCCESS" {
                assert!(body.contains("<link rel=\"datafileset\""), "{body}");
                assert!(body.contains("<steps>3</steps>"), "{body}");
            }
        }
        // Every try is a line in the job's messages.
        let found = app.wait_messages(loc, "delivery", 2).await;
        let lines: Vec<&str> = found.iter().map(|m| m["text"].as_str().unwrap()).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines.iter().all(|l| l.contains("HTTP 204")), "{lines:?}");
    }
    // Nothing more arrives (one delivery per end state).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rx.try_recv().is_err());
    let _ = py.kill();
    let _ = py.wait();
    app.stop().await;
}
crate::per_backend!(every_delivery_verifies_with_the_reference_library);

/// A rotation of the secret without downtime: with `LONGRUN_WEBHOOK_SECRET=new,old` each
/// delivery carries a signature by each secret, so a receiver still holding the old one and one
/// already moved to the new one both verify it with the reference library; a third secret does
/// not. With the old one dropped, only the new one verifies.
#[tokio::test]
async fn a_rotated_secret_verifies_with_the_old_and_the_new_key() {
    if !reference_library() {
        return;
    }
    let old = TEST_SECRET.to_string();
    let new = longrun::domain::signals::new_secret();
    let other = longrun::domain::signals::new_secret();
    let mut py = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/receiver.py"))
        .args([&new, &old, &other])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(py.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let port: u16 = first.strip_prefix("PORT ").unwrap().parse().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&l).unwrap());
        }
    });
    for (secrets, valid_by, signatures) in [
        (format!("{new}, {old}"), [true, true, false], 2),
        (new.clone(), [true, false, false], 1),
    ] {
        let app = TestApp::spawn_with("sqlite", 1, |a| {
            signal_args(a);
            a.webhook_secret = Some(secrets.clone());
        })
        .await;
        let hook = format!("http://127.0.0.1:{port}");
        let loc = sleepy_with(
            &app,
            json!({"ms": 5}),
            json!({"notification": {"url": format!("{hook}/n")}}),
            "rotation",
        )
        .await;
        assert_eq!(app.wait_end(&loc).await["jobStatus"], "SUCCESS");
        let d = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("a delivery")
            .unwrap();
        assert_eq!(d["validBy"], json!(valid_by), "{secrets}: {d}");
        let header = d["headers"]["webhook-signature"].as_str().unwrap();
        assert_eq!(header.split(' ').count(), signatures, "{header}");
        assert!(header.split(' ').all(|s| s.starts_with("v1,")), "{header}");
        // One delivery, answered 204 (the receiver answers for the new secret, its first).
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(rx.try_recv().is_err());
        app.stop().await;
    }
    let _ = py.kill();
    let _ = py.wait();
}

/// 500, 500, then 200: delivered on the third try with the same webhook-id; three message lines.
/// A 410 stops the tries at once and counts as given up.
async fn retries_with_backoff_and_stops_on_gone(b: &'static str) {
    let app = TestApp::spawn_with(b, 2, signal_args).await;
    let rx = Receiver::start(vec![500, 500]).await;
    let loc = sleepy_with(
        &app,
        json!({"ms": 1}),
        json!({"callback": format!("{}/cb", rx.base)}),
        "retry",
    )
    .await;
    app.wait_end(&loc).await;
    let got = rx.wait_for(3).await;
    for r in &got {
        assert_signed(r);
        assert_eq!(r.method, "GET");
        assert!(r.uri.starts_with("/cb?jobId="), "{}", r.uri);
        assert_eq!(r.body, "");
    }
    let ids: std::collections::HashSet<_> = got
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1, "one webhook-id across retries");
    // The last try's line is written just after the receiver answered it.
    let lines: Vec<(String, String)> = app
        .wait_messages(&loc, "delivery", 3)
        .await
        .iter()
        .map(|m| {
            (
                m["level"].as_str().unwrap().to_string(),
                m["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].1.contains("HTTP 500") && lines[0].1.contains("next try"));
    assert!(lines[1].1.contains("HTTP 500"));
    assert!(lines[2].1.contains("HTTP 200") && lines[2].1.contains("delivered"));
    assert_eq!(lines[0].0, "WARNING");

    // 410 Gone: one try, then no more.
    let gone = Receiver::start(vec![410]).await;
    let loc = sleepy_with(
        &app,
        json!({"ms": 1}),
        json!({"notification": {"url": format!("{}/n", gone.base)}}),
        "gone",
    )
    .await;
    app.wait_end(&loc).await;
    gone.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(gone.got.lock().unwrap().len(), 1);
    let msgs = Value::from(app.wait_messages(&loc, "delivery", 1).await);
    assert!(msgs.to_string().contains("gave up"), "{msgs}");
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("longrun_deliveries_given_up_total 1"),
        "{metrics}"
    );

    // A redirect is not followed: it is a failed try.
    let redirect = Receiver::start(vec![302, 302, 302, 302]).await;
    let loc = sleepy_with(
        &app,
        json!({"ms": 1}),
        json!({"callback": format!("{}/cb", redirect.base)}),
        "redirect",
    )
    .await;
    app.wait_end(&loc).await;
    redirect.wait_for(4).await;
    let msgs = Value::from(app.wait_messages(&loc, "delivery", 4).await);
    assert!(msgs.to_string().contains("HTTP 302"), "{msgs}");
    assert!(msgs.to_string().contains("no tries left"), "{msgs}");
    app.stop().await;
}
crate::per_backend!(retries_with_backoff_and_stops_on_gone);

/// The receiver is down when the job ends, the server is killed with SIGKILL; after a restart
/// (and the receiver coming up) the event is delivered exactly once, with the same webhook-id.
async fn a_pending_delivery_survives_kill_9(b: &'static str) {
    let dir = tempfile::tempdir().unwrap();
    let db = database_for(b, dir.path()).await;
    let store = store_for(b, dir.path());
    let hook_port = free_port();
    let env = [
        ("LONGRUN_CALLBACK_ALLOW_PRIVATE", "true"),
        ("LONGRUN_WEBHOOK_SECRET", TEST_SECRET),
        ("LONGRUN_DELIVERY_RETRIES", "300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms"),
    ];
    let http = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start_with(&db, &store, port, &env);
    wait_up(&http, &base).await;
    let mut body = seed_payload();
    body["async"] = json!({"notification": {"url": format!("http://127.0.0.1:{hook_port}/n")}});
    let r = http
        .post(format!("{base}/api/v1/imports"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let loc = location(&r);
    // Wait for the end and for a failed try (the receiver is down).
    let mut webhook_id = None;
    for _ in 0..200 {
        let m: Value = http
            .get(format!("{loc}/messages"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(line) = m["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["kind"] == "delivery")
        {
            let t = line["text"].as_str().unwrap();
            let id = t
                .split("webhook-id ")
                .nth(1)
                .unwrap()
                .split(')')
                .next()
                .unwrap();
            webhook_id = Some(id.to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let webhook_id = webhook_id.expect("a failed delivery try was logged");
    server.kill9();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", hook_port))
        .await
        .unwrap();
    let rx = Receiver::on(listener, vec![]);
    let _server = start_with(&db, &store, port, &env);
    wait_up(&http, &base).await;
    let got = rx.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got2 = rx.got.lock().unwrap().clone();
    assert_eq!(got2.len(), 1, "delivered once: {got2:?}");
    assert_eq!(got[0].headers["webhook-id"].to_str().unwrap(), webhook_id);
    assert_signed(&got[0]);
    let n: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(n["status"], "success");
    assert_eq!(n["fields"]["jobStatus"], "SUCCESS");
    assert_eq!(n["fields"]["importedRecords"], 3);
}
crate::per_backend!(a_pending_delivery_survives_kill_9);

/// Link-local and metadata addresses are always refused; loopback and private ones unless
/// allowed; non-http schemes too. Each is a 400 problem and no job is stored.
#[tokio::test]
async fn refused_destinations_are_400_and_store_nothing() {
    let app = TestApp::spawn(backends()[0], 1).await;
    for (a, why) in [
        (
            json!({"callback": "http://169.254.169.254/latest/meta-data"}),
            "link-local",
        ),
        (json!({"callback": "http://localhost:8080/cb"}), "loopback"),
        (
            json!({"notification": {"url": "http://10.0.0.8/n"}}),
            "private",
        ),
        (
            json!({"notification": {"url": "http://[fe80::1]/n"}}),
            "link-local",
        ),
        (json!({"callback": "ftp://example.com/x"}), "only http"),
        (json!({"callback": "not a url"}), "not a URL"),
        (
            json!({"notification": {"url": "http://a.example", "format": "yaml"}}),
            "notification.format",
        ),
    ] {
        let r = app
            .post_json(
                "/api/v1/jobs",
                &json!({"operation": "sleepy", "input": {}, "async": a}),
            )
            .await;
        assert_problem(r, 400, why).await;
    }
    // A name that resolves to loopback (the machine's own name, where it does).
    let host = String::from_utf8(
        std::process::Command::new("hostname")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let loopback_name = tokio::net::lookup_host((host.as_str(), 0))
        .await
        .map(|mut a| a.all(|a| a.ip().is_loopback()))
        .unwrap_or(false);
    if loopback_name && host != "localhost" {
        let r = app
            .post_json(
                "/api/v1/jobs",
                &json!({"operation": "sleepy", "async": {"callback": format!("http://{host}:8080/cb")}}),
            )
            .await;
        assert_problem(r, 400, "loopback").await;
    } else {
        eprintln!("this machine's name does not resolve to loopback: that case was skipped");
    }
    // The seed import takes the same element.
    let mut body = seed_payload();
    body["async"] = json!({"callback": "http://0.0.0.0/cb"});
    let r = app.post_json("/api/tools/import", &body).await;
    assert_problem(r, 400, "unspecified").await;
    let (_, _, list) = app.get(&app.url("/api/v1/jobs")).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0, "{list}");
    app.stop().await;

    // Allowing private addresses never allows metadata ones.
    let app = TestApp::spawn_with(backends()[0], 1, signal_args).await;
    let r = app
        .post_json(
            "/api/v1/jobs",
            &json!({"operation": "sleepy", "async": {"callback": "http://169.254.169.254/"}}),
        )
        .await;
    assert_problem(r, 400, "metadata").await;
    app.stop().await;
}

/// 200 clients hold `Prefer: wait` on one queued job; one change wakes each of them once.
/// Without a change the answer is 304 after the wait, with `Preference-Applied`.
async fn long_polls_wake_together(b: &'static str) {
    let app = TestApp::spawn(b, 1).await;
    // Occupy the only worker so the watched job stays QUEUED.
    let blocker = app.sleepy(json!({"ms": 200, "steps": 100})).await;
    let loc = app.sleepy(json!({"ms": 1})).await;
    let (_, h, _) = app.get(&loc).await;
    let etag = h["etag"].to_str().unwrap().to_string();

    let t0 = Instant::now();
    let r = app.long_poll(&loc, &etag, 1).await;
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["preference-applied"], "wait=1");
    assert!(t0.elapsed() >= Duration::from_millis(900));

    let mut waiters = Vec::new();
    for _ in 0..200 {
        let http = app.http.clone();
        let (loc, etag) = (loc.clone(), etag.clone());
        waiters.push(tokio::spawn(async move {
            let r = http
                .get(&loc)
                .header("prefer", "wait=30")
                .header("if-none-match", etag)
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            let applied = r.headers()["preference-applied"]
                .to_str()
                .unwrap()
                .to_string();
            let v: Value = r.json().await.unwrap();
            (s, applied, v)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t1 = Instant::now();
    let r = app.http.post(format!("{loc}/cancel")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    for w in waiters {
        let (s, applied, v) = w.await.unwrap();
        assert_eq!(s, 200);
        assert_eq!(applied, "wait=30");
        assert_eq!(v["jobStatus"], "CANCELLED");
    }
    assert!(t1.elapsed() < Duration::from_secs(10));
    let _ = app.http.delete(&blocker).send().await;
    app.stop().await;
}
crate::per_backend!(long_polls_wake_together);

/// Parse the events of a text/event-stream body as (id, data) pairs.
async fn read_events(r: reqwest::Response) -> Vec<(i64, Value)> {
    let mut out = Vec::new();
    let mut buf = String::new();
    let mut body = r.bytes_stream();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), body.next())
        .await
        .expect("the stream moves on")
    {
        buf.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut id = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ").or(line.strip_prefix("id:")) {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("data: ").or(line.strip_prefix("data:")) {
                    data.push_str(v);
                }
            }
            if let Some(id) = id {
                out.push((id, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    out
}

/// The event stream shows the job's states in order, ends after the end state, and resumes
/// after `Last-Event-ID`. Submitting with `Prefer: wait` answers 200 with the ended job.
async fn event_stream_and_waiting_submission(b: &'static str) {
    let app = TestApp::spawn(b, 1).await;
    let loc = app.sleepy(json!({"ms": 150, "steps": 3})).await;
    let (_, _, job) = app.get(&loc).await;
    let events_href = link(&job, "events").expect("events link while running");
    let r = app.http.get(&events_href).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = read_events(r).await;
    let order = ["QUEUED", "STARTED", "PROCESSING", "SAVING", "SUCCESS"];
    let ranks: Vec<usize> = events
        .iter()
        .map(|(_, j)| order.iter().position(|s| j["jobStatus"] == *s).unwrap())
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{ranks:?}");
    assert!(events.windows(2).all(|w| w[0].0 < w[1].0), "ids grow");
    assert_eq!(events.last().unwrap().1["jobStatus"], "SUCCESS");
    assert!(events.iter().any(|(_, j)| j["jobStatus"] == "PROCESSING"));
    assert!(events.len() >= 4, "{events:?}");
    let done = app.wait_end(&loc).await;
    assert!(link(&done, "events").is_none());

    // Resume after the second event: only newer ones, ending with SUCCESS.
    let after = events[1].0;
    let r = app
        .http
        .get(&events_href)
        .header("last-event-id", after.to_string())
        .send()
        .await
        .unwrap();
    let rest = read_events(r).await;
    assert!(!rest.is_empty());
    assert!(rest.iter().all(|(id, _)| *id > after));
    assert_eq!(rest.last().unwrap().1["jobStatus"], "SUCCESS");

    // Unknown job: a problem document, not a stream.
    let r = app
        .http
        .get(app.url(&format!("/api/v1/jobs/{}/events", uuid::Uuid::now_v7())))
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "no job").await;

    // Prefer: wait on a submission.
    let r = app
        .http
        .post(app.url("/api/v1/jobs"))
        .header("prefer", "wait=20")
        .json(&json!({"operation": "sleepy", "input": {"ms": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["preference-applied"], "wait=20");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["jobStatus"], "SUCCESS");
    assert!(link(&v, "file").is_some());
    // The built-in no-op job ends at once.
    let r = app
        .http
        .post(app.url("/api/v1/jobs"))
        .header("prefer", "wait=20")
        .json(&json!({"operation": "noop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["jobStatus"], "SUCCESS");
    assert_eq!(v["summary"], json!({}));
    let r = app
        .http
        .post(app.url("/api/v1/jobs"))
        .header("prefer", "respond-async, wait=20")
        .json(&json!({"operation": "sleepy", "input": {"ms": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    app.stop().await;
}
crate::per_backend!(event_stream_and_waiting_submission);
