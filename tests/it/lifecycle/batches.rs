//! The API's PUTs and DELETEs that arrive together, and the workers'
//! outcomes, written in one statement (`environments::batched`): each
//! answered as its own statement would have answered it, every row, job and
//! audit row as the single statement writes them, repeats of an id written
//! alone, and a batch that fails written again request by request.
//!
//! The lanes are held still by a transaction that locks a tenant's row
//! (`for update`): the two writes of that tenant sent first take both lanes
//! and wait on their foreign keys, so that what is sent next queues, and is
//! written together once the transaction ends.

use std::collections::HashMap;

use futures::future::join_all;
use ld_eaas::simulator::Faults;
use sqlx::PgPool;

use super::*;
use crate::support::helpers::{TestApp, assert_error};

/// Backends of this test's database waiting for a lock.
async fn waiting_on_locks(db: &PgPool) -> i64 {
    sqlx::query_scalar(
        "select count(*) from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock'",
    )
    .fetch_one(db)
    .await
    .unwrap()
}

async fn counter(app: &TestApp, name: &str, write: &str) -> u64 {
    app.counter(&format!(r#"{name}{{write="{write}"}}"#)).await
}

/// Holds both write lanes of `app` on tenant `acme`'s row with the two
/// writes `hold` makes (one after the other, so that each takes a lane of
/// its own), runs `send` (which queues `queued` writes) and lets the lanes
/// go once they are all queued; returns `hold`'s and `send`'s answers.
async fn while_the_lanes_are_held<A, F, B>(
    app: &TestApp,
    hold: impl Fn(&'static str) -> F,
    queued: usize,
    send: impl std::future::Future<Output = B>,
) -> ((A, A), B)
where
    F: std::future::Future<Output = A>,
{
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("select id from tenants where id = 'acme' for update")
        .execute(&mut *lock)
        .await
        .unwrap();
    let holding = async {
        let second = async {
            eventually(
                Duration::from_secs(10),
                "a lane waits on the tenant's row",
                || async { waiting_on_locks(&app.db).await == 1 },
            )
            .await;
            hold("a-1").await
        };
        tokio::join!(hold("a-0"), second)
    };
    let rest = async {
        eventually(
            Duration::from_secs(10),
            "both lanes wait on the tenant's row",
            || async { waiting_on_locks(&app.db).await == 2 },
        )
        .await;
        let release = async {
            eventually(Duration::from_secs(10), "every write is queued", || async {
                app.state.lifecycle.queued_writes() == queued
            })
            .await;
            lock.commit().await.unwrap();
        };
        tokio::join!(send, release).0
    };
    tokio::join!(holding, rest)
}

#[tokio::test]
async fn puts_that_arrive_together_are_written_in_one_statement_each_answered_as_alone() {
    let sim = start_sim().await;
    // No workers: no worker is idle to be promised a job, so every PUT goes
    // to the lanes, and nothing changes the rows after.
    let app = &spawn(&sim, false).await;
    ready_tenant(app, "acme").await;
    ready_tenant(app, "beta").await;
    // Before: an id live with the same request, one live with another, and
    // one deleted (its next PUT makes generation 2).
    for id in ["same", "other", "gone"] {
        assert_eq!(
            put_env(app, "beta", id, "?wait=0", None).await.0,
            StatusCode::ACCEPTED
        );
    }
    assert_eq!(
        delete_env(app, "beta", "gone", "?wait=0").await.0,
        StatusCode::ACCEPTED
    );
    let before = counter(app, "ld_eaas_write_batches_total", "put").await;

    let new: Vec<String> = (0..27).map(|i| format!("b-{i}")).collect();
    let hold = |id| put_env(app, "acme", id, "?wait=0", None);
    let send = join_all(
        new.iter()
            .map(|id| (id.as_str(), None))
            .chain([
                ("same", None),
                ("other", Some(json!({"ttl_seconds": 3600}))),
                ("gone", None),
                // A repeat of an id already in the batch: written alone, after.
                ("b-0", None),
            ])
            .map(|(id, body)| async move { (id, put_env(app, "beta", id, "?wait=0", body).await) }),
    );
    let (held, answers) = while_the_lanes_are_held(app, hold, 31, send).await;
    for (status, body) in [held.0, held.1] {
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }

    // One statement wrote the 30 distinct ids; the repeat and "gone"'s
    // second generation (planned after its first answer) went alone.
    assert_eq!(
        counter(app, "ld_eaas_write_batches_total", "put").await - before,
        1
    );
    assert_eq!(
        counter(app, "ld_eaas_batched_requests_total", "put").await,
        30
    );

    let stored: HashMap<String, (i32, String, String, i64, i64)> = sqlx::query_as(
        "select e.ephemeral_id, e.generation, e.desired, e.environment_key,
                (select count(*) from jobs j where j.environment_id = e.id and j.state = 'queued'),
                (select count(*) from audit_events a where a.tenant_id = e.tenant_id
                    and a.environment_key = e.environment_key and a.action = 'environment.create_requested')
           from environments e where e.tenant_id = 'beta' and e.desired = 'present'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
    .into_iter()
    .map(|(id, g, d, k, j, a)| (id, (g, d, k, j, a)))
    .collect();
    let mut repeat = 0;
    for (id, (status, body)) in &answers {
        let (generation, _, key, jobs, audits) = &stored[*id];
        assert_eq!(
            (*jobs, *audits),
            (1, 1),
            "{id}: one queued job, one audit row"
        );
        if *id == "other" {
            assert_eq!(*status, StatusCode::CONFLICT, "{body}");
            assert_error(body, "conflicting_request");
            continue;
        }
        assert_eq!(
            body["launchdarkly"]["environment_key"],
            json!(key),
            "{id}: {body}"
        );
        assert_eq!(body["generation"], json!(generation), "{id}: {body}");
        match *id {
            "same" => assert_eq!(*status, StatusCode::ACCEPTED, "{body}"),
            "gone" => {
                assert_eq!(*status, StatusCode::ACCEPTED, "{body}");
                assert_eq!(*generation, 2);
            }
            _ => {
                assert_eq!(*status, StatusCode::ACCEPTED, "{id}: {body}");
                assert_eq!(*generation, 1);
                repeat += usize::from(*id == "b-0");
            }
        }
    }
    assert_eq!(
        repeat, 2,
        "both PUTs of b-0 answered with its one generation"
    );
    // Nothing more than one generation each: 27 new, same, other, gone's 2.
    assert_eq!(stored.len(), 30);

    // The audit rows carry each request's own details.
    let details: Value = sqlx::query_scalar(
        "select details from audit_events
          where tenant_id = 'beta' and ephemeral_id = 'b-7' and action = 'environment.create_requested'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        details,
        json!({"generation": 1, "project_key": "demo", "source_environment_key": "staging",
               "flags": {}, "expires_at": null})
    );
}

#[tokio::test]
async fn a_batch_that_fails_is_written_again_request_by_request() {
    let sim = start_sim().await;
    let app = &spawn(&sim, false).await;
    ready_tenant(app, "acme").await;
    ready_tenant(app, "beta").await;
    assert_eq!(
        put_env(app, "beta", "model", "?wait=0", None).await.0,
        StatusCode::ACCEPTED
    );

    // A generation of "clash" inserted by a transaction that does not hold
    // the id's lock and has not committed: the batch's snapshot does not
    // see it, its insert waits on the unique index, and fails when it
    // commits.
    let mut clash = app.db.begin().await.unwrap();
    sqlx::query(
        "insert into environments (id, tenant_id, ephemeral_id, generation, revision, desired, status, request,
                                   project_key, environment_key, environment_name, source_environment_key,
                                   color, tags, flags, created_at, updated_at)
         select gen_random_uuid(), tenant_id, 'clash', 1, 1, 'present', 'pending', '{\"ttl_seconds\": 60}',
                project_key, environment_key || '-clash', environment_name || ' clash', source_environment_key,
                color, tags, flags, now(), now()
           from environments where tenant_id = 'beta' and ephemeral_id = 'model'",
    )
    .execute(&mut *clash)
    .await
    .unwrap();

    let ids = ["c-1", "clash", "c-2", "c-3"];
    let hold = |id| put_env(app, "acme", id, "?wait=0", None);
    let send = async {
        let puts = join_all(
            ids.iter()
                .map(|id| async move { (*id, put_env(app, "beta", id, "?wait=0", None).await) }),
        );
        let commit_clash = async {
            // The batch waits on the clash's row: the holder released it.
            eventually(
                Duration::from_secs(10),
                "the batch waits on the clash",
                || async {
                    app.state.lifecycle.queued_writes() == 0 && waiting_on_locks(&app.db).await == 1
                },
            )
            .await;
            clash.commit().await.unwrap();
        };
        tokio::join!(puts, commit_clash).0
    };
    let (_, answers) = while_the_lanes_are_held(app, hold, ids.len(), send).await;

    for (id, (status, body)) in answers {
        if id == "clash" {
            // Alone, the PUT finds the generation the other transaction
            // made, with another request.
            assert_eq!(status, StatusCode::CONFLICT, "{body}");
        } else {
            assert_eq!(status, StatusCode::ACCEPTED, "{id}: {body}");
            assert_eq!(body["generation"], 1, "{body}");
        }
    }
    assert_eq!(counter(app, "ld_eaas_write_batches_total", "put").await, 0);
    let written: i64 = sqlx::query_scalar(
        "select count(*) from environments e join jobs j on j.environment_id = e.id
          where e.tenant_id = 'beta' and e.ephemeral_id in ('c-1', 'c-2', 'c-3')",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(written, 3, "each written once, with its job, alone");
}

#[tokio::test]
async fn deletes_that_arrive_together_are_written_in_one_statement_each_answered_as_alone() {
    let sim = start_sim().await;
    let app = &spawn(&sim, false).await;
    ready_tenant(app, "acme").await;
    ready_tenant(app, "beta").await;
    let ids: Vec<String> = (0..25).map(|i| format!("d-{i}")).collect();
    for id in ids.iter().map(String::as_str).chain(["a-0", "a-1"]) {
        let tenant = if id.starts_with("a-") { "acme" } else { "beta" };
        assert_eq!(
            put_env(app, tenant, id, "?wait=0", None).await.0,
            StatusCode::ACCEPTED
        );
    }

    let hold = |id| delete_env(app, "acme", id, "?wait=0");
    let send = join_all(
        ids.iter()
            .map(String::as_str)
            // Never made; and a repeat of an id already in the batch.
            .chain(["never", "d-3"])
            .map(|id| async move { (id, delete_env(app, "beta", id, "?wait=0").await) }),
    );
    let (held, answers) = while_the_lanes_are_held(app, hold, 27, send).await;
    for (status, body) in [held.0, held.1] {
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    assert_eq!(
        counter(app, "ld_eaas_write_batches_total", "delete").await,
        1
    );
    assert_eq!(
        counter(app, "ld_eaas_batched_requests_total", "delete").await,
        26
    );
    for (id, (status, body)) in &answers {
        if *id == "never" {
            assert_eq!(*status, StatusCode::NO_CONTENT, "{body}");
        } else {
            assert_eq!(*status, StatusCode::ACCEPTED, "{id}: {body}");
            assert_eq!(body["status"], "deleting", "{id}: {body}");
        }
    }

    // Each row as the single statement leaves it: unwanted at revision 2,
    // its one job open, one audit row with the generation.
    let rows: Vec<(String, String, String, i32, i64, i64)> = sqlx::query_as(
        "select e.ephemeral_id, e.desired, e.status, e.revision,
                (select count(*) from jobs j where j.environment_id = e.id and j.state = 'queued'),
                (select count(*) from audit_events a where a.tenant_id = e.tenant_id and a.ephemeral_id = e.ephemeral_id
                    and a.action = 'environment.delete_requested' and a.details = '{\"generation\": 1}')
           from environments e where e.tenant_id = 'beta' order by e.ephemeral_id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(rows.len(), 25);
    for (id, desired, status, revision, jobs, audits) in rows {
        assert_eq!(
            (desired.as_str(), status.as_str(), revision, jobs, audits),
            ("absent", "deleting", 2, 1, 1),
            "{id}"
        );
    }
}

#[tokio::test]
async fn workers_outcomes_ready_together_are_written_in_one_statement() {
    let sim = start_sim().await;
    // Each create waits on LaunchDarkly long enough for the audit table to
    // be locked before any outcome is written.
    sim.set_faults(Faults {
        latency: Duration::from_millis(300),
        ..Faults::default()
    });
    let app = &spawn_with(&sim, true, |mut c| {
        c.lifecycle.per_tenant_concurrency = 8;
        c
    })
    .await;
    ready_tenant(app, "acme").await;
    let ids: Vec<String> = (0..8).map(|i| format!("w-{i}")).collect();
    for id in &ids {
        assert_eq!(
            put_env(app, "acme", id, "?wait=0", None).await.0,
            StatusCode::ACCEPTED
        );
    }
    // The eight workers each create one. The first two outcomes take both
    // places and wait on the audit table; the other six queue.
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("lock table audit_events in share mode")
        .execute(&mut *lock)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "two outcomes wait and six are queued",
        || async {
            waiting_on_locks(&app.db).await == 2 && app.state.lifecycle.queued_writes() == 6
        },
    )
    .await;
    lock.commit().await.unwrap();

    eventually(
        Duration::from_secs(10),
        "every environment is ready",
        || async {
            let ready: i64 = sqlx::query_scalar(
                "select count(*) from environments where tenant_id = 'acme' and status = 'ready'",
            )
            .fetch_one(&app.db)
            .await
            .unwrap();
            ready == 8
        },
    )
    .await;
    assert_eq!(
        counter(app, "ld_eaas_write_batches_total", "settle").await,
        1
    );
    assert_eq!(
        counter(app, "ld_eaas_batched_requests_total", "settle").await,
        6
    );
    // Each as the single statement writes it: ready with its keys, its job
    // finished, one audit row, and the waiting calls told.
    for id in &ids {
        let (status, body) = get_env(app, "acme", id).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "ready", "{id}: {body}");
        let ld = &body["launchdarkly"];
        let upstream = sim
            .environment(
                DEMO_ACCOUNT,
                "demo",
                ld["environment_key"].as_str().unwrap(),
            )
            .expect("created upstream");
        assert_eq!(ld["client_side_id"], upstream.id.as_str(), "{id}");
        assert_eq!(ld["sdk_key"], upstream.api_key.as_str(), "{id}");
        assert_eq!(ld["mobile_key"], upstream.mobile_key.as_str(), "{id}");
    }
    let (jobs, audits): (i64, i64) = sqlx::query_as(
        "select (select count(*) from jobs where kind = 'reconcile_environment'),
                (select count(*) from audit_events where tenant_id = 'acme' and action = 'environment.ready')",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!((jobs, audits), (0, 8));
}
