//! The one place that differs by database: how a queued job is claimed.
//!
//! SQLite serialises writers, so a plain conditional UPDATE is enough; PostgreSQL lets many
//! instances claim at once without blocking each other through `FOR UPDATE SKIP LOCKED`.

use sea_orm::{DbBackend, Statement, Value};

/// The statement that moves the oldest QUEUED job to STARTED under a lease and returns it.
pub(super) fn claim_statement(
    backend: DbBackend,
    node: &str,
    lease_until: i64,
    now: i64,
) -> Statement {
    // Both databases take numbered parameters; SQLite spells them `?N`, PostgreSQL `$N`.
    let (lock, mark) = match backend {
        DbBackend::Postgres => ("FOR UPDATE SKIP LOCKED", '$'),
        _ => ("", '?'),
    };
    let sql = format!(
        "UPDATE jobs SET status = 'STARTED', lease_owner = {mark}1, lease_expires_at = {mark}2, \
         heartbeat_at = {mark}3, started_at = {mark}3, finished_at = NULL, updated_at = {mark}3, \
         phase = 'Starting', current_stage = 0, progress_amount = 0, progress_total = NULL, \
         version = version + 1 \
         WHERE id = (SELECT id FROM jobs WHERE status = 'QUEUED' ORDER BY id LIMIT 1 {lock}) \
         AND status = 'QUEUED' RETURNING *"
    );
    let values: Vec<Value> = vec![node.into(), lease_until.into(), now.into()];
    Statement::from_sql_and_values(backend, sql, values)
}
