//! The job state machine: every status change in the service goes through `can_move_to`.

use std::fmt;
use std::str::FromStr;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    Queued,
    Started,
    Processing,
    Saving,
    Success,
    Failed,
    Cancelled,
    /// Only ever shown in the answer to a DELETE; the stored job is then a tombstone.
    Deleted,
}

impl JobStatus {
    /// Every status, in life order.
    pub const ALL: [JobStatus; 8] = [
        JobStatus::Queued,
        JobStatus::Started,
        JobStatus::Processing,
        JobStatus::Saving,
        JobStatus::Success,
        JobStatus::Failed,
        JobStatus::Cancelled,
        JobStatus::Deleted,
    ];
    /// Statuses in which a worker holds the job under a lease.
    pub const RUNNING: [JobStatus; 3] =
        [JobStatus::Started, JobStatus::Processing, JobStatus::Saving];
    /// Statuses a job never leaves on its own.
    pub const END: [JobStatus; 3] = [JobStatus::Success, JobStatus::Failed, JobStatus::Cancelled];

    /// The wire name (`QUEUED`, `STARTED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "QUEUED",
            JobStatus::Started => "STARTED",
            JobStatus::Processing => "PROCESSING",
            JobStatus::Saving => "SAVING",
            JobStatus::Success => "SUCCESS",
            JobStatus::Failed => "FAILED",
            JobStatus::Cancelled => "CANCELLED",
            JobStatus::Deleted => "DELETED",
        }
    }

    /// True for SUCCESS, FAILED and CANCELLED (and the DELETED tombstone).
    pub fn is_end(self) -> bool {
        matches!(
            self,
            JobStatus::Success | JobStatus::Failed | JobStatus::Cancelled | JobStatus::Deleted
        )
    }

    /// True while a worker owns the job.
    pub fn is_running(self) -> bool {
        Self::RUNNING.contains(&self)
    }

    /// The one rule book of legal moves.
    ///
    /// Running states may fall back to QUEUED: that is how a job whose worker died (lease expired)
    /// or was shut down is handed to another worker as a new attempt.
    pub const fn can_move_to(self, to: JobStatus) -> bool {
        use JobStatus::*;
        match (self, to) {
            (Deleted, _) => false,
            (_, Deleted) => true,
            (Queued, Started | Cancelled | Failed) => true,
            (Started, Processing | Saving | Success | Failed | Cancelled | Queued) => true,
            (Processing, Processing | Saving | Success | Failed | Cancelled | Queued) => true,
            (Saving, Saving | Success | Failed | Cancelled | Queued) => true,
            (Failed | Cancelled, Queued) => true,
            _ => false,
        }
    }
}

impl JobStatus {
    /// The statuses that may move to `self` (for writes conditional on the status they find).
    pub fn sources(self) -> impl Iterator<Item = JobStatus> {
        JobStatus::ALL
            .into_iter()
            .filter(move |s| s.can_move_to(self))
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStatus(pub String);

impl FromStr for JobStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::JobStatus::*;
    use super::*;

    #[test]
    fn happy_path_is_legal() {
        let path = [Queued, Started, Processing, Saving, Success];
        for w in path.windows(2) {
            assert!(w[0].can_move_to(w[1]), "{} -> {}", w[0], w[1]);
        }
    }

    #[test]
    fn end_states_are_final_except_restart() {
        assert!(!Success.can_move_to(Queued));
        assert!(!Success.can_move_to(Processing));
        assert!(Failed.can_move_to(Queued));
        assert!(Cancelled.can_move_to(Queued));
        assert!(!Failed.can_move_to(Success));
        assert!(!Queued.can_move_to(Success));
        assert!(!Deleted.can_move_to(Queued));
        for s in JobStatus::ALL {
            if s != Deleted {
                assert!(s.can_move_to(Deleted));
            }
        }
    }

    #[test]
    fn parse_round_trips() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), s);
        }
        assert_eq!("queued".parse::<JobStatus>().unwrap(), Queued);
        assert!("NOPE".parse::<JobStatus>().is_err());
    }
}
