//! Seed 003's tasks dialect over the one job model: `GET /tasks`, `GET /tasks/{id}` (also
//! `.json` / `.xml`), `?cancel=true`, `?prune=true`. Task ids are the jobs' task numbers.

use std::sync::Arc;

use poem::http::header;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::Value;
use uuid::Uuid;

use crate::api::access::{Admin, Key, Read, Submit};
use crate::api::docs::{get_link, LinkDoc};
use crate::api::wire::{base_url, negotiate, Enc, Problem};
use crate::api::{ApiTags, AppState};
use crate::domain::{job_links, Cursor, Job, JobStatus};
use crate::engine::{Cancelled, EngineError};

/// Counted on the first page up to this many tasks (as the job collection does).
const COUNT_CAP: u64 = 1000;

/// Progress of a running task.
#[derive(Debug, Clone, Object)]
pub struct TaskProgress {
    /// What it is doing now.
    pub task: String,
    /// Units done so far.
    pub amount: f64,
}

/// One task (seed 003).
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TaskDoc {
    /// The task number.
    pub id: i64,
    /// WAITING (queued behind a full pool), RUNNING, FINISHED, FAILED or CANCELLED.
    pub status: String,
    /// What the task does.
    pub description: String,
    /// Where to poll it.
    pub href: String,
    /// While running.
    pub progress: Option<TaskProgress>,
    /// When FINISHED: the result summary.
    pub result: Option<Value>,
    /// When FAILED: the exception report.
    pub exception: Option<Value>,
    /// The job behind the task.
    #[oai(rename = "jobId")]
    pub job_id: Uuid,
    /// The job's links.
    pub links: Vec<LinkDoc>,
}

/// `{"task": {...}}`.
#[derive(Debug, Clone, Object)]
pub struct TaskEnvelope {
    pub task: TaskDoc,
}

/// `{"tasks": [...], "count": n, "links": [...]}`: one page of the tasks, newest first.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TaskList {
    /// The tasks of this page (deleted tasks are not listed).
    pub tasks: Vec<TaskDoc>,
    /// How many tasks there are (deleted ones not counted): on the first page, when at most
    /// 1,000; the `next` links lead through all of them.
    pub count: Option<u64>,
    /// `self`, and `next` while there are more tasks.
    pub links: Vec<LinkDoc>,
}

/// Seed 003's status names.
pub fn task_status(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Queued => "WAITING",
        JobStatus::Started | JobStatus::Processing | JobStatus::Saving => "RUNNING",
        JobStatus::Success => "FINISHED",
        JobStatus::Failed => "FAILED",
        JobStatus::Cancelled | JobStatus::Deleted => "CANCELLED",
    }
}

fn task_doc(base: &str, job: &Job, suffix: &str) -> TaskDoc {
    TaskDoc {
        id: job.task_id,
        status: task_status(job.status).into(),
        description: format!("{} {} (job {})", job.operation, job.reference, job.id),
        href: format!("{base}/tasks/{}{suffix}", job.task_id),
        progress: (!job.status.is_end()).then(|| TaskProgress {
            task: job.phase.clone().unwrap_or_default(),
            amount: job.progress.amount as f64,
        }),
        result: (job.status == JobStatus::Success).then(|| job.summary.clone().unwrap_or_default()),
        exception: (job.status == JobStatus::Failed).then(|| job.error.clone().unwrap_or_default()),
        job_id: job.id,
        links: job_links(base, job, &[], "application/json")
            .into_iter()
            .map(LinkDoc::from)
            .collect(),
    }
}

/// The XML form: the seed's elements, with the polling URL as an `atom:link`.
fn task_xml(out: &mut String, t: &TaskDoc) {
    use crate::formats::xml::{escape_into, write_element};
    out.push_str("<task>");
    write_element(out, "id", &t.id.into());
    write_element(out, "status", &t.status.clone().into());
    write_element(out, "description", &t.description.clone().into());
    out.push_str("<atom:link xmlns:atom=\"http://www.w3.org/2005/Atom\" rel=\"alternate\" href=\"");
    escape_into(out, &t.href, true);
    out.push_str("\" type=\"application/xml\"/>");
    for (name, v) in [
        ("progress", t.progress.to_json()),
        ("result", t.result.clone()),
        ("exception", t.exception.clone()),
    ] {
        if let Some(v) = v {
            write_element(out, name, &v);
        }
    }
    write_element(out, "jobId", &t.job_id.to_string().into());
    write_element(out, "links", &t.links.to_json().unwrap_or_default());
    out.push_str("</task>");
}

