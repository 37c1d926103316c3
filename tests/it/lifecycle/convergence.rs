//! Convergence under injected faults (5xx before and after the work, 429s,
//! timeouts whose work lands late), with a replica killed mid-run, and
//! fairness between tenants when one of them is rate limited.
#![allow(clippy::disallowed_methods)] // Rate-limit holds are judged against the simulator's real time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use futures::StreamExt;
use ld_eaas::simulator::Faults;

use super::*;

/// `tenants` tenants, two per LaunchDarkly account, each account with a
/// project `proj` holding `staging`. Returns (tenant, account) pairs.
async fn accounts(sim: &Simulator, app: &TestApp, tenants: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in 0..tenants {
        let account = format!("acct-{}", i / 2);
        let token = format!("conv-writer-token-{}", i / 2);
        sim.add_api_token(ApiTokenGrant::for_account(&token, &account, "writer"));
        if i % 2 == 0 {
            sim.add_project(&account, "proj", "Project", &["staging"]);
        }
        let id = format!("tenant-{i}");
        connect(app, &id, &token).await;
        configure(app, &id, "proj", "staging").await;
        out.push((id, account));
    }
    out
}

fn faulty(seed: u64) -> Faults {
    Faults {
        error_rate: 0.15,
        error_after_commit_rate: 0.05,
        rate_limit_rate: 0.10,
        timeout_rate: 0.03,
        timeout_hold: Duration::from_millis(900),
        rate_limit_reset_after: Duration::from_millis(150),
        seed: Some(seed),
        ..Faults::none()
    }
}

/// Every generation settled, the wanted ones ready and the others deleted.
async fn all_settled(app: &TestApp) -> bool {
    let unsettled: i64 = sqlx::query_scalar(
        "select count(*) from environments
          where not ((desired = 'present' and status = 'ready') or (desired = 'absent' and status = 'deleted'))",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    unsettled == 0
}

/// A request held by a timeout fault: labelled when answered, unanswered
/// (no status) when the client hung up first.
fn held(r: &ld_eaas::simulator::RecordedRequest) -> bool {
    r.fault == Some("timeout") || r.status.is_none()
}

/// Requests held by a timeout fault have had their time to land upstream
/// (the simulator does the work after the hold, as a slow LaunchDarkly can).
fn nothing_in_flight(sim: &Simulator) -> bool {
    let hold = chrono::Duration::milliseconds(900 + 500);
    sim.requests()
        .iter()
        .filter(|r| held(r))
        .all(|r| chrono::Utc::now() > r.at + hold)
}

/// What LaunchDarkly should hold: per account, the keys of ready generations.
async fn expected(
    app: &TestApp,
    tenants: &[(String, String)],
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (tenant, account) in tenants {
        let keys: Vec<String> = sqlx::query_scalar(
            "select environment_key from environments where tenant_id = $1 and desired = 'present' and status = 'ready'",
        )
        .bind(tenant)
        .fetch_all(&app.db)
        .await
        .unwrap();
        out.entry(account.clone()).or_default().extend(keys);
    }
    out
}

fn actual(sim: &Simulator, tenants: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, account) in tenants {
        let keys = upstream_with_tag(sim, account, "proj", "ld-eaas")
            .into_iter()
            .map(|e| e.key)
            .collect();
        out.insert(account.clone(), keys);
    }
    out
}

