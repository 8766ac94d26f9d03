//! The verbs: submissions, the audit list, and the job actions, each by following links.

use std::path::Path;

use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::http::{href, link, Answer, Client};
use super::show::{self, Kind, To};
use super::watch::follow;
use super::{BodyFormat, Exit, ListArgs, EXIT_CANCELLED, EXIT_ERROR, EXIT_FAILED, EXIT_SUCCESS};

/// The exit code a job's end state stands for.
pub fn exit_of(job: &Value) -> i32 {
    match job["jobStatus"].as_str() {
        Some("SUCCESS") => EXIT_SUCCESS,
        Some("FAILED") => EXIT_FAILED,
        Some("CANCELLED") => EXIT_CANCELLED,
        _ => EXIT_ERROR,
    }
}

/// Print the ended job in the `--output` encoding and return its exit code.
async fn show_end(c: &Client, job: &Value, to: To) -> Result<i32, Exit> {
    let answer = match href(job, "self") {
        Some(me) => c.get_doc(&me).await?,
        None => return Err(Exit::error("the job has no self link")),
    };
    show::print_to(c.output, Kind::Job, &answer, to)?;
    Ok(exit_of(job))
}

/// After a submission: print the job (on `to`), or follow `Location` to the end when asked to
/// wait.
async fn after_submit(
    c: &Client,
    answer: Answer,
    wait: bool,
    to: To,
) -> Result<(i32, Value), Exit> {
    let location = answer
        .headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| {
            Exit::error(format!(
                "the service answered {} without a Location",
                answer.status
            ))
        })?;
    if !wait {
        show::print_to(c.output, Kind::Job, &answer, to)?;
        return Ok((EXIT_SUCCESS, Value::Null));
    }
    let job = follow(c, &location).await?;
    Ok((show_end(c, &job, to).await?, job))
}

fn guess_format(name: &str, head: &[u8]) -> BodyFormat {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".ndjson") || lower.ends_with(".jsonl") {
        return BodyFormat::Ndjson;
    }
    if lower.ends_with(".xml") {
        return BodyFormat::Xml;
    }
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let text = &text[start..];
    if text.starts_with(b"<") {
        return BodyFormat::Xml;
    }
    // NDJSON: the first line alone is a whole record (an object without `data`).
    let first = text.split(|b| *b == b'\n').next().unwrap_or_default();
    match serde_json::from_slice::<Value>(first) {
        Ok(Value::Object(m)) if !m.contains_key("data") => BodyFormat::Ndjson,
        _ => BodyFormat::Json,
    }
}

/// `submit import FILE [--wait]`: the body is streamed from the file (or standard input).
pub async fn submit_import(
    c: &Client,
    file: &str,
    wait: bool,
    format: Option<BodyFormat>,
) -> Result<i32, Exit> {
    let mut reader: Box<dyn AsyncRead + Send + Unpin> = if file == "-" {
        Box::new(tokio::io::stdin())
    } else {
        Box::new(
            tokio::fs::File::open(file)
                .await
                .map_err(|e| Exit::error(format!("cannot read {file}: {e}")))?,
        )
    };
    let mut head = Vec::with_capacity(64 * 1024);
    (&mut reader)
        .take(64 * 1024)
        .read_to_end(&mut head)
        .await
        .map_err(|e| Exit::error(format!("cannot read {file}: {e}")))?;
    let media = match format.unwrap_or_else(|| guess_format(file, &head)) {
        BodyFormat::Json => "application/json",
        BodyFormat::Ndjson => "application/x-ndjson",
        BodyFormat::Xml => "application/xml",
    };
    let imports = c.root_link("imports").await?;
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(head)) })
        .chain(tokio_util::io::ReaderStream::new(reader));
    let answer = c
        .call(
            c.http
                .post(&imports)
                .header(CONTENT_TYPE, media)
                .header(ACCEPT, c.accept())
                .body(reqwest::Body::wrap_stream(body)),
        )
        .await?;
    Ok(after_submit(c, answer, wait, To::Stdout).await?.0)
}

/// Options of a comparison.
pub struct CompareOptions {
    pub key_attributes: Vec<String>,
    pub key_fields: Vec<String>,
    pub ignore_whitespace: bool,
}

enum Input {
    File(String, Vec<u8>),
    Uri(String),
}

async fn input(arg: &str) -> Result<Input, Exit> {
    if arg.starts_with("http://") || arg.starts_with("https://") {
        return Ok(Input::Uri(arg.into()));
    }
    let bytes = tokio::fs::read(arg)
        .await
        .map_err(|e| Exit::error(format!("cannot read {arg}: {e}")))?;
    Ok(Input::File(arg.into(), bytes))
}

fn media_of(bytes: &[u8]) -> &'static str {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'<') => "application/xml",
        _ => "application/json",
    }
}

