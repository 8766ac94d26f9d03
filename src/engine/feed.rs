//! The live feeds behind the event streams: every change of the jobs a filter selects (the
//! collection's stream), and a job's log as it is written.
//!
//! A feed hears the store's bell of all jobs (`store::Ring`), rung by every write this process
//! makes and by the announcements of other instances (PostgreSQL's NOTIFY), and reads only the
//! jobs it names, a batch at a time. It falls back on an indexed range of the order of changes
//! (`updated_at`, id) when it may have missed rings: on resuming from a `ChangePoint`, when it
//! fell behind the bell, when the listener reconnected, and every `CATCH_UP` as a safety net for
//! writes of other instances that announce nothing. The feed is at least once: a change can be
//! sent twice (a resumed stream starts `SLACK_MS` before its point, since instances' clocks
//! differ and rings arrive out of order); each event carries the job's `version`, which orders
//! the changes of one job.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{Engine, EngineError, Result};
use crate::domain::{ChangePoint, Job, JobFilter, JobStatus, Message, OutputFile};
use crate::store::Ring;

/// How far before its point a resumed feed (or a catch-up) reads again.
const SLACK_MS: i64 = 5_000;
/// How often a feed reads the range of changes whatever the bell said.
const CATCH_UP: Duration = Duration::from_secs(10);
/// Rings are gathered this long and the jobs they name read in one query.
const GATHER: Duration = Duration::from_millis(100);
/// Rows read at a time from the range of changes, and lines from a log.
const PAGE: u64 = 500;
/// Jobs a feed remembers having sent, beyond which it forgets those of changes older than a
/// minute before its point.
const REMEMBER: usize = 20_000;
/// How often a followed log is read whatever the bell said (a safety net, as above).
const LOG_RECHECK: Duration = Duration::from_secs(5);

/// One item of the collection's feed.
#[derive(Debug, Clone)]
pub enum FeedItem {
    /// A job as it is now, with its output files (SUCCESS only).
    Changed(Box<Job>, Vec<OutputFile>),
    /// A job sent earlier on this feed was deleted.
    Removed(Uuid),
}

/// What a feed has sent: the version of each job, and the latest point.
struct Sent {
    versions: HashMap<Uuid, (i64, i64)>,
    point: ChangePoint,
}

impl Sent {
    /// Whether `job` is news to this feed.
    fn is_new(&self, job: &Job) -> bool {
        self.versions
            .get(&job.id)
            .is_none_or(|(v, _)| *v < job.version)
    }

    fn note(&mut self, job: &Job) {
        let p = ChangePoint::of(job);
        self.versions.insert(job.id, (job.version, p.at_ms));
        self.point = self.point.max(p);
        if self.versions.len() > REMEMBER {
            let horizon = self.point.at_ms - 60_000;
            self.versions.retain(|_, (_, at)| *at >= horizon);
        }
    }
}

/// Note what the bell said: a job it named, or that rings were missed (`behind`); false once
/// the bell is gone (the process is stopping).
fn heard(
    ring: std::result::Result<Ring, RecvError>,
    named: &mut HashSet<Uuid>,
    behind: &mut bool,
) -> bool {
    match ring {
        Ok(Ring::Job(id)) => {
            named.insert(id);
        }
        Ok(Ring::Missed) | Err(RecvError::Lagged(_)) => *behind = true,
        Err(RecvError::Closed) => return false,
    }
    true
}

