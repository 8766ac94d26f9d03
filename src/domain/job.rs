//! The job as the rest of the service sees it, and the links a client may follow from it.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::signals::{AsyncRequest, NotificationTarget, NotifyFormat};
use super::status::JobStatus;

/// How far an operation has come inside its current stage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Units done so far.
    pub amount: i64,
    /// Units in all, when known.
    pub total: Option<i64>,
    /// What is counted ("records", "bytes", ...).
    pub unit: Option<String>,
}

impl Progress {
    /// Whole percent done, absent when the total is unknown.
    pub fn percent(&self) -> Option<i32> {
        match self.total {
            Some(t) if t > 0 => Some(((self.amount.max(0) * 100) / t).min(100) as i32),
            Some(_) => Some(100),
            None => None,
        }
    }
}

/// Which worker holds a running job, and until when.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// The node (process) id of the worker.
    pub owner: String,
    /// When the lease runs out unless renewed.
    pub expires: DateTime<Utc>,
    /// The last heartbeat.
    pub heartbeat: Option<DateTime<Utc>>,
}

/// What a submitter asked of the job besides its input.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOptions {
    /// Keep output files after their first complete download.
    pub keep_result: bool,
    /// GET this URL when the job ends (seed 002).
    pub callback: Option<String>,
    /// POST a notification event here when the job ends (seed 004).
    pub notification: Option<NotificationTarget>,
    /// The public base URL of the submission, for the links sent in deliveries.
    pub base_url: Option<String>,
    /// Higher runs first (`PRIORITY_MIN`…`PRIORITY_MAX`, default 0); FIFO within a priority
    /// (and the tenants taking turns).
    pub priority: i32,
    /// Not claimed before this time: the job waits QUEUED until then.
    pub not_before: Option<DateTime<Utc>>,
    /// The longest one run may take (the submission's `timeout`, capped by the operation's
    /// `LONGRUN_MAX_RUNTIME` when the job is stored); past it the run is stopped and FAILED.
    pub timeout: Option<std::time::Duration>,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            keep_result: true,
            callback: None,
            notification: None,
            base_url: None,
            priority: 0,
            not_before: None,
            timeout: None,
        }
    }
}

impl JobOptions {
    /// Options from a checked `async` element and the submission's base URL.
    pub fn from_async(a: AsyncRequest, base_url: &str) -> JobOptions {
        JobOptions {
            keep_result: a.keep_result.unwrap_or(true),
            callback: a.callback,
            notification: a.notification,
            base_url: Some(base_url.to_string()),
            priority: a.priority.unwrap_or(0),
            not_before: a.not_before,
            timeout: a.timeout,
        }
    }

    /// The stored form of the signal options (JSON), or None when there are none.
    pub fn signals_json(&self) -> Option<Value> {
        if self.callback.is_none() && self.notification.is_none() && self.base_url.is_none() {
            return None;
        }
        Some(serde_json::json!({
            "callback": self.callback,
            "notification": self.notification.as_ref().map(|n| serde_json::json!({"url": n.url, "format": n.format.as_str()})),
            "baseUrl": self.base_url,
        }))
    }

    /// Read back what `signals_json` stored.
    pub fn with_signals_json(mut self, v: Option<&Value>) -> JobOptions {
        let Some(v) = v else { return self };
        self.callback = v.get("callback").and_then(Value::as_str).map(String::from);
        self.base_url = v.get("baseUrl").and_then(Value::as_str).map(String::from);
        self.notification = v.get("notification").and_then(|n| {
            Some(NotificationTarget {
                url: n.get("url")?.as_str()?.to_string(),
                format: if n.get("format").and_then(Value::as_str) == Some("xml") {
                    NotifyFormat::Xml
                } else {
                    NotifyFormat::Json
                },
            })
        });
        self
    }
}

/// One job, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: Uuid,
    /// Integer task number (seed 003's task ids), given when the job is stored.
    pub task_id: i64,
    /// Who submitted it (the caller's identity), when known.
    pub owner: Option<String>,
    /// Short reference for people and the seed dialects (`HD6EKSD8DO9`).
    pub reference: String,
    pub operation: String,
    pub status: JobStatus,
    pub phase: Option<String>,
    pub total_stages: i32,
    pub current_stage: i32,
    pub progress: Progress,
    pub created: DateTime<Utc>,
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    pub updated: DateTime<Utc>,
    pub correlation_id: String,
    pub attempt: i32,
    pub max_attempts: i32,
    /// The validated input (small; large inputs live in the object store, see `input_blob`).
    pub input: Value,
    /// Object-store key of a large input body.
    pub input_blob: Option<String>,
    pub options: JobOptions,
    pub summary: Option<Value>,
    /// A problem document on FAILED.
    pub error: Option<Value>,
    pub cancel_requested: bool,
    /// Grows on every change; the ETag is made from it.
    pub version: i64,
    pub lease: Option<Lease>,
}

