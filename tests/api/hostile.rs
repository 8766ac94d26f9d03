//! Hostile input: one check per operation whatever the route carried it, and outbound fetches
//! that cannot reach inside. Each case an attack found is a test here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::helpers::*;

/// A loopback HTTP server that answers every request with an "internal" document and counts
/// the requests it got; (port, count).
async fn inside_server() -> (u16, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let body = "<internal>secret-of-the-inside</internal>";
                let _ = sock
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (port, hits)
}

async fn post(app: &TestApp, path: &str, ct: &str, body: String) -> (u16, Value) {
    let r = app
        .http
        .post(app.url(path))
        .header("content-type", ct)
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// `input` sent to the operation's own route and as `operation` to `/api/v1/jobs`: both 400.
async fn refused_on_both(app: &TestApp, route: &str, operation: &str, input: Value) {
    let (s1, p1) = post(app, route, "application/json", input.to_string()).await;
    let generic = json!({"operation": operation, "input": input});
    let (s2, p2) = post(app, "/api/v1/jobs", "application/json", generic.to_string()).await;
    assert_eq!((s1, s2), (400, 400), "{input}: {p1} / {p2}");
}

/// A comparison input by `uri` on loopback, private or NAT64/6to4 forms is refused with 400 on
/// the generic route as on the dedicated one, in JSON and XML, stores nothing and is never
/// fetched.
async fn inside_addresses_are_refused_on_every_route(backend: &'static str) {
    let app = TestApp::spawn(backend, 1).await;
    let (port, hits) = inside_server().await;
    let forms = [
        format!("http://127.0.0.1:{port}/a.xml"),
        format!("http://2130706433:{port}/a.xml"),
        format!("http://0x7f000001:{port}/a.xml"),
        format!("http://127.1:{port}/a.xml"),
        format!("http://[::1]:{port}/a.xml"),
        format!("http://[::ffff:127.0.0.1]:{port}/a.xml"),
        format!("http://[::127.0.0.1]:{port}/a.xml"),
        format!("http://[64:ff9b::127.0.0.1]:{port}/a.xml"),
        format!("http://[2002:7f00:1::]:{port}/a.xml"),
        format!("http://localhost:{port}/a.xml"),
        "http://10.0.0.1/a.xml".to_string(),
        "http://172.16.0.1/a.xml".to_string(),
        "http://192.168.0.1/a.xml".to_string(),
        "http://169.254.169.254/latest/meta-data".to_string(),
    ];
    for uri in &forms {
        let generic = json!({"operation": "compare",
            "input": {"inputA": {"uri": uri}, "inputB": {"content": "<x/>"}}});
        let (s, p) = post(
            &app,
            "/api/v1/jobs",
            "application/json",
            generic.to_string(),
        )
        .await;
        assert_eq!(s, 400, "{uri} on /api/v1/jobs: {p}");
        assert!(p["detail"].as_str().unwrap().contains("inputA"), "{p}");
        let dedicated = json!({"inputA": {"uri": uri}, "inputB": {"content": "<x/>"}});
        let (s, p) = post(
            &app,
            "/api/v1/comparisons",
            "application/json",
            dedicated.to_string(),
        )
        .await;
        assert_eq!(s, 400, "{uri} on /api/v1/comparisons: {p}");
        let xml = format!(
            "<job><operation>compare</operation><input><inputA><uri>{}</uri></inputA>\
             <inputB><content>&lt;x/&gt;</content></inputB></input></job>",
            uri.replace('&', "&amp;")
        );
        let (s, p) = post(&app, "/api/v1/jobs", "application/xml", xml).await;
        assert_eq!(s, 400, "{uri} in XML on /api/v1/jobs: {p}");
    }
    let (_, _, list) = app.get(&app.url("/api/v1/jobs")).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0, "{list}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing inside was fetched");
    app.stop().await;
}

#[tokio::test]
async fn inside_addresses_are_refused_on_every_route_sqlite() {
    inside_addresses_are_refused_on_every_route("sqlite").await;
}

#[tokio::test]
async fn inside_addresses_are_refused_on_every_route_postgres() {
    if postgres_or_skip() {
        inside_addresses_are_refused_on_every_route("postgres").await;
    }
}

