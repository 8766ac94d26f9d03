//! The comparison of two XML or two JSON documents (seed 002): load input A, load input B,
//! compare, write the result (an XML delta or an RFC 6902 JSON Patch) as the job's file.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::{Context, OpError, Operation};
use crate::compare::{self, Control, DiffError, DocFormat, Limits, NoControl};
use bytes::Bytes;

/// Stage names, as seed 002 lists them.
pub const STAGES: [&str; 4] = [
    "Inputs Loading - 'inputA'",
    "Inputs Loading - 'inputB'",
    "Comparison in progress",
    "Output processing in progress",
];

/// Content type of a JSON Patch result.
pub const PATCH_TYPE: &str = "application/json-patch+json";
/// Content type of an XML delta result.
pub const DELTA_TYPE: &str = "application/xml; charset=utf-8";

/// Where one input comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Bytes `offset..offset+length` of the job's stored input body.
    Stored { offset: u64, length: u64 },
    /// Text given inline in the job's input (submissions through `/api/v1/jobs`).
    Content(String),
    /// Fetched over http(s) when the job runs.
    Uri(String),
}

/// The comparison's options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompareOptions {
    pub key_attributes: Vec<String>,
    pub key_fields: Vec<String>,
    pub ignore_whitespace: bool,
    pub ignore_comments: bool,
}

/// A checked comparison input.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub format: Option<DocFormat>,
    pub a: Source,
    pub b: Source,
    pub options: CompareOptions,
    /// The result of an XML comparison as a DeltaXML well-formed delta (seed 002's dialect)
    /// instead of the service's own delta.
    pub deltaxml: bool,
    /// A key of the job owner's shared area (see [`object_key`]) the result is also written
    /// to; the tenant is the job's owner when it runs, never a part of the input.
    pub output_key: Option<String>,
    /// The dialect the job was submitted through (its links in deliveries are the dialect's).
    pub dialect: Option<String>,
}

/// The prefix of the keys a tenant may name in the object store (the `file` input form and the
/// output location of seed 002's dialect).
pub fn shared_prefix(tenant: &str) -> String {
    format!("shared/{tenant}/")
}

/// The object-store key a tenant's `key` names: a relative path of plain segments (no `..`, no
/// leading `/`, no scheme, no backslash or control character), under the tenant's
/// [`shared_prefix`]. Anything else is refused.
pub fn object_key(tenant: &str, key: &str) -> Result<String, String> {
    let refuse = |why: &str| Err(format!("`{key}` is not an object key: {why}"));
    if key.is_empty() || key.len() > 512 {
        return refuse("a key has 1 to 512 characters");
    }
    if key.starts_with('/') {
        return refuse("an absolute path is not a key");
    }
    if key.contains("://") || key.contains(':') {
        return refuse("a URL or a drive is not a key");
    }
    if key.contains('\\') || key.chars().any(char::is_control) {
        return refuse("backslashes and control characters are not allowed");
    }
    if key
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return refuse("empty, `.` and `..` segments are not allowed");
    }
    Ok(format!("{}{key}", shared_prefix(tenant)))
}

fn strings(v: Option<&Value>, name: &str) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("`{name}` must be a list of strings"))
            })
            .collect(),
        Some(_) => Err(format!("`{name}` must be a list of strings")),
    }
}

fn flag(v: Option<&Value>, name: &str) -> Result<bool, String> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(_) => Err(format!("`{name}` must be true or false")),
    }
}

/// Parse a format name.
pub fn parse_format(s: &str) -> Result<DocFormat, String> {
    match s.to_ascii_lowercase().as_str() {
        "xml" => Ok(DocFormat::Xml),
        "json" => Ok(DocFormat::Json),
        other => Err(format!("`format` must be xml or json, not `{other}`")),
    }
}

fn format_name(f: DocFormat) -> &'static str {
    match f {
        DocFormat::Xml => "xml",
        DocFormat::Json => "json",
    }
}

