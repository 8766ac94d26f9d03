//! A background request (seed 001): a GET, or a POST with the body it was sent, of the service's
//! own API, run in-process as a job with the caller's identity; its status, content type and body
//! are kept as the job's result.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::{json, Value};

use super::{Context, OpError, Operation};

/// The answer of an in-process request.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: BoxStream<'static, Result<Bytes, String>>,
}

/// The body of an in-process POST: its content type and its bytes, streamed.
pub struct Posted {
    pub content_type: String,
    pub body: BoxStream<'static, Result<Bytes, std::io::Error>>,
}

/// Calls the service's own HTTP endpoint without a network (the API implements it).
#[async_trait]
pub trait InProcess: Send + Sync {
    /// GET `uri` (path and query) with `headers` for tenant `owner` with the `read` scope, or,
    /// with `posted`, POST it there with the `submit` scope (a background request never has
    /// more than its submitter, who needed `submit`); the answer's links use `origin` (a scheme
    /// and a host) when given.
    async fn call(
        &self,
        uri: &str,
        headers: &[(String, String)],
        origin: Option<&str>,
        owner: &str,
        posted: Option<Posted>,
    ) -> Result<Answer, String>;
}

/// Where a background request may go: the API and the seed dialects' own routes (never
/// `/bgrs` itself, nor the dashboard or the documents).
pub const BACKGROUND_PATHS: [&str; 3] = ["/api/", "/tasks", "/datafilesets"];

/// Whether a background request may go to `path`.
pub fn may_run_in_background(path: &str) -> bool {
    BACKGROUND_PATHS.iter().any(|p| path.starts_with(p))
}

/// The longest `uri` a background request may have.
pub const MAX_URI: usize = 8 * 1024;

/// The headers a background request replays: what shapes an answer, never a credential or an
/// origin (that is `origin`).
pub const ANSWER_HEADERS: [&str; 3] = ["accept", "accept-language", "x-correlation-id"];

/// The `request` operation.
pub struct RequestOperation {
    client: Arc<dyn InProcess>,
}

impl RequestOperation {
    pub fn new(client: Arc<dyn InProcess>) -> Self {
        RequestOperation { client }
    }
}

#[async_trait]
impl Operation for RequestOperation {
    fn name(&self) -> &str {
        "request"
    }
    fn description(&self) -> &str {
        "A GET of this service's API run in the background (bgrs=yes or Prefer: respond-async); its answer is kept as the result."
    }
    fn input_schema(&self) -> Value {
        json!({"type": "object", "required": ["uri"], "properties": {
            "uri": {"type": "string", "description": "path and query under /api/"},
            "name": {"type": "string"},
            "headers": {"type": "array", "description": "[name, value] pairs of Accept, Accept-Language or X-Correlation-Id", "items": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2}},
            "origin": {"type": "string", "description": "scheme and host of the links in the answer"},
            "method": {"type": "string", "enum": ["GET", "POST"], "description": "GET (the default), or POST with the job's stored body"},
            "contentType": {"type": "string", "description": "the content type of a POST's body"}
        }})
    }
    fn stages(&self) -> i32 {
        2
    }
    fn validate(&self, input: &Value) -> Result<(), String> {
        let uri = input
            .get("uri")
            .and_then(Value::as_str)
            .ok_or("`uri` is required")?;
        if !may_run_in_background(uri) {
            return Err(format!(
                "only requests under {} run in the background",
                BACKGROUND_PATHS.join(", ")
            ));
        }
        if uri.len() > MAX_URI {
            return Err(format!("`uri` is longer than {MAX_URI} bytes"));
        }
        if !uri.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "`uri` must be a path and query in visible ASCII (percent-encode the rest)".into(),
            );
        }
        for h in input
            .get("headers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = h.get(0).and_then(Value::as_str).unwrap_or_default();
            if !ANSWER_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "header `{name}` is not replayed; a background request takes {}",
                    ANSWER_HEADERS.join(", ")
                ));
            }
        }
        match input.get("method").map(|m| m.as_str()) {
            None | Some(Some("GET")) => {}
            Some(Some("POST")) => {
                input
                    .get("contentType")
                    .and_then(Value::as_str)
                    .filter(|t| {
                        t.len() <= 256 && t.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
                    })
                    .ok_or("a POST needs `contentType`, a media type")?;
            }
            _ => return Err("`method` must be GET or POST".into()),
        }
        if let Some(origin) = input.get("origin") {
            origin
                .as_str()
                .and_then(|o| url::Url::parse(o).ok())
                .filter(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.host().is_some()
                        && u.path() == "/"
                        && u.query().is_none()
                        && u.username().is_empty()
                })
                .ok_or("`origin` must be a scheme and a host, like https://api.example.com")?;
        }
        Ok(())
    }

    async fn run(&self, ctx: &mut Context) -> Result<Value, OpError> {
        let uri = ctx.input()["uri"].as_str().unwrap_or_default().to_string();
        let name = ctx.input()["name"].as_str().unwrap_or(&uri).to_string();
        // The job's owner, never its input: the GET reads only what the submitter could.
        let owner = ctx.owner().to_string();
        let origin = ctx.input()["origin"].as_str().map(str::to_string);
        let headers: Vec<(String, String)> = ctx.input()["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| Some((h[0].as_str()?.to_string(), h[1].as_str()?.to_string())))
            .collect();
        let method = ctx.input()["method"].as_str().unwrap_or("GET").to_string();
        let posted = if method == "POST" {
            // The body the POST was sent with, as it was stored at submission.
            let reader = ctx.open_input().await?;
            Some(Posted {
                content_type: ctx.input()["contentType"]
                    .as_str()
                    .unwrap_or("application/octet-stream")
                    .to_string(),
                body: tokio_util::io::ReaderStream::new(reader).boxed(),
            })
        } else {
            None
        };
        ctx.stage(1, 2, &format!("Running {method} {name}")).await?;
        let answer = self
            .client
            .call(&uri, &headers, origin.as_deref(), &owner, posted)
            .await
            .map_err(|e| OpError::failed("request", e))?;
        ctx.stage(2, 2, "Storing the answer").await?;
        ctx.saving("Storing the answer").await?;
        let mut file = ctx.create_file("result", &answer.content_type).await?;
        let mut body = answer.body;
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            ctx.checkpoint()?;
            let chunk = chunk.map_err(|e| OpError::failed("request", e))?;
            size += chunk.len() as u64;
            file.write(&chunk).await?;
            ctx.progress(size as i64, None, "bytes").await?;
        }
        let done = file.finish().await?;
        ctx.add_file(done).await?;
        ctx.message(
            crate::domain::Level::Info,
            &format!("{method} {name} answered {} ({size} bytes)", answer.status),
        )
        .await?;
        Ok(json!({"status": answer.status, "contentType": answer.content_type, "size": size}))
    }
}
