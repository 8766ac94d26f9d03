//! The outbox of deliveries: written with the end state of their job, claimed one try at a time
//! under a short lease with a fresh token, and marked delivered, rescheduled or given up only by
//! the claim that still holds that token (so several instances never send the same try twice,
//! and a sender that lost its lease cannot overwrite the outcome of the one that took over).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::entities::{deliveries, job_files};
use super::{ms, parse_id, to_file, Result, Store, StoreError};
use crate::domain::signals::{deliveries_for, Delivery, DeliveryKind};
use crate::domain::Job;

const PENDING: &str = "pending";
const DELIVERED: &str = "delivered";
const GAVE_UP: &str = "gave_up";

/// Write the deliveries `job` asked for, now that it has reached an end state (inside the
/// transaction that wrote that state). Returns how many were written.
pub(super) async fn enqueue(db: &impl ConnectionTrait, job: &Job) -> Result<usize> {
    if job.options.callback.is_none() && job.options.notification.is_none() {
        return Ok(0);
    }
    let files = job_files::Entity::find()
        .filter(job_files::Column::JobId.eq(job.id.to_string()))
        .filter(job_files::Column::Attempt.eq(job.attempt))
        .order_by_asc(job_files::Column::CreatedAt)
        .order_by_asc(job_files::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(to_file)
        .collect::<Result<Vec<_>>>()?;
    let base = job.options.base_url.clone().unwrap_or_default();
    let list = deliveries_for(job, &files, &base);
    let now = ms(Utc::now());
    for d in &list {
        deliveries::Entity::insert(deliveries::ActiveModel {
            id: Set(d.id.clone()),
            job_id: Set(d.job_id.to_string()),
            kind: Set(d.kind.as_str().to_string()),
            url: Set(d.url.clone()),
            content_type: Set(d.content_type.clone()),
            body: Set(d.body.clone()),
            state: Set(PENDING.into()),
            attempts: Set(0),
            next_at: Set(now),
            lease_until: Set(None),
            created_at: Set(now),
            last_outcome: Set(None),
            lease_token: Set(None),
        })
        .exec_without_returning(db)
        .await?;
    }
    Ok(list.len())
}

fn lease_ms(lease: std::time::Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2)
}

fn to_delivery(m: deliveries::Model) -> Result<Delivery> {
    Ok(Delivery {
        kind: DeliveryKind::parse(&m.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("delivery kind {}", m.kind)))?,
        job_id: parse_id(&m.job_id)?,
        id: m.id,
        url: m.url,
        content_type: m.content_type,
        body: m.body,
        attempts: m.attempts,
    })
}

/// The state of one delivery, as the audit sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryState {
    pub delivery: Delivery,
    pub state: String,
    pub next_at: DateTime<Utc>,
    pub last_outcome: Option<String>,
}