/// `submit compare A B [--wait] [-o OUT]`: files go as multipart parts, URLs as `uri` inputs of
/// a JSON body; the job is asked for asynchronously and followed when waiting.
pub async fn submit_compare(
    c: &Client,
    a: &str,
    b: &str,
    wait: bool,
    out: Option<&Path>,
    o: &CompareOptions,
) -> Result<i32, Exit> {
    let (a, b) = (input(a).await?, input(b).await?);
    let comparisons = c.root_link("comparisons").await?;
    let rb = c.http.post(&comparisons).header(ACCEPT, c.accept());
    let rb = match (a, b) {
        (Input::File(na, ba), Input::File(nb, bb)) => {
            let part = |name: String, bytes: Vec<u8>| {
                let media = media_of(&bytes);
                let file_name = Path::new(&name)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or(name);
                reqwest::multipart::Part::bytes(bytes)
                    .file_name(file_name)
                    .mime_str(media)
                    .expect("a valid media type")
            };
            let mut form = reqwest::multipart::Form::new()
                .part("inputA", part(na, ba))
                .part("inputB", part(nb, bb))
                .text("async", "true");
            if !o.key_attributes.is_empty() {
                form = form.text("keyAttributes", o.key_attributes.join(","));
            }
            if !o.key_fields.is_empty() {
                form = form.text("keyFields", o.key_fields.join(","));
            }
            if o.ignore_whitespace {
                form = form.text("ignoreWhitespace", "true");
            }
            rb.multipart(form)
        }
        (a, b) => {
            let doc = |i: Input| -> Result<Value, Exit> {
                Ok(match i {
                    Input::Uri(u) => json!({ "uri": u }),
                    Input::File(name, bytes) => json!({
                        "content": String::from_utf8(bytes)
                            .map_err(|_| Exit::error(format!("{name} is not UTF-8 text")))?
                    }),
                })
            };
            let mut options = serde_json::Map::new();
            if !o.key_attributes.is_empty() {
                options.insert("keyAttributes".into(), json!(o.key_attributes));
            }
            if !o.key_fields.is_empty() {
                options.insert("keyFields".into(), json!(o.key_fields));
            }
            if o.ignore_whitespace {
                options.insert("ignoreWhitespace".into(), json!(true));
            }
            rb.json(&json!({
                "inputA": doc(a)?,
                "inputB": doc(b)?,
                "options": options,
                "async": {},
            }))
        }
    };
    let answer = c.call(rb).await?;
    // With `-o -` standard output carries the result alone; the job goes to standard error.
    let to = match out {
        Some(o) if o.as_os_str() == "-" => To::Stderr,
        _ => To::Stdout,
    };
    let (code, job) = after_submit(c, answer, wait || out.is_some(), to).await?;
    if let (Some(out), EXIT_SUCCESS) = (out, code) {
        let file = href(&job, "file")
            .ok_or_else(|| Exit::error("the comparison ended SUCCESS without a file link"))?;
        let n = c.download(&file, out).await?;
        show::note(&format!("{n} bytes written to {}", out.display()));
    }
    Ok(code)
}

/// A time filter: an RFC 3339 time as it is, or a span (`90m`, `2d`) back from now.
fn time_arg(flag: &str, v: &str) -> Result<String, Exit> {
    if chrono::DateTime::parse_from_rfc3339(v).is_ok() {
        return Ok(v.to_string());
    }
    let span = humantime::parse_duration(v).map_err(|_| {
        Exit::error(format!(
            "--{flag} `{v}` is neither an RFC 3339 time (2026-01-31T12:00:00Z) nor a span (90m, 2d)"
        ))
    })?;
    let span = chrono::Duration::from_std(span)
        .map_err(|_| Exit::error(format!("--{flag} `{v}` is too long a span")))?;
    Ok((chrono::Utc::now() - span).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// `jobs list`: the jobs collection the root links to, with the audit filters.
pub async fn list(c: &Client, a: &ListArgs) -> Result<i32, Exit> {
    let jobs = c.root_link("jobs").await?;
    let mut url = url::Url::parse(&jobs)
        .map_err(|e| Exit::error(format!("the jobs link `{jobs}` is not a URL: {e}")))?;
    {
        let mut q = url.query_pairs_mut();
        for s in &a.status {
            q.append_pair("status", &s.to_ascii_uppercase());
        }
        if let Some(v) = &a.operation {
            q.append_pair("operation", v);
        }
        if let Some(v) = &a.correlation_id {
            q.append_pair("correlationId", v);
        }
        for (flag, name, v) in [
            ("since", "createdAfter", &a.since),
            ("until", "createdBefore", &a.until),
            ("finished-after", "finishedAfter", &a.finished_after),
            ("finished-before", "finishedBefore", &a.finished_before),
        ] {
            if let Some(v) = v {
                q.append_pair(name, &time_arg(flag, v)?);
            }
        }
        if a.newest {
            q.append_pair("sort", "-createdTime");
        }
        if let Some(n) = a.limit {
            q.append_pair("limit", &n.to_string());
        }
    }
    let answer = c.get_doc(url.as_str()).await?;
    show::print(c.output, Kind::List, &answer)?;
    Ok(EXIT_SUCCESS)
}

/// `jobs watch`: follow the job to its end; the exit code tells how it ended.
pub async fn watch(c: &Client, job: &str) -> Result<i32, Exit> {
    let url = c.job_url(job).await?;
    let job = follow(c, &url).await?;
    show_end(c, &job, To::Stdout).await
}

/// `jobs cancel|delete|restart`: follow the job's own link `rel`; without it, say so (exit 3).
pub async fn act(c: &Client, job: &str, rel: &str, done: &str) -> Result<i32, Exit> {
    let url = c.job_url(job).await?;
    let (_, doc) = c.get_json(&url).await?;
    let Some(l) = link(&doc, rel) else {
        return Err(Exit::error(format!(
            "job {} is {} and has no `{rel}` link: it cannot be {done} now",
            doc["jobId"].as_str().unwrap_or(job),
            doc["jobStatus"].as_str().unwrap_or("in an unknown state"),
        )));
    };
    let default = if rel == "delete" {
        Method::DELETE
    } else {
        Method::POST
    };
    let answer = c.follow(l, default).await?;
    show::print(c.output, Kind::Job, &answer)?;
    Ok(EXIT_SUCCESS)
}
