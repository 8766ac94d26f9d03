//! The `longrun` command-line client, run as the built binary against a live service: exit codes,
//! the three outputs, following links from an id or a URL, downloads, and the plain progress
//! lines it prints when standard error is not a terminal.

use std::process::Stdio;

use longrun::config::Role;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::crash::free_port;
use crate::helpers::{link, location, TestApp};

/// What a run of the binary gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

/// Run `longrun ARGS` (with `stdin` as its input); nothing is taken from the environment.
async fn cli(args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_longrun"));
    cmd.args(args)
        .env_remove("LONGRUN_SERVER")
        .env_remove("LONGRUN_KEY")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("the longrun binary runs");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).await.unwrap();
        drop(pipe);
    }
    let out = child.wait_with_output().await.unwrap();
    Run {
        code: out.status.code().expect("an exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn records(n: usize, bad_every: usize) -> Value {
    let data: Vec<Value> = (0..n)
        .map(|i| {
            let url = if bad_every > 0 && i % bad_every == 0 {
                "not a url".to_string()
            } else {
                format!("https://example.com/{i}")
            };
            json!({"tool_id": format!("C{i}"), "tool_name": format!("Tool {i}"),
                   "category": "Test", "url": url})
        })
        .collect();
    json!({ "data": data })
}

/// submit import --wait: exit 0, the final state on stdout in each output, the progress lines
/// on stderr ending with the final state; NDJSON from standard input.
#[tokio::test]
async fn submit_import_waits_and_prints_the_end_state() {
    let app = TestApp::spawn("sqlite", 2).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tools.json");
    std::fs::write(&file, records(3, 3).to_string()).unwrap();
    let f = file.to_str().unwrap();

    let r = cli(
        &["submit", "import", f, "--wait", "--server", &app.base],
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("status      SUCCESS"), "{}", r.stdout);
    assert!(r.stdout.contains("\"failedRecords\":1"), "{}", r.stdout);
    let last = r.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("SUCCESS"), "{}", r.stderr);
    assert!(last.contains("stage 2/2"), "{}", r.stderr);
    assert!(last.contains("100 %"), "{}", r.stderr);

    let r = cli(
        &[
            "submit", "import", f, "--wait", "--output", "json", "--server", &app.base,
        ],
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let job = r.json();
    assert_eq!(job["jobStatus"], "SUCCESS");
    assert_eq!(job["summary"]["importedRecords"], 2);
    assert!(link(&job, "file").is_some());

    let r = cli(
        &[
            "submit", "import", f, "--wait", "--output", "xml", "--server", &app.base,
        ],
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("<"), "{}", r.stdout);
    assert!(
        r.stdout.contains("<jobStatus>SUCCESS</jobStatus>"),
        "{}",
        r.stdout
    );

    // Without --wait: the submitted job, exit 0; NDJSON read from standard input.
    let ndjson = "{\"tool_id\":\"N1\",\"tool_name\":\"One\",\"category\":\"C\"}\n\
                  {\"tool_id\":\"N2\",\"tool_name\":\"Two\",\"category\":\"C\"}\n";
    let r = cli(
        &[
            "submit", "import", "-", "--output", "json", "--server", &app.base,
        ],
        Some(ndjson.as_bytes()),
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let job = r.json();
    let done = app.wait_end(&link(&job, "self").unwrap()).await;
    assert_eq!(done["jobStatus"], "SUCCESS", "{done}");
    assert_eq!(done["summary"]["totalRecords"], 2);
    app.stop().await;
}

/// A job that FAILED is exit 1 (a comparison whose input cannot be fetched, and `jobs watch` of
/// an operation that fails); a body the service refuses is a problem: exit 3 with its detail.
#[tokio::test]
async fn failed_jobs_exit_1_and_refused_bodies_exit_3() {
    let app = TestApp::spawn_with("sqlite", 2, |a| a.callback_allow_private = Some(true)).await;
    let closed = free_port();
    let a = format!("http://127.0.0.1:{closed}/a.xml");
    let b = format!("http://127.0.0.1:{closed}/b.xml");
    let r = cli(
        &["submit", "compare", &a, &b, "--wait", "--server", &app.base],
        None,
    )
    .await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("status      FAILED"), "{}", r.stdout);
    assert!(
        r.stderr.lines().last().unwrap().starts_with("FAILED"),
        "{}",
        r.stderr
    );

    let job = app.sleepy(json!({"ms": 5, "fail": true})).await;
    let r = cli(&["jobs", "watch", &job, "--server", &app.base], None).await;
    assert_eq!(r.code, 1, "{}", r.stderr);

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"data": [{"tool_id": "X1", "#).unwrap();
    let r = cli(
        &[
            "submit",
            "import",
            bad.to_str().unwrap(),
            "--wait",
            "--server",
            &app.base,
        ],
        None,
    )
    .await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("400 Bad Request"), "{}", r.stderr);
    assert!(
        r.stderr.contains("urn:longrun:problem:bad-request"),
        "{}",
        r.stderr
    );
    let (_, _, list) = app.get(&app.url("/api/v1/jobs?operation=import")).await;
    assert_eq!(list["count"], 0, "a refused body leaves no job: {list}");
    app.stop().await;
}

/// cancel, watch, restart and delete by id and by URL, through the job's own links: a cancelled
/// job is exit 2 for `watch`; a link that is absent is exit 3 and says so.
#[tokio::test]
async fn job_actions_follow_the_jobs_links() {
    // HTTP only, no workers: the job stays QUEUED until it is cancelled.
    let app = TestApp::spawn_with("sqlite", 1, |a| a.role = Some(Role::Api)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.json");
    std::fs::write(&file, records(5000, 0).to_string()).unwrap();
    let r = cli(
        &[
            "submit",
            "import",
            file.to_str().unwrap(),
            "--output",
            "json",
            "--server",
            &app.base,
        ],
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let job = r.json();
    let id = job["jobId"].as_str().unwrap().to_string();
    let url = link(&job, "self").unwrap();

    let r = cli(&["jobs", "cancel", &id, "--server", &app.base], None).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("CANCELLED"), "{}", r.stdout);

    let r = cli(&["jobs", "watch", &url, "--server", &app.base], None).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.lines().last().unwrap().starts_with("CANCELLED"),
        "{}",
        r.stderr
    );

    let r = cli(&["jobs", "cancel", &url, "--server", &app.base], None).await;
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("no `cancel` link"), "{}", r.stderr);

    let r = cli(
        &[
            "jobs", "restart", &id, "--output", "json", "--server", &app.base,
        ],
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["jobStatus"], "QUEUED");
    assert_eq!(r.json()["attempt"], 2);

    let r = cli(
        &[
            "jobs", "delete", &id, "--output", "xml", "--server", &app.base,
        ],
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("<jobStatus>DELETED</jobStatus>"),
        "{}",
        r.stdout
    );

    let r = cli(&["jobs", "watch", &id, "--server", &app.base], None).await;
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("410 Gone"), "{}", r.stderr);

    let r = cli(&["jobs", "watch", "not-an-id", "--server", &app.base], None).await;
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("neither a job URL nor a job id"),
        "{}",
        r.stderr
    );
    app.stop().await;
}

