//! The outbox: deliveries (callbacks and notification events) written in the same transaction
//! as the end state of their job, and sent (and retried) from there.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    Id,
    JobId,
    Kind,
    Url,
    ContentType,
    Body,
    State,
    Attempts,
    NextAt,
    LeaseUntil,
    CreatedAt,
    LastOutcome,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Deliveries::Table)
                    .if_not_exists()
                    .col(string_len(Deliveries::Id, 64).primary_key())
                    .col(string_len(Deliveries::JobId, 36))
                    .col(string_len(Deliveries::Kind, 16))
                    .col(text(Deliveries::Url))
                    .col(string_len_null(Deliveries::ContentType, 64))
                    .col(text(Deliveries::Body))
                    .col(string_len(Deliveries::State, 16))
                    .col(integer(Deliveries::Attempts).default(0))
                    .col(big_integer(Deliveries::NextAt))
                    .col(big_integer_null(Deliveries::LeaseUntil))
                    .col(big_integer(Deliveries::CreatedAt))
                    .col(text_null(Deliveries::LastOutcome))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_deliveries_due")
                    .table(Deliveries::Table)
                    .col(Deliveries::State)
                    .col(Deliveries::NextAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_deliveries_job")
                    .table(Deliveries::Table)
                    .col(Deliveries::JobId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Deliveries::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
