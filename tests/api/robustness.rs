//! Robustness: arbitrary bytes and arbitrary structured values thrown at every parser of the
//! HTTP edge — submission bodies (JSON and XML), imports (JSON, NDJSON, XML, seed 000's
//! dialect), comparisons (JSON, XML and multipart), the query strings of the collection and the
//! tasks list, cursors, share links and `Idempotency-Key` headers. Each answer is a 4xx problem
//! document, or a documented 2xx when the input happens to be valid; a refusal writes nothing
//! (the job count and the tools count stay as they were). One service per property; the number
//! of cases is `PROPTEST_CASES` (default 48).

use std::future::Future;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Map, Value};

use crate::helpers::*;

// ----- running a property against one service ------------------------------------------------

/// Run `body` for every case of `strategy` against one service.
fn property<S, F, Fut>(strategy: S, body: F)
where
    S: Strategy,
    S::Value: Clone,
    F: Fn(Arc<TestApp>, S::Value) -> Fut,
    Fut: Future<Output = Result<(), TestCaseError>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = Arc::new(rt.block_on(TestApp::spawn("sqlite", 1)));
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let mut runner = TestRunner::new(Config {
        cases,
        // Failing seeds are kept beside this file, in `robustness.regressions`.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        source_file: Some(file!()),
        max_shrink_iters: 256,
        ..Config::default()
    });
    let outcome = runner.run(&strategy, |v| rt.block_on(body(app.clone(), v)));
    if let Ok(app) = Arc::try_unwrap(app) {
        rt.block_on(app.stop());
    }
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

/// What the service answered.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn answer(r: reqwest::Response) -> Answer {
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap_or_default(),
    }
}

/// A 4xx answer must be a problem document with that status; anything but a 4xx or one of the
/// documented `ok` statuses fails the case.
fn check_answer(a: &Answer, ok: &[u16], what: &str) -> Result<(), TestCaseError> {
    if ok.contains(&a.status) {
        return Ok(());
    }
    prop_assert!(
        (400..500).contains(&a.status),
        "{what}: answered {} (expected 4xx or one of {ok:?}): {}",
        a.status,
        a.body
    );
    let ct = a
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    prop_assert!(
        ct.starts_with("application/problem+"),
        "{what}: {} with content type `{ct}`: {}",
        a.status,
        a.body
    );
    if ct.contains("json") {
        let v: Value = serde_json::from_str(&a.body)
            .map_err(|e| TestCaseError::fail(format!("{what}: problem is not JSON: {e}")))?;
        prop_assert_eq!(&v["status"], &json!(a.status), "{}", what);
        prop_assert!(
            v["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("urn:longrun:problem:")),
            "{what}: {v}"
        );
        prop_assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()));
    } else {
        prop_assert!(
            a.body.contains(&format!("<status>{}</status>", a.status)),
            "{what}: {}",
            a.body
        );
    }
    Ok(())
}

/// How many jobs the service holds (the collection's `count`).
async fn job_count(app: &TestApp) -> u64 {
    app.engine
        .store()
        .count_jobs(&Default::default())
        .await
        .expect("count")
}

/// The number of jobs (of every tenant) and of tools (of the open tenant, the only one that
/// imports here), read from the store itself.
async fn written(app: &TestApp) -> (u64, usize) {
    (
        job_count(app).await,
        app.engine
            .store()
            .count_tools(longrun::domain::access::OPEN_TENANT)
            .await
            .expect("count") as usize,
    )
}

/// After a 2xx that made a job, wait for it to end so its effects land before the next case.
async fn settle(app: &TestApp, a: &Answer) {
    if let Some(l) = a.headers.get("location").and_then(|v| v.to_str().ok()) {
        if l.contains("/api/v1/jobs/") {
            app.wait_end(l).await;
        } else if l.contains("/api/tools/import/status/") {
            let v: Value = serde_json::from_str(&a.body).unwrap_or_default();
            if let Some(monitor) = link(&v, "self").or_else(|| link(&v, "monitor")) {
                app.wait_end(&monitor).await;
            }
        }
    }
}

// ----- strategies ------------------------------------------------------------------------------

/// Text that is never an absolute URL (no `:`), so no generated value can send the service to
/// the network.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        "[^:]{0,24}",
        "[ -9;-~]{0,12}",
        Just(String::new()),
        Just("  ".to_string()),
    ]
    .boxed()
}