impl Job {
    /// The strong entity tag of this version of the job.
    pub fn etag(&self) -> String {
        format!("\"{}-{}\"", self.id.simple(), self.version)
    }
}

/// A new short reference: 11 characters of A-Z and 0-9.
pub fn new_reference() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    (0..11)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// One output file of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputFile {
    pub id: Uuid,
    pub job_id: Uuid,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    /// Hex digest or store-given tag, quoted when sent.
    pub etag: String,
    pub object_key: String,
    pub rows: Option<i64>,
    pub created: DateTime<Utc>,
    /// Set once a `keepResult: false` file was read completely and removed.
    pub consumed: bool,
    /// The attempt that wrote it; a job's outputs are those of its current attempt.
    pub attempt: i32,
}

/// Severity of a job message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }
    /// Parse a stored name; unknown names read as INFO.
    pub fn parse(s: &str) -> Level {
        match s {
            "WARNING" => Level::Warning,
            "ERROR" => Level::Error,
            _ => Level::Info,
        }
    }
}

/// One line of a job's append-only log.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub seq: i64,
    pub job_id: Uuid,
    pub at: DateTime<Utc>,
    pub level: Level,
    /// `state`, `stage`, `warning`, `error`, `retry`, `lease`, `delivery`, ...
    pub kind: String,
    pub text: String,
    pub attempt: i32,
}

/// A hypermedia link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub rel: String,
    pub href: String,
    pub method: &'static str,
    pub media_type: Option<String>,
}

impl Link {
    fn new(rel: &str, href: String, method: &'static str, media_type: Option<&str>) -> Link {
        Link {
            rel: rel.to_string(),
            href,
            method,
            media_type: media_type.map(str::to_string),
        }
    }
}

/// Href of a job under a base URL (no trailing slash).
pub fn job_href(base: &str, id: Uuid) -> String {
    format!("{base}/api/v1/jobs/{id}")
}

/// Href of a download.
pub fn file_href(base: &str, file_id: Uuid) -> String {
    format!("{base}/downloads/{file_id}")
}

/// A job's data file set as seed 004 addresses it: `{api}/datafilesets/{datafilesetcode}`, the
/// code being the job id.
pub fn datafileset_href(base: &str, job_id: Uuid) -> String {
    format!("{base}/datafilesets/{job_id}")
}

/// One file of a data file set, in seed 004's shape:
/// `{api}/datafilesets/{datafilesetcode}/datafiles/{datafilecode}/data` (the file id is the code).
pub fn datafile_href(base: &str, job_id: Uuid, file_id: Uuid) -> String {
    format!("{base}/datafilesets/{job_id}/datafiles/{file_id}/data")
}

/// The links valid for a job right now; `media` is the encoding the client reads.
pub fn job_links(base: &str, job: &Job, files: &[OutputFile], media: &str) -> Vec<Link> {
    use JobStatus::*;
    let me = job_href(base, job.id);
    let m = Some(media);
    let mut links = Vec::with_capacity(8);
    if job.status == Deleted {
        return links;
    }
    links.push(Link::new("self", me.clone(), "GET", m));
    if !job.status.is_end() {
        links.push(Link::new("monitor", me.clone(), "GET", m));
        links.push(Link::new("cancel", format!("{me}/cancel"), "POST", m));
        links.push(Link::new(
            "events",
            format!("{me}/events"),
            "GET",
            Some("text/event-stream"),
        ));
    }
    links.push(Link::new("delete", me.clone(), "DELETE", m));
    if job.status == Success {
        links.push(Link::new("result", format!("{me}/result"), "GET", m));
        let live: Vec<&OutputFile> = files.iter().filter(|f| !f.consumed).collect();
        if !live.is_empty() {
            links.push(Link::new(
                "datafileset",
                format!("{me}/datafileset"),
                "GET",
                m,
            ));
        }
        for f in live {
            links.push(Link::new(
                "file",
                file_href(base, f.id),
                "GET",
                Some(&f.content_type),
            ));
        }
    }
    links.push(Link::new("operator", format!("{me}/operator"), "GET", m));
    links.push(Link::new(
        "operator:messages",
        format!("{me}/messages"),
        "GET",
        m,
    ));
    if job.options.callback.is_some() || job.options.notification.is_some() {
        links.push(Link::new(
            "deliveries",
            format!("{me}/deliveries"),
            "GET",
            m,
        ));
    }
    if matches!(job.status, Failed | Cancelled) {
        links.push(Link::new(
            "operator:restart",
            format!("{me}/restart"),
            "POST",
            m,
        ));
    }
    // Seed 003's view of the job: its task, in the encoding the client reads.
    let ext = if media.contains("xml") { "xml" } else { "json" };
    links.push(Link::new(
        "task",
        format!("{base}/tasks/{}.{ext}", job.task_id),
        "GET",
        Some(if ext == "xml" {
            "application/xml"
        } else {
            "application/json"
        }),
    ));
    links
}

