//! Everything that differs between SQLite and PostgreSQL, behind one trait: `sqlite.rs` and
//! `postgres.rs` are the only files that know either database's SQL dialect or behaviour.
//! The rest of the store speaks through `Driver`, and the conformance suite
//! (`tests/api/conformance.rs`) runs the same cases against both.

mod nodelay;
mod postgres;
mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::{ConnectOptions, DatabaseTransaction, Statement, Value};

use super::{Backend, Result, Store};
use crate::domain::access::OPEN_TENANT;
use crate::domain::concurrency::{Cap, Concurrency};
use crate::domain::{Job, Lane, ToolRow};

pub(super) use postgres::Postgres;
pub(super) use sqlite::Sqlite;

/// One database's way of doing what the store needs.
#[async_trait]
pub(super) trait Driver: Send + Sync {
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// Pool settings for a pool of at most `max` connections.
    fn options(&self, url: &str, max: u32) -> ConnectOptions;

    /// Connections of the shared pool.
    fn pool_size(&self) -> u32;

    /// Does this database take one writer at a time (so the writers of a process take turns
    /// at `Store::writing`, and the submission writer keeps a connection of its own)?
    fn one_writer(&self) -> bool;

    /// The database's clock, in milliseconds since the epoch, as an SQL expression. Every
    /// lease is granted, renewed and checked by it, so no node's clock matters.
    fn now_ms(&self) -> &'static str;

    /// The statement that moves the oldest QUEUED job of `lane` to STARTED for `node` under a
    /// lease of `lease_ms` and returns its row, leaving waiting the jobs `limits` hold back.
    fn claim(&self, node: &str, lease_ms: i64, lane: Lane, limits: &Limits) -> Statement;

    /// The statement that makes the claims of every instance that would count against `key`
    /// take turns until the transaction ends, where the claim statement alone cannot see the
    /// others' (PostgreSQL: a transaction advisory lock); `None` where writers take turns anyway.
    fn limit_turn(&self, key: &str) -> Option<Statement>;

    /// The numbered parameter of position `n` (from 1).
    fn param(&self, n: usize) -> String;

    /// What a subquery that picks rows to change adds so that writers of several instances
    /// take rows no other holds instead of waiting for them (PostgreSQL's `FOR UPDATE SKIP
    /// LOCKED`; nothing where writers take turns).
    fn skip_locked(&self) -> &'static str;

    /// What gives back the space of rows a fold removed in bulk, so the reads that add what is
    /// not folded yet scan an empty table, not a million dead rows (PostgreSQL's `VACUUM`, which
    /// also refreshes the planner's statistics; nothing on SQLite, whose freed pages leave the
    /// table's tree at once).
    fn compact_stats(&self) -> Option<&'static str>;

    /// Apply every pending migration (several instances may start at once).
    async fn migrate(&self, store: &Store) -> Result<()>;

    /// Write a batch of new jobs with their first messages in one transaction, numbered from
    /// the task sequence; their numbers, in order.
    async fn write_jobs(&self, store: &Store, batch: &[(&Job, &str)]) -> Result<Vec<i64>>;

    /// Upsert a batch of tools of `tenant` by `tool_id`, inside the caller's transaction.
    async fn upsert_tools(
        &self,
        txn: &DatabaseTransaction,
        tenant: &str,
        job_id: &str,
        now: i64,
        tools: &[&ToolRow],
    ) -> Result<()>;

    /// The statement that tells other instances about `payloads`, if this database carries
    /// such news (PostgreSQL's NOTIFY); run inside the writing transaction.
    fn notify(&self, payloads: &[String]) -> Option<Statement>;

    /// Hear other instances' news, if this database carries it.
    fn listen(&self, url: &str) -> Option<tokio::sync::mpsc::Receiver<super::Signal>>;
}

/// The driver of a database URL.
pub(super) fn for_url(url: &str) -> Box<dyn Driver> {
    if url.starts_with("postgres") {
        Box::new(Postgres)
    } else {
        Box::new(Sqlite)
    }
}

/// The claim shared by both databases but for the row lock PostgreSQL adds: of the QUEUED jobs
/// of `lane` whose time has come (`not_before`), the one of the highest priority, then of the
/// earliest turn (the tenants take turns: see migration `m0010_queue`), then the oldest, becomes
/// STARTED, leased from the database's clock. `idx_jobs_claim` holds that order.
fn claim_sql(
    d: &dyn Driver,
    hint: &str,
    lane: Lane,
    node: &str,
    lease_ms: i64,
    limits: &Limits,
) -> (String, Vec<Value>) {
    let (now, lock) = (d.now_ms(), d.skip_locked());
    let p = |n| d.param(n);
    // The state machine allows this move; a compile-time check keeps the SQL honest.
    const _: () =
        assert!(crate::domain::JobStatus::Queued.can_move_to(crate::domain::JobStatus::Started));
    let mut values: Vec<Value> = vec![node.into(), lease_ms.into()];
    let held = if lane == Lane::Work {
        limits.sql(&p, &mut values)
    } else {
        String::new()
    };
    let sql = format!(
        "UPDATE jobs SET status = 'STARTED', lease_owner = {node}, \
         lease_expires_at = {now} + {len}, heartbeat_at = {now}, started_at = {now}, \
         finished_at = NULL, updated_at = {now}, phase = 'Starting', current_stage = 0, \
         progress_amount = 0, progress_total = NULL, version = version + 1 \
         WHERE id = (SELECT id FROM jobs{hint} WHERE status = 'QUEUED' AND {lane} \
         AND (not_before IS NULL OR not_before <= {now}){held} \
         ORDER BY priority DESC, turn, id LIMIT 1 {lock}) AND status = 'QUEUED' RETURNING *",
        node = p(1),
        len = p(2),
        lane = lane_sql(lane),
    );
    (sql, values)
}

