//! The client's HTTP side: one reqwest client with the caller's key, requests that turn
//! connection errors and problem answers into exit code 3, and the links of documents.

use std::path::Path;

use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::{Conn, Exit, Output};

/// An answer that was not a problem.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Result<Value, Exit> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Exit::error(format!(
                "the service answered {} with a body that is not JSON: {e}",
                self.status
            ))
        })
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// The HTTP client of the command line.
pub struct Client {
    pub http: reqwest::Client,
    pub server: String,
    pub output: Output,
}

impl Client {
    pub fn new(conn: &Conn) -> Result<Client, Exit> {
        let server = url::Url::parse(&conn.server)
            .map_err(|e| Exit::error(format!("--server `{}` is not a URL: {e}", conn.server)))?;
        if !matches!(server.scheme(), "http" | "https") {
            return Err(Exit::error(format!(
                "--server `{}` must be an http(s) URL",
                conn.server
            )));
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("longrun-cli/", env!("CARGO_PKG_VERSION"))),
        );
        if let Some(key) = &conn.key {
            let mut v = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| Exit::error("--key holds characters a header cannot carry"))?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| Exit::error(format!("cannot make an HTTP client: {e}")))?;
        Ok(Client {
            http,
            server: server.to_string(),
            output: conn.output,
        })
    }

    /// The media type documents are asked for in: XML for `--output xml`, else JSON.
    pub fn accept(&self) -> &'static str {
        match self.output {
            Output::Xml => "application/xml",
            Output::Json | Output::Table => "application/json",
        }
    }

    /// Send a request; a connection error is exit code 3.
    pub async fn send(&self, rb: RequestBuilder) -> Result<Response, Exit> {
        rb.send().await.map_err(|e| {
            let url = e.url().map(|u| u.to_string()).unwrap_or_default();
            Exit::error(format!("cannot reach {url}: {}", chain(&e)))
        })
    }

    /// Send a request and read the whole answer; a problem answer is exit code 3.
    pub async fn call(&self, rb: RequestBuilder) -> Result<Answer, Exit> {
        let resp = self.send(rb).await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Exit::error(format!("the answer broke off: {}", chain(&e))))?;
        if status >= 400 {
            return Err(problem(status, &headers, &body));
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// GET a document as JSON (how the client reads links).
    pub async fn get_json(&self, url: &str) -> Result<(Answer, Value), Exit> {
        let a = self
            .call(self.http.get(url).header(ACCEPT, "application/json"))
            .await?;
        let v = a.json()?;
        Ok((a, v))
    }

    /// GET a document in the encoding `--output` asks for.
    pub async fn get_doc(&self, url: &str) -> Result<Answer, Exit> {
        self.call(self.http.get(url).header(ACCEPT, self.accept()))
            .await
    }

    /// Follow a link object (`href` with its `method`), asking for the `--output` encoding.
    pub async fn follow(&self, l: &Value, default_method: Method) -> Result<Answer, Exit> {
        let href = l["href"]
            .as_str()
            .ok_or_else(|| Exit::error("a link without href"))?;
        let method = l["method"]
            .as_str()
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .unwrap_or(default_method);
        self.call(
            self.http
                .request(method, href)
                .header(ACCEPT, self.accept()),
        )
        .await
    }

    /// The `href` of the root's link `rel` (the service root is `--server`).
    pub async fn root_link(&self, rel: &str) -> Result<String, Exit> {
        let (_, root) = self.get_json(&self.server).await?;
        href(&root, rel).ok_or_else(|| {
            Exit::error(format!(
                "the service root {} has no `{rel}` link; is --server a longrun service?",
                self.server
            ))
        })
    }

    /// The URL of a job given as a URL, or as an id: the id is looked up as a member of the
    /// jobs collection the root links to.
    pub async fn job_url(&self, job: &str) -> Result<String, Exit> {
        if job.starts_with("http://") || job.starts_with("https://") {
            return Ok(job.to_string());
        }
        let id: uuid::Uuid = job.parse().map_err(|_| {
            Exit::error(format!(
                "`{job}` is neither a job URL nor a job id (a UUID)"
            ))
        })?;
        let jobs = self.root_link("jobs").await?;
        let mut url = url::Url::parse(&jobs)
            .map_err(|e| Exit::error(format!("the jobs link `{jobs}` is not a URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|_| Exit::error(format!("the jobs link `{jobs}` cannot have members")))?
            .pop_if_empty()
            .push(&id.to_string());
        Ok(url.to_string())
    }

    /// Stream `url` into the file `out` (`-`: standard output); returns the bytes written.
    pub async fn download(&self, url: &str, out: &Path) -> Result<u64, Exit> {
        let resp = self.send(self.http.get(url).header(ACCEPT, "*/*")).await?;
        let status = resp.status().as_u16();
        if status >= 400 {
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap_or_default();
            return Err(problem(status, &headers, &body));
        }
        let to_stdout = out.as_os_str() == "-";
        let mut sink: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = if to_stdout {
            Box::new(tokio::io::stdout())
        } else {
            Box::new(
                tokio::fs::File::create(out)
                    .await
                    .map_err(|e| Exit::error(format!("cannot write {}: {e}", out.display())))?,
            )
        };
        let mut written = 0u64;
        let mut stream = resp.bytes_stream();
        let result: Result<(), Exit> = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk
                    .map_err(|e| Exit::error(format!("the download broke off: {}", chain(&e))))?;
                match sink.write_all(&chunk).await {
                    // Standard output's reader stopped reading (`| head`): the rest is not wanted.
                    Err(e) if to_stdout && e.kind() == std::io::ErrorKind::BrokenPipe => {
                        return Ok(())
                    }
                    r => {
                        r.map_err(|e| Exit::error(format!("cannot write {}: {e}", out.display())))?
                    }
                }
                written += chunk.len() as u64;
            }
            match sink.flush().await {
                Err(e) if to_stdout && e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                r => r.map_err(|e| Exit::error(format!("cannot write {}: {e}", out.display()))),
            }
        }
        .await;
        if let Err(e) = result {
            if !to_stdout {
                let _ = tokio::fs::remove_file(out).await;
            }
            return Err(e);
        }
        Ok(written)
    }
}

/// The first link with `rel`, as its JSON object.
pub fn link<'a>(doc: &'a Value, rel: &str) -> Option<&'a Value> {
    doc["links"].as_array()?.iter().find(|l| l["rel"] == rel)
}