/// Seconds a poller should wait before asking again, from how long the job has run.
pub fn retry_after_secs(job: &Job, now: DateTime<Utc>) -> Option<u64> {
    if job.status.is_end() {
        return None;
    }
    let ran = (now - job.started.unwrap_or(job.created))
        .num_seconds()
        .max(0) as u64;
    Some((ran / 10).clamp(1, 30))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A job in `status` for unit tests.
    pub(crate) fn job(status: JobStatus) -> Job {
        let now = Utc::now();
        Job {
            id: Uuid::now_v7(),
            task_id: 1,
            owner: None,
            reference: "R".into(),
            operation: "import".into(),
            status,
            phase: None,
            total_stages: 2,
            current_stage: 0,
            progress: Progress::default(),
            created: now,
            started: None,
            finished: None,
            updated: now,
            correlation_id: "c".into(),
            attempt: 1,
            max_attempts: 3,
            input: Value::Null,
            input_blob: None,
            options: JobOptions::default(),
            summary: None,
            error: None,
            cancel_requested: false,
            version: 1,
            lease: None,
        }
    }

    fn rels(j: &Job, files: &[OutputFile]) -> Vec<String> {
        job_links("http://h", j, files, "application/json")
            .into_iter()
            .map(|l| l.rel)
            .collect()
    }

    #[test]
    fn links_follow_the_table() {
        let q = job(JobStatus::Queued);
        assert_eq!(
            rels(&q, &[]),
            [
                "self",
                "monitor",
                "cancel",
                "events",
                "delete",
                "operator",
                "operator:messages",
                "task"
            ]
        );
        let f = job(JobStatus::Failed);
        assert_eq!(
            rels(&f, &[]),
            [
                "self",
                "delete",
                "operator",
                "operator:messages",
                "operator:restart",
                "task"
            ]
        );
        let s = job(JobStatus::Success);
        let file = OutputFile {
            id: Uuid::now_v7(),
            job_id: s.id,
            name: "r.json".into(),
            content_type: "application/json".into(),
            size: 1,
            etag: "x".into(),
            object_key: "k".into(),
            rows: None,
            created: Utc::now(),
            consumed: false,
            attempt: 1,
        };
        assert_eq!(
            rels(&s, std::slice::from_ref(&file)),
            [
                "self",
                "delete",
                "result",
                "datafileset",
                "file",
                "operator",
                "operator:messages",
                "task"
            ]
        );
        assert_eq!(
            rels(&s, &[]),
            [
                "self",
                "delete",
                "result",
                "operator",
                "operator:messages",
                "task"
            ]
        );
        let task = |media: &str| {
            job_links("http://h", &s, &[], media)
                .into_iter()
                .find(|l| l.rel == "task")
                .map(|l| l.href)
                .unwrap()
        };
        assert_eq!(task("application/json"), "http://h/tasks/1.json");
        assert_eq!(task("application/xml"), "http://h/tasks/1.xml");
        assert!(rels(&job(JobStatus::Deleted), &[]).is_empty());
    }

    #[test]
    fn percent() {
        let mut p = Progress {
            amount: 45,
            total: Some(100),
            unit: None,
        };
        assert_eq!(p.percent(), Some(45));
        p.total = None;
        assert_eq!(p.percent(), None);
        p.total = Some(0);
        assert_eq!(p.percent(), Some(100));
    }
}
