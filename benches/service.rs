//! The service benchmark: starts the real `longrun` binary on loopback and measures it, on SQLite
//! and on PostgreSQL, beside a bare poem server answering a fixed JSON document.
//!
//! ```sh
//! cargo bench --bench service                    # full sizes
//! LONGRUN_BENCH_IMPORT=100000 LONGRUN_BENCH_JOBS=100000 cargo bench --bench service   # quicker
//! ```
//!
//! Settings (environment): `LONGRUN_BENCH_SECONDS` (length of each load, default 5),
//! `LONGRUN_BENCH_IMPORT` (records imported, default 1,000,000), `LONGRUN_BENCH_JOBS` (jobs stored
//! for the audit list, default 1,000,000), `LONGRUN_BENCH_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`; the PostgreSQL half is skipped when it cannot be
//! reached), `LONGRUN_BENCH_RUNS` (runs of each measurement, default 3; the table shows the median
//! and the min–max), `LONGRUN_BENCH_ONLY` (a comma list of sections: submissions, polls, noop,
//! audit, stats, import, compare), `LONGRUN_BENCH_BACKENDS` (sqlite, postgres), `LONGRUN_BENCH_BIN` (another
//! build of `longrun` to measure, such as one with frame pointers for `perf`). Prints one markdown
//! table per backend.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database};
use serde_json::{json, Value};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real server in its own process.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    async fn start(db: &str, dir: &std::path::Path) -> Server {
        Server::start_with(db, dir, &[]).await
    }

    /// Start with settings of its own besides the inherited ones.
    async fn start_with(db: &str, dir: &std::path::Path, envs: &[(&str, &str)]) -> Server {
        let port = free_port();
        // Another build of the binary may be measured instead (one with frame pointers, for perf).
        let bin = std::env::var("LONGRUN_BENCH_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_longrun").to_string());
        let child = Command::new(bin)
            .arg("serve")
            .env("LONGRUN_BIND", format!("127.0.0.1:{port}"))
            .env("LONGRUN_DATABASE_URL", db)
            .env(
                "LONGRUN_STORE_URL",
                format!("file://{}/objects", dir.display()),
            )
            .env("RUST_LOG", "warn")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start longrun");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..400 {
            if http.get(format!("{base}/healthz")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Server { child, base }
    }

    /// CPU time the server process has used so far (user + system), in seconds.
    fn cpu_secs(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which is in parentheses): utime is the 12th, stime 13th.
        let rest = stat.rsplit_once(')').map_or("", |r| r.1);
        let f: Vec<f64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0.0))
            .collect();
        let ticks = 100.0; // USER_HZ on Linux
        (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / ticks
    }

    /// Peak resident memory of the server process, in MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 keep-alive client for load generation: the request is written from bytes
/// built once, the answer's head parsed with `httparse` and its body read by `Content-Length` (or
/// chunked). On two cores shared by the load and the server, a full client's per-request work
/// (pooling, header maps, futures) is CPU taken from the server being measured; this one costs a
/// few microseconds a request, as wrk does.
struct Conn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

/// One answer: its status and the value of its `Location` header, if any.
struct Answer {
    status: u16,
    location: Option<String>,
}

