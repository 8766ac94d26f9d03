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
        let (s1, p1) = post(
            &app,
            "/api/v1/comparisons",
            "application/json",
            inputs.to_string(),
        )
        .await;
        let generic = json!({"operation": "compare", "input": inputs});
        let (s2, p2) = post(
            &app,
            "/api/v1/jobs",
            "application/json",
            generic.to_string(),
        )
        .await;
        assert_eq!((s1, s2), (400, 400), "{a}: {p1} / {p2}");
    }
    let (_, _, list) = app.get(&app.url("/api/v1/jobs")).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0, "{list}");
    app.stop().await;
}
