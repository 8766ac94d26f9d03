//! The checked-in OpenAPI document equals the served one; the docs and entry point are there.

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn checked_in_openapi_matches_the_served_one() {
    let app = TestApp::spawn("sqlite", 1).await;
    let served = app
        .http
        .get(app.url("/openapi.yaml"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml");
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    if std::env::var("LONGRUN_WRITE_OPENAPI").is_ok() {
        std::fs::write(path, &served).unwrap();
    } else {
        assert!(
            served == checked_in,
            "openapi/openapi.yaml is out of date: run `LONGRUN_WRITE_OPENAPI=1 cargo test openapi` and commit it"
        );
    }
    let (s, _, json) = app.get(&app.url("/openapi.json")).await;
    assert_eq!(s, 200);
    assert!(json["paths"]["/api/v1/jobs/{id}"].is_object());
    let r = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (s, _, root) = app.get(&app.url("/")).await;
    assert_eq!(s, 200);
    for rel in [
        "jobs",
        "events",
        "actions",
        "operations",
        "imports",
        "comparisons",
        "exports",
        "tasks",
        "docs",
        "ui",
        "openapi",
    ] {
        assert!(link(&root, rel).is_some(), "{rel}");
    }
    let (_, _, ops) = app.get(&link(&root, "operations").unwrap()).await;
    let names: Vec<_> = ops["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["compare", "count", "export", "import", "noop", "request", "sleepy"]
    );
    app.stop().await;
}

/// The host the captured examples name (the service runs with it as its public URL).
const PUBLIC: &str = "http://localhost:8080";

/// The media types of an example: JSON ones are kept as JSON values, the others as text.
fn is_json(media_type: &str) -> bool {
    media_type == "application/json" || media_type.ends_with("+json")
}

/// A media type's essence (`application/json; charset=utf-8` → `application/json`).
fn essence(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or_default().trim()
}

/// Every operation of the served document shows an example of its main answer (each of its JSON
/// and XML encodings) and of its request body (JSON and XML); every checked-in example is on its
/// operation; the request examples are accepted by a fresh service, as is a share of the files
/// of the import one of them made; XML examples parse; /docs shows the same document.
#[tokio::test]
async fn every_operation_has_examples_and_its_request_examples_are_accepted() {
    let app = TestApp::spawn("sqlite", 1).await;
    let (_, _, doc) = app.get(&app.url("/openapi.json")).await;
    let mut requests = Vec::new();
    let mut ops = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(id) = op["operationId"].as_str() else {
                continue;
            };
            ops += 1;
            let (status, answer) = op["responses"]
                .as_object()
                .unwrap()
                .iter()
                .find(|(s, r)| s.starts_with('2') && r.get("content").is_some())
                .unwrap_or_else(|| panic!("{id} has no success answer with a body"));
            let content = answer["content"].as_object().unwrap();
            assert!(
                content.values().any(|m| m.get("example").is_some()),
                "{id} {status} has no example"
            );
            for (mt, media) in content {
                let example = &media["example"];
                match essence(mt) {
                    "application/json" => assert!(
                        example.is_object() || example.is_array(),
                        "{id} {status} {mt}"
                    ),
                    // A document's XML example is its JSON one; a delta's is its text.
                    "application/xml" => match example.as_str() {
                        Some(text) => well_formed(text),
                        None => assert_eq!(
                            Some(example),
                            content
                                .iter()
                                .find(|(m, _)| essence(m) == "application/json")
                                .map(|(_, m)| &m["example"]),
                            "{id} {status} {mt}"
                        ),
                    },
                    _ => {}
                }
            }
            for (mt, media) in op["requestBody"]["content"]
                .as_object()
                .into_iter()
                .flatten()
            {
                let example = &media["example"];
                match essence(mt) {
                    "application/json" => assert!(example.is_object(), "{id} request {mt}"),
                    "application/xml" => assert!(example.is_object(), "{id} request {mt}"),
                    _ => continue,
                }
                requests.push((
                    id.to_string(),
                    method.clone(),
                    path.clone(),
                    mt.clone(),
                    example.clone(),
                ));
            }
        }
    }
    assert_eq!(ops, 43);

    // Each checked-in example is on its operation in the served document.
    let examples: Value =
        serde_json::from_str(include_str!("../../openapi/examples.json")).unwrap();
    for (id, ex) in examples.as_object().unwrap() {
        if id == "problems" {
            // A problem of each status, on every operation's answers of that status.
            for (status, problem) in ex.as_object().unwrap() {
                let mut placed = 0;
                for op in doc["paths"]
                    .as_object()
                    .unwrap()
                    .values()
                    .flat_map(|item| item.as_object().unwrap().values())
                {
                    if let Some(content) = op["responses"][status]["content"].as_object() {
                        for media in content.values() {
                            let name = format!("Problem{status}");
                            assert_eq!(
                                media["examples"][&name]["$ref"],
                                format!("#/components/examples/{name}"),
                                "{status}"
                            );
                            assert_eq!(&doc["components"]["examples"][&name]["value"], problem);
                            placed += 1;
                        }
                    }
                }
                assert!(placed > 0, "no answer {status}");
            }
            continue;
        }
        let op = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .find(|op| op["operationId"] == id.as_str())
            .unwrap_or_else(|| panic!("no operation {id}"));
        let placed = |content: &Value, mt: &str, example: &Value| {
            content
                .as_object()
                .into_iter()
                .flatten()
                .any(|(m, media)| essence(m) == mt && &media["example"] == example)
        };
        for (mt, example) in ex["request"].as_object().into_iter().flatten() {
            assert!(
                placed(&op["requestBody"]["content"], mt, example),
                "{id} request {mt}"
            );
        }
        for (status, by_type) in ex["response"].as_object().unwrap() {
            for (mt, example) in by_type.as_object().unwrap() {
                let content = &op["responses"][status]["content"];
                assert!(placed(content, mt, example), "{id} {status} {mt}");
            }
        }
    }

    // The request examples, sent as they are, are accepted.
    let mut job = None;
    for (id, method, path, mt, example) in &requests {
        assert_eq!(method, "post", "{id}");
        // An XML request's example is its JSON one, sent in XML.
        let body = match example {
            Value::String(s) => s.clone(),
            v if essence(mt) == "application/xml" => longrun::formats::xml::to_xml("request", v),
            v => v.to_string(),
        };
        let r = app
            .http
            .post(app.url(path))
            .header("content-type", mt.as_str())
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        if id == "submitImport" && status == 201 {
            job = Some(location(&r));
        }
        let text = r.text().await.unwrap();
        assert!((200..300).contains(&status), "{id} {mt}: {status} {text}");
    }
    assert_eq!(
        requests.len(),
        14,
        "{:?}",
        requests.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
    let job = job.expect("a job from the submitImport example");
    app.wait_end(&job).await;
    let r = app.http.post(format!("{job}/share")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // /docs renders the served document, examples included.
    let html = app
        .http
        .get(app.url("/docs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let spec_json = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&spec_json),
        "/docs does not show the served document"
    );
    app.stop().await;
}

/// Fails unless `xml` is one well-formed XML document.
fn well_formed(xml: &str) {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut depth = 0i32;
    let mut roots = 0;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(_)) => {
                if depth == 0 {
                    roots += 1;
                }
                depth += 1;
            }
            Ok(quick_xml::events::Event::Empty(_)) if depth == 0 => roots += 1,
            Ok(quick_xml::events::Event::End(_)) => depth -= 1,
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("not XML ({e}): {xml}"),
        }
    }
    assert!(depth == 0 && roots == 1, "not one XML document: {xml}");
}

