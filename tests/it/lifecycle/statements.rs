//! The one-statement paths (`environments::insert_requested`,
//! `mark_absent_requested`, `settle`): a PUT, a DELETE and a job's outcome
//! each written in one statement, announced and audited exactly as the
//! transactions they stand in for would, and deferring to a transaction that
//! holds the ephemeral id's lock.

use std::time::Duration;

use ld_eaas::ids::EphemeralId;
use ld_eaas::store::environments::{Status, lock_ephemeral};
use ld_eaas::store::notify::{ENVIRONMENTS_CHANNEL, parse_environment_notice};
use sqlx::postgres::PgListener;
use uuid::Uuid;

use super::*;
use crate::support::helpers::TestApp;

/// actor, action, ephemeral id, environment key, details.
type AuditRow = (String, String, Option<String>, Option<String>, Value);

/// `ld_eaas_lifecycle_writes_total` for one write and path.
async fn writes(app: &TestApp, write: &str, path: &str) -> u64 {
    app.counter(&format!(
        r#"ld_eaas_lifecycle_writes_total{{path="{path}",write="{write}"}}"#
    ))
    .await
}

/// Every notification about `id` that arrives within `for_`: what it says,
/// and which replica's worker wrote it (an outcome's).
async fn notices(
    listener: &mut PgListener,
    id: Uuid,
    for_: Duration,
) -> Vec<(Option<(i32, Status)>, Option<String>)> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + for_;
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, listener.recv()).await {
        if let Some((about, now, by)) = parse_environment_notice(n.payload()) {
            if about == id {
                seen.push((now, by.map(str::to_owned)));
            }
        }
    }
    seen
}

