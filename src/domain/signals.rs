//! Completion signals, the pure part: what a submitter may ask for (`async`), which addresses a
//! delivery may go to, what is delivered when a job ends, how it is signed, and when a failed
//! delivery is tried again.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use url::Url;
use uuid::Uuid;

use super::job::{datafile_href, datafileset_href, job_href, Job, OutputFile};
use super::status::JobStatus;

/// Encoding of a notification event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyFormat {
    Json,
    Xml,
}

impl NotifyFormat {
    /// `json` or `xml`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyFormat::Json => "json",
            NotifyFormat::Xml => "xml",
        }
    }
}

/// Where a notification event (seed 004) is posted, and in which encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationTarget {
    pub url: String,
    pub format: NotifyFormat,
}

/// The `async` element of a submission, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AsyncRequest {
    /// Receives a GET when the job ends (seed 002).
    pub callback: Option<String>,
    /// Keep result files after their first complete download.
    pub keep_result: Option<bool>,
    /// Receives a POSTed notification event when the job ends (seed 004).
    pub notification: Option<NotificationTarget>,
    /// Higher runs first (`PRIORITY_MIN`…`PRIORITY_MAX`; 0 when absent).
    pub priority: Option<i32>,
    /// The job is not started before this time.
    pub not_before: Option<chrono::DateTime<chrono::Utc>>,
    /// The longest one run of the job may take (`super::deadline`).
    pub timeout: Option<std::time::Duration>,
}

/// The lowest priority a submission may ask for.
pub const PRIORITY_MIN: i32 = -10;
/// The highest priority a submission may ask for.
pub const PRIORITY_MAX: i32 = 10;

/// A priority given as a JSON number or as text (XML, forms), named `name` in the error.
pub fn as_priority(v: &Value, name: &str) -> Result<Option<i32>, String> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        // XML and form fields carry numbers as text.
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if (PRIORITY_MIN as i64..=PRIORITY_MAX as i64).contains(&n) => Ok(Some(n as i32)),
        _ => Err(format!(
            "`{name}` must be a whole number from {PRIORITY_MIN} to {PRIORITY_MAX}, not {v}"
        )),
    }
}

/// A time given as RFC 3339 text, named `name` in the error.
pub fn as_time(v: &Value, name: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    match as_text(v, name)? {
        None => Ok(None),
        Some(s) => chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| Some(t.with_timezone(&chrono::Utc)))
            .map_err(|_| {
                format!("`{name}` must be an RFC 3339 time such as 2026-12-04T09:30:00Z, not `{s}`")
            }),
    }
}

fn as_bool(v: &Value, name: &str) -> Result<Option<bool>, String> {
    match v {
        Value::Bool(b) => Ok(Some(*b)),
        // XML and form fields carry booleans as text.
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        other => Err(format!("`{name}` must be true or false, not {other}")),
    }
}

fn as_text(v: &Value, name: &str) -> Result<Option<String>, String> {
    match v {
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.trim().to_string())),
        other => Err(format!("`{name}` must be a string, not {other}")),
    }
}

impl AsyncRequest {
    /// Read an `async` element given as JSON, or as the generic value an XML body or form gives
    /// (where `<async/>` is an empty string and booleans are text). Unknown fields, and fields
    /// given as `null` (leave them out instead), are refused.
    pub fn from_value(v: &Value) -> Result<AsyncRequest, String> {
        let obj = match v {
            Value::Null => return Ok(AsyncRequest::default()),
            Value::String(s) if s.trim().is_empty() => return Ok(AsyncRequest::default()),
            Value::Object(o) => o,
            other => return Err(format!("`async` must be an object, not {other}")),
        };
        let mut out = AsyncRequest::default();
        for (k, v) in obj {
            match k.as_str() {
                "callback" => out.callback = as_text(v, "async.callback")?,
                "keepResult" => out.keep_result = as_bool(v, "async.keepResult")?,
                "priority" => out.priority = as_priority(v, "async.priority")?,
                "notBefore" => out.not_before = as_time(v, "async.notBefore")?,
                "timeout" => out.timeout = super::deadline::as_timeout(v, "async.timeout")?,
                "notification" => {
                    out.notification = match v {
                        Value::Object(n) => {
                            let mut url = None;
                            let mut format = NotifyFormat::Json;
                            for (k, v) in n {
                                match k.as_str() {
                                    "url" => url = as_text(v, "async.notification.url")?,
                                    "format" => {
                                        format = match as_text(v, "async.notification.format")?
                                            .as_deref()
                                        {
                                            None | Some("json") => NotifyFormat::Json,
                                            Some("xml") => NotifyFormat::Xml,
                                            Some(f) => {
                                                return Err(format!(
                                                "`async.notification.format` must be json or xml, not `{f}`"
                                            ))
                                            }
                                        }
                                    }
                                    other => {
                                        return Err(format!(
                                            "unknown field `async.notification.{other}`; use url and format"
                                        ))
                                    }
                                }
                            }
                            let url = url.ok_or("`async.notification.url` is required")?;
                            Some(NotificationTarget { url, format })
                        }
                        other => {
                            return Err(format!(
                            "`async.notification` must be an object {{url, format}}, not {other}"
                        ))
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "unknown field `async.{other}`; use callback, keepResult, notification, priority, notBefore and timeout"
                    ))
                }
            }
        }
        Ok(out)
    }

