//! Following a job to its end: the `events` stream while the job offers one, `Prefer: wait`
//! long polls on its `monitor` link otherwise. Progress is shown on standard error: a bar on a
//! terminal, plain lines (one per change, and the final state) when not.

use std::io::IsTerminal;
use std::time::Duration;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::header::{ACCEPT, ETAG, IF_NONE_MATCH};
use serde_json::Value;

use super::http::{href, Client};
use super::show;
use super::{Exit, EXIT_INTERRUPTED};

/// How progress is shown.
enum Display {
    Bar(ProgressBar),
    Lines(String),
}

impl Display {
    fn new() -> Display {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<10} [{bar:30}] {pos:>3} %  {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            Display::Bar(bar)
        } else {
            Display::Lines(String::new())
        }
    }

    fn update(&mut self, job: &Value) {
        match self {
            Display::Bar(bar) => {
                bar.set_prefix(job["jobStatus"].as_str().unwrap_or("").to_string());
                let percent = if job["jobStatus"] == "SUCCESS" {
                    Some(100)
                } else {
                    job["progress"]["percent"].as_u64()
                };
                bar.set_position(percent.unwrap_or(0));
                let mut msg = format!("stage {}", show::stage(job));
                if let Some(p) = job["phaseDescription"].as_str() {
                    msg.push_str(&format!("  {p}"));
                }
                bar.set_message(msg);
            }
            Display::Lines(last) => {
                let l = show::line(job);
                if *last != l {
                    show::note(&l);
                    *last = l;
                }
            }
        }
    }

    /// The final state: the bar stops where it is with the last line kept on screen.
    fn finish(&mut self, job: &Value) {
        self.update(job);
        if let Display::Bar(bar) = self {
            bar.abandon();
            show::note("");
        }
    }
}

/// Follow the job at `url` until it ends; returns its last document (JSON).
///
/// Ctrl-C (SIGINT) stops following, not the job: the job's URL is printed so it can be followed
/// again (`longrun jobs watch URL`), and the exit code is 130.
pub async fn follow(c: &Client, url: &str) -> Result<Value, Exit> {
    let mut interrupt = Interrupt::listen()?;
    let mut display = Display::new();
    let result = tokio::select! {
        r = follow_with(c, url, &mut display) => r,
        _ = interrupt.recv() => Err(Exit {
            code: EXIT_INTERRUPTED,
            message: format!(
                "interrupted; the job goes on: {url}\n(follow it again with `longrun jobs watch {url}`)"
            ),
        }),
    };
    match &result {
        Ok(job) => display.finish(job),
        Err(_) => {
            if let Display::Bar(bar) = &display {
                bar.abandon();
                show::note("");
            }
        }
    }
    result
}

/// SIGINT, listened for from the moment it is made (so a Ctrl-C never kills the process while it
/// follows a job).
struct Interrupt {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Interrupt {
    fn listen() -> Result<Interrupt, Exit> {
        #[cfg(unix)]
        {
            let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .map_err(|e| Exit::error(format!("cannot listen for Ctrl-C: {e}")))?;
            Ok(Interrupt { signal })
        }
        #[cfg(not(unix))]
        {
            Ok(Interrupt {})
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            self.signal.recv().await;
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn follow_with(c: &Client, url: &str, display: &mut Display) -> Result<Value, Exit> {
    let (answer, mut job) = c.get_json(url).await?;
    let mut etag = answer.header("etag");
    let mut events_tried = false;
    loop {
        display.update(&job);
        let Some(monitor) = href(&job, "monitor") else {
            return Ok(job);
        };
        if let (Some(events), false) = (href(&job, "events"), events_tried) {
            events_tried = true;
            if let Some(last) = stream_events(c, &events, display).await? {
                if href(&last, "monitor").is_none() {
                    return Ok(last);
                }
            }
            // The stream ended early: read the job again and go on with long polls.
            let (answer, j) = c.get_json(&monitor).await?;
            etag = answer.header("etag");
            job = j;
            continue;
        }
        let mut rb = c
            .http
            .get(&monitor)
            .header(ACCEPT, "application/json")
            .header("prefer", "wait=30");
        if let Some(t) = &etag {
            rb = rb.header(IF_NONE_MATCH, t);
        }
        let answer = c.call(rb).await?;
        if answer.status == 304 {
            continue;
        }
        etag = answer
            .headers
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        job = answer.json()?;
    }
}

/// Read the job's server-sent events, showing each state; returns the last one received.
/// `None` when the stream could not be opened (the caller falls back to long polls).
async fn stream_events(
    c: &Client,
    url: &str,
    display: &mut Display,
) -> Result<Option<Value>, Exit> {
    let resp = c
        .send(c.http.get(url).header(ACCEPT, "text/event-stream"))
        .await?;
    if !resp.status().is_success() {
        return Ok(None);
    }
    let mut stream = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut data = String::new();
    let mut last = None;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !data.is_empty() {
                    if let Ok(job) = serde_json::from_str::<Value>(&data) {
                        display.update(&job);
                        last = Some(job);
                    }
                    data.clear();
                }
            } else if let Some(d) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(d.strip_prefix(' ').unwrap_or(d));
            }
        }
    }
    Ok(last)
}
