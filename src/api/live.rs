//! Live streams at the HTTP edge (server-sent events): the collection's stream of job changes,
//! and a job's log followed as it is written (`getJobMessages` asked for `text/event-stream`).
//! What they send is fed by `engine::feed`; this room only renders it.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use poem::web::sse::{Event, SSE};
use poem::Request;
use poem_openapi::param::{Header, Query};
use poem_openapi::registry::{
    MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::access::{Key, Read};
use super::docs::{JobDoc, MessageDoc};
use super::signals::{async_stream_of, JobEvent};
use super::wire::{base_url, Problem, StatusText, TimeText};
use super::{ApiTags, AppState};
use crate::domain::{job_href, ChangePoint, Message};
use crate::engine::FeedItem;

/// How often an idle stream sends a comment line, so proxies keep it open.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// A job that left the collection: sent for a job this stream showed before it was deleted.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct JobRemoved {
    /// The job's id.
    pub id: Uuid,
    /// The job's URL (it now answers 410 Gone).
    pub href: String,
}

/// The collection's live stream.
pub struct LiveApi {
    pub state: Arc<AppState>,
}

#[OpenApi(tag = "ApiTags::Jobs")]
impl LiveApi {
    /// Follow the collection live (server-sent events)
    ///
    /// One connection for every job the caller may see: a `job` event each time one of them
    /// changes (submitted, started, progress, ended, restarted), its `data` the job document
    /// (JSON) and its `id` a point in the order of changes; a `removed` event when a job it showed
    /// was deleted. Filter with the audit filters (`status`, `operation`, `correlationId`, time
    /// windows); a job that stops matching is sent once more, so a list can drop it. A new
    /// connection starts with the changes from now on; a reconnecting client sends
    /// `Last-Event-ID` and gets what changed since (from a few seconds before that point, so a
    /// change may come twice: a job's `version` orders its changes). Changes made by other
    /// instances come too. A comment line every 15 s keeps proxies from closing an idle stream.
    #[oai(path = "/api/v1/events", method = "get", operation_id = "streamEvents")]
    #[allow(clippy::too_many_arguments)]
    async fn events(
        &self,
        key: Key<Read>,
        req: &Request,
        /// Statuses to include (repeatable, or comma-separated).
        status: Query<Option<Vec<StatusText<false>>>>,
        /// Operation name.
        operation: Query<Option<String>>,
        /// Correlation id.
        #[oai(name = "correlationId")]
        correlation_id: Query<Option<String>>,
        /// Created after this RFC 3339 time.
        #[oai(name = "createdAfter")]
        created_after: Query<Option<TimeText>>,
        /// Created before this RFC 3339 time.
        #[oai(name = "createdBefore")]
        created_before: Query<Option<TimeText>>,
        /// Finished after this RFC 3339 time.
        #[oai(name = "finishedAfter")]
        finished_after: Query<Option<TimeText>>,
        /// Finished before this RFC 3339 time.
        #[oai(name = "finishedBefore")]
        finished_before: Query<Option<TimeText>>,
        /// The start of a job's id or of its correlation id (letter case aside), up to 200
        /// characters.
        search: Query<Option<String>>,
        /// Only jobs of this priority (-10 to 10).
        #[oai(validator(minimum(value = "-10"), maximum(value = "10")))]
        priority: Query<Option<i32>>,
        /// The `id` of the last event received before reconnecting.
        #[oai(
            name = "Last-Event-ID",
            validator(pattern = r"^\s*([0-9]+\.[0-9A-Fa-f-]{36})?\s*$")
        )]
        last_event_id: Header<Option<String>>,
    ) -> Result<Live<CollectionStream>, Problem> {
        let run = async {
            // The query's filters read as a body's are: one reading, `AuditFilter::for_caller`.
            let f = super::exports::AuditFilter {
                status: status
                    .0
                    .clone()
                    .map(|v| v.into_iter().map(|s| s.0).collect()),
                operation: operation.0.clone(),
                correlation_id: correlation_id.0.clone(),
                created_after: created_after.0.clone(),
                created_before: created_before.0.clone(),
                finished_after: finished_after.0.clone(),
                finished_before: finished_before.0.clone(),
                search: search.0.clone(),
                priority: priority.0,
            }
            .for_caller(&key)?;
            let resume = match last_event_id.0.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(v) => Some(ChangePoint::decode(v).ok_or_else(|| {
                    Problem::bad_request(format!(
                        "Last-Event-ID `{v}` is not an event id of this stream \
                         (they look like 1767225600000.0192…)"
                    ))
                })?),
            };
            Ok((f, resume))
        };
        let (f, resume) = run.await.map_err(|p: Problem| p.for_req(req))?;
        let base = base_url(req, self.state.public_url.as_deref());
        let engine = self.state.engine.clone();
        let items = async_stream_of(move |tx| engine.feed_jobs(f, resume, tx));
        let events = futures::StreamExt::map(items, move |item| match item {
            FeedItem::Changed(job, files) => Event::message(
                JobEvent {
                    job: JobDoc::new(&base, &job, &files, "application/json"),
                    version: job.version,
                }
                .to_json_string(),
            )
            .event_type("job")
            .id(ChangePoint::of(&job).encode()),
            FeedItem::Removed(id) => Event::message(
                JobRemoved {
                    id,
                    href: job_href(&base, id),
                }
                .to_json_string(),
            )
            .event_type("removed"),
        });
        Ok(Live::new(SSE::new(events).keep_alive(HEARTBEAT)))
    }
}

