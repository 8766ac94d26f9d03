//! The order of the queue: a job's `priority` (higher first), its `turn` (the tenants take turns)
//! and its `not_before` (a scheduled job waits until then); and its `timeout_ms`, the longest
//! one run may take.
//!
//! Turns are fair queueing by virtual time: a job submitted gets the turn after the last of its
//! tenant's waiting jobs, but never one behind the queue's present (the lowest turn still
//! waiting, or, with nothing waiting, the highest turn claimed), so a tenant with 10,000 jobs
//! queued takes one turn in every round, not the next 10,000 claims, and a tenant idle for a
//! while neither lost its place nor saved up turns. The turn is read from indexes only, never
//! kept in a counter row, so submissions of one tenant never queue for a row lock and a
//! transaction that stores many jobs costs the same per job. The claim orders by
//! `priority DESC, turn, id`, one index range. The turn is given by a trigger in the inserting
//! transaction, so no way of storing a job can forget it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Priority,
    Turn,
    NotBefore,
    TimeoutMs,
}

/// The queue's indexes. Those of waiting jobs are partial (`status = 'QUEUED'`), so a job
/// that moves on leaves them and the million ended jobs of a busy collection are in none of
/// them: a status move maintains no more index entries than before, and `turn` never changes
/// after the insert.
const INDEXES: [(&str, &str); 4] = [
    // The claim's order (`store/driver/mod.rs`).
    (
        "idx_jobs_claim",
        "(priority DESC, turn, id) WHERE status = 'QUEUED'",
    ),
    // The lowest waiting turn.
    (
        "idx_jobs_queued_turn",
        "(turn) WHERE status = 'QUEUED' AND not_before IS NULL",
    ),
    // A tenant's last waiting turn.
    (
        "idx_jobs_owner_queued_turn",
        "(owner, turn) WHERE status = 'QUEUED' AND not_before IS NULL",
    ),
    // The highest turn given.
    ("idx_jobs_turn", "(turn)"),
];

/// The queue's present, seen from a job being inserted (`this` leaves it out, for SQLite, whose
/// trigger runs after the row is in): the lowest turn still waiting, scheduled jobs aside (a job
/// that waits for its time does not hold the present back); with nothing waiting, the highest
/// turn given. Each part is one probe of an index (`hint` names it for SQLite, whose planner,
/// without statistics, would rather walk a status index).
fn present(this: &str, hint: &str) -> String {
    format!(
        "COALESCE((SELECT MIN(turn) FROM jobs{hint} WHERE status = 'QUEUED' AND not_before IS NULL{this}), \
                  (SELECT MAX(turn) FROM jobs), 0)"
    )
}

/// The last turn of the tenant's own waiting jobs (`owner` says whose), 0 with none waiting:
/// one probe of `idx_jobs_owner_queued_turn`.
fn own(owner: &str, this: &str) -> String {
    format!(
        "COALESCE((SELECT MAX(turn) FROM jobs WHERE {owner} AND status = 'QUEUED'                    AND not_before IS NULL{this}), 0)"
    )
}

fn sqlite_trigger() -> String {
    let this = " AND id <> NEW.id";
    format!(
        "CREATE TRIGGER jobs_turn AFTER INSERT ON jobs BEGIN \
           UPDATE jobs SET turn = MAX({present}, {own}) + 1 WHERE id = NEW.id; \
         END",
        present = present(this, " INDEXED BY idx_jobs_queued_turn"),
        own = own("owner IS NEW.owner", this),
    )
}

fn postgres_triggers() -> Vec<String> {
    vec![
        format!(
            "CREATE OR REPLACE FUNCTION longrun_jobs_turn() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN \
               IF NEW.owner IS NULL THEN \
                 NEW.turn := GREATEST({present}, {own_open}) + 1; \
               ELSE \
                 NEW.turn := GREATEST({present}, {own}) + 1; \
               END IF; \
               RETURN NEW; \
             END $$",
            present = present("", ""),
            own_open = own("owner IS NULL", ""),
            own = own("owner = NEW.owner", ""),
        ),
        "CREATE TRIGGER jobs_turn BEFORE INSERT ON jobs \
         FOR EACH ROW EXECUTE FUNCTION longrun_jobs_turn()"
            .to_string(),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column a statement: SQLite alters a table one change at a time.
        for col in [
            ColumnDef::new(Jobs::Priority)
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(Jobs::Turn)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(Jobs::NotBefore)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Jobs::TimeoutMs)
                .big_integer()
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(Table::alter().table(Jobs::Table).add_column(col).to_owned())
                .await?;
        }
        let db = manager.get_connection();
        // Partial indexes: the same statement on both databases (sea-query has no WHERE for them).
        for (name, on) in INDEXES {
            db.execute_unprepared(&format!("CREATE INDEX {name} ON jobs {on}"))
                .await?;
        }
        match manager.get_database_backend() {
            sea_orm_migration::sea_orm::DatabaseBackend::Postgres => {
                for sql in postgres_triggers() {
                    db.execute_unprepared(&sql).await?;
                }
            }
            _ => {
                db.execute_unprepared(&sqlite_trigger()).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            sea_orm_migration::sea_orm::DatabaseBackend::Postgres => {
                db.execute_unprepared("DROP TRIGGER IF EXISTS jobs_turn ON jobs")
                    .await?;
                db.execute_unprepared("DROP FUNCTION IF EXISTS longrun_jobs_turn()")
                    .await?;
            }
            _ => {
                db.execute_unprepared("DROP TRIGGER IF EXISTS jobs_turn")
                    .await?;
            }
        }
        for (name, _) in INDEXES {
            manager
                .drop_index(Index::drop().name(name).table(Jobs::Table).to_owned())
                .await?;
        }
        for col in [Jobs::TimeoutMs, Jobs::NotBefore, Jobs::Turn, Jobs::Priority] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Jobs::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
