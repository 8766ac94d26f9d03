//! The walk of `examples/follow_links.rs` (root → submit → Location → monitor → result → file),
//! compiled into this binary and run against a live service, so the example cannot rot.

use crate::helpers::TestApp;

#[path = "../../examples/follow_links.rs"]
#[allow(dead_code)]
mod follow_links;

async fn the_follow_links_example_walks_to_the_file(backend: &'static str) {
    let app = TestApp::spawn(backend, 2).await;
    let w = follow_links::walk(&reqwest::Client::new(), &format!("{}/", app.base))
        .await
        .unwrap();
    assert!(w.job.starts_with(&app.base), "{}", w.job);
    assert_eq!(w.status, "SUCCESS");
    assert_eq!(w.result["summary"]["importedRecords"], 1, "{}", w.result);
    assert_eq!(w.result["summary"]["failedRecords"], 1, "{}", w.result);
    let report: serde_json::Value = serde_json::from_slice(&w.bytes).unwrap();
    assert_eq!(report[0]["tool_id"], "F2", "{report}");
    assert!(w.file.contains("/downloads/"), "{}", w.file);
    app.stop().await;
}
crate::per_backend!(the_follow_links_example_walks_to_the_file);
