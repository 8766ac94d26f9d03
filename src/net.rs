//! Outgoing HTTP under the address rules of `domain::signals`: `Outbound`, the one client used
//! for deliveries and fetched inputs. Names are checked when they resolve (so a name cannot point at
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

/// The one way out of the service: every outgoing request (callbacks, notification events,
/// fetched comparison inputs, anything later) is made here, and only here can a request be made.
/// A literal address (in any spelling the URL parser reads as an address) is checked before the
/// request, since the resolver never sees it; a name is checked by the resolver as it is
/// connected, so the client connects only to addresses that passed. Redirects are not followed.
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    allow_private: bool,
}

impl Outbound {
    /// An outbound client with `timeout` per request; `allow_private` is
    /// `LONGRUN_CALLBACK_ALLOW_PRIVATE`.
    pub fn new(allow_private: bool, timeout: Duration) -> Outbound {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("longrun/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a client with rustls builds");
        Outbound {
            client,
            allow_private,
        }
    }

    /// May requests reach loopback and private addresses?
    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    /// A request to `raw`, or why it may not be made.
    pub fn request(
        &self,
        method: reqwest::Method,
        raw: &str,
    ) -> Result<reqwest::RequestBuilder, String> {
        let url = check_target(raw, self.allow_private)?;
        Ok(self.client.request(method, url))
    }

    /// What can be known of `raw` without resolving it (for checks at submission).
    pub fn check(&self, raw: &str) -> Result<url::Url, String> {
        check_target(raw, self.allow_private)
    }

    /// `check`, and for a name every address it resolves to now.
    pub async fn check_now(&self, raw: &str) -> Result<url::Url, String> {
        check_now(raw, self.allow_private).await
    }
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