/// Request and answer bodies recorded from a running service, by operation id.
struct Capture {
    http: reqwest::Client,
    base: String,
    out: serde_json::Map<String, Value>,
    /// The headers a client reads, as answered: (operation, status) → names.
    headers: std::collections::BTreeMap<(String, u16), std::collections::BTreeSet<String>>,
}

/// The answer headers a client needs (and so the document must declare where they are sent).
const CLIENT_HEADERS: &[&str] = &[
    "location",
    "content-location",
    "etag",
    "last-modified",
    "retry-after",
    "link",
    "preference-applied",
    "idempotent-replayed",
    "accept-ranges",
    "content-range",
    "content-disposition",
    "cache-control",
    "www-authenticate",
    "allow",
];

impl Capture {
    /// `href` (a link of the service, which names [`PUBLIC`]) on the running service.
    fn local(&self, href: &str) -> String {
        match href.strip_prefix(PUBLIC) {
            Some(rest) => format!("{}{rest}", self.base),
            None if href.starts_with('/') => format!("{}{href}", self.base),
            None => href.to_string(),
        }
    }

    fn entry(&mut self, op: &str, part: &str) -> &mut serde_json::Map<String, Value> {
        self.out
            .entry(op)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .unwrap()
            .entry(part)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .unwrap()
    }

    /// Sends `body` (`mt`, JSON value or text) as the example of `op`'s request body.
    /// An XML document's example is its JSON one (see `add_examples`), so XML requests are
    /// sent but not kept.
    fn request(&mut self, op: &str, mt: &str, example: Value) {
        if mt != "application/xml" {
            self.entry(op, "request").insert(mt.into(), example);
        }
    }

