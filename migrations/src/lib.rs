//! Schema of the longrun store, for SQLite and PostgreSQL alike.

pub use sea_orm_migration::prelude::*;

mod m0001_initial;
mod m0002_deliveries;
mod m0003_tasks_owner;
mod m0004_idempotency;
mod m0005_tenants;
mod m0006_delivery_tokens;
mod m0007_file_attempt;
mod m0008_jobs_updated;
mod m0009_stats;
mod m0010_queue;
mod m0011_delivery_attempts;
mod m0012_endpoints;

/// Every migration, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(m0002_deliveries::Migration),
            Box::new(m0003_tasks_owner::Migration),
            Box::new(m0004_idempotency::Migration),
            Box::new(m0005_tenants::Migration),
            Box::new(m0006_delivery_tokens::Migration),
            Box::new(m0007_file_attempt::Migration),
            Box::new(m0008_jobs_updated::Migration),
            Box::new(m0009_stats::Migration),
            Box::new(m0010_queue::Migration),
            Box::new(m0011_delivery_attempts::Migration),
            Box::new(m0012_endpoints::Migration),
        ]
    }
}