/// Strings the parsers give meaning to, mixed with noise.
fn word() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "noop", "import", "compare", "export", "request", "json", "xml", "true", "false",
            "yes", "1", "0", "-1", "QUEUED", "SUCCESS", "FAILED", "CANCELLED", "createdTime",
            "-createdTime", "2026-01-31T12:00:00Z", "2026-13-01T00:00:00Z", "9999999999",
            "<a/>", "{}", "[]", "{\"a\":1}", "<a><b>1</b></a>", "<!DOCTYPE a [<!ENTITY e \"e\">]><a>&e;</a>",
            "http://127.0.0.1:9/cb", "https://localhost/cb", "http://[::1]/x", "ftp://127.0.0.1/x",
            "not a url", "http://10.0.0.1/x", "file:///etc/passwd",
        ])
        .prop_map(str::to_string),
        2 => text(),
    ]
    .boxed()
}

/// Keys the bodies know, and others.
fn key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "operation", "input", "async", "correlationId", "data", "tool_id", "tool_name",
            "category", "description", "features", "url", "callback", "keepResult",
            "notification", "format", "inputA", "inputB", "content", "uri", "options",
            "keyAttributes", "keyFields", "ignoreWhitespace", "ignoreComments", "source",
            "filter", "parts",
        ])
        .prop_map(str::to_string),
        1 => "[a-zA-Z_][a-zA-Z0-9_.-]{0,8}",
    ]
    .boxed()
}

/// An arbitrary JSON value with meaningful keys and strings among the noise.
fn value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
    .boxed()
}

/// An object whose fields are each present or not, each either a plausible value or noise.
fn object(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let parts: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .into_iter()
        .map(|(k, s)| {
            prop::option::weighted(0.7, prop_oneof![4 => s, 1 => value()])
                .prop_map(move |v| v.map(|v| (k.to_string(), v)))
                .boxed()
        })
        .collect();
    (parts, prop::option::weighted(0.2, (key(), value())))
        .prop_map(|(parts, extra)| {
            let mut m = Map::new();
            for (k, v) in parts.into_iter().flatten().chain(extra) {
                m.insert(k, v);
            }
            Value::Object(m)
        })
        .boxed()
}

/// The `async` element: only loopback or malformed destinations.
fn async_element() -> BoxedStrategy<Value> {
    let dest = prop::sample::select(vec![
        "http://127.0.0.1:9/cb",
        "https://localhost/cb",
        "http://[::1]:9/x",
        "ftp://127.0.0.1/x",
        "not a url",
        "",
    ])
    .prop_map(|s| Value::String(s.into()))
    .boxed();
    object(vec![
        ("callback", dest.clone()),
        (
            "keepResult",
            prop_oneof![
                any::<bool>().prop_map(Value::Bool),
                word().prop_map(Value::String)
            ]
            .boxed(),
        ),
        (
            "notification",
            object(vec![
                ("url", dest),
                ("format", word().prop_map(Value::String).boxed()),
            ]),
        ),
    ])
}

fn tool_record() -> BoxedStrategy<Value> {
    let s = || word().prop_map(Value::String).boxed();
    object(vec![
        (
            "tool_id",
            prop_oneof![s(), "[A-Z][0-9]{1,3}".prop_map(Value::String)].boxed(),
        ),
        ("tool_name", s()),
        ("category", s()),
        ("description", s()),
        (
            "features",
            prop::collection::vec(word().prop_map(Value::String), 0..3)
                .prop_map(Value::Array)
                .boxed(),
        ),
        (
            "url",
            prop_oneof![Just(json!("https://example.com/t")), s()].boxed(),
        ),
    ])
}

/// Bytes: pure noise, or text that looks almost right.
fn noise() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        value().prop_map(|v| {
            let mut s = v.to_string().into_bytes();
            let cut = s.len() / 2;
            s.truncate(cut);
            s
        }),
        "[<>/a-z =\"!&;\\[\\]{}:,0-9-]{0,80}".prop_map(String::into_bytes),
    ]
    .boxed()
}

/// A body's content type: the ones the service takes, and others.
fn content_type(kinds: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        6 => prop::sample::select(kinds).prop_map(str::to_string),
        1 => prop::sample::select(vec![
            "text/plain", "application/octet-stream", "application/json; charset=utf-8",
            "application/xml; charset=\"utf-8\"", "application/problem+json", "",
            "application/x-www-form-urlencoded", "multipart/form-data",
        ])
        .prop_map(str::to_string),
    ]
    .boxed()
}

