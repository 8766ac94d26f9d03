//! Outgoing HTTP under the address rules of `domain::signals`: the one client used for
//! deliveries and fetched inputs. Names are checked when they resolve (so a name cannot point at
//! a refused address after it was accepted), literal addresses before each request, and
//! redirects are not followed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::signals::{address_refusal, check_target};

/// A resolver that drops refused addresses and fails when none is left.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ok: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| address_refusal(a.ip(), allow_private).is_none())
                .collect();
            if ok.is_empty() {
                let why = all
                    .first()
                    .and_then(|a| address_refusal(a.ip(), allow_private))
                    .unwrap_or("no address");
                return Err(format!("`{host}` resolves to {why}").into());
            }
            let addrs: Addrs = Box::new(ok.into_iter());
            Ok(addrs)
        })
    }
}

/// An outgoing request's error with its causes ("error sending request: connection refused"),
/// for messages a person reads.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        text = format!("{text}: {s}");
        src = s.source();
    }
    text
}

/// An HTTP client that only reaches allowed addresses, with `timeout` per request.
pub fn guarded_client(allow_private: bool, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("longrun/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with rustls builds")
}

/// Check a target URL as far as it can be known now: scheme and literal address, and for a name
/// every address it resolves to at this moment (a name that does not resolve yet passes; it is
/// checked again when used).
pub async fn check_now(raw: &str, allow_private: bool) -> Result<url::Url, String> {
    let url = check_target(raw, allow_private)?;
    if let Some(url::Host::Domain(d)) = url.host() {
        let lookup = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::lookup_host((d.to_string(), 0)),
        )
        .await;
        if let Ok(Ok(addrs)) = lookup {
            for a in addrs {
                if let Some(why) = address_refusal(a.ip(), allow_private) {
                    return Err(format!("`{raw}` points to {why} ({})", a.ip()));
                }
            }
        }
    }
    Ok(url)
}
