//! The numbers of `GET /api/v1/stats`, assembled from what the store keeps: counts per status and
//! operation, ends per minute and per hour, run-time histograms, and the instances.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};

use super::JobStatus;

/// A minute, the span of the recent series.
pub const MINUTE_MS: i64 = 60_000;
/// An hour, the span of the long series.
pub const HOUR_MS: i64 = 3_600_000;
/// Minutes in the recent series.
pub const MINUTES: i64 = 60;
/// Hours in the long series.
pub const HOURS: i64 = 48;
/// The slots run times are kept in: ten minutes.
pub const RUNS_MS: i64 = 600_000;
/// Run times are shown over the current slot and this many before it (50 to 60 minutes).
pub const RUN_SLOTS_BEFORE: i64 = 5;
/// Run-time buckets per doubling: a bucket's value is within about 9 % of the run times in it.
const PER_DOUBLING: f64 = 4.0;
/// An instance that has not said it is alive for this long is shown as not alive.
pub const NODE_ALIVE_MS: i64 = 15_000;
/// How often an instance says it is alive.
pub const NODE_BEAT_MS: u64 = 5_000;

/// The span an end is counted in: its minute and its hour (by status, for the series), and, for
/// a run that ended SUCCESS or FAILED, its ten minutes (by operation and run-time bucket, for
/// the percentiles). Kept apart, so a read sums a few thousand rows, not one per bucket of
/// every minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Span {
    Minute,
    Hour,
    Runs,
}

impl Span {
    /// The stored letter.
    pub fn as_str(self) -> &'static str {
        match self {
            Span::Minute => "m",
            Span::Hour => "h",
            Span::Runs => "r",
        }
    }

    /// Its length in milliseconds.
    pub fn ms(self) -> i64 {
        match self {
            Span::Minute => MINUTE_MS,
            Span::Hour => HOUR_MS,
            Span::Runs => RUNS_MS,
        }
    }

    /// The start of the span `at_ms` falls in.
    pub fn start_of(self, at_ms: i64) -> i64 {
        at_ms - at_ms.rem_euclid(self.ms())
    }

    /// From the stored letter.
    pub fn parse(s: &str) -> Option<Span> {
        match s {
            "m" => Some(Span::Minute),
            "h" => Some(Span::Hour),
            "r" => Some(Span::Runs),
            _ => None,
        }
    }
}

/// Where one end is counted: `(span, start, operation, status, bucket)` for a job of `operation`
/// that ended in `status` at `ended_ms` after running `run_ms` (none if it never ran). The
/// series keep no operation ("") and no bucket (-1), the run times no status (""), so each read
/// sums few rows; the fold and a read of what is not folded yet count through this one function.
pub fn end_keys<'a>(
    ended_ms: i64,
    operation: &'a str,
    status: &'a str,
    run_ms: Option<i64>,
) -> Vec<(Span, i64, &'a str, &'a str, i32)> {
    let mut keys = vec![
        (
            Span::Minute,
            Span::Minute.start_of(ended_ms),
            "",
            status,
            -1,
        ),
        (Span::Hour, Span::Hour.start_of(ended_ms), "", status, -1),
    ];
    let bucket = run_bucket(run_ms);
    if bucket >= 0 && (status == "SUCCESS" || status == "FAILED") {
        keys.push((
            Span::Runs,
            Span::Runs.start_of(ended_ms),
            operation,
            "",
            bucket,
        ));
    }
    keys
}

/// The run-time bucket of a run of `ms` milliseconds; a job that never ran has none (-1).
pub fn run_bucket(ms: Option<i64>) -> i32 {
    match ms {
        Some(ms) if ms >= 0 => ((ms as f64 + 1.0).log2() * PER_DOUBLING).floor() as i32,
        _ => -1,
    }
}

/// The run time a bucket stands for (the geometric middle of its bounds), in milliseconds.
pub fn bucket_ms(bucket: i32) -> i64 {
    ((2f64.powf((bucket as f64 + 0.5) / PER_DOUBLING) - 1.0).round() as i64).max(0)
}

