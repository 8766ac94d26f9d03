//! Background duties, each with a `run_once(now)` so tests can drive them with a pinned clock.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{failure_problem, Engine, Result};
use crate::domain::{Job, JobFilter, JobStatus, Level};

/// A half-written upload untouched this long belongs to no living upload (one in flight writes
/// at least every part of 10 MB; an hour allows a client slower than 3 KB/s).
const STAGING_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

impl Engine {
    /// Re-queue (or give up on) running jobs whose lease expired before `now`; returns how many.
    pub async fn recover_once(&self, now: DateTime<Utc>) -> Result<usize> {
        let expired = self.store.expired_leases(now).await?;
        let mut n = 0;
        for job in expired {
            let res = self
                .store
                .transition(job.id, |j| recover(j, now).ok_or(()))
                .await?;
            if let Ok(Some(_)) = res {
                n += 1;
            }
        }
        if n > 0 {
            self.wake.notify_waiters();
            self.wake.notify_one();
            self.wake_control.notify_waiters();
        }
        Ok(n)
    }

    /// Remove jobs (and their files) that ended longer than the retention ago, and half-written
    /// uploads left by a crash; returns how many jobs.
    pub async fn retention_once(&self, now: DateTime<Utc>) -> Result<u64> {
        let keep = chrono::Duration::from_std(self.cfg.retention).unwrap_or_default();
        let filter = JobFilter {
            finished_before: Some(now - keep),
            ..Default::default()
        };
        self.store
            .idem_purge(now - chrono::Duration::hours(24))
            .await?;
        // Uploads a crash left half-written (the first pass runs right after start).
        match self.blobs.sweep_staging(STAGING_GRACE).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed half-written uploads"),
            Err(e) => tracing::warn!(error = %e, "sweeping half-written uploads failed"),
        }
        let mut n = 0;
        loop {
            let batch = self.store.ended_jobs(&filter, 200, true).await?;
            if batch.is_empty() {
                return Ok(n);
            }
            for job in batch {
                n += u64::from(self.erase(&job).await?);
            }
        }
    }

    /// Run recovery and retention periodically until shutdown, each in a task of its own, so
    /// a large purge never delays taking over the jobs of a dead node. Recovery reads the
    /// database's clock, the one every lease is measured by.
    pub fn start_maintenance(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let me = self.clone();
        let recovery = tokio::spawn(async move {
            let every = (me.cfg.lease / 2).max(std::time::Duration::from_millis(200));
            loop {
                tokio::select! {
                    _ = me.stop_claiming.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                let now = match me.store.db_now().await {
                    Ok(now) => now,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the database's clock failed");
                        continue;
                    }
                };
                if let Err(e) = me.recover_once(now).await {
                    tracing::warn!(error = %e, "recovery failed");
                }
            }
        });
        let me = self.clone();
        let retention = tokio::spawn(async move {
            loop {
                if let Err(e) = me.retention_once(Utc::now()).await {
                    tracing::warn!(error = %e, "retention failed");
                }
                tokio::select! {
                    _ = me.stop_claiming.cancelled() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
                }
            }
        });
        vec![recovery, retention]
    }

    /// Stop claiming, ask running jobs to reach a checkpoint, wait up to the grace period, and
    /// release whatever is still held so another process takes it at once.
    pub async fn shutdown(&self, mut workers: tokio::task::JoinSet<()>) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop_claiming.cancel();
        for r in self.running.lock().unwrap().values() {
            r.token.cancel();
        }
        let grace = tokio::time::sleep(self.cfg.grace);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                next = workers.join_next() => if next.is_none() { break },
                _ = &mut grace => { workers.abort_all(); break }
            }
        }
        // The runs that did not reach a checkpoint in time: released under their own leases
        // (a lease that ran out meanwhile is recovery's to handle).
        let held: Vec<_> = self
            .running
            .lock()
            .unwrap()
            .drain()
            .map(|(_, r)| r.lease)
            .collect();
        for lease in held {
            let node = self.node.clone();
            let _ = self
                .store
                .end_run(&lease, |j| {
                    j.status = JobStatus::Queued;
                    j.attempt += 1;
                    j.started = None;
                    (
                        Level::Warning,
                        format!("released at shutdown of node {node} after the grace period"),
                    )
                })
                .await;
        }
    }
}

