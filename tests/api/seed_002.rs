//! Seed 002's dialect at `/api/xml-data-compare/v1/`, walked in the order of the seed document:
//! the `<async/>` request (XML, JSON, multipart), the 201 with the job and its Location, polling
//! the job (its fields, `link` in JSON and `<links>` in XML, the phase strings), the download in
//! DeltaXML's well-formed delta, deleting a running job, the `file` input form and the output
//! location, and the callback.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

const ROOT: &str = "/api/xml-data-compare/v1";
/// The seed's download example: a root with one unchanged and one changed child.
const A_XML: &str = "<root><child>same</child><child>old</child></root>";
const B_XML: &str = "<root><child>same</child><child>new</child></root>";
const DELTA: &str = "<root xmlns:deltaxml=\"http://deltaxml.com/ns/well-formed-delta-v1\" deltaxml:deltaV2=\"A!=B\">\
<child deltaxml:deltaV2=\"A=B\">same</child>\
<child deltaxml:deltaV2=\"A!=B\"><deltaxml:textGroup deltaxml:deltaV2=\"A!=B\">\
<deltaxml:text deltaxml:deltaV2=\"A\">old</deltaxml:text>\
<deltaxml:text deltaxml:deltaV2=\"B\">new</deltaxml:text></deltaxml:textGroup></child></root>";

fn args(a: &mut longrun::config::ServeArgs) {
    a.callback_allow_private = Some(true);
}

/// `2019-02-07T13:50:58.528+0000`.
fn seed_time(s: &Value) -> bool {
    let s = s.as_str().unwrap_or("");
    chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.3f%z").is_ok()
        && s.ends_with("+0000")
        && s.len() == 28
}