/// The `href` of the first link with `rel`.
pub fn href(doc: &Value, rel: &str) -> Option<String> {
    link(doc, rel)
        .and_then(|l| l["href"].as_str())
        .map(str::to_string)
}

/// An error with its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// A problem answer (RFC 9457, JSON or XML) as an exit-3 message with its title and detail.
pub fn problem(status: u16, headers: &HeaderMap, body: &[u8]) -> Exit {
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (title, detail, kind) = if ct.contains("json") {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let s = |k: &str| v[k].as_str().map(str::to_string);
        (s("title"), s("detail"), s("type"))
    } else if ct.contains("xml") {
        let s = |k: &str| xml_text(body, k);
        (s("title"), s("detail"), s("type"))
    } else {
        let text = String::from_utf8_lossy(body)
            .trim()
            .chars()
            .take(300)
            .collect();
        (None, Some(text), None)
    };
    let title = title.unwrap_or_else(|| {
        reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error")
            .to_string()
    });
    let mut message = format!("{status} {title}");
    if let Some(d) = detail.filter(|d| !d.is_empty()) {
        message.push_str(": ");
        message.push_str(&d);
    }
    if let Some(k) = kind {
        message.push_str(&format!(" ({k})"));
    }
    Exit::error(message)
}

/// The text of the first element named `name` in an XML document.
fn xml_text(body: &[u8], name: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut inside = false;
    let mut text = String::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) if e.local_name().as_ref() == name.as_bytes() => inside = true,
            Event::Text(t) if inside => text.push_str(&t.decode().ok()?),
            Event::CData(t) if inside => text.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) if inside => {
                let s = match &*r.decode().ok()? {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => "",
                };
                text.push_str(s);
            }
            Event::End(e) if inside && e.local_name().as_ref() == name.as_bytes() => {
                return Some(text)
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}
