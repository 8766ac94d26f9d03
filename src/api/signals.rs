//! Completion signals at the HTTP edge: checking a submission's `async` element, and the job's
//! live event stream.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use poem::web::sse::Event;
use poem::Request;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::EventStream;
use poem_openapi::registry::{
    MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::access::{Key, Read};
use super::docs::JobDoc;
use super::wire::{base_url, Problem};
use super::{ApiTags, AppState};
use crate::domain::signals::AsyncRequest;
use crate::domain::JobOptions;
use crate::engine::EngineError;

/// Check the delivery targets of an `async` element and make the job's options from it.
/// A target that is refused now is a 400 before anything is stored.
pub async fn job_options(
    state: &AppState,
    req: &Request,
    a: AsyncRequest,
) -> Result<JobOptions, Problem> {
    for target in a.targets() {
        crate::net::check_now(target, state.engine.allow_private())
            .await
            .map_err(|why| {
                Problem::new(400, "refused-destination", format!("async: {why}")).for_req(req)
            })?;
    }
    Ok(JobOptions::from_async(
        a,
        &base_url(req, state.public_url.as_deref()),
    ))
}

/// One event of a job's stream: the job as it is now; the SSE `id` is its version.
#[derive(Debug, Clone, Object)]
pub struct JobEvent {
    #[oai(flatten)]
    pub job: JobDoc,
    #[oai(skip)]
    pub version: i64,
}

/// The live event stream of a job.
pub struct EventsApi {
    pub state: Arc<AppState>,
}

#[OpenApi(tag = "ApiTags::Jobs")]
impl EventsApi {
    /// Follow a job live (server-sent events)
    ///
    /// One `job` event per change, its data the job document (JSON) and its `id` the job's
    /// version; a reconnecting client sends `Last-Event-ID` and gets only newer states. The stream
    /// ends after the end state. Waiting clients share one wake-up per change.
    #[oai(
        path = "/api/v1/jobs/:id/events",
        method = "get",
        operation_id = "jobEvents"
    )]
    async fn events(
        &self,
        key: Key<Read>,
        req: &Request,
        /// Job id.
        id: Path<String>,
        /// The `id` of the last event received before reconnecting.
        #[oai(name = "Last-Event-ID")]
        last_event_id: Header<Option<String>>,
    ) -> Result<JobEvents, Problem> {
        let id: uuid::Uuid = id
            .parse()
            .map_err(|_| Problem::not_found(format!("no job with id `{}`", id.0)).for_req(req))?;
        let engine = self.state.engine.clone();
        // Fail with a problem document now, not inside the stream.
        super::access::job_for(&self.state, &key, id)
            .await
            .map_err(|p| p.for_req(req))?;
        let base = base_url(req, self.state.public_url.as_deref());
        let mut sent: i64 = last_event_id
            .0
            .as_deref()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let stream = async_stream_of(move |tx| async move {
            let mut sub = engine.store().changes().subscribe(id);
            loop {
                let (job, files) = match engine.get_with_files(id).await {
                    Ok(j) => j,
                    Err(EngineError::Gone(_)) | Err(EngineError::NotFound(_)) => return,
                    Err(e) => {
                        tracing::warn!(job_id = %id, error = %e, "event stream read failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if job.version > sent {
                    sent = job.version;
                    let ev = JobEvent {
                        job: JobDoc::new(&base, &job, &files, "application/json"),
                        version: job.version,
                    };
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                }
                if job.status.is_end() {
                    return;
                }
                tokio::select! {
                    _ = sub.changed() => {}
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(JobEvents(
            EventStream::new(stream)
                .keep_alive(Duration::from_secs(15))
                .to_event(|e: JobEvent| {
                    Event::message(e.to_json_string())
                        .event_type("job")
                        .id(e.version.to_string())
                }),
        ))
    }
}

/// A job's event stream, documented event by event: `event` is `job`, `id` the job's version,
/// `data` the job document (JSON, the `JobEvent` schema).
pub struct JobEvents(EventStream<BoxStream<'static, JobEvent>>);

impl poem::IntoResponse for JobEvents {
    fn into_response(self) -> poem::Response {
        self.0.into_response()
    }
}

impl ApiResponse for JobEvents {
    fn meta() -> MetaResponses {
        let text = || <String as Type>::schema_ref();
        let mut event = MetaSchema::new("object");
        event.description = Some(
            "One server-sent event: `event` is `job`, `id` the job's version and `data` the job \
             document as JSON (the `JobEvent` schema).",
        );
        event.required = vec!["data"];
        event.properties = vec![("id", text()), ("event", text()), ("data", text())];
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The job's events, until its end state",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "text/event-stream",
                    schema: MetaSchemaRef::Inline(Box::new(event)),
                }],
                headers: vec![],
            }],
        }
    }
    fn register(registry: &mut Registry) {
        JobEvent::register(registry);
    }
}

/// A stream fed by a task through a small channel; the task stops when the client goes away.
fn async_stream_of<T, F, Fut>(f: F) -> BoxStream<'static, T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(f(tx));
    tokio_stream_from(rx).boxed()
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
