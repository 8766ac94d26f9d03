//! The outbox of deliveries: written with the end state of their job, claimed one try at a time
//! under a short lease with a fresh token, and marked delivered, rescheduled or given up only by
//! the claim that still holds that token (so several instances never send the same try twice,
//! and a sender that lost its lease cannot overwrite the outcome of the one that took over).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::entities::{deliveries, delivery_attempts, job_files, jobs};
use super::{ms, parse_id, to_file, Result, Store, StoreError};
use crate::domain::access::OPEN_TENANT;
use crate::domain::signals::{
    deliveries_for, Attempt, Delivery, DeliveryKind, DeliveryStatus, Tried,
};
use crate::domain::Job;

const PENDING: &str = "pending";
const DELIVERED: &str = "delivered";
const GAVE_UP: &str = "gave_up";
/// Not sent: its endpoint is switched off (`store/endpoints.rs`).
pub(super) const DISABLED: &str = "disabled";

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
    let owner = job.owner.as_deref().unwrap_or(OPEN_TENANT);
    for d in &list {
        // Sent only while its endpoint is on; else recorded as not sent.
        let endpoint = super::endpoints::endpoint_for(db, owner, &d.url).await?;
        let state = if endpoint.1 { PENDING } else { DISABLED };
        deliveries::Entity::insert(deliveries::ActiveModel {
            id: Set(d.id.clone()),
            job_id: Set(d.job_id.to_string()),
            kind: Set(d.kind.as_str().to_string()),
            url: Set(d.url.clone()),
            content_type: Set(d.content_type.clone()),
            body: Set(d.body.clone()),
            state: Set(state.into()),
            attempts: Set(0),
            next_at: Set(now),
            lease_until: Set(None),
            created_at: Set(now),
            last_outcome: Set(None),
            lease_token: Set(None),
            endpoint: Set(Some(endpoint.0)),
        })
        .exec_without_returning(db)
        .await?;
    }
    Ok(list.len())
}

