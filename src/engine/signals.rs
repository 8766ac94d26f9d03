//! Completion signals, the moving part: the sender that drains the outbox (signed, retried,
//! logged on the job), waiting for a job to change, and the poller that notices changes made by
//! other instances.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::{Engine, Result};
use crate::domain::signals::{retry_delay, signatures, Delivery, Tried, DEFAULT_SCHEDULE};
use crate::domain::{Job, Level, OutputFile};

/// How deliveries are sent.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// The HMAC keys (decoded `whsec_…` secrets), the current one first; a delivery carries a
    /// signature by each.
    pub keys: Vec<Vec<u8>>,
    /// Loopback and private addresses may receive deliveries.
    pub allow_private: bool,
    /// Waits before the 2nd, 3rd, … try; after the last, the delivery is given up.
    pub schedule: Vec<Duration>,
    /// Time limit of one try.
    pub timeout: Duration,
    /// How long an endpoint's tries may fail without a success before it is switched off.
    pub disable_after: Duration,
    /// How often the outbox is looked at when nobody rings.
    pub poll: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            keys: Vec::new(),
            allow_private: false,
            schedule: DEFAULT_SCHEDULE.to_vec(),
            timeout: Duration::from_secs(10),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            poll: Duration::from_secs(1),
        }
    }
}

/// Counters of the delivery sender (served on `/metrics`).
#[derive(Debug, Default)]
pub struct DeliveryMetrics {
    pub delivered: AtomicU64,
    pub failed_tries: AtomicU64,
    pub given_up: AtomicU64,
    pub endpoints_disabled: AtomicU64,
}

/// What one try came to, in words, with the receiver's status when it answered.
enum Outcome {
    Delivered(String, u16),
    Retry(String, Option<u16>),
    Stop(String, Option<u16>),
}

/// Tries in flight at once on one instance.
const SENDING: usize = 8;

/// How much longer than one try a claim's lease runs: the time from the claim to the start of
/// the try, and after the try the time to record its outcome.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// Lease time a try must leave over when it ends, to record its outcome while still holding it.
const RECORD_MARGIN: Duration = Duration::from_secs(2);