/// A body as the chosen content type shows it: JSON text, or the same value in XML.
fn encode(ct: &str, root: &str, v: &Value) -> Vec<u8> {
    if ct.contains("xml") {
        longrun::formats::xml::to_xml(root, v).into_bytes()
    } else if ct.contains("ndjson") {
        match v.get("data").and_then(Value::as_array) {
            Some(records) => records
                .iter()
                .map(|r| format!("{r}\n"))
                .collect::<String>()
                .into_bytes(),
            None => format!("{v}\n").into_bytes(),
        }
    } else {
        v.to_string().into_bytes()
    }
}

fn accept() -> BoxedStrategy<Option<&'static str>> {
    prop::option::of(prop::sample::select(vec![
        "application/json",
        "application/xml",
        "*/*",
        "text/html",
        "application/xml;q=0.5, application/json;q=0.9",
    ]))
    .boxed()
}

/// POST `body` as `ct`, asking for `acc`.
async fn post(app: &TestApp, path: &str, ct: &str, acc: Option<&str>, body: Vec<u8>) -> Answer {
    let mut r = app.http.post(app.url(path)).body(body);
    if !ct.is_empty() {
        r = r.header(CONTENT_TYPE, ct);
    }
    if let Some(a) = acc {
        r = r.header(ACCEPT, a);
    }
    answer(r.send().await.unwrap()).await
}

/// POST, then check the answer and that a refusal wrote nothing.
async fn submit_and_check(
    app: &TestApp,
    path: &str,
    ct: &str,
    acc: Option<&str>,
    body: Vec<u8>,
    ok: &[u16],
) -> Result<Answer, TestCaseError> {
    let before = written(app).await;
    let a = post(app, path, ct, acc, body).await;
    check_answer(&a, ok, &format!("POST {path} ({ct})"))?;
    if a.status >= 400 {
        prop_assert_eq!(
            written(app).await,
            before,
            "a refusal of POST {} wrote",
            path
        );
    } else {
        settle(app, &a).await;
        prop_assert_eq!(
            job_count(app).await,
            before.0 + 1,
            "POST {} made one job",
            path
        );
    }
    Ok(a)
}

// ----- submissions -----------------------------------------------------------------------------

const BODY_TYPES: &[&str] = &["application/json", "application/xml", "text/xml"];
const IMPORT_TYPES: &[&str] = &[
    "application/json",
    "application/xml",
    "text/xml",
    "application/x-ndjson",
];

fn submission() -> BoxedStrategy<Value> {
    // Often a submission that may well be valid, with its fields perturbed.
    let plausible = (
        prop::sample::select(vec!["noop", "export"]),
        prop::option::of(async_element()),
        prop::option::of(word()),
    )
        .prop_map(|(op, a, c)| {
            let mut v = json!({"operation": op});
            if op == "export" {
                v["input"] = json!({"dataset": "tools", "format": "csv"});
            }
            if let Some(a) = a {
                v["async"] = a;
            }
            if let Some(c) = c {
                v["correlationId"] = json!(c);
            }
            v
        });
    let arbitrary = object(vec![
        (
            "operation",
            prop::sample::select(vec![
                "noop", "export", "compare", "import", "request", "nope",
            ])
            .prop_map(|s| Value::String(s.into()))
            .boxed(),
        ),
        ("input", value()),
        ("async", async_element()),
        ("correlationId", word().prop_map(Value::String).boxed()),
    ]);
    prop_oneof![plausible, arbitrary].boxed()
}

#[test]
fn job_submissions_of_arbitrary_bytes() {
    property(
        (content_type(BODY_TYPES), accept(), noise()),
        |app, (ct, acc, body)| async move {
            submit_and_check(&app, "/api/v1/jobs", &ct, acc, body, &[201]).await?;
            Ok(())
        },
    );
}

#[test]
fn job_submissions_of_arbitrary_values() {
    property(
        (content_type(BODY_TYPES), accept(), submission()),
        |app, (ct, acc, v)| async move {
            let body = encode(&ct, "submission", &v);
            submit_and_check(&app, "/api/v1/jobs", &ct, acc, body, &[201]).await?;
            Ok(())
        },
    );
}

// ----- imports ---------------------------------------------------------------------------------

