//! The store's promises, one suite run against both databases: each case below is a test of
//! its own on SQLite (`conformance::sqlite::…`) and on PostgreSQL (`conformance::postgres::…`),
//! so a failure on one never hides the other's result. The cases go through the store's public
//! surface only; a run lease is had only from a claim, as a worker has it.

use std::time::Duration;

use chrono::Utc;
use longrun::domain::{
    Job, JobFilter, JobOptions, JobStatus, Lane, Level, OutputFile, Progress, ToolRow, ToolWrite,
};
use longrun::store::{Beat, Reservation, RunPatch, Store, StoreError};
use serde_json::json;
use uuid::Uuid;

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let url = format!("sqlite://{}?mode=rwc", dir.path().join("db.sqlite").display());
                    let store = super::open(&url).await;
                    super::$case(&store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    if !crate::helpers::postgres_or_skip() {
                        return;
                    }
                    let url = crate::helpers::fresh_postgres().await;
                    let store = super::open(&url).await;
                    super::$case(&store).await;
                }
            )*
        }
    };
}

conformance!(
    claims_take_the_oldest_job_once,
    each_lane_claims_only_its_own_jobs,
    a_lost_lease_writes_nothing,
    a_lease_that_ran_out_writes_nothing,
    the_state_machine_refuses_illegal_moves,
    removal_leaves_a_changed_job_alone,
    outputs_are_the_current_attempts,
    idempotency_reservations_are_exclusive_and_expire,
    the_outbox_lease_fences_each_try,
);

async fn open(url: &str) -> Store {
    let store = Store::connect(url)
        .await
        .expect("the database is reachable");
    store.migrate().await.unwrap();
    store
}

async fn queued(store: &Store) -> Job {
    queued_with(store, JobOptions::default()).await
}

async fn queued_with(store: &Store, options: JobOptions) -> Job {
    queued_as(store, "noop", options).await
}

async fn queued_as(store: &Store, operation: &str, options: JobOptions) -> Job {
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 3);
    let mut job = Job {
        id: Uuid::now_v7(),
        task_id: 0,
        owner: Some("acme".into()),
        reference: longrun::domain::new_reference(),
        operation: operation.into(),
        status: JobStatus::Queued,
        phase: None,
        total_stages: 1,
        current_stage: 0,
        progress: Progress::default(),
        created: now,
        started: None,
        finished: None,
        updated: now,
        correlation_id: Uuid::now_v7().to_string(),
        attempt: 1,
        max_attempts: 3,
        input: json!({}),
        input_blob: None,
        options,
        summary: None,
        error: None,
        cancel_requested: false,
        version: 1,
        lease: None,
    };
    store.insert_job(&mut job, "QUEUED").await.unwrap();
    job
}

fn file(job: Uuid, name: &str) -> OutputFile {
    OutputFile {
        id: Uuid::now_v7(),
        job_id: job,
        name: name.into(),
        content_type: "text/plain".into(),
        size: 1,
        etag: "e".into(),
        object_key: format!("k/{name}"),
        rows: None,
        created: Utc::now(),
        consumed: false,
        attempt: 0,
    }
}

fn tool(id: &str, job: Uuid) -> ToolWrite {
    ToolWrite::Imported {
        idx: 0,
        tool: ToolRow {
            tool_id: id.into(),
            tool_name: id.into(),
            category: "c".into(),
            description: None,
            features: vec![],
            url: None,
            job_id: job,
            updated: Utc::now(),
        },
    }
}

/// Queue a running job again as its next attempt, as recovery does after its lease ran out.
async fn requeue(store: &Store, id: Uuid) {
    store
        .transition(id, |j| {
            j.status = JobStatus::Queued;
            j.attempt += 1;
            j.lease = None;
            Ok::<_, ()>(Some((Level::Warning, "recovery".into(), "again".into())))
        })
        .await
        .unwrap()
        .unwrap();
}

async fn claims_take_the_oldest_job_once(store: &Store) {
    let a = queued(store).await;
    let b = queued(store).await;
    let lease = Duration::from_secs(30);
    let (first, la) = store
        .claim("node-a", lease, Lane::Work, &Default::default())
        .await
        .unwrap()
        .unwrap();
    let (second, lb) = store
        .claim("node-b", lease, Lane::Work, &Default::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.id, second.id), (a.id, b.id), "oldest first");
    assert_eq!(first.status, JobStatus::Started);
    assert_eq!((la.job_id(), la.attempt(), la.owner()), (a.id, 1, "node-a"));
    assert_eq!(lb.owner(), "node-b");
    // The lease is the database's: it runs out about `lease` after the claim.
    let now = store.db_now().await.unwrap();
    let left = (la.deadline() - now).num_milliseconds();
    assert!((25_000..=30_000).contains(&left), "{left} ms left");
    assert!(store
        .claim("node-c", lease, Lane::Work, &Default::default())
        .await
        .unwrap()
        .is_none());
}

