//! PostgreSQL's LISTEN/NOTIFY between instances: every job write announces itself on the
//! `longrun` channel (inside its transaction, so only committed changes are heard), and each
//! instance listens, so new work, cancel requests and changes reach every process at once.

use sea_orm::ConnectionTrait;
use uuid::Uuid;

use super::{Result, Store};

/// The channel every instance listens on.
pub(super) const CHANNEL: &str = "longrun";

/// What another instance (or this one) announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A job became QUEUED: wake an idle worker.
    New(Uuid),
    /// A stop was asked of a job: stop it if it runs here.
    Cancel(Uuid),
    /// A job changed: wake its waiters.
    Changed(Uuid),
    /// The connection was lost or (re)made; announcements may have been missed.
    Missed,
}

/// The announcements of one job write.
pub(super) fn payloads(id: Uuid, queued: bool, cancel: bool) -> Vec<String> {
    let mut p = vec![format!("job:{id}")];
    if queued {
        p.push(format!("new:{id}"));
    }
    if cancel {
        p.push(format!("cancel:{id}"));
    }
    p
}

fn parse(payload: &str) -> Option<Signal> {
    let (kind, id) = payload.split_once(':')?;
    let id: Uuid = id.parse().ok()?;
    Some(match kind {
        "new" => Signal::New(id),
        "cancel" => Signal::Cancel(id),
        "job" => Signal::Changed(id),
        _ => return None,
    })
}

impl Store {
    /// Announce `payloads` to other instances (inside `db`'s transaction if it is one), where
    /// the database carries such news; nothing on SQLite, whose single process already knows.
    pub(super) async fn announce(
        &self,
        db: &impl ConnectionTrait,
        payloads: Vec<String>,
    ) -> Result<()> {
        if let Some(stmt) = self.driver.notify(&payloads) {
            db.execute_raw(stmt).await?;
        }
        Ok(())
    }

    /// Listen for other instances' announcements, where the database carries them.
    pub fn listen(&self) -> Option<tokio::sync::mpsc::Receiver<Signal>> {
        self.driver.listen(&self.url)
    }
}

/// PostgreSQL's listener: a channel fed by a task that reconnects by itself and says `Missed`
/// whenever it may have missed something.
pub(super) fn start(url: String) -> tokio::sync::mpsc::Receiver<Signal> {
    let (tx, rx) = tokio::sync::mpsc::channel(4096);
    tokio::spawn(async move {
        use sea_orm::sqlx::postgres::PgListener;
        loop {
            let mut listener = match PgListener::connect(&url).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen(CHANNEL).await {
                tracing::warn!(error = %e, "LISTEN failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            if tx.send(Signal::Missed).await.is_err() {
                return;
            }
            loop {
                // Stop listening (and give the connection back) once nobody hears.
                let next = tokio::select! {
                    n = listener.try_recv() => n,
                    _ = tx.closed() => return,
                };
                let signal = match next {
                    Ok(Some(n)) => match parse(n.payload()) {
                        Some(s) => s,
                        None => continue,
                    },
                    // The connection dropped; the next call reconnects.
                    Ok(None) => Signal::Missed,
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                        break;
                    }
                };
                if tx.send(signal).await.is_err() {
                    return;
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let id = Uuid::now_v7();
        let p = payloads(id, true, true);
        assert_eq!(
            p.iter().map(|s| parse(s).unwrap()).collect::<Vec<_>>(),
            [Signal::Changed(id), Signal::New(id), Signal::Cancel(id)]
        );
        assert_eq!(parse("job:nope"), None);
        assert_eq!(parse("other"), None);
    }
}
