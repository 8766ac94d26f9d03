//! Idempotency keys: a key is reserved before its request is handled, completed with the answer,
//! or released when the request failed; a later request with the key finds one of those. A
//! reservation is held under a short lease that its request renews while it is handled
//! (`idem_renew`); one whose process died is taken over once the lease has run out, so a retry
//! after a crash is handled as new instead of waiting out the day.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use super::entities::idempotency;
use super::{ms, Result, Store};

/// A kept first answer.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptAnswer {
    pub fingerprint: String,
    pub status: u16,
    pub location: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

/// What a reservation found.
#[derive(Debug, Clone, PartialEq)]
pub enum Reservation {
    /// The key is this request's now.
    Mine,
    /// Another request with the key is still being handled.
    Pending,
    /// The key was used before: its answer.
    Done(KeptAnswer),
}

impl Store {
    /// Reserve key `id` (a digest of the caller and the key). Entries older than `since` are
    /// forgotten first, and so is a pending reservation not renewed since `stale` (its process
    /// died).
    pub async fn idem_reserve(
        &self,
        id: &str,
        since: DateTime<Utc>,
        stale: DateTime<Utc>,
    ) -> Result<Reservation> {
        idempotency::Entity::delete_many()
            .filter(idempotency::Column::Id.eq(id))
            .filter(
                sea_orm::Condition::any()
                    .add(idempotency::Column::CreatedAt.lt(ms(since)))
                    .add(
                        sea_orm::Condition::all()
                            .add(idempotency::Column::State.eq("pending"))
                            .add(idempotency::Column::CreatedAt.lt(ms(stale))),
                    ),
            )
            .exec(&self.db)
            .await?;
        let res = idempotency::Entity::insert(idempotency::ActiveModel {
            id: Set(id.to_string()),
            fingerprint: Set(None),
            state: Set("pending".into()),
            status: Set(None),
            location: Set(None),
            content_type: Set(None),
            body: Set(None),
            created_at: Set(ms(Utc::now())),
        })
        .on_conflict_do_nothing()
        .exec_without_returning(&self.db)
        .await?;
        if let sea_orm::TryInsertResult::Inserted(n) = res {
            if n == 1 {
                return Ok(Reservation::Mine);
            }
        }
        let Some(row) = idempotency::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
        else {
            // Removed between the two statements: try once more.
            return Box::pin(self.idem_reserve(id, since, stale)).await;
        };
        Ok(match (row.state.as_str(), row.fingerprint, row.status) {
            ("done", Some(fingerprint), Some(status)) => Reservation::Done(KeptAnswer {
                fingerprint,
                status: status as u16,
                location: row.location,
                content_type: row.content_type,
                body: row.body.unwrap_or_default(),
            }),
            _ => Reservation::Pending,
        })
    }

    /// Renew the lease of the pending reservation `id` (its `created_at` is the last renewal).
    pub async fn idem_renew(&self, id: &str) -> Result<()> {
        idempotency::Entity::update_many()
            .set(idempotency::ActiveModel {
                created_at: Set(ms(Utc::now())),
                ..Default::default()
            })
            .filter(idempotency::Column::Id.eq(id))
            .filter(idempotency::Column::State.eq("pending"))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Keep the first answer of key `id`.
    pub async fn idem_complete(&self, id: &str, answer: &KeptAnswer) -> Result<()> {
        idempotency::Entity::update_many()
            .set(idempotency::ActiveModel {
                fingerprint: Set(Some(answer.fingerprint.clone())),
                state: Set("done".into()),
                status: Set(Some(answer.status as i32)),
                location: Set(answer.location.clone()),
                content_type: Set(answer.content_type.clone()),
                body: Set(Some(answer.body.clone())),
                ..Default::default()
            })
            .filter(idempotency::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Give key `id` up (its request failed, so a corrected retry may use it).
    pub async fn idem_release(&self, id: &str) -> Result<()> {
        idempotency::Entity::delete_by_id(id.to_string())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Forget keys older than `before`.
    pub async fn idem_purge(&self, before: DateTime<Utc>) -> Result<u64> {
        Ok(idempotency::Entity::delete_many()
            .filter(idempotency::Column::CreatedAt.lt(ms(before)))
            .exec(&self.db)
            .await?
            .rows_affected)
    }
}
