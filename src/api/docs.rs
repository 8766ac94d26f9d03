//! The documents the API serves, and how domain values become them.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::wire::Problem;
use crate::domain::{self, file_href, job_links, Job, JobStatus, OutputFile};

// The job documents also serialise with serde, straight to text, for the collection's pages,
// which render a hundred of them at once: the same fields in the same order as the documents'
// `ToJSON` (a test holds the two equal), without the tree of values in between.

/// Times as the documents' `ToJSON` writes them (RFC 3339).
fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339())
}

fn rfc3339_opt<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatusDoc {
    Queued,
    Started,
    Processing,
    Saving,
    Success,
    Failed,
    Cancelled,
    Deleted,
}

impl From<JobStatus> for JobStatusDoc {
    fn from(s: JobStatus) -> Self {
        match s {
            JobStatus::Queued => JobStatusDoc::Queued,
            JobStatus::Started => JobStatusDoc::Started,
            JobStatus::Processing => JobStatusDoc::Processing,
            JobStatus::Saving => JobStatusDoc::Saving,
            JobStatus::Success => JobStatusDoc::Success,
            JobStatus::Failed => JobStatusDoc::Failed,
            JobStatus::Cancelled => JobStatusDoc::Cancelled,
            JobStatus::Deleted => JobStatusDoc::Deleted,
        }
    }
}

/// A hypermedia link.
#[derive(Debug, Clone, Object, Serialize)]
#[oai(skip_serializing_if_is_none)]
pub struct LinkDoc {
    /// The relation (`self`, `monitor`, `cancel`, `result`, `file`, ...).
    pub rel: String,
    /// Absolute URL of the target.
    pub href: String,
    /// HTTP method to use.
    pub method: String,
    /// Media type of the target.
    #[oai(rename = "type")]
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

impl From<domain::Link> for LinkDoc {
    fn from(l: domain::Link) -> Self {
        LinkDoc {
            rel: l.rel,
            href: l.href,
            method: l.method.to_string(),
            media_type: l.media_type,
        }
    }
}

/// Progress inside the current stage.
#[derive(Debug, Clone, Object, Serialize)]
#[oai(skip_serializing_if_is_none)]
pub struct ProgressDoc {
    /// Whole percent, absent when the total is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<i32>,
    /// Units done.
    pub amount: i64,
    /// Units in all, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    /// What is counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// The primary output of a successful job.
#[derive(Debug, Clone, Object, Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct OutputDoc {
    /// Always `http`: the file is read over HTTP.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    /// Size in bytes.
    pub size: i64,
    /// Media type of the file.
    pub content_type: String,
    /// Where to download it.
    pub uri: String,
}

/// A long-running job.
#[derive(Debug, Clone, Object, Serialize)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
#[serde(rename_all = "camelCase")]
pub struct JobDoc {
    /// Job id (UUID v7).
    pub job_id: Uuid,
    /// The job's task number (seed 003's `/tasks/{id}`).
    pub task_id: i64,
    /// The operation it runs.
    pub operation: String,
    /// Where it is in its life.
    pub job_status: JobStatusDoc,
    /// What it is doing now, for a person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase_description: Option<String>,
    /// Stages in all.
    pub total_number_of_stages: i32,
    /// The stage it is in (0 while queued).
    pub current_stage: i32,
    /// Progress inside the current stage.
    pub progress: ProgressDoc,
    /// When it was submitted.
    #[serde(serialize_with = "rfc3339")]
    pub created_time: DateTime<Utc>,
    /// A scheduled job: it waits QUEUED and is not started before this time.
    #[serde(
        serialize_with = "rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_before: Option<DateTime<Utc>>,
    /// When its current attempt started.
    #[serde(
        serialize_with = "rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_time: Option<DateTime<Utc>>,
    /// When it ended.
    #[serde(
        serialize_with = "rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub finished_time: Option<DateTime<Utc>>,
    /// Correlation id (from `X-Correlation-Id`, or generated).
    pub correlation_id: String,
    /// 1 on the first run; grows on restart or recovery.
    pub attempt: i32,
    /// Higher runs first (-10 to 10, 0 unless the submission asked otherwise).
    pub priority: i32,
    /// The longest one run may take, as an ISO 8601 duration (the submission's `timeout`, or
    /// the operation's `LONGRUN_MAX_RUNTIME` when smaller).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// On SUCCESS: the primary output file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputDoc>,
    /// On SUCCESS: the operation's result summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Value>,
    /// On FAILED: a problem document saying what failed and where.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// The links valid now.
    pub links: Vec<LinkDoc>,
}

impl JobDoc {
    /// The document of `job` for a client reading `media`.
    pub fn new(base: &str, job: &Job, files: &[OutputFile], media: &str) -> JobDoc {
        let live: Vec<&OutputFile> = files.iter().filter(|f| !f.consumed).collect();
        JobDoc {
            job_id: job.id,
            task_id: job.task_id,
            operation: job.operation.clone(),
            job_status: job.status.into(),
            phase_description: job.phase.clone(),
            total_number_of_stages: job.total_stages,
            current_stage: job.current_stage,
            progress: ProgressDoc {
                percent: job.progress.percent(),
                amount: job.progress.amount,
                total: job.progress.total,
                unit: job.progress.unit.clone(),
            },
            created_time: job.created,
            not_before: job.options.not_before,
            start_time: job.started,
            finished_time: job.finished,
            correlation_id: job.correlation_id.clone(),
            attempt: job.attempt,
            priority: job.options.priority,
            timeout: job.options.timeout.map(crate::domain::deadline::to_iso8601),
            output: if job.status == JobStatus::Success {
                live.first().map(|f| OutputDoc {
                    kind: "http".into(),
                    size: f.size,
                    content_type: f.content_type.clone(),
                    uri: file_href(base, f.id),
                })
            } else {
                None
            },
            summary: job.summary.clone(),
            error: job.error.clone(),
            links: job_links(base, job, files, media)
                .into_iter()
                .map(Into::into)
                .collect(),
        }
    }
}

/// One output file.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct FileDoc {
    /// File id.
    pub file_id: Uuid,
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub size: i64,
    /// Media type.
    pub content_type: String,
    /// Rows, for data files.
    pub rows: Option<i64>,
    /// Where to download it.
    pub href: String,
}

