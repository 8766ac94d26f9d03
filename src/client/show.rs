//! Printing answers: the service's own document for `--output json|xml`, a compact table for
//! people otherwise.

use std::io::Write;

use serde_json::Value;

use super::http::{href, Answer};
use super::{Exit, Output};

/// What kind of document an answer is, for the table.
#[derive(Clone, Copy)]
pub enum Kind {
    Job,
    List,
}

/// Write `bytes` to standard output. A reader that went away (`| head`) is not an error: the
/// rest is not wanted, so it is dropped quietly and the command ends as it would have.
pub fn stdout(bytes: &[u8]) -> Result<(), Exit> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Exit::error(format!("cannot write to standard output: {e}")))
        }
        _ => Ok(()),
    }
}

/// Write a line to standard error; a closed or broken standard error loses it, never panics.
pub fn note(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// Where a document is printed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum To {
    /// Standard output: the answer of the command.
    Stdout,
    /// Standard error: standard output carries something else (a result downloaded to `-o -`).
    Stderr,
}

/// Print an answer on standard output as `--output` asks.
pub fn print(output: Output, kind: Kind, answer: &Answer) -> Result<(), Exit> {
    print_to(output, kind, answer, To::Stdout)
}

/// Print an answer as `--output` asks, on standard output or standard error.
pub fn print_to(output: Output, kind: Kind, answer: &Answer, to: To) -> Result<(), Exit> {
    let text = match output {
        Output::Json | Output::Xml => {
            let mut s = String::from_utf8_lossy(&answer.body).into_owned();
            if !s.ends_with('\n') {
                s.push('\n');
            }
            s
        }
        Output::Table => {
            let doc = answer.json()?;
            match kind {
                Kind::Job => job_table(&doc),
                Kind::List => list_table(&doc),
            }
        }
    };
    match to {
        To::Stdout => stdout(text.as_bytes()),
        To::Stderr => {
            note(text.trim_end_matches('\n'));
            Ok(())
        }
    }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

/// `stage 1/2`
pub fn stage(job: &Value) -> String {
    format!(
        "{}/{}",
        job["currentStage"].as_i64().unwrap_or(0),
        job["totalNumberOfStages"].as_i64().unwrap_or(0)
    )
}

/// The progress as a person reads it: `45 %`, `100 % (2/2 records)`, `1200 records`.
pub fn progress(job: &Value) -> String {
    let p = &job["progress"];
    let mut percent = p["percent"].as_i64();
    if s(job, "jobStatus") == "SUCCESS" {
        percent = Some(100);
    }
    let amount = p["amount"].as_i64().unwrap_or(0);
    let unit = p["unit"].as_str().unwrap_or("");
    let counted = match p["total"].as_i64() {
        Some(t) => format!("{amount}/{t} {unit}"),
        None if amount > 0 => format!("{amount} {unit}"),
        None => String::new(),
    };
    let counted = counted.trim().to_string();
    match (percent, counted.is_empty()) {
        (Some(pc), true) => format!("{pc} %"),
        (Some(pc), false) => format!("{pc} % ({counted})"),
        (None, _) => counted,
    }
}

/// One line about a job: status, stage, phase and progress.
pub fn line(job: &Value) -> String {
    let mut l = format!("{:<10} stage {}", s(job, "jobStatus"), stage(job));
    let phase = s(job, "phaseDescription");
    if !phase.is_empty() {
        l.push_str(&format!("  {phase}"));
    }
    let p = progress(job);
    if !p.is_empty() {
        l.push_str(&format!("  {p}"));
    }
    l
}

fn job_table(job: &Value) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("job", s(job, "jobId").into()),
        ("operation", s(job, "operation").into()),
        ("status", s(job, "jobStatus").into()),
        (
            "stage",
            format!("{}  {}", stage(job), s(job, "phaseDescription")),
        ),
        ("progress", progress(job)),
        ("attempt", job["attempt"].to_string()),
        ("correlation", s(job, "correlationId").into()),
        ("created", s(job, "createdTime").into()),
    ];
    if let Some(t) = job["finishedTime"].as_str() {
        rows.push(("finished", t.into()));
    }
    if !job["summary"].is_null() {
        rows.push(("summary", job["summary"].to_string()));
    }
    if !job["error"].is_null() {
        let e = &job["error"];
        rows.push(("error", format!("{}: {}", s(e, "title"), s(e, "detail"))));
    }
    if let Some(links) = job["links"].as_array() {
        for l in links.iter().filter(|l| l["rel"] == "file") {
            rows.push(("file", s(l, "href").into()));
        }
        let rels: Vec<&str> = links.iter().filter_map(|l| l["rel"].as_str()).collect();
        rows.push(("links", rels.join(" ")));
    }
    let mut out = String::new();
    for (k, v) in rows {
        out.push_str(&format!("{k:<12}{}\n", v.trim_end()));
    }
    out
}

fn list_table(doc: &Value) -> String {
    let head = [
        "JOB",
        "TASK",
        "OPERATION",
        "STATUS",
        "STAGE",
        "PROGRESS",
        "CREATED",
    ];
    let mut rows: Vec<Vec<String>> = vec![head.iter().map(|h| h.to_string()).collect()];
    for j in doc["jobs"].as_array().into_iter().flatten() {
        rows.push(vec![
            s(j, "jobId").into(),
            j["taskId"].to_string(),
            s(j, "operation").into(),
            s(j, "jobStatus").into(),
            stage(j),
            progress(j),
            s(j, "createdTime").into(),
        ]);
    }
    let widths: Vec<usize> = (0..head.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if let Some(n) = doc["count"].as_i64() {
        out.push_str(&format!("{n} matching\n"));
    }
    if let Some(next) = href(doc, "next") {
        out.push_str(&format!("next page: {next}\n"));
    }
    out
}
