//! The headers of the API as the document declares them: the request headers the service reads
//! beside each operation's own parameters, and the answer headers a client needs.
//!
//! The handlers set their headers where they build their answers (`jobs::created`,
//! `job_headers`, the downloads, the lists' `Link`); poem-openapi has no way to declare headers
//! of a hand-built answer, so this table says where each is sent and `declare_headers` writes it
//! into the document. The table cannot drift unnoticed: the test that walks every operation of
//! the running service (`tests/api/openapi.rs`) fails on an answer header that is not declared
//! on its operation and status.

use serde_json::{json, Map, Value};

/// Where a header is declared: every operation, or those named.
enum Ops {
    All,
    Posts,
    Named(&'static [&'static str]),
}

impl Ops {
    fn has(&self, method: &str, id: &str) -> bool {
        match self {
            Ops::All => true,
            Ops::Posts => method == "post",
            Ops::Named(ids) => ids.contains(&id),
        }
    }
}

/// An answer header: its name, the operations and statuses that send it, and what it says.
struct Answer {
    name: &'static str,
    ops: Ops,
    statuses: &'static [&'static str],
    /// Sent on every answer of those statuses (else only sometimes, as `description` says).
    always: bool,
    description: &'static str,
}

/// The operations whose answers are a job document.
const JOB_DOCUMENTS: &[&str] = &[
    "getJob",
    "submitJob",
    "cancelJob",
    "restartJob",
    "submitImport",
    "compare",
    "export",
    "bulkJobAction",
];

/// The operations that answer `Prefer: wait=N` with `Preference-Applied`.
const WAITS: &[&str] = &[
    "getJob",
    "submitJob",
    "submitImport",
    "compare",
    "export",
    "bulkJobAction",
];

/// The downloads of one file.
const DOWNLOADS: &[&str] = &["download", "getDataFile", "xdcDownload"];

/// The paged lists.
const LISTS: &[&str] = &[
    "listJobs",
    "listTasks",
    "listTools",
    "listToolsImportErrors",
];

/// The submissions that take a correlation id.
const SUBMISSIONS: &[&str] = &[
    "submitJob",
    "submitImport",
    "startToolsImport",
    "compare",
    "export",
    "bulkJobAction",
    "xdcCompare",
];

const ANSWERS: &[Answer] = &[
    Answer {
        name: "Location",
        ops: Ops::All,
        statuses: &["201"],
        always: true,
        description: "The absolute URL of what was created: follow it.",
    },
    Answer {
        name: "Content-Location",
        ops: Ops::Named(&["compare", "xdcCompare"]),
        statuses: &["200"],
        always: false,
        description: "The job that made this synchronous answer.",
    },
    Answer {
        name: "ETag",
        ops: Ops::Named(JOB_DOCUMENTS),
        statuses: &["200", "201", "202", "304"],
        always: false,
        description: "The job document's version; send it as `If-None-Match` to be answered \
                      304 (or, with `Prefer: wait`, to wait for a change).",
    },
    Answer {
        name: "ETag",
        ops: Ops::Named(DOWNLOADS),
        statuses: &["200", "206", "304"],
        always: true,
        description: "The file's version, for `If-None-Match` and `If-Range`.",
    },
    Answer {
        name: "Cache-Control",
        ops: Ops::Named(&[
            "getJob",
            "cancelJob",
            "restartJob",
            "jobEvents",
            "getJobMessages",
            "streamEvents",
            "getStats",
        ]),
        statuses: &["200", "202", "304"],
        always: false,
        description: "`no-cache`: the document (or event stream) changes as jobs move.",
    },
    Answer {
        name: "Retry-After",
        ops: Ops::Named(&["getJob", "cancelJob", "restartJob"]),
        statuses: &["200", "202"],
        always: false,
        description: "While the job runs: seconds until polling again is worthwhile.",
    },
    Answer {
        name: "Retry-After",
        ops: Ops::All,
        statuses: &["429"],
        always: true,
        description: "Seconds until the key may submit again.",
    },
    Answer {
        name: "Retry-After",
        ops: Ops::Posts,
        statuses: &["409"],
        always: false,
        description: "When a request with the same `Idempotency-Key` is still being handled: \
                      seconds until trying again.",
    },
    Answer {
        name: "WWW-Authenticate",
        ops: Ops::All,
        statuses: &["401"],
        always: true,
        description: "`Bearer realm=\"longrun\"`: send an API key.",
    },
    Answer {
        name: "Link",
        ops: Ops::Named(LISTS),
        statuses: &["200"],
        always: false,
        description: "RFC 8288 links to the `next` and `prev` pages, as in the body.",
    },
    Answer {
        name: "Link",
        ops: Ops::Named(&["compare", "xdcCompare"]),
        statuses: &["200"],
        always: false,
        description: "RFC 8288 links to the job that made this answer and its result.",
    },
    Answer {
        name: "Preference-Applied",
        ops: Ops::Named(WAITS),
        statuses: &["200", "201"],
        always: false,
        description: "`wait=N` when `Prefer: wait=N` was honoured.",
    },
    Answer {
        name: "Idempotent-Replayed",
        ops: Ops::Posts,
        statuses: &["200", "201", "202"],
        always: false,
        description: "`true` when this is the kept answer of an earlier request with the same \
                      `Idempotency-Key`.",
    },
    Answer {
        name: "Accept-Ranges",
        ops: Ops::Named(DOWNLOADS),
        statuses: &["200", "206"],
        always: true,
        description: "`bytes`: ask for a part with `Range`.",
    },
    Answer {
        name: "Content-Range",
        ops: Ops::Named(DOWNLOADS),
        statuses: &["206", "416"],
        always: true,
        description: "The part sent (206) or the file's size (416).",
    },
    Answer {
        name: "Content-Disposition",
        ops: Ops::Named(DOWNLOADS),
        statuses: &["200", "206"],
        always: true,
        description: "`attachment` with the file's name.",
    },
];

