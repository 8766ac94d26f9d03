//! Tenants: API keys (stored as digests only), a tenant per catalog entry, and an index for the
//! per-tenant audit list. Jobs made before tenants existed belong to the `default` tenant.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    Tenant,
    Scope,
    Digest,
    Prefix,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Catalog {
    Table,
    Tenant,
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
enum Tools {
    Table,
}

#[derive(DeriveIden, Clone)]
enum Jobs {
    Table,
    Owner,
    Id,
    Status,
    Operation,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .if_not_exists()
                    .col(string_len(ApiKeys::Id, 36).primary_key())
                    .col(string_len(ApiKeys::Tenant, 64))
                    .col(string_len(ApiKeys::Scope, 16))
                    .col(string_len(ApiKeys::Digest, 64).unique_key())
                    .col(string_len(ApiKeys::Prefix, 16))
                    .col(big_integer(ApiKeys::CreatedAt))
                    .col(big_integer_null(ApiKeys::RevokedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Catalog::Table)
                    .if_not_exists()
                    .col(string_len(Catalog::Tenant, 64))
                    .col(string_len(Catalog::ToolId, 64))
                    .col(string_len(Catalog::ToolName, 200))
                    .col(string_len(Catalog::Category, 100))
                    .col(text_null(Catalog::Description))
                    .col(text(Catalog::Features))
                    .col(text_null(Catalog::Url))
                    .col(string_len(Catalog::JobId, 36))
                    .col(big_integer(Catalog::UpdatedAt))
                    .primary_key(Index::create().col(Catalog::Tenant).col(Catalog::ToolId))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "INSERT INTO catalog (tenant, tool_id, tool_name, category, description, features, url, job_id, updated_at) \
             SELECT 'default', tool_id, tool_name, category, description, features, url, job_id, updated_at FROM tools",
        )
        .await?;
        manager
            .drop_table(Table::drop().table(Tools::Table).if_exists().to_owned())
            .await?;
        db.execute_unprepared(
            "UPDATE jobs SET owner = 'default' WHERE owner IS NULL OR owner LIKE 'bearer:%'",
        )
        .await?;
        // The audit list of one tenant, by id, with or without its most used filters.
        for (name, cols) in [
            ("idx_jobs_owner_id", &[Jobs::Owner, Jobs::Id][..]),
            (
                "idx_jobs_owner_status_id",
                &[Jobs::Owner, Jobs::Status, Jobs::Id][..],
            ),
            (
                "idx_jobs_owner_operation_id",
                &[Jobs::Owner, Jobs::Operation, Jobs::Id][..],
            ),
        ] {
            let mut idx = Index::create();
            idx.name(name).table(Jobs::Table).if_not_exists();
            for c in cols {
                idx.col(c.clone());
            }
            manager.create_index(idx.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ApiKeys::Table).if_exists().to_owned())
            .await
    }
}