async fn assert_converged(
    app: &TestApp,
    sim: &Simulator,
    tenants: &[(String, String)],
    present_per_tenant: usize,
) {
    let want = expected(app, tenants).await;
    let total: usize = want.values().map(BTreeSet::len).sum();
    assert_eq!(
        total,
        tenants.len() * present_per_tenant,
        "one ready generation per wanted environment"
    );
    let have = actual(sim, tenants);
    for (account, keys) in &have {
        let unique: BTreeSet<String> = keys.iter().cloned().collect();
        assert_eq!(unique.len(), keys.len(), "duplicates upstream in {account}");
        assert_eq!(
            &unique, &want[account],
            "upstream of {account} differs from the records"
        );
    }
    // One wanted generation per wanted ephemeral id, none per unwanted one.
    let per_eph: Vec<(String, String, i64)> = sqlx::query_as(
        "select tenant_id, ephemeral_id, count(*) filter (where desired = 'present')
           from environments group by 1, 2",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    for (tenant, eph, present) in per_eph {
        let index: usize = eph.trim_start_matches("e").parse().unwrap();
        let wanted = if index % 2 == 0 { 1 } else { 0 };
        assert_eq!(present, wanted, "{tenant}/{eph}");
    }
}

/// Per ephemeral id: even ones PUT, DELETE, PUT in order (ending present);
/// odd ones PUT and DELETE at once, then DELETE (ending absent).
async fn churn(app: &TestApp, tenants: &[(String, String)], per_tenant: usize) {
    let work: Vec<(String, usize)> = tenants
        .iter()
        .flat_map(|(t, _)| (0..per_tenant).map(move |i| (t.clone(), i)))
        .collect();
    futures::stream::iter(work)
        .map(|(tenant, i)| async move {
            let eph = format!("e{i}");
            let ok = |s: StatusCode| s.is_success();
            if i % 2 == 0 {
                assert!(ok(put_env(app, &tenant, &eph, "?wait=0", None).await.0));
                assert!(ok(delete_env(app, &tenant, &eph, "?wait=0").await.0));
                assert!(ok(put_env(app, &tenant, &eph, "?wait=0", None).await.0));
            } else {
                let (put, delete) = tokio::join!(
                    put_env(app, &tenant, &eph, "?wait=0", None),
                    delete_env(app, &tenant, &eph, "?wait=0")
                );
                assert!(ok(put.0) && ok(delete.0), "{put:?} {delete:?}");
                assert!(ok(delete_env(app, &tenant, &eph, "?wait=0").await.0));
            }
        })
        .buffer_unordered(24)
        .collect::<Vec<()>>()
        .await;
}

