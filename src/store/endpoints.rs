//! The health of each tenant's endpoints (where its deliveries go): a run of failed tries
//! without a success longer than `LONGRUN_DELIVERY_DISABLE_AFTER` switches one off, and its
//! deliveries are then recorded as `disabled`, not sent, until it is switched on again, which
//! sends what it missed. Every change rides in the transaction that records a try, so an
//! endpoint's state and its deliveries' never disagree.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Func, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use super::entities::{deliveries, endpoints};
use super::outbox::DISABLED;
use super::{from_ms, ms, Result, Store};
use crate::domain::signals::{endpoint_id, endpoint_of};

const ENABLED: &str = "enabled";
const OFF: &str = "disabled";
const PENDING: &str = "pending";

/// One endpoint, as the operator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub id: String,
    pub owner: String,
    /// Scheme, host, port and path.
    pub target: String,
    pub enabled: bool,
    /// When its current run of failures began (none while its last try succeeded).
    pub failing_since: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
}

fn to_endpoint(m: endpoints::Model) -> Endpoint {
    Endpoint {
        enabled: m.state != OFF,
        id: m.id,
        owner: m.owner,
        target: m.target,
        failing_since: m.failing_since.map(from_ms),
        last_success_at: m.last_success_at.map(from_ms),
        last_error_at: m.last_error_at.map(from_ms),
        last_error: m.last_error,
        disabled_at: m.disabled_at.map(from_ms),
    }
}

