//! The job queue's claims against a real Postgres: the per-tenant limit,
//! leases that ran out, jobs the API offers its own replica's workers, the
//! API's wait taking a worker's outcome, and the places kept for tenant-wide
//! jobs (a wave of sweeps never holds every worker).

use chrono::Duration as ChronoDuration;
use ld_eaas::ids::EphemeralId;
use ld_eaas::jobs::sweeper;
use ld_eaas::simulator::Faults;
use ld_eaas::store::environments;
use ld_eaas::store::jobs::{self, Job, JobKind};
use uuid::Uuid;

use super::*;

const LEASE: ChronoDuration = ChronoDuration::seconds(60);

/// Queues one create job per ephemeral id for `tenant` (workers off).
async fn queue(app: &TestApp, tenant: &str, ids: &[&str]) -> Vec<Uuid> {
    let mut jobs = Vec::new();
    for id in ids {
        let (status, body) = put_env(app, tenant, id, "?wait=0", None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let job: Uuid = sqlx::query_scalar(
            "select j.id from jobs j join environments e on e.id = j.environment_id
              where e.tenant_id = $1 and e.ephemeral_id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
        jobs.push(job);
    }
    jobs
}

/// Marks a job running under another worker's lease, ending at `until`.
async fn hold(app: &TestApp, job: Uuid, until: chrono::DateTime<chrono::Utc>) {
    sqlx::query("update jobs set state = 'running', locked_by = 'elsewhere', locked_until = $2 where id = $1")
        .bind(job)
        .bind(until)
        .execute(&app.db)
        .await
        .unwrap();
}

async fn set_run_at(app: &TestApp, job: Uuid, at: chrono::DateTime<chrono::Utc>) {
    sqlx::query("update jobs set run_at = $2 where id = $1")
        .bind(job)
        .bind(at)
        .execute(&app.db)
        .await
        .unwrap();
}

async fn claim(app: &TestApp, per_tenant: i64) -> Option<Job> {
    jobs::claim(&app.db, "here", app.now(), LEASE, per_tenant, true)
        .await
        .unwrap()
}

async fn two_tenants(sim: &Simulator) -> TestApp {
    let app = spawn(sim, false).await;
    ready_tenant(&app, "heavy").await;
    ready_tenant(&app, "light").await;
    app
}

#[tokio::test]
async fn a_claim_passes_over_a_tenant_at_its_limit_however_old_its_backlog() {
    let sim = start_sim().await;
    let app = two_tenants(&sim).await;
    let heavy = queue(&app, "heavy", &["h1", "h2", "h3", "h4", "h5"]).await;
    let light = queue(&app, "light", &["l1"]).await;
    let now = app.now();
    hold(&app, heavy[0], now + LEASE).await;
    hold(&app, heavy[1], now + LEASE).await;
    for (i, job) in heavy[2..].iter().enumerate() {
        set_run_at(&app, *job, now - ChronoDuration::minutes(10 - i as i64)).await;
    }

    // Heavy holds 2 running: at a limit of 2 its older jobs wait and light's goes.
    let claimed = claim(&app, 2).await.expect("light's job is due");
    assert_eq!(claimed.id, light[0]);
    assert_eq!(claimed.tenant_id.as_str(), "light");
    assert_eq!(claimed.locked_by.as_deref(), Some("here"));
    assert_eq!(claimed.attempts, 1);
    assert!(claim(&app, 2).await.is_none(), "heavy is at its limit");

    // Below its limit, heavy's oldest due job goes first.
    let claimed = claim(&app, 3).await.expect("heavy may run another");
    assert_eq!(claimed.id, heavy[2]);
    assert!(claim(&app, 3).await.is_none(), "heavy is at 3 now");
}

#[tokio::test]
async fn a_job_whose_lease_ran_out_is_claimed_before_any_queued_one() {
    let sim = start_sim().await;
    let app = two_tenants(&sim).await;
    let heavy = queue(&app, "heavy", &["h1", "h2"]).await;
    let now = app.now();
    set_run_at(&app, heavy[1], now - ChronoDuration::hours(1)).await;
    // A worker elsewhere died holding h1: its lease ran out a second ago.
    hold(&app, heavy[0], now - ChronoDuration::seconds(1)).await;

    let claimed = claim(&app, 4).await.expect("two jobs can be claimed");
    assert_eq!(claimed.id, heavy[0], "the lapsed lease first");
    assert_eq!(claimed.locked_by.as_deref(), Some("here"));
    let until = claimed.locked_until.expect("a lease");
    assert!(
        (until - (now + LEASE)).num_milliseconds().abs() < 1,
        "a new lease of {LEASE}: {until}"
    );
    assert_eq!(claim(&app, 4).await.map(|j| j.id), Some(heavy[1]));
}

/// A first generation of `ephemeral_id` to insert.
fn generation<'a>(
    tenant: &'a TenantId,
    ephemeral_id: &'a EphemeralId,
) -> environments::NewEnvironment<'a> {
    environments::NewEnvironment {
        id: Uuid::new_v4(),
        tenant,
        ephemeral_id,
        generation: 1,
        request: json!({}),
        project_key: "demo",
        environment_key: ephemeral_id.as_str(),
        environment_name: ephemeral_id.as_str(),
        source_environment_key: "staging",
        color: "ffffff",
        tags: &[],
        flags: json!({}),
        expires_at: None,
    }
}

