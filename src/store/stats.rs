//! The reads and writes behind `GET /api/v1/stats`: the counts and ends a trigger on `jobs`
//! appends (migration `m0009_stats`), folded a batch at a time, and the instances' heartbeats.
//!
//! Every read is one statement, so it sees one snapshot: what is folded and what is not yet
//! are added in the same query, and a fold (one transaction) is seen whole or not at all.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, Statement, TransactionTrait, Value};

use super::{from_ms, Result, Store};
use crate::domain::stats::{
    end_keys, CountRow, EndRow, Node, Span, HOURS, MINUTES, RUN_SLOTS_BEFORE,
};

/// Deltas or ends folded per statement.
const FOLD_BATCH: u64 = 2_000;
/// Rows of one upsert statement (four to seven parameters each).
const UPSERT_ROWS: usize = 500;
/// Every row not folded yet, said so that the database reads them by the primary key: after a
/// burst is folded, a table of deltas keeps its emptied pages (a vacuum gives back only those
/// after the last live row), and a scan of it would read them all on every stats read. Every row
/// has an id at least the least one, so this leaves none out; PostgreSQL's planner then takes the
/// index instead of the scan (0.1 ms instead of 5–11 ms over 7,000 emptied pages).
const UNFOLDED_COUNTS: &str = "id >= (SELECT MIN(id) FROM job_count_deltas)";
const UNFOLDED_ENDS: &str = "id >= (SELECT MIN(id) FROM job_end_log)";
/// Minutes are kept two hours, hours 49, instances a day after their last heartbeat.
const KEEP_MINUTES_MS: i64 = 2 * 3_600_000;
const KEEP_HOURS_MS: i64 = 49 * 3_600_000;
const KEEP_NODES_MS: i64 = 24 * 3_600_000;
/// Instances shown: those heard from in the last hour.
const SHOW_NODES_MS: i64 = 3_600_000;

impl Store {
    fn stmt(&self, sql: String, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(self.db.get_database_backend(), sql, values)
    }

