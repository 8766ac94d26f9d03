//! The run lease: the right to write about one attempt of one running job, and the arithmetic
//! that tells its holder when to stop.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The right to write about one attempt of one running job.
///
/// Only the store's claim grants one (`granted` is crate-private, and the store is its one
/// caller); every write a worker makes about its job — progress, messages, output files, import
/// batches, the end, the release — takes it, and the store checks it in one place: the row must
/// still be running, on this attempt, owned by this node, with the lease not yet run out by the
/// database's clock. A holder that lost it writes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLease {
    job_id: Uuid,
    attempt: i32,
    owner: String,
    deadline: DateTime<Utc>,
}

impl RunLease {
    /// A lease as the store granted or renewed it.
    pub(crate) fn granted(
        job_id: Uuid,
        attempt: i32,
        owner: String,
        deadline: DateTime<Utc>,
    ) -> RunLease {
        RunLease {
            job_id,
            attempt,
            owner,
            deadline,
        }
    }

    /// The job it is about.
    pub fn job_id(&self) -> Uuid {
        self.job_id
    }

    /// The attempt it is about; a claim of the next attempt makes it worthless.
    pub fn attempt(&self) -> i32 {
        self.attempt
    }

    /// The node that holds it.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// When it runs out by the database's clock, as of its grant (renewals move it on).
    pub fn deadline(&self) -> DateTime<Utc> {
        self.deadline
    }
}

/// When the holder of a lease must stop, measured on its own monotonic clock only (so no two
/// clocks are ever compared): a renewal sent at `t` moved the deadline to at least
/// `t + length` by the database's clock, since the database wrote it after `t`. Without a newer
/// renewal, the holder stops `margin` before that bound, so it has stopped writing before
/// anyone can take the job over.
#[derive(Debug, Clone, Copy)]
pub struct LeaseClock {
    length: Duration,
    margin: Duration,
    /// When the last renewal that succeeded was sent (or the claim).
    sent: Instant,
}

impl LeaseClock {
    /// A clock for a lease of `length` granted by a claim sent at `sent`.
    pub fn new(length: Duration, sent: Instant) -> LeaseClock {
        LeaseClock {
            length,
            margin: length / 10,
            sent,
        }
    }

    /// A renewal sent at `sent` succeeded.
    pub fn renewed(&mut self, sent: Instant) {
        self.sent = self.sent.max(sent);
    }

    /// The last instant the holder may still write.
    pub fn stop_at(&self) -> Instant {
        self.sent + self.length.saturating_sub(self.margin)
    }

    /// Must the holder stop at `now`?
    pub fn expired(&self, now: Instant) -> bool {
        now >= self.stop_at()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_stops_before_anyone_can_take_it() {
        let t0 = Instant::now();
        let mut c = LeaseClock::new(Duration::from_secs(10), t0);
        assert!(!c.expired(t0 + Duration::from_secs(8)));
        assert!(c.expired(t0 + Duration::from_secs(9)));
        // A renewal moves the bound from when it was sent, not from when it was answered.
        c.renewed(t0 + Duration::from_secs(3));
        assert!(!c.expired(t0 + Duration::from_secs(11)));
        assert!(c.expired(t0 + Duration::from_secs(12)));
        // An older renewal answered late never moves it back.
        c.renewed(t0 + Duration::from_secs(1));
        assert_eq!(c.stop_at(), t0 + Duration::from_secs(12));
    }
}