/// A request header the service reads outside an operation's own parameters.
struct Read {
    name: &'static str,
    ops: Ops,
    schema: fn() -> Value,
    description: &'static str,
}

const READS: &[Read] = &[
    Read {
        name: "Idempotency-Key",
        ops: Ops::Posts,
        schema: || json!({"type": "string", "pattern": super::idempotency::KEY_PATTERN}),
        description: "Makes a retried POST safe: the same key with the same request within 24 h \
                      answers what the first one did (with `Idempotent-Replayed: true`); with \
                      another request, 422.",
    },
    Read {
        name: "X-Correlation-Id",
        ops: Ops::Named(SUBMISSIONS),
        schema: || json!({"type": "string"}),
        description: "Your id for the job, kept as its `correlationId` (its first 200 \
                      characters, trimmed; filterable in the job list); wins over a \
                      `correlationId` in the body.",
    },
];

/// Declares the headers of `ANSWERS` and `READS` on the operations of `doc`, and the 422 that an
/// `Idempotency-Key` used with another request answers.
pub fn declare_headers(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut().filter_map(Value::as_object_mut) {
        for (method, op) in item.iter_mut() {
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            let id = op
                .get("operationId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            declare_reads(method, &id, op);
            declare_answers(method, &id, op);
        }
    }
}

fn declare_reads(method: &str, id: &str, op: &mut Map<String, Value>) {
    for read in READS.iter().filter(|r| r.ops.has(method, id)) {
        let params = op
            .entry("parameters")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("parameters is a list");
        if params.iter().any(|p| p["name"] == read.name) {
            continue;
        }
        params.push(json!({
            "name": read.name,
            "in": "header",
            "required": false,
            "description": read.description,
            "schema": (read.schema)(),
        }));
    }
    if method == "post" {
        if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
            if let Some(conflict) = responses.get("409").cloned() {
                let mut reused = conflict;
                reused["description"] =
                    json!("The `Idempotency-Key` was used with a different request");
                responses.entry("422").or_insert(reused);
            }
        }
    }
}

fn declare_answers(method: &str, id: &str, op: &mut Map<String, Value>) {
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    for (status, answer) in responses.iter_mut() {
        let Some(answer) = answer.as_object_mut() else {
            continue;
        };
        for a in ANSWERS
            .iter()
            .filter(|a| a.ops.has(method, id) && a.statuses.contains(&status.as_str()))
        {
            let headers = answer
                .entry("headers")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("headers is a map");
            headers.entry(a.name).or_insert_with(|| {
                json!({
                    "description": a.description,
                    "required": a.always,
                    "schema": {"type": "string"},
                })
            });
        }
    }
}