    /// The URLs deliveries would go to.
    pub fn targets(&self) -> Vec<&str> {
        let mut t = Vec::new();
        if let Some(c) = &self.callback {
            t.push(c.as_str());
        }
        if let Some(n) = &self.notification {
            t.push(n.url.as_str());
        }
        t
    }
}

// ----- where deliveries may go ------------------------------------------------------------

/// The IPv4 address an IPv6 address carries and reaches: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-translated (`::ffff:0:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`
/// and the local-use `64:ff9b:1::/48`), 6to4 (`2002:AABB:CCDD::/48`) and Teredo (`2001:0::/32`,
/// whose client address is stored inverted). A request to such an address ends at the IPv4
/// address, so the IPv4 rules apply to it.
pub fn embedded_v4(a: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = a.segments();
    let low = |hi: u16, lo: u16| std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0xffff, 0, hi, lo] => Some(low(hi, lo)),
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => Some(low(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x64, 0xff9b, 1, _, _, _, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        [0x2001, 0, _, _, _, _, hi, lo] => Some(low(!hi, !lo)),
        _ => None,
    }
}

/// Why an address may not be reached by deliveries or fetches, or None when it may. Every
/// spelling of an address comes here as the `IpAddr` it denotes (`url` reads `2130706433`,
/// `0x7f000001` and `127.1` as 127.0.0.1), and IPv6 forms that end at an IPv4 address are
/// judged as that address.
pub fn address_refusal(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    const PRIVATE: &str =
        "a loopback or private address (allowed only with LONGRUN_CALLBACK_ALLOW_PRIVATE=true)";
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            if a.is_unspecified() || o[0] == 0 {
                Some("an unspecified address")
            } else if a.is_link_local() {
                Some("a link-local or cloud metadata address (169.254.0.0/16)")
            } else if a.is_multicast() || a.is_broadcast() || o[0] >= 240 {
                Some("a multicast, broadcast or reserved address")
            } else if !allow_private
                && (a.is_loopback()
                    || a.is_private()
                    // Shared address space (100.64.0.0/10), IETF protocol assignments
                    // (192.0.0.0/24), benchmarking (198.18.0.0/15).
                    || (o[0] == 100 && (o[1] & 0xC0) == 64)
                    || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                    || (o[0] == 198 && (o[1] & 0xfe) == 18))
            {
                Some(PRIVATE)
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            let seg = a.segments();
            if a.is_unspecified() {
                Some("an unspecified address")
            } else if (seg[0] & 0xffc0) == 0xfe80 {
                Some("a link-local address (fe80::/10)")
            } else if a.is_multicast() {
                Some("a multicast address")
            } else if seg[0] == 0xfd00 && seg[1] == 0x0ec2 {
                Some("a cloud metadata address")
            } else if (seg[0] == 0x0100 && seg[1..4] == [0, 0, 0])
                || (seg[0] == 0x2001 && seg[1] == 0x0db8)
            {
                Some("a discard-only or documentation address")
            } else if !allow_private
                && (a.is_loopback()
                    // Unique local (fc00::/7) and the old site-local (fec0::/10).
                    || (seg[0] & 0xfe00) == 0xfc00
                    || (seg[0] & 0xffc0) == 0xfec0)
            {
                Some(PRIVATE)
            } else {
                None
            }
        }
    }
}