    /// Jobs per tenant, operation and status, of one tenant or of all; rows that add up to
    /// nothing are left out.
    pub async fn job_counts(&self, owner: Option<&str>) -> Result<Vec<CountRow>> {
        let (cond, values) = match owner {
            Some(o) => (
                format!("AND owner = {}", self.driver.param(1)),
                vec![o.into()],
            ),
            None => (String::new(), vec![]),
        };
        let sql = format!(
            "SELECT owner, operation, status, CAST(SUM(n) AS BIGINT) AS n FROM ( \
               SELECT owner, operation, status, n FROM job_counts WHERE 1 = 1 {cond} \
               UNION ALL \
               SELECT owner, operation, status, delta AS n FROM job_count_deltas \
               WHERE {UNFOLDED_COUNTS} {cond} \
             ) t GROUP BY owner, operation, status"
        );
        let rows = self.db.query_all_raw(self.stmt(sql, values)).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let n: i64 = r.try_get("", "n")?;
            if n != 0 {
                out.push(CountRow {
                    owner: r.try_get("", "owner")?,
                    operation: r.try_get("", "operation")?,
                    status: r.try_get("", "status")?,
                    n,
                });
            }
        }
        Ok(out)
    }

    /// The ends of the last hour per minute and of the last 48 hours per hour, by status, and the
    /// run-time histograms of the last hour by operation, up to `now`, of one tenant or of all:
    /// summed by the database, so an answer carries a few hundred rows whatever is stored.
    pub async fn job_ends(&self, owner: Option<&str>, now: DateTime<Utc>) -> Result<Vec<EndRow>> {
        let now_ms = now.timestamp_millis();
        let minutes = Span::Minute.start_of(now_ms) - (MINUTES - 1) * Span::Minute.ms();
        let hours = Span::Hour.start_of(now_ms) - (HOURS - 1) * Span::Hour.ms();
        let runs = Span::Runs.start_of(now_ms) - RUN_SLOTS_BEFORE * Span::Runs.ms();
        let p = |n| self.driver.param(n);
        let mut values: Vec<Value> = vec![minutes.into(), hours.into(), runs.into()];
        let own = match owner {
            Some(o) => {
                values.push(o.into());
                format!("AND owner = {}", p(4))
            }
            None => String::new(),
        };
        let sql = format!(
            "SELECT 'b' AS k, span, start, '' AS operation, status, -1 AS bucket, \
                    CAST(SUM(n) AS BIGINT) AS n, 0 AS ended_at, 0 AS run_ms \
             FROM job_end_buckets \
             WHERE ((span = 'm' AND start >= {m}) OR (span = 'h' AND start >= {h})) {own} \
             GROUP BY span, start, status \
             UNION ALL \
             SELECT 'b' AS k, 'r' AS span, {r} AS start, operation, '' AS status, bucket, \
                    CAST(SUM(n) AS BIGINT) AS n, 0 AS ended_at, 0 AS run_ms \
             FROM job_end_buckets WHERE span = 'r' AND start >= {r} {own} \
             GROUP BY operation, bucket \
             UNION ALL \
             SELECT 'l' AS k, '' AS span, 0 AS start, operation, status, 0 AS bucket, 1 AS n, \
                    ended_at, run_ms FROM job_end_log WHERE {UNFOLDED_ENDS} AND ended_at >= {h} {own}",
            m = p(1),
            h = p(2),
            r = p(3),
        );
        let rows = self.db.query_all_raw(self.stmt(sql, values)).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let operation: String = r.try_get("", "operation")?;
            let status: String = r.try_get("", "status")?;
            let kind: String = r.try_get("", "k")?;
            if kind == "b" {
                let Some(span) = Span::parse(&r.try_get::<String>("", "span")?) else {
                    continue;
                };
                out.push(EndRow {
                    span,
                    start: r.try_get("", "start")?,
                    operation,
                    status,
                    bucket: r.try_get("", "bucket")?,
                    n: r.try_get("", "n")?,
                });
            } else {
                // Not folded yet: counted here as the fold will count it.
                let ended: i64 = r.try_get("", "ended_at")?;
                let run_ms = r.try_get::<Option<i64>>("", "run_ms")?;
                for (span, start, operation, status, bucket) in
                    end_keys(ended, &operation, &status, run_ms)
                {
                    out.push(EndRow {
                        span,
                        start,
                        operation: operation.to_string(),
                        status: status.to_string(),
                        bucket,
                        n: 1,
                    });
                }
            }
        }
        Ok(out)
    }

    /// The creation time of the oldest queued job of `operation` (of one tenant or of all).
    pub async fn oldest_queued(
        &self,
        owner: Option<&str>,
        operation: &str,
    ) -> Result<Option<DateTime<Utc>>> {
        let p = |n| self.driver.param(n);
        let mut values: Vec<Value> = vec![operation.into()];
        let own = match owner {
            Some(o) => {
                values.push(o.into());
                format!("AND owner = {}", p(2))
            }
            None => String::new(),
        };
        // The claim's order is the id's (ids are made in time order), so the first is oldest.
        let sql = format!(
            "SELECT created_at FROM jobs WHERE status = 'QUEUED' AND operation = {} {own} \
             ORDER BY id LIMIT 1",
            p(1)
        );
        let row = self.db.query_one_raw(self.stmt(sql, values)).await?;
        Ok(match row {
            Some(r) => Some(from_ms(r.try_get::<i64>("", "created_at")?)),
            None => None,
        })
    }

    /// Running jobs (of one tenant or of all) by the instance that holds them.
    pub async fn running_by_node(&self, owner: Option<&str>) -> Result<BTreeMap<String, i64>> {
        let mut values: Vec<Value> = vec![];
        let own = match owner {
            Some(o) => {
                values.push(o.into());
                format!("AND owner = {}", self.driver.param(1))
            }
            None => String::new(),
        };
        let sql = format!(
            "SELECT lease_owner, COUNT(*) AS n FROM jobs \
             WHERE status IN ('STARTED', 'PROCESSING', 'SAVING') {own} GROUP BY lease_owner"
        );
        let rows = self.db.query_all_raw(self.stmt(sql, values)).await?;
        let mut out = BTreeMap::new();
        for r in rows {
            if let Some(node) = r.try_get::<Option<String>>("", "lease_owner")? {
                out.insert(node, r.try_get::<i64>("", "n")?);
            }
        }
        Ok(out)
    }

    /// Say that instance `id` is alive at `now`.
    pub async fn node_beat(
        &self,
        id: &str,
        role: &str,
        started: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let p = |n| self.driver.param(n);
        let sql = format!(
            "INSERT INTO nodes (id, role, started_at, heartbeat_at) VALUES ({}, {}, {}, {}) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, \
             role = excluded.role",
            p(1),
            p(2),
            p(3),
            p(4)
        );
        let values = vec![
            id.into(),
            role.into(),
            started.timestamp_millis().into(),
            now.timestamp_millis().into(),
        ];
        let _turn = self.writing().await;
        self.db.execute_raw(self.stmt(sql, values)).await?;
        Ok(())
    }

    /// Instance `id` stopped.
    pub async fn node_gone(&self, id: &str) -> Result<()> {
        let sql = format!("DELETE FROM nodes WHERE id = {}", self.driver.param(1));
        let _turn = self.writing().await;
        self.db.execute_raw(self.stmt(sql, vec![id.into()])).await?;
        Ok(())
    }

    /// The instances heard from in the last hour before `now`, oldest first.
    pub async fn nodes(&self, now: DateTime<Utc>) -> Result<Vec<Node>> {
        let sql = format!(
            "SELECT id, role, started_at, heartbeat_at FROM nodes WHERE heartbeat_at >= {} \
             ORDER BY started_at, id",
            self.driver.param(1)
        );
        let since = now.timestamp_millis() - SHOW_NODES_MS;
        let rows = self
            .db
            .query_all_raw(self.stmt(sql, vec![since.into()]))
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(Node {
                id: r.try_get("", "id")?,
                role: r.try_get("", "role")?,
                started_at: from_ms(r.try_get("", "started_at")?),
                heartbeat_at: from_ms(r.try_get("", "heartbeat_at")?),
            });
        }
        Ok(out)
    }

    /// Fold a batch of appended deltas into the counts and of ends into their minutes and hours;
    /// returns how many rows were folded. Instances fold at once without waiting for each other:
    /// each takes rows no other holds, and upserts in key order.
    pub async fn fold_stats(&self) -> Result<usize> {
        let skip = self.driver.skip_locked();
        let _turn = self.writing().await;
        let txn = self.db.begin().await?;
        let deltas = txn
            .query_all_raw(self.stmt(
                format!(
                    "DELETE FROM job_count_deltas WHERE id IN (SELECT id FROM job_count_deltas \
                     ORDER BY id LIMIT {FOLD_BATCH} {skip}) \
                     RETURNING owner, operation, status, delta"
                ),
                vec![],
            ))
            .await?;
        let mut counts: BTreeMap<(String, String, String), i64> = BTreeMap::new();
        for r in &deltas {
            let key = (
                r.try_get("", "owner")?,
                r.try_get("", "operation")?,
                r.try_get("", "status")?,
            );
            *counts.entry(key).or_default() += r.try_get::<i32>("", "delta")? as i64;
        }
        counts.retain(|_, n| *n != 0);
        let ends = txn
            .query_all_raw(self.stmt(
                format!(
                    "DELETE FROM job_end_log WHERE id IN (SELECT id FROM job_end_log \
                     ORDER BY id LIMIT {FOLD_BATCH} {skip}) \
                     RETURNING owner, operation, status, ended_at, run_ms"
                ),
                vec![],
            ))
            .await?;
        type EndKey = (&'static str, i64, String, String, String, i32);
        let mut buckets: BTreeMap<EndKey, i64> = BTreeMap::new();
        for r in &ends {
            let ended: i64 = r.try_get("", "ended_at")?;
            let run_ms = r.try_get::<Option<i64>>("", "run_ms")?;
            let owner: String = r.try_get("", "owner")?;
            let operation: String = r.try_get("", "operation")?;
            let status: String = r.try_get("", "status")?;
            for (span, start, operation, status, bucket) in
                end_keys(ended, &operation, &status, run_ms)
            {
                let key = (
                    span.as_str(),
                    start,
                    owner.clone(),
                    operation.to_string(),
                    status.to_string(),
                    bucket,
                );
                *buckets.entry(key).or_default() += 1;
            }
        }
        let counts: Vec<Vec<Value>> = counts
            .into_iter()
            .map(|((o, op, s), n)| vec![o.into(), op.into(), s.into(), n.into()])
            .collect();
        self.upsert(
            &txn,
            "job_counts (owner, operation, status, n)",
            "owner, operation, status",
            "job_counts",
            &counts,
        )
        .await?;
        let buckets: Vec<Vec<Value>> = buckets
            .into_iter()
            .map(|((span, start, o, op, s, b), n)| {
                vec![
                    span.into(),
                    start.into(),
                    o.into(),
                    op.into(),
                    s.into(),
                    b.into(),
                    n.into(),
                ]
            })
            .collect();
        self.upsert(
            &txn,
            "job_end_buckets (span, start, owner, operation, status, bucket, n)",
            "span, start, owner, operation, status, bucket",
            "job_end_buckets",
            &buckets,
        )
        .await?;
        txn.commit().await?;
        Ok(deltas.len() + ends.len())
    }

    /// Give back the space of the rows a fold removed in bulk (see `Driver::compact_stats`).
    pub async fn compact_stats(&self) -> Result<()> {
        if let Some(sql) = self.driver.compact_stats() {
            self.db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    /// Add `rows` to the `n` of `table`, keyed by `key`, in the rows' order.
    async fn upsert(
        &self,
        txn: &DatabaseTransaction,
        into: &str,
        key: &str,
        table: &str,
        rows: &[Vec<Value>],
    ) -> Result<()> {
        for chunk in rows.chunks(UPSERT_ROWS) {
            let mut values = Vec::new();
            let mut tuples = Vec::with_capacity(chunk.len());
            for row in chunk {
                let first = values.len();
                values.extend(row.iter().cloned());
                let params: Vec<String> = (1..=row.len())
                    .map(|i| self.driver.param(first + i))
                    .collect();
                tuples.push(format!("({})", params.join(", ")));
            }
            let sql = format!(
                "INSERT INTO {into} VALUES {} ON CONFLICT ({key}) DO UPDATE \
                 SET n = {table}.n + excluded.n",
                tuples.join(", ")
            );
            txn.execute_raw(self.stmt(sql, values)).await?;
        }
        Ok(())
    }

    /// Forget minutes and run-time slots older than two hours, hours older than 49 and counts of nothing, as of
    /// `now`; and instances not heard from for a day.
    pub async fn trim_stats(&self, now: DateTime<Utc>) -> Result<()> {
        let now = now.timestamp_millis();
        let p = |n| self.driver.param(n);
        let _turn = self.writing().await;
        self.db
            .execute_raw(self.stmt(
                format!(
                    "DELETE FROM job_end_buckets WHERE (span IN ('m', 'r') AND start < {}) \
                     OR (span = 'h' AND start < {})",
                    p(1),
                    p(2)
                ),
                vec![(now - KEEP_MINUTES_MS).into(), (now - KEEP_HOURS_MS).into()],
            ))
            .await?;
        self.db
            .execute_raw(self.stmt("DELETE FROM job_counts WHERE n = 0".into(), vec![]))
            .await?;
        self.db
            .execute_raw(self.stmt(
                format!("DELETE FROM nodes WHERE heartbeat_at < {}", p(1)),
                vec![(now - KEEP_NODES_MS).into()],
            ))
            .await?;
        Ok(())
    }
}
