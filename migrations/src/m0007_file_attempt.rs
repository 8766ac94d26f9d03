//! Output files carry the attempt that wrote them: a job's outputs are those of its current
//! attempt only, so the parts of an interrupted attempt never join those of the next.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JobFiles {
    Table,
    Attempt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Files written before this column existed belong to the attempt their job is on.
        manager
            .alter_table(
                Table::alter()
                    .table(JobFiles::Table)
                    .add_column(integer(JobFiles::Attempt).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE job_files SET attempt = \
                 (SELECT attempt FROM jobs WHERE jobs.id = job_files.job_id) \
                 WHERE EXISTS (SELECT 1 FROM jobs WHERE jobs.id = job_files.job_id)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(JobFiles::Table)
                    .drop_column(JobFiles::Attempt)
                    .to_owned(),
            )
            .await
    }
}