/// A job's log as it is written: a `message` event per line, its `id` the line's `seq`.
pub fn message_stream(state: &AppState, id: Uuid, after: i64) -> Live<MessageStream> {
    let engine = state.engine.clone();
    let lines = async_stream_of(move |tx| async move {
        if let Err(e) = engine.follow_messages(id, after, tx).await {
            tracing::warn!(job_id = %id, error = %e, "following a job's log failed");
        }
    });
    let events = futures::StreamExt::map(lines, |m: Message| {
        let seq = m.seq;
        Event::message(MessageDoc::from(m).to_json_string())
            .event_type("message")
            .id(seq.to_string())
    });
    Live::new(SSE::new(events).keep_alive(HEARTBEAT))
}

/// What a kind of stream says of itself in the OpenAPI document.
pub trait StreamMeta: Send + 'static {
    /// The answer's description.
    const ANSWER: &'static str;
    /// The description of one event.
    const EVENT: &'static str;
    /// The schemas its events' data refer to.
    fn register(registry: &mut Registry);
}

/// The collection's events.
pub enum CollectionStream {}

impl StreamMeta for CollectionStream {
    const ANSWER: &'static str = "The changes of the jobs the caller may see, until it disconnects";
    const EVENT: &'static str = "One server-sent event: `event` is `job` (`data` the job document \
         as JSON, the `JobEvent` schema; `id` a point in the order of changes, for \
         `Last-Event-ID`) or `removed` (`data` a `JobRemoved`: a job this stream showed was \
         deleted).";
    fn register(registry: &mut Registry) {
        JobEvent::register(registry);
        JobRemoved::register(registry);
    }
}

/// A job's followed log.
pub enum MessageStream {}

impl StreamMeta for MessageStream {
    const ANSWER: &'static str = "The job's log as it is written, until the job has ended";
    const EVENT: &'static str = "One server-sent event: `event` is `message`, `data` one line of \
         the log as JSON (the `MessageDoc` schema) and `id` its `seq`, for `Last-Event-ID`.";
    fn register(registry: &mut Registry) {
        MessageDoc::register(registry);
    }
}

/// One job's events.
pub enum JobStream {}

impl StreamMeta for JobStream {
    const ANSWER: &'static str = "The job's events, until its end state";
    const EVENT: &'static str = "One server-sent event: `event` is `job`, `id` the job's version \
         and `data` the job document as JSON (the `JobEvent` schema).";
    fn register(registry: &mut Registry) {
        JobEvent::register(registry);
    }
}

/// A server-sent event stream, documented event by event.
pub struct Live<M: StreamMeta>(SSE, PhantomData<M>);

impl<M: StreamMeta> Live<M> {
    pub fn new(sse: SSE) -> Self {
        Live(sse, PhantomData)
    }

    /// The `text/event-stream` media type of an answer, its schema one event.
    pub fn media() -> MetaMediaType {
        let text = || <String as Type>::schema_ref();
        let mut event = MetaSchema::new("object");
        event.description = Some(M::EVENT);
        event.required = vec!["data"];
        event.properties = vec![("id", text()), ("event", text()), ("data", text())];
        MetaMediaType {
            content_type: "text/event-stream",
            schema: MetaSchemaRef::Inline(Box::new(event)),
        }
    }
}

impl<M: StreamMeta> poem::IntoResponse for Live<M> {
    fn into_response(self) -> poem::Response {
        self.0.into_response()
    }
}

impl<M: StreamMeta> ApiResponse for Live<M> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: M::ANSWER,
                status: Some(200),
                status_range: None,
                content: vec![Self::media()],
                headers: vec![],
            }],
        }
    }
    fn register(registry: &mut Registry) {
        M::register(registry);
    }
}
