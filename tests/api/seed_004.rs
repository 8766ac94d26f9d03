//! Seed 004 ("Long-Running Operations Through REST") walked in its own order: the notification
//! event at an end state (`status` success or failure, the links of the data file set and its
//! files, `fields`), in JSON and XML; then the data file set and its files at the seed's
//! addresses, `{api}/datafilesets/{datafilesetcode}/datafiles/{datafilecode}/data`.

use serde_json::{json, Value};

use crate::helpers::*;

fn signal_args(a: &mut longrun::config::ServeArgs) {
    a.callback_allow_private = Some(true);
    a.webhook_secret = Some(TEST_SECRET.into());
    a.delivery_retries = Some("100ms,200ms,300ms".into());
    a.delivery_timeout = Some("2s".into());
}

/// "Leveraging Notification Events": one event per end state, `status` success for a complete
/// job and failure otherwise, the end state itself in `fields`, the `operator:subject`, and for
/// a success the `datafileset` and `file` links in the seed's shape.
async fn seed_004_notification_events(b: &'static str) {
    let hook = Receiver::start(vec![]).await;
    let app = TestApp::spawn_with(b, 2, signal_args).await;
    let mut jobs = Vec::new();
    for (kind, input) in [
        ("SUCCESS", json!({"ms": 5})),
        ("FAILED", json!({"ms": 5, "fail": true})),
        ("CANCELLED", json!({"ms": 200, "steps": 50})),
    ] {
        for format in ["json", "xml"] {
            let r = app
                .http
                .post(app.url("/api/v1/jobs"))
                .header("x-correlation-id", format!("c-{kind}-{format}"))
                .json(&json!({"operation": "sleepy", "input": input, "async": {
                    "notification": {"url": format!("{}/{kind}/{format}", hook.base), "format": format}}}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let loc = location(&r);
            if kind == "CANCELLED" {
                app.wait_status(&loc, "PROCESSING").await;
                app.http.post(format!("{loc}/cancel")).send().await.unwrap();
            }
            let job = app.wait_end(&loc).await;
            assert_eq!(job["jobStatus"], kind);
            jobs.push((kind, format, loc));
        }
    }
    let got = hook.wait_for(6).await;
    for (kind, format, loc) in &jobs {
        let id = loc.rsplit('/').next().unwrap();
        let ev = got
            .iter()
            .find(|d| d.uri == format!("/{kind}/{format}"))
            .unwrap_or_else(|| panic!("the event of {kind}/{format}"));
        assert_signed(ev);
        let outcome = if *kind == "SUCCESS" {
            "success"
        } else {
            "failure"
        };
        let set = app.url(&format!("/datafilesets/{id}"));
        if *format == "json" {
            let n: Value = serde_json::from_str(&ev.body).unwrap();
            assert_eq!(n["workId"], *id);
            assert_eq!(n["correlationId"], format!("c-{kind}-{format}"));
            assert_eq!(n["status"], outcome);
            assert_eq!(n["fields"]["jobStatus"], *kind);
            assert_eq!(link(&n, "operator:subject").unwrap(), *loc);
            if *kind == "SUCCESS" {
                assert_eq!(link(&n, "datafileset").unwrap(), set);
                let file = link(&n, "file").unwrap();
                let code = file
                    .strip_prefix(&format!("{set}/datafiles/"))
                    .and_then(|f| f.strip_suffix("/data"))
                    .unwrap_or_else(|| panic!("{file} is not in the seed's shape"));
                assert!(code.parse::<uuid::Uuid>().is_ok());
                let r = app.http.get(&file).send().await.unwrap();
                assert_eq!(r.status(), 200);
                assert_eq!(r.text().await.unwrap(), "hello from sleepy");
            } else {
                assert!(link(&n, "datafileset").is_none() && link(&n, "file").is_none());
            }
        } else {
            let body = &ev.body;
            assert!(
                body.contains(&format!(
                    "<notification correlationId=\"c-{kind}-{format}\" workId=\"{id}\" status=\"{outcome}\">"
                )),
                "{body}"
            );
            assert!(
                body.contains(&format!("<jobStatus>{kind}</jobStatus>")),
                "{body}"
            );
            if *kind == "SUCCESS" {
                assert!(
                    body.contains(&format!("<link rel=\"datafileset\" href=\"{set}\"/>")),
                    "{body}"
                );
                assert!(
                    body.contains(&format!("<link rel=\"file\" href=\"{set}/datafiles/")),
                    "{body}"
                );
            }
        }
    }
    app.stop().await;
}
crate::per_backend!(seed_004_notification_events);

/// "A Complete Example ... uses the Data File Set": an export's data file set at
/// `/datafilesets/{code}`, each file at `…/datafiles/{code}/data` with the same bytes (and
/// ranges) as `/downloads/{id}`; another tenant's set or file, or a file under another set, is
/// not found.
async fn seed_004_data_file_sets(b: &'static str) {
    let app = TestApp::spawn(b, 2).await;
    let mine = app.key("acme", "submit").await;
    let theirs = app.key("other", "submit").await;
    let post = |body: Value, key: String| {
        let app = &app;
        async move {
            keyed(
                app,
                reqwest::Method::POST,
                "/api/tools/import",
                Some(&key),
                Some(&body),
            )
            .await
        }
    };
    let (s, imp, _) = post(seed_payload(), mine.clone()).await;
    assert_eq!(s, 201, "{imp}");
    ended_as(&app, &link(&imp, "self").unwrap(), &mine).await;
    let (s, job, _) = keyed(
        &app,
        reqwest::Method::POST,
        "/api/v1/exports",
        Some(&mine),
        Some(&json!({"dataset": "tools", "format": "csv", "partSize": 2})),
    )
    .await;
    assert_eq!(s, 201, "{job}");
    let job = ended_as(&app, &link(&job, "self").unwrap(), &mine).await;
    assert_eq!(job["jobStatus"], "SUCCESS", "{job}");
    let id = job["jobId"].as_str().unwrap();
    let set_href = app.url(&format!("/datafilesets/{id}"));
    let (s, set, _) = get_as(&app, &set_href, Some(&mine)).await;
    assert_eq!(s, 200, "{set}");
    assert_eq!(set["jobId"], id);
    assert_eq!(link(&set, "self").unwrap(), set_href);
    let files = set["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    // The job's own data file set lists the same files at the same addresses.
    let (_, own, _) = get_as(&app, &link(&job, "datafileset").unwrap(), Some(&mine)).await;
    assert_eq!(own["files"], set["files"]);
    let mut whole = String::new();
    for f in files {
        let code = f["fileId"].as_str().unwrap();
        let href = format!("{set_href}/datafiles/{code}/data");
        assert_eq!(f["href"], href.as_str());
        let get = |url: String, range: Option<&'static str>, key: String| {
            let app = &app;
            async move {
                let mut r = app.http.get(url).bearer_auth(key);
                if let Some(range) = range {
                    r = r.header("range", range);
                }
                r.send().await.unwrap()
            }
        };
        let seed = get(href.clone(), None, mine.clone()).await;
        assert_eq!(seed.status(), 200);
        assert_eq!(seed.headers()["content-type"], "text/csv");
        let etag = seed.headers()["etag"].clone();
        let seed_body = seed.text().await.unwrap();
        let dl = get(app.url(&format!("/downloads/{code}")), None, mine.clone()).await;
        assert_eq!(dl.headers()["etag"], etag);
        assert_eq!(dl.text().await.unwrap(), seed_body);
        let part = get(href.clone(), Some("bytes=0-6"), mine.clone()).await;
        assert_eq!(part.status(), 206);
        assert_eq!(part.text().await.unwrap(), &seed_body[..7]);
        whole.push_str(&seed_body);
        // Another tenant's file is not found, nor is a file under another set.
        let r = get(href.clone(), None, theirs.clone()).await;
        assert_eq!(r.status(), 404);
        let other_set = link(&imp, "self").unwrap();
        let other_set = other_set.rsplit('/').next().unwrap();
        let r = get(
            app.url(&format!("/datafilesets/{other_set}/datafiles/{code}/data")),
            None,
            mine.clone(),
        )
        .await;
        assert_eq!(r.status(), 404);
    }
    assert!(whole.contains("V001") && whole.contains("V003"), "{whole}");
    let (s, _, _) = get_as(&app, &set_href, Some(&theirs)).await;
    assert_eq!(s, 404);
    let (s, _, _) = get_as(&app, &app.url("/datafilesets/nope"), Some(&mine)).await;
    assert_eq!(s, 404);
    app.stop().await;
}
crate::per_backend!(seed_004_data_file_sets);
