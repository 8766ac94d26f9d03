//! `Idempotency-Key` on submissions (IETF draft): the same key with the same request within 24 h
//! answers what the first one answered; with another body it is a 422. A retry while the first is
//! still being handled waits for its answer, or for its lease to run out (its process died: the
//! retry is handled as new); a 409 only after waiting `PENDING_WAIT`. Keys belong to the caller
//! and hold across instances (they live in the database).

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use poem::http::{header, HeaderValue, StatusCode};
use poem::{Body, IntoResponse, Request, Response};
use sha2::{Digest, Sha256};

use super::wire::{hex, Problem};
use super::AppState;
use crate::store::{KeptAnswer, Reservation};

/// Largest first answer kept for replay; a larger one is replayed with its status and Location.
const KEEP_BODY: usize = 4 * 1024 * 1024;

/// How long a reservation holds without being renewed: its request renews it every third of
/// this while it is handled, so one whose process died is free again this long after.
const PENDING_LEASE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a request waits for another one with its key to answer (or to lose its lease)
/// before it answers 409.
const PENDING_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// What an `Idempotency-Key` may be, as the OpenAPI document declares it: 1 to 253 visible
/// ASCII characters other than `"`, optionally in quotes (the draft's structured-field string).
pub const KEY_PATTERN: &str = "^\"?[!#-~]{1,253}\"?$";

/// The key of an `Idempotency-Key` value, if it fits `KEY_PATTERN`.
fn key_of(value: &str) -> Option<&str> {
    let v = value.trim();
    let v = v.strip_prefix('"').unwrap_or(v);
    let v = v.strip_suffix('"').unwrap_or(v);
    let fits =
        (1..=253).contains(&v.len()) && v.bytes().all(|b| (b'!'..=b'~').contains(&b) && b != b'"');
    fits.then_some(v)
}

fn problem(req: &Request, status: u16, slug: &str, detail: &str) -> Response {
    Problem::new(status, slug, detail)
        .for_req(req)
        .into_response()
}

