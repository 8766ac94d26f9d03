//! Live streams: the collection's event stream (`GET /api/v1/events`) and a job's log followed
//! as it is written (`getJobMessages` as `text/event-stream`).

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

use crate::helpers::*;

/// One server-sent event, or a comment line (a heartbeat).
#[derive(Debug, Clone)]
pub struct Ev {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
    pub comment: bool,
}

/// A server-sent event stream read as it comes.
pub struct Sse {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
    pub ended: bool,
}

impl Sse {
    pub async fn open(app: &TestApp, href: &str, key: Option<&str>, last: Option<&str>) -> Sse {
        let href = if href.starts_with("http") {
            href.to_string()
        } else {
            app.url(href)
        };
        let mut r = app.http.get(href).header("accept", "text/event-stream");
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        if let Some(l) = last {
            r = r.header("last-event-id", l);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.headers());
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        Sse {
            body: r.bytes_stream().boxed(),
            buf: String::new(),
            ended: false,
        }
    }

    /// The next event or comment, or None when the stream ended or `wait` passed.
    pub async fn next(&mut self, wait: Duration) -> Option<Ev> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = Ev {
                    id: None,
                    event: "message".into(),
                    data: Value::Null,
                    comment: false,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if line.starts_with(':') {
                        ev.comment = true;
                    } else if let Some(v) = line.strip_prefix("id:") {
                        ev.id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        ev.event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !data.is_empty() {
                    ev.data = serde_json::from_str(&data).unwrap();
                }
                return Some(ev);
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(until, self.body.next()).await {
                Err(_) => return None,
                Ok(None) => self.ended = true,
                Ok(Some(chunk)) => self
                    .buf
                    .push_str(std::str::from_utf8(&chunk.unwrap()).unwrap()),
            }
        }
    }

    /// Events (not comments) until `done` says so of one; panics after `wait`.
    pub async fn until(&mut self, wait: Duration, done: impl Fn(&Ev) -> bool) -> Vec<Ev> {
        let start = Instant::now();
        let mut seen = Vec::new();
        loop {
            let left = wait.saturating_sub(start.elapsed());
            let Some(ev) = self.next(left).await else {
                panic!("no such event within {wait:?}; saw {seen:#?}");
            };
            if ev.comment {
                continue;
            }
            let stop = done(&ev);
            seen.push(ev);
            if stop {
                return seen;
            }
        }
    }
}

fn job_of<'a>(ev: &'a Ev, id: &str) -> Option<&'a Value> {
    (ev.event == "job" && ev.data["jobId"] == id).then_some(&ev.data)
}

fn id_of_loc(loc: &str) -> String {
    loc.rsplit('/').next().unwrap().to_string()
}

