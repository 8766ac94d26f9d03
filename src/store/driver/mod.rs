//! Everything that differs between SQLite and PostgreSQL, behind one trait: `sqlite.rs` and
//! `postgres.rs` are the only files that know either database's SQL dialect or behaviour.
//! The rest of the store speaks through `Driver`, and the conformance suite
//! (`tests/api/conformance.rs`) runs the same cases against both.

mod nodelay;
mod postgres;
mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::{ConnectOptions, DatabaseTransaction, Statement};

use super::{Backend, Result, Store};
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
    /// lease of `lease_ms` and returns its row.
    fn claim(&self, node: &str, lease_ms: i64, lane: Lane) -> Statement;

    /// The numbered parameter of position `n` (from 1).
    fn param(&self, n: usize) -> String;

    /// What a subquery that picks rows to change adds so that writers of several instances
    /// take rows no other holds instead of waiting for them (PostgreSQL's `FOR UPDATE SKIP
    /// LOCKED`; nothing where writers take turns).
    fn skip_locked(&self) -> &'static str;

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

/// The claim shared by both databases but for the row lock PostgreSQL adds: the oldest QUEUED
/// job of `lane` becomes STARTED, leased from the database's clock.
fn claim_sql(now: &str, p: impl Fn(usize) -> String, lock: &str, lane: Lane) -> String {
    // The state machine allows this move; a compile-time check keeps the SQL honest.
    const _: () =
        assert!(crate::domain::JobStatus::Queued.can_move_to(crate::domain::JobStatus::Started));
    format!(
        "UPDATE jobs SET status = 'STARTED', lease_owner = {node}, \
         lease_expires_at = {now} + {len}, heartbeat_at = {now}, started_at = {now}, \
         finished_at = NULL, updated_at = {now}, phase = 'Starting', current_stage = 0, \
         progress_amount = 0, progress_total = NULL, version = version + 1 \
         WHERE id = (SELECT id FROM jobs WHERE status = 'QUEUED' AND {lane} \
         ORDER BY id LIMIT 1 {lock}) AND status = 'QUEUED' RETURNING *",
        node = p(1),
        len = p(2),
        lane = lane_sql(lane),
    )
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
