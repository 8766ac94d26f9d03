//! Spawns the real service on a free loopback port with a fresh database, and a small HTTP
//! client that follows links.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use longrun::config::{Config, ServeArgs};
use longrun::operations::{Context, OpError, Operation};
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use serde_json::{json, Value};

/// The backends the suite runs on: SQLite with local files always; PostgreSQL with local files
/// when `LONGRUN_TEST_POSTGRES_URL` is set; PostgreSQL with an S3 object store when
/// `LONGRUN_TEST_S3_URL` (`s3://bucket`, with the `AWS_*` settings) is set too.
pub fn backends() -> Vec<&'static str> {
    let mut b = vec!["sqlite"];
    if std::env::var("LONGRUN_TEST_POSTGRES_URL").is_ok() {
        b.push("postgres");
        if std::env::var("LONGRUN_TEST_S3_URL").is_ok() {
            b.push("postgres+s3");
        } else {
            eprintln!(
                "LONGRUN_TEST_S3_URL is not set: PostgreSQL + S3 runs of this test were skipped"
            );
        }
    } else {
        eprintln!(
            "LONGRUN_TEST_POSTGRES_URL is not set: PostgreSQL runs of this test were skipped"
        );
    }
    b
}

/// The database URL of a backend (a fresh database on PostgreSQL).
pub async fn database_for(backend: &str, dir: &std::path::Path) -> String {
    if backend.starts_with("postgres") {
        fresh_postgres().await
    } else {
        format!("sqlite://{}/t.db?mode=rwc", dir.display())
    }
}

/// The object store URL of a backend (a fresh prefix in the S3 bucket).
pub fn store_for(backend: &str, dir: &std::path::Path) -> String {
    if backend.ends_with("+s3") {
        let bucket = std::env::var("LONGRUN_TEST_S3_URL").unwrap();
        format!(
            "{}/run-{}",
            bucket.trim_end_matches('/'),
            uuid::Uuid::now_v7().simple()
        )
    } else {
        format!("file://{}/objects", dir.display())
    }
}