/// A task or the list, in JSON or XML.
pub enum TasksAnswer {
    One(Box<TaskDoc>, Enc),
    Many(TaskList, Enc),
}

impl poem::IntoResponse for TasksAnswer {
    fn into_response(self) -> poem::Response {
        let next = match &self {
            TasksAnswer::Many(list, _) => list
                .links
                .iter()
                .find(|l| l.rel == "next")
                .map(|l| l.href.clone()),
            TasksAnswer::One(..) => None,
        };
        let (body, enc) = match self {
            TasksAnswer::One(t, Enc::Xml) => {
                let t = *t;
                let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
                task_xml(&mut s, &t);
                (s, Enc::Xml)
            }
            TasksAnswer::One(t, enc) => (TaskEnvelope { task: *t }.to_json_string(), enc),
            TasksAnswer::Many(list, Enc::Xml) => {
                use crate::formats::xml::{escape_into, write_element};
                let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><tasks>");
                for t in &list.tasks {
                    task_xml(&mut s, t);
                }
                if let Some(n) = list.count {
                    write_element(&mut s, "count", &n.into());
                }
                // The pages as `atom:link`s, like each task's polling URL.
                for l in &list.links {
                    s.push_str("<atom:link xmlns:atom=\"http://www.w3.org/2005/Atom\" rel=\"");
                    escape_into(&mut s, &l.rel, true);
                    s.push_str("\" href=\"");
                    escape_into(&mut s, &l.href, true);
                    s.push_str("\" type=\"application/xml\"/>");
                }
                s.push_str("</tasks>");
                (s, Enc::Xml)
            }
            TasksAnswer::Many(list, enc) => (list.to_json_string(), enc),
        };
        let mut b = poem::Response::builder()
            .content_type(enc.media())
            .header(header::VARY, "Accept");
        if let Some(next) = next {
            b = b.header(header::LINK, format!("<{next}>; rel=\"next\""));
        }
        b.body(body)
    }
}

impl ApiResponse for TasksAnswer {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The task (`{\"task\": …}`), in JSON or XML.",
                status: Some(200),
                status_range: None,
                content: vec![
                    MetaMediaType {
                        content_type: "application/json",
                        schema: TaskEnvelope::schema_ref(),
                    },
                    MetaMediaType {
                        content_type: "application/xml",
                        schema: TaskEnvelope::schema_ref(),
                    },
                ],
                headers: vec![],
            }],
        }
    }
    fn register(registry: &mut Registry) {
        TaskEnvelope::register(registry);
        TaskList::register(registry);
    }
}

/// The list of tasks (`{"tasks": […]}`), in JSON or XML.
pub struct TaskListAnswer(TasksAnswer);

impl poem::IntoResponse for TaskListAnswer {
    fn into_response(self) -> poem::Response {
        self.0.into_response()
    }
}

impl ApiResponse for TaskListAnswer {
    fn meta() -> MetaResponses {
        let schema = || TaskList::schema_ref();
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The tasks (`{\"tasks\": […]}`), in JSON or XML.",
                status: Some(200),
                status_range: None,
                content: vec![
                    MetaMediaType {
                        content_type: "application/json",
                        schema: schema(),
                    },
                    MetaMediaType {
                        content_type: "application/xml",
                        schema: schema(),
                    },
                ],
                headers: vec![],
            }],
        }
    }
    fn register(registry: &mut Registry) {
        TaskList::register(registry);
    }
}

/// Seed 003's tasks.
pub struct TasksApi {
    pub state: Arc<AppState>,
}

