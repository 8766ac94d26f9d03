//! Nothing accepted is lost: the real binary is killed with SIGKILL in the middle of an import
//! and started again; the job ends SUCCESS as attempt 2 and every record is stored once.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

/// The child process, killed and reaped whatever happens to the test.
pub struct Proc(Child);

impl Proc {
    pub fn kill9(&mut self) {
        let _ = self.0.kill(); // SIGKILL
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn start(db: &str, store: &str, port: u16) -> Proc {
    start_with(db, store, port, &[])
}

/// Start the real binary with extra environment settings.
pub fn start_with(db: &str, store: &str, port: u16, env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_longrun"));
    cmd.envs(env.iter().copied());
    let child = cmd
        .arg("serve")
        .env("LONGRUN_BIND", format!("127.0.0.1:{port}"))
        .env("LONGRUN_DATABASE_URL", db)
        .env("LONGRUN_STORE_URL", store)
        .env("LONGRUN_WORKERS", "1")
        .env("LONGRUN_LEASE", "5s")
        .env("LONGRUN_SHUTDOWN_GRACE", "5s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start longrun");
    Proc(child)
}

pub async fn wait_up(http: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if http.get(format!("{base}/")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not come up");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn kill_9_mid_import_then_restart_finishes_exactly_once(b: &'static str) {
    let dir = tempfile::tempdir().unwrap();
    let db = database_for(b, dir.path()).await;
    let store = store_for(b, dir.path());
    let http = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start(&db, &store, port);
    wait_up(&http, &base).await;
    let n = 200_000;
    let r = http
        .post(format!("{base}/api/v1/imports"))
        .header("content-type", "application/json")
        .body(generated(n, "K"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    // Kill it once some, but not all, records are in.
    let mut killed = false;
    for _ in 0..2000 {
        let v: Value = http.get(&loc).send().await.unwrap().json().await.unwrap();
        let amount = v["progress"]["amount"].as_i64().unwrap_or(0);
        if amount > 0 && v["jobStatus"] != "SUCCESS" {
            child.kill9();
            killed = true;
            break;
        }
        assert_ne!(
            v["jobStatus"], "SUCCESS",
            "import finished before it could be killed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(killed);
    let mut child = start(&db, &store, port);
    wait_up(&http, &base).await;
    let mut job = Value::Null;
    for _ in 0..1200 {
        job = http.get(&loc).send().await.unwrap().json().await.unwrap();
        if job["jobStatus"] == "SUCCESS" || job["jobStatus"] == "FAILED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(job["jobStatus"], "SUCCESS", "{job}");
    assert_eq!(job["attempt"], 2, "{job}");
    assert_eq!(job["summary"]["importedRecords"], n);
    // Each record exactly once in the catalog.
    let seen = count_tools(&http, &base).await;
    assert_eq!(seen, n);
    let msgs: Value = http
        .get(format!("{loc}/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        msgs.to_string()
            .contains("expired; queued again as attempt 2"),
        "{msgs}"
    );
    child.kill9();
}
crate::per_backend!(kill_9_mid_import_then_restart_finishes_exactly_once);

#[tokio::test]
async fn sigterm_releases_running_jobs_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/term.db?mode=rwc", dir.path().display());
    let store = store_for("sqlite", dir.path());
    let http = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut proc = start(&db, &store, port);
    wait_up(&http, &base).await;
    let r = http
        .post(format!("{base}/api/v1/imports"))
        .header("content-type", "application/json")
        .body(generated(100_000, "T"))
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    for _ in 0..2000 {
        let v: Value = http.get(&loc).send().await.unwrap().json().await.unwrap();
        if v["progress"]["amount"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = proc.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut status = None;
    for _ in 0..200 {
        if let Some(s) = proc.0.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = status.expect("did not exit within 10 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    // The job was released, not lost: the next process finishes it as a new attempt.
    let _proc = start(&db, &store, port);
    wait_up(&http, &base).await;
    let mut job = Value::Null;
    for _ in 0..600 {
        job = http.get(&loc).send().await.unwrap().json().await.unwrap();
        if job["jobStatus"] == "SUCCESS" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(job["jobStatus"], "SUCCESS", "{job}");
    assert_eq!(job["attempt"], 2);
    let msgs: Value = http
        .get(format!("{loc}/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(msgs.to_string().contains("released at shutdown"), "{msgs}");
}

/// `longrun webhook-secret` makes the signing secret once and keeps it in the database; a
/// configured one wins.
#[test]
fn webhook_secret_is_made_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/secret.db?mode=rwc", dir.path().display());
    let run = |extra: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_longrun"));
        cmd.arg("webhook-secret")
            .env("LONGRUN_DATABASE_URL", &db)
            .env(
                "LONGRUN_STORE_URL",
                format!("file://{}/objects", dir.path().display()),
            )
            .env_remove("LONGRUN_WEBHOOK_SECRET")
            .stderr(Stdio::null());
        if let Some(s) = extra {
            cmd.env("LONGRUN_WEBHOOK_SECRET", s);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let first = run(None);
    assert!(first.starts_with("whsec_"), "{first}");
    assert_eq!(
        longrun::domain::signals::secret_key(&first).unwrap().len(),
        32
    );
    assert_eq!(run(None), first, "kept in the database");
    assert_eq!(run(Some(TEST_SECRET)), TEST_SECRET);
}

/// `kill -9` while a large import with an `Idempotency-Key` is being uploaded, then the same
/// request again on the restarted service: accepted (the dead reservation is taken over once its
/// lease has run out), never the 409 that held the key for a day; then replayed.
async fn idempotency_key_survives_a_crash_mid_upload(backend: &'static str) {
    let dir = tempfile::tempdir().unwrap();
    let db = database_for(backend, dir.path()).await;
    let store = store_for(backend, dir.path());
    let http = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start(&db, &store, port);
    wait_up(&http, &base).await;
    let body = generated(20_000, "I").into_bytes();
    // Half the body, then the upload stalls until the process is killed.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tx.send(Ok(body[..body.len() / 2].to_vec())).await.unwrap();
    let upload = {
        let http = http.clone();
        let url = format!("{base}/api/v1/imports");
        tokio::spawn(async move {
            http.post(url)
                .header("content-type", "application/json")
                .header("idempotency-key", "upload-1")
                .body(reqwest::Body::wrap_stream(tokio_stream_of(rx)))
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill9();
    drop(tx);
    let _ = upload.await;
    let mut child = start(&db, &store, port);
    wait_up(&http, &base).await;
    let send = || {
        http.post(format!("{base}/api/v1/imports"))
            .header("content-type", "application/json")
            .header("idempotency-key", "upload-1")
            .body(body.clone())
            .send()
    };
    let r = send().await.unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let again = send().await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["location"].to_str().unwrap(), loc);
    let list = json_of(&http, &format!("{base}/api/v1/jobs")).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1, "{list}");
    child.kill9();
}

/// A stream of the chunks `rx` receives, ending when its sender is dropped.
fn tokio_stream_of(
    rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
}

#[tokio::test]
async fn idempotency_key_survives_a_crash_mid_upload_sqlite() {
    idempotency_key_survives_a_crash_mid_upload("sqlite").await;
}

#[tokio::test]
async fn idempotency_key_survives_a_crash_mid_upload_postgres() {
    if postgres_or_skip() {
        idempotency_key_survives_a_crash_mid_upload("postgres").await;
    }
}

/// Half-written uploads a crash left in a local object store are removed by the maintenance pass
/// that runs right after start, once they have been untouched for an hour; a fresh one (an
/// upload in flight elsewhere) and the objects themselves stay.
#[tokio::test]
async fn crash_leftovers_in_staging_are_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    let outputs = objects.join("outputs");
    std::fs::create_dir_all(&outputs).unwrap();
    let stale = outputs.join("left-by-a-crash#1");
    std::fs::write(&stale, b"half").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(2 * 3600))
        .unwrap();
    let fresh = outputs.join("in-flight#1");
    std::fs::write(&fresh, b"busy").unwrap();
    let kept = outputs.join("an-object");
    std::fs::write(&kept, b"kept").unwrap();
    let store = format!("file://{}", objects.display());
    let app = TestApp::spawn_with("sqlite", 1, |a| {
        a.store_url = Some(store);
        a.lease = Some("1s".into());
    })
    .await;
    for _ in 0..100 {
        if !stale.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!stale.exists(), "the crash leftover was removed");
    assert!(fresh.exists() && kept.exists());
    app.stop().await;
}

/// `kill -9` while an export writes many parts, then restart: the export ends SUCCESS as
/// attempt 2 with each part exactly once (no part of the interrupted attempt among them), the
/// row counts adding up to the total and every tool in exactly one part.
async fn kill_9_mid_export_lists_each_part_once(backend: &'static str) {
    let dir = tempfile::tempdir().unwrap();
    let db = database_for(backend, dir.path()).await;
    let store = store_for(backend, dir.path());
    let http = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start(&db, &store, port);
    wait_up(&http, &base).await;
    let n: usize = 60_000;
    let part = 250;
    let r = http
        .post(format!("{base}/api/v1/imports"))
        .header("content-type", "application/json")
        .body(generated(n, "X"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let imp = location(&r);
    let until = std::time::Instant::now() + Duration::from_secs(120);
    while json_of(&http, &imp).await["jobStatus"] != "SUCCESS" {
        assert!(std::time::Instant::now() < until, "the import did not end");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = http
        .post(format!("{base}/api/v1/exports"))
        .json(&serde_json::json!({"dataset": "tools", "format": "csv", "partSize": part}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let loc = location(&r);
    // Kill it once some parts, but not all, are written.
    let mut killed = false;
    for _ in 0..4000 {
        let v = json_of(&http, &loc).await;
        let amount = v["progress"]["amount"].as_i64().unwrap_or(0);
        assert_ne!(
            v["jobStatus"], "SUCCESS",
            "the export finished before it could be killed"
        );
        if amount >= 2 * part as i64 {
            child.kill9();
            killed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(killed);
    let mut child = start(&db, &store, port);
    wait_up(&http, &base).await;
    let until = std::time::Instant::now() + Duration::from_secs(120);
    let job = loop {
        let job = json_of(&http, &loc).await;
        if job["jobStatus"] == "SUCCESS" || job["jobStatus"] == "FAILED" {
            break job;
        }
        assert!(std::time::Instant::now() < until, "{job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job["jobStatus"], "SUCCESS", "{job}");
    assert_eq!(job["attempt"], 2, "{job}");
    let parts = n.div_ceil(part);
    assert_eq!(job["summary"]["parts"], parts, "{job}");
    let files: Vec<&Value> = job["links"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["rel"] == "file")
        .collect();
    assert_eq!(files.len(), parts, "each part exactly once");
    let mut names = std::collections::BTreeSet::new();
    let mut rows = 0;
    let mut ids = std::collections::HashSet::new();
    for f in &files {
        let href = f["href"].as_str().unwrap();
        let body = http.get(href).send().await.unwrap().text().await.unwrap();
        let lines: Vec<&str> = body.lines().skip(1).collect();
        rows += lines.len();
        for l in lines {
            let id = l.split(',').next().unwrap().to_string();
            assert!(ids.insert(id), "a tool in two parts");
        }
        names.insert(href.to_string());
    }
    assert_eq!(names.len(), parts);
    assert_eq!(rows, n, "the rows of the parts add up to the total");
    child.kill9();
}

#[tokio::test]
async fn kill_9_mid_export_lists_each_part_once_sqlite() {
    kill_9_mid_export_lists_each_part_once("sqlite").await;
}

#[tokio::test]
async fn kill_9_mid_export_lists_each_part_once_postgres() {
    if postgres_or_skip() {
        kill_9_mid_export_lists_each_part_once("postgres").await;
    }
}