/// The `q` quantile (0 < q ≤ 1) of a histogram of buckets, in milliseconds.
pub fn quantile(hist: &BTreeMap<i32, i64>, q: f64) -> Option<i64> {
    let total: i64 = hist.iter().filter(|(b, _)| **b >= 0).map(|(_, n)| *n).sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as i64).clamp(1, total);
    let mut seen = 0;
    for (b, n) in hist.iter().filter(|(b, _)| **b >= 0) {
        seen += n;
        if seen >= rank {
            return Some(bucket_ms(*b));
        }
    }
    None
}

/// Jobs of one tenant, operation and status.
#[derive(Debug, Clone, PartialEq)]
pub struct CountRow {
    pub owner: String,
    pub operation: String,
    pub status: String,
    pub n: i64,
}

/// Ends of one span, operation, status and run-time bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct EndRow {
    pub span: Span,
    pub start: i64,
    pub operation: String,
    pub status: String,
    pub bucket: i32,
    pub n: i64,
}

/// One instance of the service.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: String,
    pub role: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

/// What the store reads for one answer.
#[derive(Debug, Clone, Default)]
pub struct StatsInput {
    pub counts: Vec<CountRow>,
    pub ends: Vec<EndRow>,
    /// The oldest queued job's creation, by operation.
    pub oldest_queued: BTreeMap<String, DateTime<Utc>>,
    /// Running jobs by the node that holds them.
    pub running: BTreeMap<String, i64>,
    pub nodes: Vec<Node>,
}

/// Jobs of one status.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusCount {
    pub status: JobStatus,
    pub count: i64,
}

/// The numbers of one operation.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationStats {
    pub operation: String,
    pub counts: Vec<StatusCount>,
    pub queued: i64,
    pub running: i64,
    pub oldest_queued_at: Option<DateTime<Utc>>,
    /// Run times of the last hour's ends (SUCCESS and FAILED).
    pub samples: i64,
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
}

/// Ends of one minute or hour.
#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub completed: i64,
    pub failed: i64,
    pub cancelled: i64,
}

/// One instance as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStats {
    pub node: Node,
    pub alive: bool,
    pub running: i64,
}

/// The whole answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub generated_at: DateTime<Utc>,
    pub counts: Vec<StatusCount>,
    pub total: i64,
    pub operations: Vec<OperationStats>,
    pub per_minute: Vec<Period>,
    pub per_hour: Vec<Period>,
    pub nodes: Vec<NodeStats>,
}

/// The statuses a job of the collection can be in (a deleted job is not in it).
const SHOWN: [JobStatus; 7] = [
    JobStatus::Queued,
    JobStatus::Started,
    JobStatus::Processing,
    JobStatus::Saving,
    JobStatus::Success,
    JobStatus::Failed,
    JobStatus::Cancelled,
];

