//! The reads behind live streams: jobs in the order of their last change (the collection's event
//! stream), jobs among those a bell named, and a job's messages after a point of its log.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select};
use uuid::Uuid;

use super::entities::{job_messages, jobs};
use super::{condition, from_ms, to_job, with_tombstones, Result, Store};
use crate::domain::{ChangePoint, Job, JobFilter, Level, Message};

/// Every column a job document renders, not the input (a list reads the same few bytes per job
/// whatever was submitted).
pub(super) fn without_input(q: Select<jobs::Entity>) -> Select<jobs::Entity> {
    q.select_only()
        .columns(
            <jobs::Column as sea_orm::Iterable>::iter()
                .filter(|c| !matches!(c, jobs::Column::Input)),
        )
        .column_as(Expr::val("null"), "input")
}

impl Store {
    /// Jobs matching `filter` changed after `from` (exclusive), oldest change first, at most
    /// `limit`; deleted ones (tombstones) only when `tombstones`.
    pub async fn jobs_changed_after(
        &self,
        filter: &JobFilter,
        from: ChangePoint,
        limit: u64,
    ) -> Result<Vec<Job>> {
        let after = Condition::any()
            .add(jobs::Column::UpdatedAt.gt(from.at_ms))
            .add(
                Condition::all()
                    .add(jobs::Column::UpdatedAt.eq(from.at_ms))
                    .add(jobs::Column::Id.gt(from.id.to_string())),
            );
        let rows = without_input(jobs::Entity::find().filter(condition(filter)).filter(after))
            .order_by_asc(jobs::Column::UpdatedAt)
            .order_by_asc(jobs::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        rows.into_iter().map(to_job).collect()
    }

    /// The jobs among `ids` that match `filter`; deleted ones (tombstones) too when `tombstones`.
    pub async fn jobs_among(
        &self,
        filter: &JobFilter,
        ids: &[Uuid],
        tombstones: bool,
    ) -> Result<Vec<Job>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let cond = if tombstones {
            with_tombstones(filter)
        } else {
            condition(filter)
        };
        let rows = without_input(
            jobs::Entity::find()
                .filter(cond)
                .filter(jobs::Column::Id.is_in(ids.iter().map(|i| i.to_string()))),
        )
        .all(&self.db)
        .await?;
        rows.into_iter().map(to_job).collect()
    }

    /// A job's log after `after` (its `seq`), oldest first, at most `limit` lines if given.
    pub async fn messages_after(
        &self,
        job_id: Uuid,
        after: i64,
        limit: Option<u64>,
    ) -> Result<Vec<Message>> {
        let rows = job_messages::Entity::find()
            .filter(job_messages::Column::JobId.eq(job_id.to_string()))
            .filter(job_messages::Column::Seq.gt(after))
            .order_by_asc(job_messages::Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|m| Message {
                seq: m.seq,
                job_id,
                at: from_ms(m.at),
                level: Level::parse(&m.level),
                kind: m.kind,
                text: m.text,
                attempt: m.attempt,
            })
            .collect())
    }
}