#[OpenApi(tag = "ApiTags::Dialects")]
impl TasksApi {
    /// List tasks (seed 003)
    ///
    /// All available tasks, newest first, `limit` a page (default 100, at most 1000) with a
    /// `next` link (and `Link` header) to the following page until every task was listed; the
    /// count on the first page. Deleted tasks are neither listed nor counted.
    #[oai(path = "/tasks", method = "get", operation_id = "listTasks")]
    async fn list(
        &self,
        key: Key<Read>,
        req: &Request,
        /// How many (1–1000).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u64>>,
        /// Where the page starts (from a `next` link).
        cursor: Query<Option<String>>,
    ) -> Result<TaskListAnswer, Problem> {
        let run = async {
            let enc = negotiate(req)?;
            let limit = limit.0.unwrap_or(100);
            if !(1..=1000).contains(&limit) {
                return Err(Problem::bad_request("`limit` must be between 1 and 1000"));
            }
            let cur = match cursor.0.as_deref().filter(|c| !c.is_empty()) {
                None => None,
                Some(c) => Some(Cursor::decode(c).ok_or_else(|| {
                    Problem::bad_request("cursor is not one this service gave out")
                })?),
            };
            let base = base_url(req, self.state.public_url.as_deref());
            // The collection never holds a deleted job (`store::condition`), so pages are full
            // and the count is right.
            let filter = crate::domain::JobFilter {
                owner: key.owner(),
                ..Default::default()
            };
            let engine = &self.state.engine;
            let page = engine.list(&filter, true, cur, limit).await?;
            let count = match (cur, page.next) {
                (Some(_), _) => None,
                (None, None) => Some(page.items.len() as u64),
                (None, Some(_)) => engine.count_upto(&filter, COUNT_CAP).await?,
            };
            let ext = if enc == Enc::Xml { ".xml" } else { ".json" };
            let href = |c: Option<Cursor>| {
                let mut q = url::form_urlencoded::Serializer::new(String::new());
                q.append_pair("limit", &limit.to_string());
                if let Some(c) = c {
                    q.append_pair("cursor", &c.encode());
                }
                format!("{base}/tasks?{}", q.finish())
            };
            let media = Some(enc.media());
            let mut links = vec![get_link("self", href(cur), media)];
            if let Some(n) = page.next {
                links.push(get_link("next", href(Some(n)), media));
            }
            Ok(TaskListAnswer(TasksAnswer::Many(
                TaskList {
                    tasks: page.items.iter().map(|j| task_doc(&base, j, ext)).collect(),
                    count,
                    links,
                },
                enc,
            )))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }

    /// Read, cancel or prune a task (seed 003)
    ///
    /// `id` may end in `.json` or `.xml` to choose the encoding. `cancel=true` asks the task to
    /// stop and answers at once (repeating it is harmless); `prune=true` removes a finished task
    /// and has no effect on an unfinished one.
    #[oai(path = "/tasks/:id", method = "get", operation_id = "getTask")]
    async fn get(
        &self,
        key: Key<Read>,
        req: &Request,
        /// Task number, optionally with `.json` or `.xml`.
        id: Path<String>,
        /// Ask the task to stop.
        cancel: Query<Option<bool>>,
        /// Remove the task if it has finished.
        prune: Query<Option<bool>>,
    ) -> Result<TasksAnswer, Problem> {
        let run = async {
            // The effect, and so the scope it needs, is chosen by the decoded values this handler
            // acts on below, however the query spelled them (`%70rune`, repeated, …).
            if prune.0 == Some(true) {
                key.at_least::<Admin>(req, "prune=true")?;
            } else if cancel.0 == Some(true) {
                key.at_least::<Submit>(req, "cancel=true")?;
            }
            let (num, enc) = if let Some(n) = id.strip_suffix(".json") {
                (n, Enc::Json)
            } else if let Some(n) = id.strip_suffix(".xml") {
                (n, Enc::Xml)
            } else {
                (id.as_str(), negotiate(req)?)
            };
            let missing = || Problem::not_found(format!("no task `{}`", id.0));
            let num: i64 = num.parse().map_err(|_| missing())?;
            let engine = &self.state.engine;
            let mut job = match engine
                .store()
                .job_by_task_id(num)
                .await
                .map_err(EngineError::from)?
            {
                Some(j) if j.status != JobStatus::Deleted && key.owns(&j.owner) => j,
                _ => return Err(missing()),
            };
            if cancel.0 == Some(true) {
                match engine.cancel(job.id).await {
                    Ok(Cancelled::Done(j)) | Ok(Cancelled::Pending(j)) => job = j,
                    // Cancelling a finished task changes nothing; say how it is.
                    Err(EngineError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if prune.0 == Some(true) && job.status.is_end() {
                engine.prune(&job).await?;
            }
            let base = base_url(req, self.state.public_url.as_deref());
            let ext = if enc == Enc::Xml { ".xml" } else { ".json" };
            Ok(TasksAnswer::One(Box::new(task_doc(&base, &job, ext)), enc))
        };
        run.await.map_err(|p: Problem| p.for_req(req))
    }
}
