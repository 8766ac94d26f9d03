//! Pure types and rules of the service: no I/O lives here.

pub mod access;
pub mod concurrency;
pub mod deadline;
pub(crate) mod job;
pub mod lane;
mod lease;
pub mod signals;
pub mod stats;
mod status;
mod tool;

pub use job::{
    datafile_href, datafileset_href, file_href, job_href, job_links, new_reference,
    retry_after_secs, Job, JobOptions, Lease, Level, Link, Message, OutputFile, Progress,
};
pub use lane::Lane;
pub use lease::{LeaseClock, RunLease};
pub use status::{JobStatus, UnknownStatus};
pub use tool::{tool_json, ToolRow, ToolWrite};

/// Filters of the audit collection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    pub statuses: Vec<JobStatus>,
    pub operation: Option<String>,
    pub correlation_id: Option<String>,
    pub created_after: Option<chrono::DateTime<chrono::Utc>>,
    pub created_before: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_after: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_before: Option<chrono::DateTime<chrono::Utc>>,
    /// The start of a job's id or of its correlation id (letter case aside).
    pub search: Option<String>,
    /// Only jobs of this priority.
    pub priority: Option<i32>,
    /// The tenant whose jobs (or catalog) are meant. Set by the service from the caller or the
    /// running job, never read from input, so it is not part of the stored form.
    pub owner: Option<String>,
    /// Only jobs of the work lane: a bulk action never matches bulk actions. Set by the
    /// service, never read from input.
    pub work_lane_only: bool,
}

impl JobFilter {
    /// True when no filter is set (bulk purge refuses that); the tenant does not count.
    pub fn is_empty(&self) -> bool {
        JobFilter {
            owner: None,
            work_lane_only: false,
            ..self.clone()
        } == JobFilter::default()
    }

    /// The stored form (the audit collection's parameter names).
    pub fn to_json(&self) -> serde_json::Value {
        let t = |v: &Option<chrono::DateTime<chrono::Utc>>| {
            v.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        };
        serde_json::json!({
            "status": self.statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "operation": self.operation,
            "correlationId": self.correlation_id,
            "createdAfter": t(&self.created_after),
            "createdBefore": t(&self.created_before),
            "finishedAfter": t(&self.finished_after),
            "finishedBefore": t(&self.finished_before),
            "search": self.search,
            "priority": self.priority,
        })
    }

    /// Read the stored form back.
    pub fn from_json(v: &serde_json::Value) -> Result<JobFilter, String> {
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let time = |k: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
            text(k)
                .map(|s| {
                    chrono::DateTime::parse_from_rfc3339(&s)
                        .map(|t| t.with_timezone(&chrono::Utc))
                        .map_err(|e| format!("`{k}`: {e}"))
                })
                .transpose()
        };
        let mut statuses = Vec::new();
        for s in v
            .get("status")
            .and_then(|x| x.as_array())
            .into_iter()
            .flatten()
        {
            let s = s.as_str().unwrap_or_default();
            statuses.push(s.parse().map_err(|_| format!("unknown status `{s}`"))?);
        }
        Ok(JobFilter {
            statuses,
            operation: text("operation"),
            correlation_id: text("correlationId"),
            created_after: time("createdAfter")?,
            created_before: time("createdBefore")?,
            finished_after: time("finishedAfter")?,
            finished_before: time("finishedBefore")?,
            search: text("search"),
            priority: match v.get("priority") {
                None | Some(serde_json::Value::Null) => None,
                Some(p) => Some(
                    p.as_i64()
                        .and_then(|p| i32::try_from(p).ok())
                        .ok_or_else(|| format!("`priority`: {p} is not an integer"))?,
                ),
            },
            owner: None,
            work_lane_only: false,
        })
    }
}

/// The longest `search` prefix.
pub const SEARCH_MAX: usize = 200;

/// A `search` prefix as given: trimmed, none when empty, refused when longer than `SEARCH_MAX`.
pub fn search_prefix(v: Option<&str>) -> Result<Option<String>, String> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > SEARCH_MAX {
        return Err(format!("`search` may be at most {SEARCH_MAX} characters"));
    }
    Ok(Some(v.to_string()))
}

