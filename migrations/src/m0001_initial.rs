//! Jobs, their messages, output files, per-record outcomes, the tools catalog and settings.
//!
//! Times are stored as milliseconds since the Unix epoch (BIGINT) so both databases compare and
//! index them the same way; ids are UUID text, whose v7 form sorts by creation.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    Reference,
    Operation,
    Status,
    Phase,
    TotalStages,
    CurrentStage,
    ProgressAmount,
    ProgressTotal,
    ProgressUnit,
    CreatedAt,
    StartedAt,
    FinishedAt,
    UpdatedAt,
    CorrelationId,
    Attempt,
    MaxAttempts,
    Input,
    InputBlob,
    KeepResult,
    AsyncRequest,
    Summary,
    Error,
    CancelRequested,
    Version,
    LeaseOwner,
    LeaseExpiresAt,
    HeartbeatAt,
}

#[derive(DeriveIden)]
enum JobMessages {
    Table,
    Seq,
    JobId,
    At,
    Level,
    Kind,
    Text,
    Attempt,
}

#[derive(DeriveIden)]
enum JobFiles {
    Table,
    Id,
    JobId,
    Name,
    ContentType,
    Size,
    Etag,
    ObjectKey,
    Rows,
    CreatedAt,
    Consumed,
}

#[derive(DeriveIden)]
enum RecordOutcomes {
    Table,
    JobId,
    Idx,
    Status,
    ToolId,
    Record,
    Reason,
}

#[derive(DeriveIden)]
enum Tools {
    Table,
    ToolId,
    ToolName,
    Category,
    Description,
    Features,
    Url,
    JobId,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Settings {
    Table,
    Key,
    Value,
}

fn index(name: &str, table: impl IntoIden, cols: &[&str]) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(name).table(table).if_not_exists();
    for c in cols {
        idx.col(Alias::new(*c));
    }
    idx.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .if_not_exists()
                    .col(string_len(Jobs::Id, 36).primary_key())
                    .col(string_len(Jobs::Reference, 32))
                    .col(string_len(Jobs::Operation, 64))
                    .col(string_len(Jobs::Status, 16))
                    .col(text_null(Jobs::Phase))
                    .col(integer(Jobs::TotalStages).default(0))
                    .col(integer(Jobs::CurrentStage).default(0))
                    .col(big_integer(Jobs::ProgressAmount).default(0))
                    .col(big_integer_null(Jobs::ProgressTotal))
                    .col(string_len_null(Jobs::ProgressUnit, 32))
                    .col(big_integer(Jobs::CreatedAt))
                    .col(big_integer_null(Jobs::StartedAt))
                    .col(big_integer_null(Jobs::FinishedAt))
                    .col(big_integer(Jobs::UpdatedAt))
                    .col(string_len(Jobs::CorrelationId, 200))
                    .col(integer(Jobs::Attempt).default(1))
                    .col(integer(Jobs::MaxAttempts).default(3))
                    .col(text(Jobs::Input))
                    .col(text_null(Jobs::InputBlob))
                    .col(boolean(Jobs::KeepResult).default(true))
                    .col(text_null(Jobs::AsyncRequest))
                    .col(text_null(Jobs::Summary))
                    .col(text_null(Jobs::Error))
                    .col(boolean(Jobs::CancelRequested).default(false))
                    .col(big_integer(Jobs::Version).default(1))
                    .col(string_len_null(Jobs::LeaseOwner, 64))
                    .col(big_integer_null(Jobs::LeaseExpiresAt))
                    .col(big_integer_null(Jobs::HeartbeatAt))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("idx_jobs_status_id", &["status", "id"][..]),
            ("idx_jobs_reference", &["reference"][..]),
            ("idx_jobs_operation_id", &["operation", "id"][..]),
            ("idx_jobs_correlation", &["correlation_id", "id"][..]),
            ("idx_jobs_created", &["created_at"][..]),
            ("idx_jobs_finished", &["finished_at"][..]),
            ("idx_jobs_lease", &["status", "lease_expires_at"][..]),
        ] {
            manager.create_index(index(name, Jobs::Table, cols)).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(JobMessages::Table)
                    .if_not_exists()
                    .col(big_pk_auto(JobMessages::Seq))
                    .col(string_len(JobMessages::JobId, 36))
                    .col(big_integer(JobMessages::At))
                    .col(string_len(JobMessages::Level, 8))
                    .col(string_len(JobMessages::Kind, 32))
                    .col(text(JobMessages::Text))
                    .col(integer(JobMessages::Attempt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_messages_job",
                JobMessages::Table,
                &["job_id", "seq"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(JobFiles::Table)
                    .if_not_exists()
                    .col(string_len(JobFiles::Id, 36).primary_key())
                    .col(string_len(JobFiles::JobId, 36))
                    .col(string(JobFiles::Name))
                    .col(string(JobFiles::ContentType))
                    .col(big_integer(JobFiles::Size))
                    .col(string(JobFiles::Etag))
                    .col(text(JobFiles::ObjectKey))
                    .col(big_integer_null(JobFiles::Rows))
                    .col(big_integer(JobFiles::CreatedAt))
                    .col(boolean(JobFiles::Consumed).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("idx_files_job", JobFiles::Table, &["job_id"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RecordOutcomes::Table)
                    .if_not_exists()
                    .col(string_len(RecordOutcomes::JobId, 36))
                    .col(big_integer(RecordOutcomes::Idx))
                    .col(string_len(RecordOutcomes::Status, 16))
                    .col(string_len_null(RecordOutcomes::ToolId, 64))
                    .col(text(RecordOutcomes::Record))
                    .col(text_null(RecordOutcomes::Reason))
                    .primary_key(
                        Index::create()
                            .col(RecordOutcomes::JobId)
                            .col(RecordOutcomes::Idx),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Tools::Table)
                    .if_not_exists()
                    .col(string_len(Tools::ToolId, 64).primary_key())
                    .col(string_len(Tools::ToolName, 200))
                    .col(string_len(Tools::Category, 100))
                    .col(text_null(Tools::Description))
                    .col(text(Tools::Features))
                    .col(text_null(Tools::Url))
                    .col(string_len(Tools::JobId, 36))
                    .col(big_integer(Tools::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Settings::Table)
                    .if_not_exists()
                    .col(string_len(Settings::Key, 64).primary_key())
                    .col(text(Settings::Value))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            Settings::Table.into_iden(),
            Tools::Table.into_iden(),
            RecordOutcomes::Table.into_iden(),
            JobFiles::Table.into_iden(),
            JobMessages::Table.into_iden(),
            Jobs::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
