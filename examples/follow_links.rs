//! A client that knows one URL, the service root, and follows links from there: submit an
//! import, follow `Location`, wait on the `monitor` link until it is gone, read the `result`,
//! download the `file`. Plain reqwest, nothing of longrun's own code.
//!
//! ```sh
//! cargo run --example follow_links -- http://127.0.0.1:8080
//! ```

use reqwest::header::{ACCEPT, ETAG, IF_NONE_MATCH, LOCATION};
use serde_json::{json, Value};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What the walk saw.
pub struct Walk {
    /// The job's URL, from `Location`.
    pub job: String,
    /// Its end state.
    pub status: String,
    /// The `result` document.
    pub result: Value,
    /// The URL of the downloaded file and its bytes.
    pub file: String,
    pub bytes: Vec<u8>,
}

/// The `href` of a document's first link with `rel`.
fn href(doc: &Value, rel: &str) -> Option<String> {
    doc["links"]
        .as_array()?
        .iter()
        .find(|l| l["rel"] == rel)
        .and_then(|l| l["href"].as_str())
        .map(str::to_string)
}

fn need(doc: &Value, rel: &str) -> Result<String, Error> {
    href(doc, rel).ok_or_else(|| format!("no `{rel}` link in {doc}").into())
}

/// Walk from the root `server` to the downloaded result of an import.
pub async fn walk(http: &reqwest::Client, server: &str) -> Result<Walk, Error> {
    // 1. The root names where imports go.
    let root: Value = http
        .get(server)
        .header(ACCEPT, "application/json")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let imports = need(&root, "imports")?;

    // 2. Submit: 201 Created, the job in the body and its URL in Location.
    let answer = http
        .post(&imports)
        .header(ACCEPT, "application/json")
        .json(&json!({"data": [
            {"tool_id": "F1", "tool_name": "Link Walker", "category": "Examples",
             "url": "https://example.com/walker"},
            {"tool_id": "F2", "tool_name": "Broken", "category": "Examples", "url": "not a url"}
        ]}))
        .send()
        .await?;
    if answer.status() != reqwest::StatusCode::CREATED {
        return Err(format!("submission answered {}", answer.status()).into());
    }
    let job_url = answer
        .headers()
        .get(LOCATION)
        .ok_or("no Location")?
        .to_str()?
        .to_string();
    let mut etag = answer
        .headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut job: Value = answer.json().await?;

    // 3. Monitor: while there is a `monitor` link the job runs. `Prefer: wait` holds each
    //    request until the job differs from the ETag we have (304 if it did not change).
    while let Some(monitor) = href(&job, "monitor") {
        let mut req = http
            .get(&monitor)
            .header(ACCEPT, "application/json")
            .header("prefer", "wait=30");
        if let Some(t) = &etag {
            req = req.header(IF_NONE_MATCH, t);
        }
        let answer = req.send().await?.error_for_status()?;
        if answer.status() == reqwest::StatusCode::NOT_MODIFIED {
            continue;
        }
        etag = answer
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        job = answer.json().await?;
        println!(
            "{} stage {}/{} {}",
            job["jobStatus"].as_str().unwrap_or(""),
            job["currentStage"],
            job["totalNumberOfStages"],
            job["phaseDescription"].as_str().unwrap_or("")
        );
    }
    let status = job["jobStatus"].as_str().unwrap_or("").to_string();
    if status != "SUCCESS" {
        return Err(format!("the job ended {status}: {}", job["error"]).into());
    }

    // 4. The result, then 5. its file.
    let result: Value = http
        .get(need(&job, "result")?)
        .header(ACCEPT, "application/json")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let file = need(&result, "file")?;
    let bytes = http
        .get(&file)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?
        .to_vec();
    Ok(Walk {
        job: job_url,
        status,
        result,
        file,
        bytes,
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let server = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let w = walk(&reqwest::Client::new(), &server).await?;
    println!("job      {}", w.job);
    println!("status   {}", w.status);
    println!("summary  {}", w.result["summary"]);
    println!("file     {} ({} bytes)", w.file, w.bytes.len());
    println!("{}", String::from_utf8_lossy(&w.bytes));
    Ok(())
}