/// A fresh PostgreSQL database on the configured server.
pub async fn fresh_postgres() -> String {
    use sea_orm::ConnectionTrait;
    let admin = std::env::var("LONGRUN_TEST_POSTGRES_URL").unwrap();
    let name = format!("lr_{}", uuid::Uuid::now_v7().simple());
    let db = sea_orm::Database::connect(&admin).await.unwrap();
    db.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    db.close().await.ok();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A test operation: `steps` stages of `ms` each, checking the cancel token between them;
/// fails on purpose when `fail` is true; writes the log line "<say> <step>" at each step when
/// `say` is given.
pub struct Sleepy;

#[async_trait]
impl Operation for Sleepy {
    fn name(&self) -> &str {
        "sleepy"
    }
    fn description(&self) -> &str {
        "Sleeps in steps (for tests)."
    }
    fn input_schema(&self) -> Value {
        json!({"type": "object", "properties": {"ms": {"type": "integer"}, "steps": {"type": "integer"}, "fail": {"type": "boolean"}}})
    }
    fn stages(&self) -> i32 {
        3
    }
    fn validate(&self, input: &Value) -> Result<(), String> {
        match input.get("ms") {
            None | Some(Value::Number(_)) => Ok(()),
            Some(_) => Err("`ms` must be a number".into()),
        }
    }
    async fn run(&self, ctx: &mut Context) -> Result<Value, OpError> {
        let ms = ctx.input().get("ms").and_then(Value::as_u64).unwrap_or(10);
        let steps = ctx
            .input()
            .get("steps")
            .and_then(Value::as_i64)
            .unwrap_or(3);
        let say = ctx
            .input()
            .get("say")
            .and_then(Value::as_str)
            .map(str::to_string);
        for i in 1..=steps {
            ctx.stage(i.min(3) as i32, 3, &format!("Step {i}")).await?;
            if let Some(say) = &say {
                ctx.message(longrun::domain::Level::Info, &format!("{say} {i}"))
                    .await?;
            }
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if ctx.input().get("panic") == Some(&Value::Bool(true)) {
            panic!("asked to panic");
        }
        if ctx.input().get("fail") == Some(&Value::Bool(true)) {
            return Err(OpError::failed("test", "asked to fail"));
        }
        let mut f = ctx.create_file("out.txt", "text/plain").await?;
        f.write(b"hello from sleepy").await?;
        let done = f.finish().await?;
        ctx.add_file(done).await?;
        Ok(json!({"steps": steps}))
    }
}

/// A test operation with an outside effect: appends its job id to the file `path`, so a test can
/// count how often each job's work was done.
pub struct Count;

#[async_trait]
impl Operation for Count {
    fn name(&self) -> &str {
        "count"
    }
    fn description(&self) -> &str {
        "Appends the job id to a file (for tests)."
    }
    fn input_schema(&self) -> Value {
        json!({"type": "object", "properties": {"path": {"type": "string"}, "ms": {"type": "integer"}}})
    }
    async fn run(&self, ctx: &mut Context) -> Result<Value, OpError> {
        use std::io::Write;
        ctx.stage(1, 1, "Counting").await?;
        let ms = ctx.input().get("ms").and_then(Value::as_u64).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let path = ctx.input()["path"].as_str().unwrap_or_default().to_string();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| OpError::failed("io", e.to_string()))?;
        writeln!(f, "{}", ctx.lease().job_id())
            .map_err(|e| OpError::failed("io", e.to_string()))?;
        Ok(json!({"counted": true}))
    }
}

/// A running service.
pub struct TestApp {
    pub base: String,
    /// The engine, to drive background duties with a pinned clock.
    pub engine: Arc<longrun::engine::Engine>,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// Start the service with `workers` workers on `backend`.
    pub async fn spawn(backend: &'static str, workers: usize) -> TestApp {
        Self::spawn_with(backend, workers, |_| {}).await
    }

    /// Start the service with settings changed by `tweak`.
    pub async fn spawn_with(
        backend: &'static str,
        workers: usize,
        tweak: impl FnOnce(&mut ServeArgs),
    ) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let database_url = database_for(backend, dir.path()).await;
        let args = ServeArgs {
            bind: Some("127.0.0.1:0".into()),
            database_url: Some(database_url),
            store_url: Some(store_for(backend, dir.path())),
            workers: Some(workers),
            lease: Some("10s".into()),
            shutdown_grace: Some("2s".into()),
            ..Default::default()
        };
        let mut args = args;
        tweak(&mut args);
        let config = Config::resolve(&args).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = longrun::App::build(config, vec![Arc::new(Sleepy), Arc::new(Count)])
            .await
            .unwrap();
        let engine = app.engine.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run(listener, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        TestApp {
            base: format!("http://{addr}"),
            engine,
            http: reqwest::Client::new(),
            stop: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    /// Stop the service gracefully.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }

    /// Make an API key for `tenant` with `scope` (read, submit or admin); the service stops
    /// running open once one exists.
    pub async fn key(&self, tenant: &str, scope: &str) -> String {
        let (secret, digest, prefix) = longrun::domain::access::new_key();
        self.engine
            .store()
            .insert_key(tenant, scope, &digest, &prefix)
            .await
            .unwrap();
        secret
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POST JSON.
    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POST a raw body with a content type.
    pub async fn post_raw(
        &self,
        path: &str,
        ct: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header(CONTENT_TYPE, ct)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Submit a sleepy job; returns its Location.
    pub async fn sleepy(&self, input: Value) -> String {
        let r = self
            .post_json(
                "/api/v1/jobs",
                &json!({"operation": "sleepy", "input": input}),
            )
            .await;
        assert_eq!(r.status(), 201);
        location(&r)
    }

    /// GET an absolute URL as JSON.
    pub async fn get(&self, href: &str) -> (u16, HeaderMap, Value) {
        let r = self
            .http
            .get(href)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, v)
    }

    /// Poll a job until it is in an end state (no `monitor` link); returns it.
    pub async fn wait_end(&self, href: &str) -> Value {
        for _ in 0..600 {
            let (s, _, job) = self.get(href).await;
            assert_eq!(s, 200, "{job}");
            if link(&job, "monitor").is_none() {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {href} did not end");
    }

    /// The status of `href` once it answers 410 (a read-once file is removed just after its
    /// complete download), or whatever it answers after 5 s.
    pub async fn wait_gone(&self, href: &str) -> u16 {
        let mut status = 0;
        for _ in 0..100 {
            status = self.http.get(href).send().await.unwrap().status().as_u16();
            if status == 410 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        status
    }

    /// The job's `kind` messages once there are at least `n` of them (or after 10 s).
    pub async fn wait_messages(&self, job: &str, kind: &str, n: usize) -> Vec<Value> {
        let mut found = Vec::new();
        for _ in 0..200 {
            let (_, _, msgs) = self.get(&format!("{job}/messages")).await;
            found = msgs["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["kind"] == kind)
                .cloned()
                .collect();
            if found.len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        found
    }

    /// GET `href` held with `Prefer: wait=secs` until it differs from `etag`.
    pub async fn long_poll(&self, href: &str, etag: &str, secs: u64) -> reqwest::Response {
        self.http
            .get(href)
            .header("prefer", format!("wait={secs}"))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap()
    }

    /// Poll until the job has `status`.
    pub async fn wait_status(&self, href: &str, status: &str) -> Value {
        for _ in 0..600 {
            let (_, _, job) = self.get(href).await;
            if job["jobStatus"] == status {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("job {href} never reached {status}");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// The Location header.
pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .expect("Location header")
        .to_str()
        .unwrap()
        .to_string()
}

/// The href of the first link with `rel`.
pub fn link(doc: &Value, rel: &str) -> Option<String> {
    doc["links"]
        .as_array()?
        .iter()
        .find(|l| l["rel"] == rel)
        .and_then(|l| l["href"].as_str())
        .map(str::to_string)
}

/// The rels of a document, in order.
pub fn rels(doc: &Value) -> Vec<String> {
    doc["links"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| l["rel"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A problem document check.
pub async fn assert_problem(r: reqwest::Response, status: u16, detail_has: &str) -> Value {
    let got = r.status().as_u16();
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    assert!(ct.starts_with("application/problem+"), "content type {ct}");
    if ct.contains("json") {
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], status);
        assert!(v["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:longrun:problem:"));
        assert!(
            v["detail"].as_str().unwrap().contains(detail_has),
            "{} !~ {detail_has}",
            v["detail"]
        );
        v
    } else {
        assert!(
            text.contains(&format!("<status>{status}</status>")),
            "{text}"
        );
        assert!(text.contains(detail_has), "{text}");
        Value::String(text)
    }
}

/// Seed 000's sample payload.
pub fn seed_payload() -> Value {
    json!({"data": [
        {"tool_name": "University Scraper", "tool_id": "V001", "category": "Education",
         "description": "Extracts data on requirements, fees, and programs from Russian universities to keep budget information up-to-date.",
         "features": ["Data extraction", "Requirement updates", "Program information", "Fee updates"],
         "url": "https://example.com/university-scraper"},
        {"tool_name": "Currency Converter", "tool_id": "V002", "category": "Finance",
         "description": "Calculates real-time exchange rates to convert prices in your budget across various currencies.",
         "features": ["Real-time rates", "Multiple currencies", "Conversion history"],
         "url": "https://example.com/currency-converter"},
        {"tool_name": "Study Cost Simulator", "tool_id": "V003", "category": "Education",
         "description": "Estimates the total cost of studying in various Russian cities, accounting for tuition, accommodation, and other expenses.",
         "features": ["Tuition cost estimation", "Accommodation costs", "Other expenses", "City comparison"],
         "url": "https://example.com/study-cost-simulator"}
    ]})
}

/// `n` generated valid tool records as a JSON import body.
pub fn generated(n: usize, prefix: &str) -> String {
    let mut s = String::with_capacity(n * 120);
    s.push_str("{\"data\":[");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "{{\"tool_id\":\"{prefix}{i}\",\"tool_name\":\"Tool {i}\",\"category\":\"Gen\",\"features\":[\"f\"],\"url\":\"https://example.com/{i}\"}}"
        ));
    }
    s.push_str("]}");
    s
}

/// How many tools the catalog at `base` holds, by walking its `next` links.
pub async fn count_tools(http: &reqwest::Client, base: &str) -> usize {
    let mut n = 0;
    let mut next = Some(format!("{base}/api/tools?limit=1000"));
    while let Some(u) = next {
        let v: Value = http.get(&u).send().await.unwrap().json().await.unwrap();
        n += v["tools"].as_array().unwrap().len();
        next = link(&v, "next");
    }
    n
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: String,
}

type ReceiverState = (
    Arc<std::sync::Mutex<Vec<Received>>>,
    Arc<std::sync::Mutex<std::collections::VecDeque<u16>>>,
);

/// A webhook receiver on a loopback port that answers the statuses of its script in order
/// (then 200) and records every request.
pub struct Receiver {
    pub base: String,
    pub got: Arc<std::sync::Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start(script: Vec<u16>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::on(listener, script)
    }

    /// Serve on a given listener (to come up later on a port that was down).
    pub fn on(listener: tokio::net::TcpListener, script: Vec<u16>) -> Receiver {
        use poem::{handler, web::Data, EndpointExt, Request, Route};
        let base = format!("http://{}", listener.local_addr().unwrap());
        let got = Arc::new(std::sync::Mutex::new(Vec::<Received>::new()));
        let script = Arc::new(std::sync::Mutex::new(
            script
                .into_iter()
                .collect::<std::collections::VecDeque<_>>(),
        ));
        #[handler]
        async fn hook(
            req: &Request,
            body: String,
            Data(state): Data<&ReceiverState>,
        ) -> poem::Response {
            let mut headers = HeaderMap::new();
            for (k, v) in req.headers() {
                headers.insert(
                    reqwest::header::HeaderName::from_bytes(k.as_str().as_bytes()).unwrap(),
                    reqwest::header::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
                );
            }
            state.0.lock().unwrap().push(Received {
                method: req.method().to_string(),
                uri: req.uri().to_string(),
                headers,
                body,
            });
            let status = state.1.lock().unwrap().pop_front().unwrap_or(200);
            poem::Response::builder()
                .status(poem::http::StatusCode::from_u16(status).unwrap())
                .header("location", "http://127.0.0.1:9/elsewhere")
                .finish()
        }
        let app = Route::new().at("/*path", hook).data((got.clone(), script));
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
        let task = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
        Receiver { base, got, task }
    }

    /// Wait until at least `n` requests arrived; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..400 {
            if self.got.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let got = self.got.lock().unwrap().clone();
        assert!(
            got.len() >= n,
            "expected {n} deliveries, got {}: {got:?}",
            got.len()
        );
        got
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The secret the signal tests sign with.
pub const TEST_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Check a delivery's Standard Webhooks signature with the service's own signer.
pub fn assert_signed(r: &Received) {
    let h = |n: &str| {
        r.headers
            .get(n)
            .unwrap_or_else(|| panic!("header {n}"))
            .to_str()
            .unwrap()
            .to_string()
    };
    let id = h("webhook-id");
    let ts: i64 = h("webhook-timestamp").parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 300);
    let key = longrun::domain::signals::secret_key(TEST_SECRET).unwrap();
    assert_eq!(
        h("webhook-signature"),
        longrun::domain::signals::sign(&key, &id, ts, r.body.as_bytes())
    );
}

/// Whether this test's PostgreSQL case can run: with `LONGRUN_TEST_POSTGRES_URL` it does; without
/// it, the case is skipped with a note, except in CI (`CI=true`), where it fails.
pub fn postgres_or_skip() -> bool {
    if std::env::var("LONGRUN_TEST_POSTGRES_URL").is_ok() {
        return true;
    }
    assert!(
        std::env::var("CI").is_err(),
        "LONGRUN_TEST_POSTGRES_URL must be set in CI"
    );
    eprintln!("LONGRUN_TEST_POSTGRES_URL is not set: this PostgreSQL case was skipped");
    false
}

/// One request with an API key (or none); (status, body as JSON or Null, body as text).
pub async fn keyed(
    app: &TestApp,
    method: reqwest::Method,
    href: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value, String) {
    let href = if href.starts_with("http") {
        href.to_string()
    } else {
        app.url(href)
    };
    let mut r = app
        .http
        .request(method, href)
        .header("accept", "application/json")
        .timeout(Duration::from_secs(30));
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    // A live stream may never end: its status is the answer.
    let streaming = r
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if streaming {
        return (status, Value::Null, String::new());
    }
    let text = r.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

/// A GET with an API key (or none).
pub async fn get_as(app: &TestApp, href: &str, key: Option<&str>) -> (u16, Value, String) {
    keyed(app, reqwest::Method::GET, href, key, None).await
}

/// The job at `href`, read with `key` until it has ended.
pub async fn ended_as(app: &TestApp, href: &str, key: &str) -> Value {
    for _ in 0..1000 {
        let (s, j, _) = get_as(app, href, Some(key)).await;
        assert_eq!(s, 200, "{href}: {j}");
        if ["SUCCESS", "FAILED", "CANCELLED"].contains(&j["jobStatus"].as_str().unwrap_or("")) {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{href} did not end");
}

/// GET `url` with a plain client and read its JSON.
pub async fn json_of(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// Is the PostgreSQL + S3 backend configured? (In CI it must be.)
pub fn s3_or_skip() -> bool {
    if std::env::var("LONGRUN_TEST_POSTGRES_URL").is_ok()
        && std::env::var("LONGRUN_TEST_S3_URL").is_ok()
    {
        return true;
    }
    assert!(
        std::env::var("CI").is_err(),
        "LONGRUN_TEST_POSTGRES_URL and LONGRUN_TEST_S3_URL must be set in CI"
    );
    eprintln!("LONGRUN_TEST_S3_URL is not set: this PostgreSQL + S3 case was skipped");
    false
}

/// Make `async fn NAME(backend: &'static str)` a test case of its own per backend
/// (`NAME::sqlite`, `NAME::postgres`, `NAME::postgres_s3`), so a failure on one database never
/// hides another's result.
#[macro_export]
macro_rules! per_backend {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name("sqlite").await
            }
            #[tokio::test]
            async fn postgres() {
                if $crate::helpers::postgres_or_skip() {
                    super::$name("postgres").await
                }
            }
            #[tokio::test]
            async fn postgres_s3() {
                if $crate::helpers::s3_or_skip() {
                    super::$name("postgres+s3").await
                }
            }
        }
    };
}
