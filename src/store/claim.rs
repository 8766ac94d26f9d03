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
    let (lock, p) = match backend {
        DbBackend::Postgres => ("FOR UPDATE SKIP LOCKED", ["$1", "$2", "$3"]),
        _ => ("", ["?", "?", "?"]),
    };
    // SQLite binds `?` positionally, so the values are listed in order of appearance.
    let sql =
        format!(
        "UPDATE jobs SET status = 'STARTED', lease_owner = {node}, lease_expires_at = {until}, \
         heartbeat_at = {now}, started_at = {now2}, finished_at = NULL, updated_at = {now3}, \
         phase = 'Starting', current_stage = 0, progress_amount = 0, progress_total = NULL, \
         version = version + 1 \
         WHERE id = (SELECT id FROM jobs WHERE status = 'QUEUED' ORDER BY id LIMIT 1 {lock}) \
         AND status = 'QUEUED' RETURNING *",
        node = p[0],
        until = p[1],
        now = p[2],
        now2 = if backend == DbBackend::Postgres { "$3" } else { "?" },
        now3 = if backend == DbBackend::Postgres { "$3" } else { "?" },
    );
    let values: Vec<Value> = match backend {
        DbBackend::Postgres => vec![node.into(), lease_until.into(), now.into()],
        _ => vec![
            node.into(),
            lease_until.into(),
            now.into(),
            now.into(),
            now.into(),
        ],
    };
    Statement::from_sql_and_values(backend, sql, values)
}