#[tokio::test]
async fn three_hundred_create_delete_pairs_across_ten_tenants_converge_under_faults() {
    let sim = start_sim().await;
    let app = spawn_with(&sim, true, |mut c| {
        c.lifecycle.launchdarkly_timeout = Duration::from_millis(400);
        // Creates that land after we gave up are left to the sweeper.
        c.sweep_grace = Duration::ZERO;
        c.sweep_interval = Duration::from_millis(500);
        c
    })
    .await;
    let _clock = ClockDriver::start(vec![app.clock.clone()]);
    let tenants = accounts(&sim, &app, 10).await;
    sim.clear_requests();
    sim.set_faults(faulty(42));
    let started = Instant::now();

    churn(&app, &tenants, 30).await;
    eventually(Duration::from_secs(90), "every generation settled", || {
        all_settled(&app)
    })
    .await;
    let settled_after = started.elapsed();
    sim.set_faults(Faults::none());
    eventually(
        Duration::from_secs(10),
        "held requests answered",
        || async { nothing_in_flight(&sim) },
    )
    .await;
    let wanted = expected(&app, &tenants).await;
    eventually(
        Duration::from_secs(30),
        "LaunchDarkly matches the records",
        || async {
            let have = actual(&sim, &tenants);
            have.iter().all(|(account, keys)| {
                keys.iter().cloned().collect::<BTreeSet<_>>() == wanted[account]
                    && keys.len() == wanted[account].len()
            })
        },
    )
    .await;
    assert_converged(&app, &sim, &tenants, 15).await;

    // The faults really happened, and were survived.
    let requests = sim.requests();
    let count = |fault: &str| requests.iter().filter(|r| r.fault == Some(fault)).count();
    let timeouts = requests.iter().filter(|r| held(r)).count();
    assert!(
        count("error") > 50 && count("rate_limit") > 20 && timeouts > 5,
        "{} {} {} {}",
        count("error"),
        count("error_after_commit"),
        count("rate_limit"),
        timeouts
    );
    let failed: i64 =
        sqlx::query_scalar("select count(*) from environments where status = 'failed'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(failed, 0);
    // Every state change has its audit row: one ready per ready, one deleted per deleted.
    let (ready_rows, deleted_rows): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where ready_at is not null), count(*) filter (where status = 'deleted') from environments",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    let (ready_audits, deleted_audits): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where action = 'environment.ready'), count(*) filter (where action = 'environment.deleted') from audit_events",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(ready_audits, ready_rows);
    assert_eq!(deleted_audits, deleted_rows);
    let metrics = app.state.metrics.render();
    assert!(
        metrics.contains("ld_eaas_jobs_total{kind=\"reconcile_environment\",outcome=\"done\"}"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "ld_eaas_launchdarkly_calls_total{operation=\"create_environment\",status=\"429\"}"
    ));
    assert!(
        metrics.contains("ld_eaas_job_queue_depth{state=\"due\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("ld_eaas_environment_time_to_ready_seconds_count"));
    eprintln!(
        "converged: {} requests upstream, settled after {:.1}s",
        requests.len(),
        settled_after.as_secs_f64()
    );
}

#[tokio::test]
async fn two_replicas_on_one_database_converge_when_one_is_killed_mid_run() {
    let sim = start_sim().await;
    let tune = |mut c: Config| {
        c.lifecycle.launchdarkly_timeout = Duration::from_millis(600);
        c.sweep_grace = Duration::ZERO;
        c.sweep_interval = Duration::from_millis(500);
        c
    };
    let a = spawn_with(&sim, true, tune).await;
    let b = spawn_beside(&sim, &a, true, tune).await;
    let _clock = ClockDriver::start(vec![a.clock.clone(), b.clock.clone()]);
    let tenants = accounts(&sim, &a, 4).await;
    sim.set_faults(Faults {
        latency: Duration::from_millis(120),
        error_rate: 0.10,
        rate_limit_rate: 0.05,
        rate_limit_reset_after: Duration::from_millis(150),
        seed: Some(7),
        ..Faults::none()
    });

    let churned = tokio::spawn({
        let tenants = tenants.clone();
        let a_url = a.address.clone();
        let key = a.api_key.clone();
        async move {
            // Through replica A's API while both replicas work the queue.
            let client = reqwest::Client::new();
            let work: Vec<(String, usize)> = tenants
                .iter()
                .flat_map(|(t, _)| (0..25).map(move |i| (t.clone(), i)))
                .collect();
            futures::stream::iter(work)
                .map(|(tenant, i)| {
                    let client = client.clone();
                    let a_url = a_url.clone();
                    let key = key.clone();
                    async move {
                        let url =
                            format!("{a_url}/api/v1/tenants/{tenant}/environments/e{i}?wait=0");
                        let put = client.put(&url).bearer_auth(&key).send().await.unwrap();
                        assert!(put.status().is_success());
                        if i % 2 == 1 {
                            let del = client.delete(&url).bearer_auth(&key).send().await.unwrap();
                            assert!(del.status().is_success());
                        }
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<()>>()
                .await;
        }
    });
    // Kill B while it holds jobs: its database goes away under it, it
    // records nothing more, and its leases lapse.
    let b_id = b.state.lifecycle.replica_id().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    let held: Vec<uuid::Uuid> = loop {
        let held: Vec<uuid::Uuid> =
            sqlx::query_scalar("select id from jobs where locked_by = $1 and state = 'running'")
                .bind(&b_id)
                .fetch_all(&a.db)
                .await
                .unwrap();
        if held.len() >= 2 {
            break held;
        }
        assert!(Instant::now() < deadline, "replica B never held jobs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    drop(b.db.close());
    let stopping = tokio::spawn(b.stop());
    churned.await.unwrap();

    eventually(Duration::from_secs(60), "every generation settled", || {
        all_settled(&a)
    })
    .await;
    sim.set_faults(Faults::none());
    eventually(
        Duration::from_secs(10),
        "held requests answered",
        || async { nothing_in_flight(&sim) },
    )
    .await;
    let wanted = expected(&a, &tenants).await;
    eventually(
        Duration::from_secs(30),
        "LaunchDarkly matches the records",
        || async {
            actual(&sim, &tenants).iter().all(|(account, keys)| {
                keys.iter().cloned().collect::<BTreeSet<_>>() == wanted[account]
                    && keys.len() == wanted[account].len()
            })
        },
    )
    .await;
    // The jobs B held when it died are finished by A. (Not every one of them
    // is needed for the records to settle: a sweep B held waits for B's lease
    // to lapse, and only then does A run it.)
    eventually(
        Duration::from_secs(60),
        "every job B held was finished by A",
        || async {
            let unfinished: i64 = sqlx::query_scalar(
                "select count(*) from jobs where id = any($1) and state <> 'done'",
            )
            .bind(&held)
            .fetch_one(&a.db)
            .await
            .unwrap();
            unfinished == 0
        },
    )
    .await;
    let keys = expected(&a, &tenants).await;
    assert_eq!(keys.values().map(BTreeSet::len).sum::<usize>(), 4 * 13);
    let _ = stopping.await;
}

#[tokio::test]
async fn one_tenants_backlog_under_429_does_not_delay_another_tenants_create() {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    let _clock = ClockDriver::start(vec![app.clock.clone()]);
    for (tenant, account, project) in [
        ("busy", "acct-busy", "proj-busy"),
        ("calm", "acct-calm", "proj-calm"),
    ] {
        let token = format!("fair-token-{tenant}-0001");
        sim.add_api_token(ApiTokenGrant::for_account(&token, account, "writer"));
        sim.add_project(account, project, project, &["staging"]);
        connect(&app, tenant, &token).await;
        configure(&app, tenant, project, "staging").await;
    }
    sim.clear_requests();
    // Every call for the busy tenant's project is rate limited for a second.
    sim.set_faults(Faults {
        rate_limit_rate: 1.0,
        rate_limit_reset_after: Duration::from_secs(1),
        ..Faults::none().scoped(None, Some("/api/v2/projects/proj-busy"))
    });
    futures::stream::iter(0..500)
        .map(|i| {
            let app = &app;
            async move {
                let (status, body) = put_env(app, "busy", &format!("b{i}"), "?wait=0", None).await;
                assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;

    let started = Instant::now();
    let (status, body) = put_env(&app, "calm", "c1", "?wait=10", None).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        took < Duration::from_secs(2),
        "the calm tenant waited {took:?}"
    );
    let pending: i64 = sqlx::query_scalar(
        "select count(*) from environments where tenant_id = 'busy' and status = 'pending'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        pending, 500,
        "the busy tenant's work waits, and is not failed"
    );

    // Nothing was sent for the busy account inside a window a 429 closed.
    // Requests that passed the gate before the 429 came back may still land
    // just after it (they were already on their way): on a loaded 2-core
    // machine that takes up to a couple of hundred milliseconds. Anything
    // later inside the window would be a request the gate let through.
    let mut busy: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/v2/projects/proj-busy"))
        .collect();
    busy.sort_by_key(|r| r.at);
    assert!(!busy.is_empty());
    for pair in busy.windows(2) {
        let gap = (pair[1].at - pair[0].at).num_milliseconds();
        assert!(
            !(300..990).contains(&gap),
            "a request went out {gap} ms after a 429 that asked for 1000"
        );
    }
    eprintln!(
        "calm tenant's create took {took:?} behind {} throttled requests",
        busy.len()
    );
}
