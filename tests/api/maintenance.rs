//! Background duties driven with a pinned clock: recovery of abandoned jobs, retention.

use chrono::{Duration, Utc};
use serde_json::json;

use crate::helpers::*;

async fn recovery_requeues_and_fences_the_old_owner(b: &'static str) {
    let app = TestApp::spawn(b, 1).await;
    let loc = app.sleepy(json!({"ms": 100, "steps": 6})).await;
    app.wait_status(&loc, "PROCESSING").await;
    // Pretend the lease ran out: the job is queued again as attempt 2 while the old run is
    // still going; the old run must not be able to write over the new one.
    let n = app
        .engine
        .recover_once(Utc::now() + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(n, 1);
    let (_, _, job) = app.get(&loc).await;
    assert_eq!(job["attempt"], 2);
    let job = app.wait_end(&loc).await;
    assert_eq!(job["jobStatus"], "SUCCESS", "{job}");
    assert_eq!(job["attempt"], 2);
    let (_, _, msgs) = app.get(&format!("{loc}/messages")).await;
    assert!(
        msgs.to_string().contains("queued again as attempt 2"),
        "{msgs}"
    );
    // Past the attempt limit the job fails with a clear error.
    let loc = app.sleepy(json!({"ms": 100, "steps": 50})).await;
    for _ in 0..3 {
        app.wait_status(&loc, "PROCESSING").await;
        app.engine
            .recover_once(Utc::now() + Duration::hours(1))
            .await
            .unwrap();
    }
    let job = app.wait_end(&loc).await;
    assert_eq!(job["jobStatus"], "FAILED", "{job}");
    assert!(
        job["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("stopped answering"),
        "{job}"
    );
    app.stop().await;
}
crate::per_backend!(recovery_requeues_and_fences_the_old_owner);

async fn retention_removes_ended_jobs_and_their_files(b: &'static str) {
    let app = TestApp::spawn(b, 1).await;
    let loc = app.sleepy(json!({"ms": 1})).await;
    let job = app.wait_end(&loc).await;
    let file = link(&job, "file").unwrap();
    let running = app.sleepy(json!({"ms": 100, "steps": 30})).await;
    app.wait_status(&running, "PROCESSING").await;
    // Within the retention nothing goes.
    assert_eq!(app.engine.retention_once(Utc::now()).await.unwrap(), 0);
    // Eight days on, the ended job and its file are gone; the running one stays.
    let removed = app
        .engine
        .retention_once(Utc::now() + Duration::days(8))
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(app.http.get(&loc).send().await.unwrap().status(), 404);
    assert_eq!(app.http.get(&file).send().await.unwrap().status(), 404);
    assert_eq!(app.get(&running).await.0, 200);
    app.stop().await;
}
crate::per_backend!(retention_removes_ended_jobs_and_their_files);