fn import_body() -> BoxedStrategy<Value> {
    object(vec![
        (
            "data",
            prop::collection::vec(tool_record(), 0..4)
                .prop_map(Value::Array)
                .boxed(),
        ),
        ("async", async_element()),
    ])
}

fn import_path() -> BoxedStrategy<&'static str> {
    prop::sample::select(vec!["/api/v1/imports", "/api/tools/import"]).boxed()
}

#[test]
fn imports_of_arbitrary_bytes() {
    property(
        (import_path(), content_type(IMPORT_TYPES), accept(), noise()),
        |app, (path, ct, acc, body)| async move {
            submit_and_check(&app, path, &ct, acc, body, &[201]).await?;
            Ok(())
        },
    );
}

#[test]
fn imports_of_arbitrary_records() {
    property(
        (
            import_path(),
            content_type(IMPORT_TYPES),
            accept(),
            import_body(),
        ),
        |app, (path, ct, acc, v)| async move {
            let body = encode(&ct, "import", &v);
            submit_and_check(&app, path, &ct, acc, body, &[201]).await?;
            Ok(())
        },
    );
}

// ----- comparisons -----------------------------------------------------------------------------

fn document() -> BoxedStrategy<String> {
    prop_oneof![
        prop::sample::select(vec![
            "<a><b id=\"1\">x</b></a>",
            "<a><b id=\"1\">y</b><c/></a>",
            "{\"items\":[{\"id\":1,\"v\":\"a\"}]}",
            "{\"items\":[{\"id\":1,\"v\":\"b\"}],\"n\":null}",
            "<a>",
            "{\"a\":",
            "<!DOCTYPE a [<!ENTITY e \"e\">]><a>&e;</a>",
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
            "",
        ])
        .prop_map(str::to_string),
        value().prop_map(|v| v.to_string()),
        value().prop_map(|v| longrun::formats::xml::to_xml("doc", &v)),
        text(),
    ]
    .boxed()
}

fn compare_input() -> BoxedStrategy<Value> {
    object(vec![
        ("content", document().prop_map(Value::String).boxed()),
        (
            "uri",
            prop::sample::select(vec![
                "http://127.0.0.1:9/a.xml",
                "not a url",
                "ftp://[::1]/",
            ])
            .prop_map(|s| Value::String(s.into()))
            .boxed(),
        ),
    ])
}

fn comparison() -> BoxedStrategy<Value> {
    // Often two documents of one format, with options perturbed.
    let docs = prop_oneof![
        Just(("<a><b id=\"1\">x</b></a>", "<a><b id=\"1\">y</b><c/></a>")),
        Just((
            "{\"items\":[{\"id\":1,\"v\":\"a\"}]}",
            "{\"items\":[{\"id\":1,\"v\":\"b\"}]}"
        )),
        Just(("[1,2,3]", "[1,3]")),
    ];
    let plausible = (docs, prop::option::of(async_element()), any::<bool>()).prop_map(
        |((a, b), asy, keyed)| {
            let mut v = json!({"inputA": {"content": a}, "inputB": {"content": b}});
            if keyed {
                v["options"] = json!({"keyAttributes": ["id"], "keyFields": ["id"]});
            }
            if let Some(asy) = asy {
                v["async"] = asy;
            }
            v
        },
    );
    let arbitrary = object(vec![
        ("inputA", compare_input()),
        ("inputB", compare_input()),
        ("format", word().prop_map(Value::String).boxed()),
        (
            "options",
            object(vec![
                (
                    "keyAttributes",
                    prop::collection::vec(word().prop_map(Value::String), 0..3)
                        .prop_map(Value::Array)
                        .boxed(),
                ),
                (
                    "keyFields",
                    prop::collection::vec(word().prop_map(Value::String), 0..3)
                        .prop_map(Value::Array)
                        .boxed(),
                ),
                (
                    "ignoreWhitespace",
                    any::<bool>().prop_map(Value::Bool).boxed(),
                ),
                (
                    "ignoreComments",
                    any::<bool>().prop_map(Value::Bool).boxed(),
                ),
            ]),
        ),
        ("async", async_element()),
        ("correlationId", word().prop_map(Value::String).boxed()),
    ]);
    prop_oneof![plausible, arbitrary].boxed()
}

/// 200: the result within the sync limit; 201: the job.
const COMPARE_OK: &[u16] = &[200, 201];