/// What recovery does with a job whose lease ran out before `now`: cancel it (a stop was
/// asked), fail it (no attempts left), or queue it again as the next attempt; None when it is
/// no longer running on an expired lease.
pub(crate) fn recover(j: &mut Job, now: DateTime<Utc>) -> Option<Option<(Level, String, String)>> {
    let still = j.status.is_running() && j.lease.as_ref().map(|l| l.expires < now).unwrap_or(true);
    if !still {
        return None;
    }
    let owner = j
        .lease
        .as_ref()
        .map(|l| l.owner.clone())
        .unwrap_or_default();
    j.lease = None;
    if j.cancel_requested {
        j.status = JobStatus::Cancelled;
        j.finished = Some(now);
        j.phase = Some("Cancelled".into());
        return Some(Some((
            Level::Warning,
            "state".into(),
            format!("CANCELLED: node {owner} stopped answering after the cancel request"),
        )));
    }
    if j.attempt >= j.max_attempts {
        j.error = Some(failure_problem(
            "abandoned",
            &format!(
                "the worker running this job stopped answering {} times (last: node {owner}); giving up",
                j.attempt
            ),
            j,
        ));
        j.status = JobStatus::Failed;
        j.finished = Some(now);
        return Some(Some((
            Level::Error,
            "state".into(),
            format!(
                "FAILED: lease of node {owner} expired on attempt {} of {}",
                j.attempt, j.max_attempts
            ),
        )));
    }
    j.status = JobStatus::Queued;
    j.attempt += 1;
    j.started = None;
    j.phase = Some("Recovered after a worker stopped; waiting for a free worker".into());
    Some(Some((
        Level::Warning,
        "recovery".into(),
        format!(
            "lease of node {owner} expired; queued again as attempt {}",
            j.attempt
        ),
    )))
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use super::recover;
    use crate::domain::job::tests::job;
    use crate::domain::{JobStatus, Lease};

    fn running(attempt: i32, expires_in: i64, cancel: bool) -> crate::domain::Job {
        let mut j = job(JobStatus::Processing);
        j.attempt = attempt;
        j.cancel_requested = cancel;
        j.lease = Some(Lease {
            owner: "node-a".into(),
            expires: Utc::now() + Duration::seconds(expires_in),
            heartbeat: None,
        });
        j
    }

    #[test]
    fn a_live_lease_is_left_alone() {
        let mut j = running(1, 30, false);
        assert!(recover(&mut j, Utc::now()).is_none());
        let mut q = job(JobStatus::Queued);
        assert!(recover(&mut q, Utc::now()).is_none());
    }

    #[test]
    fn an_expired_lease_queues_the_next_attempt() {
        let mut j = running(1, -1, false);
        let (_, kind, text) = recover(&mut j, Utc::now()).unwrap().unwrap();
        assert_eq!(
            (j.status, j.attempt, kind.as_str()),
            (JobStatus::Queued, 2, "recovery")
        );
        assert!(j.lease.is_none());
        assert!(
            text.contains("node node-a expired; queued again as attempt 2"),
            "{text}"
        );
        assert!(j.status.can_move_to(JobStatus::Started));
    }

    #[test]
    fn the_last_attempt_fails_and_a_cancel_ends_cancelled() {
        let now = Utc::now();
        let mut j = running(3, -1, false);
        recover(&mut j, now).unwrap();
        assert_eq!(j.status, JobStatus::Failed);
        assert_eq!(j.finished, Some(now));
        assert_eq!(
            j.error.as_ref().unwrap()["type"],
            "urn:longrun:problem:job-abandoned"
        );
        let mut c = running(1, -1, true);
        recover(&mut c, now).unwrap();
        assert_eq!((c.status, c.attempt), (JobStatus::Cancelled, 1));
    }

    #[test]
    fn the_clock_decides_expiry() {
        // The same job, judged at two instants of the database's clock.
        let j = running(1, 10, false);
        assert!(recover(&mut j.clone(), Utc::now()).is_none());
        assert!(recover(&mut j.clone(), Utc::now() + Duration::seconds(11)).is_some());
    }
}