/// A job submitted after the stream opened appears in it, then each of its changes up to its
/// end state, in version order; a filtered stream shows only what matches; a stream resumed
/// with `Last-Event-ID` gets what changed while it was away; a deleted job is `removed`.
async fn the_collection_stream_shows_changes_as_they_happen(b: &'static str) {
    let app = TestApp::spawn(b, 2).await;
    // Jobs from before the stream opened are not sent again.
    let before = app.sleepy(json!({"ms": 1, "steps": 1})).await;
    app.wait_end(&before).await;
    let mut all = Sse::open(&app, "/api/v1/events", None, None).await;
    let mut only_noop = Sse::open(&app, "/api/v1/events?operation=noop", None, None).await;
    let mut ended = Sse::open(
        &app,
        "/api/v1/events?status=SUCCESS,FAILED,CANCELLED",
        None,
        None,
    )
    .await;
    let loc = app.sleepy(json!({"ms": 100, "steps": 3})).await;
    let id = id_of_loc(&loc);
    let seen = all
        .until(Duration::from_secs(30), |e| {
            job_of(e, &id).is_some_and(|j| j["jobStatus"] == "SUCCESS")
        })
        .await;
    let mine: Vec<&Value> = seen.iter().filter_map(|e| job_of(e, &id)).collect();
    // A job's event is its state when read: changes quicker than that are folded into one
    // event, but the job shows up while it is under way, well before it ends.
    assert!(
        ["QUEUED", "STARTED", "PROCESSING"].contains(&mine[0]["jobStatus"].as_str().unwrap()),
        "{mine:#?}"
    );
    assert!(
        mine.iter().any(|j| j["jobStatus"] == "PROCESSING"),
        "{mine:#?}"
    );
    let versions: Vec<i64> = seen
        .iter()
        .filter(|e| job_of(e, &id).is_some())
        .map(|e| e.data["version"].as_i64().expect("version"))
        .collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    assert!(seen.iter().all(|e| e.data["jobId"] != id_of_loc(&before)));
    // Each event's id is a point the stream resumes from, and links are absolute.
    let last_id = seen.last().unwrap().id.clone().expect("an id");
    assert!(link(&seen.last().unwrap().data, "self")
        .unwrap()
        .starts_with("http"));

    // The end-state stream saw only the end state.
    let e = ended
        .until(Duration::from_secs(10), |e| job_of(e, &id).is_some())
        .await;
    assert_eq!(e.last().unwrap().data["jobStatus"], "SUCCESS");
    assert!(e.iter().all(|e| e.data["jobStatus"] == "SUCCESS"), "{e:#?}");

    // The noop stream: a noop job, and nothing of the sleepy one.
    let r = app
        .post_json("/api/v1/jobs", &json!({"operation": "noop"}))
        .await;
    let noop = id_of_loc(&location(&r));
    let n = only_noop
        .until(Duration::from_secs(10), |e| {
            job_of(e, &noop).is_some_and(|j| j["jobStatus"] == "SUCCESS")
        })
        .await;
    assert!(n.iter().all(|e| e.data["operation"] == "noop"), "{n:#?}");
    drop(all);

    // Away: a job is submitted and runs; the resumed stream gets it.
    let loc2 = app.sleepy(json!({"ms": 1, "steps": 1})).await;
    let id2 = id_of_loc(&loc2);
    app.wait_end(&loc2).await;
    let mut back = Sse::open(&app, "/api/v1/events", None, Some(&last_id)).await;
    back.until(Duration::from_secs(15), |e| {
        job_of(e, &id2).is_some_and(|j| j["jobStatus"] == "SUCCESS")
    })
    .await;

    // A deleted job that the stream showed is `removed`.
    let r = app.http.delete(&loc2).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let gone = back
        .until(Duration::from_secs(15), |e| {
            e.event == "removed" && e.data["id"] == id2
        })
        .await;
    assert_eq!(gone.last().unwrap().data["href"], loc2);

    // A Last-Event-ID that is not one of this stream's: a problem, not a stream.
    let r = app
        .http
        .get(app.url("/api/v1/events"))
        .header("last-event-id", "17")
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "Last-Event-ID").await;
    let r = app
        .http
        .get(app.url("/api/v1/events?status=NOPE"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "unknown status").await;
    app.stop().await;
}
crate::per_backend!(the_collection_stream_shows_changes_as_they_happen);