/// Check what can be known of a delivery or fetch URL without resolving it: http(s) only, and a
/// literal address (or `localhost`) must be allowed. Names are checked again when resolved.
pub fn check_target(raw: &str, allow_private: bool) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("`{raw}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{raw}`: only http and https URLs are allowed, not `{}`",
            url.scheme()
        ));
    }
    let refusal = match url.host() {
        None => return Err(format!("`{raw}` has no host")),
        Some(url::Host::Ipv4(a)) => address_refusal(IpAddr::V4(a), allow_private),
        Some(url::Host::Ipv6(a)) => address_refusal(IpAddr::V6(a), allow_private),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d == "localhost" || d.ends_with(".localhost") {
                address_refusal(IpAddr::from([127, 0, 0, 1]), allow_private)
            } else {
                None
            }
        }
    };
    match refusal {
        Some(why) => Err(format!("`{raw}` points to {why}")),
        None => Ok(url),
    }
}

// ----- what is delivered -------------------------------------------------------------------

/// The two kinds of delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    /// `GET {callback}?jobId=…&jobStatus=…&job=…` (seed 002).
    Callback,
    /// `POST` of a notification event (seed 004).
    Notification,
}

impl DeliveryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Callback => "callback",
            DeliveryKind::Notification => "notification",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryKind> {
        match s {
            "callback" => Some(DeliveryKind::Callback),
            "notification" => Some(DeliveryKind::Notification),
            _ => None,
        }
    }
}

/// One message to send, fixed when the job ends so every try sends the same bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The `webhook-id`: stable across retries so receivers can drop repeats.
    pub id: String,
    pub job_id: Uuid,
    pub kind: DeliveryKind,
    pub url: String,
    /// `None` for a GET.
    pub content_type: Option<String>,
    pub body: String,
    /// Tries made so far.
    pub attempts: i32,
}

/// What one try of a delivery came to, as the sender records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tried {
    /// When the try started.
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// What happened, in words (`HTTP 503`, `timed out: …`, `connection refused …`).
    pub outcome: String,
    /// How long the try took.
    pub duration_ms: i64,
}

impl Tried {
    /// A try the receiver answered with `status`, now.
    pub fn http(status: u16) -> Tried {
        Tried {
            at: Utc::now(),
            status: Some(status),
            outcome: format!("HTTP {status}"),
            duration_ms: 0,
        }
    }

    /// A try that got no answer (`why`), now.
    pub fn failed(why: &str) -> Tried {
        Tried {
            at: Utc::now(),
            status: None,
            outcome: why.to_string(),
            duration_ms: 0,
        }
    }
}

/// One try in a delivery's log.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    pub status: Option<u16>,
    /// Set when the try got no answer, or the answer ended the tries.
    pub error: Option<String>,
    pub duration_ms: i64,
    /// When the next try was due after this one (none: delivered or given up).
    pub next_at: Option<DateTime<Utc>>,
}

/// Where a delivery stands, as its log shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not tried yet.
    Pending,
    /// Tried and failed; another try is due.
    Retrying,
    /// The receiver answered 2xx.
    Delivered,
    /// No tries left, or the receiver answered 410.
    GivenUp,
    /// Not sent: its endpoint was switched off after failing too long.
    Disabled,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::GivenUp => "given_up",
            DeliveryStatus::Disabled => "disabled",
        }
    }

    /// Every state, as the API names them.
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Retrying,
        DeliveryStatus::Delivered,
        DeliveryStatus::GivenUp,
        DeliveryStatus::Disabled,
    ];

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// The endpoint of a delivery's address: its scheme, host, port and path, without the query (a
/// callback's query names its job; the place it goes to is the same).
pub fn endpoint_of(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => format!(
            "{}://{}:{}{}",
            u.scheme(),
            u.host_str().unwrap_or_default(),
            u.port_or_known_default().unwrap_or_default(),
            u.path()
        ),
        Err(_) => url.to_string(),
    }
}

/// The id of tenant `owner`'s endpoint `target`: the same on every instance, so the first
/// deliveries to a new endpoint made at once on two instances make one row.
pub fn endpoint_id(owner: &str, target: &str) -> String {
    use sha2::Digest;
    let digest = Sha256::new()
        .chain_update(owner.as_bytes())
        .chain_update([0u8])
        .chain_update(target.as_bytes())
        .finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("ep_{hex}")
}