pub(super) fn lease_ms(lease: std::time::Duration) -> i64 {
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
    /// As stored: pending, delivered or gave_up.
    pub state: String,
    /// As the API shows it.
    pub status: DeliveryStatus,
    pub next_at: DateTime<Utc>,
    pub created: DateTime<Utc>,
    pub last_outcome: Option<String>,
    /// Every try recorded, oldest first.
    pub tries: Vec<Attempt>,
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
    /// or (neither) given up; with its line in the delivery's log and its endpoint's health
    /// (`disable_after` of failures without a success switch the endpoint off), in the same
    /// transaction. Only while the claim still holds the delivery (no other sender has claimed
    /// it since): `None` when not recorded, else whether this try switched its endpoint off.
    #[allow(clippy::too_many_arguments)]
    pub async fn delivery_tried(
        &self,
        id: &str,
        token: &str,
        attempts: i32,
        delivered: bool,
        retry_at: Option<DateTime<Utc>>,
        tried: &Tried,
        disable_after: std::time::Duration,
    ) -> Result<Option<bool>> {
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
            .col_expr(
                deliveries::Column::LastOutcome,
                Expr::value(tried.outcome.clone()),
            );
        if let Some(n) = next {
            q = q.col_expr(deliveries::Column::NextAt, Expr::value(n));
        }
        let _turn = self.writing().await;
        let txn = self.db.begin().await?;
        let res = q
            .filter(deliveries::Column::Id.eq(id))
            .filter(deliveries::Column::LeaseToken.eq(token))
            .filter(deliveries::Column::State.eq(PENDING))
            .exec(&txn)
            .await?;
        if res.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(None);
        }
        // A try the receiver answered is logged by its status; its words are the error only
        // when they say more (a 410 that ended the tries), or when nothing answered.
        let error = match tried.status {
            Some(s) if tried.outcome == format!("HTTP {s}") => None,
            _ => Some(tried.outcome.clone()),
        };
        delivery_attempts::Entity::insert(delivery_attempts::ActiveModel {
            delivery_id: Set(id.to_string()),
            at: Set(ms(tried.at)),
            status: Set(tried.status.map(i32::from)),
            error: Set(error),
            duration_ms: Set(tried.duration_ms),
            next_at: Set(next),
            ..Default::default()
        })
        .exec_without_returning(&txn)
        .await?;
        let switched_off = super::endpoints::endpoint_tried(
            &txn,
            id,
            delivered,
            &tried.outcome,
            ms(tried.at),
            lease_ms(disable_after),
            self.driver.now_ms(),
        )
        .await?;
        txn.commit().await?;
        Ok(Some(switched_off))
    }

    /// A job's deliveries with their logs, oldest first.
    pub async fn deliveries(&self, job_id: Uuid) -> Result<Vec<DeliveryState>> {
        let rows = deliveries::Entity::find()
            .filter(deliveries::Column::JobId.eq(job_id.to_string()))
            .order_by_asc(deliveries::Column::CreatedAt)
            .order_by_asc(deliveries::Column::Id)
            .all(&self.db)
            .await?;
        self.with_logs(rows).await
    }

    /// One delivery with its log, if it exists.
    pub async fn delivery(&self, id: &str) -> Result<Option<DeliveryState>> {
        let Some(row) = deliveries::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        Ok(self.with_logs(vec![row]).await?.pop())
    }

    /// Deliveries of every job (or of one `owner`'s jobs) in `state`, newest first, from
    /// before the delivery `before` (a page's last), at most `limit`.
    pub async fn deliveries_in(
        &self,
        state: Option<DeliveryStatus>,
        owner: Option<&str>,
        before: Option<&str>,
        limit: u64,
    ) -> Result<Vec<DeliveryState>> {
        let mut q = deliveries::Entity::find();
        if let Some(st) = state {
            q = match st {
                DeliveryStatus::Pending => q
                    .filter(deliveries::Column::State.eq(PENDING))
                    .filter(deliveries::Column::Attempts.eq(0)),
                DeliveryStatus::Retrying => q
                    .filter(deliveries::Column::State.eq(PENDING))
                    .filter(deliveries::Column::Attempts.gt(0)),
                DeliveryStatus::Delivered => q.filter(deliveries::Column::State.eq(DELIVERED)),
                DeliveryStatus::GivenUp => q.filter(deliveries::Column::State.eq(GAVE_UP)),
                DeliveryStatus::Disabled => q.filter(deliveries::Column::State.eq(DISABLED)),
            };
        }
        if let Some(o) = owner {
            // Jobs stored without a tenant are the open tenant's.
            let mine = if o == OPEN_TENANT {
                Condition::any()
                    .add(Expr::col(jobs::Column::Owner).eq(o))
                    .add(Expr::col(jobs::Column::Owner).is_null())
            } else {
                Condition::all().add(Expr::col(jobs::Column::Owner).eq(o))
            };
            q = q.filter(
                deliveries::Column::JobId.in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(jobs::Column::Id)
                        .from(jobs::Entity)
                        .cond_where(mine)
                        .to_owned(),
                ),
            );
        }
        if let Some(b) = before {
            q = q.filter(deliveries::Column::Id.lt(b));
        }
        let rows = q
            .order_by_desc(deliveries::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        self.with_logs(rows).await
    }

    /// Deliveries with the tries of each, in the order given.
    async fn with_logs(&self, rows: Vec<deliveries::Model>) -> Result<Vec<DeliveryState>> {
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut logs: std::collections::HashMap<String, Vec<Attempt>> = Default::default();
        if !ids.is_empty() {
            for a in delivery_attempts::Entity::find()
                .filter(delivery_attempts::Column::DeliveryId.is_in(ids))
                .order_by_asc(delivery_attempts::Column::Id)
                .all(&self.db)
                .await?
            {
                logs.entry(a.delivery_id.clone())
                    .or_default()
                    .push(Attempt {
                        at: super::from_ms(a.at),
                        status: a.status.and_then(|s| u16::try_from(s).ok()),
                        error: a.error,
                        duration_ms: a.duration_ms,
                        next_at: a.next_at.map(super::from_ms),
                    });
            }
        }
        rows.into_iter()
            .map(|m| {
                let status = match m.state.as_str() {
                    DELIVERED => DeliveryStatus::Delivered,
                    GAVE_UP => DeliveryStatus::GivenUp,
                    DISABLED => DeliveryStatus::Disabled,
                    _ if m.attempts > 0 => DeliveryStatus::Retrying,
                    _ => DeliveryStatus::Pending,
                };
                Ok(DeliveryState {
                    state: m.state.clone(),
                    status,
                    next_at: super::from_ms(m.next_at),
                    created: super::from_ms(m.created_at),
                    last_outcome: m.last_outcome.clone(),
                    tries: logs.remove(&m.id).unwrap_or_default(),
                    delivery: to_delivery(m)?,
                })
            })
            .collect()
    }

    /// Send delivery `id` again as soon as a sender is free: the same `webhook-id`, a new
    /// timestamp and signature, and the retry schedule from its start. Refused (`false`) while
    /// a try of it is under way.
    pub async fn redeliver(&self, id: &str, now: DateTime<Utc>) -> Result<bool> {
        let clock = self.driver.now_ms();
        let _turn = self.writing().await;
        let res = deliveries::Entity::update_many()
            .col_expr(deliveries::Column::State, Expr::value(PENDING))
            .col_expr(deliveries::Column::Attempts, Expr::value(0))
            .col_expr(deliveries::Column::NextAt, Expr::value(ms(now)))
            .col_expr(
                deliveries::Column::LeaseToken,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                deliveries::Column::LeaseUntil,
                Expr::value(Option::<i64>::None),
            )
            .filter(deliveries::Column::Id.eq(id))
            .filter(
                Condition::any()
                    .add(deliveries::Column::LeaseUntil.is_null())
                    .add(Expr::col(deliveries::Column::LeaseUntil).lt(Expr::cust(clock))),
            )
            .exec(&self.db)
            .await?;
        if res.rows_affected == 1 {
            self.changes().outbox.notify_one();
        }
        Ok(res.rows_affected == 1)
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