/// A connection refused, a usage error and a server that is not longrun are exit 3; the key
/// is sent as a bearer credential and a problem's title and detail are printed.
#[tokio::test]
async fn connection_and_usage_errors_exit_3() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let r = cli(&["jobs", "list", "--server", &closed], None).await;
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("cannot reach"), "{}", r.stderr);

    let r = cli(&["jobs", "watch"], None).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    let r = cli(&["jobs", "list", "--output", "yaml"], None).await;
    assert_eq!(r.code, 3, "{}", r.stderr);

    // A server that refuses with a problem document, and records what it was sent.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    let seen = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let body = r#"{"type":"urn:longrun:problem:unauthorized","title":"Unauthorized","status":401,"detail":"the key is not known"}"#;
        let answer = format!(
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        sock.write_all(answer.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&head).to_ascii_lowercase()
    });
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_longrun"));
    let out = cmd
        .args(["jobs", "list"])
        .env("LONGRUN_SERVER", &server)
        .env("LONGRUN_KEY", "k-123")
        .output()
        .await
        .unwrap();
    let head = seen.await.unwrap();
    assert!(head.contains("authorization: bearer k-123"), "{head}");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("401 Unauthorized: the key is not known"),
        "{err}"
    );
}

/// Two small XML catalogs under `dir` that differ in one price: `a.xml` and `b.xml`.
fn catalogs(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (a, b) = (dir.join("a.xml"), dir.join("b.xml"));
    std::fs::write(
        &a,
        r#"<catalog><item id="1" price="5">Pen</item></catalog>"#,
    )
    .unwrap();
    std::fs::write(
        &b,
        r#"<catalog><item id="1" price="6">Pen</item></catalog>"#,
    )
    .unwrap();
    (a, b)
}

