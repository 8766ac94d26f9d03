//! Seed 000: its dialect field for field, invalid records, cancellation of a large import.

use serde_json::{json, Value};

use crate::helpers::*;

async fn seed_dialect_field_for_field(b: &'static str) {
    let app = TestApp::spawn(b, 2).await;
    let r = app.post_json("/api/tools/import", &seed_payload()).await;
    assert_eq!(r.status(), 201);
    let loc = location(&r);
    assert!(loc.contains("/api/tools/import/status/"));
    let v: Value = r.json().await.unwrap();
    let reference = v["task_reference"].as_str().unwrap();
    assert_eq!(reference.len(), 11);
    assert!(reference
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
    assert_eq!(v["status"], "IN_PROGRESS");
    assert!(v["jobId"].is_string());
    assert!(link(&v, "monitor").is_some());
    let mut done = Value::Null;
    for _ in 0..200 {
        let (s, _, st) = app.get(&loc).await;
        assert_eq!(s, 200);
        assert_eq!(st["task_reference"], reference);
        if st["status"] == "COMPLETED" {
            done = st;
            break;
        }
        assert!(st["progress"].as_str().unwrap().ends_with('%'));
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    assert_eq!(done["progress"], "100%");
    assert_eq!(done["imported_records"], 3);
    assert_eq!(done["errors"], json!([]));
    let (_, _, tools) = app.get(&app.url("/api/tools")).await;
    assert_eq!(tools["tools"].as_array().unwrap().len(), 3);
    assert_eq!(tools["tools"][0], seed_payload()["data"][0]);
    let r = app
        .http
        .get(app.url("/api/tools/NOPE"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "no tool `NOPE`").await;
    let r = app
        .http
        .get(app.url("/api/tools/import/status/NOPE"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "NOPE").await;
    app.stop().await;
}
crate::per_backend!(seed_dialect_field_for_field);

async fn five_records_two_invalid(b: &'static str) {
    let app = TestApp::spawn(b, 2).await;
    let body = json!({"data": [
        {"tool_id": "A1", "tool_name": "One", "category": "C", "url": "https://example.com/1"},
        {"tool_id": "A2", "tool_name": "Two", "category": "C", "url": "not a url"},
        {"tool_id": "A3", "tool_name": "Three", "category": "C"},
        {"tool_id": "A1", "tool_name": "Dup", "category": "C"},
        {"tool_id": "A5", "tool_name": "Five", "category": "C", "features": ["x", "y"]}
    ]});
    let r = app.post_json("/api/tools/import", &body).await;
    let loc = location(&r);
    let mut st = Value::Null;
    for _ in 0..200 {
        st = app.get(&loc).await.2;
        if st["status"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    assert_eq!(st["status"], "COMPLETED", "{st}");
    assert_eq!(st["imported_records"], 3);
    let errors = st["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["tool_id"], "A2");
    assert!(errors[0]["reason"].as_str().unwrap().contains("url"));
    assert_eq!(errors[1]["tool_name"], "Dup");
    assert!(errors[1]["reason"].as_str().unwrap().contains("duplicate"));
    let (_, _, tools) = app.get(&app.url("/api/tools?limit=1000")).await;
    assert_eq!(tools["tools"].as_array().unwrap().len(), 3);
    // The job's output file is the report of the failed records.
    let job = app.get(&link(&st, "self").unwrap()).await.2;
    let report: Value = app
        .http
        .get(link(&job, "file").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report.as_array().unwrap().len(), 2);
    app.stop().await;
}
crate::per_backend!(five_records_two_invalid);

async fn ndjson_and_paging_of_the_catalog(b: &'static str) {
    let app = TestApp::spawn(b, 1).await;
    let body: String = (0..25)
        .map(|i| format!("{{\"tool_id\":\"N{i:02}\",\"tool_name\":\"n\",\"category\":\"c\"}}\n"))
        .collect();
    let r = app
        .post_raw("/api/v1/imports", "application/x-ndjson", body)
        .await;
    assert_eq!(r.status(), 201);
    let job = app.wait_end(&location(&r)).await;
    assert_eq!(job["summary"]["importedRecords"], 25);
    let mut next = Some(app.url("/api/tools?limit=10"));
    let mut seen = Vec::new();
    while let Some(n) = next {
        let (_, _, page) = app.get(&n).await;
        for t in page["tools"].as_array().unwrap() {
            seen.push(t["tool_id"].as_str().unwrap().to_string());
        }
        next = link(&page, "next");
    }
    let want: Vec<String> = (0..25).map(|i| format!("N{i:02}")).collect();
    assert_eq!(seen, want);
    // CSV, by format and by Accept, paged through the Link header.
    let r = app
        .http
        .get(app.url("/api/tools?limit=20&format=csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let next = r.headers()["link"].to_str().unwrap().to_string();
    let text = r.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "tool_id,tool_name,category,description,features,url"
    );
    assert_eq!(lines.count(), 20);
    let href = next.trim_start_matches('<').split('>').next().unwrap();
    let rest = app
        .http
        .get(href)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(rest.lines().count(), 1 + 5);
    let r = app
        .http
        .get(app.url("/api/tools"))
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().starts_with("tool_id,"));
    app.stop().await;
}
crate::per_backend!(ndjson_and_paging_of_the_catalog);

async fn cancel_during_a_large_import_stops_writing(b: &'static str) {
    let app = TestApp::spawn(b, 1).await;
    let r = app
        .post_raw(
            "/api/v1/imports",
            "application/json",
            generated(150_000, "L"),
        )
        .await;
    assert_eq!(r.status(), 201);
    let loc = location(&r);
    // Wait until records are being written.
    for _ in 0..600 {
        let (_, _, j) = app.get(&loc).await;
        if j["progress"]["amount"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let r = app.http.post(format!("{loc}/cancel")).send().await.unwrap();
    assert!(r.status() == 202 || r.status() == 200);
    let job = app.wait_end(&loc).await;
    assert_eq!(job["jobStatus"], "CANCELLED", "{job}");
    let a = count_tools(&app.http, &app.base).await;
    assert!(a < 150_000, "all records were written despite the cancel");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        count_tools(&app.http, &app.base).await,
        a,
        "records kept being written after CANCELLED"
    );
    app.stop().await;
}
crate::per_backend!(cancel_during_a_large_import_stops_writing);

/// A second import updates the tools it repeats and adds the new ones, whether its batch starts
/// with a tool the catalog has (upserted at once) or with a new one (the plain insert meets the
/// repeated tool, and the batch is upserted instead); records after the first batch too.
async fn imports_again_update_what_they_repeat(b: &'static str) {
    let app = TestApp::spawn(b, 2).await;
    let tool = |id: &str, name: &str| json!({"tool_id": id, "tool_name": name, "category": "C"});
    let import = |data: Vec<Value>| {
        let app = &app;
        async move {
            let r = app
                .post_json("/api/v1/imports", &json!({ "data": data }))
                .await;
            assert_eq!(r.status(), 201);
            let done = app.wait_end(&location(&r)).await;
            assert_eq!(done["jobStatus"], "SUCCESS", "{done}");
            done
        }
    };
    import(vec![tool("K1", "one"), tool("K2", "two")]).await;
    // Starts with a new tool, then repeats K1.
    import(vec![tool("K3", "three"), tool("K1", "one again")]).await;
    // Starts with a repeated tool.
    import(vec![tool("K2", "two again"), tool("K4", "four")]).await;
    // More than one batch: 1,500 new tools, then K3 repeated in the second batch.
    let mut many: Vec<Value> = (0..1500).map(|i| tool(&format!("M{i:04}"), "m")).collect();
    many.push(tool("K3", "three again"));
    let done = import(many).await;
    assert_eq!(done["summary"]["importedRecords"], 1501);
    assert_eq!(count_tools(&app.http, &app.base).await, 1504);
    for (id, name) in [
        ("K1", "one again"),
        ("K2", "two again"),
        ("K3", "three again"),
        ("K4", "four"),
        ("M1499", "m"),
    ] {
        let (s, _, t) = app.get(&app.url(&format!("/api/tools/{id}"))).await;
        assert_eq!(s, 200, "{id}");
        assert_eq!(t["tool_name"], name, "{id}: {t}");
    }
    app.stop().await;
}
crate::per_backend!(imports_again_update_what_they_repeat);

/// Records are declared as `ToolRecord` in the document, and the whole-body check holds small
/// JSON bodies to the document; a record of the wrong shape still fails on its own, with its
/// reason, on both routes and in both of seed 000's forms, and the good ones are imported.
#[tokio::test]
async fn a_record_that_does_not_fit_tool_record_fails_on_its_own() {
    let app = TestApp::spawn("sqlite", 1).await;
    let records = |p: &str| {
        json!([
            {"tool_id": format!("{p}1"), "tool_name": "Good", "category": "C"},
            {"tool_id": 5, "tool_name": "Numbered", "category": "C"},
            {"tool_name": "Nameless", "category": "C", "features": [1]},
            {"tool_id": format!("{p}4"), "tool_name": "Null", "category": "C", "description": null},
            {"tool_id": format!("{p}5"), "tool_name": "Listed", "category": "C", "features": "x"}
        ])
    };
    let reasons = |errors: &[Value]| -> Vec<String> {
        errors
            .iter()
            .map(|e| e["reason"].as_str().unwrap().to_string())
            .collect()
    };
    // The canonical route: 201, then two imported and three failed, each with its reason.
    let r = app
        .post_json("/api/v1/imports", &json!({"data": records("T")}))
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let job = app.wait_end(&location(&r)).await;
    assert_eq!(job["jobStatus"], "SUCCESS", "{job}");
    assert_eq!(job["summary"]["importedRecords"], 2, "{job}");
    assert_eq!(job["summary"]["failedRecords"], 3, "{job}");
    let report: Vec<Value> = app
        .http
        .get(link(&job, "file").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let why = reasons(&report);
    assert_eq!(why.len(), 3, "{report:?}");
    assert!(why[0].contains("`tool_id` must be a string"), "{why:?}");
    assert!(why[1].contains("`tool_id` is required"), "{why:?}");
    assert!(
        why[2].contains("`features` must be a list of strings"),
        "{why:?}"
    );
    // Seed 000's route, with `{data}` and with the bare array.
    for body in [json!({"data": records("U")}), records("V")] {
        let r = app.post_json("/api/tools/import", &body).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let loc = location(&r);
        let mut st = Value::Null;
        for _ in 0..200 {
            st = app.get(&loc).await.2;
            if st["status"] != "IN_PROGRESS" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        }
        assert_eq!(st["status"], "COMPLETED", "{st}");
        assert_eq!(st["imported_records"], 2, "{st}");
        assert_eq!(reasons(st["errors"].as_array().unwrap()), why);
    }
    // A record that is not an object at all is still the body's fault.
    let r = app
        .post_json("/api/v1/imports", &json!({"data": [5]}))
        .await;
    assert_problem(r, 400, "not an object").await;
    app.stop().await;
}
