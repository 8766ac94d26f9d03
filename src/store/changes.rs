//! In-process change signals: every write of a job through this store bumps its watch, so any
//! number of waiters (long-polls, event streams) of one job share one wake-up instead of each
//! asking the database; and rings one bell for all jobs, which the collection's event streams
//! hear.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch, Notify};
use uuid::Uuid;

/// A job as last read, with its files, shared by readers until it changes.
pub type Snapshot = Arc<(crate::domain::Job, Vec<crate::domain::OutputFile>)>;

const STRIPES: usize = 256;
const MEMO_MAX: usize = 50_000;
/// Rings kept for a slow listener of the bell; one that falls further behind hears `Lagged`
/// and catches up from the database.
const BELL_DEPTH: usize = 4096;

/// What the bell of all jobs says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ring {
    /// Job `id` changed (or was removed).
    Job(Uuid),
    /// Changes may have been missed (another instance's, while the listener reconnected).
    Missed,
}

/// The hub of job watches, a short memo of job reads, plus the outbox doorbell.
pub struct Changes {
    watches: Mutex<HashMap<Uuid, (watch::Sender<u64>, usize)>>,
    /// Recent reads of jobs, dropped on every write of the job (and after a short age, for
    /// writes this process does not hear of).
    memo: Mutex<HashMap<Uuid, (Instant, Snapshot)>>,
    /// Write counters by stripe of job id: a read is kept only if no write of its stripe
    /// happened while it was being made.
    writes: Vec<AtomicU64>,
    /// Rung when deliveries were written.
    pub outbox: Notify,
    /// Rung by every change of every job.
    bell: broadcast::Sender<Ring>,
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            watches: Mutex::default(),
            memo: Mutex::default(),
            writes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            outbox: Notify::new(),
            bell: broadcast::Sender::new(BELL_DEPTH),
        }
    }
}

fn stripe(id: Uuid) -> usize {
    (id.as_u128() as usize) % STRIPES
}

impl Changes {
    /// Signal that job `id` changed: wake its watchers and drop its memo.
    pub fn touch(&self, id: Uuid) {
        self.writes[stripe(id)].fetch_add(1, Ordering::SeqCst);
        self.memo.lock().unwrap().remove(&id);
        if let Some((tx, _)) = self.watches.lock().unwrap().get(&id) {
            tx.send_modify(|v| *v += 1);
        }
        // Nobody listening is not an error.
        let _ = self.bell.send(Ring::Job(id));
    }

    /// Hear every change of every job from now on.
    pub fn bell(&self) -> broadcast::Receiver<Ring> {
        self.bell.subscribe()
    }

    /// Forget every memo (when this process may have missed writes).
    pub fn forget_all(&self) {
        for w in &self.writes {
            w.fetch_add(1, Ordering::SeqCst);
        }
        self.memo.lock().unwrap().clear();
        let _ = self.bell.send(Ring::Missed);
    }

    /// A read of `id` made less than `max_age` ago with no write since.
    pub fn recalled(&self, id: Uuid, max_age: Duration) -> Option<Snapshot> {
        let memo = self.memo.lock().unwrap();
        let (at, snap) = memo.get(&id)?;
        (at.elapsed() < max_age).then(|| snap.clone())
    }

    /// The write mark of every job, to take before reading what many jobs make (the stats):
    /// it differs after any write this process made or heard of since.
    pub fn mark_all(&self) -> u64 {
        self.writes
            .iter()
            .map(|w| w.load(Ordering::SeqCst))
            .fold(0u64, u64::wrapping_add)
    }

    /// The write mark to take before reading `id` from the database.
    pub fn mark(&self, id: Uuid) -> u64 {
        self.writes[stripe(id)].load(Ordering::SeqCst)
    }

    /// Keep a read made after `mark`, unless a write came in between.
    pub fn remember(&self, id: Uuid, mark: u64, snap: Snapshot) {
        let mut memo = self.memo.lock().unwrap();
        if self.writes[stripe(id)].load(Ordering::SeqCst) != mark {
            return;
        }
        if memo.len() >= MEMO_MAX {
            memo.clear();
        }
        memo.insert(id, (Instant::now(), snap));
    }

    /// Start watching a job; the watch ends when the subscription is dropped.
    pub fn subscribe(self: &Arc<Self>, id: Uuid) -> Subscription {
        let mut map = self.watches.lock().unwrap();
        let entry = map.entry(id).or_insert_with(|| (watch::Sender::new(0), 0));
        entry.1 += 1;
        let rx = entry.0.subscribe();
        Subscription {
            hub: self.clone(),
            id,
            rx,
        }
    }

    /// The jobs somebody watches now.
    pub fn watched(&self) -> Vec<Uuid> {
        self.watches.lock().unwrap().keys().copied().collect()
    }
}

/// One waiter's handle on a job's changes.
pub struct Subscription {
    hub: Arc<Changes>,
    id: Uuid,
    rx: watch::Receiver<u64>,
}

impl Subscription {
    /// Wait for the next change after the last one seen.
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut map = self.hub.watches.lock().unwrap();
        if let Some(e) = map.get_mut(&self.id) {
            e.1 -= 1;
            if e.1 == 0 {
                map.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_touch_wakes_every_waiter_once() {
        let hub = Arc::new(Changes::default());
        let id = Uuid::now_v7();
        let mut subs: Vec<_> = (0..50).map(|_| hub.subscribe(id)).collect();
        hub.touch(id);
        for s in &mut subs {
            tokio::time::timeout(std::time::Duration::from_millis(100), s.changed())
                .await
                .expect("woken");
        }
        // No second wake without a second touch.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(30), subs[0].changed())
                .await
                .is_err()
        );
        assert_eq!(hub.watched(), vec![id]);
        drop(subs);
        assert!(hub.watched().is_empty());
    }
}