impl Spec {
    /// Read the job input.
    pub fn from_input(v: &Value) -> Result<Spec, String> {
        let source = |name: &str| -> Result<Source, String> {
            let i = v.get(name).ok_or_else(|| format!("`{name}` is required"))?;
            if let Some(c) = i.get("content").and_then(Value::as_str) {
                return Ok(Source::Content(c.to_string()));
            }
            if let Some(u) = i.get("uri").and_then(Value::as_str) {
                return Ok(Source::Uri(u.to_string()));
            }
            match (
                i.get("offset").and_then(Value::as_u64),
                i.get("length").and_then(Value::as_u64),
            ) {
                (Some(offset), Some(length)) => Ok(Source::Stored { offset, length }),
                _ => Err(format!("`{name}` needs `content` or `uri`")),
            }
        };
        let o = v.get("options").cloned().unwrap_or(Value::Null);
        Ok(Spec {
            format: match v.get("format").and_then(Value::as_str) {
                None => None,
                Some(f) => Some(parse_format(f)?),
            },
            a: source("inputA")?,
            b: source("inputB")?,
            options: CompareOptions {
                key_attributes: strings(o.get("keyAttributes"), "options.keyAttributes")?,
                key_fields: strings(o.get("keyFields"), "options.keyFields")?,
                ignore_whitespace: flag(o.get("ignoreWhitespace"), "options.ignoreWhitespace")?,
                ignore_comments: flag(o.get("ignoreComments"), "options.ignoreComments")?,
            },
            deltaxml: v.get("deltaFormat").and_then(Value::as_str) == Some("deltaxml"),
            output_key: match v.get("outputKey") {
                None | Some(Value::Null) => None,
                Some(Value::String(k)) => {
                    object_key("-", k).map_err(|e| format!("`outputKey`: {e}"))?;
                    Some(k.clone())
                }
                Some(_) => return Err("`outputKey` must be a string".into()),
            },
            dialect: v.get("dialect").and_then(Value::as_str).map(String::from),
        })
    }

    /// The job input this spec is stored as.
    pub fn to_input(&self) -> Value {
        let src = |s: &Source| match s {
            Source::Stored { offset, length } => json!({"offset": offset, "length": length}),
            Source::Content(c) => json!({ "content": c }),
            Source::Uri(u) => json!({ "uri": u }),
        };
        let mut v = json!({
            "inputA": src(&self.a),
            "inputB": src(&self.b),
            "options": {
                "keyAttributes": self.options.key_attributes,
                "keyFields": self.options.key_fields,
                "ignoreWhitespace": self.options.ignore_whitespace,
                "ignoreComments": self.options.ignore_comments,
            }
        });
        if let Some(f) = self.format {
            v["format"] = json!(format_name(f));
        }
        if self.deltaxml {
            v["deltaFormat"] = json!("deltaxml");
        }
        if let Some(k) = &self.output_key {
            v["outputKey"] = json!(k);
        }
        if let Some(d) = &self.dialect {
            v["dialect"] = json!(d);
        }
        v
    }

    fn xml_options(&self, limits: Limits) -> compare::XmlOptions {
        compare::XmlOptions {
            key_attributes: self.options.key_attributes.clone(),
            ignore_whitespace: self.options.ignore_whitespace,
            ignore_comments: self.options.ignore_comments,
            limits,
        }
    }

    fn json_options(&self, limits: Limits) -> compare::JsonOptions {
        compare::JsonOptions {
            key_fields: self.options.key_fields.clone(),
            limits,
        }
    }
}

/// A parsed input.
pub enum Parsed {
    Xml(compare::XmlDoc),
    Json(Value),
}

/// Which format `bytes` are in: the given one, else detected. `name` names the input in errors.
pub fn format_of(name: &str, bytes: &[u8], given: Option<DocFormat>) -> Result<DocFormat, String> {
    if let Some(f) = given {
        return Ok(f);
    }
    compare::detect(bytes).ok_or_else(|| {
        format!("{name}: neither XML nor JSON (an XML document starts with `<`, a JSON one with `{{`, `[` or a value)")
    })
}