impl Delivery {
    /// GET or POST.
    pub fn method(&self) -> &'static str {
        match self.kind {
            DeliveryKind::Callback => "GET",
            DeliveryKind::Notification => "POST",
        }
    }
}

/// The name seed 002's dialect marks its jobs' input with (`dialect`).
pub const XML_DATA_COMPARE: &str = "xml-data-compare";
/// Where seed 002's dialect is served.
pub const XML_DATA_COMPARE_ROOT: &str = "/api/xml-data-compare/v1";

/// The deliveries a job asked for, for the end state it has just reached (none for other states).
/// `base` is the public base URL the links are made with.
pub fn deliveries_for(job: &Job, files: &[OutputFile], base: &str) -> Vec<Delivery> {
    if !job.status.is_end() {
        return Vec::new();
    }
    let mut out = Vec::new();
    // A job submitted through seed 002's dialect is named by the dialect's own job route.
    let me = match job.input.get("dialect").and_then(Value::as_str) {
        Some(XML_DATA_COMPARE) => format!("{base}{XML_DATA_COMPARE_ROOT}/jobs/{}", job.id),
        _ => job_href(base, job.id),
    };
    if let Some(cb) = &job.options.callback {
        if let Ok(mut url) = Url::parse(cb) {
            url.query_pairs_mut()
                .append_pair("jobId", &job.id.to_string())
                .append_pair("jobStatus", job.status.as_str())
                .append_pair("job", &me);
            out.push(Delivery {
                id: format!("msg_{}", Uuid::now_v7().simple()),
                job_id: job.id,
                kind: DeliveryKind::Callback,
                url: url.to_string(),
                content_type: None,
                body: String::new(),
                attempts: 0,
            });
        }
    }
    if let Some(n) = &job.options.notification {
        let event = notification_event(job, files, base);
        let (content_type, body) = match n.format {
            NotifyFormat::Json => ("application/json", event.to_string()),
            NotifyFormat::Xml => ("application/xml", notification_xml(&event)),
        };
        out.push(Delivery {
            id: format!("msg_{}", Uuid::now_v7().simple()),
            job_id: job.id,
            kind: DeliveryKind::Notification,
            url: n.url.clone(),
            content_type: Some(content_type.into()),
            body,
            attempts: 0,
        });
    }
    out
}

/// The notification event of seed 004 as JSON: correlation id, work id, status (`success` for a
/// SUCCESS job, else `failure`), links (the data file set and its files in the seed's shape),
/// fields (`jobStatus` the precise end state, the operation, attempt, summary, error).
pub fn notification_event(job: &Job, files: &[OutputFile], base: &str) -> Value {
    let me = job_href(base, job.id);
    let mut links = vec![json!({"rel": "operator:subject", "href": me})];
    if job.status == JobStatus::Success {
        let live: Vec<&OutputFile> = files.iter().filter(|f| !f.consumed).collect();
        if !live.is_empty() {
            links.push(json!({"rel": "datafileset", "href": datafileset_href(base, job.id)}));
        }
        for f in live {
            links.push(json!({"rel": "file", "href": datafile_href(base, job.id, f.id), "type": f.content_type, "name": f.name}));
        }
    }
    let mut fields = Map::new();
    // The precise end state; `status` says only success or failure, as the seed does.
    fields.insert(
        "jobStatus".into(),
        Value::String(job.status.as_str().into()),
    );
    fields.insert("operation".into(), Value::String(job.operation.clone()));
    fields.insert("attempt".into(), json!(job.attempt));
    if let Some(Value::Object(s)) = &job.summary {
        for (k, v) in s {
            fields.insert(k.clone(), v.clone());
        }
    }
    if let Some(err) = &job.error {
        if let Some(d) = err.get("detail") {
            fields.insert("error".into(), d.clone());
        }
    }
    json!({
        "correlationId": job.correlation_id,
        "workId": job.id.to_string(),
        "status": if job.status == JobStatus::Success { "success" } else { "failure" },
        "links": links,
        "fields": fields,
    })
}