impl FileDoc {
    /// The document of one file.
    pub fn new(base: &str, f: &OutputFile) -> FileDoc {
        FileDoc {
            file_id: f.id,
            name: f.name.clone(),
            size: f.size,
            content_type: f.content_type.clone(),
            rows: f.rows,
            href: file_href(base, f.id),
        }
    }

    /// The document of one file of a data file set: its link in seed 004's shape.
    pub fn in_set(base: &str, f: &OutputFile) -> FileDoc {
        FileDoc {
            href: crate::domain::datafile_href(base, f.job_id, f.id),
            ..FileDoc::new(base, f)
        }
    }
}

/// The files a job produced.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct DataFileSetDoc {
    /// The job.
    pub job_id: Uuid,
    /// Its files.
    pub files: Vec<FileDoc>,
    /// `self`, `operator:subject` (the job) and one `file` per file.
    pub links: Vec<LinkDoc>,
}

/// A job's result.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ResultDoc {
    /// The job.
    pub job_id: Uuid,
    /// Its status (SUCCESS).
    pub job_status: JobStatusDoc,
    /// The operation's summary.
    pub summary: Option<Value>,
    /// Its files.
    pub files: Vec<FileDoc>,
    /// `self`, the job, and one `file` per file.
    pub links: Vec<LinkDoc>,
}

/// One line of a job's log.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct MessageDoc {
    /// Order within the log.
    pub seq: i64,
    /// When.
    pub time: DateTime<Utc>,
    /// INFO, WARNING or ERROR.
    pub level: String,
    /// state, stage, recovery, operation, download, ...
    pub kind: String,
    /// What happened.
    pub text: String,
    /// The attempt it belongs to.
    pub attempt: i32,
}

impl From<crate::domain::Message> for MessageDoc {
    fn from(m: crate::domain::Message) -> Self {
        MessageDoc {
            seq: m.seq,
            time: m.at,
            level: m.level.as_str().into(),
            kind: m.kind,
            text: m.text,
            attempt: m.attempt,
        }
    }
}

/// A job's log.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct MessagesDoc {
    /// The job.
    pub job_id: Uuid,
    /// Oldest first.
    pub messages: Vec<MessageDoc>,
    /// `self` and the job.
    pub links: Vec<LinkDoc>,
}

