//! API keys: kept as digests, looked up on every request so a revocation holds at once, on
//! every instance.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};

use super::entities::api_keys;
use super::{from_ms, ms, Result, Store};

/// How long "no keys exist" is believed before it is read again.
pub const OPEN_RECHECK: std::time::Duration = std::time::Duration::from_millis(250);

/// A stored key (never the secret itself).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub id: String,
    pub tenant: String,
    pub scope: String,
    /// The first characters of the secret, to recognise it by.
    pub prefix: String,
    pub created: DateTime<Utc>,
    pub revoked: Option<DateTime<Utc>>,
}

fn record(m: api_keys::Model) -> KeyRecord {
    KeyRecord {
        id: m.id,
        tenant: m.tenant,
        scope: m.scope,
        prefix: m.prefix,
        created: from_ms(m.created_at),
        revoked: m.revoked_at.map(from_ms),
    }
}

impl Store {
    /// Keep a new key's digest.
    pub async fn insert_key(
        &self,
        tenant: &str,
        scope: &str,
        digest: &str,
        prefix: &str,
    ) -> Result<KeyRecord> {
        let m = api_keys::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            tenant: Set(tenant.to_string()),
            scope: Set(scope.to_string()),
            digest: Set(digest.to_string()),
            prefix: Set(prefix.to_string()),
            created_at: Set(ms(Utc::now())),
            revoked_at: Set(None),
        };
        let m = api_keys::Entity::insert(m)
            .exec_with_returning(self.conn())
            .await?;
        *self.keys_known.lock().unwrap() = Some((true, std::time::Instant::now()));
        Ok(record(m))
    }

    /// The live key with this digest.
    pub async fn key_by_digest(&self, digest: &str) -> Result<Option<KeyRecord>> {
        Ok(api_keys::Entity::find()
            .filter(api_keys::Column::Digest.eq(digest))
            .filter(api_keys::Column::RevokedAt.is_null())
            .one(self.conn())
            .await?
            .map(record))
    }

    /// Whether any live key exists (without one the service runs open). Once keys exist the
    /// answer is kept (revoking every key does not reopen the service before a restart); while
    /// none exist it is read again at most every `OPEN_RECHECK`, so a key made by another process
    /// closes the service within that time (one made through this store, at once).
    pub async fn any_keys(&self) -> Result<bool> {
        if let Some((known, at)) = *self.keys_known.lock().unwrap() {
            if known || at.elapsed() < OPEN_RECHECK {
                return Ok(known);
            }
        }
        let any = api_keys::Entity::find()
            .filter(api_keys::Column::RevokedAt.is_null())
            .count(self.conn())
            .await?
            > 0;
        *self.keys_known.lock().unwrap() = Some((any, std::time::Instant::now()));
        Ok(any)
    }

    /// Every key, oldest first.
    pub async fn keys(&self) -> Result<Vec<KeyRecord>> {
        Ok(api_keys::Entity::find()
            .order_by_asc(api_keys::Column::CreatedAt)
            .all(self.conn())
            .await?
            .into_iter()
            .map(record)
            .collect())
    }

    /// Revoke a key by id or prefix; true when a live key was revoked.
    pub async fn revoke_key(&self, id_or_prefix: &str) -> Result<bool> {
        let res = api_keys::Entity::update_many()
            .col_expr(
                api_keys::Column::RevokedAt,
                sea_orm::sea_query::Expr::value(ms(Utc::now())),
            )
            .filter(
                sea_orm::Condition::any()
                    .add(api_keys::Column::Id.eq(id_or_prefix))
                    .add(api_keys::Column::Prefix.eq(id_or_prefix)),
            )
            .filter(api_keys::Column::RevokedAt.is_null())
            .exec(self.conn())
            .await?;
        Ok(res.rows_affected > 0)
    }
}
