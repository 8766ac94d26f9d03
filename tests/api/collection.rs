//! The audit collection: filters, both sorts, cursor paging without gaps or repeats, purge.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::helpers::*;

async fn walk(app: &TestApp, first: String) -> Vec<String> {
    let mut ids = Vec::new();
    let mut next = Some(first);
    while let Some(n) = next {
        let (s, h, page) = app.get(&n).await;
        assert_eq!(s, 200, "{page}");
        for j in page["jobs"].as_array().unwrap() {
            ids.push(j["jobId"].as_str().unwrap().to_string());
        }
        next = link(&page, "next");
        if let Some(nx) = &next {
            let lh = h["link"].to_str().unwrap();
            assert!(lh.contains(&format!("<{nx}>; rel=\"next\"")), "{lh}");
        }
    }
    ids
}

async fn audit_list_filters_sorts_and_pages(b: &'static str) {
    let app = TestApp::spawn(b, 2).await;
    let mut all = Vec::new();
    for i in 0..250 {
        let fail = i % 5 == 0;
        let r = app
            .http
            .post(app.url("/api/v1/jobs"))
            .header("x-correlation-id", if i % 2 == 0 { "even" } else { "odd" })
            .json(&json!({"operation": "sleepy", "input": {"ms": 0, "steps": 1, "fail": fail}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        all.push(v["jobId"].as_str().unwrap().to_string());
    }
    for id in all.iter().rev().take(3) {
        app.wait_end(&app.url(&format!("/api/v1/jobs/{id}"))).await;
    }
    // Wait for all to end.
    for _ in 0..300 {
        let (_, _, v) = app
            .get(
                &app.url(
                    "/api/v1/jobs?status=QUEUED&status=STARTED&status=PROCESSING&status=SAVING",
                ),
            )
            .await;
        if v["count"] == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let asc = walk(&app, app.url("/api/v1/jobs?limit=7")).await;
    assert_eq!(
        asc, all,
        "ascending pages have gaps, repeats or the wrong order"
    );
    let desc = walk(&app, app.url("/api/v1/jobs?limit=9&sort=-createdTime")).await;
    let mut rev = all.clone();
    rev.reverse();
    assert_eq!(desc, rev);
    // prev links walk back exactly.
    let (_, _, p1) = app.get(&app.url("/api/v1/jobs?limit=10")).await;
    assert_eq!(p1["count"], 250);
    assert!(link(&p1, "prev").is_none());
    // A first page that holds every match counts them; later pages carry no count.
    let (_, _, whole) = app
        .get(&app.url("/api/v1/jobs?status=FAILED&limit=1000"))
        .await;
    assert_eq!(whole["count"], 50);
    assert!(link(&whole, "next").is_none());
    let (_, _, later) = app.get(&link(&p1, "next").unwrap()).await;
    assert!(later.get("count").is_none(), "{later}");
    let (_, _, p2) = app.get(&link(&p1, "next").unwrap()).await;
    let (_, _, back) = app.get(&link(&p2, "prev").unwrap()).await;
    let ids = |p: &Value| {
        p["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["jobId"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&back), ids(&p1));
    // Filters.
    let failed = walk(&app, app.url("/api/v1/jobs?status=FAILED&limit=1000")).await;
    assert_eq!(failed.len(), 50);
    let even = walk(&app, app.url("/api/v1/jobs?correlationId=even&limit=13")).await;
    assert_eq!(even.len(), 125);
    let both = walk(
        &app,
        app.url("/api/v1/jobs?correlationId=even&status=FAILED,SUCCESS"),
    )
    .await;
    assert_eq!(both.len(), 125);
    assert_eq!(
        walk(&app, app.url("/api/v1/jobs?operation=sleepy"))
            .await
            .len(),
        250
    );
    assert_eq!(
        walk(&app, app.url("/api/v1/jobs?operation=import"))
            .await
            .len(),
        0
    );
    let far = "2999-01-01T00:00:00Z";
    let old = "2000-01-01T00:00:00Z";
    assert_eq!(
        walk(&app, app.url(&format!("/api/v1/jobs?createdAfter={far}")))
            .await
            .len(),
        0
    );
    assert_eq!(
        walk(
            &app,
            app.url(&format!(
                "/api/v1/jobs?createdBefore={far}&createdAfter={old}&limit=1000"
            ))
        )
        .await
        .len(),
        250
    );
    assert_eq!(
        walk(
            &app,
            app.url(&format!(
                "/api/v1/jobs?finishedBefore={far}&finishedAfter={old}&limit=1000"
            ))
        )
        .await
        .len(),
        250
    );
    assert_eq!(
        walk(&app, app.url(&format!("/api/v1/jobs?finishedAfter={far}")))
            .await
            .len(),
        0
    );
    let unique: HashSet<_> = asc.iter().collect();
    assert_eq!(unique.len(), 250);
    // Purge the failed ones.
    let r = app
        .http
        .delete(app.url("/api/v1/jobs?status=FAILED"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["removed"], 50);
    assert_eq!(
        walk(&app, app.url("/api/v1/jobs?limit=1000")).await.len(),
        200
    );
    let r = app
        .http
        .delete(app.url("/api/v1/jobs?status=QUEUED"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "not an end state").await;
    app.stop().await;
}
crate::per_backend!(audit_list_filters_sorts_and_pages);

/// A deleted job does not exist afterwards: not listed, not counted, `status=DELETED` is no
/// filter (400), its id answers 410; the DELETE answer keeps when the job really ended, in
/// milliseconds like every other document.
async fn deleted_jobs_are_not_in_the_collection(b: &'static str) {
    let app = TestApp::spawn(b, 1).await;
    let kept = app.sleepy(json!({"ms": 1})).await;
    let gone = app.sleepy(json!({"ms": 1})).await;
    app.wait_end(&kept).await;
    let ended = app.wait_end(&gone).await;
    let finished = ended["finishedTime"].as_str().unwrap().to_string();
    let r = app.http.delete(&gone).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["jobStatus"], "DELETED");
    assert_eq!(answer["finishedTime"], finished.as_str(), "{answer}");
    assert_eq!(app.http.get(&gone).send().await.unwrap().status(), 410);
    let list = json_of(&app.http, &app.url("/api/v1/jobs")).await;
    let ids: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["jobId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{list}");
    assert!(kept.ends_with(ids[0]));
    assert_eq!(list["count"], 1, "{list}");
    let r = app
        .http
        .get(app.url("/api/v1/jobs?status=DELETED"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let p: Value = r.json().await.unwrap();
    assert!(p["detail"].as_str().unwrap().contains("DELETED"), "{p}");
    // A job deleted before it ended gets the time of its deletion, to the millisecond.
    let queued = app.sleepy(json!({"ms": 2000, "steps": 5})).await;
    let r: Value = app
        .http
        .delete(&queued)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t = r["finishedTime"].as_str().unwrap();
    let frac = t.split('.').nth(1).unwrap_or_default();
    let digits = frac.chars().take_while(char::is_ascii_digit).count();
    assert_eq!(digits, 3, "{t}");
    app.stop().await;
}
crate::per_backend!(deleted_jobs_are_not_in_the_collection);

/// `search` finds jobs by the start of their id or of their correlation id, whatever the letter
/// case, on the list and on the collection's stream; the pattern characters of SQL are plain
/// characters in it; an over-long one is a problem document.
async fn search_by_id_or_correlation_prefix(b: &'static str) {
    let app = TestApp::spawn(b, 2).await;
    let mut ids = Vec::new();
    for cid in ["Order-123-A", "order-456", "other_1", "100%"] {
        let r = app
            .post_json(
                "/api/v1/jobs",
                &json!({"operation": "noop", "correlationId": cid}),
            )
            .await;
        assert_eq!(r.status(), 201);
        ids.push(location(&r).rsplit('/').next().unwrap().to_string());
    }
    let found = |q: String| {
        let app = &app;
        async move {
            let url = format!(
                "{}?search={}",
                app.url("/api/v1/jobs"),
                url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
            );
            let (s, _, page) = app.get(&url).await;
            assert_eq!(s, 200, "{page}");
            let mut got: Vec<String> = page["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["correlationId"].as_str().unwrap().to_string())
                .collect();
            got.sort();
            got
        }
    };
    assert_eq!(found("order".into()).await, ["Order-123-A", "order-456"]);
    assert_eq!(found("ORDER-1".into()).await, ["Order-123-A"]);
    assert_eq!(found("other_".into()).await, ["other_1"]);
    assert_eq!(found("o_her".into()).await, Vec::<String>::new());
    assert_eq!(found("100%".into()).await, ["100%"]);
    assert_eq!(found("%".into()).await, Vec::<String>::new());
    // By id: the whole id, or its start in capitals.
    assert_eq!(found(ids[1].clone()).await, ["order-456"]);
    assert_eq!(
        found(ids[2][..30].to_uppercase()).await,
        ["other_1"],
        "ids of one millisecond share their start; 30 characters tell them apart"
    );
    let r = app
        .http
        .get(format!(
            "{}?search={}",
            app.url("/api/v1/jobs"),
            "x".repeat(201)
        ))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "search").await;
    // The stream with the same filter: only the matching job's changes.
    let mut s = crate::live::Sse::open(&app, "/api/v1/events?search=needle", None, None).await;
    for cid in ["haystack", "Needle-7"] {
        app.post_json(
            "/api/v1/jobs",
            &json!({"operation": "noop", "correlationId": cid}),
        )
        .await;
    }
    let seen = s
        .until(std::time::Duration::from_secs(20), |e| {
            e.data["jobStatus"] == "SUCCESS"
        })
        .await;
    assert!(
        seen.iter().all(|e| e.data["correlationId"] == "Needle-7"),
        "{seen:#?}"
    );
    // A bulk action's filter takes `search` too: it deletes the haystack and nothing else.
    let r = app
        .post_json(
            "/api/v1/jobs/actions",
            &json!({"action": "delete", "filter": {"search": "HAY"}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let done = app.wait_end(&location(&r)).await;
    assert_eq!(done["jobStatus"], "SUCCESS", "{done}");
    assert_eq!(done["summary"]["acted"], 1, "{done}");
    assert_eq!(found("hay".into()).await, Vec::<String>::new());
    assert_eq!(found("needle".into()).await, ["Needle-7"]);
    app.stop().await;
}
crate::per_backend!(search_by_id_or_correlation_prefix);