    /// Calls `href` and records its answer as `op`'s example for its status and `mt` (the
    /// documented media type); returns the status, the Location and the answer as JSON (or text).
    async fn call(
        &mut self,
        op: &str,
        method: reqwest::Method,
        href: &str,
        body: Option<(&str, String)>,
        accept: &str,
        mt: &str,
    ) -> (u16, Option<String>, Value) {
        let mut rb = self
            .http
            .request(method, self.local(href))
            .header("accept", accept);
        if let Some((ct, b)) = body {
            rb = rb.header("content-type", ct).body(b);
        }
        let r = rb.send().await.unwrap();
        let status = self.note_headers(op, &r);
        let loc = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        let text = r.text().await.unwrap();
        assert!((200..300).contains(&status), "{op} {href}: {status} {text}");
        let value = if is_json(mt) {
            serde_json::from_str(&text).unwrap()
        } else if mt == "application/xml"
            && !((op == "compare" || op == "xdcCompare") && status == 200)
        {
            // A document: its example is its JSON one (see `add_examples`); not kept.
            well_formed(&text);
            return (status, loc, Value::String(text));
        } else if mt == "text/event-stream" {
            // The schema is that of one event (as schema checkers read a stream): the first.
            let mut event = serde_json::Map::new();
            for line in text.lines().take_while(|l| !l.is_empty()) {
                if let Some((k, v)) = line.split_once(':') {
                    event.insert(k.to_string(), json!(v.strip_prefix(' ').unwrap_or(v)));
                }
            }
            Value::Object(event)
        } else {
            Value::String(text)
        };
        let by_status = self.entry(op, "response");
        let slot = by_status
            .entry(status.to_string())
            .or_insert_with(|| json!({}));
        slot[mt] = value.clone();
        (status, loc, value)
    }