impl Conn {
    async fn open(addr: &str) -> Conn {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    /// Read what has arrived into the buffer; the server must not close a kept-alive connection.
    async fn read_more(&mut self) {
        use tokio::io::AsyncReadExt;
        if self.stream.read_buf(&mut self.buf).await.expect("read") == 0 {
            panic!("the server closed the connection");
        }
    }

    /// Send `request` (a whole HTTP/1.1 request) and read the whole answer.
    async fn send(&mut self, request: &[u8]) -> Answer {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(request).await.expect("write");
        self.buf.clear();
        // The head.
        let (status, location, head_len, body) = loop {
            self.read_more().await;
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut res = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(n) = res.parse(&self.buf).expect("an HTTP answer") {
                let mut body = Body::Length(0);
                let mut location = None;
                for h in res.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        body = Body::Length(std::str::from_utf8(h.value).unwrap().parse().unwrap());
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        body = Body::Chunked;
                    } else if h.name.eq_ignore_ascii_case("location") {
                        location = Some(String::from_utf8_lossy(h.value).into_owned());
                    }
                }
                break (res.code.unwrap(), location, n, body);
            }
        };
        // The body.
        match body {
            Body::Length(len) => {
                while self.buf.len() < head_len + len {
                    self.read_more().await;
                }
            }
            Body::Chunked => {
                let mut at = head_len;
                loop {
                    // A chunk's size line, then its data and CRLF; a size of 0 ends the body (the
                    // service sends no trailers).
                    let line_end = loop {
                        if let Some(i) = self.buf[at..].windows(2).position(|w| w == b"\r\n") {
                            break at + i;
                        }
                        self.read_more().await;
                    };
                    let size_text = std::str::from_utf8(&self.buf[at..line_end]).unwrap();
                    let size =
                        usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                            .expect("a chunk size");
                    let end = line_end + 2 + size + 2;
                    while self.buf.len() < end {
                        self.read_more().await;
                    }
                    at = end;
                    if size == 0 {
                        break;
                    }
                }
            }
        }
        Answer { status, location }
    }
}

enum Body {
    Length(usize),
    Chunked,
}

/// The host:port and path of an `http://` URL.
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    }
}

/// A GET request's bytes.
fn get_request(url: &str) -> (String, Vec<u8>) {
    let (host, path) = split_url(url);
    let req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\naccept: application/json\r\n\r\n");
    (host, req.into_bytes())
}

/// A POST request's bytes, with a JSON body and extra header lines.
fn post_request(url: &str, body: &str, extra: &str) -> (String, Vec<u8>) {
    let (host, path) = split_url(url);
    let req = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\naccept: application/json\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n{body}",
        body.len()
    );
    (host, req.into_bytes())
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i] as f64 / 1000.0
}

/// `conns` clients GET `url` for `secs`: requests per second, p50 and p99 in ms.
async fn poll_load(url: &str, conns: usize, secs: u64) -> (f64, f64, f64) {
    let (host, req) = get_request(url);
    let req = Arc::new(req);
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (host, req, stop) = (host.clone(), req.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&host).await;
            let mut lat = Vec::with_capacity(1 << 16);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let a = conn.send(&req).await;
                assert_eq!(a.status, 200);
                lat.push(t.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let n = all.len() as f64;
    (n / secs as f64, pct(&mut all, 0.5), pct(&mut all, 0.99))
}

/// 16 clients submit no-op jobs for `secs`: durable submissions per second.
async fn submissions(base: &str, secs: u64) -> f64 {
    let (host, req) = post_request(
        &format!("{base}/api/v1/jobs"),
        r#"{"operation":"noop"}"#,
        "",
    );
    let req = Arc::new(req);
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (host, req, stop) = (host.clone(), req.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&host).await;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let a = conn.send(&req).await;
                assert_eq!(a.status, 201);
                assert!(a.location.is_some());
                n += 1;
            }
            n
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut n = 0;
    for t in tasks {
        n += t.await.unwrap();
    }
    n as f64 / secs as f64
}

/// A no-op job from submission to SUCCESS as a `Prefer: wait` client sees it: p50 and p99 in ms.
async fn noop_latency(base: &str, n: usize) -> (f64, f64) {
    let (host, req) = post_request(
        &format!("{base}/api/v1/jobs"),
        r#"{"operation":"noop"}"#,
        "prefer: wait=10\r\n",
    );
    let mut conn = Conn::open(&host).await;
    let mut lat = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let a = conn.send(&req).await;
        assert_eq!(a.status, 200, "the no-op job ended within the wait");
        lat.push(t.elapsed().as_micros() as u64);
    }
    (pct(&mut lat, 0.5), pct(&mut lat, 0.99))
}