/// Check the documents a submission carries inline, before it is stored: each within `max`
/// bytes, XML or JSON (both in one format), and parsed under `limits` (no DTD, bounded depth and
/// nodes) on a blocking thread. The one check of inline inputs, for every route.
pub async fn check_documents(
    docs: &[(&str, Bytes)],
    spec: &Spec,
    max: u64,
    limits: Limits,
) -> Result<(), String> {
    let mut formats = Vec::new();
    for (name, bytes) in docs {
        if bytes.len() as u64 > max {
            return Err(format!(
                "{name}: larger than the limit of {max} bytes (LONGRUN_MAX_INPUT_SIZE)"
            ));
        }
        formats.push((
            name.to_string(),
            format_of(name, bytes, spec.format)?,
            bytes.clone(),
        ));
    }
    if let [(_, fa, _), (_, fb, _)] = &formats[..] {
        if fa != fb {
            let n = |f: &DocFormat| if *f == DocFormat::Xml { "XML" } else { "JSON" };
            return Err(format!(
                "inputA is {} but inputB is {}; both inputs must be in one format",
                n(fa),
                n(fb)
            ));
        }
    }
    for (name, f, bytes) in formats {
        let spec = spec.clone();
        tokio::task::spawn_blocking(move || {
            parse_input(&name, &bytes, f, &spec, limits, &mut NoControl).map(|_| ())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Parse one input (blocking; call from a blocking thread for large ones).
pub fn parse_input(
    name: &str,
    bytes: &[u8],
    format: DocFormat,
    spec: &Spec,
    limits: Limits,
    ctl: &mut dyn Control,
) -> Result<Parsed, OpError> {
    let r = match format {
        DocFormat::Xml => {
            compare::XmlDoc::parse(bytes, &spec.xml_options(limits), ctl).map(Parsed::Xml)
        }
        DocFormat::Json => {
            compare::parse_json(bytes, &spec.json_options(limits), ctl).map(Parsed::Json)
        }
    };
    r.map_err(|e| match e {
        DiffError::Cancelled => OpError::Cancelled,
        other => OpError::failed("bad-input", format!("{name}: {other}")),
    })
}

/// A `Control` that stops when the job's token fires (or the caller gave up) and counts
/// progress for the async side to report.
struct Ticks {
    token: CancellationToken,
    abandoned: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
}

impl Control for Ticks {
    fn cancelled(&self) -> bool {
        self.token.is_cancelled() || self.abandoned.load(Ordering::Relaxed)
    }
    fn progress(&mut self, done: u64, total: u64) {
        self.done.store(done, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }
}

/// Run `work` on a blocking thread while reporting its progress (in `unit`) on the job.
async fn on_blocking_thread<T: Send + 'static>(
    ctx: &mut Context,
    unit: &str,
    work: impl FnOnce(&mut dyn Control) -> Result<T, OpError> + Send + 'static,
) -> Result<T, OpError> {
    let done = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    let abandoned = Arc::new(AtomicBool::new(false));
    let mut ticks = Ticks {
        token: ctx.cancel_token().clone(),
        abandoned: abandoned.clone(),
        done: done.clone(),
        total: total.clone(),
    };
    // Stop the blocking work whatever way this function is left.
    struct Abandon(Arc<AtomicBool>);
    impl Drop for Abandon {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _guard = Abandon(abandoned);
    let mut handle = tokio::task::spawn_blocking(move || work(&mut ticks));
    loop {
        tokio::select! {
            r = &mut handle => {
                return r.map_err(|e| OpError::failed("internal", format!("comparison task failed: {e}")))?;
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                let t = total.load(Ordering::Relaxed);
                if t > 0 {
                    ctx.progress(done.load(Ordering::Relaxed) as i64, Some(t as i64), unit).await?;
                }
            }
        }
    }
}

/// The comparison operation.
pub struct CompareOperation {
    client: crate::net::Outbound,
    /// Where output locations are written.
    blobs: Option<crate::blobs::Blobs>,
    max_input_size: u64,
    limits: Limits,
}

impl CompareOperation {
    /// `client` fetches `uri` inputs.
    pub fn new(client: crate::net::Outbound, max_input_size: u64, max_depth: usize) -> Self {
        CompareOperation {
            client,
            blobs: None,
            max_input_size,
            limits: Limits {
                max_depth,
                ..Limits::default()
            },
        }
    }

    /// Write results with an output location (`outputKey`) there too.
    pub fn with_blobs(mut self, blobs: crate::blobs::Blobs) -> Self {
        self.blobs = Some(blobs);
        self
    }

    async fn fetch(&self, name: &str, uri: &str) -> Result<Vec<u8>, OpError> {
        let unavailable =
            |why: String| OpError::failed("input-unavailable", format!("{name}: {uri}: {why}"));
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                OpError::failed(
                    "input-timeout",
                    format!(
                        "{name}: {uri}: not fetched within the time limit (LONGRUN_FETCH_TIMEOUT)"
                    ),
                )
            } else {
                unavailable(crate::net::error_chain(&e))
            }
        };
        let mut resp = self
            .client
            .request(reqwest::Method::GET, uri)
            .map_err(|why| OpError::failed("refused-destination", format!("{name}: {why}")))?
            .send()
            .await
            .map_err(failed)?;
        if !resp.status().is_success() {
            return Err(unavailable(format!(
                "answered HTTP {}",
                resp.status().as_u16()
            )));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_input_size)
        {
            return Err(too_large(name, self.max_input_size));
        }
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(failed)? {
            out.extend_from_slice(&chunk);
            if out.len() as u64 > self.max_input_size {
                return Err(too_large(name, self.max_input_size));
            }
        }
        Ok(out)
    }

    async fn load(&self, ctx: &Context, name: &str, src: &Source) -> Result<Vec<u8>, OpError> {
        match src {
            Source::Content(c) => Ok(c.clone().into_bytes()),
            Source::Uri(u) => self.fetch(name, u).await,
            Source::Stored { offset, length } => {
                let mut r = ctx.open_input().await?;
                let mut skip = (&mut r).take(*offset);
                tokio::io::copy(&mut skip, &mut tokio::io::sink())
                    .await
                    .map_err(|e| OpError::failed("storage", e.to_string()))?;
                let mut out = Vec::with_capacity(*length as usize);
                r.take(*length)
                    .read_to_end(&mut out)
                    .await
                    .map_err(|e| OpError::failed("storage", e.to_string()))?;
                Ok(out)
            }
        }
    }
}

fn too_large(name: &str, max: u64) -> OpError {
    OpError::failed(
        "input-too-large",
        format!("{name}: larger than the limit of {max} bytes (LONGRUN_MAX_INPUT_SIZE)"),
    )
}

#[async_trait]
impl Operation for CompareOperation {
    fn name(&self) -> &str {
        "compare"
    }
    fn description(&self) -> &str {
        "Compares two XML documents (into a delta document) or two JSON documents (into an RFC 6902 JSON Patch)."
    }
    fn input_schema(&self) -> Value {
        let input = json!({"type": "object", "properties": {
            "content": {"type": "string", "description": "the document itself"},
            "uri": {"type": "string", "format": "uri", "description": "an http(s) URL to fetch it from"}
        }});
        json!({
            "type": "object",
            "required": ["inputA", "inputB"],
            "properties": {
                "inputA": input, "inputB": input,
                "format": {"type": "string", "enum": ["xml", "json"]},
                "options": {"type": "object", "properties": {
                    "keyAttributes": {"type": "array", "items": {"type": "string"}},
                    "keyFields": {"type": "array", "items": {"type": "string"}},
                    "ignoreWhitespace": {"type": "boolean"},
                    "ignoreComments": {"type": "boolean"}
                }}
            }
        })
    }
    fn stages(&self) -> i32 {
        STAGES.len() as i32
    }
    fn validate(&self, input: &Value) -> Result<(), String> {
        let spec = Spec::from_input(input)?;
        for (name, src) in [("inputA", &spec.a), ("inputB", &spec.b)] {
            if let Source::Uri(u) = src {
                self.client.check(u).map_err(|e| format!("{name}: {e}"))?;
            }
        }
        Ok(())
    }

    /// Destinations (names resolved now), and inline documents parsed under the same limits as
    /// the dedicated route's (size, DTDs, depth), so `/api/v1/jobs` refuses what
    /// `/api/v1/comparisons` refuses, with the same status.
    async fn admit(&self, input: &Value) -> Result<(), String> {
        self.validate(input)?;
        let spec = Spec::from_input(input)?;
        for (name, src) in [("inputA", &spec.a), ("inputB", &spec.b)] {
            if let Source::Uri(u) = src {
                self.client
                    .check_now(u)
                    .await
                    .map_err(|e| format!("{name}: {e}"))?;
            }
        }
        let inline: Vec<(&'static str, String)> = [("inputA", &spec.a), ("inputB", &spec.b)]
            .into_iter()
            .filter_map(|(name, src)| match src {
                Source::Content(c) => Some((name, c.clone())),
                _ => None,
            })
            .collect();
        let docs: Vec<(&str, Bytes)> = inline
            .into_iter()
            .map(|(n, c)| (n, Bytes::from(c.into_bytes())))
            .collect();
        check_documents(&docs, &spec, self.max_input_size, self.limits).await
    }

    async fn run(&self, ctx: &mut Context) -> Result<Value, OpError> {
        let spec =
            Arc::new(Spec::from_input(ctx.input()).map_err(|e| OpError::failed("bad-input", e))?);
        let total = STAGES.len() as i32;
        let mut parsed = Vec::with_capacity(2);
        let mut format = spec.format;
        for (i, (name, src)) in [("inputA", spec.a.clone()), ("inputB", spec.b.clone())]
            .into_iter()
            .enumerate()
        {
            ctx.stage(i as i32 + 1, total, STAGES[i]).await?;
            let bytes = self.load(ctx, name, &src).await?;
            let f = format_of(name, &bytes, spec.format)
                .map_err(|e| OpError::failed("bad-input", e))?;
            if let Some(first) = format {
                if first != f {
                    return Err(OpError::failed(
                        "bad-input",
                        format!(
                            "inputA is {} but inputB is {}; both inputs must be in one format",
                            format_name(first).to_uppercase(),
                            format_name(f).to_uppercase()
                        ),
                    ));
                }
            }
            format = Some(f);
            let (spec2, limits) = (spec.clone(), self.limits);
            let doc = on_blocking_thread(ctx, "bytes", move |ctl| {
                parse_input(name, &bytes, f, &spec2, limits, ctl)
            })
            .await?;
            parsed.push(doc);
        }
        let format = format.unwrap_or(DocFormat::Xml);
        ctx.stage(3, total, STAGES[2]).await?;
        let b = parsed.pop().expect("two inputs");
        let a = parsed.pop().expect("two inputs");
        let (spec2, limits) = (spec.clone(), self.limits);
        let (out, summary) = on_blocking_thread(ctx, "nodes", move |ctl| {
            let mut out = Vec::new();
            let summary = match (a, b) {
                (Parsed::Xml(a), Parsed::Xml(b)) => {
                    compare::diff_xml(&a, &b, &spec2.xml_options(limits), ctl, &mut out).and_then(
                        |summary| {
                            if spec2.deltaxml {
                                out = compare::to_deltaxml(&out)?;
                            }
                            Ok(summary)
                        },
                    )
                }
                (Parsed::Json(a), Parsed::Json(b)) => {
                    compare::diff_json(&a, &b, &spec2.json_options(limits), ctl).and_then(
                        |(ops, summary)| {
                            compare::write_patch(&ops, &mut out)?;
                            Ok(summary)
                        },
                    )
                }
                _ => unreachable!("both inputs have one format"),
            };
            match summary {
                Ok(s) => Ok((out, s)),
                Err(DiffError::Cancelled) => Err(OpError::Cancelled),
                Err(e) => Err(OpError::failed("bad-input", e.to_string())),
            }
        })
        .await?;
        ctx.stage(4, total, STAGES[3]).await?;
        ctx.saving(STAGES[3]).await?;
        let (name, ct) = match format {
            DocFormat::Xml => ("delta.xml", DELTA_TYPE),
            DocFormat::Json => ("patch.json", PATCH_TYPE),
        };
        let mut file = ctx.create_file(name, ct).await?;
        for chunk in out.chunks(1 << 20) {
            ctx.checkpoint()?;
            file.write(chunk).await?;
        }
        let done = file.finish().await?;
        if let Some(key) = &spec.output_key {
            let key = object_key(ctx.owner(), key).map_err(|e| OpError::failed("bad-input", e))?;
            let blobs = self.blobs.as_ref().ok_or_else(|| {
                OpError::failed("storage", "no object store for output locations")
            })?;
            ctx.checkpoint()?;
            blobs
                .put(&key, Bytes::from(out))
                .await
                .map_err(|e| OpError::failed("storage", format!("output location: {e}")))?;
        }
        ctx.add_file(done).await?;
        let mut s = summary.to_json();
        s["format"] = json!(format_name(format));
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips() {
        let s = Spec {
            format: Some(DocFormat::Json),
            a: Source::Stored {
                offset: 0,
                length: 3,
            },
            b: Source::Uri("https://example.com/b.json".into()),
            options: CompareOptions {
                key_fields: vec!["id".into()],
                ..Default::default()
            },
            deltaxml: true,
            output_key: Some("out/r.xml".into()),
            dialect: Some("xml-data-compare".into()),
        };
        assert_eq!(Spec::from_input(&s.to_input()).unwrap(), s);
        let v = json!({"inputA": {"content": "<a/>"}, "inputB": {"content": "<b/>"},
                       "options": {"keyAttributes": "id, name"}});
        let s = Spec::from_input(&v).unwrap();
        assert_eq!(s.options.key_attributes, ["id", "name"]);
        assert!(Spec::from_input(&json!({"inputA": {}})).is_err());
        // The output key is relative to the owner's area: no other tenant's key can be named.
        assert!(Spec::from_input(
            &json!({"inputA": {"content": ""}, "inputB": {"content": ""},
                                         "outputKey": "../other/x"})
        )
        .is_err());
        assert_eq!(
            object_key("acme", "out/r.xml").unwrap(),
            "shared/acme/out/r.xml"
        );
        for bad in [
            "../x",
            "/etc/passwd",
            "http://x.example/a",
            "a/../b",
            "a//b",
            "",
            "c:\\x",
        ] {
            assert!(object_key("acme", bad).is_err(), "{bad}");
        }
        assert!(Spec::from_input(
            &json!({"inputA": {"content": ""}, "inputB": {"content": ""}, "format": "yaml"})
        )
        .is_err());
    }
}
