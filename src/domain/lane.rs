//! Lanes of the claim. A job is claimed only by a loop of its lane: the workers
//! (`LONGRUN_WORKERS` of them per instance) claim the work lane, every operation a client
//! submits; a small fixed number of control loops per instance claim the control lane, the
//! bulk actions. A bulk action therefore starts at once however busy the workers are and however
//! long the queue it acts on is.

/// Which loops may claim a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Every operation of the public registry, claimed by the workers.
    Work,
    /// The service's own operations on jobs (`CONTROL_OPERATIONS`), claimed by the control
    /// loops only.
    Control,
}

/// The operations of the control lane. They are not in the public registry, so no submission
/// route can store one; only `Engine::submit_control` can.
pub const CONTROL_OPERATIONS: &[&str] = &[BULK];

/// The bulk action's operation name.
pub const BULK: &str = "bulk";

impl Lane {
    /// The lane of an operation.
    pub fn of(operation: &str) -> Lane {
        if CONTROL_OPERATIONS.contains(&operation) {
            Lane::Control
        } else {
            Lane::Work
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_control_operations_are_in_the_control_lane() {
        assert_eq!(Lane::of(BULK), Lane::Control);
        for op in [
            "import", "export", "compare", "noop", "request", "Bulk", "bulk ",
        ] {
            assert_eq!(Lane::of(op), Lane::Work, "{op}");
        }
        // The names are written into the claim's SQL as literals: keep them plain.
        for op in CONTROL_OPERATIONS {
            assert!(op.bytes().all(|b| b.is_ascii_lowercase()), "{op}");
        }
    }
}
