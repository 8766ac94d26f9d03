//! Bad input: each a problem document, nothing left behind.

use serde_json::json;

use crate::helpers::*;

async fn bad_input_is_a_problem_and_changes_nothing(b: &'static str) {
    let app = TestApp::spawn(b, 1).await;
    let cases: Vec<(&str, &str, u16, &str)> = vec![
        (
            "application/json",
            r#"{"data": [ {"tool_id": "x"}, "#,
            400,
            "malformed JSON",
        ),
        (
            "application/json",
            r#"{"data": "nope"}"#,
            400,
            "must be an array",
        ),
        (
            "application/json",
            r#"{"data": [], "extra": 1}"#,
            400,
            "unknown field `extra`",
        ),
        ("application/json", r#"{"data": [5]}"#, 400, "not an object"),
        (
            "application/xml",
            "<import><data><tool></data></import>",
            400,
            "malformed XML",
        ),
        (
            "application/xml",
            "<!DOCTYPE lolz [<!ENTITY lol \"lol\">]><import><data/></import>",
            400,
            "document type",
        ),
        ("text/plain", "hello", 415, "not supported"),
    ];
    for (ct, body, status, detail) in cases {
        let r = app.post_raw("/api/v1/imports", ct, body.to_string()).await;
        assert_problem(r, status, detail).await;
    }
    // Problems come as XML when the client reads XML.
    let r = app
        .http
        .post(app.url("/api/v1/imports"))
        .header("content-type", "application/json")
        .header("accept", "application/xml")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/problem+xml");
    assert_problem(r, 400, "malformed JSON").await;
    // Wrong types in the generic submission.
    let r = app
        .post_json("/api/v1/jobs", &json!({"operation": 5}))
        .await;
    assert_problem(r, 400, "").await;
    let r = app
        .post_json("/api/v1/jobs", &json!({"operation": "nope"}))
        .await;
    assert_problem(r, 400, "unknown operation `nope`").await;
    let r = app
        .post_json(
            "/api/v1/jobs",
            &json!({"operation": "sleepy", "input": {"ms": "x"}}),
        )
        .await;
    assert_problem(r, 400, "`ms` must be a number").await;
    // XML submissions: typed by shape, entity bombs refused.
    let r = app
        .post_raw(
            "/api/v1/jobs",
            "application/xml",
            "<!DOCTYPE a [<!ENTITY b \"c\">]><job><operation>sleepy</operation></job>",
        )
        .await;
    assert_problem(r, 400, "document type").await;
    let r = app
        .post_raw(
            "/api/v1/jobs",
            "application/xml",
            "<job><operation>sleepy</operation><async><keepResult>maybe</keepResult></async></job>",
        )
        .await;
    assert_problem(r, 400, "keepResult").await;
    let r = app
        .post_raw("/api/v1/jobs", "application/xml", "<job><operation>sleepy")
        .await;
    assert_problem(r, 400, "line 1").await;
    let r = app
        .post_raw(
            "/api/v1/imports",
            "application/json",
            r#"{"data": [], "async": {"keepResult": "later"}}"#.to_string(),
        )
        .await;
    assert_problem(r, 400, "keepResult").await;
    // Nothing was stored by any of the above.
    let (_, _, list) = app.get(&app.url("/api/v1/jobs")).await;
    assert_eq!(list["count"], 0, "{list}");
    // Negotiation.
    let r = app
        .http
        .get(app.url("/api/v1/jobs"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_problem(r, 406, "text/html").await;
    let r = app
        .http
        .get(app.url("/api/v1/jobs?format=yaml"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 406, "yaml").await;
    let r = app
        .http
        .get(app.url("/api/v1/jobs"))
        .header("accept", "application/json;q=0.5, application/xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/xml");
    let r = app
        .http
        .get(app.url("/api/v1/jobs"))
        .header("accept", "*/*")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");
    // Unknown things.
    let r = app
        .http
        .get(app.url("/api/v1/jobs/01a207e3-099f-7573-b3fe-46b6615ba914"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "no job").await;
    let r = app
        .http
        .get(app.url("/api/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "nothing at").await;
    let r = app
        .http
        .get(app.url("/api/v1/jobs?limit=0"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "limit").await;
    let r = app
        .http
        .get(app.url("/api/v1/jobs?cursor=garbage"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "cursor").await;
    let r = app
        .http
        .get(app.url("/api/v1/jobs?status=NOPE"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "unknown status").await;
    let r = app
        .http
        .get(app.url("/api/v1/jobs?createdAfter=yesterday"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "RFC 3339").await;
    let r = app
        .http
        .delete(app.url("/api/v1/jobs"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "at least one filter").await;
    app.stop().await;
}
crate::per_backend!(bad_input_is_a_problem_and_changes_nothing);