#[test]
fn comparisons_of_arbitrary_bytes() {
    property(
        (content_type(BODY_TYPES), accept(), noise()),
        |app, (ct, acc, body)| async move {
            submit_and_check(&app, "/api/v1/comparisons", &ct, acc, body, COMPARE_OK).await?;
            Ok(())
        },
    );
}

#[test]
fn comparisons_of_arbitrary_values() {
    property(
        (content_type(BODY_TYPES), accept(), comparison()),
        |app, (ct, acc, v)| async move {
            let body = encode(&ct, "comparison", &v);
            submit_and_check(&app, "/api/v1/comparisons", &ct, acc, body, COMPARE_OK).await?;
            Ok(())
        },
    );
}

/// A multipart form: known and unknown field names, file parts and text fields.
fn form() -> BoxedStrategy<Vec<(String, Vec<u8>, bool)>> {
    let name = prop_oneof![
        4 => prop::sample::select(vec![
            "inputA", "inputB", "async", "callback", "keepResult", "notification",
            "notificationFormat", "format", "keyAttributes", "keyFields", "ignoreWhitespace",
            "ignoreComments", "correlationId",
        ])
        .prop_map(str::to_string),
        1 => key(),
    ];
    let data = prop_oneof![
        document().prop_map(String::into_bytes),
        word().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..40),
    ];
    prop::collection::vec((name, data, any::<bool>()), 0..7).boxed()
}

#[test]
fn comparison_forms() {
    property((accept(), form()), |app, (acc, fields)| async move {
        let mut f = reqwest::multipart::Form::new();
        for (name, data, as_file) in fields {
            let part = reqwest::multipart::Part::bytes(data);
            f = f.part(name, if as_file { part.file_name("doc") } else { part });
        }
        let before = written(&app).await;
        let mut r = app.http.post(app.url("/api/v1/comparisons")).multipart(f);
        if let Some(a) = acc {
            r = r.header(ACCEPT, a);
        }
        let a = answer(r.send().await.unwrap()).await;
        check_answer(&a, COMPARE_OK, "multipart comparison")?;
        if a.status >= 400 {
            prop_assert_eq!(written(&app).await, before);
        } else {
            settle(&app, &a).await;
            prop_assert_eq!(job_count(&app).await, before.0 + 1);
        }
        Ok(())
    });
}

// ----- query strings and cursors ---------------------------------------------------------------

/// A query value: meaningful, noise, or raw percent-encoded bytes.
fn query_value() -> BoxedStrategy<String> {
    prop_oneof![
        3 => word(),
        1 => prop::collection::vec(any::<u8>(), 0..12).prop_map(|b| {
            b.iter().map(|c| format!("%{c:02X}")).collect::<String>()
        }),
        1 => any::<i64>().prop_map(|n| n.to_string()),
    ]
    .boxed()
}

fn encode_pair(k: &str, v: &str) -> String {
    // Raw percent-encoded values pass as they are; everything else is form-encoded.
    let enc = |s: &str| {
        if s.starts_with('%') {
            s.to_string()
        } else {
            url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
        }
    };
    format!("{}={}", enc(k), enc(v))
}

fn query(keys: &'static [&'static str]) -> BoxedStrategy<String> {
    let k = prop_oneof![
        4 => prop::sample::select(keys).prop_map(str::to_string),
        1 => "[a-zA-Z]{1,6}".prop_filter("not bgrs", |k| k != "bgrs"),
    ];
    prop::collection::vec((k, query_value()), 0..6)
        .prop_map(|pairs| {
            pairs
                .iter()
                .map(|(k, v)| encode_pair(k, v))
                .collect::<Vec<_>>()
                .join("&")
        })
        .boxed()
}

/// GET `path?q`: 200 or a 4xx problem, and nothing written.
async fn get_and_check(
    app: &TestApp,
    path: &str,
    q: &str,
    acc: Option<&str>,
    ok: &[u16],
) -> Result<Answer, TestCaseError> {
    let before = written(app).await;
    let mut r = app.http.get(app.url(&format!("{path}?{q}")));
    if let Some(a) = acc {
        r = r.header(ACCEPT, a);
    }
    let a = answer(r.send().await.unwrap()).await;
    check_answer(&a, ok, &format!("GET {path}?{q}"))?;
    prop_assert_eq!(written(app).await, before, "GET {}?{} wrote", path, q);
    Ok(a)
}