/// A document the dedicated route refuses (a DOCTYPE, too deep, not XML or JSON, two formats)
/// is refused with the same status on the generic route, before anything is stored.
#[tokio::test]
async fn documents_are_checked_alike_on_every_route() {
    let app = TestApp::spawn_with("sqlite", 1, |a| a.max_depth = Some(50)).await;
    let deep = format!("{}{}", "<a>".repeat(60), "</a>".repeat(60));
    let deep_json = format!("{}{}", "[".repeat(60), "]".repeat(60));
    let cases = [
        ("<!DOCTYPE x [<!ENTITY e \"boom\">]><x>&e;</x>", "<x/>"),
        (deep.as_str(), "<a/>"),
        (deep_json.as_str(), "[]"),
        ("neither", "<x/>"),
        ("<x/>", "{\"a\": 1}"),
    ];
    for (a, b) in cases {
        let inputs = json!({"inputA": {"content": a}, "inputB": {"content": b}});
        refused_on_both(&app, "/api/v1/comparisons", "compare", inputs).await;
    }
    let (_, _, list) = app.get(&app.url("/api/v1/jobs")).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0, "{list}");
    app.stop().await;
}

/// Bodies read whole are held to their route's limit and to a number of values, so a small body
/// cannot grow into gigabytes when parsed: a 16 MiB array of zeros (which took the server to
/// 2 GiB) is a 413 on every route that reads a body whole, in JSON and XML, announced or
/// chunked, and stores nothing.
#[tokio::test]
async fn bodies_cannot_amplify() {
    let app = TestApp::spawn_with("sqlite", 1, |a| a.max_input_size = Some("4MiB".into())).await;
    let zeros = format!("[{}0]", "0,".repeat(8 * 1024 * 1024 - 1));
    let cases = [
        (
            "/api/v1/jobs",
            "application/json",
            format!("{{\"operation\":\"noop\",\"input\":{zeros}}}"),
        ),
        (
            "/api/v1/jobs",
            "application/json",
            format!("{{\"operation\":\"noop\",\"input\":[{}0]}}", "0,".repeat(200_000)),
        ),
        (
            "/api/v1/comparisons",
            "application/json",
            format!("{{\"inputA\":{{\"content\":\"<a/>\"}},\"inputB\":{{\"content\":\"<a/>\"}},\"x\":[{}0]}}", "0,".repeat(200_000)),
        ),
        (
            "/api/v1/exports",
            "application/json",
            format!("{{\"dataset\":\"tools\",\"filter\":{{\"status\":[{}\"SUCCESS\"]}}}}", "\"SUCCESS\",".repeat(200_000)),
        ),
        (
            "/api/v1/jobs",
            "application/xml",
            format!("<job><operation>noop</operation><input>{}</input></job>", "<a/>".repeat(200_000)),
        ),
        // Any JSON media type the payloads accept is held to the same limits.
        (
            "/api/v1/jobs",
            "application/vnd.example+json",
            format!("{{\"operation\":\"noop\",\"input\":{zeros}}}"),
        ),
    ];
    for (path, ct, body) in cases {
        let (s, p) = post(&app, path, ct, body.clone()).await;
        assert_eq!(s, 413, "{path} {ct} ({} bytes): {p}", body.len());
        assert_eq!(p["type"], "urn:longrun:problem:payload-too-large", "{p}");
        // The same without a Content-Length: refused as it passes the limit.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body
            .into_bytes()
            .chunks(64 * 1024)
            .map(|c| Ok(c.to_vec()))
            .collect();
        let r = app
            .http
            .post(app.url(path))
            .header("content-type", ct)
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            .send()
            .await;
        if let Ok(r) = r {
            assert_eq!(r.status().as_u16(), 413, "{path} {ct} chunked");
        }
    }
    let (_, _, list) = app.get(&app.url("/api/v1/jobs")).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0, "{list}");
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    app.stop().await;
}

