//! The outbox with two instances on one database: a delivery is sent only while its sender holds
//! its lease, so a slow receiver never gets one twice; and the outcome of a try is recorded only
//! under the lease token of the claim that made it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::crash::free_port;
use crate::helpers::*;

/// Time limit of one try in the two-instance tests.
const TIMEOUT: &str = "6s";

/// How long the slow receiver takes to answer: inside one try's time limit with 1.2 s to spare
/// (a try that runs out is rightly tried again, which a busy machine must not cause), but four
/// of them in a row outlast three time limits (a batch of 32 sent 8 at a time under one lease of
/// three time limits would run out before its last 8 tries had ended, unless renewed).
const ANSWER_AFTER: Duration = Duration::from_millis(4800);

/// A webhook receiver on a loopback port that answers 200 after `ANSWER_AFTER` and counts the
/// requests of each `webhook-id`.
struct SlowReceiver {
    base: String,
    seen: Arc<Mutex<HashMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SlowReceiver {
    async fn start() -> SlowReceiver {
        use poem::{handler, web::Data, EndpointExt, Request, Route};
        type Seen = Arc<Mutex<HashMap<String, usize>>>;
        #[handler]
        async fn hook(req: &Request, Data(seen): Data<&Seen>) -> poem::http::StatusCode {
            let id = req
                .headers()
                .get("webhook-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            *seen.lock().unwrap().entry(id).or_default() += 1;
            tokio::time::sleep(ANSWER_AFTER).await;
            poem::http::StatusCode::OK
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Seen::default();
        let app = Route::new().at("/*path", hook).data(seen.clone());
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
        let task = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
        SlowReceiver { base, seen, task }
    }

    fn requests(&self) -> usize {
        self.seen.lock().unwrap().values().sum()
    }
}

impl Drop for SlowReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn delivery_args(a: &mut longrun::config::ServeArgs) {
    a.callback_allow_private = Some(true);
    a.webhook_secret = Some(TEST_SECRET.into());
    a.delivery_retries = Some("100ms,200ms,300ms".into());
    a.delivery_timeout = Some(TIMEOUT.into());
}

/// One instance on `database` (of `backend`) and the shared object store `store`.
async fn instance(backend: &'static str, database: &str, store: &str) -> TestApp {
    let (database, store) = (database.to_string(), store.to_string());
    TestApp::spawn_with(backend, 2, move |a| {
        delivery_args(a);
        a.database_url = Some(database);
        a.store_url = Some(store);
    })
    .await
}

/// Submit a short job whose callback goes to `hook`; returns its Location.
async fn with_callback(app: &TestApp, hook: &str) -> String {
    let r = app
        .post_json(
            "/api/v1/jobs",
            &json!({"operation": "sleepy", "input": {"ms": 1, "steps": 1},
                    "async": {"callback": hook}}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    location(&r)
}

/// 33 callbacks to a receiver that takes 4.8 s per answer, with a 6 s time limit per try, sent
/// by two instances on one database. The first delivery is being answered while 32 more come
/// due, and only then the second instance starts: a sender that took all that was due under one
/// lease would still be sending some of it when the lease ran out, while the other instance,
/// idle, claimed those again. Every webhook-id reaches the receiver exactly once, every delivery
/// ends `delivered`, both instances together count 33, and every job logs one delivery try.
async fn each_delivery_is_sent_once_by_two_instances(
    backend: &'static str,
    database: String,
    dir: &std::path::Path,
) {
    let store = format!("file://{}/objects", dir.display());
    let rx = SlowReceiver::start().await;
    let a = instance(backend, &database, &store).await;
    let mut jobs = vec![with_callback(&a, &format!("{}/cb/0", rx.base)).await];
    a.wait_end(&jobs[0]).await;
    for _ in 0..200 {
        if rx.requests() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(rx.requests(), 1, "the first delivery is being answered");
    for i in 1..=32 {
        jobs.push(with_callback(&a, &format!("{}/cb/{i}", rx.base)).await);
    }
    for j in &jobs {
        a.wait_end(j).await;
    }
    let b = instance(backend, &database, &store).await;

    // Until every delivery has ended (or a minute has passed).
    let ids: Vec<uuid::Uuid> = jobs
        .iter()
        .map(|l| l.rsplit('/').next().unwrap().parse().unwrap())
        .collect();
    let mut states = Vec::new();
    for _ in 0..600 {
        states.clear();
        for id in &ids {
            states.extend(a.engine.store().deliveries(*id).await.unwrap());
        }
        if states.len() == ids.len() && states.iter().all(|s| s.state != "pending") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A second send of a delivery would reach the receiver at once; let any stray one arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let seen = rx.seen.lock().unwrap().clone();
    let mut twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    twice.sort();
    eprintln!(
        "{} requests for {} webhook-ids; received more than once: {twice:?}",
        seen.values().sum::<usize>(),
        seen.len()
    );
    assert!(twice.is_empty(), "received more than once: {twice:?}");
    assert_eq!(states.len(), 33, "one callback per job");
    for s in &states {
        assert_eq!(s.state, "delivered", "{s:?}");
        assert_eq!(
            seen.get(&s.delivery.id),
            Some(&1),
            "webhook-id {}",
            s.delivery.id
        );
    }
    assert_eq!(seen.len(), 33, "{seen:?}");
    // Counted once each, across both instances.
    let delivered = |app: &TestApp| {
        app.engine
            .delivery_metrics()
            .delivered
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(delivered(&a) + delivered(&b), 33);
    for j in &jobs {
        let lines = a.wait_messages(j, "delivery", 1).await;
        assert_eq!(lines.len(), 1, "{j}: {lines:?}");
        assert!(
            lines[0]["text"].as_str().unwrap().contains("HTTP 200"),
            "{lines:?}"
        );
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn each_delivery_is_sent_once_by_two_instances_on_postgres() {
    if !postgres_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    each_delivery_is_sent_once_by_two_instances("postgres", fresh_postgres().await, dir.path())
        .await;
}

#[tokio::test]
async fn each_delivery_is_sent_once_by_two_instances_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
    each_delivery_is_sent_once_by_two_instances("sqlite", database, dir.path()).await;
}

/// A claim whose lease ran out and was claimed again cannot renew it or record an outcome:
/// nothing changes. The claim that holds it records once.
async fn a_stale_lease_token_changes_nothing(backend: &'static str) {
    use chrono::Utc;
    // The receiver is down: the first try fails and the next is an hour away.
    let hook = format!("http://127.0.0.1:{}/cb", free_port());
    let app = TestApp::spawn_with(backend, 1, |a| {
        delivery_args(a);
        a.delivery_retries = Some("1h".into());
    })
    .await;
    let loc = with_callback(&app, &hook).await;
    app.wait_end(&loc).await;
    assert_eq!(app.wait_messages(&loc, "delivery", 1).await.len(), 1);
    let job: uuid::Uuid = loc.rsplit('/').next().unwrap().parse().unwrap();
    let store = app.engine.store();
    let before = store.deliveries(job).await.unwrap().remove(0);
    assert_eq!(before.state, "pending");
    assert_eq!(before.delivery.attempts, 1);

    // Claimed (as if two hours later) under a lease that runs out at once, then claimed again.
    let later = Utc::now() + chrono::Duration::hours(2);
    let stale = store
        .claim_deliveries(later, Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(stale.len(), 1);
    let (d, stale) = stale.into_iter().next().unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let held = store
        .claim_deliveries(later, Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(held.len(), 1, "the lease ran out: claimed again");
    let held = held.into_iter().next().unwrap().1;
    assert_ne!(stale, held, "each claim has its own token");
    assert!(
        store
            .claim_deliveries(later, Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty(),
        "a held lease is not claimed"
    );

    let recorded = store
        .delivery_tried(
            &d.id,
            &stale,
            2,
            true,
            None,
            &longrun::domain::signals::Tried::http(200),
            std::time::Duration::from_secs(3600),
        )
        .await
        .unwrap();
    assert!(recorded.is_none(), "a stale token records nothing");
    assert!(!store
        .renew_delivery(&d.id, &stale, Duration::from_secs(60))
        .await
        .unwrap());
    assert_eq!(store.deliveries(job).await.unwrap(), vec![before.clone()]);
    assert!(store
        .renew_delivery(&d.id, &held, Duration::from_secs(60))
        .await
        .unwrap());

    assert!(store
        .delivery_tried(
            &d.id,
            &held,
            2,
            true,
            None,
            &longrun::domain::signals::Tried::http(200),
            std::time::Duration::from_secs(3600),
        )
        .await
        .unwrap()
        .is_some());
    let after = store.deliveries(job).await.unwrap().remove(0);
    assert_eq!(after.state, "delivered");
    assert_eq!(after.delivery.attempts, 2);
    assert_eq!(after.last_outcome.as_deref(), Some("HTTP 200"));
    // Recorded once: the same token records nothing more.
    assert!(store
        .delivery_tried(
            &d.id,
            &held,
            3,
            false,
            None,
            &longrun::domain::signals::Tried::failed("late"),
            std::time::Duration::from_secs(3600),
        )
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.deliveries(job).await.unwrap(), vec![after]);
    app.stop().await;
}

#[tokio::test]
async fn a_stale_lease_token_changes_nothing_on_postgres() {
    if !postgres_or_skip() {
        return;
    }
    a_stale_lease_token_changes_nothing("postgres").await;
}

#[tokio::test]
async fn a_stale_lease_token_changes_nothing_on_sqlite() {
    a_stale_lease_token_changes_nothing("sqlite").await;
}