/// Wait for a job to end, with long-polls.
async fn wait_end(http: &reqwest::Client, href: &str) -> Value {
    loop {
        let v: Value = http
            .get(href)
            .header("prefer", "wait=30")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !v["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["rel"] == "monitor")
        {
            return v;
        }
    }
}

fn import_body(n: u64) -> String {
    let mut s = String::with_capacity(n as usize * 190);
    s.push_str("{\"data\":[");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "{{\"tool_id\":\"B{i}\",\"tool_name\":\"Tool {i}\",\"category\":\"Bench\",\"description\":\"A tool made for the benchmark, number {i}.\",\"features\":[\"one\",\"two\"],\"url\":\"https://example.com/tools/{i}\"}}"
        ));
    }
    s.push_str("]}");
    s
}

/// Import `n` records: seconds from the first byte sent to SUCCESS.
async fn import(base: &str, n: u64) -> f64 {
    let http = reqwest::Client::new();
    let body = import_body(n);
    let t = Instant::now();
    let r = http
        .post(format!("{base}/api/v1/imports"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let done = wait_end(&http, &loc).await;
    assert_eq!(done["jobStatus"], "SUCCESS", "{done}");
    t.elapsed().as_secs_f64()
}

/// About 10 MB documents with about 1 % of the items changed.
fn docs(xml: bool, changed: bool) -> String {
    let mut s = String::with_capacity(11_000_000);
    s.push_str(if xml { "<catalog>" } else { "{\"items\":[" });
    for i in 0..70_000u64 {
        let price = if changed && i % 97 == 0 { i + 1 } else { i };
        if xml {
            s.push_str(&format!(
                "<item id=\"{i}\" sku=\"S{i:06}\" price=\"{price}\"><name>Item {i}</name><description>A description of item {i} for the benchmark.</description></item>\n"
            ));
        } else {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!(
                "{{\"id\":{i},\"sku\":\"S{i:06}\",\"price\":{price},\"name\":\"Item {i}\",\"description\":\"A description of item {i} for the benchmark.\"}}\n"
            ));
        }
    }
    s.push_str(if xml { "</catalog>" } else { "]}" });
    s
}

/// A synchronous comparison over HTTP: seconds until the result has arrived.
async fn compare(base: &str, xml: bool) -> f64 {
    let http = reqwest::Client::new();
    let body = json!({"inputA": {"content": docs(xml, false)}, "inputB": {"content": docs(xml, true)},
                      "options": if xml { json!({"keyAttributes": ["id"]}) } else { json!({"keyFields": ["id"]}) }});
    let t = Instant::now();
    let r = http
        .post(format!("{base}/api/v1/comparisons"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = r.bytes().await.unwrap();
    t.elapsed().as_secs_f64()
}

/// Store `n` finished jobs directly (one statement), 10 % of them FAILED.
async fn seed_jobs(db: &str, n: u64) {
    let conn = Database::connect(db).await.unwrap();
    let (gen, id) = if db.starts_with("postgres") {
        (
            format!("FROM generate_series(1, {n}) AS g(i)"),
            "'00000000-0000-7000-8000-' || lpad(i::text, 12, '0')",
        )
    } else {
        (
            format!("FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {n}) SELECT i FROM c)"),
            "'00000000-0000-7000-8000-' || printf('%012d', i)",
        )
    };
    let sql = format!(
        "INSERT INTO jobs (id, reference, operation, status, created_at, started_at, finished_at, updated_at, correlation_id, input, total_stages, current_stage, owner) \
         SELECT {id}, 'R' || i, 'noop', CASE WHEN i % 10 = 0 THEN 'FAILED' ELSE 'SUCCESS' END, \
         1700000000000 + i, 1700000000000 + i, 1700000000000 + i, 1700000000000 + i, 'c' || i, '{{}}', 1, 1, 'default' {gen}"
    );
    conn.execute_unprepared(&sql).await.unwrap();
    conn.close().await.ok();
}

/// What a busy service keeps for `GET /api/v1/stats` besides its jobs: 10,000 queued jobs of four
/// operations and three tenants, and a full 48 hours of ends (per minute for the last two hours,
/// per hour before) of each in each end status, with run times in 16 buckets per ten minutes.
async fn seed_stats(db: &str) {
    let conn = Database::connect(db).await.unwrap();
    let ops = ["noop", "import", "export", "compare"];
    let tenants = ["default", "blue", "green"];
    let mut queued = Vec::new();
    for i in 0..10_000u64 {
        queued.push(format!(
            "('00000000-0000-7000-9000-{i:012}', 'Q{i}', '{}', 'QUEUED', {t}, {t}, 'q{i}', '{{}}', 1, 0, '{}')",
            ops[(i % 4) as usize],
            tenants[(i % 3) as usize],
            t = 1_800_000_000_000u64 + i,
        ));
    }
    for chunk in queued.chunks(1000) {
        conn.execute_unprepared(&format!(
            "INSERT INTO jobs (id, reference, operation, status, created_at, updated_at, correlation_id, input, total_stages, current_stage, owner) VALUES {}",
            chunk.join(", ")
        ))
        .await
        .unwrap();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // As the fold keeps them: per minute (two hours) and per hour (49 hours), the ends by tenant
    // and status; per ten minutes (two hours), the run times of SUCCESS and FAILED by
    // tenant, operation and each of 16 run-time buckets.
    let mut rows = Vec::new();
    for (span, len, n) in [("m", 60_000i64, 120i64), ("h", 3_600_000, 49)] {
        let last = now - now % len;
        for k in 0..n {
            for tenant in tenants {
                for status in ["SUCCESS", "FAILED", "CANCELLED"] {
                    rows.push(format!(
                        "('{span}', {}, '{tenant}', '', '{status}', -1, {})",
                        last - k * len,
                        1 + k % 7
                    ));
                }
            }
        }
    }
    let last = now - now % 600_000;
    for k in 0..12 {
        for op in ops {
            for tenant in tenants {
                for bucket in 20..36 {
                    rows.push(format!(
                        "('r', {}, '{tenant}', '{op}', '', {bucket}, {})",
                        last - k * 600_000,
                        1 + (k + bucket) % 7
                    ));
                }
            }
        }
    }
    for chunk in rows.chunks(1000) {
        conn.execute_unprepared(&format!(
            "INSERT INTO job_end_buckets (span, start, owner, operation, status, bucket, n) VALUES {}",
            chunk.join(", ")
        ))
        .await
        .unwrap();
    }
    conn.close().await.ok();
}

/// Seconds until the counts the database appended are folded (none left to add at a read).
async fn wait_folded(db: &str) -> f64 {
    let conn = Database::connect(db).await.unwrap();
    let t = Instant::now();
    loop {
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(
                conn.get_database_backend(),
                "SELECT COUNT(*) AS n FROM job_count_deltas",
            ))
            .await
            .unwrap()
            .unwrap();
        if row.try_get::<i64>("", "n").unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    conn.close().await.ok();
    t.elapsed().as_secs_f64()
}

/// The audit list (one filter, limit 100), 8 clients: p50 and p99 in ms.
/// Set the input of the first 1,000 FAILED jobs (the ones the audit list pages through).
async fn big_inputs(db: &str, input: &str) {
    let conn = Database::connect(db).await.unwrap();
    let sql = format!(
        "UPDATE jobs SET input = '{input}', input_blob = 'inputs/bench.json' \
         WHERE status = 'FAILED' AND created_at <= 1700000010000"
    );
    conn.execute_unprepared(&sql).await.unwrap();
    conn.close().await.ok();
}

async fn audit(base: &str, secs: u64) -> (f64, f64, f64) {
    poll_load(
        &format!("{base}/api/v1/jobs?status=FAILED&limit=100"),
        8,
        secs,
    )
    .await
}

/// A bare poem server answering a fixed job document from memory, in a process of its own (this
/// benchmark run again with `LONGRUN_BENCH_BARE_PORT` set), so that it meets the load as the real
/// server does: from another process, on the same two cores.
fn bare_poem() -> Server {
    let port = free_port();
    let child = Command::new(std::env::current_exe().unwrap())
        .env("LONGRUN_BENCH_BARE_PORT", port.to_string())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the bare poem server");
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Server {
        child,
        base: format!("http://127.0.0.1:{port}/job"),
    }
}

/// The bare poem server itself, on `port`, until killed.
async fn serve_bare_poem(port: u16) {
    use poem::{get, handler, Route};
    #[handler]
    fn job() -> poem::Response {
        poem::Response::builder()
            .content_type("application/json")
            .header("etag", "\"v1\"")
            .body(r#"{"jobId":"01a2084b-baf7-706d-af71-8aa0f5bb3072","operation":"noop","jobStatus":"SUCCESS","totalNumberOfStages":1,"currentStage":1,"progress":{"amount":0},"createdTime":"2026-11-23T12:00:00Z","correlationId":"c","attempt":1,"links":[{"rel":"self","href":"http://127.0.0.1/api/v1/jobs/01a2084b-baf7-706d-af71-8aa0f5bb3072","method":"GET"}]}"#)
    }
    let _ = poem::Server::new(poem::listener::TcpListener::bind(format!(
        "127.0.0.1:{port}"
    )))
    .run(Route::new().at("/job", get(job)))
    .await;
}

async fn fresh_postgres(admin: &str) -> Option<String> {
    let conn = tokio::time::timeout(Duration::from_secs(3), Database::connect(admin))
        .await
        .ok()?
        .ok()?;
    let name = format!("lr_bench_{}", uuid::Uuid::now_v7().simple());
    conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .ok()?;
    conn.close().await.ok();
    let mut url = url::Url::parse(admin).ok()?;
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

/// The median and the spread (min–max) of some figures.
fn spread(v: &[f64], digits: usize) -> String {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let med = v[v.len() / 2];
    if v.len() == 1 {
        format!("{med:.digits$}")
    } else {
        format!(
            "{med:.digits$} ({:.digits$}–{:.digits$})",
            v[0],
            v[v.len() - 1]
        )
    }
}

/// Whether the section `name` runs (`LONGRUN_BENCH_ONLY`, a comma list; all by default).
fn wanted(name: &str) -> bool {
    std::env::var("LONGRUN_BENCH_ONLY")
        .map(|v| v.split(',').any(|s| s.trim() == name))
        .unwrap_or(true)
}

async fn run_backend(
    name: &str,
    db: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = String>>>,
    bare: &str,
) {
    let secs = env_num("LONGRUN_BENCH_SECONDS", 5);
    let runs = env_num("LONGRUN_BENCH_RUNS", 3).max(1) as usize;
    let n_import = env_num("LONGRUN_BENCH_IMPORT", 1_000_000);
    let n_jobs = env_num("LONGRUN_BENCH_JOBS", 1_000_000);
    println!("\n### {name} (median of {runs} runs, min–max in brackets)\n");
    println!("| measurement | figure |\n|---|---|");

    if wanted("submissions") || wanted("polls") || wanted("noop") {
        let (mut subs, mut polls, mut bares, mut share) = (vec![], vec![], vec![], vec![]);
        let (mut p50s, mut p99s, mut bp50s, mut bp99s) = (vec![], vec![], vec![], vec![]);
        let (mut l50s, mut l99s, mut sub_cpu) = (vec![], vec![], vec![]);
        for _ in 0..runs {
            // Each section on a fresh server, so that no backlog of an earlier one (the no-op
            // jobs submitted by the submission load) runs beside it.
            if wanted("submissions") {
                let dir = tempfile::tempdir().unwrap();
                let server = Server::start(&db().await, dir.path()).await;
                let cpu = server.cpu_secs();
                let rate = submissions(&server.base, secs).await;
                // Server CPU per accepted job, run included (the no-op jobs run meanwhile).
                sub_cpu.push((server.cpu_secs() - cpu) * 1e6 / (rate * secs as f64).max(1.0));
                subs.push(rate);
            }
            if wanted("polls") {
                let dir = tempfile::tempdir().unwrap();
                let server = Server::start(&db().await, dir.path()).await;
                let http = reqwest::Client::new();
                let r = http
                    .post(format!("{}/api/v1/jobs", server.base))
                    .header("prefer", "wait=30")
                    .json(&json!({"operation": "noop"}))
                    .send()
                    .await
                    .unwrap();
                let job_href = r.headers()["location"].to_str().unwrap().to_string();
                let (rps, p50, p99) = poll_load(&job_href, 64, secs).await;
                let (brps, bp50, bp99) = poll_load(bare, 64, secs).await;
                polls.push(rps);
                p50s.push(p50);
                p99s.push(p99);
                bares.push(brps);
                bp50s.push(bp50);
                bp99s.push(bp99);
                share.push(100.0 * rps / brps.max(1.0));
            }
            if wanted("noop") {
                let dir = tempfile::tempdir().unwrap();
                let server = Server::start(&db().await, dir.path()).await;
                let (l50, l99) = noop_latency(&server.base, 300).await;
                l50s.push(l50);
                l99s.push(l99);
            }
        }
        if !subs.is_empty() {
            println!(
                "| durable submissions, 16 clients | {} /s; server CPU {} µs each |",
                spread(&subs, 0),
                spread(&sub_cpu, 0)
            );
        }
        if !polls.is_empty() {
            println!(
                "| status polls, 64 connections | {} /s, p50 {} ms, p99 {} ms |",
                spread(&polls, 0),
                spread(&p50s, 2),
                spread(&p99s, 2)
            );
            println!(
                "| the same against a bare poem server | {} /s, p50 {} ms, p99 {} ms |",
                spread(&bares, 0),
                spread(&bp50s, 2),
                spread(&bp99s, 2)
            );
            println!(
                "| polls as a share of bare poem | {} % |",
                spread(&share, 0)
            );
        }
        if !l50s.is_empty() {
            println!(
                "| no-op job, submit to SUCCESS (`Prefer: wait`) | p50 {} ms, p99 {} ms |",
                spread(&l50s, 2),
                spread(&l99s, 2)
            );
        }
    }

    if wanted("audit") {
        let dir2 = tempfile::tempdir().unwrap();
        let url = db().await;
        // A first start makes the schema; the jobs are stored before the measured server starts.
        drop(Server::start(&url, dir2.path()).await);
        let t = Instant::now();
        seed_jobs(&url, n_jobs).await;
        let seeded = t.elapsed().as_secs_f64();
        let server = Server::start(&url, dir2.path()).await;
        let (mut r, mut p50, mut p99) = (vec![], vec![], vec![]);
        for _ in 0..runs {
            let (a, b, c) = audit(&server.base, secs).await;
            r.push(a);
            p50.push(b);
            p99.push(c);
        }
        println!(
            "| audit list (status filter, limit 100), {n_jobs} jobs stored, 8 clients | {} /s, p50 {} ms, p99 {} ms (seeded in {seeded:.1} s) |",
            spread(&r, 0),
            spread(&p50, 2),
            spread(&p99, 2)
        );
        // The same after the listed jobs were submitted with a maximal input (64 MiB: the row
        // keeps a marker, the input is in the object store), then with the largest input the
        // table keeps (2 KiB, the worst case for a page).
        let marker = "{\"longrun:storedInput\":{\"bytes\":67108864}}".to_string();
        let inline = format!("{{\"text\":\"{}\"}}", "x".repeat(2 * 1024 - 12));
        for (what, input) in [
            ("64 MiB inputs (kept in the object store)", marker),
            ("2 KiB inputs (the largest kept in the table)", inline),
        ] {
            big_inputs(&url, &input).await;
            let (mut r, mut p50, mut p99) = (vec![], vec![], vec![]);
            for _ in 0..runs {
                let (a, b, c) = audit(&server.base, secs).await;
                r.push(a);
                p50.push(b);
                p99.push(c);
            }
            println!(
                "| the same, the first 1,000 FAILED jobs submitted with {what} | {} /s, p50 {} ms, p99 {} ms |",
                spread(&r, 0),
                spread(&p50, 2),
                spread(&p99, 2)
            );
        }
        drop(server);
    }

    if wanted("stats") {
        let dir2 = tempfile::tempdir().unwrap();
        let url = db().await;
        drop(Server::start(&url, dir2.path()).await);
        let t = Instant::now();
        seed_jobs(&url, n_jobs).await;
        seed_stats(&url).await;
        let seeded = t.elapsed().as_secs_f64();
        // An API-only instance, so the queued jobs stay queued.
        let server = Server::start_with(&url, dir2.path(), &[("LONGRUN_ROLE", "api")]).await;
        // The first read adds every count the seeding appended and no instance folded yet.
        let http = reqwest::Client::new();
        let t = Instant::now();
        let first = http
            .get(format!("{}/api/v1/stats", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(first.status(), 200);
        let doc: Value = first.json().await.unwrap();
        let cold = t.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(doc["total"].as_u64().unwrap(), n_jobs + 10_000, "{doc}");
        let folded = wait_folded(&url).await;
        for (what, path) in [
            ("every tenant", "/api/v1/stats"),
            ("one tenant", "/api/v1/stats?tenant=blue"),
        ] {
            let (mut r, mut p50, mut p99) = (vec![], vec![], vec![]);
            for _ in 0..runs {
                let (a, b, c) = poll_load(&format!("{}{path}", server.base), 8, secs).await;
                r.push(a);
                p50.push(b);
                p99.push(c);
            }
            println!(
                "| `GET /api/v1/stats` ({what}), {n_jobs} ended and 10,000 queued jobs stored, 48 h of ends, 8 clients | {} /s, p50 {} ms, p99 {} ms (first read, nothing folded yet: {cold:.0} ms; folded in {folded:.1} s; seeded in {seeded:.1} s) |",
                spread(&r, 0),
                spread(&p50, 2),
                spread(&p99, 2)
            );
        }
        // The same while the collection changes: a job submitted every 20 ms, so a read is
        // shared at most until the next change (the readers that arrive together still share).
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (stop, http, base) = (stop.clone(), http.clone(), server.base.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let r = http
                        .post(format!("{base}/api/v1/jobs"))
                        .json(&json!({"operation": "noop"}))
                        .send()
                        .await;
                    if r.map(|r| r.status().as_u16() == 201).unwrap_or(false) {
                        n += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                n
            })
        };
        let started = Instant::now();
        let (mut r, mut p50, mut p99) = (vec![], vec![], vec![]);
        for _ in 0..runs {
            let (a, b, c) = poll_load(&format!("{}/api/v1/stats", server.base), 8, secs).await;
            r.push(a);
            p50.push(b);
            p99.push(c);
        }
        stop.store(true, Ordering::Relaxed);
        let written = writer.await.unwrap_or(0);
        let rate = written as f64 / started.elapsed().as_secs_f64();
        println!(
            "| `GET /api/v1/stats` (every tenant), the same while {rate:.0} jobs/s are submitted | {} /s, p50 {} ms, p99 {} ms |",
            spread(&r, 0),
            spread(&p50, 2),
            spread(&p99, 2)
        );
        drop(server);
    }

    if wanted("import") {
        let (mut took, mut rss) = (vec![], vec![]);
        for _ in 0..runs {
            let dir3 = tempfile::tempdir().unwrap();
            let server = Server::start(&db().await, dir3.path()).await;
            took.push(import(&server.base, n_import).await);
            rss.push(server.peak_rss_mib());
        }
        println!(
            "| import of {n_import} tool records | {} s, server peak RSS {} MiB |",
            spread(&took, 1),
            spread(&rss, 0)
        );
    }

    if wanted("bodies") {
        // Peak RSS of a fresh server that took one body: at the size limit in the form the
        // route accepts (a large document or string), and hostile ones (many small values).
        let mib = 1024 * 1024;
        let text = |n: usize| "x".repeat(n);
        let cases: Vec<(&str, &str, String, u16)> = vec![
            (
                "`/api/v1/jobs`, a 63 MiB string input",
                "/api/v1/jobs",
                json!({"operation": "noop", "input": {"text": text(63 * mib)}}).to_string(),
                201,
            ),
            (
                "`/api/v1/comparisons`, two 32 MiB XML documents inline",
                "/api/v1/comparisons",
                json!({"inputA": {"content": format!("<a>{}</a>", text(32 * mib))},
                       "inputB": {"content": format!("<a>{}</a>", text(32 * mib))},
                       "async": {}})
                .to_string(),
                201,
            ),
            (
                "`/api/v1/jobs`, 99,000 small values (under `LONGRUN_MAX_BODY_VALUES`)",
                "/api/v1/jobs",
                format!("{{\"operation\":\"noop\",\"input\":[{}0]}}", "0,".repeat(98_990)),
                201,
            ),
            (
                "`/api/v1/jobs`, 16 MiB of zeros (8 M values; refused)",
                "/api/v1/jobs",
                format!("{{\"operation\":\"noop\",\"input\":[{}0]}}", "0,".repeat(8 * mib - 1)),
                413,
            ),
            (
                "`/api/v1/comparisons`, 16 MiB of zeros beside the inputs (refused)",
                "/api/v1/comparisons",
                format!(
                    "{{\"inputA\":{{\"content\":\"<a/>\"}},\"inputB\":{{\"content\":\"<a/>\"}},\"x\":[{}0]}}",
                    "0,".repeat(8 * mib - 1)
                ),
                413,
            ),
        ];
        let http = reqwest::Client::new();
        for (what, path, body, want) in cases {
            let mut rss = vec![];
            let mut base_rss = vec![];
            for _ in 0..runs {
                let dir5 = tempfile::tempdir().unwrap();
                let server = Server::start(&db().await, dir5.path()).await;
                base_rss.push(server.peak_rss_mib());
                let r = http
                    .post(format!("{}{path}", server.base))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), want, "{what}");
                if want == 201 {
                    let href = r.headers()["location"].to_str().unwrap().to_string();
                    wait_end(&http, &href).await;
                }
                rss.push(server.peak_rss_mib());
            }
            println!(
                "| body of {:.1} MiB: {what} → {want} | server peak RSS {} MiB (idle {} MiB) |",
                body.len() as f64 / mib as f64,
                spread(&rss, 0),
                spread(&base_rss, 0)
            );
        }
    }

    if wanted("compare") {
        for xml in [true, false] {
            let (mut took, mut rss) = (vec![], vec![]);
            for _ in 0..runs {
                let dir4 = tempfile::tempdir().unwrap();
                let server = Server::start(&db().await, dir4.path()).await;
                took.push(compare(&server.base, xml).await);
                rss.push(server.peak_rss_mib());
            }
            println!(
                "| comparison of two ~10 MB {} documents (sync, over HTTP) | {} s, server peak RSS {} MiB |",
                if xml { "XML" } else { "JSON" },
                spread(&took, 2),
                spread(&rss, 0)
            );
        }
    }
}

/// Whether the backend `name` runs (`LONGRUN_BENCH_BACKENDS`: sqlite, postgres; both by default).
fn backend_wanted(name: &str) -> bool {
    std::env::var("LONGRUN_BENCH_BACKENDS")
        .map(|v| v.split(',').any(|s| s.trim() == name))
        .unwrap_or(true)
}

#[tokio::main]
async fn main() {
    if let Some(port) = std::env::var("LONGRUN_BENCH_BARE_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
    {
        return serve_bare_poem(port).await;
    }
    // Cargo runs a bench target with `--bench`; nothing else is taken from the command line.
    let bare_server = bare_poem();
    let bare = bare_server.base.clone();
    let sqlite_dir = tempfile::tempdir().unwrap();
    let base = sqlite_dir.path().to_path_buf();
    if backend_wanted("sqlite") {
        run_backend(
            "SQLite + local directory",
            move || {
                let p = base.join(format!("{}.db", uuid::Uuid::now_v7().simple()));
                Box::pin(async move { format!("sqlite://{}?mode=rwc", p.display()) })
            },
            &bare,
        )
        .await;
    }
    if !backend_wanted("postgres") {
        return;
    }
    let admin = std::env::var("LONGRUN_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    if fresh_postgres(&admin).await.is_none() {
        println!("\nPostgreSQL at {admin} cannot be reached: its half was skipped.");
        return;
    }
    run_backend(
        "PostgreSQL + local directory",
        move || {
            let admin = admin.clone();
            Box::pin(async move { fresh_postgres(&admin).await.unwrap() })
        },
        &bare,
    )
    .await;
}