/// The job row as the queue holds it: (state, locked_by, attempts).
async fn job_row(app: &TestApp, job: Uuid) -> (String, Option<String>, i32) {
    sqlx::query_as("select state, locked_by, attempts from jobs where id = $1")
        .bind(job)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_statement_that_queues_a_job_claims_it_only_below_the_tenants_limit_and_never_one_already_open()
 {
    let sim = start_sim().await;
    let app = two_tenants(&sim).await;
    let heavy = tenant("heavy");
    let held = queue(&app, "heavy", &["h1", "h2"]).await;
    let now = app.now();
    // Heavy holds two running jobs elsewhere.
    for job in &held {
        hold(&app, *job, now + LEASE).await;
    }
    let claim = |per_tenant| jobs::Claim::new("here", now, LEASE, per_tenant);
    let audit = ("test", "environment.create_requested", &json!({}));
    let job_of = |environment: Uuid| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, Uuid>("select id from jobs where environment_id = $1")
                .bind(environment)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };

    // At its limit (2 running, 2 allowed) the PUT's job is queued as usual.
    let (p1, p2) = (
        EphemeralId::parse("p1").unwrap(),
        EphemeralId::parse("p2").unwrap(),
    );
    let at_limit = claim(2);
    let (row, claimed) = environments::insert_requested(
        &app.db,
        &generation(&heavy, &p1),
        audit,
        now,
        Some(&at_limit),
    )
    .await
    .unwrap()
    .and_then(environments::Requested::written)
    .expect("written");
    assert!(!claimed);
    let job = job_of(row.id).await;
    assert_eq!(job_row(&app, job).await, ("queued".into(), None, 0));

    // Below it, the same statement inserts the job running, under the claim.
    let below = claim(3);
    let (row, claimed) =
        environments::insert_requested(&app.db, &generation(&heavy, &p2), audit, now, Some(&below))
            .await
            .unwrap()
            .and_then(environments::Requested::written)
            .expect("written");
    assert!(claimed);
    assert_eq!(job_of(row.id).await, below.job_id);
    assert_eq!(
        job_row(&app, below.job_id).await,
        ("running".into(), Some("here".into()), 1)
    );
    // The job handed to the worker is the row the statement wrote.
    let job = below.job(&heavy, row.id, now);
    let (locked_until, run_at): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("select locked_until, run_at from jobs where id = $1")
            .bind(job.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    // (Postgres keeps microseconds.)
    let micros = |at: chrono::DateTime<chrono::Utc>| at.timestamp_micros();
    assert_eq!(
        (micros(locked_until), micros(run_at)),
        (job.locked_until.map_or(0, micros), micros(job.run_at))
    );

    // A replica shutting down gives a claimed job no worker started back to
    // the queue, due now, as if the claim had not been made; only the
    // replica that holds it can.
    assert!(
        !jobs::release(&app.db, below.job_id, "elsewhere", now)
            .await
            .unwrap()
    );
    assert!(
        jobs::release(&app.db, below.job_id, "here", now)
            .await
            .unwrap()
    );
    assert_eq!(
        job_row(&app, below.job_id).await,
        ("queued".into(), None, 0)
    );

    // A DELETE whose generation's job is still open brings it forward and
    // claims nothing: h1's job stays with the worker elsewhere.
    let (row, claimed) = environments::mark_absent_requested(
        &app.db,
        &heavy,
        &EphemeralId::parse("h1").unwrap(),
        ("test", "environment.delete_requested"),
        now,
        Some(&claim(10)),
    )
    .await
    .unwrap()
    .expect("h1 is live");
    assert!(!claimed);
    assert_eq!(job_of(row.id).await, held[0]);
    assert_eq!(
        job_row(&app, held[0]).await,
        ("running".into(), Some("elsewhere".into()), 0)
    );
}

async fn claimed_by(app: &TestApp, how: &str) -> u64 {
    app.counter(&format!(r#"ld_eaas_jobs_claimed_total{{how="{how}"}}"#))
        .await
}

/// Reconcile jobs in the queue, open or not.
async fn reconcile_jobs(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from jobs where kind = 'reconcile_environment'")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// Reconcile job attempts that ended done (`ld_eaas_jobs_total`).
async fn jobs_done(app: &TestApp) -> u64 {
    app.counter(r#"ld_eaas_jobs_total{kind="reconcile_environment",outcome="done"}"#)
        .await
}

#[tokio::test]
async fn the_api_offers_its_jobs_to_its_own_workers_and_waits_end_with_their_outcome() {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    ready_tenant(&app, "acme").await;
    for i in 0..3 {
        let (status, body) = put_env(&app, "acme", &format!("pr-{i}"), "?wait=10", None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["status"], "ready", "{body}");
        let key = body["launchdarkly"]["environment_key"].as_str().unwrap();
        let upstream = sim
            .environment(DEMO_ACCOUNT, "demo", key)
            .expect("created upstream");
        assert_eq!(
            body["launchdarkly"]["sdk_key"],
            upstream.api_key.as_str(),
            "{body}"
        );
        let (status, body) = delete_env(&app, "acme", &format!("pr-{i}"), "?wait=10").await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    assert_eq!(
        demo_envs(&sim).len(),
        0,
        "every environment made was deleted"
    );
    // Six reconcile jobs, each done; idle workers took what the API offered.
    // (Housekeeping may queue a sweep meanwhile: it is claimed from the queue.)
    // The worker counts an attempt just after its outcome commits, which the
    // waiting call may see first.
    eventually(
        Duration::from_secs(5),
        "six reconcile jobs done",
        || async { jobs_done(&app).await == 6 },
    )
    .await;
    let (offered, queued) = (
        claimed_by(&app, "offered").await,
        claimed_by(&app, "queue").await,
    );
    assert!(
        offered + queued >= 6 && offered <= 6,
        "offered {offered}, from the queue {queued}"
    );
    assert!(
        offered >= 1,
        "no job was offered: offered {offered}, from the queue {queued}"
    );
    // Finished, they are gone from the queue: none is left, open or not.
    assert_eq!(reconcile_jobs(&app).await, 0);
}

#[tokio::test]
async fn finished_reconcile_jobs_leave_the_queue_and_housekeeping_vacuums_it() {
    let sim = start_sim().await;
    let app = spawn(&sim, false).await;
    ready_tenant(&app, "acme").await;
    for i in 0..3 {
        let (status, body) = put_env(&app, "acme", &format!("pr-{i}"), "?wait=0", None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        ld_eaas::jobs::run_due_jobs(&app.state).await.unwrap();
        let (status, body) = delete_env(&app, "acme", &format!("pr-{i}"), "?wait=0").await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        ld_eaas::jobs::run_due_jobs(&app.state).await.unwrap();
    }
    let statuses: Vec<String> =
        sqlx::query_scalar("select status from environments where tenant_id = 'acme'")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(statuses, ["deleted", "deleted", "deleted"]);
    // Six jobs ran to their end and none is kept: the queue holds only
    // open work.
    let left: i64 = sqlx::query_scalar("select count(*) from jobs")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(left, 0);

    // Each job left dead row versions behind (queued, running, gone);
    // housekeeping vacuums them away rather than waiting for autovacuum.
    ld_eaas::jobs::housekeeping(&app.state).await.unwrap();
    eventually(
        Duration::from_secs(5),
        "the jobs table vacuumed",
        || async {
            let (vacuums, dead): (i64, i64) = sqlx::query_as(
                "select vacuum_count, n_dead_tup from pg_stat_user_tables where relname = 'jobs'",
            )
            .fetch_one(&app.db)
            .await
            .unwrap();
            vacuums >= 1 && dead == 0
        },
    )
    .await;
}

/// Settles `job` (its environment created) as the worker "here" would, with
/// `next` the claim of its next job; `None` when the statement wrote nothing.
async fn settle_created(
    app: &TestApp,
    tenant: &TenantId,
    job: &Job,
    next: Option<environments::NextClaim>,
) -> Option<(environments::EnvironmentRow, Option<Job>)> {
    let seen = environments::get(&app.db, tenant, job.environment_id.unwrap())
        .await
        .unwrap()
        .expect("the job's environment");
    settle_seen(app, tenant, &seen, job, next).await
}

async fn settle_seen(
    app: &TestApp,
    tenant: &TenantId,
    seen: &environments::EnvironmentRow,
    job: &Job,
    next: Option<environments::NextClaim>,
) -> Option<(environments::EnvironmentRow, Option<Job>)> {
    let settlement = created(tenant, seen, job.id, app.now(), next);
    environments::settle(&app.db, &settlement)
        .await
        .unwrap()
        .map(|(row, next)| (row, next.job()))
}

/// The outcome "created" of `job` on the generation `seen`, held by the
/// worker "here", with `next` the claim of its next job.
fn created(
    tenant: &TenantId,
    seen: &environments::EnvironmentRow,
    job: Uuid,
    now: chrono::DateTime<chrono::Utc>,
    next: Option<environments::NextClaim>,
) -> environments::Settlement {
    environments::Settlement {
        tenant: tenant.clone(),
        id: seen.id,
        revision: seen.revision,
        ephemeral_id: seen.ephemeral_id.clone(),
        environment_key: seen.environment_key.clone(),
        job,
        worker: "here".into(),
        outcome: environments::Settled::Created {
            client_side_id: "client-side".into(),
            sealed_sdk_key: "sealed-sdk".into(),
            sealed_mobile_key: "sealed-mobile".into(),
        },
        action: "environment.ready",
        details: json!({}),
        notice: "notice".into(),
        now,
        next,
    }
}

#[tokio::test]
async fn a_jobs_outcome_claims_the_workers_next_job_as_the_queue_would_and_only_when_it_settles() {
    let sim = start_sim().await;
    let app = two_tenants(&sim).await;
    let (heavy, light) = (tenant("heavy"), tenant("light"));
    let h = queue(&app, "heavy", &["h1", "h2", "h3", "h4"]).await;
    let l = queue(&app, "light", &["l1"]).await;
    let now = app.now();
    for (job, ago) in [(h[0], 5), (h[1], 4), (h[2], 3), (h[3], 2), (l[0], 1)] {
        set_run_at(&app, job, now - ChronoDuration::seconds(ago)).await;
    }
    // h3 runs elsewhere.
    hold(&app, h[2], now + LEASE).await;
    let next = |per_tenant| {
        Some(environments::NextClaim {
            until: now + LEASE,
            per_tenant,
            background: true,
        })
    };

    let first = claim(&app, 2).await.expect("a due job");
    assert_eq!(first.id, h[0]);
    // Heavy runs h1 here and h3 elsewhere, at its limit of 2; the settled
    // job is not counted, so its outcome claims the oldest due job: h2.
    let (row, second) = settle_created(&app, &heavy, &first, next(2))
        .await
        .expect("settled");
    assert_eq!(row.status, environments::Status::Ready);
    let second = second.expect("the next job claimed");
    assert_eq!(second.id, h[1]);
    assert_eq!(
        job_row(&app, h[1]).await,
        ("running".into(), Some("here".into()), 1)
    );
    assert_eq!((second.attempts, second.tenant_id.as_str()), (1, "heavy"));
    let gone: i64 = sqlx::query_scalar("select count(*) from jobs where id = $1")
        .bind(h[0])
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(gone, 0, "the settled job is finished");

    // With a limit of 1, heavy (h3 elsewhere) is full: light's l1 comes
    // before heavy's older h4.
    let (_, third) = settle_created(&app, &heavy, &second, next(1))
        .await
        .expect("settled");
    let third = third.expect("the next job claimed");
    assert_eq!(third.id, l[0]);
    assert_eq!(
        job_row(&app, h[3]).await,
        ("queued".into(), None, 0),
        "h4 waits"
    );

    // An outcome that settles nothing (the row moved on) claims nothing.
    let mut moved = environments::get(&app.db, &light, third.environment_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    moved.revision += 1;
    assert!(
        settle_seen(&app, &light, &moved, &third, next(2))
            .await
            .is_none()
    );
    assert_eq!(job_row(&app, h[3]).await, ("queued".into(), None, 0));
    // Nor one asked for no claim.
    let (_, none) = settle_created(&app, &light, &third, None)
        .await
        .expect("settled");
    assert!(none.is_none());
    assert_eq!(job_row(&app, h[3]).await, ("queued".into(), None, 0));
}

#[tokio::test]
async fn outcomes_settled_together_claim_next_jobs_in_order_within_each_tenants_limit() {
    let sim = start_sim().await;
    let app = two_tenants(&sim).await;
    let (heavy, light) = (tenant("heavy"), tenant("light"));
    let h = queue(&app, "heavy", &["h1", "h2", "h3", "h4", "h5"]).await;
    let l = queue(&app, "light", &["l1", "l2", "l3"]).await;
    let now = app.now();
    let order = [h[0], h[1], h[2], h[3], h[4], l[0], l[1]];
    for (i, job) in (0i64..).zip(order) {
        set_run_at(&app, job, now - ChronoDuration::seconds(10 - i)).await;
    }
    // h1, h2, h3, l1 and l2 run here; l3 ran elsewhere and its lease ran out.
    for expected in [h[0], h[1], h[2], l[0], l[1]] {
        assert_eq!(claim(&app, 3).await.expect("a due job").id, expected);
    }
    hold(&app, l[2], now - ChronoDuration::seconds(1)).await;
    let next = Some(environments::NextClaim {
        until: now + LEASE,
        per_tenant: 2,
        background: true,
    });
    let mut batch = Vec::new();
    for (tenant, job, moved) in [
        (&heavy, h[0], false),
        (&heavy, h[1], false),
        // Its row moved on: nothing is written for it and it takes no claim,
        // but h3 still runs, and counts against heavy's limit.
        (&heavy, h[2], true),
        (&light, l[0], false),
    ] {
        let mut row = seen(&app, tenant, job).await;
        if moved {
            row.revision += 1;
        }
        batch.push(created(tenant, &row, job, now, next));
    }
    // One that wants no claim.
    let row = seen(&app, &light, l[1]).await;
    batch.push(created(&light, &row, l[1], now, None));

    let answers = environments::settle_many(&app.db, &batch).await.unwrap();
    let next_of = |i: usize| match &answers[i] {
        Some((row, next)) => {
            assert_eq!(row.status, environments::Status::Ready);
            assert_eq!(row.client_side_id.as_deref(), Some("client-side"));
            match next {
                environments::Next::Claimed(job) => Some(job.id),
                environments::Next::Unknown => None,
                environments::Next::NoneDue => panic!("a batch never says none is due"),
            }
        }
        None => panic!("outcome {i} was not written"),
    };
    // The lease that ran out first (l3), then the oldest due job of a
    // tenant below its limit: heavy runs h3, so h4 but not h5.
    assert_eq!(next_of(0), Some(l[2]));
    assert_eq!(next_of(1), Some(h[3]));
    assert!(answers[2].is_none(), "the moved row is not settled");
    assert_eq!(next_of(3), None, "nothing left it may take");
    assert_eq!(next_of(4), None, "it asked for none");
    for job in [l[2], h[3]] {
        let (state, by, _) = job_row(&app, job).await;
        assert_eq!((state.as_str(), by.as_deref()), ("running", Some("here")));
    }
    assert_eq!(
        job_row(&app, h[4]).await,
        ("queued".into(), None, 0),
        "h5 waits"
    );
    assert_eq!(job_row(&app, h[2]).await.0, "running", "h3 is untouched");
    let left: i64 = sqlx::query_scalar("select count(*) from jobs where id = any($1)")
        .bind([h[0], h[1], l[0], l[1]].to_vec())
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(left, 0, "the settled jobs are finished");
    let audited: i64 = sqlx::query_scalar(
        "select count(*) from audit_events where action = 'environment.ready' and actor = 'system'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(audited, 4, "one audit row per settled outcome");
    let h3 = seen(&app, &heavy, h[2]).await;
    assert_eq!(h3.status, environments::Status::Pending);
}

/// The generation job `job` works on, as its worker saw it.
async fn seen(app: &TestApp, tenant: &TenantId, job: Uuid) -> environments::EnvironmentRow {
    let env: Uuid = sqlx::query_scalar("select environment_id from jobs where id = $1")
        .bind(job)
        .fetch_one(&app.db)
        .await
        .unwrap();
    environments::get(&app.db, tenant, env)
        .await
        .unwrap()
        .expect("the job's environment")
}

#[tokio::test]
async fn a_busy_worker_takes_its_next_job_from_its_last_jobs_outcome() {
    let sim = start_sim().await;
    // One worker, so it is busy whenever a job runs.
    let app = spawn_with(&sim, true, |mut c| {
        c.workers = 1;
        c
    })
    .await;
    ready_tenant(&app, "acme").await;
    let ids: Vec<String> = (0..6).map(|i| format!("pr-{i}")).collect();
    let puts = futures::future::join_all(
        ids.iter()
            .map(|id| put_env(&app, "acme", id, "?wait=0", None)),
    )
    .await;
    for (status, body) in puts {
        assert!(status.is_success(), "{status} {body}");
    }
    eventually(
        Duration::from_secs(10),
        "six reconcile jobs done",
        || async { jobs_done(&app).await == 6 },
    )
    .await;
    let ready: i64 = sqlx::query_scalar(
        "select count(*) from environments where tenant_id = 'acme' and status = 'ready'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(ready, 6);
    let (offered, queued, outcome) = (
        claimed_by(&app, "offered").await,
        claimed_by(&app, "queue").await,
        claimed_by(&app, "outcome").await,
    );
    // At most the first job was offered (the worker was idle); once a claim
    // found a backlog, each outcome claimed the next job.
    assert!(
        outcome >= 1 && offered + queued + outcome >= 6,
        "offered {offered}, from the queue {queued}, by an outcome {outcome}"
    );
    assert_eq!(reconcile_jobs(&app).await, 0);
}

#[tokio::test]
async fn a_job_an_outcome_claimed_that_no_worker_started_goes_back_to_the_queue_at_shutdown() {
    let sim = start_sim().await;
    let app = spawn_with(&sim, true, |mut c| {
        c.workers = 1;
        c
    })
    .await;
    ready_tenant(&app, "acme").await;
    // Slow LaunchDarkly, so the replica stops while its one worker is busy.
    sim.set_faults(ld_eaas::simulator::Faults {
        latency: Duration::from_millis(300),
        ..ld_eaas::simulator::Faults::none()
    });
    let ids = ["pr-1", "pr-2", "pr-3"];
    let puts = futures::future::join_all(
        ids.iter()
            .map(|id| put_env(&app, "acme", id, "?wait=0", None)),
    )
    .await;
    for (status, body) in puts {
        assert!(status.is_success(), "{status} {body}");
    }
    // The first job was offered to the idle worker; the second it claims
    // from the queue (a backlog), so that job's outcome claims the third.
    eventually(
        Duration::from_secs(10),
        "a job claimed from the queue",
        || async { claimed_by(&app, "queue").await >= 1 },
    )
    .await;
    // The clock moves on while the second job waits for LaunchDarkly, so a
    // write to the third job's row from here on shows in its `updated_at`.
    let third: (Uuid, chrono::DateTime<chrono::Utc>) = sqlx::query_as(
        "select id, updated_at from jobs where kind = 'reconcile_environment' and state = 'queued'",
    )
    .fetch_one(&app.db)
    .await
    .expect("one job still queued");
    app.clock.advance(ChronoDuration::seconds(1));
    let later = app.now();
    let mut app = app;
    app.stop_serving().await;
    sim.set_faults(ld_eaas::simulator::Faults::none());

    // The second job's outcome claimed the third; the worker, shutting down,
    // did not start it and gave it back, as if never claimed: queued, no
    // holder, no attempt, due now. (Never claimed, its row would still
    // read as the PUT wrote it.)
    let third_now: (
        String,
        Option<String>,
        i32,
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
    ) = sqlx::query_as(
        "select state, locked_by, attempts, run_at, updated_at from jobs where id = $1",
    )
    .bind(third.0)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let micros = |at: chrono::DateTime<chrono::Utc>| at.timestamp_micros();
    assert_eq!(
        (third_now.0.as_str(), third_now.1, third_now.2),
        ("queued", None, 0)
    );
    assert_eq!(micros(third_now.3), micros(later), "due now");
    assert_ne!(
        micros(third_now.4),
        micros(third.1),
        "written since the PUT"
    );
    assert_eq!(
        app.state
            .metrics
            .counter("ld_eaas_jobs_claimed_total", &[("how", "outcome")]),
        0,
        "no worker ran it"
    );
    let pending: i64 = sqlx::query_scalar(
        "select count(*) from environments where tenant_id = 'acme' and status = 'pending'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(pending, 1);
}

/// The queued sweep of `tenant`, due since `ago` (workers off).
async fn queue_sweep(app: &TestApp, tenant_id: &str, ago: ChronoDuration) -> Uuid {
    assert!(
        sweeper::enqueue_sweep(&app.state, &tenant(tenant_id))
            .await
            .unwrap()
    );
    let id: Uuid = sqlx::query_scalar(
        "select id from jobs where tenant_id = $1 and kind = 'sweep_tenant' and state = 'queued'",
    )
    .bind(tenant_id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    set_run_at(app, id, app.now() - ago).await;
    id
}

#[tokio::test]
async fn a_claim_without_a_background_place_passes_over_tenant_wide_jobs() {
    let sim = start_sim().await;
    let app = two_tenants(&sim).await;
    let now = app.now();
    let sweep = queue_sweep(&app, "heavy", ChronoDuration::minutes(10)).await;
    let creates = queue(&app, "light", &["l1", "l2"]).await;
    set_run_at(&app, creates[0], now - ChronoDuration::minutes(2)).await;
    set_run_at(&app, creates[1], now - ChronoDuration::minutes(1)).await;
    let claim_with = |background| jobs::claim(&app.db, "here", now, LEASE, 4, background);

    // The sweep is the oldest due job, and is passed over.
    let first = claim_with(false).await.unwrap().expect("a create is due");
    assert_eq!(first.id, creates[0]);
    // So is it by the claim a job's outcome makes for the worker's next job.
    let next = environments::NextClaim {
        until: now + LEASE,
        per_tenant: 4,
        background: false,
    };
    let (_, second) = settle_created(&app, &tenant("light"), &first, Some(next))
        .await
        .expect("settled");
    assert_eq!(second.map(|j| j.id), Some(creates[1]));
    assert!(
        claim_with(false).await.unwrap().is_none(),
        "only the sweep is left"
    );
    // With a place, it is claimed.
    let swept = claim_with(true).await.unwrap().expect("the sweep");
    assert_eq!((swept.id, swept.kind), (sweep, JobKind::SweepTenant));

    // A sweep whose worker died (its lease ran out) likewise waits for a
    // claim with a place.
    hold(&app, sweep, now - ChronoDuration::seconds(1)).await;
    assert!(claim_with(false).await.unwrap().is_none());
    let again = claim_with(true).await.unwrap().expect("the lapsed sweep");
    assert_eq!(again.id, sweep);
}

#[tokio::test]
async fn a_wave_of_sweeps_takes_a_quarter_of_the_workers_and_previews_go_on_beside_it() {
    let sim = start_sim().await;
    // Four workers: one place for tenant-wide jobs.
    let app = spawn_with(&sim, true, |mut config| {
        config.workers = 4;
        config.lifecycle.launchdarkly_timeout = Duration::from_secs(10);
        config
    })
    .await;
    let tenants = ["wave-a", "wave-b", "wave-c", "wave-d"];
    for id in tenants {
        ready_tenant(&app, id).await;
    }
    // Housekeeping scheduled each new tenant's first sweep, due within the
    // spread (the app's clock stands still here, so not yet).
    let queued_sweeps =
        "select count(*) from jobs where kind = 'sweep_tenant' and state = 'queued'";
    eventually(Duration::from_secs(10), "the sweeps scheduled", || async {
        sqlx::query_scalar::<_, i64>(queued_sweeps)
            .fetch_one(&app.db)
            .await
            .unwrap()
            == 4
    })
    .await;

    // Listing a project's environments (what a sweep does) now takes 3 s.
    sim.set_faults(
        Faults {
            latency: Duration::from_secs(3),
            ..Faults::none()
        }
        .scoped(
            Some(Method::GET),
            Some("/api/v2/projects/demo/environments"),
        ),
    );
    // As many sweeps as there are workers fall due at once.
    sqlx::query("update jobs set run_at = $1 where kind = 'sweep_tenant'")
        .bind(app.now())
        .execute(&app.db)
        .await
        .unwrap();
    let running_sweeps =
        "select count(*) from jobs where kind = 'sweep_tenant' and state = 'running'";
    eventually(Duration::from_secs(5), "a sweep running", || async {
        sqlx::query_scalar::<_, i64>(running_sweeps)
            .fetch_one(&app.db)
            .await
            .unwrap()
            > 0
    })
    .await;
    // How many run at once, sampled until they are all done.
    let most = {
        let db = app.db.clone();
        tokio::spawn(async move {
            let mut most = 0;
            loop {
                let (running, open): (i64, i64) = sqlx::query_as(
                    "select count(*) filter (where state = 'running'), count(*)
                       from jobs where kind = 'sweep_tenant' and state in ('queued', 'running')",
                )
                .fetch_one(&db)
                .await
                .unwrap();
                most = most.max(running);
                if open == 0 {
                    return most;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // A preview is created while the sweeps run, far sooner than a sweep's
    // 3 s: it never waits for a worker. (Its create calls LaunchDarkly with
    // a POST, which is not slowed.)
    let started = std::time::Instant::now();
    let (status, body) = put_env(&app, "wave-a", "beside-the-sweeps", "?wait=30", None).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "ready", "{body}");
    assert!(
        took < Duration::from_millis(1500),
        "the preview waited {took:?} behind the sweeps"
    );

    let most = tokio::time::timeout(Duration::from_secs(30), most)
        .await
        .expect("the sweeps finish")
        .unwrap();
    assert_eq!(most, 1, "sweeps running at once on 4 workers");
}

#[tokio::test]
async fn scheduled_sweeps_fall_due_spread_over_a_tenth_of_the_interval() {
    let sim = start_sim().await;
    let app = spawn(&sim, false).await;
    for id in ["spread-a", "spread-b", "spread-c", "spread-d"] {
        ready_tenant(&app, id).await;
    }
    let now = app.now();
    assert_eq!(sweeper::schedule_sweeps(&app.state).await.unwrap(), 4);
    let spread = sweeper::sweep_spread(&app.state);
    let due: Vec<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("select run_at from jobs where kind = 'sweep_tenant' order by run_at")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert!(
        due.iter().all(|at| *at >= now && *at <= now + spread),
        "{due:?} not within {spread} of {now}"
    );
    assert!(
        due.windows(2).all(|pair| pair[0] != pair[1]),
        "due together: {due:?}"
    );
}