/// The workers' claim never takes a bulk action, however old; the control lane's claim takes
/// only bulk actions, however long the queue before it; a filter of the work lane never
/// matches one.
async fn each_lane_claims_only_its_own_jobs(store: &Store) {
    let bulk = queued_as(store, "bulk", JobOptions::default()).await;
    let mut work = Vec::new();
    for _ in 0..3 {
        work.push(queued(store).await.id);
    }
    let lease = Duration::from_secs(30);
    let (c, _) = store
        .claim("node-a", lease, Lane::Control, &Default::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.id, bulk.id);
    assert!(store
        .claim("node-a", lease, Lane::Control, &Default::default())
        .await
        .unwrap()
        .is_none());
    let later = queued_as(store, "bulk", JobOptions::default()).await;
    let mut claimed = Vec::new();
    while let Some((j, _)) = store
        .claim("node-b", lease, Lane::Work, &Default::default())
        .await
        .unwrap()
    {
        claimed.push(j.id);
    }
    assert_eq!(
        claimed, work,
        "the work lane takes the work, oldest first, and nothing else"
    );
    let f = JobFilter {
        work_lane_only: true,
        ..Default::default()
    };
    assert_eq!(store.count_jobs(&f).await.unwrap(), 3);
    assert_eq!(store.count_jobs(&JobFilter::default()).await.unwrap(), 5);
    let (c, _) = store
        .claim("node-a", lease, Lane::Control, &Default::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.id, later.id);
}