/// The technical executor of a job.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct OperatorDoc {
    /// The job.
    pub job_id: Uuid,
    /// Its status.
    pub job_status: JobStatusDoc,
    /// The node holding it, while running.
    pub node: Option<String>,
    /// The attempt.
    pub attempt: i32,
    /// Attempts allowed before an abandoned job fails.
    pub max_attempts: i32,
    /// When the lease runs out unless renewed.
    pub lease_expires: Option<DateTime<Utc>>,
    /// The last heartbeat.
    pub heartbeat: Option<DateTime<Utc>>,
    /// Whether a stop was asked.
    pub cancel_requested: bool,
    /// `self`, `operator:subject`, `operator:messages` and, when allowed, `operator:restart`.
    pub links: Vec<LinkDoc>,
}

/// A page of the job collection.
#[derive(Debug, Clone, Object, Serialize)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct JobListDoc {
    /// The jobs of this page.
    pub jobs: Vec<JobDoc>,
    /// How many jobs match the filters: on the first page, when at most 1,000 do (counting
    /// more would cost more than the page; the links still lead through all of them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// `self`, and `next` / `prev` when there are such pages.
    pub links: Vec<LinkDoc>,
}

/// The result of a bulk delete.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct PurgeDoc {
    /// How many jobs were removed.
    pub removed: u64,
}

/// A link with GET.
pub fn get_link(rel: &str, href: String, media: Option<&str>) -> LinkDoc {
    LinkDoc {
        rel: rel.into(),
        href,
        method: "GET".into(),
        media_type: media.map(str::to_string),
    }
}

/// Asynchronous options of a submission (the `async` element).
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct AsyncOptions {
    /// URL that receives a GET with `jobId`, `jobStatus` and `job` when the job ends.
    pub callback: Option<String>,
    /// Keep result files after their first complete download (default true).
    pub keep_result: Option<bool>,
    /// Where a signed notification event is POSTed when the job ends.
    pub notification: Option<NotificationOptions>,
    /// Higher runs first, from -10 to 10 (default 0); first in, first out within a priority,
    /// the tenants taking turns.
    #[oai(validator(minimum(value = "-10"), maximum(value = "10")))]
    pub priority: Option<i32>,
    /// The job waits QUEUED and is not started before this time (RFC 3339).
    pub not_before: Option<DateTime<Utc>>,
    /// The longest one run may take: an ISO 8601 duration (`PT10M`) or a number of seconds,
    /// up to 30 days (the operation's `LONGRUN_MAX_RUNTIME` caps it). Past it the run is
    /// stopped and the job ends FAILED with a `urn:longrun:problem:timeout` error.
    pub timeout: Option<TimeoutDoc>,
}

/// A time limit: an ISO 8601 duration such as `PT10M`, or a number of seconds. Documented as
/// `anyOf: [number, string]` (the framework's derived unions claim `type: object`), read as the
/// JSON value it is; `deadline::as_timeout` says what is wrong with it.
#[derive(Debug, Clone)]
pub struct TimeoutDoc(pub Value);

impl poem_openapi::types::Type for TimeoutDoc {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;
    fn name() -> std::borrow::Cow<'static, str> {
        "number_or_string_duration".into()
    }
    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
        let mut number = MetaSchema::new("number");
        number.minimum = Some(0.001);
        number.maximum = Some(crate::domain::deadline::TIMEOUT_MAX.as_secs_f64());
        let mut text = MetaSchema::new("string");
        text.pattern = Some(r"^\s*([0-9.]+|[Pp][0-9WwDdTtHhMmSs.,]+)\s*$".into());
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            any_of: vec![
                MetaSchemaRef::Inline(Box::new(number)),
                MetaSchemaRef::Inline(Box::new(text)),
            ],
            ..MetaSchema::ANY
        }))
    }
    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }
    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl poem_openapi::types::ParseFromJSON for TimeoutDoc {
    fn parse_from_json(value: Option<Value>) -> poem_openapi::types::ParseResult<Self> {
        Ok(TimeoutDoc(value.unwrap_or_default()))
    }
}

impl poem_openapi::types::ToJSON for TimeoutDoc {
    fn to_json(&self) -> Option<Value> {
        Some(self.0.clone())
    }
}

/// Encoding of a notification event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum NotificationFormat {
    Json,
    Xml,
}