impl Engine {
    /// Feed every change of the jobs `filter` selects into `tx` until it closes: from `resume`
    /// (less `SLACK_MS`) when given, else from now. `filter.owner` is the caller's tenant.
    pub async fn feed_jobs(
        self: Arc<Self>,
        filter: JobFilter,
        resume: Option<ChangePoint>,
        tx: mpsc::Sender<FeedItem>,
    ) {
        // Hear the bell before reading anything, so no change falls between the two.
        let mut bell = self.store.changes().bell();
        let now = chrono::Utc::now().timestamp_millis();
        let mut sent = Sent {
            versions: HashMap::new(),
            point: resume.unwrap_or(ChangePoint::at(now)),
        };
        // A fresh stream starts now; a catch-up never reaches before where it started.
        let floor = resume.map_or(now, |p| p.at_ms - SLACK_MS);
        let mut behind = resume.is_some();
        let mut tick = tokio::time::interval(CATCH_UP);
        tick.reset();
        loop {
            if behind {
                let from = ChangePoint::at((sent.point.at_ms - SLACK_MS).max(floor));
                if self.catch_up(&filter, from, &mut sent, &tx).await.is_err() {
                    return;
                }
                behind = false;
            }
            let mut named = HashSet::new();
            tokio::select! {
                ring = bell.recv() => {
                    if !heard(ring, &mut named, &mut behind) {
                        return;
                    }
                }
                _ = tick.tick() => behind = true,
                _ = tx.closed() => return,
            }
            if named.is_empty() {
                continue;
            }
            // Gather what rings next, then read the named jobs at once.
            let until = tokio::time::Instant::now() + GATHER;
            loop {
                tokio::select! {
                    ring = bell.recv() => {
                        if !heard(ring, &mut named, &mut behind) {
                            return;
                        }
                    }
                    _ = tokio::time::sleep_until(until) => break,
                }
            }
            let named: Vec<Uuid> = named.into_iter().collect();
            for some in named.chunks(PAGE as usize) {
                if self
                    .send_named(&filter, some, &mut sent, &tx)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }

    /// Send the jobs of the range of changes from `from` that are news.
    async fn catch_up(
        &self,
        filter: &JobFilter,
        mut from: ChangePoint,
        sent: &mut Sent,
        tx: &mpsc::Sender<FeedItem>,
    ) -> std::result::Result<(), ()> {
        loop {
            let jobs = match self.store.jobs_changed_after(filter, from, PAGE).await {
                Ok(j) => j,
                Err(e) => {
                    tracing::warn!(error = %e, "a job feed could not read the changes; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let full = jobs.len() as u64 == PAGE;
            if let Some(last) = jobs.last() {
                from = ChangePoint::of(last);
            }
            self.send_news(jobs, sent, tx).await?;
            if !full {
                return Ok(());
            }
        }
    }

    /// Send the jobs among `named` that are news: those the filter selects, and those sent
    /// before that no longer match (the client learns they left) or were deleted.
    async fn send_named(
        &self,
        filter: &JobFilter,
        named: &[Uuid],
        sent: &mut Sent,
        tx: &mpsc::Sender<FeedItem>,
    ) -> std::result::Result<(), ()> {
        let matching = match self.store.jobs_among(filter, named, false).await {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "a job feed could not read changed jobs");
                return Ok(());
            }
        };
        let found: HashSet<Uuid> = matching.iter().map(|j| j.id).collect();
        let known: Vec<Uuid> = named
            .iter()
            .filter(|id| !found.contains(id) && sent.versions.contains_key(id))
            .copied()
            .collect();
        self.send_news(matching, sent, tx).await?;
        if known.is_empty() {
            return Ok(());
        }
        // Only the tenant's own jobs: `known` were sent to it, but the check costs nothing.
        let mine = JobFilter {
            owner: filter.owner.clone(),
            ..JobFilter::default()
        };
        let left = match self.store.jobs_among(&mine, &known, true).await {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "a job feed could not read changed jobs");
                return Ok(());
            }
        };
        let mut gone: HashSet<Uuid> = known.into_iter().collect();
        let mut still = Vec::new();
        for job in left {
            if job.status != JobStatus::Deleted {
                gone.remove(&job.id);
                still.push(job);
            }
        }
        for id in gone {
            sent.versions.remove(&id);
            tx.send(FeedItem::Removed(id)).await.map_err(|_| ())?;
        }
        let ids: Vec<Uuid> = still.iter().map(|j| j.id).collect();
        self.send_news(still, sent, tx).await?;
        // They no longer match: a later change is news only if they match again.
        for id in ids {
            sent.versions.remove(&id);
        }
        Ok(())
    }

    /// Send those of `jobs` this feed has not sent in this version, oldest change first.
    async fn send_news(
        &self,
        mut jobs: Vec<Job>,
        sent: &mut Sent,
        tx: &mpsc::Sender<FeedItem>,
    ) -> std::result::Result<(), ()> {
        jobs.retain(|j| sent.is_new(j));
        if jobs.is_empty() {
            return Ok(());
        }
        jobs.sort_by_key(ChangePoint::of);
        let mut files = match self.files_of_jobs(&jobs).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "a job feed could not read output files");
                return Ok(());
            }
        };
        for job in jobs {
            sent.note(&job);
            let mine = files.remove(&job.id).unwrap_or_default();
            tx.send(FeedItem::Changed(Box::new(job), mine))
                .await
                .map_err(|_| ())?;
        }
        Ok(())
    }

    /// The output files of those of `jobs` that succeeded (the others have none to show), in
    /// one query.
    pub async fn files_of_jobs(&self, jobs: &[Job]) -> Result<HashMap<Uuid, Vec<OutputFile>>> {
        let succeeded: Vec<Uuid> = jobs
            .iter()
            .filter(|j| j.status == JobStatus::Success)
            .map(|j| j.id)
            .collect();
        Ok(self.store.files_of(&succeeded).await?)
    }

    /// Feed job `id`'s log after line `after` into `tx` as it is written, until the job has
    /// ended and its last lines are sent, or `tx` closes. Fails at once for a job that is not
    /// there.
    pub async fn follow_messages(
        self: Arc<Self>,
        id: Uuid,
        mut after: i64,
        tx: mpsc::Sender<Message>,
    ) -> Result<()> {
        // Watch before reading, so no line falls between the two.
        let mut sub = self.store.changes().subscribe(id);
        let mut ended = false;
        loop {
            let lines = self.store.messages_after(id, after, Some(PAGE)).await?;
            let full = lines.len() as u64 == PAGE;
            for m in lines {
                after = m.seq;
                if tx.send(m).await.is_err() {
                    return Ok(());
                }
            }
            if full {
                continue;
            }
            if ended {
                return Ok(());
            }
            match self.get(id).await {
                // The lines of the end state are written with it: read once more, then stop.
                Ok(job) if job.status.is_end() => {
                    ended = true;
                    continue;
                }
                Ok(_) => {}
                Err(EngineError::Gone(_)) | Err(EngineError::NotFound(_)) => return Ok(()),
                Err(e) => return Err(e),
            }
            tokio::select! {
                _ = sub.changed() => {}
                _ = tokio::time::sleep(LOG_RECHECK) => {}
                _ = tx.closed() => return Ok(()),
            }
        }
    }
}
