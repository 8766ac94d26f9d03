//! Seed 001, background requests: "Any API request can be converted to background one by
//! adding bgrs parameter equal to 'yes' or 1" — POST submissions included. The background
//! request performs the POST as its submitter; its result is that POST's answer.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

/// Poll `/bgrs/{rid}` until it finished; its one record.
async fn finished(app: &TestApp, key: Option<&str>, rid: &str) -> Value {
    for _ in 0..400 {
        let (status, v, _) = keyed(
            app,
            reqwest::Method::GET,
            &format!("/bgrs/{rid}"),
            key,
            None,
        )
        .await;
        assert_eq!(status, 200, "{v}");
        if v[0]["status_name"] == "finished" || v[0]["status_name"] == "failed" {
            return v[0].clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("background request {rid} did not finish");
}

async fn background_post_submits_as_the_caller(b: &'static str) {
    let app = TestApp::spawn(b, 2).await;
    let alice = app.key("acme", "submit").await;
    let reader = app.key("acme", "read").await;
    let body = json!({"operation": "sleepy", "input": {"ms": 1}, "correlationId": "bg-post-1"});
    // Answered at once with the request id, as the seed shows.
    let r = app
        .http
        .post(app.url("/api/v1/jobs?bgrs=yes"))
        .bearer_auth(&alice)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let loc = location(&r);
    let accepted: Value = r.json().await.unwrap();
    let rid = accepted["request"].as_str().unwrap().to_string();
    assert_eq!(rid.len(), 32, "{accepted}");
    assert!(loc.ends_with(&format!("/bgrs/{rid}")));
    // Its record: finished, with the POST's own status and content type.
    let rec = finished(&app, Some(&alice), &rid).await;
    assert_eq!(rec["status_name"], "finished", "{rec}");
    assert_eq!(rec["status"], "201", "{rec}");
    assert!(rec["content_type"]
        .as_str()
        .unwrap()
        .starts_with("application/json"));
    assert!(rec["name"].as_str().unwrap().contains("bgrs=yes"), "{rec}");
    // The result is the POST's answer (its status too): the job it created, the caller's own.
    let (status, job, _) = keyed(
        &app,
        reqwest::Method::GET,
        &format!("/bgrs/{rid}/result"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["correlationId"], "bg-post-1", "{job}");
    let id = job["jobId"].as_str().unwrap();
    let (status, mine, _) = keyed(
        &app,
        reqwest::Method::GET,
        &format!("/api/v1/jobs/{id}"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["operation"], "sleepy");
    // Another tenant does not see it; a read key cannot submit in the background either.
    let bob = app.key("other", "admin").await;
    let (status, _, _) = keyed(
        &app,
        reqwest::Method::GET,
        &format!("/api/v1/jobs/{id}"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let r = app
        .http
        .post(app.url("/api/v1/jobs?bgrs=1"))
        .bearer_auth(&reader)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A refused POST is kept as the answer it got (a 400 problem), like any other answer.
    let r = app
        .http
        .post(app.url("/api/v1/jobs?bgrs=yes"))
        .bearer_auth(&alice)
        .json(&json!({"operation": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let rid = r.json::<Value>().await.unwrap()["request"]
        .as_str()
        .unwrap()
        .to_string();
    let rec = finished(&app, Some(&alice), &rid).await;
    assert_eq!(rec["status"], "400", "{rec}");
    // A background POST never has more than `submit`, whatever the key had: an admin's
    // background restart is answered 403, and that answer is its result.
    let admin = app.key("acme", "admin").await;
    let r = app
        .http
        .post(app.url(&format!("/api/v1/jobs/{id}/restart?bgrs=yes")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let rid = r.json::<Value>().await.unwrap()["request"]
        .as_str()
        .unwrap()
        .to_string();
    let rec = finished(&app, Some(&admin), &rid).await;
    assert_eq!(rec["status"], "403", "{rec}");
    app.stop().await;
}
crate::per_backend!(background_post_submits_as_the_caller);

/// "For call like …/users/me?t=csv&bgrs=yes it will be csv file": `t=csv` is honoured where
/// `format=csv` is (the catalog), directly and in the background.
async fn t_csv_is_format_csv(b: &'static str) {
    let app = TestApp::spawn(b, 1).await;
    let r = app
        .post_raw("/api/v1/imports", "application/json", generated(3, "T"))
        .await;
    assert_eq!(app.wait_end(&location(&r)).await["jobStatus"], "SUCCESS");
    let direct = app
        .http
        .get(app.url("/api/tools?t=csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 200);
    assert!(direct.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = direct.text().await.unwrap();
    assert!(csv.starts_with("tool_id,") || csv.contains("T0"), "{csv}");
    let xml = app
        .http
        .get(app.url("/api/tools?t=xml"))
        .send()
        .await
        .unwrap();
    assert!(xml.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/xml"));
    let r = app
        .http
        .get(app.url("/api/tools?t=csv&bgrs=yes"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let rid = r.json::<Value>().await.unwrap()["request"]
        .as_str()
        .unwrap()
        .to_string();
    let rec = finished(&app, None, &rid).await;
    assert_eq!(rec["status_name"], "finished", "{rec}");
    assert!(
        rec["content_type"]
            .as_str()
            .unwrap()
            .starts_with("text/csv"),
        "{rec}"
    );
    let body = app
        .http
        .get(app.url(&format!("/bgrs/{rid}/result")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, csv);
    app.stop().await;
}
crate::per_backend!(t_csv_is_format_csv);

/// The dialect routes run in the background too: a task read with `bgrs=yes`.
async fn dialect_routes_run_in_the_background(b: &'static str) {
    let app = TestApp::spawn(b, 1).await;
    let loc = app.sleepy(json!({"ms": 1})).await;
    let job = app.wait_end(&loc).await;
    let n = job["taskId"].as_i64().unwrap();
    let r = app
        .http
        .get(app.url(&format!("/tasks/{n}.json?bgrs=yes")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let rid = r.json::<Value>().await.unwrap()["request"]
        .as_str()
        .unwrap()
        .to_string();
    let rec = finished(&app, None, &rid).await;
    assert_eq!(rec["status_name"], "finished", "{rec}");
    assert_eq!(rec["status"], "200", "{rec}");
    let task: Value = app
        .http
        .get(app.url(&format!("/bgrs/{rid}/result")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(task["task"]["id"], n, "{task}");
    app.stop().await;
}
crate::per_backend!(dialect_routes_run_in_the_background);
