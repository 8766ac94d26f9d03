//! The checked-in OpenAPI document equals the served one; the docs and entry point are there.

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
