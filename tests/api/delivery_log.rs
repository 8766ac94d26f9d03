//! The delivery log through HTTP: a job's deliveries with every try, redelivery on request, the
//! deliveries by state, and another tenant's kept out; on every database.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

fn args(a: &mut longrun::config::ServeArgs) {
    a.callback_allow_private = Some(true);
    a.webhook_secret = Some(TEST_SECRET.into());
    a.delivery_retries = Some("100ms".into());
    a.delivery_timeout = Some("5s".into());
    a.rate_limit = Some("off".into());
}

/// Read `href` as `key` until `done` holds for its document.
async fn until(app: &TestApp, href: &str, key: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        let (s, v, text) = get_as(app, href, Some(key)).await;
        assert_eq!(s, 200, "{href}: {text}");
        if done(&v) {
            return v;
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{href} never got there: {last}");
}

async fn a_jobs_deliveries_show_every_try_and_can_be_sent_again(backend: &'static str) {
    let app = TestApp::spawn_with(backend, 1, args).await;
    let a = app.key("tenant-a", "submit").await;
    let b = app.key("tenant-b", "submit").await;
    // The receiver fails the first try, takes the second, and is down for nothing else.
    let hook = Receiver::start(vec![503, 200]).await;
    let body = json!({"operation": "noop", "async": {"callback": format!("{}/cb", hook.base)}});
    let (s, job, text) = keyed(&app, Method::POST, "/api/v1/jobs", Some(&a), Some(&body)).await;
    assert_eq!(s, 201, "{text}");
    let me = link(&job, "self").unwrap();
    ended_as(&app, &me, &a).await;
    let (_, job, _) = get_as(&app, &me, Some(&a)).await;
    let href = link(&job, "deliveries").expect("the job links its deliveries");
    let log = until(&app, &href, &a, |v| {
        v["deliveries"][0]["state"] == "delivered"
    })
    .await;
    let d = &log["deliveries"][0];
    assert_eq!(log["deliveries"].as_array().unwrap().len(), 1, "{log}");
    assert_eq!(d["kind"], "callback", "{d}");
    assert_eq!(d["method"], "GET", "{d}");
    // The callback's address as it is sent (seed 002 adds the job to its query).
    let target = d["target"].as_str().unwrap();
    assert!(
        target.starts_with(&format!("{}/cb?jobId=", hook.base)),
        "{d}"
    );
    assert_eq!(d["jobId"], job["jobId"], "{d}");
    assert!(d.get("nextTryAt").is_none(), "{d}");
    let tries = d["attempts"].as_array().unwrap();
    assert_eq!(tries.len(), 2, "{d}");
    assert_eq!(tries[0]["status"], 503, "{d}");
    assert!(tries[0]["nextTryAt"].is_string(), "{d}");
    assert_eq!(tries[1]["status"], 200, "{d}");
    assert!(tries[1].get("nextTryAt").is_none(), "{d}");
    assert!(tries.iter().all(|t| t["durationMs"].as_i64().unwrap() >= 0));
    let id = d["id"].as_str().unwrap().to_string();
    let got = hook.wait_for(2).await;
    assert!(got.iter().all(|r| r.headers["webhook-id"] == id.as_str()));

    // In XML as well.
    let (s, _, xml) = get_as(&app, &format!("{href}?format=xml"), Some(&a)).await;
    assert_eq!(s, 200, "{xml}");
    assert!(xml.contains("<state>delivered</state>"), "{xml}");
    assert!(xml.contains(&format!("<id>{id}</id>")), "{xml}");

    // Another tenant sees neither the log nor the delivery, and cannot send it again.
    let (s, _, _) = get_as(&app, &href, Some(&b)).await;
    assert_eq!(s, 404);
    let redeliver = link(d, "redeliver").unwrap();
    let (s, p, _) = keyed(&app, Method::POST, &redeliver, Some(&b), None).await;
    assert_eq!(s, 404, "{p}");
    let (_, list, _) = get_as(&app, "/api/v1/deliveries", Some(&b)).await;
    assert_eq!(list["deliveries"], json!([]), "{list}");
    // Naming another tenant is refused, for deliveries and endpoints alike.
    for path in [
        "/api/v1/deliveries?tenant=tenant-a",
        "/api/v1/endpoints?tenant=tenant-a",
    ] {
        let (s, p, _) = get_as(&app, path, Some(&b)).await;
        assert_eq!(s, 403, "{path}: {p}");
        assert_eq!(p["type"], "urn:longrun:problem:forbidden", "{p}");
    }
    // A reading key may not send again.
    let reader = app.key("tenant-a", "read").await;
    let (s, _, _) = keyed(&app, Method::POST, &redeliver, Some(&reader), None).await;
    assert_eq!(s, 403);
    assert_eq!(hook.got.lock().unwrap().len(), 2, "nothing more was sent");

    // Sent again: the same webhook-id, freshly signed, a third try in the log.
    let (s, again, text) = keyed(&app, Method::POST, &redeliver, Some(&a), None).await;
    assert_eq!(s, 202, "{text}");
    assert_eq!(again["id"], id.as_str());
    assert_eq!(again["state"], "pending", "{again}");
    let got = hook.wait_for(3).await;
    assert_eq!(got[2].headers["webhook-id"], id.as_str());
    assert_signed(&got[2]);
    // The try's row is written just before the delivery's state: wait for both.
    let log = until(&app, &href, &a, |v| {
        v["deliveries"][0]["attempts"].as_array().map(Vec::len) == Some(3)
            && v["deliveries"][0]["state"] != "pending"
    })
    .await;
    assert_eq!(log["deliveries"][0]["state"], "delivered", "{log}");
    assert_eq!(log["deliveries"][0]["attempts"][2]["status"], 200, "{log}");
    // Listed by state: the caller's own.
    let (_, list, _) = get_as(&app, "/api/v1/deliveries?state=delivered", Some(&a)).await;
    assert_eq!(list["deliveries"][0]["id"], id.as_str(), "{list}");
    let (_, list, _) = get_as(&app, "/api/v1/deliveries?state=given_up", Some(&a)).await;
    assert_eq!(list["deliveries"], json!([]), "{list}");
    app.stop().await;
}
crate::per_backend!(a_jobs_deliveries_show_every_try_and_can_be_sent_again);

/// A delivery whose receiver stays down is given up after the schedule, its log says why each
/// try failed, the operator lists it by state, and a redelivery starts the schedule over.
async fn a_given_up_delivery_is_listed_and_sent_again(backend: &'static str) {
    let app = TestApp::spawn_with(backend, 1, args).await;
    let down = format!("http://127.0.0.1:{}/n", crate::crash::free_port());
    let r = app
        .post_json(
            "/api/v1/jobs",
            &json!({"operation": "noop", "async": {"notification": {"url": down}}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let me = location(&r);
    app.wait_end(&me).await;
    let href = format!("{me}/deliveries");
    let (_, _, log) = app.get(&href).await;
    assert!(log["deliveries"].is_array(), "{log}");
    let mut d = Value::Null;
    for _ in 0..300 {
        let (_, _, log) = app.get(&href).await;
        d = log["deliveries"][0].clone();
        if d["state"] == "given_up" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(d["state"], "given_up", "{d}");
    assert_eq!(d["kind"], "notification");
    assert_eq!(d["method"], "POST");
    let tries = d["attempts"].as_array().unwrap();
    assert_eq!(tries.len(), 2, "one try and one retry: {d}");
    assert!(
        tries
            .iter()
            .all(|t| t.get("status").is_none() && t["error"].is_string()),
        "{d}"
    );
    // The open service's caller is the operator: every tenant's, by state, paged.
    let (_, _, list) = app
        .get(&app.url("/api/v1/deliveries?state=given_up&limit=1"))
        .await;
    assert_eq!(list["deliveries"][0]["id"], d["id"], "{list}");
    let (s, _, p) = app.get(&app.url("/api/v1/deliveries?state=lost")).await;
    assert_eq!(s, 400, "{p}");
    let (s, _, p) = app
        .get(&app.url("/api/v1/deliveries/msg_nothing/redeliver"))
        .await;
    assert_eq!(s, 405, "{p}");
    let r = app
        .http
        .post(app.url("/api/v1/deliveries/msg_nothing/redeliver"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Sent again: the schedule starts over (two more tries), then given up again.
    let r = app
        .http
        .post(link(&d, "redeliver").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let mut log = Value::Null;
    for _ in 0..300 {
        log = app.get(&href).await.2;
        if log["deliveries"][0]["attempts"].as_array().map(Vec::len) == Some(4) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        log["deliveries"][0]["attempts"].as_array().unwrap().len(),
        4,
        "{log}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, _, log) = app.get(&href).await;
    assert_eq!(log["deliveries"][0]["state"], "given_up", "{log}");
    app.stop().await;
}
crate::per_backend!(a_given_up_delivery_is_listed_and_sent_again);

/// An endpoint that fails for `LONGRUN_DELIVERY_DISABLE_AFTER` without a success is switched
/// off: a WARNING line and a metric say so, its deliveries (a later job's too) are recorded as
/// `disabled` and not sent, and `GET /api/v1/endpoints` shows it with its last error. Switched on
/// again (by its tenant only), it gets what it missed.
async fn a_failing_endpoint_is_switched_off_and_on_again(backend: &'static str) {
    let port = crate::crash::free_port();
    let app = TestApp::spawn_with(backend, 1, |a| {
        args(a);
        a.delivery_retries = Some(vec!["100ms"; 30].join(","));
        a.delivery_disable_after = Some("1s".into());
        a.operator_tenant = Some("tenant-a".into());
    })
    .await;
    let a = app.key("tenant-a", "submit").await;
    let b = app.key("tenant-b", "admin").await;
    let url = format!("http://127.0.0.1:{port}/n");
    let body = json!({"operation": "noop", "async": {"notification": {"url": url}}});
    async fn submit(app: &TestApp, key: &str, body: &Value) -> String {
        let (s, job, text) = keyed(app, Method::POST, "/api/v1/jobs", Some(key), Some(body)).await;
        assert_eq!(s, 201, "{text}");
        let me = link(&job, "self").unwrap();
        ended_as(app, &me, key).await;
        me
    }
    let first = submit(&app, &a, &body).await;
    let log = until(&app, &format!("{first}/deliveries"), &a, |v| {
        v["deliveries"][0]["state"] == "disabled"
    })
    .await;
    let tries = log["deliveries"][0]["attempts"].as_array().unwrap().len();
    assert!(tries >= 2, "{log}");
    let (_, list, _) = get_as(&app, "/api/v1/endpoints", Some(&a)).await;
    let ep = &list["endpoints"][0];
    assert_eq!(list["endpoints"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(ep["target"], url.as_str(), "{ep}");
    assert_eq!(ep["tenant"], "tenant-a", "{ep}");
    assert_eq!(ep["state"], "disabled", "{ep}");
    assert!(
        ep["lastError"].is_string() && ep["failingSince"].is_string(),
        "{ep}"
    );
    assert!(ep.get("lastSuccessAt").is_none(), "{ep}");
    let enable = link(ep, "enable").unwrap();
    let (_, msgs, _) = get_as(&app, &format!("{first}/messages"), Some(&a)).await;
    assert!(
        msgs["messages"].as_array().unwrap().iter().any(
            |m| m["level"] == "WARNING" && m["text"].as_str().unwrap().contains("switched off")
        ),
        "{msgs}"
    );
    let operator = app.key("tenant-a", "admin").await;
    let (_, _, metrics) = get_as(&app, "/metrics", Some(&operator)).await;
    assert!(
        metrics.contains("longrun_delivery_endpoints_disabled_total 1"),
        "{metrics}"
    );
    // A later job's delivery to it is not sent.
    let second = submit(&app, &a, &body).await;
    let log = until(&app, &format!("{second}/deliveries"), &a, |v| {
        v["deliveries"][0]["state"] == "disabled"
    })
    .await;
    assert_eq!(log["deliveries"][0]["attempts"], json!([]), "{log}");
    // Another tenant sees none of it and cannot switch it on.
    let (_, other, _) = get_as(&app, "/api/v1/endpoints", Some(&b)).await;
    assert_eq!(other["endpoints"], json!([]), "{other}");
    let (s, _, _) = keyed(&app, Method::POST, &enable, Some(&b), None).await;
    assert_eq!(s, 404);
    // The receiver is back; switched on, the endpoint gets both deliveries it missed.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let hook = Receiver::on(listener, vec![]);
    let (s, on, text) = keyed(&app, Method::POST, &enable, Some(&a), None).await;
    assert_eq!(s, 200, "{text}");
    assert_eq!(on["state"], "enabled", "{on}");
    assert_eq!(on["redelivered"], 2, "{on}");
    let got = hook.wait_for(2).await;
    assert_eq!(got.len(), 2);
    for job in [&first, &second] {
        until(&app, &format!("{job}/deliveries"), &a, |v| {
            v["deliveries"][0]["state"] == "delivered"
        })
        .await;
    }
    let (_, list, _) = get_as(&app, "/api/v1/endpoints", Some(&a)).await;
    let ep = &list["endpoints"][0];
    assert!(ep["lastSuccessAt"].is_string(), "{ep}");
    assert!(ep.get("failingSince").is_none(), "{ep}");
    assert!(link(ep, "enable").is_none(), "{ep}");
    app.stop().await;
}
crate::per_backend!(a_failing_endpoint_is_switched_off_and_on_again);

/// A success on a switched-off endpoint (here a redelivery of one of its deliveries, once the
/// receiver is back) switches it on again and sends the others it missed: none stays behind.
async fn a_success_switches_an_endpoint_back_on_with_what_it_missed(backend: &'static str) {
    let port = crate::crash::free_port();
    let app = TestApp::spawn_with(backend, 1, |a| {
        args(a);
        a.delivery_retries = Some(vec!["100ms"; 30].join(","));
        a.delivery_disable_after = Some("1s".into());
    })
    .await;
    let url = format!("http://127.0.0.1:{port}/n");
    let body = json!({"operation": "noop", "async": {"notification": {"url": url}}});
    let mut jobs = Vec::new();
    for _ in 0..2 {
        let r = app.post_json("/api/v1/jobs", &body).await;
        assert_eq!(r.status(), 201);
        jobs.push(location(&r));
    }
    for job in &jobs {
        app.wait_end(job).await;
    }
    let mut first = Value::Null;
    for _ in 0..300 {
        let (_, _, a) = app.get(&format!("{}/deliveries", jobs[0])).await;
        let (_, _, b) = app.get(&format!("{}/deliveries", jobs[1])).await;
        if a["deliveries"][0]["state"] == "disabled" && b["deliveries"][0]["state"] == "disabled" {
            first = a["deliveries"][0].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(first["state"], "disabled", "{first}");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let hook = Receiver::on(listener, vec![]);
    let r = app
        .http
        .post(link(&first, "redeliver").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    hook.wait_for(2).await;
    for job in &jobs {
        let mut state = Value::Null;
        for _ in 0..300 {
            let (_, _, log) = app.get(&format!("{job}/deliveries")).await;
            state = log["deliveries"][0]["state"].clone();
            if state == "delivered" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(state, "delivered", "{job}");
    }
    let (_, _, list) = app.get(&app.url("/api/v1/endpoints")).await;
    assert_eq!(list["endpoints"][0]["state"], "enabled", "{list}");
    app.stop().await;
}
crate::per_backend!(a_success_switches_an_endpoint_back_on_with_what_it_missed);

/// A delivery address longer than an index entry may be (about 2.7 KB on PostgreSQL) neither
/// stops its job from ending nor its delivery from being kept.
async fn a_long_delivery_address_is_kept(backend: &'static str) {
    let app = TestApp::spawn_with(backend, 1, args).await;
    let url = format!("https://receiver.example/{}", "a".repeat(4000));
    let r = app
        .post_json(
            "/api/v1/jobs",
            &json!({"operation": "noop", "async": {"notification": {"url": url}}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let me = location(&r);
    assert_eq!(app.wait_end(&me).await["jobStatus"], "SUCCESS");
    let (_, _, log) = app.get(&format!("{me}/deliveries")).await;
    assert_eq!(log["deliveries"][0]["target"], url.as_str(), "{log}");
    app.stop().await;
}
crate::per_backend!(a_long_delivery_address_is_kept);