/// submit compare -o writes the delta; download writes the file's bytes; jobs list in the three
/// outputs with the audit filters.
#[tokio::test]
async fn compare_download_and_list() {
    let app = TestApp::spawn("sqlite", 2).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = catalogs(dir.path());
    let out = dir.path().join("delta.xml");
    let r = cli(
        &[
            "submit",
            "compare",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--key-attributes",
            "id",
            "-o",
            out.to_str().unwrap(),
            "--output",
            "json",
            "--server",
            &app.base,
        ],
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let job = r.json();
    assert_eq!(job["jobStatus"], "SUCCESS");
    assert_eq!(job["summary"]["identical"], false);
    let delta = std::fs::read_to_string(&out).unwrap();
    assert!(delta.contains("urn:longrun:delta:1"), "{delta}");
    assert!(
        delta.contains(r#"<d:attr name="price" op="changed" old="5" new="6""#),
        "{delta}"
    );

    // download: the bytes of the file link, streamed to a file.
    let file = link(&job, "file").unwrap();
    let expected = app
        .http
        .get(&file)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let copy = dir.path().join("copy.xml");
    let r = cli(
        &[
            "download",
            &file,
            "-o",
            copy.to_str().unwrap(),
            "--server",
            &app.base,
        ],
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read(&copy).unwrap(), expected.to_vec());
    let r = cli(&["download", &format!("{file}x"), "-o", "-"], None).await;
    assert_eq!(r.code, 3, "{}", r.stderr);

    // jobs list: JSON parses, with the filters applied; XML and the table.
    let job = app.sleepy(json!({"ms": 1})).await;
    app.wait_end(&job).await;
    let r = cli(
        &[
            "jobs",
            "list",
            "--status",
            "SUCCESS",
            "--operation",
            "compare",
            "--since",
            "1h",
            "--limit",
            "10",
            "--output",
            "json",
            "--server",
            &app.base,
        ],
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let list = r.json();
    assert_eq!(list["count"], 1, "{list}");
    assert_eq!(list["jobs"][0]["operation"], "compare");
    let r = cli(
        &[
            "jobs", "list", "--newest", "--output", "xml", "--server", &app.base,
        ],
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.trim_start().starts_with('<'), "{}", r.stdout);
    let r = cli(&["jobs", "list", "--server", &app.base], None).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("JOB"), "{}", r.stdout);
    assert!(r.stdout.contains("sleepy"), "{}", r.stdout);
    assert!(r.stdout.contains("2 matching"), "{}", r.stdout);
    let r = cli(
        &[
            "jobs",
            "list",
            "--since",
            "yesterday",
            "--server",
            &app.base,
        ],
        None,
    )
    .await;
    assert_eq!(r.code, 3);
    app.stop().await;
}

/// jobs watch with standard error not a terminal: one plain line per change, ending with the
/// final state (status, stage, phase, 100 %).
#[tokio::test]
async fn watch_prints_plain_lines_off_a_terminal() {
    let app = TestApp::spawn("sqlite", 1).await;
    let r = app
        .post_json(
            "/api/v1/jobs",
            &json!({"operation": "sleepy", "input": {"ms": 100, "steps": 3}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let job = location(&r);
    let r = cli(&["jobs", "watch", &job, "--server", &app.base], None).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    let last = lines.last().unwrap();
    assert!(last.starts_with("SUCCESS"), "{}", r.stderr);
    assert!(last.contains("stage 3/3"), "{}", r.stderr);
    assert!(last.contains("100 %"), "{}", r.stderr);
    assert!(
        !r.stderr.contains('\r') && !r.stderr.contains('\u{1b}'),
        "no terminal control: {:?}",
        r.stderr
    );
    assert!(r.stdout.contains("status      SUCCESS"), "{}", r.stdout);
    app.stop().await;
}

/// Output commands whose reader went away (`longrun openapi | head`, `jobs list | head`,
/// `download -o - | head`) end quietly with exit 0: no panic, no error.
#[tokio::test]
async fn a_closed_standard_output_ends_quietly() {
    let app = TestApp::spawn("sqlite", 2).await;
    let r = app
        .post_json(
            "/api/v1/imports",
            &json!({"data": [{"tool_id": "P1", "tool_name": "Pipe", "category": "C", "url": "nope"}]}),
        )
        .await;
    let job = app.wait_end(&location(&r)).await;
    let file = link(&job, "file").unwrap();
    for args in [
        vec!["openapi"],
        vec!["jobs", "list", "--server", &app.base],
        vec!["jobs", "list", "--output", "json", "--server", &app.base],
        vec!["download", &file, "-o", "-", "--server", &app.base],
    ] {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_longrun"))
            .args(&args)
            .env_remove("LONGRUN_SERVER")
            .env_remove("LONGRUN_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // The reader is gone before anything is written: every write meets EPIPE.
        drop(child.stdout.take());
        let out = child.wait_with_output().await.unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
    app.stop().await;
}

/// `submit compare A B --wait -o -`: standard output is the result alone, byte for byte (the
/// job's table and the progress go to standard error), so `> delta.xml` makes a clean file.
#[tokio::test]
async fn compare_to_standard_output_writes_the_result_alone() {
    let app = TestApp::spawn("sqlite", 2).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = catalogs(dir.path());
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    for output in ["table", "json"] {
        let r = cli(
            &[
                "submit", "compare", a, b, "--wait", "-o", "-", "--output", output, "--server",
                &app.base,
            ],
            None,
        )
        .await;
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            r.stdout.starts_with("<d:delta") && r.stdout.trim_end().ends_with("</d:delta>"),
            "stdout holds the delta alone: {}",
            r.stdout
        );
        assert!(r.stderr.contains("SUCCESS"), "{}", r.stderr);
        // The bytes are those of the job's file.
        let (_, _, list) = app
            .get(&app.url("/api/v1/jobs?sort=-createdTime&limit=1"))
            .await;
        let file = link(&list["jobs"][0], "file").unwrap();
        let bytes = app
            .http
            .get(&file)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(r.stdout, bytes);
    }
    app.stop().await;
}

/// Ctrl-C (SIGINT) while `submit … --wait` or `jobs watch` follows a job stops following, not
/// the job: the job's URL is printed on standard error, the exit code is 130, and the job is
/// still there, untouched.
#[tokio::test]
async fn ctrl_c_while_waiting_leaves_the_job_running() {
    // HTTP only, no workers: the job stays QUEUED.
    let app = TestApp::spawn_with("sqlite", 1, |a| a.role = Some(Role::Api)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tools.json");
    std::fs::write(&file, records(3, 0).to_string()).unwrap();
    let f = file.to_str().unwrap();
    let r = app.post_json("/api/v1/imports", &records(2, 0)).await;
    let queued = location(&r);
    for args in [
        vec!["submit", "import", f, "--wait", "--server", &app.base],
        vec!["jobs", "watch", &queued, "--server", &app.base],
    ] {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_longrun"))
            .args(&args)
            .env_remove("LONGRUN_SERVER")
            .env_remove("LONGRUN_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // Wait for the first progress line: the job is being followed.
        let mut stderr = child.stderr.take().unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("QUEUED") {
            let n = tokio::time::timeout(std::time::Duration::from_secs(30), stderr.read(&mut buf))
                .await
                .expect("a progress line within 30 s")
                .unwrap();
            assert!(n > 0, "{args:?}: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        let pid = child.id().unwrap().to_string();
        assert!(std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success());
        let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
            .await
            .expect("it exits after Ctrl-C")
            .unwrap();
        stderr.read_to_end(&mut seen).await.unwrap();
        let err = String::from_utf8_lossy(&seen);
        assert_eq!(status.code(), Some(130), "{args:?}: {status:?} {err}");
        let job_url = err
            .split_whitespace()
            .find(|w| w.starts_with(&format!("{}/api/v1/jobs/", app.base)))
            .unwrap_or_else(|| panic!("the job's URL is printed: {err}"))
            .trim_end_matches(['`', ')'])
            .to_string();
        assert!(err.contains("the job goes on"), "{err}");
        let (s, _, job) = app.get(&job_url).await;
        assert_eq!(s, 200, "{job}");
        assert_eq!(job["jobStatus"], "QUEUED", "{job}");
        assert!(link(&job, "cancel").is_some(), "{job}");
    }
    app.stop().await;
}