const COLLECTION_KEYS: &[&str] = &[
    "status",
    "operation",
    "correlationId",
    "createdAfter",
    "createdBefore",
    "finishedAfter",
    "finishedBefore",
    "sort",
    "limit",
    "cursor",
    "format",
];

/// A service with a few jobs, so the collection has pages to walk.
async fn with_jobs(app: &TestApp) {
    if job_count(app).await == 0 {
        for _ in 0..3 {
            let r = app
                .post_json("/api/v1/jobs", &json!({"operation": "noop"}))
                .await;
            assert_eq!(r.status(), 201);
        }
    }
}

#[test]
fn collection_query_strings() {
    property(
        (query(COLLECTION_KEYS), accept()),
        |app, (q, acc)| async move {
            with_jobs(&app).await;
            get_and_check(&app, "/api/v1/jobs", &q, acc, &[200]).await?;
            Ok(())
        },
    );
}

#[test]
fn tasks_list_query_strings() {
    property(
        (query(&["limit", "format", "cancel", "prune"]), accept()),
        |app, (q, acc)| async move {
            with_jobs(&app).await;
            get_and_check(&app, "/tasks", &q, acc, &[200]).await?;
            Ok(())
        },
    );
}

fn cursor() -> BoxedStrategy<String> {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    prop_oneof![
        "[A-Za-z0-9_=+/-]{0,48}",
        prop::collection::vec(any::<u8>(), 0..48).prop_map(move |b| b64(&b)),
        (prop::sample::select(vec!["n", "p", "x", ""]), any::<u128>())
            .prop_map(move |(d, n)| b64(format!("{d}:{}", uuid::Uuid::from_u128(n)).as_bytes())),
        (prop::sample::select(vec!["n", "p"]), "[0-9a-fA-F-]{0,40}")
            .prop_map(move |(d, s)| b64(format!("{d}:{s}").as_bytes())),
    ]
    .boxed()
}

#[test]
fn cursors() {
    property(
        (
            cursor(),
            prop::sample::select(vec!["createdTime", "-createdTime"]),
        ),
        |app, (c, sort)| async move {
            with_jobs(&app).await;
            let q = format!("sort={sort}&limit=2&{}", encode_pair("cursor", &c));
            let a = get_and_check(&app, "/api/v1/jobs", &q, None, &[200]).await?;
            if a.status == 200 {
                let v: Value = serde_json::from_str(&a.body).unwrap();
                prop_assert!(v["jobs"].is_array());
                // Every link handed out leads somewhere valid.
                for rel in ["next", "prev"] {
                    if let Some(h) = link(&v, rel) {
                        let (s, _, _) = app.get(&h).await;
                        prop_assert_eq!(s, 200, "{} link {}", rel, h);
                    }
                }
            }
            Ok(())
        },
    );
}

// ----- share links -----------------------------------------------------------------------------

