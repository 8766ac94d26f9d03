//! The numbers of the collection (`GET /api/v1/stats`) and this instance's part in them: its
//! heartbeat in `nodes`, and folding the counts the database appends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::{Engine, Result};
use crate::domain::stats::{Stats, StatsInput, NODE_BEAT_MS};

/// How often an instance folds what the database appended (a read adds what is not folded yet,
/// so this bounds the work of a read, not its truth).
const FOLD_EVERY: Duration = Duration::from_secs(1);
/// Batches folded at most per turn, so a backlog (after a migration) is folded in steps.
const FOLD_TURN: usize = 50;
/// How often old minutes, hours and instances are forgotten.
const TRIM_EVERY: Duration = Duration::from_secs(60);
/// After folding this many rows, the tables are compacted once nothing is left to fold.
const COMPACT_AFTER: usize = 10_000;

/// How long one read of the stats may serve later ones when no job changed meanwhile (it also
/// bounds how old an instance's heartbeat may look).
const SHARED_FOR: Duration = Duration::from_secs(1);
/// Tenants whose last read is kept at most.
const SHARED_MAX: usize = 1_000;

/// The last stats read of each tenant (and of all), shared by the reads that follow it while no
/// job has changed: a dashboard open in many browsers, or many pollers, cost one read of the
/// database per change (and per second), not one each. One read is made at a time; the readers
/// that arrive meanwhile wait for it and share it.
#[derive(Default)]
pub struct StatsCache {
    kept: std::sync::Mutex<HashMap<Option<String>, Kept>>,
    /// One read at a time per tenant (and one of all).
    reading: std::sync::Mutex<HashMap<Option<String>, Arc<tokio::sync::Mutex<()>>>>,
}

struct Kept {
    /// The write mark of every job (`Changes::mark_all`) taken before the read.
    mark: u64,
    at: Instant,
    input: Arc<StatsInput>,
}

impl StatsCache {
    fn get(&self, owner: Option<&str>, mark: u64) -> Option<Arc<StatsInput>> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.get(&owner.map(str::to_string))
            .filter(|k| k.mark == mark && k.at.elapsed() < SHARED_FOR)
            .map(|k| k.input.clone())
    }

    /// The lock of `owner`'s reads.
    fn turn(&self, owner: Option<&str>) -> Arc<tokio::sync::Mutex<()>> {
        let mut reading = self.reading.lock().unwrap_or_else(|p| p.into_inner());
        if reading.len() >= SHARED_MAX {
            reading.retain(|_, l| Arc::strong_count(l) > 1);
        }
        reading
            .entry(owner.map(str::to_string))
            .or_default()
            .clone()
    }

    fn put(&self, owner: Option<&str>, mark: u64, at: Instant, input: Arc<StatsInput>) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= SHARED_MAX {
            kept.clear();
        }
        kept.insert(owner.map(str::to_string), Kept { mark, at, input });
    }
}

impl Engine {
    /// The numbers of tenant `owner`'s jobs, or of every tenant's with `None`, with the last
    /// `window.0` minutes and `window.1` hours in the series. What the database holds is read
    /// again after any change of any job, and at least every second (`StatsCache`).
    pub async fn stats(&self, owner: Option<&str>, window: (i64, i64)) -> Result<Stats> {
        let cache = &self.stats_cache;
        let changes = self.store.changes();
        let input = match cache.get(owner, changes.mark_all()) {
            Some(input) => input,
            None => {
                let turn = cache.turn(owner);
                let _one = turn.lock().await;
                let mark = changes.mark_all();
                match cache.get(owner, mark) {
                    Some(input) => input,
                    None => {
                        let at = Instant::now();
                        let input = Arc::new(self.stats_input(owner).await?);
                        cache.put(owner, mark, at, input.clone());
                        input
                    }
                }
            }
        };
        Ok(Stats::assemble(Utc::now(), (*input).clone(), window))
    }

    /// What the database holds for the numbers of `owner` (or of all), now.
    async fn stats_input(&self, owner: Option<&str>) -> Result<StatsInput> {
        let store = &self.store;
        let now = Utc::now();
        let (counts, ends, running, nodes) = tokio::try_join!(
            store.job_counts(owner),
            store.job_ends(owner, now),
            store.running_by_node(owner),
            store.nodes(now),
        )?;
        let mut queued: Vec<&str> = counts
            .iter()
            .filter(|c| c.status == "QUEUED" && c.n > 0)
            .map(|c| c.operation.as_str())
            .collect();
        queued.sort_unstable();
        queued.dedup();
        let mut oldest = std::collections::BTreeMap::new();
        for op in queued {
            if let Some(at) = store.oldest_queued(owner, op).await? {
                oldest.insert(op.to_string(), at);
            }
        }
        Ok(StatsInput {
            counts,
            ends,
            oldest_queued: oldest,
            running,
            nodes,
        })
    }

    /// Fold what the database appended until nothing is left (or a turn's worth); how many rows.
    pub async fn fold_stats_once(&self) -> Result<usize> {
        let mut n = 0;
        for _ in 0..FOLD_TURN {
            let folded = self.store.fold_stats().await?;
            n += folded;
            if folded == 0 {
                break;
            }
        }
        Ok(n)
    }

    /// Run this instance's heartbeat in `nodes` (as `role`), the folding and the trimming until
    /// `stop`; the instance's row goes when it stops.
    pub fn start_presence(
        self: &Arc<Self>,
        role: &'static str,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let started = Utc::now();
            let beat = Duration::from_millis(NODE_BEAT_MS);
            let mut last_beat: Option<tokio::time::Instant> = None;
            let mut last_trim: Option<tokio::time::Instant> = None;
            // Rows folded since the tables were last compacted.
            let mut backlog = 0usize;
            loop {
                let now = tokio::time::Instant::now();
                if last_beat.is_none_or(|t| now - t >= beat) {
                    match me
                        .store
                        .node_beat(&me.node, role, started, Utc::now())
                        .await
                    {
                        Ok(()) => last_beat = Some(now),
                        Err(e) => {
                            tracing::warn!(error = %e, "writing this instance's heartbeat failed")
                        }
                    }
                }
                match me.fold_stats_once().await {
                    Ok(n) => {
                        backlog += n;
                        // A burst (a bulk insert, a purge) is folded: its dead rows go now,
                        // not whenever the database's own cleaning comes round.
                        if n < COMPACT_AFTER && backlog >= COMPACT_AFTER {
                            backlog = 0;
                            if let Err(e) = me.store.compact_stats().await {
                                tracing::warn!(error = %e, "compacting the job counts failed");
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "folding the job counts failed"),
                }
                if last_trim.is_none_or(|t| now - t >= TRIM_EVERY) {
                    last_trim = Some(now);
                    if let Err(e) = me.store.trim_stats(Utc::now()).await {
                        tracing::warn!(error = %e, "trimming the job counts failed");
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(FOLD_EVERY) => {}
                }
            }
            if let Err(e) = me.store.node_gone(&me.node).await {
                tracing::warn!(error = %e, "removing this instance from the nodes failed");
            }
        })
    }
}
