//! The numbers of the collection (`GET /api/v1/stats`) and this instance's part in them: its
//! heartbeat in `nodes`, and folding the counts the database appends.

use std::sync::Arc;
use std::time::Duration;

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

impl Engine {
    /// The numbers of tenant `owner`'s jobs, or of every tenant's with `None`, with the last
    /// `window.0` minutes and `window.1` hours in the series.
    pub async fn stats(&self, owner: Option<&str>, window: (i64, i64)) -> Result<Stats> {
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
        Ok(Stats::assemble(
            now,
            StatsInput {
                counts,
                ends,
                oldest_queued: oldest,
                running,
                nodes,
            },
            window,
        ))
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
                if let Err(e) = me.fold_stats_once().await {
                    tracing::warn!(error = %e, "folding the job counts failed");
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
