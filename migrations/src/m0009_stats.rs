//! What `GET /api/v1/stats` reads instead of scanning jobs: counts per tenant, operation and
//! status, the ends of jobs per minute and per hour with their run times, and the instances.
//!
//! The counts are kept by the database itself. A trigger on `jobs` appends a delta for every
//! insert, status change and delete, and an end for every move into SUCCESS, FAILED or
//! CANCELLED, so no write path of the service (submissions, claims, transitions, recovery,
//! retention) can forget them. Appending never waits for another writer; the service folds the
//! deltas into `job_counts` and the ends into `job_end_buckets` a batch at a time, and readers
//! add what is not folded yet, so a count is exact the moment its job's write commits.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JobCountDeltas {
    Table,
    Id,
    Owner,
    Operation,
    Status,
    Delta,
}

#[derive(DeriveIden)]
enum JobCounts {
    Table,
    Owner,
    Operation,
    Status,
    N,
}

#[derive(DeriveIden)]
enum JobEndLog {
    Table,
    Id,
    Owner,
    Operation,
    Status,
    EndedAt,
    RunMs,
}

#[derive(DeriveIden)]
enum JobEndBuckets {
    Table,
    Span,
    Start,
    Owner,
    Operation,
    Status,
    Bucket,
    N,
}

#[derive(DeriveIden)]
enum Nodes {
    Table,
    Id,
    Role,
    StartedAt,
    HeartbeatAt,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Status,
    Operation,
    Id,
}

/// The ends of the last 48 hours are kept per hour (and of the last 2 per minute).
const KEEP_ENDS_MS: i64 = 49 * 3_600_000;

const SQLITE_TRIGGERS: &[&str] = &[
    "CREATE TRIGGER jobs_stats_insert AFTER INSERT ON jobs BEGIN \
       INSERT INTO job_count_deltas (owner, operation, status, delta) \
       VALUES (COALESCE(NEW.owner, 'default'), NEW.operation, NEW.status, 1); \
     END",
    "CREATE TRIGGER jobs_stats_update AFTER UPDATE OF status ON jobs \
     WHEN OLD.status <> NEW.status BEGIN \
       INSERT INTO job_count_deltas (owner, operation, status, delta) \
       VALUES (COALESCE(OLD.owner, 'default'), OLD.operation, OLD.status, -1), \
              (COALESCE(NEW.owner, 'default'), NEW.operation, NEW.status, 1); \
       INSERT INTO job_end_log (owner, operation, status, ended_at, run_ms) \
       SELECT COALESCE(NEW.owner, 'default'), NEW.operation, NEW.status, \
              COALESCE(NEW.finished_at, NEW.updated_at), NEW.finished_at - NEW.started_at \
       WHERE NEW.status IN ('SUCCESS', 'FAILED', 'CANCELLED'); \
     END",
    "CREATE TRIGGER jobs_stats_delete AFTER DELETE ON jobs BEGIN \
       INSERT INTO job_count_deltas (owner, operation, status, delta) \
       VALUES (COALESCE(OLD.owner, 'default'), OLD.operation, OLD.status, -1); \
     END",
];

