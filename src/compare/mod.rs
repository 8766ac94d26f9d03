//! Document comparison: XML deltas and RFC 6902 JSON patches.
//!
//! The module is self-contained: parse each input (`xml::XmlDoc::parse`,
//! `json::parse_json`), then diff (`xml::diff_xml`, `json::diff_json`).
//! All long-running steps poll a [`Control`] for cancellation and report
//! progress.

pub mod deltaxml;
pub mod detect;
mod hash;
pub mod json;
mod ticker;
pub mod xml;

#[cfg(test)]
mod tests;

pub use deltaxml::to_deltaxml;
pub use detect::{detect, DocFormat};
pub use json::{diff_json, parse_json, write_patch, JsonOptions};
pub use xml::{canonical, compare_xml, diff_xml, rebuild, Side, XmlDoc, XmlOptions};

/// A place in an input document. `line` and `column` are 1-based (the column
/// counts characters), `offset` is the 0-based byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u64,
    pub column: u64,
    pub offset: u64,
}

impl Position {
    /// Computes line and column of byte `offset` in `input`.
    pub fn at(input: &[u8], offset: usize) -> Position {
        let offset = offset.min(input.len());
        let before = &input[..offset];
        let line_start = before
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |i| i + 1);
        let line = before.iter().filter(|&&c| c == b'\n').count() as u64 + 1;
        let column = before[line_start..]
            .iter()
            .filter(|&&c| c & 0xC0 != 0x80)
            .count() as u64
            + 1;
        Position {
            line,
            column,
            offset: offset as u64,
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

fn parse_error_text(position: &Option<Position>, message: &str) -> String {
    match position {
        Some(p) => format!("{p}: {message}"),
        None => message.to_string(),
    }
}

/// Everything that can go wrong while parsing or comparing.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// The input is not well-formed.
    #[error("{}", parse_error_text(.position, .message))]
    Parse {
        position: Option<Position>,
        message: String,
    },
    /// The input is well-formed (as far as we read it) but is not accepted:
    /// a DTD or entity declaration, nesting too deep, too many nodes.
    #[error("input refused: {message}")]
    Refused { message: String },
    /// [`Control::cancelled`] returned true.
    #[error("comparison cancelled")]
    Cancelled,
    /// Writing the output failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl DiffError {
    fn parse_at(input: &[u8], offset: usize, message: impl Into<String>) -> DiffError {
        DiffError::Parse {
            position: Some(Position::at(input, offset)),
            message: message.into(),
        }
    }

    fn refused(message: impl Into<String>) -> DiffError {
        DiffError::Refused {
            message: message.into(),
        }
    }
}

/// Resource limits applied while parsing (and re-checked while diffing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum element / array / object nesting depth.
    pub max_depth: usize,
    /// Maximum number of nodes of one document.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 256,
            max_nodes: 50_000_000,
        }
    }
}

/// Cancellation and progress hooks, polled about every 10 000 nodes of work.
pub trait Control {
    /// Returns true when the caller wants the work to stop; the running call
    /// then returns [`DiffError::Cancelled`].
    fn cancelled(&self) -> bool;
    /// Progress of the current step: `done` of `total` units (nodes while
    /// diffing, bytes while parsing). `done` never decreases within a step.
    fn progress(&mut self, done: u64, total: u64);
}

/// A [`Control`] that never cancels and ignores progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoControl;

impl Control for NoControl {
    fn cancelled(&self) -> bool {
        false
    }
    fn progress(&mut self, _done: u64, _total: u64) {}
}

/// Counts of a comparison result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub identical: bool,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
}

impl Summary {
    /// `{"identical": bool, "added": n, "removed": n, "changed": n}`
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "identical": self.identical,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
        })
    }
}