/// Handle `req` under its `Idempotency-Key` (the caller checked there is one). A request without
/// a valid credential is passed on as it is (its operation answers 401).
pub async fn handle<F, Fut>(state: &AppState, mut req: Request, call: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let Some(tenant) = super::access::authenticated_tenant(&req).map(str::to_string) else {
        return call(req).await;
    };
    let Some(key) = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .and_then(key_of)
        .map(str::to_string)
    else {
        return problem(
            &req,
            400,
            "bad-request",
            "`Idempotency-Key` must be 1 to 253 visible ASCII characters without spaces or `\"`, \
             optionally in quotes",
        );
    };
    let id = hex(&Sha256::digest(format!("{tenant}\n{key}").as_bytes()));
    let target = format!(
        "{} {}\n",
        req.method(),
        req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("")
    );
    let store = state.engine.store();
    // A key being handled elsewhere: wait for its answer (replayed), or for its lease to run out
    // (its process died: handled as new here), up to PENDING_WAIT; only then 409.
    let waited_since = std::time::Instant::now();
    let reservation = loop {
        let now = chrono::Utc::now();
        let stale = now - chrono::Duration::from_std(PENDING_LEASE).unwrap_or_default();
        match store
            .idem_reserve(&id, now - chrono::Duration::hours(24), stale)
            .await
        {
            Ok(Reservation::Pending) if waited_since.elapsed() < PENDING_WAIT => {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            Ok(r) => break r,
            Err(e) => {
                return Problem::from(crate::engine::EngineError::from(e))
                    .for_req(&req)
                    .into_response()
            }
        }
    };
    match reservation {
        Reservation::Pending => {
            let mut p = Problem::new(
                409,
                "request-in-progress",
                "a request with this Idempotency-Key is still being handled; try again shortly",
            )
            .for_req(&req);
            p.retry_after = Some(PENDING_LEASE.as_secs());
            p.into_response()
        }
        Reservation::Done(kept) => {
            let mut h = Sha256::new();
            h.update(target.as_bytes());
            let mut body = req.take_body().into_bytes_stream();
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(c) => h.update(&c),
                    Err(_) => break,
                }
            }
            if hex(&h.finalize()) != kept.fingerprint {
                return problem(
                    &req,
                    422,
                    "idempotency-key-reused",
                    "this Idempotency-Key was used with a different request; use a new key for a new request",
                );
            }
            replay(&kept)
        }
        Reservation::Mine => {
            let hasher = Arc::new(Mutex::new(Sha256::new()));
            hasher.lock().unwrap().update(target.as_bytes());
            let h2 = hasher.clone();
            let stream = req.take_body().into_bytes_stream().inspect(move |c| {
                if let Ok(c) = c {
                    h2.lock().unwrap().update(c);
                }
            });
            req.set_body(Body::from_bytes_stream(stream));
            // The reservation's lease is renewed while the request is handled (a long upload).
            let resp = {
                let renew = async {
                    loop {
                        tokio::time::sleep(PENDING_LEASE / 3).await;
                        if let Err(e) = store.idem_renew(&id).await {
                            tracing::warn!(error = %e, "could not renew an idempotency key");
                        }
                    }
                };
                tokio::select! {
                    resp = call(req) => resp,
                    _ = renew => unreachable!("the renewal loop never ends"),
                }
            };
            if !resp.status().is_success() {
                let _ = store.idem_release(&id).await;
                return resp;
            }
            // The answer is kept whole up to KEEP_BODY; a larger one is kept as its status and
            // Location, and streamed on to the client without being held.
            let (parts, body) = resp.into_parts();
            let mut stream = body.into_bytes_stream();
            let mut head: Vec<u8> = Vec::new();
            let mut rest = None;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(c) => {
                        head.extend_from_slice(&c);
                        if head.len() > KEEP_BODY {
                            rest = Some(stream);
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            let fingerprint = hex(&hasher.lock().unwrap().clone().finalize());
            let text = if rest.is_none() {
                std::str::from_utf8(&head).unwrap_or("").to_string()
            } else {
                String::new()
            };
            let kept = KeptAnswer {
                fingerprint,
                status: parts.status.as_u16(),
                location: parts
                    .headers
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                content_type: parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                body: text,
            };
            if let Err(e) = store.idem_complete(&id, &kept).await {
                tracing::warn!(error = %e, "could not keep an idempotent answer");
            }
            let body = match rest {
                None => Body::from(head),
                Some(rest) => Body::from_bytes_stream(
                    futures::stream::once(async move { Ok(bytes::Bytes::from(head)) }).chain(rest),
                ),
            };
            Response::from_parts(parts, body)
        }
    }
}

fn replay(kept: &KeptAnswer) -> Response {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(kept.status).unwrap_or(StatusCode::OK))
        .header("idempotent-replayed", HeaderValue::from_static("true"));
    if let Some(l) = &kept.location {
        b = b.header(header::LOCATION, l.as_str());
    }
    if let Some(ct) = &kept.content_type {
        b = b.header(header::CONTENT_TYPE, ct.as_str());
    }
    b.body(kept.body.clone())
}

#[cfg(test)]
mod key_tests {
    use super::key_of;

    #[test]
    fn keys_fit_the_declared_pattern() {
        assert_eq!(key_of("abc-1"), Some("abc-1"));
        assert_eq!(key_of("\"abc-1\""), Some("abc-1"));
        assert_eq!(key_of("  k  "), Some("k"));
        assert_eq!(key_of(&"x".repeat(253)), Some("x".repeat(253).as_str()));
        for bad in ["", "\"\"", "a b", "a\"b", "\u{e9}", &"x".repeat(254)] {
            assert_eq!(key_of(bad), None, "{bad:?}");
        }
    }
}
