//! A small receiver of longrun's completion signals: it checks each delivery's Standard Webhooks
//! signature, drops repeats by `webhook-id`, and prints what arrived.
//!
//! ```sh
//! cargo run --example callback_receiver -- 127.0.0.1:9000 whsec_…   # the service's secret
//! ```
//!
//! Answers 204 for a good delivery, 401 for a bad signature or a timestamp off by more than five
//! minutes (the service then retries, and logs each try on the job's messages).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use longrun::domain::signals::{secret_key, sign};
use poem::http::StatusCode;
use poem::web::Data;
use poem::{handler, EndpointExt, Request, Route, Server};

struct State {
    key: Vec<u8>,
    seen: Mutex<HashSet<String>>,
}

fn verify(key: &[u8], req: &Request, body: &str) -> Result<String, String> {
    let h = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or(format!("missing {n}"))
    };
    let id = h("webhook-id")?;
    let ts: i64 = h("webhook-timestamp")?
        .parse()
        .map_err(|_| "bad webhook-timestamp".to_string())?;
    if (chrono::Utc::now().timestamp() - ts).abs() > 300 {
        return Err("timestamp too far from now".into());
    }
    let expected = sign(key, &id, ts, body.as_bytes());
    // The header may carry several space-separated signatures (during a secret rotation).
    if h("webhook-signature")?.split(' ').any(|s| s == expected) {
        Ok(id)
    } else {
        Err("no matching signature".into())
    }
}

#[handler]
fn receive(req: &Request, body: String, state: Data<&Arc<State>>) -> StatusCode {
    match verify(&state.key, req, &body) {
        Err(why) => {
            println!("REFUSED {} {}: {why}", req.method(), req.uri());
            StatusCode::UNAUTHORIZED
        }
        Ok(id) => {
            if !state.seen.lock().unwrap().insert(id.clone()) {
                println!("repeat of {id}, already handled");
                return StatusCode::NO_CONTENT;
            }
            if body.is_empty() {
                // A GET callback: jobId, jobStatus and job arrive as query parameters.
                println!("callback {id}: {}", req.uri());
            } else {
                println!("notification {id}: {body}");
            }
            StatusCode::NO_CONTENT
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let bind = args.next().unwrap_or_else(|| "127.0.0.1:9000".into());
    let secret = args
        .next()
        .or_else(|| std::env::var("LONGRUN_WEBHOOK_SECRET").ok())
        .expect("give the service's whsec_… secret as the second argument");
    let key = secret_key(&secret).expect("a whsec_… secret");
    let state = Arc::new(State {
        key,
        seen: Mutex::new(HashSet::new()),
    });
    println!("receiving on http://{bind}/ (any path)");
    let app = Route::new().at("/*path", receive).data(state);
    Server::new(poem::listener::TcpListener::bind(bind))
        .run(app)
        .await
}