/// The endpoint of tenant `owner`'s delivery to `url` (made when first seen) and whether it is
/// on. A delivery stored while another transaction switches its endpoint off is tried once: a
/// failure then records it as not sent (`endpoint_tried`), a success switches the endpoint on.
pub(super) async fn endpoint_for(
    db: &impl ConnectionTrait,
    owner: &str,
    url: &str,
) -> Result<(String, bool)> {
    let target = endpoint_of(url);
    let id = endpoint_id(owner, &target);
    endpoints::Entity::insert(endpoints::ActiveModel {
        id: Set(id.clone()),
        owner: Set(owner.to_string()),
        target: Set(target),
        state: Set(ENABLED.into()),
        failing_since: Set(None),
        last_success_at: Set(None),
        last_error_at: Set(None),
        last_error: Set(None),
        disabled_at: Set(None),
    })
    .on_conflict(
        OnConflict::column(endpoints::Column::Id)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    let state: Option<String> = endpoints::Entity::find_by_id(id.clone())
        .select_only()
        .column(endpoints::Column::State)
        .into_tuple()
        .one(db)
        .await?;
    Ok((id, state.as_deref() != Some(OFF)))
}

/// Deliveries sent again at most when an endpoint comes back on by itself (a success).
const RESUME_AT_MOST: u64 = 1_000;

/// Send again, from the start of their schedule, the oldest `limit` deliveries endpoint `id`
/// missed while off; how many.
async fn resume(txn: &impl ConnectionTrait, id: &str, now: i64, limit: u64) -> Result<u64> {
    let missed: Vec<String> = deliveries::Entity::find()
        .select_only()
        .column(deliveries::Column::Id)
        .filter(deliveries::Column::Endpoint.eq(id))
        .filter(deliveries::Column::State.eq(DISABLED))
        .order_by_asc(deliveries::Column::CreatedAt)
        .order_by_asc(deliveries::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(txn)
        .await?;
    if missed.is_empty() {
        return Ok(0);
    }
    // Only those still not sent: one sent again meanwhile keeps its own state.
    let res = deliveries::Entity::update_many()
        .col_expr(deliveries::Column::State, Expr::value(PENDING))
        .col_expr(deliveries::Column::Attempts, Expr::value(0))
        .col_expr(deliveries::Column::NextAt, Expr::value(now))
        .filter(deliveries::Column::Id.is_in(missed))
        .filter(deliveries::Column::State.eq(DISABLED))
        .exec(txn)
        .await?;
    Ok(res.rows_affected)
}

/// Count a recorded try of delivery `delivery` against its endpoint, at `now`: a success puts
/// the endpoint (back) on; a failure starts or extends its run of failures and, once that run
/// is `disable_after_ms` long, switches it off. While it is off, its deliveries waiting for a
/// try (this one among them) are recorded as not sent. True when this try switched it off.
#[allow(clippy::too_many_arguments)]
pub(super) async fn endpoint_tried(
    txn: &impl ConnectionTrait,
    delivery: &str,
    ok: bool,
    outcome: &str,
    now: i64,
    disable_after_ms: i64,
    clock: &str,
) -> Result<bool> {
    let endpoint: Option<Option<String>> = deliveries::Entity::find_by_id(delivery.to_string())
        .select_only()
        .column(deliveries::Column::Endpoint)
        .into_tuple()
        .one(txn)
        .await?;
    let Some(Some(id)) = endpoint else {
        // A delivery made before endpoints were kept.
        return Ok(false);
    };
    if ok {
        // A success (a redelivery, or a try under way when it was switched off) puts it back
        // on, and with it what it missed meanwhile, as switching it on does.
        let was_off = endpoints::Entity::find_by_id(id.clone())
            .one(txn)
            .await?
            .is_some_and(|e| e.state == OFF);
        endpoints::Entity::update_many()
            .col_expr(endpoints::Column::State, Expr::value(ENABLED))
            .col_expr(
                endpoints::Column::FailingSince,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(endpoints::Column::LastSuccessAt, Expr::value(now))
            .col_expr(
                endpoints::Column::DisabledAt,
                Expr::value(Option::<i64>::None),
            )
            .filter(endpoints::Column::Id.eq(id.clone()))
            .exec(txn)
            .await?;
        if was_off {
            resume(txn, &id, now, RESUME_AT_MOST).await?;
        }
        return Ok(false);
    }
    endpoints::Entity::update_many()
        .col_expr(
            endpoints::Column::FailingSince,
            Expr::expr(Func::coalesce([
                Expr::col(endpoints::Column::FailingSince),
                Expr::value(now),
            ])),
        )
        .col_expr(endpoints::Column::LastErrorAt, Expr::value(now))
        .col_expr(endpoints::Column::LastError, Expr::value(outcome))
        .filter(endpoints::Column::Id.eq(id.clone()))
        .exec(txn)
        .await?;
    let switched = endpoints::Entity::update_many()
        .col_expr(endpoints::Column::State, Expr::value(OFF))
        .col_expr(endpoints::Column::DisabledAt, Expr::value(now))
        .filter(endpoints::Column::Id.eq(id.clone()))
        .filter(endpoints::Column::State.eq(ENABLED))
        .filter(endpoints::Column::FailingSince.lte(now - disable_after_ms))
        .exec(txn)
        .await?
        .rows_affected
        == 1;
    let off = switched
        || endpoints::Entity::find_by_id(id.clone())
            .one(txn)
            .await?
            .is_some_and(|e| e.state == OFF);
    if off {
        // Those no sender holds now; a try under way is recorded by its sender, here again.
        deliveries::Entity::update_many()
            .col_expr(deliveries::Column::State, Expr::value(DISABLED))
            .filter(deliveries::Column::Endpoint.eq(id))
            .filter(deliveries::Column::State.eq(PENDING))
            .filter(
                Condition::any()
                    .add(deliveries::Column::LeaseUntil.is_null())
                    .add(
                        Expr::col(deliveries::Column::LeaseUntil).lt(Expr::cust(clock.to_string())),
                    )
                    .add(deliveries::Column::Id.eq(delivery)),
            )
            .exec(txn)
            .await?;
    }
    Ok(switched)
}

impl Store {
    /// The endpoints of tenant `owner` (or of every tenant), by target.
    pub async fn endpoints(&self, owner: Option<&str>) -> Result<Vec<Endpoint>> {
        let mut q = endpoints::Entity::find();
        if let Some(o) = owner {
            q = q.filter(endpoints::Column::Owner.eq(o));
        }
        Ok(q.order_by_asc(endpoints::Column::Owner)
            .order_by_asc(endpoints::Column::Target)
            .all(&self.db)
            .await?
            .into_iter()
            .map(to_endpoint)
            .collect())
    }

    /// One endpoint.
    pub async fn endpoint(&self, id: &str) -> Result<Option<Endpoint>> {
        Ok(endpoints::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .map(to_endpoint))
    }

    /// Switch endpoint `id` on and send again, from the start of their schedule, the
    /// deliveries it missed while off: the oldest `limit` of them. Returns how many.
    pub async fn enable_endpoint(&self, id: &str, now: DateTime<Utc>, limit: u64) -> Result<u64> {
        let _turn = self.writing().await;
        let txn = self.db.begin().await?;
        endpoints::Entity::update_many()
            .col_expr(endpoints::Column::State, Expr::value(ENABLED))
            .col_expr(
                endpoints::Column::FailingSince,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(
                endpoints::Column::DisabledAt,
                Expr::value(Option::<i64>::None),
            )
            .filter(endpoints::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        let n = resume(&txn, id, ms(now), limit).await?;
        txn.commit().await?;
        if n > 0 {
            self.changes().outbox.notify_one();
        }
        Ok(n)
    }
}