/// A notification event target.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct NotificationOptions {
    /// http(s) URL that receives the POST.
    pub url: String,
    /// `json` (default) or `xml`.
    pub format: Option<NotificationFormat>,
}

impl AsyncOptions {
    /// The checked-domain form, or what is wrong with it (a 400).
    pub fn to_request(&self) -> Result<crate::domain::signals::AsyncRequest, Problem> {
        use crate::domain::signals::{AsyncRequest, NotificationTarget, NotifyFormat};
        let timeout = match &self.timeout {
            // In JSON an empty text is not a way of leaving the limit out.
            Some(TimeoutDoc(Value::String(t))) if t.trim().is_empty() => {
                return Err(Problem::bad_request(
                    "`async.timeout` is empty; leave it out for no limit",
                ))
            }
            Some(t) => crate::domain::deadline::as_timeout(&t.0, "async.timeout")
                .map_err(Problem::bad_request)?,
            None => None,
        };
        Ok(AsyncRequest {
            callback: self.callback.clone().filter(|c| !c.trim().is_empty()),
            keep_result: self.keep_result,
            notification: self.notification.as_ref().map(|n| NotificationTarget {
                url: n.url.clone(),
                format: match n.format {
                    Some(NotificationFormat::Xml) => NotifyFormat::Xml,
                    _ => NotifyFormat::Json,
                },
            }),
            priority: self.priority,
            not_before: self.not_before,
            timeout,
        })
    }

    /// The XML shape of the element.
    pub fn shape() -> crate::formats::xml::Shape {
        use crate::formats::xml::Shape;
        Shape::Object(vec![
            ("callback".into(), Shape::String),
            ("keepResult".into(), Shape::Boolean),
            ("priority".into(), Shape::Integer),
            ("notBefore".into(), Shape::String),
            ("timeout".into(), Shape::String),
            (
                "notification".into(),
                Shape::Object(vec![
                    ("url".into(), Shape::String),
                    ("format".into(), Shape::String),
                ]),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Progress;
    use serde_json::json;

    fn job(status: JobStatus) -> Job {
        let mut j = crate::domain::job::tests::job(status);
        j.task_id = 7;
        j.phase = Some("Importing \"records\" – ü".into());
        j.current_stage = 1;
        j.progress = Progress {
            amount: 5,
            total: Some(10),
            unit: Some("records".into()),
        };
        j.started = Some(j.created);
        j.correlation_id = "c<&>".into();
        j
    }

    /// The serde form of the documents is their `ToJSON` form, byte for byte.
    #[test]
    fn serde_form_equals_the_documents_form() {
        use poem_openapi::types::ToJSON;
        let mut done = job(JobStatus::Success);
        done.finished = Some(Utc::now());
        done.summary = Some(json!({"importedRecords": 3, "nested": {"b": [1, null]}}));
        let file = OutputFile {
            id: Uuid::now_v7(),
            job_id: done.id,
            name: "r.json".into(),
            content_type: "application/json".into(),
            size: 12,
            etag: "e".into(),
            object_key: "k".into(),
            rows: None,
            created: Utc::now(),
            consumed: false,
            attempt: 1,
        };
        let mut failed = job(JobStatus::Failed);
        failed.error = Some(json!({"type": "t", "status": 500}));
        failed.summary = Some(Value::Null);
        let mut queued = job(JobStatus::Queued);
        queued.phase = None;
        queued.started = None;
        queued.progress = Progress::default();
        let docs = vec![
            JobDoc::new(
                "http://h",
                &done,
                std::slice::from_ref(&file),
                "application/json",
            ),
            JobDoc::new("http://h", &failed, &[], "application/xml"),
            JobDoc::new("http://h", &queued, &[], "application/json"),
        ];
        for doc in &docs {
            let want = serde_json::to_string(&doc.to_json().unwrap()).unwrap();
            assert_eq!(serde_json::to_string(doc).unwrap(), want);
        }
        for count in [None, Some(3)] {
            let list = JobListDoc {
                jobs: docs.clone(),
                count,
                links: vec![LinkDoc {
                    rel: "self".into(),
                    href: "http://h/api/v1/jobs?status=FAILED".into(),
                    method: "GET".into(),
                    media_type: None,
                }],
            };
            let want = serde_json::to_string(&list.to_json().unwrap()).unwrap();
            assert_eq!(serde_json::to_string(&list).unwrap(), want);
        }
    }
}