/// The statuses of a job between its claim and its end, as an SQL list.
fn running_sql() -> String {
    crate::domain::JobStatus::RUNNING
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a claim of the work lane leaves waiting: the jobs of a tenant or an operation that has
/// as many running as its limit allows (seen by the claim statement), and those of the limits
/// `full` names (found full by a check after an earlier claim of the same call).
pub(crate) struct Limits<'a> {
    pub caps: &'a Concurrency,
    pub full: &'a [Cap],
}

impl Limits<'_> {
    /// The claim's conditions, their values appended to `values`.
    fn sql(&self, p: &impl Fn(usize) -> String, values: &mut Vec<Value>) -> String {
        let running = running_sql();
        let mut out = String::new();
        let push = |values: &mut Vec<Value>, v: Value| {
            values.push(v);
            p(values.len())
        };
        for (op, n) in &self.caps.per_operation {
            let op = push(values, op.as_str().into());
            let n = push(values, (*n as i64).into());
            out.push_str(&format!(
                " AND NOT (operation = {op} AND (SELECT COUNT(*) FROM jobs \
                 WHERE status IN ({running}) AND operation = {op}) >= {n})"
            ));
        }
        // Jobs stored without a tenant are the open tenant's (a parameter only where used: an
        // unused one is an error on PostgreSQL).
        let tenants =
            self.caps.tenant.is_some() || self.full.iter().any(|c| matches!(c, Cap::Tenant(..)));
        let open = if tenants {
            push(values, OPEN_TENANT.into())
        } else {
            String::new()
        };
        if let Some(n) = self.caps.tenant {
            let n = push(values, (n as i64).into());
            out.push_str(&format!(
                " AND COALESCE(owner, {open}) NOT IN (SELECT COALESCE(owner, {open}) FROM jobs \
                 WHERE status IN ({running}) AND {work} \
                 GROUP BY COALESCE(owner, {open}) HAVING COUNT(*) >= {n})",
                work = lane_sql(Lane::Work),
            ));
        }
        for cap in self.full {
            match cap {
                Cap::Tenant(owner, _) => {
                    let o = push(values, owner.as_str().into());
                    out.push_str(&format!(" AND COALESCE(owner, {open}) <> {o}"));
                }
                Cap::Operation(op, _) => {
                    let o = push(values, op.as_str().into());
                    out.push_str(&format!(" AND operation <> {o}"));
                }
            }
        }
        out
    }
}

/// The statement that counts the running jobs `cap` counts (the caller's own claim among them).
pub(super) fn running_of(cap: &Cap, p: impl Fn(usize) -> String) -> (String, Vec<Value>) {
    let running = running_sql();
    match cap {
        Cap::Tenant(owner, _) => (
            format!(
                "SELECT COUNT(*) AS n FROM jobs WHERE status IN ({running}) AND {work} \
                 AND COALESCE(owner, {open}) = {o}",
                work = lane_sql(Lane::Work),
                open = p(2),
                o = p(1)
            ),
            vec![owner.as_str().into(), OPEN_TENANT.into()],
        ),
        Cap::Operation(op, _) => (
            format!(
                "SELECT COUNT(*) AS n FROM jobs WHERE status IN ({running}) AND operation = {o}",
                o = p(1)
            ),
            vec![op.as_str().into()],
        ),
    }
}

/// The claim's condition on a job's lane: its operation is (control) or is not (work) one of
/// the control lane's. The names are plain lower-case constants (a test in `domain::lane` keeps
/// them so), written as literals.
fn lane_sql(lane: Lane) -> String {
    let names = crate::domain::lane::CONTROL_OPERATIONS
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    match lane {
        Lane::Work => format!("operation NOT IN ({names})"),
        Lane::Control => format!("operation IN ({names})"),
    }
}

/// How long an idle pooled connection to a busy database may wait (shared by both).
const CONNECT: Duration = Duration::from_secs(10);
const ACQUIRE: Duration = Duration::from_secs(30);

fn base_options(url: &str, max: u32) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.sqlx_logging(false)
        .connect_timeout(CONNECT)
        .acquire_timeout(ACQUIRE)
        .max_connections(max)
        .min_connections(1);
    opts
}

/// The catalog's batch statement, as both databases write it.
const CATALOG_INSERT: &str = "INSERT INTO catalog (tenant, tool_id, tool_name, category, \
    description, features, url, job_id, updated_at)";
const CATALOG_UPDATE: &str = "ON CONFLICT (tenant, tool_id) DO UPDATE SET \
    tool_name = excluded.tool_name, category = excluded.category, \
    description = excluded.description, features = excluded.features, url = excluded.url, \
    job_id = excluded.job_id, updated_at = excluded.updated_at";

/// A tool's features as stored.
fn features(t: &ToolRow) -> String {
    serde_json::to_string(&t.features).unwrap_or_else(|_| "[]".into())
}