/// A tenant's stream shows its own jobs only, whatever filter it sends.
async fn the_collection_stream_is_the_callers_tenant_only(b: &'static str) {
    let app = TestApp::spawn(b, 2).await;
    let mine = app.key("blue", "submit").await;
    let theirs = app.key("green", "submit").await;
    let reader = app.key("blue", "read").await;
    let mut blue = Sse::open(&app, "/api/v1/events", Some(&reader), None).await;
    let submit = |key: String, cid: &'static str| {
        let app = &app;
        async move {
            let r = app
                .http
                .post(app.url("/api/v1/jobs"))
                .bearer_auth(key)
                .json(&json!({"operation": "sleepy", "input": {"ms": 1, "steps": 1}, "correlationId": cid}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            id_of_loc(&location(&r))
        }
    };
    let green_job = submit(theirs.clone(), "shared").await;
    let blue_job = submit(mine.clone(), "shared").await;
    let seen = blue
        .until(Duration::from_secs(20), |e| {
            job_of(e, &blue_job).is_some_and(|j| j["jobStatus"] == "SUCCESS")
        })
        .await;
    assert!(
        seen.iter().all(|e| e.data["jobId"] != green_job),
        "another tenant's job was streamed: {seen:#?}"
    );
    // The green job ended too by now; a resumed blue stream still does not show it.
    let first = seen[0].id.clone().unwrap();
    let mut again = Sse::open(
        &app,
        "/api/v1/events?correlationId=shared",
        Some(&reader),
        Some(&first),
    )
    .await;
    let mut got = Vec::new();
    while let Some(e) = again.next(Duration::from_secs(2)).await {
        got.push(e);
    }
    assert!(got.iter().any(|e| e.data["jobId"] == blue_job), "{got:#?}");
    assert!(got.iter().all(|e| e.data["jobId"] != green_job), "{got:#?}");
    // Another tenant's job: its log is not followed, not even to say that it exists.
    let r = app
        .http
        .get(app.url(&format!("/api/v1/jobs/{green_job}/messages?follow=true")))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "no job").await;
    // Without a key: 401.
    let r = app
        .http
        .get(app.url("/api/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.stop().await;
}
crate::per_backend!(the_collection_stream_is_the_callers_tenant_only);

/// The lines an operation writes reach a follower of the job's log as they are written; the
/// document form gives the lines after `after` in both encodings, with a `follow` link; a
/// follower that reconnects with `Last-Event-ID` gets only newer lines; the stream ends after
/// the end state's lines.
async fn a_jobs_log_is_followed_as_it_is_written(b: &'static str) {
    let app = TestApp::spawn(b, 1).await;
    let loc = app
        .sleepy(json!({"ms": 400, "steps": 3, "say": "chapter"}))
        .await;
    let msgs = format!("{loc}/messages");
    let mut live = Sse::open(&app, &format!("{msgs}?follow=true"), None, None).await;
    // The first line the operation writes arrives while the job still runs.
    let first = live
        .until(Duration::from_secs(20), |e| e.data["text"] == "chapter 1")
        .await;
    let (_, _, job) = app.get(&loc).await;
    assert!(
        ["STARTED", "PROCESSING"].contains(&job["jobStatus"].as_str().unwrap()),
        "{job}"
    );
    let line = &first.last().unwrap();
    assert_eq!(line.event, "message");
    assert_eq!(line.data["kind"], "operation");
    assert_eq!(
        line.id.as_deref(),
        Some(line.data["seq"].to_string().as_str())
    );
    let seq1: i64 = line.data["seq"].as_i64().unwrap();
    drop(live);

    // Reconnect after line 1 (by Accept this time): the rest, in order, then the end.
    let mut rest = Sse::open(&app, &msgs, None, Some(&seq1.to_string())).await;
    let mut lines = Vec::new();
    while let Some(e) = rest.next(Duration::from_secs(20)).await {
        if !e.comment {
            lines.push(e);
        }
    }
    assert!(rest.ended, "the stream ends after the end state");
    let texts: Vec<&str> = lines
        .iter()
        .map(|e| e.data["text"].as_str().unwrap())
        .collect();
    assert!(lines.iter().all(|e| e.data["seq"].as_i64().unwrap() > seq1));
    let c2 = texts
        .iter()
        .position(|t| *t == "chapter 2")
        .expect("line 2");
    let c3 = texts
        .iter()
        .position(|t| *t == "chapter 3")
        .expect("line 3");
    assert!(c2 < c3, "{texts:?}");
    assert!(
        lines
            .iter()
            .any(|e| e.data["kind"] == "state"
                && e.data["text"].as_str().unwrap().contains("SUCCESS")),
        "the end state's line comes last: {texts:?}"
    );

    // The document: `after` in JSON and XML, and a `follow` link that continues it.
    let (s, _, doc) = app.get(&format!("{msgs}?after={seq1}")).await;
    assert_eq!(s, 200);
    let all: Vec<i64> = doc["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert!(!all.is_empty() && all.iter().all(|s| *s > seq1), "{all:?}");
    let follow = link(&doc, "follow").expect("a follow link");
    assert!(
        follow.ends_with(&format!("after={}", all.last().unwrap())),
        "{follow}"
    );
    let xml = app
        .http
        .get(format!("{msgs}?after={seq1}"))
        .header("accept", "application/xml")
        .send()
        .await
        .unwrap();
    assert!(xml.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/xml"));
    let xml = xml.text().await.unwrap();
    assert!(
        xml.contains("chapter 2") && !xml.contains("chapter 1"),
        "{xml}"
    );
    // Following an ended job's log from its last line: the stream ends at once, empty.
    let mut none = Sse::open(&app, &follow, None, None).await;
    assert!(none.next(Duration::from_secs(10)).await.is_none());
    assert!(none.ended);

    // A seq longer than any the log can have is refused by the document's own pattern, so a
    // value the document allows is always one the service reads.
    let r = app
        .http
        .get(format!("{msgs}?follow=true"))
        .header("last-event-id", "2307459654554218211225")
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "Last-Event-ID").await;

    // An empty Last-Event-ID is none (EventSource sends one); on the document it changes nothing.
    let r = app
        .http
        .get(format!("{msgs}?format=xml"))
        .header("last-event-id", "")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .get(&msgs)
        .header("last-event-id", "99999")
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert!(v["messages"].as_array().unwrap().len() >= 4, "{v}");

    // Bad input: problems, not streams.
    let r = app
        .http
        .get(&msgs)
        .header("accept", "text/event-stream")
        .header("last-event-id", "x")
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "Last-Event-ID").await;
    let r = app
        .http
        .get(app.url(&format!(
            "/api/v1/jobs/{}/messages?follow=true",
            uuid::Uuid::now_v7()
        )))
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "no job").await;
    app.stop().await;
}
crate::per_backend!(a_jobs_log_is_followed_as_it_is_written);

/// An idle stream sends a comment line every 15 seconds, so proxies keep it open.
#[tokio::test]
async fn an_idle_stream_sends_heartbeats() {
    let app = TestApp::spawn("sqlite", 1).await;
    let mut s = Sse::open(&app, "/api/v1/events", None, None).await;
    let t = Instant::now();
    let e = s.next(Duration::from_secs(20)).await.expect("a heartbeat");
    assert!(e.comment, "{e:?}");
    assert!(t.elapsed() >= Duration::from_secs(10), "{:?}", t.elapsed());
    app.stop().await;
}

/// The built-in `noop` writes the lines of its `log` to its messages, and refuses a `log` that
/// is not lines with a problem document, storing nothing.
#[tokio::test]
async fn noop_writes_the_lines_it_is_given() {
    let app = TestApp::spawn("sqlite", 1).await;
    let r = app
        .post_json(
            "/api/v1/jobs",
            &json!({"operation": "noop", "input": {"log": ["one", "two"], "pauseMs": 10}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let loc = location(&r);
    let done = app.wait_end(&loc).await;
    assert_eq!(done["jobStatus"], "SUCCESS");
    let (_, _, log) = app.get(&format!("{loc}/messages")).await;
    let texts: Vec<&str> = log["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "operation")
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["one", "two"]);
    for bad in [
        json!({"log": "one"}),
        json!({"log": [1]}),
        json!({"pauseMs": 600000}),
    ] {
        let r = app
            .post_json("/api/v1/jobs", &json!({"operation": "noop", "input": bad}))
            .await;
        assert_problem(r, 400, "").await;
    }
    let (_, _, list) = app.get(&app.url("/api/v1/jobs")).await;
    assert_eq!(list["count"], 1, "{list}");
    app.stop().await;
}