fn zeroes() -> Vec<StatusCount> {
    SHOWN
        .iter()
        .map(|s| StatusCount {
            status: *s,
            count: 0,
        })
        .collect()
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The series of `n` spans ending with the one `now_ms` is in, oldest first.
fn series(span: Span, n: i64, now_ms: i64, ends: &[EndRow]) -> Vec<Period> {
    let last = span.start_of(now_ms);
    let first = last - (n - 1) * span.ms();
    let mut out: Vec<Period> = (0..n)
        .map(|i| Period {
            start: at(first + i * span.ms()),
            completed: 0,
            failed: 0,
            cancelled: 0,
        })
        .collect();
    for e in ends.iter().filter(|e| e.span == span) {
        if e.start < first || e.start > last {
            continue;
        }
        let p = &mut out[((e.start - first) / span.ms()) as usize];
        match e.status.as_str() {
            "SUCCESS" => p.completed += e.n,
            "FAILED" => p.failed += e.n,
            "CANCELLED" => p.cancelled += e.n,
            _ => {}
        }
    }
    out
}

impl Stats {
    /// Assemble the answer at `now` from what the store read, with the last `window.0` minutes
    /// (at most 60) and `window.1` hours (at most 48) in the series.
    pub fn assemble(now: DateTime<Utc>, input: StatsInput, window: (i64, i64)) -> Stats {
        let now_ms = now.timestamp_millis();
        let mut counts = zeroes();
        let mut ops: BTreeMap<String, OperationStats> = BTreeMap::new();
        for row in &input.counts {
            let Ok(status) = row.status.parse::<JobStatus>() else {
                continue;
            };
            let Some(i) = SHOWN.iter().position(|s| *s == status) else {
                continue;
            };
            counts[i].count += row.n;
            let op = ops
                .entry(row.operation.clone())
                .or_insert_with(|| OperationStats {
                    operation: row.operation.clone(),
                    counts: zeroes(),
                    queued: 0,
                    running: 0,
                    oldest_queued_at: None,
                    samples: 0,
                    p50_ms: None,
                    p95_ms: None,
                });
            op.counts[i].count += row.n;
            if status == JobStatus::Queued {
                op.queued += row.n;
            } else if status.is_running() {
                op.running += row.n;
            }
        }
        // Run times over the last hour, from its ten-minute slots.
        let since = Span::Runs.start_of(now_ms) - RUN_SLOTS_BEFORE * RUNS_MS;
        let mut hists: BTreeMap<&str, BTreeMap<i32, i64>> = BTreeMap::new();
        for e in &input.ends {
            if e.span == Span::Runs && e.start >= since && e.bucket >= 0 {
                *hists
                    .entry(e.operation.as_str())
                    .or_default()
                    .entry(e.bucket)
                    .or_default() += e.n;
            }
        }
        for (name, hist) in hists {
            if let Some(op) = ops.get_mut(name) {
                op.samples = hist.values().sum();
                op.p50_ms = quantile(&hist, 0.5);
                op.p95_ms = quantile(&hist, 0.95);
            }
        }
        for (name, created) in &input.oldest_queued {
            if let Some(op) = ops.get_mut(name) {
                if op.queued > 0 {
                    op.oldest_queued_at = Some(*created);
                }
            }
        }
        // An operation with nothing left in the collection is not shown.
        let operations: Vec<OperationStats> = ops
            .into_values()
            .filter(|o| o.counts.iter().any(|c| c.count > 0))
            .collect();
        let nodes = input
            .nodes
            .into_iter()
            .map(|node| NodeStats {
                alive: now_ms - node.heartbeat_at.timestamp_millis() <= NODE_ALIVE_MS,
                running: input.running.get(&node.id).copied().unwrap_or(0),
                node,
            })
            .collect();
        Stats {
            generated_at: now,
            total: counts.iter().map(|c| c.count).sum(),
            counts,
            operations,
            per_minute: series(
                Span::Minute,
                window.0.clamp(1, MINUTES),
                now_ms,
                &input.ends,
            ),
            per_hour: series(Span::Hour, window.1.clamp(1, HOURS), now_ms, &input.ends),
            nodes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(span: Span, start: i64, status: &str, bucket: i32, n: i64) -> EndRow {
        EndRow {
            span,
            start,
            operation: "noop".into(),
            status: status.into(),
            bucket,
            n,
        }
    }

    #[test]
    fn buckets_stay_within_a_tenth_of_the_run_time() {
        for ms in [1i64, 7, 50, 120, 999, 4_000, 65_000, 3_600_000] {
            let v = bucket_ms(run_bucket(Some(ms)));
            assert!(
                (v - ms).abs() <= (ms / 10).max(1),
                "{ms} ms stands as {v} ms"
            );
        }
        assert_eq!(run_bucket(None), -1);
        assert_eq!(run_bucket(Some(0)), 0);
        assert_eq!(bucket_ms(0), 0);
    }

    #[test]
    fn an_end_is_counted_in_its_minute_its_hour_and_its_run_times() {
        let at_ms = 3 * HOUR_MS + 17 * MINUTE_MS + 5;
        let keys = end_keys(at_ms, "noop", "FAILED", Some(200));
        assert_eq!(
            keys,
            vec![
                (Span::Minute, 3 * HOUR_MS + 17 * MINUTE_MS, "", "FAILED", -1),
                (Span::Hour, 3 * HOUR_MS, "", "FAILED", -1),
                (
                    Span::Runs,
                    3 * HOUR_MS + 10 * MINUTE_MS,
                    "noop",
                    "",
                    run_bucket(Some(200))
                ),
            ]
        );
        // A cancelled job's run time, or a job that never ran, is in no percentile.
        assert_eq!(end_keys(at_ms, "noop", "CANCELLED", Some(200)).len(), 2);
        assert_eq!(end_keys(at_ms, "noop", "SUCCESS", None).len(), 2);
    }

    #[test]
    fn quantiles_walk_the_histogram() {
        let mut h = BTreeMap::new();
        // 90 runs of ~100 ms, 10 of ~1000 ms, and 5 that never ran.
        h.insert(run_bucket(Some(100)), 90);
        h.insert(run_bucket(Some(1000)), 10);
        h.insert(-1, 5);
        let p50 = quantile(&h, 0.5).unwrap();
        let p95 = quantile(&h, 0.95).unwrap();
        assert!((90..=110).contains(&p50), "{p50}");
        assert!((900..=1100).contains(&p95), "{p95}");
        assert_eq!(quantile(&BTreeMap::new(), 0.5), None);
    }

    #[test]
    fn the_series_are_zero_filled_and_end_with_the_current_span() {
        let now = at(100 * HOUR_MS + 30 * MINUTE_MS + 5_000);
        let this_minute = Span::Minute.start_of(now.timestamp_millis());
        let input = StatsInput {
            counts: vec![
                CountRow {
                    owner: "a".into(),
                    operation: "noop".into(),
                    status: "SUCCESS".into(),
                    n: 3,
                },
                CountRow {
                    owner: "b".into(),
                    operation: "noop".into(),
                    status: "QUEUED".into(),
                    n: 2,
                },
                CountRow {
                    owner: "a".into(),
                    operation: "gone".into(),
                    status: "DELETED".into(),
                    n: 9,
                },
            ],
            ends: vec![
                end(Span::Minute, this_minute, "SUCCESS", -1, 2),
                end(Span::Minute, this_minute, "FAILED", -1, 1),
                end(
                    Span::Runs,
                    Span::Runs.start_of(this_minute),
                    "",
                    run_bucket(Some(10)),
                    3,
                ),
                // Older than the hour: in no series of minutes, and in no percentile.
                end(Span::Minute, this_minute - 61 * MINUTE_MS, "SUCCESS", -1, 7),
                end(Span::Runs, this_minute - 61 * MINUTE_MS, "", 40, 7),
                end(
                    Span::Hour,
                    Span::Hour.start_of(now.timestamp_millis()),
                    "SUCCESS",
                    3,
                    2,
                ),
                // Older than 48 hours.
                end(Span::Hour, 52 * HOUR_MS, "SUCCESS", 3, 100),
            ],
            oldest_queued: [("noop".to_string(), at(1000))].into(),
            running: Default::default(),
            nodes: vec![],
        };
        let s_input = input.clone();
        let s = Stats::assemble(now, input, (MINUTES, HOURS));
        let short = Stats::assemble(now, s_input.clone(), (5, 2));
        assert_eq!((short.per_minute.len(), short.per_hour.len()), (5, 2));
        assert_eq!(short.per_minute.last().unwrap().completed, 2);
        assert_eq!(s.total, 5);
        assert_eq!(s.per_minute.len(), 60);
        assert_eq!(s.per_hour.len(), 48);
        let last = s.per_minute.last().unwrap();
        assert_eq!(last.start.timestamp_millis(), this_minute);
        assert_eq!((last.completed, last.failed), (2, 1));
        assert_eq!(s.per_minute.iter().map(|p| p.completed).sum::<i64>(), 2);
        assert_eq!(s.per_hour.last().unwrap().completed, 2);
        assert_eq!(s.per_hour.iter().map(|p| p.completed).sum::<i64>(), 2);
        assert_eq!(s.operations.len(), 1, "{:?}", s.operations);
        let op = &s.operations[0];
        assert_eq!((op.queued, op.samples), (2, 3));
        assert_eq!(op.oldest_queued_at, Some(at(1000)));
        assert!(op.p50_ms.is_some());
    }

    #[test]
    fn a_node_is_alive_while_it_beats() {
        let now = at(100_000);
        let node = |id: &str, beat: i64| Node {
            id: id.into(),
            role: "all".into(),
            started_at: at(0),
            heartbeat_at: at(beat),
        };
        let s = Stats::assemble(
            now,
            StatsInput {
                nodes: vec![node("a", 95_000), node("b", 80_000)],
                running: [("a".to_string(), 2)].into(),
                ..Default::default()
            },
            (MINUTES, HOURS),
        );
        assert!(s.nodes[0].alive && !s.nodes[1].alive);
        assert_eq!((s.nodes[0].running, s.nodes[1].running), (2, 0));
    }
}