/// The XML form of seed 004: attributes on `<notification>`, `<link rel href/>`, `<fields>`.
pub fn notification_xml(event: &Value) -> String {
    use crate::formats::xml::{escape_into, write_element};
    let attr = |out: &mut String, name: &str, v: &Value| {
        out.push(' ');
        out.push_str(name);
        out.push_str("=\"");
        escape_into(out, v.as_str().unwrap_or_default(), true);
        out.push('"');
    };
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><notification");
    for name in ["correlationId", "workId", "status"] {
        attr(&mut out, name, &event[name]);
    }
    out.push_str("><links>");
    for link in event["links"].as_array().into_iter().flatten() {
        out.push_str("<link");
        if let Some(o) = link.as_object() {
            for (k, v) in o {
                attr(&mut out, k, v);
            }
        }
        out.push_str("/>");
    }
    out.push_str("</links>");
    write_element(&mut out, "fields", &event["fields"]);
    out.push_str("</notification>");
    out
}

// ----- signatures (Standard Webhooks) ------------------------------------------------------

/// A new `whsec_…` secret: 32 random bytes, base64.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The key bytes of a `whsec_…` secret (a secret without the prefix is taken as base64 too).
pub fn secret_key(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("the webhook secret must be `whsec_` followed by base64: {e}"))
}

/// The keys of `LONGRUN_WEBHOOK_SECRET`: one secret, or several separated by commas (or
/// spaces), the first the current one. Every delivery is signed with each, so a receiver can
/// move to a new secret at its own pace while the old one is still accepted.
pub fn secret_keys(secrets: &str) -> Result<Vec<Vec<u8>>, String> {
    let keys: Vec<Vec<u8>> = secrets
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(secret_key)
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Err("the webhook secret is empty".into());
    }
    Ok(keys)
}

/// The current secret of a `LONGRUN_WEBHOOK_SECRET` (its first).
pub fn current_secret(secrets: &str) -> &str {
    secrets
        .split(|c: char| c == ',' || c.is_whitespace())
        .find(|s| !s.is_empty())
        .unwrap_or("")
}

/// The `webhook-signature` header: one `v1,…` signature per key, separated by spaces (Standard
/// Webhooks: a receiver accepts the message when any one of them is valid for its key).
pub fn signatures(keys: &[Vec<u8>], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| sign(k, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The signature of a share link to `job` until `expires` (Unix seconds): base64url of
/// HMAC-SHA256 over "{job}.{expires}".
pub fn share_sig(key: &[u8], object: Uuid, tenant: &str, expires: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        share_mac(key, object, tenant, expires)
            .finalize()
            .into_bytes(),
    )
}

/// Whether `sig` is the share signature of `job` until `expires` (compared in constant time).
pub fn share_valid(key: &[u8], object: Uuid, tenant: &str, expires: i64, sig: &str) -> bool {
    match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig) {
        Ok(raw) => share_mac(key, object, tenant, expires)
            .verify_slice(&raw)
            .is_ok(),
        Err(_) => false,
    }
}

fn share_mac(key: &[u8], object: Uuid, tenant: &str, expires: i64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(format!("{object}.{tenant}.{expires}").as_bytes());
    mac
}

// ----- retries -----------------------------------------------------------------------------

/// The default retry schedule, as Standard Webhooks recommends: the waits before tries 2, 3, …
pub const DEFAULT_SCHEDULE: [Duration; 6] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
];

/// The wait before the next try after `tries` failed ones, or None when it is time to give up.
/// `jitter` in [0, 1) stretches the wait by up to 20 % so receivers are not hit in lockstep.
pub fn retry_delay(schedule: &[Duration], tries: u32, jitter: f64) -> Option<Duration> {
    let base = *schedule.get(tries.checked_sub(1)? as usize)?;
    Some(base.mul_f64(1.0 + 0.2 * jitter.clamp(0.0, 1.0)))
}

