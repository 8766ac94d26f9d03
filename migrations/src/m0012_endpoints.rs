//! The health of the places deliveries go: one row per tenant and endpoint (scheme, host, port
//! and path of a delivery's address), with the start of its current run of failures, its last
//! success and last error, and whether it is switched off; and each delivery's endpoint, so the
//! deliveries an endpoint missed while off can be found when it is switched on again.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Endpoints {
    Table,
    Id,
    Owner,
    Target,
    State,
    FailingSince,
    LastSuccessAt,
    LastErrorAt,
    LastError,
    DisabledAt,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    Endpoint,
    State,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Endpoints::Table)
                    .if_not_exists()
                    .col(string_len(Endpoints::Id, 40).primary_key())
                    .col(string_len(Endpoints::Owner, 64))
                    .col(text(Endpoints::Target))
                    .col(string_len(Endpoints::State, 16))
                    .col(big_integer_null(Endpoints::FailingSince))
                    .col(big_integer_null(Endpoints::LastSuccessAt))
                    .col(big_integer_null(Endpoints::LastErrorAt))
                    .col(text_null(Endpoints::LastError))
                    .col(big_integer_null(Endpoints::DisabledAt))
                    .to_owned(),
            )
            .await?;
        // The id is a digest of the tenant and the target, so it is what keeps them unique; an
        // index on the target itself would refuse a long address (PostgreSQL's index entries
        // are bounded), and with it the end of the job that asked for it.
        manager
            .create_index(
                Index::create()
                    .name("idx_endpoints_owner")
                    .table(Endpoints::Table)
                    .col(Endpoints::Owner)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Deliveries::Table)
                    .add_column(string_len_null(Deliveries::Endpoint, 40))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_deliveries_endpoint")
                    .table(Deliveries::Table)
                    .col(Deliveries::Endpoint)
                    .col(Deliveries::State)
                    .col(Deliveries::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_deliveries_endpoint")
                    .table(Deliveries::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Deliveries::Table)
                    .drop_column(Deliveries::Endpoint)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Endpoints::Table).to_owned())
            .await
    }
}
