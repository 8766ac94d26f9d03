//! A small receiver of longrun's completion signals: it checks each delivery's Standard Webhooks
//! signature, drops repeats by `webhook-id`, and prints what arrived.
//!
//! ```sh
//! cargo run --example callback_receiver -- 127.0.0.1:9000 whsec_…   # the service's secret
//! cargo run --example callback_receiver -- 127.0.0.1:9000 whsec_new,whsec_old   # while rotating
//! ```
//!
//! During a rotation the service signs each delivery with every secret it is given
//! (`LONGRUN_WEBHOOK_SECRET=new,old`), and this receiver accepts a delivery that any one of its
//! own secrets verifies: so either side may switch first.
//!
//! Answers 204 for a good delivery, 401 for a bad signature or a timestamp off by more than five
//! minutes (the service then retries, and logs each try on the job's messages).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use longrun::domain::signals::{secret_keys, sign};
use poem::http::StatusCode;
use poem::web::Data;
use poem::{handler, EndpointExt, Request, Route, Server};

struct State {
    keys: Vec<Vec<u8>>,
    seen: Mutex<HashSet<String>>,
}

fn verify(keys: &[Vec<u8>], req: &Request, body: &str) -> Result<String, String> {
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
    let expected: Vec<String> = keys
        .iter()
        .map(|k| sign(k, &id, ts, body.as_bytes()))
        .collect();
    // The header may carry several space-separated signatures (during a secret rotation); one
    // made with any of this receiver's keys is enough.
    if h("webhook-signature")?
        .split(' ')
        .any(|s| expected.iter().any(|e| e == s))
    {
        Ok(id)
    } else {
        Err("no matching signature".into())
    }
}

#[handler]
fn receive(req: &Request, body: String, state: Data<&Arc<State>>) -> StatusCode {
    match verify(&state.keys, req, &body) {
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
        .expect("give the service's whsec_… secret (or several, comma-separated) as the second argument");
    let keys = secret_keys(&secret).expect("whsec_… secrets");
    let state = Arc::new(State {
        keys,
        seen: Mutex::new(HashSet::new()),
    });
    println!("receiving on http://{bind}/ (any path)");
    let app = Route::new().at("/*path", receive).data(state);
    Server::new(poem::listener::TcpListener::bind(bind))
        .run(app)
        .await
}
