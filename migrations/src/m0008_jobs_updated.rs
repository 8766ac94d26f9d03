//! Jobs indexed by their last change: the collection's event stream resumes from a point in that
//! order (`GET /api/v1/events` with `Last-Event-ID`) and catches up with an indexed range.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    UpdatedAt,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_updated")
                    .table(Jobs::Table)
                    .col(Jobs::UpdatedAt)
                    .col(Jobs::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_jobs_updated")
                    .table(Jobs::Table)
                    .to_owned(),
            )
            .await
    }
}