async fn a_lost_lease_writes_nothing(store: &Store) {
    let job = queued(store).await;
    let len = Duration::from_secs(30);
    let (_, old) = store
        .claim("node-a", len, Lane::Work, &Default::default())
        .await
        .unwrap()
        .unwrap();
    assert!(store.add_file(&old, &file(job.id, "a1")).await.unwrap());
    // Taken over: attempt 2 on node b.
    requeue(store, job.id).await;
    let (_, new) = store
        .claim("node-b", len, Lane::Work, &Default::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new.attempt(), 2);
    let patch = RunPatch {
        status: Some(JobStatus::Processing),
        ..Default::default()
    };
    assert!(!store.worker_update(&old, patch.clone()).await.unwrap());
    assert!(!store
        .worker_message(&old, Level::Info, "operation", "late")
        .await
        .unwrap());
    assert!(!store.add_file(&old, &file(job.id, "a2")).await.unwrap());
    assert!(!store
        .write_import_batch(&old, &[tool("t-old", job.id)])
        .await
        .unwrap());
    assert_eq!(store.heartbeat(&old, len).await.unwrap(), Beat::Lost);
    assert!(store
        .end_run(&old, |j| {
            j.status = JobStatus::Success;
            (Level::Info, "SUCCESS".into())
        })
        .await
        .unwrap()
        .is_none());
    // The new holder writes, and ends the run.
    assert!(store.worker_update(&new, patch).await.unwrap());
    assert!(matches!(
        store.heartbeat(&new, len).await.unwrap(),
        Beat::Alive { cancel: false, .. }
    ));
    assert!(store.add_file(&new, &file(job.id, "b1")).await.unwrap());
    assert!(store
        .write_import_batch(&new, &[tool("t-new", job.id)])
        .await
        .unwrap());
    let ended = store
        .end_run(&new, |j| {
            j.status = JobStatus::Success;
            (Level::Info, "SUCCESS".into())
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.status, JobStatus::Success);
    assert!(ended.lease.is_none());
    let names: Vec<String> = store
        .files(job.id)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, ["b1"], "only the successful attempt's outputs");
    assert!(store.get_tool("acme", "t-old").await.unwrap().is_none());
    assert!(store.get_tool("acme", "t-new").await.unwrap().is_some());
    let lines: Vec<String> = store
        .messages(job.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert!(!lines.iter().any(|l| l == "late"), "{lines:?}");
    // An ended run's lease writes nothing either.
    assert!(!store.add_file(&new, &file(job.id, "b2")).await.unwrap());
}

async fn a_lease_that_ran_out_writes_nothing(store: &Store) {
    let job = queued(store).await;
    let (_, lease) = store
        .claim(
            "node-a",
            Duration::from_millis(300),
            Lane::Work,
            &Default::default(),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(store
        .worker_message(&lease, Level::Info, "operation", "in time")
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Nobody took the job over yet; the lease ran out by the database's clock all the same.
    let read = store.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(read.status, JobStatus::Started);
    assert!(!store
        .worker_update(&lease, RunPatch::default())
        .await
        .unwrap());
    assert!(!store.add_file(&lease, &file(job.id, "late")).await.unwrap());
    assert_eq!(
        store
            .heartbeat(&lease, Duration::from_secs(30))
            .await
            .unwrap(),
        Beat::Lost,
        "a lease that ran out is not renewed"
    );
    let now = store.db_now().await.unwrap();
    let expired = store.expired_leases(now).await.unwrap();
    assert_eq!(expired.iter().map(|j| j.id).collect::<Vec<_>>(), [job.id]);
}

async fn the_state_machine_refuses_illegal_moves(store: &Store) {
    let job = queued(store).await;
    let illegal = store
        .transition(job.id, |j| {
            j.status = JobStatus::Success;
            Ok::<_, ()>(None)
        })
        .await;
    assert!(
        matches!(
            illegal,
            Err(StoreError::IllegalMove(
                JobStatus::Queued,
                JobStatus::Success
            ))
        ),
        "{illegal:?}"
    );
    let read = store.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(
        (read.status, read.version),
        (JobStatus::Queued, job.version)
    );
    // A tombstone is final.
    store
        .transition(job.id, |j| {
            j.status = JobStatus::Deleted;
            Ok::<_, ()>(None)
        })
        .await
        .unwrap()
        .unwrap();
    let back = store
        .transition(job.id, |j| {
            j.status = JobStatus::Queued;
            Ok::<_, ()>(None)
        })
        .await;
    assert!(matches!(back, Err(StoreError::IllegalMove(..))), "{back:?}");
    // A run's progress cannot move a job back from SAVING to PROCESSING.
    let job = queued(store).await;
    let (_, lease) = store
        .claim(
            "node-a",
            Duration::from_secs(30),
            Lane::Work,
            &Default::default(),
        )
        .await
        .unwrap()
        .unwrap();
    let to = |s| RunPatch {
        status: Some(s),
        ..Default::default()
    };
    assert!(store
        .worker_update(&lease, to(JobStatus::Saving))
        .await
        .unwrap());
    assert!(!store
        .worker_update(&lease, to(JobStatus::Processing))
        .await
        .unwrap());
    assert_eq!(
        store.get_job(job.id).await.unwrap().unwrap().status,
        JobStatus::Saving
    );
}

async fn removal_leaves_a_changed_job_alone(store: &Store) {
    let job = queued(store).await;
    let (_, lease) = store
        .claim(
            "node-a",
            Duration::from_secs(30),
            Lane::Work,
            &Default::default(),
        )
        .await
        .unwrap()
        .unwrap();
    let failed = store
        .end_run(&lease, |j| {
            j.status = JobStatus::Failed;
            (Level::Error, "FAILED".into())
        })
        .await
        .unwrap()
        .unwrap();
    // Restarted between the read (`failed`) and the removal: the removal leaves it alone.
    store
        .transition(job.id, |j| {
            j.status = JobStatus::Queued;
            j.attempt += 1;
            Ok::<_, ()>(Some((Level::Info, "state".into(), "restarted".into())))
        })
        .await
        .unwrap()
        .unwrap();
    assert!(store.remove_job(&failed).await.unwrap().is_none());
    let now = store.get_job(job.id).await.unwrap().unwrap();
    assert_eq!((now.status, now.attempt), (JobStatus::Queued, 2));
    // Not ended: left alone even as read now.
    assert!(store.remove_job(&now).await.unwrap().is_none());
    // Ended and unchanged: removed with everything that hangs off it.
    let (_, lease) = store
        .claim(
            "node-a",
            Duration::from_secs(30),
            Lane::Work,
            &Default::default(),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(store.add_file(&lease, &file(job.id, "out")).await.unwrap());
    let done = store
        .end_run(&lease, |j| {
            j.status = JobStatus::Success;
            (Level::Info, "SUCCESS".into())
        })
        .await
        .unwrap()
        .unwrap();
    let files = store.remove_job(&done).await.unwrap().expect("removed");
    assert_eq!(files.len(), 1);
    assert!(store.get_job(job.id).await.unwrap().is_none());
    assert!(store.messages(job.id).await.unwrap().is_empty());
}

async fn outputs_are_the_current_attempts(store: &Store) {
    let job = queued(store).await;
    let len = Duration::from_secs(30);
    let (_, one) = store
        .claim("node-a", len, Lane::Work, &Default::default())
        .await
        .unwrap()
        .unwrap();
    for part in ["part-1", "part-2"] {
        assert!(store.add_file(&one, &file(job.id, part)).await.unwrap());
    }
    requeue(store, job.id).await;
    // Hidden at once: attempt 2 has written nothing yet.
    assert!(store.files(job.id).await.unwrap().is_empty());
    let (_, two) = store
        .claim("node-b", len, Lane::Work, &Default::default())
        .await
        .unwrap()
        .unwrap();
    assert!(store.add_file(&two, &file(job.id, "part-1")).await.unwrap());
    let earlier = store.files_before(job.id, two.attempt()).await.unwrap();
    assert_eq!(earlier.len(), 2);
    assert!(earlier.iter().all(|f| f.attempt == 1));
    let ids: Vec<Uuid> = earlier.iter().map(|f| f.id).collect();
    store.forget_files(&ids).await.unwrap();
    let now: Vec<(String, i32)> = store
        .files(job.id)
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.name, f.attempt))
        .collect();
    assert_eq!(now, [("part-1".to_string(), 2)]);
    for id in ids {
        assert!(store.file(id).await.unwrap().is_none());
    }
}

async fn idempotency_reservations_are_exclusive_and_expire(store: &Store) {
    let day = Utc::now() - chrono::Duration::hours(24);
    let stale = Utc::now() - chrono::Duration::seconds(10);
    assert_eq!(
        store.idem_reserve("k1", day, stale).await.unwrap(),
        Reservation::Mine
    );
    assert_eq!(
        store.idem_reserve("k1", day, stale).await.unwrap(),
        Reservation::Pending
    );
    // A reservation nobody renewed (its process died) is taken over.
    let later = Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(
        store.idem_reserve("k1", day, later).await.unwrap(),
        Reservation::Mine
    );
    let answer = longrun::store::KeptAnswer {
        fingerprint: "f".into(),
        status: 201,
        location: Some("/x".into()),
        content_type: None,
        body: String::new(),
    };
    store.idem_complete("k1", &answer).await.unwrap();
    assert_eq!(
        store.idem_reserve("k1", day, later).await.unwrap(),
        Reservation::Done(answer)
    );
}

async fn the_outbox_lease_fences_each_try(store: &Store) {
    let options = JobOptions {
        callback: Some("http://127.0.0.1:9/cb".into()),
        ..JobOptions::default()
    };
    let job = queued_with(store, options).await;
    let (_, lease) = store
        .claim(
            "node-a",
            Duration::from_secs(30),
            Lane::Work,
            &Default::default(),
        )
        .await
        .unwrap()
        .unwrap();
    // The end state writes its delivery in the same transaction.
    store
        .end_run(&lease, |j| {
            j.status = JobStatus::Success;
            (Level::Info, "SUCCESS".into())
        })
        .await
        .unwrap()
        .unwrap();
    let before = store.deliveries(job.id).await.unwrap();
    assert_eq!(before.len(), 1);
    let now = Utc::now();
    // One claim wins; while its lease holds nobody else gets the delivery.
    let first = store
        .claim_deliveries(now, Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let (d, stale) = first.into_iter().next().unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = store
        .claim_deliveries(now, Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(second.len(), 1, "a lease that ran out is claimed again");
    let held = second.into_iter().next().unwrap().1;
    assert!(store
        .claim_deliveries(now, Duration::from_secs(60), 10)
        .await
        .unwrap()
        .is_empty());
    // The stale claim records nothing and cannot renew; the holder records once.
    assert!(store
        .delivery_tried(
            &d.id,
            &stale,
            1,
            true,
            None,
            &longrun::domain::signals::Tried::http(200),
            std::time::Duration::from_secs(3600),
        )
        .await
        .unwrap()
        .is_none());
    assert!(!store
        .renew_delivery(&d.id, &stale, Duration::from_secs(60))
        .await
        .unwrap());
    assert_eq!(store.deliveries(job.id).await.unwrap(), before);
    assert!(store
        .delivery_tried(
            &d.id,
            &held,
            1,
            true,
            None,
            &longrun::domain::signals::Tried::http(200),
            std::time::Duration::from_secs(3600),
        )
        .await
        .unwrap()
        .is_some());
    assert!(store
        .delivery_tried(
            &d.id,
            &held,
            2,
            false,
            None,
            &longrun::domain::signals::Tried::failed("late"),
            std::time::Duration::from_secs(3600),
        )
        .await
        .unwrap()
        .is_none());
    let after = store.deliveries(job.id).await.unwrap().remove(0);
    assert_eq!(
        (after.state.as_str(), after.delivery.attempts),
        ("delivered", 1)
    );
}
