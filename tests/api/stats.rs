//! `GET /api/v1/stats`: the numbers of the caller's jobs, exact as jobs move, of the caller's
//! tenant only (an operator's of every tenant), and the service's instances.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

async fn stats(app: &TestApp, key: &str, query: &str) -> (u16, Value) {
    let r = app
        .http
        .get(app.url(&format!("/api/v1/stats{query}")))
        .bearer_auth(key)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn count(doc: &Value, status: &str) -> i64 {
    doc["counts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["status"] == status)
        .unwrap_or_else(|| panic!("no {status} in {doc}"))["count"]
        .as_i64()
        .unwrap()
}

fn op<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["operation"] == name)
        .unwrap_or_else(|| panic!("no {name} in {doc}"))
}

fn ended(doc: &Value, series: &str, field: &str) -> i64 {
    doc[series]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[field].as_i64().unwrap())
        .sum()
}

async fn submit(app: &TestApp, key: &str, input: Value) -> String {
    let r = app
        .http
        .post(app.url("/api/v1/jobs"))
        .bearer_auth(key)
        .json(&json!({"operation": "sleepy", "input": input}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    location(&r)
}

async fn wait_end_as(app: &TestApp, key: &str, href: &str) -> Value {
    for _ in 0..600 {
        let job: Value = app
            .http
            .get(href)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if link(&job, "monitor").is_none() {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{href} did not end");
}

/// The collection's count of `status` as the audit list gives it.
async fn listed(app: &TestApp, key: &str, status: &str) -> i64 {
    let r: Value = app
        .http
        .get(app.url(&format!("/api/v1/jobs?status={status}&limit=1000")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["jobs"].as_array().unwrap().len() as i64
}

crate::per_backend!(stats_count_the_callers_jobs_as_they_move);
async fn stats_count_the_callers_jobs_as_they_move(b: &'static str) {
    let app = TestApp::spawn_with(b, 1, |a| a.operator_tenant = Some("ops".into())).await;
    let blue = app.key("blue", "admin").await;
    let green = app.key("green", "submit").await;
    let ops = app.key("ops", "read").await;
    let mut blue_jobs = Vec::new();
    for i in 0..4 {
        let input = if i == 3 {
            json!({"ms": 1, "steps": 1, "fail": true})
        } else {
            json!({"ms": 30, "steps": 1})
        };
        blue_jobs.push(submit(&app, &blue, input).await);
    }
    let green_job = submit(&app, &green, json!({"ms": 1, "steps": 1})).await;
    for j in &blue_jobs {
        wait_end_as(&app, &blue, j).await;
    }
    wait_end_as(&app, &green, &green_job).await;

    // Exact before the counts are folded, and after.
    for fold in [false, true] {
        if fold {
            app.engine.fold_stats_once().await.unwrap();
        }
        let (s, doc) = stats(&app, &blue, "").await;
        assert_eq!(s, 200, "{doc}");
        assert_eq!(doc["tenant"], "blue");
        assert_eq!(doc["total"], 4, "{doc}");
        assert_eq!((count(&doc, "SUCCESS"), count(&doc, "FAILED")), (3, 1));
        assert_eq!(count(&doc, "QUEUED"), 0);
        let sleepy = op(&doc, "sleepy");
        assert_eq!(sleepy["queued"], 0);
        assert_eq!(sleepy["oldestQueuedAt"], Value::Null);
        assert_eq!(sleepy["runTime"]["samples"], 4, "{sleepy}");
        let p50 = sleepy["runTime"]["p50Ms"].as_i64().unwrap();
        assert!((20..5_000).contains(&p50), "{sleepy}");
        assert_eq!(doc["perMinute"].as_array().unwrap().len(), 60);
        assert_eq!(doc["perHour"].as_array().unwrap().len(), 48);
        assert_eq!(ended(&doc, "perMinute", "completed"), 3, "{doc}");
        assert_eq!(ended(&doc, "perMinute", "failed"), 1);
        assert_eq!(ended(&doc, "perHour", "completed"), 3);
        // The instance that ran them says it is alive.
        let nodes = doc["nodes"].as_array().unwrap();
        let me = nodes
            .iter()
            .find(|n| n["id"] == app.engine.node())
            .unwrap_or_else(|| panic!("{nodes:?}"));
        assert_eq!(
            (me["alive"].clone(), me["role"].clone()),
            (json!(true), json!("all"))
        );
        assert_eq!(link(&doc, "self").unwrap(), app.url("/api/v1/stats"));
    }

    // Another tenant's numbers are not the caller's to read; its own may be named.
    let r = app
        .http
        .get(app.url("/api/v1/stats?tenant=green"))
        .bearer_auth(&blue)
        .send()
        .await
        .unwrap();
    assert_problem(r, 403, "operator").await;
    let (s, doc) = stats(&app, &blue, "?tenant=blue").await;
    assert_eq!((s, doc["total"].clone()), (200, json!(4)));
    // The operator sees every tenant, or the one it names.
    let (_, all) = stats(&app, &ops, "").await;
    assert_eq!(
        (all["tenant"].clone(), all["total"].clone()),
        (Value::Null, json!(5))
    );
    let (_, g) = stats(&app, &ops, "?tenant=green").await;
    assert_eq!(
        (g["tenant"].clone(), g["total"].clone()),
        (json!("green"), json!(1))
    );
    assert_eq!(count(&g, "SUCCESS"), 1);
    // No key: 401.
    let r = app.http.get(app.url("/api/v1/stats")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // A restart, a delete and a cancel move the counts at once.
    let r = app
        .http
        .post(format!("{}/restart", blue_jobs[3]))
        .bearer_auth(&blue)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    wait_end_as(&app, &blue, &blue_jobs[3]).await;
    let r = app
        .http
        .delete(&blue_jobs[1])
        .bearer_auth(&blue)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let held = submit(&app, &blue, json!({"ms": 3_000, "steps": 1})).await;
    let queued = submit(&app, &blue, json!({"ms": 1, "steps": 1})).await;
    // The held job runs; the other waits behind it on the one worker.
    let mut doc = Value::Null;
    for _ in 0..100 {
        doc = stats(&app, &blue, "").await.1;
        if op(&doc, "sleepy")["running"] == 1 && op(&doc, "sleepy")["queued"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sleepy = op(&doc, "sleepy");
    assert_eq!(
        (sleepy["running"].clone(), sleepy["queued"].clone()),
        (json!(1), json!(1)),
        "{doc}"
    );
    let waited = sleepy["oldestQueuedSeconds"].as_f64().unwrap();
    assert!((0.0..60.0).contains(&waited), "{sleepy}");
    let me = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == app.engine.node())
        .unwrap();
    assert_eq!(me["running"], 1, "{doc}");
    // The operator's view of green shows none of blue's running work.
    let (_, g) = stats(&app, &ops, "?tenant=green").await;
    assert!(
        g["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["running"] == 0),
        "{g}"
    );
    let r = app
        .http
        .post(format!("{queued}/cancel"))
        .bearer_auth(&blue)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    wait_end_as(&app, &blue, &held).await;
    app.engine.fold_stats_once().await.unwrap();
    let (_, doc) = stats(&app, &blue, "").await;
    // Three succeeded at first, one of them was deleted, one more succeeded; the failed one
    // was restarted and failed again; one was cancelled.
    assert_eq!(
        (
            count(&doc, "SUCCESS"),
            count(&doc, "FAILED"),
            count(&doc, "CANCELLED"),
            doc["total"].as_i64().unwrap()
        ),
        (3, 1, 1, 5),
        "{doc}"
    );
    for status in ["QUEUED", "SUCCESS", "FAILED", "CANCELLED"] {
        assert_eq!(
            count(&doc, status),
            listed(&app, &blue, status).await,
            "{status}"
        );
    }
    // Every end is in the series, the restarted job's two ends included.
    assert_eq!(ended(&doc, "perMinute", "completed"), 4, "{doc}");
    assert_eq!(ended(&doc, "perMinute", "failed"), 2, "{doc}");
    assert_eq!(ended(&doc, "perMinute", "cancelled"), 1, "{doc}");

    // XML, by Accept and by `format`.
    let r = app
        .http
        .get(app.url("/api/v1/stats"))
        .bearer_auth(&blue)
        .header("accept", "application/xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/xml"));
    let xml = r.text().await.unwrap();
    assert!(
        xml.contains("<stats") && xml.contains("<total>5</total>"),
        "{xml}"
    );
    let r = app
        .http
        .get(app.url("/api/v1/stats?format=xml"))
        .bearer_auth(&blue)
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("<total>5</total>"));
    app.stop().await;
}

crate::per_backend!(an_instance_leaves_the_nodes_when_it_stops);
async fn an_instance_leaves_the_nodes_when_it_stops(b: &'static str) {
    let app = TestApp::spawn(b, 1).await;
    let store = app.engine.store().clone();
    let node = app.engine.node().to_string();
    let mut seen = false;
    for _ in 0..100 {
        let (_, _, doc) = app.get(&app.url("/api/v1/stats")).await;
        if doc["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == node)
        {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "the instance never said it was alive");
    app.stop().await;
    let nodes = store.nodes(chrono::Utc::now()).await.unwrap();
    assert!(nodes.iter().all(|n| n.id != node), "{nodes:?}");
}

/// A database made before the counts existed: upgrading it counts the jobs it holds, the ends of
/// the last 48 hours with their run times, and the jobs made before tenants as the open tenant's.
async fn an_existing_collection_is_counted_when_upgraded(b: &'static str) {
    use migration::MigratorTrait;
    use sea_orm::ConnectionTrait;
    let dir = tempfile::tempdir().unwrap();
    let url = database_for(b, dir.path()).await;
    let db = sea_orm::Database::connect(&url).await.unwrap();
    migration::Migrator::up(&db, Some(8)).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let old = now - 72 * 3_600_000;
    let mut rows = Vec::new();
    // 5 ended SUCCESS a minute ago after 200 ms, 2 FAILED three days ago, 3 QUEUED of no
    // tenant (made before tenants).
    for i in 0..10 {
        let (status, started, finished, owner) = match i {
            0..5 => (
                "SUCCESS",
                (now - 60_200).to_string(),
                (now - 60_000).to_string(),
                "'blue'",
            ),
            5..7 => ("FAILED", old.to_string(), (old + 10).to_string(), "'blue'"),
            _ => ("QUEUED", "NULL".into(), "NULL".into(), "NULL"),
        };
        rows.push(format!(
            "('00000000-0000-7000-8000-{i:012}', 'R{i}', 'noop', '{status}', {now}, {started}, \
             {finished}, {now}, 'c{i}', '{{}}', 1, 0, {owner})"
        ));
    }
    db.execute_unprepared(&format!(
        "INSERT INTO jobs (id, reference, operation, status, created_at, started_at, \
         finished_at, updated_at, correlation_id, input, total_stages, current_stage, owner) \
         VALUES {}",
        rows.join(", ")
    ))
    .await
    .unwrap();
    db.close().await.unwrap();
    let store = longrun::store::Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let mut counts: Vec<(String, String, i64)> = store
        .job_counts(None)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.owner, c.status, c.n))
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        vec![
            ("blue".into(), "FAILED".into(), 2),
            ("blue".into(), "SUCCESS".into(), 5),
            ("default".into(), "QUEUED".into(), 3),
        ]
    );
    // Folded or not, the same ends: the 5 of a minute ago, with their run time.
    for fold in [false, true] {
        if fold {
            while store.fold_stats().await.unwrap() > 0 {}
        }
        let ends = store
            .job_ends(Some("blue"), chrono::Utc::now())
            .await
            .unwrap();
        let of = |span| {
            ends.iter()
                .filter(move |e: &&longrun::domain::stats::EndRow| e.span == span)
        };
        use longrun::domain::stats::Span;
        assert_eq!(of(Span::Minute).map(|e| e.n).sum::<i64>(), 5, "{ends:?}");
        assert!(of(Span::Minute).all(|e| e.status == "SUCCESS"));
        assert_eq!(of(Span::Runs).map(|e| e.n).sum::<i64>(), 5, "{ends:?}");
        assert!(
            of(Span::Runs).all(|e| longrun::domain::stats::bucket_ms(e.bucket).abs_diff(200) <= 20)
        );
    }
}
crate::per_backend!(an_existing_collection_is_counted_when_upgraded);