/// A large input is kept in the object store, not in the jobs table: the job runs with it, the
/// list does not carry it, and deleting the job removes it.
async fn large_inputs_live_in_the_object_store(backend: &'static str) {
    let app = TestApp::spawn(backend, 1).await;
    let doc = |n: usize, last: &str| {
        format!(
            "<list>{}<item id=\"last\">{last}</item></list>",
            (0..n)
                .map(|i| format!("<item id=\"{i}\">value {i}</item>"))
                .collect::<String>()
        )
    };
    let (a, b) = (doc(8000, "old"), doc(8000, "new"));
    assert!(a.len() > 200_000);
    let body = json!({"operation": "compare",
        "input": {"inputA": {"content": a}, "inputB": {"content": b},
                  "options": {"keyAttributes": ["id"]}}});
    let (s, job) = post(&app, "/api/v1/jobs", "application/json", body.to_string()).await;
    assert_eq!(s, 201, "{job}");
    let href = link(&job, "self").unwrap();
    let done = app.wait_end(&href).await;
    assert_eq!(done["jobStatus"], "SUCCESS", "{done}");
    let (_, _, delta) = app.get(&link(&done, "file").unwrap()).await;
    let _ = delta;
    let id: uuid::Uuid = job["jobId"].as_str().unwrap().parse().unwrap();
    let stored = app.engine.store().get_job(id).await.unwrap().unwrap();
    assert!(
        stored.input.to_string().len() < 1024,
        "the jobs table keeps a marker, not the input: {}",
        stored.input
    );
    let key = stored
        .input_blob
        .clone()
        .expect("the input is in the object store");
    assert!(app.engine.blobs().get(&key, None).await.is_ok());
    let r = app
        .http
        .get(app.url("/api/v1/jobs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        r.len() < 20_000,
        "the list carries no input ({} bytes)",
        r.len()
    );
    let r = app.http.delete(&href).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(app.engine.blobs().get(&key, None).await.is_err());
    app.stop().await;
}

#[tokio::test]
async fn large_inputs_live_in_the_object_store_sqlite() {
    large_inputs_live_in_the_object_store("sqlite").await;
}

#[tokio::test]
async fn large_inputs_live_in_the_object_store_postgres() {
    if postgres_or_skip() {
        large_inputs_live_in_the_object_store("postgres").await;
    }
}

async fn location_with(app: &TestApp, headers: &[(&str, &str)]) -> String {
    let mut r = app
        .http
        .post(app.url("/api/v1/jobs"))
        .json(&json!({"operation": "noop"}));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let r = r.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    location(&r)
}

/// `X-Forwarded-Host` and `X-Forwarded-Proto` make links only when a configured proxy sent
/// them, and only as a host and a scheme; a hostile `Host` is not copied into links either.
#[tokio::test]
async fn forwarded_headers_need_a_trusted_proxy() {
    let hostile = [
        (
            "x-forwarded-host",
            "javascript://evil\"><script>alert(1)</script>",
        ),
        ("x-forwarded-proto", "javascript"),
    ];
    let nice = [
        ("x-forwarded-host", "api.example.com"),
        ("x-forwarded-proto", "https"),
    ];
    // No proxy configured: the request's own Host, whatever is forwarded.
    let app = TestApp::spawn("sqlite", 1).await;
    for h in [&hostile[..], &nice[..]] {
        let loc = location_with(&app, h).await;
        assert!(loc.starts_with(&app.base), "{loc}");
    }
    let loc = location_with(&app, &[("host", "a\"><b>")]).await;
    assert!(loc.starts_with("http://localhost/"), "{loc}");
    app.stop().await;

    // Loopback is a trusted proxy: forwarded values are used when they are a scheme and a host.
    let app = TestApp::spawn_with("sqlite", 1, |a| {
        a.trusted_proxies = Some("10.0.0.0/8, 127.0.0.1".into())
    })
    .await;
    let loc = location_with(&app, &nice).await;
    assert!(
        loc.starts_with("https://api.example.com/api/v1/jobs/"),
        "{loc}"
    );
    let loc = location_with(&app, &hostile).await;
    assert!(loc.starts_with(&app.base), "{loc}");
    // A background request's links carry the checked origin, not what its client sent.
    let r = app
        .http
        .get(app.url("/api/v1/operations?bgrs=yes"))
        .header("x-forwarded-host", "api.example.com:8443")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert!(location(&r).starts_with("https://api.example.com:8443/bgrs/"));
    let bg: Value = r.json().await.unwrap();
    let done = app
        .wait_end(&app.url(&format!("/api/v1/jobs/{}", {
            let m = link(&bg, "monitor").unwrap();
            m.rsplit('/').next().unwrap().to_string()
        })))
        .await;
    assert_eq!(done["jobStatus"], "SUCCESS", "{done}");
    let rid = bg["request"].as_str().unwrap();
    let body = app
        .http
        .get(app.url(&format!("/bgrs/{rid}/result")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("https://api.example.com:8443/"), "{body}");
    app.stop().await;
}

/// An export's input is checked by the export's own check on both routes: the same refusals,
/// with the same status, and nothing stored.
#[tokio::test]
async fn exports_are_checked_alike_on_every_route() {
    let app = TestApp::spawn("sqlite", 1).await;
    for input in [
        json!({"dataset": "secrets"}),
        json!({"dataset": "tools", "format": "yaml"}),
        json!({"dataset": "tools", "partSize": 0}),
        json!({"dataset": "tools", "filter": {"status": ["FAILED"]}}),
        json!({"dataset": "jobs", "filter": {"status": ["NOPE"]}}),
        json!({"dataset": "jobs", "filter": {"createdAfter": "yesterday"}}),
    ] {
        refused_on_both(&app, "/api/v1/exports", "export", input).await;
    }
    // The request operation reads only this service's API, on whatever route submits it.
    for uri in ["http://127.0.0.1:1/", "/metrics", "//evil.example/api/"] {
        let generic = json!({"operation": "request", "input": {"uri": uri}});
        let (s, p) = post(
            &app,
            "/api/v1/jobs",
            "application/json",
            generic.to_string(),
        )
        .await;
        assert_eq!(s, 400, "{uri}: {p}");
    }
    let (_, _, list) = app.get(&app.url("/api/v1/jobs")).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0, "{list}");
    app.stop().await;
}

/// Attributes count as values, and an element with very many is refused at once (quick-xml's
/// own duplicate check is quadratic in them).
#[tokio::test]
async fn xml_attributes_cannot_amplify() {
    let app = TestApp::spawn("sqlite", 1).await;
    let attrs = |n: usize| {
        (0..n)
            .map(|i| format!("a{i}=\"\""))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (path, body) in [
        (
            "/api/v1/comparisons",
            format!("<compare {}/>", attrs(150_000)),
        ),
        ("/api/v1/jobs", format!("<job {}/>", attrs(300_000))),
        (
            "/api/v1/jobs",
            format!(
                "<job><operation>noop</operation><input><x {}/></input></job>",
                attrs(300)
            ),
        ),
        (
            "/api/v1/jobs",
            format!(
                "<job><operation>noop</operation><input>{}</input></job>",
                (0..2_000)
                    .map(|_| format!("<x {}/>", attrs(60)))
                    .collect::<String>()
            ),
        ),
    ] {
        let t = std::time::Instant::now();
        let (s, p) = post(&app, path, "application/xml", body).await;
        assert!([400, 413].contains(&s), "{path}: {s} {p}");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20),
            "{path} took {:?}",
            t.elapsed()
        );
    }
    let (_, _, list) = app.get(&app.url("/api/v1/jobs")).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0, "{list}");
    app.stop().await;
}