impl Engine {
    /// Drain the outbox until shutdown: keep up to 8 tries in flight, claiming a due delivery
    /// (under a lease of one try) whenever a place is free, and record each try.
    pub fn start_deliveries(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let client = crate::net::Outbound::new(
                me.cfg.deliveries.allow_private,
                me.cfg.deliveries.timeout,
            );
            let lease = me.cfg.deliveries.timeout + LEASE_MARGIN;
            // Each try is a task of its own: polled only from this loop, a try holding the
            // write turn of SQLite would stall the next claim, and the claim it. Dropped with
            // this task, they end with it.
            let mut sending = tokio::task::JoinSet::new();
            loop {
                let stopping = me.stop_claiming.is_cancelled();
                if stopping && sending.is_empty() {
                    return;
                }
                if !stopping && sending.len() < SENDING {
                    // Claimed only as many as are sent now, each just before its try, so no
                    // claim waits for a place while its lease runs out.
                    let free = SENDING - sending.len();
                    let started = tokio::time::Instant::now();
                    match me
                        .store
                        .claim_deliveries(Utc::now(), lease, free as u64)
                        .await
                    {
                        Ok(claimed) => {
                            for (d, token) in claimed {
                                let (me, client) = (me.clone(), client.clone());
                                sending.spawn(async move {
                                    me.deliver(&client, d, token, started + lease).await
                                });
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "reading the outbox failed"),
                    }
                }
                let room = !stopping && sending.len() < SENDING;
                let rung = me.store.changes().outbox.notified();
                tokio::select! {
                    Some(_) = sending.join_next(), if !sending.is_empty() => {}
                    _ = rung, if room => {}
                    _ = tokio::time::sleep(me.cfg.deliveries.poll), if room => {}
                    _ = me.stop_claiming.cancelled(), if !stopping => {}
                }
            }
        })
    }

    /// Send one claimed delivery once, all of it inside the claim's lease (held until
    /// `lease_end`), and record the outcome under the claim's `token`.
    async fn deliver(
        &self,
        client: &crate::net::Outbound,
        d: Delivery,
        token: String,
        mut lease_end: tokio::time::Instant,
    ) {
        let timeout = self.cfg.deliveries.timeout;
        let now = tokio::time::Instant::now();
        if lease_end.saturating_duration_since(now) < timeout + RECORD_MARGIN {
            // Too little lease left for a whole try: renew it, or leave the delivery to
            // whoever claims it next.
            let lease = timeout + LEASE_MARGIN;
            match self.store.renew_delivery(&d.id, &token, lease).await {
                Ok(true) => lease_end = now + lease,
                Ok(false) => {
                    tracing::warn!(job_id = %d.job_id, webhook_id = %d.id,
                        "a delivery's lease was lost before its try; not sent here");
                    return;
                }
                Err(e) => {
                    tracing::warn!(job_id = %d.job_id, webhook_id = %d.id, error = %e,
                        "could not renew a delivery's lease; not sent here");
                    return;
                }
            }
        }
        let tries = d.attempts + 1;
        let (at, started) = (Utc::now(), std::time::Instant::now());
        // The client's own time limit ends the try first; this bound holds even if it does not.
        let outcome = tokio::time::timeout_at(lease_end - RECORD_MARGIN, self.try_send(client, &d))
            .await
            .unwrap_or_else(|_| {
                Outcome::Retry("timed out: the try outlived its lease".into(), None)
            });
        let duration_ms = started.elapsed().as_millis() as i64;
        let what = format!(
            "{} {} {} (webhook-id {})",
            d.kind.as_str(),
            d.method(),
            d.url,
            d.id
        );
        let (delivered, retry_at, line, level) = match &outcome {
            Outcome::Delivered(s, _) => (
                true,
                None,
                format!("{what}: {s} (try {tries}, delivered)"),
                Level::Info,
            ),
            Outcome::Retry(s, _) => match retry_delay(
                &self.cfg.deliveries.schedule,
                tries as u32,
                rand::random::<f64>(),
            ) {
                Some(wait) => (
                    false,
                    Some(Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()),
                    format!(
                        "{what}: {s} (try {tries}; next try in {})",
                        humantime::format_duration(Duration::from_millis(wait.as_millis() as u64))
                    ),
                    Level::Warning,
                ),
                None => (
                    false,
                    None,
                    format!("{what}: {s} (try {tries}; gave up: no tries left)"),
                    Level::Warning,
                ),
            },
            Outcome::Stop(s, _) => (
                false,
                None,
                format!("{what}: {s} (try {tries}; gave up)"),
                Level::Warning,
            ),
        };
        let tried = match &outcome {
            Outcome::Delivered(s, status) => (s, Some(*status)),
            Outcome::Retry(s, status) | Outcome::Stop(s, status) => (s, *status),
        };
        let tried = Tried {
            at,
            status: tried.1,
            outcome: tried.0.clone(),
            duration_ms,
        };
        // Counted and logged on the job only once recorded: a try whose lease was lost is
        // made again by the sender that holds the delivery now, which counts and logs it.
        match self
            .store
            .delivery_tried(
                &d.id,
                &token,
                tries,
                delivered,
                retry_at,
                &tried,
                self.cfg.deliveries.disable_after,
            )
            .await
        {
            Ok(Some(false)) => {}
            Ok(Some(true)) => {
                let endpoint = crate::domain::signals::endpoint_of(&d.url);
                let off = format!(
                    "the endpoint {endpoint} has failed for {} without a success and is \
                     switched off (LONGRUN_DELIVERY_DISABLE_AFTER): its deliveries are not sent \
                     until it is switched on again (POST /api/v1/endpoints/{{id}}/enable)",
                    humantime::format_duration(self.cfg.deliveries.disable_after)
                );
                tracing::warn!(job_id = %d.job_id, webhook_id = %d.id, %endpoint, "{off}");
                self.delivery_metrics
                    .endpoints_disabled
                    .fetch_add(1, Ordering::Relaxed);
                let _ = self
                    .store
                    .append_message(d.job_id, Level::Warning, "delivery", &off, 0)
                    .await;
            }
            Ok(None) => {
                tracing::warn!(job_id = %d.job_id, webhook_id = %d.id, %line,
                    "a delivery's lease was lost during its try; the outcome is not recorded");
                return;
            }
            Err(e) => {
                tracing::warn!(job_id = %d.job_id, webhook_id = %d.id, %line, error = %e,
                    "could not record a delivery try");
                return;
            }
        }
        let metrics = &self.delivery_metrics;
        if delivered {
            metrics.delivered.fetch_add(1, Ordering::Relaxed);
        } else {
            metrics.failed_tries.fetch_add(1, Ordering::Relaxed);
            if retry_at.is_none() {
                metrics.given_up.fetch_add(1, Ordering::Relaxed);
            }
        }
        tracing::info!(job_id = %d.job_id, webhook_id = %d.id, %line, "delivery try");
        let _ = self
            .store
            .append_message(d.job_id, level, "delivery", &line, 0)
            .await;
    }

    async fn try_send(&self, client: &crate::net::Outbound, d: &Delivery) -> Outcome {
        let ts = Utc::now().timestamp();
        let signature = signatures(&self.cfg.deliveries.keys, &d.id, ts, d.body.as_bytes());
        let req = match d.method() {
            "GET" => client.request(reqwest::Method::GET, &d.url),
            _ => client
                .request(reqwest::Method::POST, &d.url)
                .map(|r| r.body(d.body.clone())),
        }
        .map_err(|why| Outcome::Stop(format!("refused: {why}"), None));
        let mut req = match req {
            Ok(r) => r,
            Err(stop) => return stop,
        };
        req = req
            .header("webhook-id", &d.id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature);
        if let Some(ct) = &d.content_type {
            req = req.header("content-type", ct);
        }
        match req.send().await {
            Ok(resp) => {
                let s = resp.status();
                let code = s.as_u16();
                let text = format!("HTTP {code}");
                if s.is_success() {
                    Outcome::Delivered(text, code)
                } else if s == reqwest::StatusCode::GONE {
                    Outcome::Stop(
                        format!("{text}: the receiver asked for no more tries"),
                        Some(code),
                    )
                } else {
                    Outcome::Retry(text, Some(code))
                }
            }
            Err(e) => {
                let mut text = crate::net::error_chain(&e);
                if e.is_timeout() {
                    text = format!("timed out: {text}");
                }
                Outcome::Retry(text, None)
            }
        }
    }

    /// A job's deliveries with their logs, oldest first.
    pub async fn job_deliveries(&self, id: uuid::Uuid) -> Result<Vec<crate::store::DeliveryState>> {
        Ok(self.store.deliveries(id).await?)
    }

    /// One delivery with its log.
    pub async fn delivery(&self, id: &str) -> Result<Option<crate::store::DeliveryState>> {
        Ok(self.store.delivery(id).await?)
    }

    /// Deliveries (of one tenant's jobs, or of all) in `state`, newest first, a page at a time.
    pub async fn deliveries_in(
        &self,
        state: Option<crate::domain::signals::DeliveryStatus>,
        owner: Option<&str>,
        before: Option<&str>,
        limit: u64,
    ) -> Result<Vec<crate::store::DeliveryState>> {
        Ok(self
            .store
            .deliveries_in(state, owner, before, limit)
            .await?)
    }

    /// Send delivery `id` again from the start of its schedule; false while a try of it is
    /// under way.
    pub async fn redeliver(&self, id: &str) -> Result<bool> {
        Ok(self.store.redeliver(id, Utc::now()).await?)
    }

    /// The endpoints of tenant `owner` (or of every tenant) with their health.
    pub async fn endpoints(&self, owner: Option<&str>) -> Result<Vec<crate::store::Endpoint>> {
        Ok(self.store.endpoints(owner).await?)
    }

    /// One endpoint.
    pub async fn endpoint(&self, id: &str) -> Result<Option<crate::store::Endpoint>> {
        Ok(self.store.endpoint(id).await?)
    }

    /// Switch endpoint `id` on and send again the oldest `limit` deliveries it missed; how many.
    pub async fn enable_endpoint(&self, id: &str, limit: u64) -> Result<u64> {
        let n = self.store.enable_endpoint(id, Utc::now(), limit).await?;
        tracing::info!(endpoint = %id, redelivered = n, "an endpoint was switched on");
        Ok(n)
    }

    /// The job (with its files) once it differs from `seen` (an ETag) or `wait` has passed;
    /// at once when it already differs or has ended. One wake-up serves every waiter of a job.
    pub async fn wait_change(
        &self,
        id: uuid::Uuid,
        seen: Option<&str>,
        wait: Duration,
    ) -> Result<(Job, Vec<OutputFile>)> {
        let mut sub = self.store.changes().subscribe(id);
        let deadline = tokio::time::Instant::now() + wait;
        let first = self.get_with_files(id).await?;
        let seen = seen.map(str::to_string).unwrap_or_else(|| first.0.etag());
        let mut current = first;
        loop {
            if current.0.etag() != seen || current.0.status.is_end() {
                return Ok(current);
            }
            tokio::select! {
                _ = sub.changed() => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(current),
            }
            current = self.get_with_files(id).await?;
        }
    }

    /// The job once it has ended, or None when `wait` passed first.
    pub async fn wait_end(&self, id: uuid::Uuid, wait: Duration) -> Result<Option<Job>> {
        let mut sub = self.store.changes().subscribe(id);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let job = self.get(id).await?;
            if job.status.is_end() {
                return Ok(Some(job));
            }
            tokio::select! {
                _ = sub.changed() => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(None),
            }
        }
    }

    /// Hear other instances (PostgreSQL): new work wakes an idle worker, a cancel request stops
    /// the job if it runs here, a change wakes the job's waiters.
    pub fn start_listener(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let mut rx = self.store.listen()?;
        let me = self.clone();
        Some(tokio::spawn(async move {
            use crate::store::Signal;
            while let Some(signal) = rx.recv().await {
                match signal {
                    Signal::New(_) => {
                        me.wake.notify_one();
                        me.wake_control.notify_one();
                    }
                    Signal::Cancel(id) => me.stop_local(id),
                    Signal::Changed(id) => me.store.changes().touch(id),
                    Signal::Missed => {
                        me.wake.notify_waiters();
                        me.store.changes().forget_all();
                        for id in me.store.changes().watched() {
                            me.store.changes().touch(id);
                        }
                    }
                }
            }
        }))
    }

    /// Notice writes made by other instances to watched jobs: one query a second for all of them,
    /// only while somebody waits.
    pub fn start_change_poller(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut known = std::collections::HashMap::<uuid::Uuid, i64>::new();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let ids = me.store.changes().watched();
                if ids.is_empty() {
                    known.clear();
                    continue;
                }
                let Ok(versions) = me.store.versions(&ids).await else {
                    continue;
                };
                known.retain(|id, _| ids.contains(id));
                for (id, v) in versions {
                    let before = known.insert(id, v);
                    if before.is_some_and(|b| b != v) {
                        me.store.changes().touch(id);
                    }
                }
            }
        })
    }
}