/// Parse a schedule like `5s,5m,30m` (humantime durations, comma-separated).
pub fn parse_schedule(s: &str) -> Result<Vec<Duration>, String> {
    s.split(',')
        .map(|p| {
            humantime::parse_duration(p.trim())
                .map_err(|e| format!("retry schedule `{s}`: `{p}` is not a duration: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn async_element_in_all_its_shapes() {
        let a = AsyncRequest::from_value(&json!({
            "callback": "http://x.example/cb", "keepResult": "false",
            "notification": {"url": "https://y.example/n", "format": "xml"}
        }))
        .unwrap();
        assert_eq!(a.callback.as_deref(), Some("http://x.example/cb"));
        assert_eq!(a.keep_result, Some(false));
        assert_eq!(a.notification.unwrap().format, NotifyFormat::Xml);
        assert_eq!(
            AsyncRequest::from_value(&json!("")).unwrap(),
            AsyncRequest::default()
        );
        assert!(AsyncRequest::from_value(&json!({"bogus": 1}))
            .unwrap_err()
            .contains("async.bogus"));
        assert!(AsyncRequest::from_value(&json!({"notification": {"format": "json"}})).is_err());
        assert!(AsyncRequest::from_value(&json!(false)).is_err());
        for field in ["callback", "keepResult", "notification"] {
            assert!(AsyncRequest::from_value(&json!({ field: null }))
                .unwrap_err()
                .contains("null"));
        }
        assert!(AsyncRequest::from_value(
            &json!({"notification": {"url": "http://a", "format": "yaml"}})
        )
        .is_err());
    }

    #[test]
    fn address_rules() {
        let no = |s: &str, p: bool| check_target(s, p).is_err();
        assert!(no("http://169.254.169.254/latest/meta-data", true));
        assert!(no("http://[fe80::1]/", true));
        assert!(no("http://0.0.0.0:80/", true));
        assert!(no("http://224.0.0.1/", true));
        assert!(no("http://[::ffff:169.254.169.254]/", true));
        assert!(no("ftp://example.com/", true));
        assert!(no("file:///etc/passwd", true));
        assert!(no("http://127.0.0.1:9/", false));
        assert!(no("http://localhost:9/", false));
        assert!(no("http://10.1.2.3/", false));
        assert!(no("http://[::1]/", false));
        assert!(!no("http://127.0.0.1:9/", true));
        assert!(!no("http://localhost:9/", true));
        assert!(!no("https://example.com/hook", false));
        assert!(!no("http://8.8.8.8/", false));
    }

    /// Every spelling of an inside address that an attack tried, and more: each is refused while
    /// private addresses are not allowed; public ones and their IPv6 forms pass.
    #[test]
    fn refused_address_forms() {
        let refused = [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://127.0.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[::ffff:0:127.0.0.1]/",
            "http://[::127.0.0.1]/",
            "http://[0:0:0:0:0:0:127.0.0.1]/",
            "http://[64:ff9b::127.0.0.1]/",
            "http://[64:ff9b::a00:1]/",
            "http://[64:ff9b:1::10.0.0.1]/",
            "http://[2002:7f00:1::]/",
            "http://[2002:a00:1::1]/",
            "http://[2002:c0a8:101::1]/",
            "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", // Teredo client 127.0.0.1
            "http://10.0.0.1/",
            "http://10.255.255.255/",
            "http://172.16.0.1/",
            "http://172.31.255.255/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://198.18.0.1/",
            "http://169.254.169.254/",
            "http://[::ffff:169.254.169.254]/",
            "http://[fd00:ec2::254]/",
            "http://[fc00::1]/",
            "http://[fd12:3456::1]/",
            "http://[fec0::1]/",
            "http://[fe80::1]/",
            "http://0.0.0.0/",
            "http://0/",
            "http://[::]/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://a.localhost/",
            "http://255.255.255.255/",
            "http://224.0.0.1/",
            "http://[ff02::1]/",
            "http://[2001:db8::1]/",
        ];
        for u in refused {
            assert!(check_target(u, false).is_err(), "{u} must be refused");
        }
        for u in [
            "http://8.8.8.8/",
            "http://[2606:4700:4700::1111]/",
            "http://[::ffff:8.8.8.8]/",
            "http://[64:ff9b::8.8.8.8]/",
            "http://[2002:808:808::1]/",
            "http://172.32.0.1/",
            "http://11.0.0.1/",
            "https://example.com/x",
        ] {
            assert!(check_target(u, false).is_ok(), "{u} must pass");
        }
        // With private addresses allowed, loopback passes; metadata and link-local never do.
        assert!(check_target("http://[::ffff:127.0.0.1]/", true).is_ok());
        assert!(check_target("http://[64:ff9b::169.254.169.254]/", true).is_err());
    }

    #[test]
    fn an_endpoint_is_the_address_without_its_query_per_tenant() {
        assert_eq!(
            endpoint_of("https://hooks.example/cb?jobId=1&x=2"),
            "https://hooks.example:443/cb"
        );
        assert_eq!(
            endpoint_of("http://127.0.0.1:9000/n"),
            "http://127.0.0.1:9000/n"
        );
        let t = endpoint_of("https://hooks.example/cb");
        assert_eq!(endpoint_id("a", &t), endpoint_id("a", &t));
        assert_ne!(endpoint_id("a", &t), endpoint_id("b", &t));
        assert!(endpoint_id("a", &t).starts_with("ep_"));
        assert_eq!(endpoint_id("a", &t).len(), 35);
    }

    #[test]
    fn several_secrets_sign_with_each_first_one_current() {
        let (a, b) = (new_secret(), new_secret());
        let both = format!("{a}, {b}");
        let keys = secret_keys(&both).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(current_secret(&both), a);
        let header = signatures(&keys, "msg_1", 1_700_000_000, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            vec![
                sign(&secret_key(&a).unwrap(), "msg_1", 1_700_000_000, b"{}"),
                sign(&secret_key(&b).unwrap(), "msg_1", 1_700_000_000, b"{}")
            ]
        );
        assert!(secret_keys(" , ").is_err());
        assert!(secret_keys("whsec_!!!").is_err());
    }

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn share_links() {
        let (key, job) = (b"k".as_slice(), Uuid::now_v7());
        let sig = share_sig(key, job, "a", 100);
        assert!(share_valid(key, job, "a", 100, &sig));
        assert!(!share_valid(key, job, "b", 100, &sig));
        assert!(!share_valid(key, job, "a", 101, &sig));
        assert!(!share_valid(b"other", job, "a", 100, &sig));
        assert!(!share_valid(key, job, "a", 100, &format!("x{sig}")));
        assert!(!share_valid(key, job, "a", 100, "!!"));
    }

    #[test]
    fn retry_schedule() {
        let s = parse_schedule("1s, 2s,3s").unwrap();
        assert_eq!(retry_delay(&s, 1, 0.0), Some(Duration::from_secs(1)));
        assert_eq!(retry_delay(&s, 3, 0.0), Some(Duration::from_secs(3)));
        assert_eq!(retry_delay(&s, 4, 0.0), None);
        assert_eq!(retry_delay(&s, 0, 0.0), None);
        assert!(retry_delay(&s, 2, 0.99).unwrap() < Duration::from_millis(2400));
        assert!(parse_schedule("1s,x").is_err());
    }

    use proptest::prelude::*;

    /// Any JSON value, with the keys of the `async` element among others.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            prop::sample::select(vec![
                "",
                " ",
                "true",
                "false",
                "json",
                "xml",
                "yaml",
                "https://x.example/cb",
                "http://127.0.0.1/x"
            ])
            .prop_map(|s| Value::String(s.into())),
            "\\PC{0,16}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            let key = prop_oneof![
                prop::sample::select(vec![
                    "callback",
                    "keepResult",
                    "notification",
                    "url",
                    "format"
                ])
                .prop_map(str::to_string),
                "[a-z]{1,6}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key, inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The async element parser takes any value: an error, or options that only hold what
        /// was given (trimmed, non-empty texts; a notification with a URL).
        #[test]
        fn async_element_takes_any_value(v in value()) {
            if let Ok(a) = AsyncRequest::from_value(&v) {
                if let Some(c) = &a.callback {
                    prop_assert!(!c.is_empty() && c.trim() == c);
                }
                if let Some(n) = &a.notification {
                    prop_assert!(!n.url.is_empty() && n.url.trim() == n.url);
                }
                prop_assert!(v.is_object() || v.as_str().is_some_and(|s| s.trim().is_empty()) || v.is_null());
            }
        }

        /// A share signature holds for its object, tenant and expiry only; anything else is
        /// refused.
        #[test]
        fn share_links_are_checked(
            key in prop::collection::vec(any::<u8>(), 0..40),
            job in any::<u128>(),
            tenant in "[a-z]{1,8}",
            expires in any::<i64>(),
            other in any::<i64>(),
            sig in "\\PC{0,60}",
        ) {
            let job = Uuid::from_u128(job);
            let good = share_sig(&key, job, &tenant, expires);
            prop_assert!(share_valid(&key, job, &tenant, expires, &good));
            if other != expires {
                prop_assert!(!share_valid(&key, job, &tenant, other, &good));
            }
            let other_tenant = format!("{tenant}x");
            prop_assert!(!share_valid(&key, job, &other_tenant, expires, &good));
            prop_assert!(!share_valid(&key, Uuid::from_u128(job.as_u128() ^ 1), &tenant, expires, &good));
            if sig != good {
                prop_assert!(!share_valid(&key, job, &tenant, expires, &sig));
            }
        }
    }
}