/// A `request` job that names a URI the service cannot make, or a header it does not replay, is
/// refused at submission; a background request whose query grows too long is refused too; and an
/// operation that panics fails its job without taking its worker along.
#[tokio::test]
async fn request_jobs_and_panics_do_not_stop_workers() {
    let app = TestApp::spawn("sqlite", 1).await;
    for input in [
        json!({"uri": "/api/ x"}),
        json!({"uri": format!("/api/v1/jobs?q={}", "a".repeat(9000))}),
        json!({"uri": "/api/v1/jobs", "headers": [["x-forwarded-host", "evil.example"]]}),
        json!({"uri": "/api/v1/jobs", "headers": [["Authorization", "Bearer x"]]}),
        json!({"uri": "/api/v1/jobs", "origin": "javascript://x"}),
        json!({"uri": "/api/v1/jobs", "origin": "https://a.example/path"}),
    ] {
        let body = json!({"operation": "request", "input": input});
        let (s, p) = post(&app, "/api/v1/jobs", "application/json", body.to_string()).await;
        assert_eq!(s, 400, "{input}: {p}");
    }
    let long = format!("/api/v1/jobs?bgrs=yes&q={}", "(".repeat(4000));
    let r = app.http.get(app.url(&long)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // Two panicking jobs on the one worker, then an ordinary one: it still runs.
    for _ in 0..2 {
        let (s, j) = post(
            &app,
            "/api/v1/jobs",
            "application/json",
            json!({"operation": "sleepy", "input": {"panic": true}}).to_string(),
        )
        .await;
        assert_eq!(s, 201);
        let done = app.wait_end(&link(&j, "self").unwrap()).await;
        assert_eq!(done["jobStatus"], "FAILED", "{done}");
    }
    let (_, j) = post(
        &app,
        "/api/v1/jobs",
        "application/json",
        json!({"operation": "sleepy", "input": {"ms": 1}}).to_string(),
    )
    .await;
    let done = app.wait_end(&link(&j, "self").unwrap()).await;
    assert_eq!(done["jobStatus"], "SUCCESS", "{done}");
    app.stop().await;
}