#[tokio::test]
async fn a_put_a_delete_and_their_outcomes_are_single_statements_announced_and_audited_as_the_row_says()
 {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    ready_tenant(&app, "acme").await;
    let mut listener = PgListener::connect_with(&app.db).await.unwrap();
    listener.listen(ENVIRONMENTS_CHANNEL).await.unwrap();

    let (status, body) = put_env(&app, "acme", "pr-1", "?wait=10", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "ready", "{body}");
    let (status, body) = delete_env(&app, "acme", "pr-1", "?wait=10").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let id: Uuid = sqlx::query_scalar(
        "select id from environments where tenant_id = 'acme' and ephemeral_id = 'pr-1'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    // Each change's notification says the revision and status the row then
    // had. The new generation itself is not announced: nobody can be waiting
    // for an id that its PUT had not returned yet.
    let here = app.state.lifecycle.replica_id().to_owned();
    assert_eq!(
        notices(&mut listener, id, Duration::from_millis(500)).await,
        [
            (Some((1, Status::Ready)), Some(here.clone())),
            (Some((2, Status::Deleting)), None),
            (Some((2, Status::Deleted)), Some(here)),
        ],
        "the outcomes' notices name the replica whose worker wrote them"
    );
    for (write, expected) in [("put", 1), ("delete", 1), ("outcome", 2)] {
        assert_eq!(writes(&app, write, "statement").await, expected, "{write}");
        assert_eq!(writes(&app, write, "transaction").await, 0, "{write}");
    }

    // The audit trail the transactions would have written, details included.
    let (key, client_side_id): (String, String) =
        sqlx::query_as("select environment_key, client_side_id from environments where id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let audit: Vec<AuditRow> = sqlx::query_as(
        "select actor, action, ephemeral_id, environment_key, details from audit_events
          where tenant_id = 'acme' and action like 'environment.%' order by id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.1.as_str()).collect();
    assert_eq!(
        actions,
        [
            "environment.create_requested",
            "environment.ready",
            "environment.delete_requested",
            "environment.deleted",
        ]
    );
    for (actor, action, ephemeral_id, environment_key, _) in &audit {
        assert_eq!(ephemeral_id.as_deref(), Some("pr-1"), "{action}");
        assert_eq!(environment_key.as_deref(), Some(key.as_str()), "{action}");
        let by_system = action == "environment.ready" || action == "environment.deleted";
        assert_eq!(actor.starts_with("api:"), !by_system, "{action}: {actor}");
        assert_eq!(actor == "system", by_system, "{action}: {actor}");
    }
    assert_eq!(
        audit[0].4,
        json!({"generation": 1, "project_key": "demo", "source_environment_key": "staging",
               "flags": {}, "expires_at": null})
    );
    assert_eq!(
        audit[1].4,
        json!({"generation": 1, "adopted": false, "client_side_id": client_side_id})
    );
    assert_eq!(audit[2].4, json!({"generation": 1}));
    assert_eq!(audit[3].4, json!({"generation": 1, "left_untouched": null}));

    // Both jobs ran to done, each at its first attempt, and are gone from the
    // queue: the statement deletes a finished job.
    let jobs: i64 = sqlx::query_scalar("select count(*) from jobs where environment_id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(jobs, 0);
    let done = app
        .counter(r#"ld_eaas_jobs_total{kind="reconcile_environment",outcome="done"}"#)
        .await;
    assert_eq!(done, 2);
}

#[tokio::test]
async fn a_put_never_writes_past_a_transaction_holding_the_ids_lock_and_takes_the_locked_path() {
    let sim = start_sim().await;
    let app = spawn(&sim, false).await;
    ready_tenant(&app, "acme").await;

    let mut tx = app.db.begin().await.unwrap();
    lock_ephemeral(
        &mut tx,
        &tenant("acme"),
        &EphemeralId::parse("held").unwrap(),
    )
    .await
    .unwrap();
    let put = put_env(&app, "acme", "held", "?wait=0", None);
    tokio::pin!(put);
    tokio::select! {
        answer = &mut put => panic!("the PUT did not wait for the lock: {answer:?}"),
        () = tokio::time::sleep(Duration::from_millis(400)) => {}
    }
    let written: i64 = sqlx::query_scalar(
        "select count(*) from environments where tenant_id = 'acme' and ephemeral_id = 'held'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        written, 0,
        "nothing is written while another holds the lock"
    );
    tx.commit().await.unwrap();

    let (status, body) = put.await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["generation"], 1, "{body}");
    assert_eq!(writes(&app, "put", "transaction").await, 1);
    assert_eq!(writes(&app, "put", "statement").await, 0);
    // A repeat, with nobody holding the lock, finds it without writing.
    let (status, again) = put_env(&app, "acme", "held", "?wait=0", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["launchdarkly"], body["launchdarkly"]);
    assert_eq!(writes(&app, "put", "statement").await, 0);
    assert_eq!(writes(&app, "put", "transaction").await, 1);
}

#[tokio::test]
async fn a_first_generation_is_written_only_for_a_new_id_and_otherwise_the_current_one_is_found() {
    use ld_eaas::store::environments::{self, NewEnvironment, Requested};
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    ready_tenant(&app, "acme").await;
    let (status, body) = put_env(&app, "acme", "pr-1", "?wait=10", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let acme = tenant("acme");
    let pr1 = EphemeralId::parse("pr-1").unwrap();
    let first = NewEnvironment {
        id: Uuid::new_v4(),
        tenant: &acme,
        ephemeral_id: &pr1,
        generation: environments::FIRST_GENERATION,
        request: json!({}),
        project_key: "demo",
        environment_key: "another-key",
        environment_name: "another",
        source_environment_key: "staging",
        color: "ffffff",
        tags: &[],
        flags: json!({}),
        expires_at: None,
    };
    let rows = |app: &TestApp| {
        let db = app.db.clone();
        async move {
            sqlx::query_as::<_, (i64, i64, i64)>(
                "select (select count(*) from environments), (select count(*) from jobs
                         where kind = 'reconcile_environment'), (select count(*) from audit_events)",
            )
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };
    let audit = ("test", "environment.create_requested", &json!({}));

    // pr-1 has its first generation, ready: the statement writes nothing
    // and returns it, as the PUT's repeat needs.
    let before = rows(&app).await;
    let found = environments::insert_requested(&app.db, &first, audit, app.now(), None)
        .await
        .unwrap();
    let Some(Requested::Found(row)) = found else {
        panic!("expected the current generation, got {found:?}");
    };
    assert_eq!((row.generation, row.status), (1, Status::Ready));
    assert_eq!(rows(&app).await, before, "nothing written");
    let (status, again) = put_env(&app, "acme", "pr-1", "?wait=0", None).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["generation"], 1, "{again}");
    assert_eq!(
        (
            &again["created_at"],
            &again["launchdarkly"]["environment_key"]
        ),
        (
            &body["created_at"],
            &body["launchdarkly"]["environment_key"]
        ),
        "the same generation: {again}"
    );
    assert!(again["created_at"].is_string(), "{again}");

    // Deleted, it is still found (the PUT then writes generation 2).
    let (status, _) = delete_env(&app, "acme", "pr-1", "?wait=10").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let before = rows(&app).await;
    let found = environments::insert_requested(&app.db, &first, audit, app.now(), None)
        .await
        .unwrap();
    assert!(
        matches!(&found, Some(Requested::Found(row)) if row.status == Status::Deleted),
        "{found:?}"
    );
    assert_eq!(rows(&app).await, before, "nothing written");
    let (status, body) = put_env(&app, "acme", "pr-1", "?wait=10", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["generation"], 2, "{body}");

    // A new id gets its first generation from the same statement.
    let pr2 = EphemeralId::parse("pr-2").unwrap();
    let written = environments::insert_requested(
        &app.db,
        &NewEnvironment {
            ephemeral_id: &pr2,
            ..first
        },
        audit,
        app.now(),
        None,
    )
    .await
    .unwrap();
    assert!(
        matches!(&written, Some(Requested::Written { row, claimed: false }) if row.generation == 1),
        "{written:?}"
    );
}

#[tokio::test]
async fn announcements_queued_together_go_out_in_few_statements_and_every_one_arrives() {
    let sim = start_sim().await;
    let app = spawn(&sim, false).await;
    let mut listener = PgListener::connect_with(&app.db).await.unwrap();
    listener.listen(ENVIRONMENTS_CHANNEL).await.unwrap();
    let statements = || {
        app.state
            .metrics
            .counter("ld_eaas_announcement_statements_total", &[])
    };
    // The sender starts with the app; give it its first turn.
    eventually(Duration::from_secs(5), "the sender runs", || async {
        let before = statements();
        ld_eaas::app::announce(
            &app.state,
            Some(format!("{} 1 ready", Uuid::new_v4())),
            false,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        statements() > before
    })
    .await;
    while tokio::time::timeout(Duration::from_millis(100), listener.recv())
        .await
        .is_ok()
    {}

    let before = statements();
    let ids: Vec<Uuid> = (0..100).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        // Queued: the call does not wait for the statement.
        ld_eaas::app::announce(&app.state, Some(format!("{id} 2 deleting")), false).await;
    }
    let mut arrived = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while arrived.len() < ids.len() {
        let Ok(Ok(n)) = tokio::time::timeout_at(deadline, listener.recv()).await else {
            break;
        };
        if let Some((id, said, _)) = parse_environment_notice(n.payload()) {
            assert_eq!(said, Some((2, Status::Deleting)));
            arrived.insert(id);
        }
    }
    assert_eq!(arrived.len(), ids.len(), "every notice arrives");
    // A statement is counted when its answer is back, which may be just
    // after its notices arrive.
    eventually(Duration::from_secs(5), "the statements counted", || async {
        statements() > before
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let sent = statements() - before;
    assert!(
        (1..=10).contains(&sent),
        "100 notices queued together went out in {sent} statements"
    );
}
