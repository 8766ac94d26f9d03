//! In-process change signals: every write of a job through this store bumps its watch, so any
//! number of waiters (long-polls, event streams) of one job share one wake-up instead of each
//! asking the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Notify};
use uuid::Uuid;

/// The hub of job watches, plus the outbox doorbell.
#[derive(Default)]
pub struct Changes {
    watches: Mutex<HashMap<Uuid, (watch::Sender<u64>, usize)>>,
    /// Rung when deliveries were written.
    pub outbox: Notify,
}

impl Changes {
    /// Signal that job `id` changed (a no-op when nobody watches it).
    pub fn touch(&self, id: Uuid) {
        if let Some((tx, _)) = self.watches.lock().unwrap().get(&id) {
            tx.send_modify(|v| *v += 1);
        }
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
