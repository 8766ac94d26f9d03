//! Seed 000 (tools import, "Long-Running Query Pattern") walked in its own order, with its own
//! example bodies: the import with `data`, the status while it runs and when complete, the
//! failed records in `errors`, and the sample payload as the seed prints it (a bare array).

use serde_json::{json, Value};

use crate::helpers::*;

/// The seed's "Sample Payload": five records as a bare JSON array.
fn sample_payload() -> Value {
    json!([
        {"tool_name": "University Scraper", "tool_id": "V001", "category": "Education",
         "description": "Extracts data on requirements, fees, and programs from Russian universities to keep budget information up-to-date.",
         "features": ["Data extraction", "Requirement updates", "Program information", "Fee updates"],
         "url": "https://example.com/university-scraper"},
        {"tool_name": "Currency Converter", "tool_id": "V002", "category": "Finance",
         "description": "Calculates real-time exchange rates to convert prices in your budget across various currencies.",
         "features": ["Real-time rates", "Multiple currencies", "Conversion history"],
         "url": "https://example.com/currency-converter"},
        {"tool_name": "Study Cost Simulator", "tool_id": "V003", "category": "Education",
         "description": "Estimates the total cost of studying in various Russian cities, accounting for tuition, accommodation, and other expenses.",
         "features": ["Tuition cost estimation", "Accommodation costs", "Other expenses", "City comparison"],
         "url": "https://example.com/study-cost-simulator"},
        {"tool_name": "Vocabulary Flashcard Generator", "tool_id": "V004", "category": "Language Learning",
         "description": "Practice essential Russian vocabulary for daily life and studies in Russia using digital flashcards.",
         "features": ["Custom vocabulary sets", "Review schedules", "Digital flashcards"],
         "url": "https://example.com/vocabulary-flashcard-generator"},
        {"tool_name": "Travel and Route Planner", "tool_id": "V005", "category": "Travel",
         "description": "Calculates and optimizes routes within Russia, considering travel time and costs.",
         "features": ["Route optimization", "Cost calculation", "Travel time estimation"],
         "url": "https://example.com/travel-route-planner"}
    ])
}

/// Every failed record, by walking the `errors` link and its `next` links.
async fn all_errors(app: &TestApp, status: &Value) -> Vec<Value> {
    let mut next = link(status, "errors");
    assert!(
        next.is_some(),
        "an ended import links all its failed records: {status}"
    );
    let mut all = Vec::new();
    while let Some(href) = next {
        let (s, _, page) = app.get(&href).await;
        assert_eq!(s, 200, "{page}");
        assert_eq!(page["task_reference"], status["task_reference"]);
        assert_eq!(page["failed_records"], status["failed_records"]);
        all.extend(page["errors"].as_array().unwrap().iter().cloned());
        next = link(&page, "next");
    }
    all
}

/// Poll the seed's status route until the import is no longer IN_PROGRESS.
async fn completed(app: &TestApp, loc: &str) -> Value {
    for _ in 0..1000 {
        let (s, _, st) = app.get(loc).await;
        assert_eq!(s, 200, "{st}");
        if st["status"] != "IN_PROGRESS" {
            return st;
        }
        assert!(st["progress"].as_str().unwrap().ends_with('%'), "{st}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{loc} did not complete");
}

/// Step 1 and 2 with the seed's request body; then its sample payload as printed (a bare array).
async fn seed_000_import_and_sample_payload(b: &'static str) {
    let app = TestApp::spawn(b, 2).await;
    // 1. Initiate Import: POST /api/tools/import with {"data": [...]}.
    let r = app.post_json("/api/tools/import", &seed_payload()).await;
    assert_eq!(r.status(), 201);
    let loc = location(&r);
    let v: Value = r.json().await.unwrap();
    let reference = v["task_reference"].as_str().unwrap().to_string();
    assert_eq!(v["status"], "IN_PROGRESS");
    assert_eq!(
        loc,
        app.url(&format!("/api/tools/import/status/{reference}"))
    );
    // 2. Polling the Import Status: GET /api/tools/import/status/{task_reference}.
    let done = completed(&app, &loc).await;
    assert_eq!(done["task_reference"], reference.as_str());
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(done["progress"], "100%");
    assert_eq!(done["imported_records"], 3);
    assert_eq!(done["errors"], json!([]));
    assert_eq!(done["failed_records"], 0);

    // The Sample Payload, exactly as the seed prints it: a bare array of five records.
    let r = app.post_json("/api/tools/import", &sample_payload()).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let loc = location(&r);
    let done = completed(&app, &loc).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["imported_records"], 5);
    assert_eq!(done["errors"], json!([]));
    let (_, _, tools) = app.get(&app.url("/api/tools")).await;
    let ids: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tool_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["V001", "V002", "V003", "V004", "V005"]);
    assert_eq!(tools["tools"][4], sample_payload()[4]);
    // A body over 1 MiB is only streamed (never held whole): a bare array is read there too.
    let big = generated(12_000, "B");
    let big = big["{\"data\":".len()..big.len() - 1].to_string();
    assert!(big.starts_with('[') && big.len() > 1 << 20);
    let r = app
        .post_raw("/api/tools/import", "application/json", big)
        .await;
    assert_eq!(r.status(), 201);
    let done = completed(&app, &location(&r)).await;
    assert_eq!(done["imported_records"], 12_000, "{done}");
    // An empty array has no records; the canonical route keeps its `{data}` envelope.
    let r = app.post_json("/api/tools/import", &json!([])).await;
    assert_eq!(r.status(), 400);
    let r = app.post_json("/api/v1/imports", &sample_payload()).await;
    assert_problem(r, 400, "data").await;
    app.stop().await;
}
crate::per_backend!(seed_000_import_and_sample_payload);

