//! `/downloads/{fileId}`: files streamed from the object store, with single Range requests.

use std::sync::Arc;

use futures::StreamExt;
use poem::http::{header, HeaderValue, StatusCode};
use poem::{Body, IntoResponse, Request, Response};
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::access::KeyOrLink;
use super::wire::Problem;
use super::{ApiTags, AppState};

/// A file, whole (200) or in part (206).
pub struct Download(Response);

impl IntoResponse for Download {
    fn into_response(self) -> Response {
        self.0
    }
}

impl ApiResponse for Download {
    fn meta() -> MetaResponses {
        // Each file has its own content type (CSV, JSON, XML, a delta document, ...).
        // `application/octet-stream` first, for client generators that know only it; `*/*`
        // for the file's real content type.
        let bin = || {
            vec![
                MetaMediaType {
                    content_type: "application/octet-stream",
                    schema: <poem_openapi::types::Binary<Vec<u8>> as poem_openapi::types::Type>::schema_ref(),
                },
                MetaMediaType {
                    content_type: "*/*",
                    schema: <serde_json::Value as poem_openapi::types::Type>::schema_ref(),
                },
            ]
        };
        MetaResponses {
            responses: vec![
                MetaResponse {
                    description: "The whole file, with its own content type",
                    status: Some(200),
                    status_range: None,
                    content: bin(),
                    headers: vec![],
                },
                // A byte range has the file's content type but is no whole document: no schema.
                MetaResponse {
                    description: "The requested byte range, with the file's content type and a \
                                  `Content-Range`",
                    status: Some(206),
                    status_range: None,
                    content: vec![],
                    headers: vec![],
                },
                MetaResponse {
                    description: "The range lies outside the file",
                    status: Some(416),
                    status_range: None,
                    content: vec![],
                    headers: vec![],
                },
            ],
        }
    }
    fn register(_registry: &mut Registry) {}
}

/// Parse a single `bytes=a-b`, `bytes=a-` or `bytes=-n` range against `size`.
/// `Ok(None)`: no usable range (serve all); `Err(())`: unsatisfiable.
pub(crate) fn parse_range(h: &str, size: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // several ranges: we answer with the whole file, which is allowed
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        size.saturating_sub(n)..size
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            size
        } else {
            let e: u64 = b.parse().map_err(|_| ())?;
            if e < start {
                return Err(());
            }
            (e + 1).min(size)
        };
        start..end
    };
    if range.start >= size || range.is_empty() {
        return Err(());
    }
    Ok(Some(range))
}

/// A body stream that runs `on_done` when it is dropped after every byte was handed out.
struct ReadOnce {
    inner: futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>,
    left: u64,
    on_done: Option<Box<dyn FnOnce() + Send>>,
}

impl futures::Stream for ReadOnce {
    type Item = std::io::Result<bytes::Bytes>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let p = self.inner.poll_next_unpin(cx);
        if let std::task::Poll::Ready(Some(Ok(b))) = &p {
            self.left = self.left.saturating_sub(b.len() as u64);
        }
        p
    }
}

impl Drop for ReadOnce {
    fn drop(&mut self) {
        if self.left == 0 {
            if let Some(f) = self.on_done.take() {
                f();
            }
        }
    }
}

/// Downloads.
pub struct DownloadsApi {
    pub state: Arc<AppState>,
}

#[OpenApi(tag = "ApiTags::Downloads")]
impl DownloadsApi {
    /// Download an output file
    ///
    /// Streams the file with its content type, `Content-Length`, `ETag` and single `Range`
    /// support. A file of a job submitted with `keepResult: false` is removed after its first
    /// complete download; later reads answer 410.
    #[oai(
        path = "/downloads/:file_id",
        method = "get",
        operation_id = "download"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn download(
        &self,
        reader: KeyOrLink,
        req: &Request,
        /// File id.
        file_id: Path<String>,
        /// A single byte range (`bytes=0-99`).
        #[oai(name = "Range")]
        range: Header<Option<String>>,
        /// An ETag from an earlier answer.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
        /// Expiry (Unix seconds) of a signed link.
        expires: Query<Option<i64>>,
        /// Signature of a signed link (made by `POST /api/v1/jobs/{id}/share`).
        sig: Query<Option<String>>,
    ) -> Result<Download, Problem> {
        serve_file(
            &self.state,
            reader.caller(),
            req,
            &file_id,
            None,
            range.0.as_deref(),
            if_none_match.0.as_deref(),
            (expires.0, sig.0.as_deref()),
        )
        .await
    }
}