/// A point in the order in which jobs change: a job's last change (`updated`, in milliseconds)
/// and its id. It is the `id` of an event of the collection's stream, and where a stream
/// resumes from (`Last-Event-ID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChangePoint {
    pub at_ms: i64,
    pub id: uuid::Uuid,
}

impl ChangePoint {
    /// The point of a job's last change.
    pub fn of(job: &Job) -> ChangePoint {
        ChangePoint {
            at_ms: job.updated.timestamp_millis(),
            id: job.id,
        }
    }

    /// A point before every change of job at `at_ms` and later.
    pub fn at(at_ms: i64) -> ChangePoint {
        ChangePoint {
            at_ms,
            id: uuid::Uuid::nil(),
        }
    }

    /// Text form: "<milliseconds>.<job id>".
    pub fn encode(&self) -> String {
        format!("{}.{}", self.at_ms, self.id)
    }

    /// Parse the text form; `None` for anything else.
    pub fn decode(s: &str) -> Option<ChangePoint> {
        let (at, id) = s.trim().split_once('.')?;
        Some(ChangePoint {
            at_ms: at.parse().ok().filter(|n: &i64| *n >= 0)?,
            id: id.parse().ok()?,
        })
    }
}

/// Where a page of the collection starts: the id of the row just before it, and the direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub after: uuid::Uuid,
    /// `true` when the page goes backwards from `after` (a `prev` link).
    pub backwards: bool,
}

impl Cursor {
    /// Opaque text form: base64url of "n:<uuid>" or "p:<uuid>".
    pub fn encode(&self) -> String {
        use base64::Engine;
        let raw = format!("{}:{}", if self.backwards { "p" } else { "n" }, self.after);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }
    /// Parse the opaque form; `None` for anything that is not one of ours.
    pub fn decode(s: &str) -> Option<Cursor> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.as_bytes())
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (dir, id) = raw.split_once(':')?;
        let backwards = match dir {
            "n" => false,
            "p" => true,
            _ => return None,
        };
        Some(Cursor {
            after: id.parse().ok()?,
            backwards,
        })
    }
}

/// Lower-case hex of some bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn change_points_round_trip_and_order() {
        use super::ChangePoint;
        let id: uuid::Uuid = "0190b2a4-5b7c-7d8e-9f00-112233445566".parse().unwrap();
        let p = ChangePoint {
            at_ms: 1_700_000_000_123,
            id,
        };
        assert_eq!(
            p.encode(),
            "1700000000123.0190b2a4-5b7c-7d8e-9f00-112233445566"
        );
        assert_eq!(ChangePoint::decode(&p.encode()), Some(p));
        for bad in [
            "",
            "12",
            "x.0190b2a4-5b7c-7d8e-9f00-112233445566",
            "-5.0190b2a4-5b7c-7d8e-9f00-112233445566",
            "12.nope",
            "12.0190b2a4",
        ] {
            assert_eq!(ChangePoint::decode(bad), None, "{bad}");
        }
        assert!(ChangePoint::at(p.at_ms) < p);
        assert!(p < ChangePoint::at(p.at_ms + 1));
    }

    use super::*;

    #[test]
    fn cursor_round_trip_and_garbage() {
        let c = Cursor {
            after: uuid::Uuid::now_v7(),
            backwards: true,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("!!"), None);
        assert_eq!(Cursor::decode("eDp5"), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(2000))]

        /// Any text is a cursor or not, never a panic; a cursor read back is the same cursor.
        #[test]
        fn cursor_decode_takes_any_text(s in "\\PC{0,80}") {
            if let Some(c) = Cursor::decode(&s) {
                proptest::prop_assert_eq!(Cursor::decode(&c.encode()), Some(c));
            }
        }

        /// Base64 of anything decodes only to a cursor that round-trips.
        #[test]
        fn cursor_decode_takes_any_bytes(b in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..60)) {
            use base64::Engine;
            let s = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&b);
            if let Some(c) = Cursor::decode(&s) {
                proptest::prop_assert_eq!(Cursor::decode(&c.encode()), Some(c));
            }
        }

        #[test]
        fn cursors_round_trip(n in proptest::arbitrary::any::<u128>(), backwards in proptest::arbitrary::any::<bool>()) {
            let c = Cursor { after: uuid::Uuid::from_u128(n), backwards };
            proptest::prop_assert_eq!(Cursor::decode(&c.encode()), Some(c));
        }
    }
}