/// "If the process has failed": the records that failed are listed in `errors` as sent (with
/// their reason), all of them, or the first 1000 with `failed_records` (the total) and an
/// `errors` link to the full list.
async fn seed_000_failed_records_are_never_cut_silently(b: &'static str) {
    let app = TestApp::spawn(b, 2).await;
    // The seed's example: V002 and V003 fail (here: their url is not a URL), the rest import.
    let mut body = sample_payload();
    body[1]["url"] = json!("currency converter");
    body[2]["url"] = json!("study cost simulator");
    let r = app.post_json("/api/tools/import", &body).await;
    assert_eq!(r.status(), 201);
    let done = completed(&app, &location(&r)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["progress"], "100%");
    assert_eq!(done["imported_records"], 3);
    assert_eq!(done["failed_records"], 2);
    let errors = done["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    for (e, sent) in errors.iter().zip([&body[1], &body[2]]) {
        for field in [
            "tool_name",
            "tool_id",
            "category",
            "description",
            "features",
            "url",
        ] {
            assert_eq!(e[field], sent[field], "{field}");
        }
        assert!(e["reason"].as_str().unwrap().contains("url"), "{e}");
    }
    let all = all_errors(&app, &done).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["tool_id"], "V002");
    assert_eq!(all[0]["record"], 2);

    // More failed records than `errors` lists: the total and the link say so.
    let mut s = String::from("[");
    for i in 0..1001 {
        s.push_str(&format!(
            "{{\"tool_id\":\"X{i}\",\"tool_name\":\"x\",\"category\":\"c\",\"url\":\"nope\"}},"
        ));
    }
    s.push_str("{\"tool_id\":\"OK\",\"tool_name\":\"ok\",\"category\":\"c\"}]");
    let r = app
        .post_raw("/api/tools/import", "application/json", s)
        .await;
    assert_eq!(r.status(), 201);
    let done = completed(&app, &location(&r)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["imported_records"], 1);
    assert_eq!(done["failed_records"], 1001);
    let errors = done["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1000);
    assert_eq!(errors[0]["tool_id"], "X0");
    assert_eq!(errors[999]["tool_id"], "X999");
    let all = all_errors(&app, &done).await;
    assert_eq!(all.len(), 1001);
    let ids: Vec<&str> = all.iter().map(|e| e["tool_id"].as_str().unwrap()).collect();
    let want: Vec<String> = (0..1001).map(|i| format!("X{i}")).collect();
    assert_eq!(ids, want, "every failed record once, in input order");
    assert!(all
        .iter()
        .all(|e| e["reason"].as_str().unwrap().contains("url")));
    // The job's report of failed records holds the same ones.
    let job = app.get(&link(&done, "self").unwrap()).await.2;
    let report: Vec<Value> = app
        .http
        .get(link(&job, "file").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report.len(), 1001);
    // A cancelled import has no report, but its failed records are listed all the same.
    let mut s = String::from("[");
    for i in 0..3000 {
        s.push_str(&format!(
            "{{\"tool_id\":\"C{i}\",\"tool_name\":\"c\",\"category\":\"c\",\"url\":\"nope\"}},"
        ));
    }
    s.push_str("{\"tool_id\":\"OK\",\"tool_name\":\"ok\",\"category\":\"c\"}]");
    let r = app
        .post_raw("/api/tools/import", "application/json", s)
        .await;
    let loc = location(&r);
    let v: Value = r.json().await.unwrap();
    let job = link(&v, "self").unwrap();
    let r = app.http.post(format!("{job}/cancel")).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let done = completed(&app, &loc).await;
    if done["status"] == "CANCELLED" {
        let n = done["failed_records"].as_i64().unwrap();
        assert_eq!(all_errors(&app, &done).await.len() as i64, n);
    }
    app.stop().await;
}
crate::per_backend!(seed_000_failed_records_are_never_cut_silently);
