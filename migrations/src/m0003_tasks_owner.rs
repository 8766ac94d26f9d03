//! Jobs get an integer task number (seed 003's task ids) and the identity of their submitter;
//! `sequences` hands out numbers inside the inserting transaction.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    TaskId,
    Owner,
}

#[derive(DeriveIden)]
enum Sequences {
    Table,
    Name,
    Value,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .add_column(big_integer_null(Jobs::TaskId))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .add_column(string_len_null(Jobs::Owner, 128))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_task_id")
                    .table(Jobs::Table)
                    .col(Jobs::TaskId)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Sequences::Table)
                    .if_not_exists()
                    .col(string_len(Sequences::Name, 32).primary_key())
                    .col(big_integer(Sequences::Value).default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Sequences::Table).if_exists().to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_jobs_task_id")
                    .table(Jobs::Table)
                    .to_owned(),
            )
            .await?;
        for col in [Jobs::Owner, Jobs::TaskId] {
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
