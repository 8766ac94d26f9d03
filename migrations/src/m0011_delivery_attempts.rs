//! The log of a delivery's tries: one row per try (its time, the HTTP status or the error, how
//! long it took, when the next comes), written in the transaction that records the try on the
//! delivery, so the log and the delivery never disagree (`GET /api/v1/jobs/{id}/deliveries`).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DeliveryAttempts {
    Table,
    Id,
    DeliveryId,
    At,
    Status,
    Error,
    DurationMs,
    NextAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DeliveryAttempts::Table)
                    .if_not_exists()
                    .col(big_pk_auto(DeliveryAttempts::Id))
                    .col(string_len(DeliveryAttempts::DeliveryId, 64))
                    .col(big_integer(DeliveryAttempts::At))
                    .col(integer_null(DeliveryAttempts::Status))
                    .col(text_null(DeliveryAttempts::Error))
                    .col(big_integer(DeliveryAttempts::DurationMs))
                    .col(big_integer_null(DeliveryAttempts::NextAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_delivery_attempts_delivery")
                    .table(DeliveryAttempts::Table)
                    .col(DeliveryAttempts::DeliveryId)
                    .col(DeliveryAttempts::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DeliveryAttempts::Table).to_owned())
            .await
    }
}