async fn post(
    app: &TestApp,
    ct: &str,
    accept: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    app.http
        .post(app.url(&format!("{ROOT}/compare")))
        .header("content-type", ct)
        .header("accept", accept)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn get_xml(app: &TestApp, href: &str) -> (u16, String) {
    let r = app
        .http
        .get(app.url(href))
        .header("accept", "application/xml")
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Poll the job (JSON) until it has ended.
async fn ended(app: &TestApp, href: &str) -> Value {
    for _ in 0..500 {
        let (s, j, _) = get_as(app, href, None).await;
        assert_eq!(s, 200, "{href}: {j}");
        if ["SUCCESS", "FAILED", "CANCELLED"].contains(&j["jobStatus"].as_str().unwrap_or("")) {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{href} did not end");
}

async fn jobs_count(app: &TestApp) -> usize {
    let (_, l, _) = get_as(app, "/api/v1/jobs?limit=1000", None).await;
    l["jobs"].as_array().map(Vec::len).unwrap_or(0)
}

async fn seed_002_walk(b: &'static str) {
    let app = TestApp::spawn_with(b, 2, args).await;
    let receiver = Receiver::start(vec![]).await;

    // 1. XML request: the <async/> element; 201, the created job and a Location to poll.
    let body = format!(
        "<compare><inputA type=\"string\"><content><![CDATA[{A_XML}]]></content></inputA>\
         <inputB type=\"string\"><content><![CDATA[{B_XML}]]></content></inputB><async/></compare>"
    );
    let r = post(&app, "application/xml", "application/xml", body).await;
    assert_eq!(r.status(), 201);
    let loc = location(&r);
    assert!(loc.contains(&format!("{ROOT}/jobs/")), "{loc}");
    let xml = r.text().await.unwrap();
    let id = loc.rsplit('/').next().unwrap().to_string();
    assert!(xml.contains(&format!("<job><jobId>{id}</jobId>")), "{xml}");
    assert!(xml.contains("<jobStatus>"), "{xml}");
    assert!(xml.contains("<totalNumberOfStages>") && xml.contains("<currentStage>"));
    assert!(
        xml.contains(&format!(
            "<links><link><rel>self</rel><href>{ROOT}/jobs/{id}</href></link>"
        )),
        "{xml}"
    );

    // 3/4. Poll the job: the seed's fields and values.
    let job = ended(&app, &loc).await;
    assert_eq!(job["jobId"], id);
    assert_eq!(job["jobStatus"], "SUCCESS");
    assert!(seed_time(&job["startTime"]), "{job}");
    assert!(seed_time(&job["finishedTime"]), "{job}");
    assert_eq!(job["totalNumberOfStages"], 4);
    assert_eq!(job["currentStage"], 4);
    assert!(
        job.get("phaseDescription").is_none(),
        "as in the seed's SUCCESS example"
    );
    assert_eq!(job["output"]["type"], "http");
    let uri = job["output"]["uri"].as_str().unwrap().to_string();
    assert_eq!(uri, app.url(&format!("{ROOT}/downloads/{id}")));
    assert_eq!(job["output"]["size"], DELTA.len());
    let links = job["link"].as_array().unwrap();
    assert!(
        links
            .iter()
            .any(|l| l["rel"] == "result" && l["href"] == uri.as_str()),
        "{job}"
    );
    assert!(
        !links.iter().any(|l| l["rel"] == "delete"),
        "an ended job has no delete link"
    );
    assert!(job.get("links").is_none());
    // The XML form: <output type="http">, <links><link><rel/><href/></link></links>.
    let (s, xml) = get_xml(&app, &format!("{ROOT}/jobs/{id}")).await;
    assert_eq!(s, 200);
    assert!(
        xml.contains(&format!(
            "<output type=\"http\"><size>{}</size><uri>{uri}</uri></output>",
            DELTA.len()
        )),
        "{xml}"
    );
    assert!(
        xml.contains(&format!("<link><rel>result</rel><href>{uri}</href></link>")),
        "{xml}"
    );
    assert!(xml.contains("<jobStatus>SUCCESS</jobStatus>"));

    // 6. Download: the DeltaXML well-formed delta, exactly; Range works as on /downloads.
    let r = app.http.get(&uri).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), DELTA);
    let r = app
        .http
        .get(&uri)
        .header("range", "bytes=0-5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.text().await.unwrap(), "<root ");

    // 1. JSON request with `async` (callback, keepResult) and the dashed input names.
    let cb = format!("{}/comparison-callback", receiver.base);
    let r = post(
        &app,
        "application/json",
        "application/json",
        json!({"input-a": {"type": "string", "content": A_XML},
               "input-b": {"type": "string", "content": B_XML},
               "async": {"callback": cb, "keepResult": true}})
        .to_string(),
    )
    .await;
    assert_eq!(r.status(), 201);
    let loc2 = location(&r);
    let created: Value = r.json().await.unwrap();
    let id2 = created["jobId"].as_str().unwrap().to_string();
    assert!(created["link"].is_array(), "{created}");
    let job2 = ended(&app, &loc2).await;
    assert_eq!(job2["jobStatus"], "SUCCESS");
    // 7. The callback: a GET once the result is ready, naming the status and this route's job.
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].method, "GET");
    let q = got[0].uri.clone();
    assert!(q.starts_with("/comparison-callback?"), "{q}");
    assert!(q.contains(&format!("jobId={id2}")), "{q}");
    assert!(q.contains("jobStatus=SUCCESS"), "{q}");
    let dialect_job = url::form_urlencoded::byte_serialize(format!("{ROOT}/jobs/{id2}").as_bytes())
        .collect::<String>();
    assert!(q.contains(&dialect_job), "{q}");

    // 2. Form request: the parameter async set to true.
    let form = reqwest::multipart::Form::new()
        .part(
            "inputA",
            reqwest::multipart::Part::text(A_XML).file_name("a.xml"),
        )
        .part(
            "inputB",
            reqwest::multipart::Part::text(B_XML).file_name("b.xml"),
        )
        .text("async", "true");
    let r = app
        .http
        .post(app.url(&format!("{ROOT}/compare")))
        .header("accept", "application/json")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let j = ended(&app, &location(&r)).await;
    assert_eq!(j["jobStatus"], "SUCCESS");

    // Without async: the result itself, at once.
    let r = post(
        &app,
        "application/json",
        "application/json",
        json!({"inputA": {"type": "string", "content": A_XML},
               "inputB": {"type": "string", "content": B_XML}})
        .to_string(),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), DELTA);

    // The `file` form and the output location (Note of section 6): keys of the object store.
    let blobs = app.engine.blobs();
    blobs
        .put("shared/default/in/a.xml", A_XML.into())
        .await
        .unwrap();
    blobs
        .put("shared/default/in/b.xml", B_XML.into())
        .await
        .unwrap();
    let r = post(
        &app,
        "application/json",
        "application/json",
        json!({"inputA": {"type": "file", "path": "in/a.xml"},
               "inputB": {"type": "file", "path": "in/b.xml"},
               "outputLocation": "out/result.xml", "async": {}})
        .to_string(),
    )
    .await;
    assert_eq!(r.status(), 201);
    let j = ended(&app, &location(&r)).await;
    assert_eq!(j["jobStatus"], "SUCCESS");
    let stored = blobs
        .get("shared/default/out/result.xml", None)
        .await
        .unwrap();
    let bytes: Vec<bytes::Bytes> = futures::TryStreamExt::try_collect(stored.stream)
        .await
        .unwrap();
    assert_eq!(bytes.concat(), DELTA.as_bytes());
    let r = app
        .http
        .get(j["output"]["uri"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.text().await.unwrap(),
        DELTA,
        "the download is the same file"
    );

    // Refused: output locations and file keys that are no object keys; nothing is stored.
    let before = jobs_count(&app).await;
    for bad in ["../x", "/etc/passwd", "http://x.example/r.xml"] {
        let r = post(
            &app,
            "application/json",
            "application/json",
            json!({"inputA": {"type": "string", "content": A_XML},
                   "inputB": {"type": "string", "content": B_XML},
                   "outputLocation": bad, "async": {}})
            .to_string(),
        )
        .await;
        assert_problem(r, 400, "outputLocation").await;
        let r = post(
            &app,
            "application/json",
            "application/json",
            json!({"inputA": {"type": "file", "path": bad},
                   "inputB": {"type": "string", "content": B_XML}})
            .to_string(),
        )
        .await;
        assert_problem(r, 400, "inputA").await;
    }
    let r = post(
        &app,
        "application/json",
        "application/json",
        json!({"inputA": {"type": "file", "path": "in/none.xml"},
               "inputB": {"type": "string", "content": B_XML}})
        .to_string(),
    )
    .await;
    assert_problem(r, 400, "not an existing object key").await;
    assert_eq!(jobs_count(&app).await, before, "no job was stored");
    app.stop().await;
}
crate::per_backend!(seed_002_walk);

/// 5. A running job is deleted: its link says so, DELETE answers it DELETED, then it is gone.
async fn seed_002_delete(b: &'static str) {
    let app = TestApp::spawn_with(b, 2, args).await;
    // An input server that accepts and never answers: the job stays on loading inputA.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/a.xml", silent.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let r = post(
        &app,
        "application/json",
        "application/json",
        json!({"inputA": {"type": "http", "uri": silent_url},
               "inputB": {"type": "string", "content": B_XML}, "async": {}})
        .to_string(),
    )
    .await;
    assert_eq!(r.status(), 201);
    let loc = location(&r);
    let id = loc.rsplit('/').next().unwrap().to_string();
    let mut job = Value::Null;
    for _ in 0..500 {
        job = get_as(&app, &loc, None).await.1;
        if job["phaseDescription"] == "Inputs Loading -'inputA'" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(job["phaseDescription"], "Inputs Loading -'inputA'", "{job}");
    assert!(
        ["STARTED", "PROCESSING"].contains(&job["jobStatus"].as_str().unwrap()),
        "{job}"
    );
    assert!(seed_time(&job["startTime"]));
    let delete = job["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rel"] == "delete")
        .expect("a delete link while running")["href"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(delete, format!("{ROOT}/jobs/{id}"));
    let (s, xml) = get_xml(&app, &delete).await;
    assert_eq!(s, 200);
    assert!(
        xml.contains(&format!(
            "<link><rel>delete</rel><href>{delete}</href></link>"
        )),
        "{xml}"
    );

    let (s, gone, _) = keyed(&app, reqwest::Method::DELETE, &delete, None, None).await;
    assert_eq!(s, 200, "{gone}");
    assert_eq!(gone["jobStatus"], "DELETED");
    assert_eq!(gone["jobId"], id);
    assert_eq!(gone["link"], json!([]));
    let (s, _, _) = get_as(&app, &delete, None).await;
    assert_eq!(s, 404, "the job does not exist once deleted");
    let (s, _, _) = keyed(&app, reqwest::Method::DELETE, &delete, None, None).await;
    assert_eq!(s, 404);
    let (s, _, _) = get_as(&app, &format!("{ROOT}/downloads/{id}"), None).await;
    assert_eq!(s, 404);

    // An ended job is deleted too (its result goes with it).
    let r = post(
        &app,
        "application/xml",
        "application/xml",
        format!(
            "<compare><input-a type=\"string\"><content><![CDATA[{A_XML}]]></content></input-a>\
             <input-b type=\"string\"><content><![CDATA[{B_XML}]]></content></input-b><async/></compare>"
        ),
    )
    .await;
    assert_eq!(r.status(), 201);
    let loc = location(&r);
    assert_eq!(ended(&app, &loc).await["jobStatus"], "SUCCESS");
    let r = app
        .http
        .delete(&loc)
        .header("accept", "application/xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let xml = r.text().await.unwrap();
    assert!(
        xml.contains("<jobStatus>DELETED</jobStatus>") && xml.contains("<links/>"),
        "{xml}"
    );
    assert_eq!(get_as(&app, &loc, None).await.0, 404);
    hold.abort();
    app.stop().await;
}
crate::per_backend!(seed_002_delete);

/// `file` keys and output locations name the caller's own area of the object store: another
/// tenant's object is not there, and a job cannot write outside its owner's area.
#[tokio::test]
async fn seed_002_object_keys_are_the_callers() {
    let app = TestApp::spawn_with("sqlite", 2, args).await;
    let acme = app.key("acme", "submit").await;
    let globex = app.key("globex", "submit").await;
    let blobs = app.engine.blobs();
    blobs
        .put("shared/acme/in/a.xml", A_XML.into())
        .await
        .unwrap();
    let body = json!({"inputA": {"type": "file", "path": "in/a.xml"},
                      "inputB": {"type": "string", "content": B_XML},
                      "outputLocation": "out/r.xml"});
    let url = format!("{ROOT}/compare");
    let (s, p, _) = keyed(
        &app,
        reqwest::Method::POST,
        &url,
        Some(&globex),
        Some(&body),
    )
    .await;
    assert_eq!(s, 400, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("not an existing object key"),
        "{p}"
    );
    let (s, _, text) = keyed(&app, reqwest::Method::POST, &url, Some(&acme), Some(&body)).await;
    assert_eq!(s, 200, "{text}");
    assert_eq!(text, DELTA);
    let stored = blobs.get("shared/acme/out/r.xml", None).await.unwrap();
    assert_eq!(stored.size as usize, DELTA.len());
    assert!(blobs.get("shared/globex/out/r.xml", None).await.is_err());
    // The generic route cannot name another tenant's area through the job input either.
    let (s, p, _) = keyed(
        &app,
        reqwest::Method::POST,
        "/api/v1/jobs",
        Some(&globex),
        Some(&json!({"operation": "compare",
                     "input": {"inputA": {"content": A_XML}, "inputB": {"content": B_XML},
                               "outputKey": "../acme/out/r.xml"}})),
    )
    .await;
    assert_eq!(s, 400, "{p}");
    app.stop().await;
}
