//! Tests: property tests for both formats, unit tests for limits, errors,
//! cancellation and detection, and a check of the FORMAT.md example.

mod format_doc;
mod json_props;
mod robustness;
mod unit;
mod xml_props;

use super::Control;

/// A Control that reports cancellation after `after` polls.
pub(super) struct CancelAfter {
    pub(super) polls: std::cell::Cell<u64>,
    pub(super) after: u64,
    pub(super) progress_calls: u64,
    pub(super) last_done: u64,
}

impl CancelAfter {
    pub(super) fn new(after: u64) -> Self {
        CancelAfter {
            polls: std::cell::Cell::new(0),
            after,
            progress_calls: 0,
            last_done: 0,
        }
    }
}

impl Control for CancelAfter {
    fn cancelled(&self) -> bool {
        self.polls.set(self.polls.get() + 1);
        self.polls.get() > self.after
    }
    fn progress(&mut self, done: u64, total: u64) {
        assert!(done <= total, "progress {done} > total {total}");
        assert!(done >= self.last_done, "progress went backwards");
        self.last_done = done;
        self.progress_calls += 1;
    }
}

/// Number of proptest cases: `PROPTEST_CASES` if set, else `default`.
pub(super) fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