#[test]
fn share_links() {
    // One background request, owned by a key's tenant that never asks again; with a key made,
    // every other caller needs a key (401) or a valid signed link (else 404).
    let rid = std::sync::OnceLock::<String>::new();
    let rid = &rid;
    property(
        (
            prop::sample::select(vec!["", "/details", "/result"]),
            any::<bool>(),
            prop::option::of(prop_oneof![
                any::<i64>().prop_map(|n| n.to_string()),
                word(),
            ]),
            prop::option::of(prop_oneof![
                "[A-Za-z0-9_-]{0,50}",
                word(),
                prop::collection::vec(any::<u8>(), 32).prop_map(|b| {
                    use base64::Engine;
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
                }),
            ]),
            prop::option::of("[a-z]{1,8}"),
        ),
        |app, (sub, real, expires, sig, bearer)| async move {
            if rid.get().is_none() {
                let owner = app.key("acme", "submit").await;
                let r = app
                    .http
                    .get(app.url("/api/tools?bgrs=yes"))
                    .header(AUTHORIZATION, format!("Bearer {owner}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                let v: Value = r.json().await.unwrap();
                let monitor = link(&v, "monitor").unwrap();
                for _ in 0..500 {
                    let j: Value = app
                        .http
                        .get(&monitor)
                        .header(AUTHORIZATION, format!("Bearer {owner}"))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    if j["jobStatus"] == "SUCCESS" {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                let _ = rid.set(v["request"].as_str().unwrap().to_string());
            }
            let id = if real {
                rid.get().unwrap().clone()
            } else {
                uuid::Uuid::now_v7().simple().to_string()
            };
            let mut pairs = Vec::new();
            if let Some(e) = &expires {
                pairs.push(encode_pair("expires", e));
            }
            if let Some(s) = &sig {
                pairs.push(encode_pair("sig", s));
            }
            let before = written(&app).await;
            let mut r = app
                .http
                .get(app.url(&format!("/bgrs/{id}{sub}?{}", pairs.join("&"))));
            if let Some(b) = &bearer {
                r = r.header(AUTHORIZATION, format!("Bearer {b}"));
            }
            let a = answer(r.send().await.unwrap()).await;
            // A forged or absent signature from anyone but the owner is never an answer.
            check_answer(&a, &[], &format!("GET /bgrs/{id}{sub}"))?;
            prop_assert!(matches!(a.status, 400 | 401 | 404 | 410), "{}", a.status);
            prop_assert_eq!(written(&app).await, before);
            Ok(())
        },
    );
}

// ----- Idempotency-Key -------------------------------------------------------------------------

fn idempotency_key() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        3 => "[!-~]{1,40}".prop_map(String::into_bytes),
        1 => "[ !-~]{0,12}".prop_map(String::into_bytes),
        1 => (200usize..300).prop_map(|n| vec![b'k'; n]),
        1 => prop::collection::vec(
            any::<u8>().prop_filter("a header value byte", |b| *b == b'\t' || (0x20..0x7f).contains(b) || *b >= 0x80),
            0..20,
        ),
    ]
    .boxed()
}

#[test]
fn idempotency_keys() {
    use std::collections::HashMap;
    use std::sync::Mutex;
    // Keys whose request was answered 2xx, with the body that used them up.
    let used = Mutex::new(HashMap::<String, (bool, String)>::new());
    let used = &used;
    property(
        (idempotency_key(), any::<bool>()),
        |app, (key, valid)| async move {
            let Ok(hv) = HeaderValue::from_bytes(&key) else {
                return Ok(());
            };
            let body = if valid {
                json!({"operation": "noop"}).to_string()
            } else {
                "{\"operation\": ".to_string()
            };
            let send = || {
                app.http
                    .post(app.url("/api/v1/jobs"))
                    .header(CONTENT_TYPE, "application/json")
                    .header("idempotency-key", hv.clone())
                    .body(body.clone())
                    .send()
            };
            // The service reads the key trimmed and out of its quotes: 1 to 253 visible ASCII
            // characters other than `"` (the pattern the document declares).
            let text = std::str::from_utf8(&key)
                .ok()
                .filter(|k| k.is_ascii())
                .map(|k| {
                    let k = k.trim();
                    let k = k.strip_prefix('"').unwrap_or(k);
                    k.strip_suffix('"').unwrap_or(k).to_string()
                });
            let usable = text.as_ref().is_some_and(|k| {
                (1..=253).contains(&k.len())
                    && k.bytes().all(|b| (b'!'..=b'~').contains(&b) && b != b'"')
            });
            let before = written(&app).await;
            let first = answer(send().await.unwrap()).await;
            let second = answer(send().await.unwrap()).await;
            let after = written(&app).await;
            let earlier = text
                .as_ref()
                .and_then(|k| used.lock().unwrap().get(k).cloned());
            let expected = match (&earlier, usable, valid) {
                (_, false, _) => 400,
                (Some((_, b)), true, _) if *b != body => 422,
                (Some(_), true, _) => 201,
                (None, true, true) => 201,
                (None, true, false) => 400,
            };
            for (n, a) in [(1, &first), (2, &second)] {
                check_answer(a, &[201], &format!("Idempotency-Key {key:?}, try {n}"))?;
                prop_assert_eq!(a.status, expected, "try {}: {}", n, a.body);
            }
            if expected == 201 {
                prop_assert_eq!(
                    second
                        .headers
                        .get("idempotent-replayed")
                        .and_then(|v| v.to_str().ok()),
                    Some("true")
                );
                prop_assert_eq!(
                    first.headers.get("location"),
                    second.headers.get("location")
                );
                let made = if earlier.is_some() { 0 } else { 1 };
                prop_assert_eq!(after.0, before.0 + made);
                used.lock()
                    .unwrap()
                    .insert(text.clone().unwrap(), (valid, body.clone()));
            } else {
                prop_assert_eq!(after, before, "a refused request wrote");
            }
            Ok(())
        },
    );
}

// ----- findings of the schema fuzzing (.ci/schemathesis), kept fixed ---------------------------

#[tokio::test]
async fn schema_fuzzing_findings_stay_fixed() {
    let app = TestApp::spawn("sqlite", 1).await;
    let before = written(&app).await;
    // Import bodies the document calls invalid are refused: text where the XML holds elements
    // only, and an `async` element that is not an object or holds a null.
    for (ct, body) in [
        ("application/xml", "<import><data>6</data></import>"),
        ("application/xml", "<import>words<data/></import>"),
        ("application/json", r#"{"data": [], "async": false}"#),
        ("application/json", r#"{"data": [], "async": null}"#),
        (
            "application/json",
            r#"{"data": [], "async": {"notification": null}}"#,
        ),
        (
            "application/json",
            r#"{"data": [], "async": {"callback": null}}"#,
        ),
    ] {
        for path in ["/api/v1/imports", "/api/tools/import"] {
            let r = app.post_raw(path, ct, body.to_string()).await;
            assert_problem(r, 400, "").await;
        }
    }
    // Unknown fields of a submission are refused in JSON as in XML.
    let r = app
        .post_json("/api/v1/jobs", &json!({"operation": "noop", "extra": 1}))
        .await;
    assert_problem(r, 400, "extra").await;
    assert_eq!(written(&app).await, before, "a refusal wrote");

    // A method a path does not take: 405 with the methods it does take.
    let trace = reqwest::Method::from_bytes(b"TRACE").unwrap();
    let r = app
        .http
        .request(trace.clone(), app.url("/api/v1/jobs"))
        .send()
        .await
        .unwrap();
    let allow = r.headers()["allow"].to_str().unwrap().to_string();
    for m in ["GET", "POST", "DELETE", "HEAD"] {
        assert!(allow.contains(m), "{allow}");
    }
    assert_problem(r, 405, "does not take").await;
    let id = uuid::Uuid::now_v7();
    let r = app
        .http
        .request(trace.clone(), app.url(&format!("/api/v1/jobs/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "POST");
    // A literal segment is its own path, not a value of the `{id}` beside it.
    for m in [trace, reqwest::Method::OPTIONS, reqwest::Method::GET] {
        let r = app
            .http
            .request(m.clone(), app.url("/api/v1/jobs/actions"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{m}");
        assert_eq!(r.headers()["allow"], "POST", "{m}");
    }

    // A `format` not offered is a 406, also where `format` is a documented parameter.
    for path in [
        "/api/v1/jobs?format=yaml",
        "/api/tools?format=yaml",
        "/?format=yaml",
    ] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_problem(r, 406, "format").await;
    }
    // Parameters outside their documented range are refused.
    for path in [
        "/api/v1/jobs?limit=0",
        "/api/v1/jobs?limit=1001",
        "/api/v1/jobs?status=",
        "/api/v1/jobs?status=DONE",
        "/api/v1/jobs?sort=name",
        "/tasks?limit=0",
        "/api/tools?limit=5000",
    ] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_problem(r, 400, "").await;
    }
    // An empty cursor is the first page; statuses may be comma-separated, in any case.
    for path in [
        "/api/v1/jobs?cursor=",
        "/api/v1/jobs?status=queued,%20FAILED&status=SUCCESS",
    ] {
        let (s, _, v) = app.get(&app.url(path)).await;
        assert_eq!(s, 200, "{path}: {v}");
    }

    // The document declares what the service answers.
    let (_, _, doc) = app.get(&app.url("/openapi.json")).await;
    let responses = |path: &str, method: &str| doc["paths"][path][method]["responses"].clone();
    assert!(responses("/api/v1/jobs/{id}/cancel", "post")["202"].is_object());
    assert!(responses("/api/v1/jobs/{id}", "get")["304"].is_object());
    assert!(responses("/api/v1/jobs", "post")["200"].is_object());
    assert_eq!(
        responses("/tasks", "get")["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/TaskList"
    );
    let event = &responses("/api/v1/jobs/{id}/events", "get")["200"]["content"]
        ["text/event-stream"]["schema"];
    assert_eq!(event["type"], "object");
    assert!(event["properties"]["data"].is_object());
    app.stop().await;
}
