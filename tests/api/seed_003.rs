//! Seed 003 ("Web API: Asynchronous tasks") walked in its own order: the job's answer carries its
//! task and polling URL (`/tasks/{id}.json` / `.xml`), and `/tasks` lists all available tasks
//! (paged by `next` links, in JSON and XML; deleted tasks neither listed nor counted).

use serde_json::{json, Value};

use crate::helpers::*;

/// The `next` hrefs of an XML page (`<atom:link … rel="next" href="…"/>`).
fn xml_next(xml: &str) -> Option<String> {
    let at = xml.find("rel=\"next\" href=\"")? + "rel=\"next\" href=\"".len();
    let end = xml[at..].find('"')?;
    Some(xml[at..at + end].replace("&amp;", "&"))
}

fn xml_ids(xml: &str) -> Vec<i64> {
    xml.split("<task><id>")
        .skip(1)
        .map(|p| p[..p.find('<').unwrap()].parse().unwrap())
        .collect()
}

async fn seed_003_tasks(b: &'static str) {
    let app = TestApp::spawn(b, 2).await;
    // A command answers with its task: the job links to it (JSON: .json, XML: .xml).
    let mut jobs = Vec::new();
    for _ in 0..5 {
        let loc = app.sleepy(json!({"ms": 1})).await;
        jobs.push(app.wait_end(&loc).await);
    }
    let first = &jobs[0];
    let n = first["taskId"].as_i64().unwrap();
    let task = link(first, "task").expect("a job links to its task");
    assert_eq!(task, app.url(&format!("/tasks/{n}.json")));
    let (s, _, t) = app.get(&task).await;
    assert_eq!(s, 200);
    assert_eq!(t["task"]["id"], n);
    assert_eq!(t["task"]["status"], "FINISHED");
    assert_eq!(t["task"]["href"], task.as_str());
    let self_href = link(first, "self").unwrap();
    let xml = app
        .http
        .get(&self_href)
        .header("accept", "application/xml")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let xml_task = app.url(&format!("/tasks/{n}.xml"));
    assert!(xml.contains(&xml_task), "{xml}");
    let r = app.http.get(&xml_task).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/xml");
    assert!(r
        .text()
        .await
        .unwrap()
        .contains(&format!("<task><id>{n}</id><status>FINISHED</status>")));

    // A deleted task is neither listed nor counted.
    let gone = link(&jobs[2], "self").unwrap();
    let r = app.http.delete(&gone).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let mut want: Vec<i64> = jobs
        .iter()
        .filter(|j| link(j, "self").unwrap() != gone)
        .map(|j| j["taskId"].as_i64().unwrap())
        .collect();
    want.reverse();

    // "If no task is given … a list of all available tasks will be returned": page by page.
    let mut next = Some(app.url("/tasks?limit=2"));
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(href) = next {
        let (s, h, page) = app.get(&href).await;
        assert_eq!(s, 200, "{page}");
        if pages == 0 {
            assert_eq!(page["count"], 4, "{page}");
        }
        for t in page["tasks"].as_array().unwrap() {
            seen.push(t["id"].as_i64().unwrap());
        }
        next = link(&page, "next");
        if let Some(n) = &next {
            let header = h["link"].to_str().unwrap();
            assert_eq!(header, format!("<{n}>; rel=\"next\""));
        }
        pages += 1;
        assert!(pages < 10);
    }
    assert_eq!(seen, want, "every task once, newest first");
    assert_eq!(pages, 2);
    // The same walk in XML.
    let mut next = Some(app.url("/tasks?limit=3"));
    let mut seen = Vec::new();
    while let Some(href) = next {
        let r = app
            .http
            .get(&href)
            .header("accept", "application/xml")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["content-type"], "application/xml");
        let xml = r.text().await.unwrap();
        seen.extend(xml_ids(&xml));
        next = xml_next(&xml);
        assert!(seen.len() <= 4, "{xml}");
    }
    assert_eq!(seen, want);
    // No tasks beyond the last page, and a cursor this service did not give is refused.
    let r = app
        .http
        .get(app.url("/tasks?cursor=zz"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "cursor").await;
    let (_, _, all): (_, _, Value) = app.get(&app.url("/tasks")).await;
    assert_eq!(all["count"], 4);
    assert!(link(&all, "next").is_none());
    app.stop().await;
}
crate::per_backend!(seed_003_tasks);
