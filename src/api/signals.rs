//! Completion signals at the HTTP edge: checking a submission's `async` element, and the job's
//! live event stream.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use poem::web::sse::{Event, SSE};
use poem::Request;
use poem_openapi::param::{Header, Path};
use poem_openapi::types::ToJSON;
use poem_openapi::{Object, OpenApi};

use super::access::{Key, Read};
use super::docs::JobDoc;
use super::live::{JobStream, Live, HEARTBEAT};
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

/// One `job` event of a stream: the job as it is now, and its version.
#[derive(Debug, Clone, Object)]
pub struct JobEvent {
    #[oai(flatten)]
    pub job: JobDoc,
    /// The job's version: it grows with every change of the job, so it orders the events of
    /// one job (and tells a change sent twice).
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
    ) -> Result<Live<JobStream>, Problem> {
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
        let events = stream.map(|e: JobEvent| {
            Event::message(e.to_json_string())
                .event_type("job")
                .id(e.version.to_string())
        });
        Ok(Live::new(SSE::new(events).keep_alive(HEARTBEAT)))
    }
}

/// A stream fed by a task through a small channel; the task stops when the client goes away.
pub(super) fn async_stream_of<T, F, Fut>(f: F) -> BoxStream<'static, T>
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
