//! Pure types and rules of the service: no I/O lives here.

mod job;
pub mod signals;
mod status;
mod tool;

pub use job::{
    file_href, job_href, job_links, new_reference, retry_after_secs, Job, JobOptions, Lease, Level,
    Link, Message, OutputFile, Progress,
};
pub use status::{JobStatus, UnknownStatus};
pub use tool::{tool_json, Fence, ToolRow, ToolWrite};

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
}

impl JobFilter {
    /// True when no filter is set (bulk purge refuses that).
    pub fn is_empty(&self) -> bool {
        self == &JobFilter::default()
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

#[cfg(test)]
mod tests {
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
}