impl Store {
    /// Claim up to `limit` due deliveries, each for `lease` from now by the database's clock and
    /// under a fresh token; returns them with their tokens. A claim is a conditional update, so
    /// of several senders exactly one wins each delivery. The lease ends no earlier than `lease`
    /// after this call started, which is what the sender counts on.
    pub async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: u64,
    ) -> Result<Vec<(Delivery, String)>> {
        // Leases are written and compared on the database's clock, the one every instance shares,
        // so an instance whose own clock runs ahead cannot take over a lease that is still held.
        // (Due times, `next_at`, stay on the nodes' clocks: early or late there only moves a
        // try, it never doubles one.)
        let clock = self.driver.now_ms();
        let free = || {
            Condition::any()
                .add(deliveries::Column::LeaseUntil.is_null())
                .add(Expr::col(deliveries::Column::LeaseUntil).lt(Expr::cust(clock)))
        };
        let due = deliveries::Entity::find()
            .filter(deliveries::Column::State.eq(PENDING))
            .filter(deliveries::Column::NextAt.lte(ms(now)))
            .filter(free())
            .order_by_asc(deliveries::Column::NextAt)
            // More than wanted: another sender reading at the same moment wins some of them.
            .limit(limit.saturating_mul(4))
            .all(&self.db)
            .await?;
        let until = format!("{clock} + {}", lease_ms(lease));
        let mut out = Vec::new();
        for d in due {
            if out.len() as u64 >= limit {
                break;
            }
            let token = Uuid::now_v7().to_string();
            let _turn = self.writing().await;
            // Still as it was read: a sender that recorded a try in between has changed the
            // attempts, the due time or the state, and this claim loses.
            let res = deliveries::Entity::update_many()
                .col_expr(deliveries::Column::LeaseUntil, Expr::cust(until.clone()))
                .col_expr(deliveries::Column::LeaseToken, Expr::value(token.clone()))
                .filter(deliveries::Column::Id.eq(d.id.clone()))
                .filter(deliveries::Column::State.eq(PENDING))
                .filter(deliveries::Column::Attempts.eq(d.attempts))
                .filter(deliveries::Column::NextAt.lte(ms(now)))
                .filter(free())
                .exec(&self.db)
                .await?;
            if res.rows_affected == 1 {
                out.push((to_delivery(d)?, token));
            }
        }
        Ok(out)
    }

    /// Extend the lease of the claim `token` on delivery `id` to `lease` from now (by the
    /// database's clock). False when the claim no longer holds it: another sender has claimed
    /// the delivery since, or its outcome is recorded.
    pub async fn renew_delivery(
        &self,
        id: &str,
        token: &str,
        lease: std::time::Duration,
    ) -> Result<bool> {
        let until = format!("{} + {}", self.driver.now_ms(), lease_ms(lease));
        let _turn = self.writing().await;
        let res = deliveries::Entity::update_many()
            .col_expr(deliveries::Column::LeaseUntil, Expr::cust(until))
            .filter(deliveries::Column::Id.eq(id))
            .filter(deliveries::Column::LeaseToken.eq(token))
            .filter(deliveries::Column::State.eq(PENDING))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// Record a try made under the claim `token`: delivered, to be tried again at `retry_at`,
    /// or (neither) given up. Only while the claim still holds the delivery (no other sender has
    /// claimed it since); returns whether the outcome was recorded.
    pub async fn delivery_tried(
        &self,
        id: &str,
        token: &str,
        attempts: i32,
        delivered: bool,
        retry_at: Option<DateTime<Utc>>,
        outcome: &str,
    ) -> Result<bool> {
        let (state, next) = match (delivered, retry_at) {
            (true, _) => (DELIVERED, None),
            (false, Some(at)) => (PENDING, Some(ms(at))),
            (false, None) => (GAVE_UP, None),
        };
        let mut q = deliveries::Entity::update_many()
            .col_expr(deliveries::Column::State, Expr::value(state))
            .col_expr(deliveries::Column::Attempts, Expr::value(attempts))
            .col_expr(
                deliveries::Column::LeaseUntil,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(
                deliveries::Column::LeaseToken,
                Expr::value(Option::<String>::None),
            )
            .col_expr(deliveries::Column::LastOutcome, Expr::value(outcome));
        if let Some(n) = next {
            q = q.col_expr(deliveries::Column::NextAt, Expr::value(n));
        }
        let _turn = self.writing().await;
        let res = q
            .filter(deliveries::Column::Id.eq(id))
            .filter(deliveries::Column::LeaseToken.eq(token))
            .filter(deliveries::Column::State.eq(PENDING))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// A job's deliveries, oldest first.
    pub async fn deliveries(&self, job_id: Uuid) -> Result<Vec<DeliveryState>> {
        deliveries::Entity::find()
            .filter(deliveries::Column::JobId.eq(job_id.to_string()))
            .order_by_asc(deliveries::Column::CreatedAt)
            .order_by_asc(deliveries::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| {
                Ok(DeliveryState {
                    state: m.state.clone(),
                    next_at: super::from_ms(m.next_at),
                    last_outcome: m.last_outcome.clone(),
                    delivery: to_delivery(m)?,
                })
            })
            .collect()
    }

    /// When the earliest pending delivery is due, if any.
    pub async fn next_delivery_at(&self) -> Result<Option<DateTime<Utc>>> {
        let next: Option<i64> = deliveries::Entity::find()
            .select_only()
            .column(deliveries::Column::NextAt)
            .filter(deliveries::Column::State.eq(PENDING))
            .order_by_asc(deliveries::Column::NextAt)
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(next.map(super::from_ms))
    }
}