    /// Sends `method href` with `headers` and notes the answer's headers (not its body): for
    /// answers that are not examples (a part, a 304, a replay); the status.
    async fn headers_of(
        &mut self,
        op: &str,
        method: reqwest::Method,
        href: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> u16 {
        let mut rb = self.http.request(method, self.local(href));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = rb.send().await.unwrap();
        self.note_headers(op, &r)
    }

    /// Notes the headers of `r` a client reads, under `op` and its status; the status.
    fn note_headers(&mut self, op: &str, r: &reqwest::Response) -> u16 {
        let status = r.status().as_u16();
        let seen = self.headers.entry((op.to_string(), status)).or_default();
        for name in r.headers().keys() {
            if CLIENT_HEADERS.contains(&name.as_str()) {
                seen.insert(name.as_str().to_string());
            }
        }
        status
    }

    /// Opens the event stream at `href` from `last_event_id` and records its first event as
    /// `op`'s example (the stream itself goes on).
    async fn first_event(&mut self, op: &str, href: &str, last_event_id: &str) {
        use futures::StreamExt;
        let r = self
            .http
            .get(self.local(href))
            .header("accept", "text/event-stream")
            .header("last-event-id", last_event_id)
            .send()
            .await
            .unwrap();
        let status = self.note_headers(op, &r);
        assert_eq!(status, 200, "{op} {href}");
        let mut body = r.bytes_stream();
        let mut text = String::new();
        while !text.contains("\n\n") {
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(20), body.next())
                .await
                .expect("an event within 20 s")
                .expect("the stream goes on")
                .unwrap();
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        let mut event = serde_json::Map::new();
        for line in text.lines().take_while(|l| !l.is_empty()) {
            if let Some((k, v)) = line.split_once(':') {
                event.insert(k.to_string(), json!(v.strip_prefix(' ').unwrap_or(v)));
            }
        }
        let by_status = self.entry(op, "response");
        let slot = by_status
            .entry("200".to_string())
            .or_insert_with(|| json!({}));
        slot["text/event-stream"] = Value::Object(event);
    }

    /// GET `href` in JSON and in XML; the JSON answer.
    async fn get_both(&mut self, op: &str, href: &str) -> Value {
        self.call(
            op,
            reqwest::Method::GET,
            href,
            None,
            "application/xml",
            "application/xml",
        )
        .await;
        self.call(
            op,
            reqwest::Method::GET,
            href,
            None,
            "application/json",
            "application/json",
        )
        .await
        .2
    }

    /// POSTs the JSON example and the XML one of `op` (both recorded); the JSON answer and its
    /// Location.
    async fn post_both(
        &mut self,
        op: &str,
        href: &str,
        json_body: Value,
        xml_body: &str,
    ) -> (Option<String>, Value) {
        let xml_body = indented(xml_body);
        self.request(op, "application/json", json_body.clone());
        self.request(op, "application/xml", Value::String(xml_body.clone()));
        self.call(
            op,
            reqwest::Method::POST,
            href,
            Some(("application/xml", xml_body)),
            "application/xml",
            "application/xml",
        )
        .await;
        let (_, loc, v) = self
            .call(
                op,
                reqwest::Method::POST,
                href,
                Some(("application/json", json_body.to_string())),
                "application/json",
                "application/json",
            )
            .await;
        (loc, v)
    }

    /// Polls the job at `href` until it has no `monitor` link; the job.
    async fn wait_end(&self, href: &str) -> Value {
        loop {
            let job: Value = self
                .http
                .get(self.local(href))
                .header("accept", "application/json")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if link(&job, "monitor").is_none() {
                return job;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// Walks every operation of the real service (run with [`PUBLIC`] as its public URL) and writes
/// what it sent and got to `openapi/examples.json`, with the ids renumbered to readable UUIDs.
/// Checks on the way that every answer header a client reads is declared on its operation.
/// After an API change: `LONGRUN_WRITE_EXAMPLES=1 cargo test --test api capture_examples`, then
/// `LONGRUN_WRITE_OPENAPI=1 cargo test --test api openapi`.
#[tokio::test]
async fn capture_examples() {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
    let store = format!("file://{}/objects", dir.path().display());
    let port = crate::crash::free_port();
    // With keys, as a deployed service runs: an admin key for the walk, a read key for a 403.
    let key = |scope: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_longrun"))
            .args(["keys", "create", "--tenant", "demo", "--scope", scope])
            .args(["--database-url", &db])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (admin, read) = (key("admin"), key("read"));
    let _proc = crate::crash::start_with(&db, &store, port, &[("LONGRUN_PUBLIC_URL", PUBLIC)]);
    let bearer = |k: &str| {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("authorization", format!("Bearer {k}").parse().unwrap());
        reqwest::Client::builder()
            .default_headers(h)
            .build()
            .unwrap()
    };
    let mut c = Capture {
        http: bearer(&admin),
        base: format!("http://127.0.0.1:{port}"),
        out: Default::default(),
        headers: Default::default(),
    };
    crate::crash::wait_up(&c.http, &c.base).await;

    c.get_both("getRoot", "/").await;
    c.get_both("listOperations", "/api/v1/operations").await;

    // An import: the job, its result, files, log and executor.
    let (job, _) = c
        .post_both(
            "submitImport",
            "/api/v1/imports",
            json!({"data": [
                {"tool_id": "V001", "tool_name": "University Scraper", "category": "Education",
                 "description": "Extracts requirements, fees and programs from university sites.",
                 "features": ["Data extraction", "Fee updates"], "url": "https://example.com/university-scraper"},
                {"tool_id": "V002", "tool_name": "Currency Converter", "category": "Finance",
                 "features": ["Real-time rates"], "url": "not a url"}
            ], "async": {"keepResult": true}}),
            "<import><data><tool><tool_id>X001</tool_id><tool_name>Xml Tool</tool_name>\
             <category>Education</category><features><feature>Data extraction</feature></features>\
             <url>https://example.com/xml-tool</url></tool></data>\
             <async><keepResult>true</keepResult></async></import>",
        )
        .await;
    let job = job.unwrap();
    let done = c.wait_end(&job).await;
    c.get_both("getJob", &job).await;
    c.get_both("getJobResult", &link(&done, "result").unwrap())
        .await;
    c.get_both("getJobDataFileSet", &link(&done, "datafileset").unwrap())
        .await;
    c.get_both("getJobMessages", &link(&done, "operator:messages").unwrap())
        .await;
    c.get_both("getJobOperator", &link(&done, "operator").unwrap())
        .await;
    c.call(
        "jobEvents",
        Method::GET,
        &format!("{job}/events"),
        None,
        "text/event-stream",
        "text/event-stream",
    )
    .await;
    c.call(
        "getJobMessages",
        Method::GET,
        &format!("{job}/messages?follow=true"),
        None,
        "text/event-stream",
        "text/event-stream",
    )
    .await;
    // The collection's stream from its beginning: its first event is the first job's.
    c.first_event(
        "streamEvents",
        "/api/v1/events",
        "0.00000000-0000-0000-0000-000000000000",
    )
    .await;
    c.call(
        "download",
        Method::GET,
        &link(&done, "file").unwrap(),
        None,
        "*/*",
        "*/*",
    )
    .await;
    // Answers that are not examples, for their headers: a part of a file, an unchanged job, a
    // job held until it ends, a replayed submission.
    let file = link(&done, "file").unwrap();
    let part = c
        .headers_of(
            "download",
            Method::GET,
            &file,
            &[("range", "bytes=0-9")],
            None,
        )
        .await;
    assert_eq!(part, 206);
    let etag = c.http.get(c.local(&job)).send().await.unwrap().headers()["etag"]
        .to_str()
        .unwrap()
        .to_string();
    let unchanged = c
        .headers_of(
            "getJob",
            Method::GET,
            &job,
            &[("if-none-match", &etag)],
            None,
        )
        .await;
    assert_eq!(unchanged, 304);
    let held = c
        .headers_of("getJob", Method::GET, &job, &[("prefer", "wait=1")], None)
        .await;
    assert_eq!(held, 200);
    let once = r#"{"operation": "noop", "input": {}}"#;
    for want in [201, 201] {
        let s = c
            .headers_of(
                "submitJob",
                Method::POST,
                "/api/v1/jobs",
                &[("idempotency-key", "capture-1")],
                Some(once),
            )
            .await;
        assert_eq!(s, want);
    }
    assert!(c.headers[&("submitJob".to_string(), 201)].contains("idempotent-replayed"));
    // Seed 004's addresses of the same data file set and file.
    let set = format!("/datafilesets/{}", done["jobId"].as_str().unwrap());
    c.get_both("getDataFileSet", &set).await;
    let file = link(&done, "file").unwrap();
    c.call(
        "getDataFile",
        Method::GET,
        &format!("{set}/datafiles/{}/data", file.rsplit('/').next().unwrap()),
        None,
        "*/*",
        "*/*",
    )
    .await;
    c.call(
        "shareJob",
        Method::POST,
        &format!("{job}/share?ttl=3600"),
        None,
        "application/json",
        "application/json",
    )
    .await;
    c.get_both("getTask", &format!("/tasks/{}", done["taskId"]))
        .await;

    // Seed 000's dialect and the catalog.
    let (status, _) = c
        .post_both(
            "startToolsImport",
            "/api/tools/import",
            json!({"data": [
                {"tool_id": "V003", "tool_name": "Study Cost Simulator", "category": "Education",
                 "features": ["Tuition cost estimation", "City comparison"],
                 "url": "https://example.com/study-cost-simulator"}
            ]}),
            "<import><data><tool><tool_id>X002</tool_id><tool_name>Budget Planner</tool_name>\
             <category>Finance</category><features><feature>Monthly plans</feature></features>\
             <url>https://example.com/budget-planner</url></tool></data></import>",
        )
        .await;
    let status = status.unwrap();
    loop {
        let (_, _, s) = c
            .call(
                "getToolsImportStatus",
                Method::GET,
                &status,
                None,
                "application/json",
                "application/json",
            )
            .await;
        if s["status"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    c.call(
        "getToolsImportStatus",
        Method::GET,
        &status,
        None,
        "application/xml",
        "application/xml",
    )
    .await;
    c.get_both("listToolsImportErrors", &format!("{status}/errors"))
        .await;
    c.get_both("listTools", "/api/tools?limit=2").await;
    c.call(
        "listTools",
        Method::GET,
        "/api/tools?limit=2",
        None,
        "text/csv",
        "text/csv",
    )
    .await;
    c.get_both("getTool", "/api/tools/V001").await;

    // Comparisons: synchronous (the delta, or a JSON Patch) and asynchronous (a job).
    c.request(
        "compare",
        "application/json",
        json!({
            "inputA": {"content": "<catalog><item id=\"1\" price=\"5\">Pen</item><item id=\"2\">Ink</item></catalog>"},
            "inputB": {"content": "<catalog><item id=\"1\" price=\"6\">Pen</item><item id=\"3\">Pad</item></catalog>"},
            "options": {"keyAttributes": ["id"], "ignoreWhitespace": true}
        }),
    );
    let xml_comparison = indented(
        "<comparison><inputA><content><![CDATA[<a><b>1</b></a>]]></content></inputA>\
        <inputB><content><![CDATA[<a><b>2</b></a>]]></content></inputB>\
        <async><keepResult>true</keepResult></async></comparison>",
    );
    c.request(
        "compare",
        "application/xml",
        Value::String(xml_comparison.clone()),
    );
    let json_comparison = c.out["compare"]["request"]["application/json"].to_string();
    c.call(
        "compare",
        Method::POST,
        "/api/v1/comparisons",
        Some(("application/json", json_comparison)),
        "*/*",
        "application/xml",
    )
    .await;
    let patch = json!({
        "inputA": {"content": "{\"items\":[{\"id\":1,\"v\":\"a\"},{\"id\":2,\"v\":\"b\"}]}"},
        "inputB": {"content": "{\"items\":[{\"id\":1,\"v\":\"A\"}]}"},
        "options": {"keyFields": ["id"]}
    });
    c.call(
        "compare",
        Method::POST,
        "/api/v1/comparisons",
        Some(("application/json", patch.to_string())),
        "*/*",
        "application/json-patch+json",
    )
    .await;
    c.call(
        "compare",
        Method::POST,
        "/api/v1/comparisons",
        Some(("application/xml", xml_comparison.clone())),
        "application/xml",
        "application/xml",
    )
    .await;
    let asynchronous = json!({
        "inputA": {"content": "{\"items\":[{\"id\":1,\"v\":\"a\"}]}"},
        "inputB": {"content": "{\"items\":[{\"id\":1,\"v\":\"b\"}]}"},
        "async": {"keepResult": true}
    });
    c.call(
        "compare",
        Method::POST,
        "/api/v1/comparisons",
        Some(("application/json", asynchronous.to_string())),
        "application/json",
        "application/json",
    )
    .await;

    // Seed 002's dialect with the seed's example pair: the DeltaXML result, the job, its
    // download, a deletion.
    let (a, b) = (
        "<root><child>same</child><child>old</child></root>",
        "<root><child>same</child><child>new</child></root>",
    );
    let xdc = "/api/xml-data-compare/v1/compare";
    let xdc_json = json!({"inputA": {"type": "string", "content": a},
                          "inputB": {"type": "string", "content": b}});
    let xdc_xml = indented(&format!(
        "<compare><inputA type=\"string\"><content><![CDATA[{a}]]></content></inputA>\
         <inputB type=\"string\"><content><![CDATA[{b}]]></content></inputB><async/></compare>"
    ));
    c.request("xdcCompare", "application/json", xdc_json.clone());
    c.request(
        "xdcCompare",
        "application/xml",
        Value::String(xdc_xml.clone()),
    );
    c.call(
        "xdcCompare",
        Method::POST,
        xdc,
        Some(("application/json", xdc_json.to_string())),
        "*/*",
        "application/xml",
    )
    .await;
    let mut xdc_async = xdc_json.clone();
    xdc_async["async"] = json!({});
    let mut xdc_jobs = Vec::new();
    for (ct, body) in [
        ("application/xml", xdc_xml.clone()),
        ("application/json", xdc_async.to_string()),
        ("application/json", xdc_async.to_string()),
    ] {
        let (_, loc, _) = c
            .call("xdcCompare", Method::POST, xdc, Some((ct, body)), ct, ct)
            .await;
        let loc = loc.unwrap();
        loop {
            let j: Value = c
                .http
                .get(c.local(&loc))
                .header("accept", "application/json")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if j["jobStatus"] == "SUCCESS" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        xdc_jobs.push(loc);
    }
    let done = c.get_both("xdcGetJob", &xdc_jobs[0]).await;
    c.call(
        "xdcDownload",
        Method::GET,
        done["output"]["uri"].as_str().unwrap(),
        None,
        "*/*",
        "*/*",
    )
    .await;
    for (loc, mt) in xdc_jobs[1..]
        .iter()
        .zip(["application/json", "application/xml"])
    {
        c.call("xdcDeleteJob", Method::DELETE, loc, None, mt, mt)
            .await;
    }

    // An export of the catalog.
    let (export, _) = c
        .post_both(
            "export",
            "/api/v1/exports",
            json!({"dataset": "tools", "format": "csv", "partSize": 1000}),
            "<export><dataset>jobs</dataset><format>xml</format>\
             <filter><status><status>SUCCESS</status><status>FAILED</status></status><operation>import</operation></filter></export>",
        )
        .await;
    c.wait_end(&export.unwrap()).await;

    // A bulk action: a job of its own, whose result counts what it did.
    let (bulk, _) = c
        .post_both(
            "bulkJobAction",
            "/api/v1/jobs/actions",
            json!({"action": "cancel", "filter": {"status": ["QUEUED"], "operation": "noop"}}),
            "<bulkAction><action>delete</action><filter><status><status>FAILED</status>\
             <status>CANCELLED</status></status><operation>noop</operation></filter></bulkAction>",
        )
        .await;
    c.wait_end(&bulk.unwrap()).await;

    // Any registered operation, answered at once or (Prefer: wait) when it ended.
    let (noop, _) = c
        .post_both(
            "submitJob",
            "/api/v1/jobs",
            json!({"operation": "noop", "input": {}, "correlationId": "order-42"}),
            "<job><operation>noop</operation><correlationId>order-43</correlationId></job>",
        )
        .await;
    let noop = noop.unwrap();
    c.wait_end(&noop).await;
    for (accept, body) in [
        (
            "application/json",
            json!({"operation": "noop", "input": {}}).to_string(),
        ),
        (
            "application/xml",
            "<job><operation>noop</operation></job>".to_string(),
        ),
    ] {
        let r = c
            .http
            .post(c.local("/api/v1/jobs"))
            .header("accept", accept)
            .header(
                "content-type",
                if accept.ends_with("json") {
                    "application/json"
                } else {
                    "application/xml"
                },
            )
            .header("prefer", "wait=10")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        if !accept.ends_with("json") {
            // A document's XML example is its JSON one (see `add_examples`).
            well_formed(&text);
            continue;
        }
        c.entry("submitJob", "response")
            .entry("200")
            .or_insert_with(|| json!({}))[accept] = serde_json::from_str(&text).unwrap();
    }

    // Cancel a long import, restart it, delete it.
    let big = c
        .http
        .post(c.local("/api/v1/imports"))
        .header("content-type", "application/json")
        .body(crate::helpers::generated(50_000, "G"))
        .send()
        .await
        .unwrap();
    let big = location(&big);
    let cancel = format!("{big}/cancel");
    c.call(
        "cancelJob",
        Method::POST,
        &cancel,
        None,
        "application/json",
        "application/json",
    )
    .await;
    c.call(
        "cancelJob",
        Method::POST,
        &cancel,
        None,
        "application/xml",
        "application/xml",
    )
    .await;
    c.wait_end(&big).await;
    c.call(
        "cancelJob",
        Method::POST,
        &cancel,
        None,
        "application/json",
        "application/json",
    )
    .await;
    c.call(
        "cancelJob",
        Method::POST,
        &cancel,
        None,
        "application/xml",
        "application/xml",
    )
    .await;
    c.call(
        "restartJob",
        Method::POST,
        &format!("{big}/restart"),
        None,
        "application/json",
        "application/json",
    )
    .await;
    let r = c.http.post(c.local(&cancel)).send().await.unwrap();
    assert!(r.status().is_success());
    c.wait_end(&big).await;
    c.call(
        "restartJob",
        Method::POST,
        &format!("{big}/restart"),
        None,
        "application/xml",
        "application/xml",
    )
    .await;
    c.call(
        "deleteJob",
        Method::DELETE,
        &big,
        None,
        "application/xml",
        "application/xml",
    )
    .await;
    c.call(
        "deleteJob",
        Method::DELETE,
        &noop,
        None,
        "application/json",
        "application/json",
    )
    .await;
    c.call(
        "purgeJobs",
        Method::DELETE,
        "/api/v1/jobs?operation=noop&status=SUCCESS",
        None,
        "application/json",
        "application/json",
    )
    .await;
    c.call(
        "purgeJobs",
        Method::DELETE,
        "/api/v1/jobs?operation=compare",
        None,
        "application/xml",
        "application/xml",
    )
    .await;

    // Seed 003's tasks and seed 001's background requests.
    c.get_both("listTasks", "/tasks?limit=2").await;
    c.get_both("listJobs", "/api/v1/jobs?operation=import&limit=2")
        .await;
    c.get_both("getStats", "/api/v1/stats?minutes=3&hours=2")
        .await;

    // A job whose notification's receiver cannot be reached: its delivery log, the deliveries
    // by state, and a redelivery.
    let (s, _, noted) = c
        .call(
            "submitJob",
            Method::POST,
            "/api/v1/jobs",
            Some((
                "application/json",
                json!({"operation": "noop", "async": {"notification":
                    {"url": "https://receiver.example/hooks/longrun"}}})
                .to_string(),
            )),
            "application/json",
            "application/json",
        )
        .await;
    assert_eq!(s, 201, "{noted}");
    let noted = link(&noted, "self").unwrap();
    let done = c.wait_end(&noted).await;
    let deliveries = link(&done, "deliveries").unwrap();
    let mut tried = Value::Null;
    for _ in 0..200 {
        tried = c
            .http
            .get(c.local(&deliveries))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if tried["deliveries"][0]["attempts"].as_array().map(Vec::len) == Some(1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(tried["deliveries"][0]["state"], "retrying", "{tried}");
    c.get_both("getJobDeliveries", &deliveries).await;
    c.get_both(
        "listDeliveries",
        "/api/v1/deliveries?state=retrying&limit=10",
    )
    .await;
    let (_, _, endpoints) = c
        .call(
            "listEndpoints",
            Method::GET,
            "/api/v1/endpoints",
            None,
            "application/json",
            "application/json",
        )
        .await;
    c.get_both("listEndpoints", "/api/v1/endpoints").await;
    let endpoint = endpoints["endpoints"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    c.call(
        "enableEndpoint",
        Method::POST,
        &format!("/api/v1/endpoints/{endpoint}/enable"),
        None,
        "application/json",
        "application/json",
    )
    .await;
    let redeliver = link(&tried["deliveries"][0], "redeliver").unwrap();
    c.call(
        "redeliver",
        Method::POST,
        &redeliver,
        None,
        "application/json",
        "application/json",
    )
    .await;
    let (_, bgr, _) = c
        .call(
            "listTools",
            Method::GET,
            "/api/tools?limit=2&bgrs=yes",
            None,
            "application/json",
            "application/json",
        )
        .await;
    // The answer above is the background request's, not the catalog's.
    let bgr = bgr.unwrap();
    c.out["listTools"]["response"]
        .as_object_mut()
        .unwrap()
        .remove("201");
    c.headers.remove(&("listTools".to_string(), 201));
    loop {
        let (_, _, b) = c
            .call(
                "getBackgroundRequest",
                Method::GET,
                &bgr,
                None,
                "application/json",
                "application/json",
            )
            .await;
        if b.to_string().contains("/result") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    c.call(
        "getBackgroundRequest",
        Method::GET,
        &bgr,
        None,
        "application/xml",
        "application/xml",
    )
    .await;
    c.get_both("getBackgroundRequestDetails", &format!("{bgr}/details"))
        .await;
    c.call(
        "getBackgroundRequestResult",
        Method::GET,
        &format!("{bgr}/result"),
        None,
        "*/*",
        "application/octet-stream",
    )
    .await;

    // Problems, one of each status a client can meet without a broken service: the examples
    // of every operation's answers of that status.
    let gone = big.clone();
    let ended = job.clone();
    let nobody = reqwest::Client::new();
    let reader = bearer(&read);
    let attempts: Vec<(u16, reqwest::RequestBuilder)> = vec![
        (
            400,
            c.http
                .post(c.local("/api/v1/jobs"))
                .header("content-type", "application/json")
                .body(r#"{"operation": "no-such-operation"}"#),
        ),
        (401, nobody.get(c.local("/api/v1/jobs"))),
        (403, reader.delete(c.local(&ended))),
        (
            404,
            c.http
                .get(c.local("/api/v1/jobs/01930000-0000-7000-8000-00000000ffff")),
        ),
        (
            406,
            c.http.get(c.local(&ended)).header("accept", "text/csv"),
        ),
        (
            413,
            c.http
                .post(c.local("/api/v1/jobs"))
                .header("content-type", "application/json")
                .body(json!({"operation": "noop", "input": {"v": vec![0; 100_001]}}).to_string()),
        ),
        (409, c.http.post(c.local(&format!("{ended}/cancel")))),
        (410, c.http.get(c.local(&gone))),
        (
            415,
            c.http
                .post(c.local("/api/v1/jobs"))
                .header("content-type", "text/plain")
                .body("noop"),
        ),
        (
            422,
            c.http
                .post(c.local("/api/v1/jobs"))
                .header("content-type", "application/json")
                .header("idempotency-key", "capture-1")
                .body(r#"{"operation": "noop", "input": {"other": true}}"#),
        ),
    ];
    for (want, rb) in attempts {
        let r = rb
            .header("accept", "application/problem+json")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let problem: Value = r.json().await.unwrap();
        assert_eq!(status, want, "{problem}");
        assert_eq!(problem["status"], want);
        c.out.entry("problems").or_insert_with(|| json!({}))[want.to_string()] = problem;
    }

    // Every header a client reads is declared where it was answered.
    let doc: Value = c
        .http
        .get(format!("{}/openapi.json", c.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut undeclared = Vec::new();
    for ((op, status), names) in &c.headers {
        let answer = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .find(|o| o["operationId"] == op.as_str())
            .map(|o| o["responses"][status.to_string()].clone())
            .unwrap_or_default();
        let declared: Vec<String> = answer["headers"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect();
        for name in names.iter().filter(|n| !declared.contains(n)) {
            undeclared.push(format!("{op} {status}: {name}"));
        }
    }
    assert!(
        undeclared.is_empty(),
        "answer headers not declared in the document (src/api/headers.rs):\n{}",
        undeclared.join("\n")
    );
    if std::env::var("LONGRUN_WRITE_EXAMPLES").is_ok() {
        let text = readable_ids(&serde_json::to_string_pretty(&Value::Object(c.out)).unwrap());
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/examples.json");
        std::fs::write(path, text + "\n").unwrap();
    }
}

/// `xml` with one element a line, indented by two spaces.
fn indented(xml: &str) -> String {
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let mut writer = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2);
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Eof => break,
            e => writer.write_event(e).unwrap(),
        }
    }
    String::from_utf8(writer.into_inner()).unwrap()
}

/// Each distinct UUID of `text` (hyphenated or not) becomes `01930000-0000-7000-8000-00000000000N`
/// (N in order of appearance), in the same form.
fn readable_ids(text: &str) -> String {
    let mut seen: Vec<uuid::Uuid> = Vec::new();
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String, seen: &mut Vec<uuid::Uuid>| {
        let id = (run.len() == 36 || run.len() == 32)
            .then(|| uuid::Uuid::parse_str(run).ok())
            .flatten();
        match id {
            Some(id) => {
                let n = seen.iter().position(|s| *s == id).unwrap_or_else(|| {
                    seen.push(id);
                    seen.len() - 1
                }) + 1;
                let new =
                    uuid::Uuid::parse_str(&format!("01930000-0000-7000-8000-{n:012}")).unwrap();
                if run.len() == 36 {
                    out.push_str(&new.hyphenated().to_string());
                } else {
                    out.push_str(&new.simple().to_string());
                }
            }
            None => out.push_str(run),
        }
        run.clear();
    };
    for ch in text.chars() {
        if ch.is_ascii_hexdigit() || ch == '-' {
            run.push(ch);
        } else {
            flush(&mut run, &mut out, &mut seen);
            out.push(ch);
        }
    }
    flush(&mut run, &mut out, &mut seen);
    out
}