const POSTGRES_TRIGGERS: &[&str] = &[
    "CREATE OR REPLACE FUNCTION longrun_jobs_stats() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN \
       IF TG_OP = 'INSERT' THEN \
         INSERT INTO job_count_deltas (owner, operation, status, delta) \
         VALUES (COALESCE(NEW.owner, 'default'), NEW.operation, NEW.status, 1); \
       ELSIF TG_OP = 'DELETE' THEN \
         INSERT INTO job_count_deltas (owner, operation, status, delta) \
         VALUES (COALESCE(OLD.owner, 'default'), OLD.operation, OLD.status, -1); \
       ELSIF OLD.status IS DISTINCT FROM NEW.status THEN \
         INSERT INTO job_count_deltas (owner, operation, status, delta) \
         VALUES (COALESCE(OLD.owner, 'default'), OLD.operation, OLD.status, -1), \
                (COALESCE(NEW.owner, 'default'), NEW.operation, NEW.status, 1); \
         IF NEW.status IN ('SUCCESS', 'FAILED', 'CANCELLED') THEN \
           INSERT INTO job_end_log (owner, operation, status, ended_at, run_ms) \
           VALUES (COALESCE(NEW.owner, 'default'), NEW.operation, NEW.status, \
                   COALESCE(NEW.finished_at, NEW.updated_at), NEW.finished_at - NEW.started_at); \
         END IF; \
       END IF; \
       RETURN NULL; \
     END $$",
    "CREATE TRIGGER jobs_stats AFTER INSERT OR DELETE OR UPDATE OF status ON jobs \
     FOR EACH ROW EXECUTE FUNCTION longrun_jobs_stats()",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(JobCountDeltas::Table)
                    .if_not_exists()
                    .col(big_pk_auto(JobCountDeltas::Id))
                    .col(string_len(JobCountDeltas::Owner, 64))
                    .col(string_len(JobCountDeltas::Operation, 64))
                    .col(string_len(JobCountDeltas::Status, 16))
                    .col(integer(JobCountDeltas::Delta))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(JobCounts::Table)
                    .if_not_exists()
                    .col(string_len(JobCounts::Owner, 64))
                    .col(string_len(JobCounts::Operation, 64))
                    .col(string_len(JobCounts::Status, 16))
                    .col(big_integer(JobCounts::N))
                    .primary_key(
                        Index::create()
                            .col(JobCounts::Owner)
                            .col(JobCounts::Operation)
                            .col(JobCounts::Status),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(JobEndLog::Table)
                    .if_not_exists()
                    .col(big_pk_auto(JobEndLog::Id))
                    .col(string_len(JobEndLog::Owner, 64))
                    .col(string_len(JobEndLog::Operation, 64))
                    .col(string_len(JobEndLog::Status, 16))
                    .col(big_integer(JobEndLog::EndedAt))
                    .col(big_integer_null(JobEndLog::RunMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(JobEndBuckets::Table)
                    .if_not_exists()
                    .col(string_len(JobEndBuckets::Span, 1))
                    .col(big_integer(JobEndBuckets::Start))
                    .col(string_len(JobEndBuckets::Owner, 64))
                    .col(string_len(JobEndBuckets::Operation, 64))
                    .col(string_len(JobEndBuckets::Status, 16))
                    .col(integer(JobEndBuckets::Bucket))
                    .col(big_integer(JobEndBuckets::N))
                    .primary_key(
                        Index::create()
                            .col(JobEndBuckets::Span)
                            .col(JobEndBuckets::Start)
                            .col(JobEndBuckets::Owner)
                            .col(JobEndBuckets::Operation)
                            .col(JobEndBuckets::Status)
                            .col(JobEndBuckets::Bucket),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Nodes::Table)
                    .if_not_exists()
                    .col(string_len(Nodes::Id, 64).primary_key())
                    .col(string_len(Nodes::Role, 16))
                    .col(big_integer(Nodes::StartedAt))
                    .col(big_integer(Nodes::HeartbeatAt))
                    .to_owned(),
            )
            .await?;
        // The oldest queued job of each operation, found without walking other operations'.
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_status_operation_id")
                    .table(Jobs::Table)
                    .if_not_exists()
                    .col(Jobs::Status)
                    .col(Jobs::Operation)
                    .col(Jobs::Id)
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        let triggers = match manager.get_database_backend() {
            sea_orm_migration::sea_orm::DatabaseBackend::Postgres => POSTGRES_TRIGGERS,
            _ => SQLITE_TRIGGERS,
        };
        // The triggers first, then the backfill: on PostgreSQL both are one transaction, and
        // creating a trigger locks out writers of `jobs` until it commits.
        for sql in triggers {
            db.execute_unprepared(sql).await?;
        }
        db.execute_unprepared(
            "INSERT INTO job_counts (owner, operation, status, n) \
             SELECT COALESCE(owner, 'default'), operation, status, COUNT(*) FROM jobs \
             GROUP BY COALESCE(owner, 'default'), operation, status",
        )
        .await?;
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
            - KEEP_ENDS_MS;
        db.execute_unprepared(&format!(
            "INSERT INTO job_end_log (owner, operation, status, ended_at, run_ms) \
             SELECT COALESCE(owner, 'default'), operation, status, finished_at, \
                    finished_at - started_at FROM jobs \
             WHERE status IN ('SUCCESS', 'FAILED', 'CANCELLED') AND finished_at >= {since}"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            sea_orm_migration::sea_orm::DatabaseBackend::Postgres => {
                db.execute_unprepared("DROP TRIGGER IF EXISTS jobs_stats ON jobs")
                    .await?;
                db.execute_unprepared("DROP FUNCTION IF EXISTS longrun_jobs_stats()")
                    .await?;
            }
            _ => {
                for t in [
                    "jobs_stats_insert",
                    "jobs_stats_update",
                    "jobs_stats_delete",
                ] {
                    db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {t}"))
                        .await?;
                }
            }
        }
        manager
            .drop_index(
                Index::drop()
                    .name("idx_jobs_status_operation_id")
                    .table(Jobs::Table)
                    .to_owned(),
            )
            .await?;
        for t in [
            JobCountDeltas::Table.into_iden(),
            JobCounts::Table.into_iden(),
            JobEndLog::Table.into_iden(),
            JobEndBuckets::Table.into_iden(),
            Nodes::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
