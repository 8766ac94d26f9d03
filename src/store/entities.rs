//! sea-orm entities; nothing outside `store/` sees these.

pub mod jobs {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "jobs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub reference: String,
        pub operation: String,
        pub status: String,
        pub phase: Option<String>,
        pub total_stages: i32,
        pub current_stage: i32,
        pub progress_amount: i64,
        pub progress_total: Option<i64>,
        pub progress_unit: Option<String>,
        pub created_at: i64,
        pub started_at: Option<i64>,
        pub finished_at: Option<i64>,
        pub updated_at: i64,
        pub correlation_id: String,
        pub attempt: i32,
        pub max_attempts: i32,
        pub input: String,
        pub input_blob: Option<String>,
        pub keep_result: bool,
        pub async_request: Option<String>,
        pub summary: Option<String>,
        pub error: Option<String>,
        pub cancel_requested: bool,
        pub version: i64,
        pub lease_owner: Option<String>,
        pub lease_expires_at: Option<i64>,
        pub heartbeat_at: Option<i64>,
        pub task_id: Option<i64>,
        pub owner: Option<String>,
        pub priority: i32,
        pub not_before: Option<i64>,
        pub timeout_ms: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod job_messages {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "job_messages")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        pub job_id: String,
        pub at: i64,
        pub level: String,
        pub kind: String,
        pub text: String,
        pub attempt: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod job_files {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "job_files")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub job_id: String,
        pub name: String,
        pub content_type: String,
        pub size: i64,
        pub etag: String,
        pub object_key: String,
        pub rows: Option<i64>,
        pub created_at: i64,
        pub consumed: bool,
        pub attempt: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod record_outcomes {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "record_outcomes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub job_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub idx: i64,
        pub status: String,
        pub tool_id: Option<String>,
        pub record: String,
        pub reason: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod tools {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "catalog")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tool_id: String,
        pub tool_name: String,
        pub category: String,
        pub description: Option<String>,
        pub features: String,
        pub url: Option<String>,
        pub job_id: String,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod settings {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "settings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub value: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod deliveries {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "deliveries")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub job_id: String,
        pub kind: String,
        pub url: String,
        pub content_type: Option<String>,
        pub body: String,
        pub state: String,
        pub attempts: i32,
        pub next_at: i64,
        pub lease_until: Option<i64>,
        pub created_at: i64,
        pub last_outcome: Option<String>,
        /// The token of the claim that holds the lease (see `Store::claim_deliveries`).
        pub lease_token: Option<String>,
        /// The endpoint it goes to (`endpoints.id`); none on deliveries made before endpoints
        /// were kept.
        pub endpoint: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod delivery_attempts {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "delivery_attempts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub delivery_id: String,
        pub at: i64,
        pub status: Option<i32>,
        pub error: Option<String>,
        pub duration_ms: i64,
        pub next_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod endpoints {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "endpoints")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub owner: String,
        pub target: String,
        pub state: String,
        pub failing_since: Option<i64>,
        pub last_success_at: Option<i64>,
        pub last_error_at: Option<i64>,
        pub last_error: Option<String>,
        pub disabled_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod idempotency {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "idempotency")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub fingerprint: Option<String>,
        pub state: String,
        pub status: Option<i32>,
        pub location: Option<String>,
        pub content_type: Option<String>,
        pub body: Option<String>,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod api_keys {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant: String,
        pub scope: String,
        pub digest: String,
        pub prefix: String,
        pub created_at: i64,
        pub revoked_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
