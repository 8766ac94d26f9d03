//! Idempotency keys of submissions: the first answer is kept and replayed for 24 hours.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Idempotency {
    Table,
    Id,
    Fingerprint,
    State,
    Status,
    Location,
    ContentType,
    Body,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Idempotency::Table)
                    .if_not_exists()
                    .col(string_len(Idempotency::Id, 64).primary_key())
                    .col(string_len_null(Idempotency::Fingerprint, 64))
                    .col(string_len(Idempotency::State, 16))
                    .col(integer_null(Idempotency::Status))
                    .col(text_null(Idempotency::Location))
                    .col(string_len_null(Idempotency::ContentType, 128))
                    .col(text_null(Idempotency::Body))
                    .col(big_integer(Idempotency::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_idempotency_created")
                    .table(Idempotency::Table)
                    .col(Idempotency::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Idempotency::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