/// A file as `/downloads/{fileId}` serves it — the one way a file is served, by the canonical
/// route and every dialect's (whole or a single range, ETag, read-once files): to `caller`
/// when it owns the job, or to the holder of a signed link. `set`: the file must belong to this
/// data file set (job), else it is not found.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve_file(
    state: &AppState,
    caller: Option<&super::access::Caller>,
    req: &Request,
    file_id: &str,
    set: Option<Uuid>,
    range: Option<&str>,
    if_none_match: Option<&str>,
    (expires, sig): (Option<i64>, Option<&str>),
) -> Result<Download, Problem> {
    let run = async {
        let missing = || Problem::not_found(format!("no file `{file_id}`"));
        let id: Uuid = file_id.parse().map_err(|_| missing())?;
        let engine = &state.engine;
        let (file, job) = engine.file_record(id).await.map_err(|e| match e {
            crate::engine::EngineError::NotFound(_) => missing(),
            other => other.into(),
        })?;
        if set.is_some_and(|s| s != job.id) {
            return Err(missing());
        }
        // The owner's key, or a signed link over (file, tenant, expiry).
        match (expires, sig) {
            (Some(exp), Some(sig)) => {
                let tenant = job
                    .owner
                    .as_deref()
                    .unwrap_or(crate::domain::access::OPEN_TENANT);
                if !crate::domain::signals::share_valid(&state.share_key, file.id, tenant, exp, sig)
                {
                    return Err(missing());
                }
                if chrono::Utc::now().timestamp() > exp {
                    return Err(Problem::new(410, "gone", "this signed link has expired"));
                }
            }
            _ if caller.is_some_and(|c| c.owns(&job.owner)) => {}
            _ => return Err(missing()),
        }
        if file.consumed || job.status == crate::domain::JobStatus::Deleted {
            return Err(crate::engine::EngineError::Gone(id).into());
        }
        let etag = format!("\"{}\"", file.etag);
        if if_none_match.map(|v| v.split(',').any(|t| t.trim() == etag)) == Some(true) {
            let mut r = Response::builder()
                .status(StatusCode::NOT_MODIFIED)
                .finish();
            r.headers_mut()
                .insert(header::ETAG, HeaderValue::from_str(&etag).unwrap());
            return Ok(Download(r));
        }
        let size = file.size.max(0) as u64;
        let want = match range {
            None => None,
            Some(h) => match parse_range(h, size) {
                Ok(r) => r,
                Err(()) => {
                    let mut r = Problem::new(
                        416,
                        "range-not-satisfiable",
                        format!("the file has {size} bytes; `{h}` lies outside it"),
                    )
                    .for_req(req)
                    .into_response();
                    r.headers_mut().insert(
                        header::CONTENT_RANGE,
                        HeaderValue::from_str(&format!("bytes */{size}")).unwrap(),
                    );
                    return Ok(Download(r));
                }
            },
        };
        let read = engine
            .blobs()
            .get(&file.object_key, want.clone())
            .await
            .map_err(|e| match e {
                crate::blobs::BlobError::NotFound => {
                    Problem::new(410, "gone", format!("file {id} is no longer stored"))
                }
                other => crate::engine::EngineError::from(other).into(),
            })?;
        let whole = want.is_none();
        let consume = whole && !job.options.keep_result;
        let len = read.range.end - read.range.start;
        let stream = read.stream.map(|r| r.map_err(std::io::Error::other));
        let body = if consume {
            // Removed only once every byte went out: a broken download can be retried.
            let engine = engine.clone();
            let f = file.clone();
            Body::from_bytes_stream(ReadOnce {
                inner: stream.boxed(),
                left: len,
                on_done: Some(Box::new(move || {
                    tokio::spawn(async move {
                        if let Err(e) = engine.consume(&f).await {
                            tracing::warn!(error = %e, "could not remove a read-once file");
                        }
                    });
                })),
            })
        } else {
            Body::from_bytes_stream(stream)
        };
        let mut r = Response::builder()
            .status(if whole {
                StatusCode::OK
            } else {
                StatusCode::PARTIAL_CONTENT
            })
            .content_type(file.content_type.clone())
            .header(header::CONTENT_LENGTH, len)
            .header(header::ETAG, etag)
            .header(header::ACCEPT_RANGES, "bytes")
            .header(
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", file.name.replace('"', "")),
            )
            .body(body);
        if !whole {
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!(
                    "bytes {}-{}/{}",
                    read.range.start,
                    read.range.end - 1,
                    size
                ))
                .unwrap(),
            );
        }
        Ok(Download(r))
    };
    run.await.map_err(|p: Problem| p.for_req(req))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some(0..10)));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some(90..100)));
        assert_eq!(parse_range("bytes=-5", 100), Ok(Some(95..100)));
        assert_eq!(parse_range("bytes=95-200", 100), Ok(Some(95..100)));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=5-1", 100), Err(()));
        assert_eq!(parse_range("items=1-2", 100), Ok(None));
    }
}
