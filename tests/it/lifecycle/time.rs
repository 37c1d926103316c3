//! Time, driven by the injected clock with the workers off (jobs run by
//! hand): backoff and rate-limit resets, TTL expiry, the sweeper's grace
//! period, webhook retries; and offboarding.

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use chrono::Duration as ChronoDuration;
use ld_eaas::config::WebhookConfig;
use ld_eaas::jobs::run_due_jobs;
use ld_eaas::jobs::sweeper;
use ld_eaas::naming as keys;
use ld_eaas::simulator::{DEMO_ACCOUNT, Faults, SimEnvironment};
use ld_eaas::webhooks;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::*;

fn launchdarkly_calls(sim: &Simulator) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/v2/projects/demo/environments"))
        .count()
}

#[tokio::test]
async fn a_429_holds_the_work_until_the_reset_instant_and_no_request_goes_out_before() {
    let sim = start_sim().await;
    let app = spawn(&sim, false).await;
    ready_tenant(&app, "acme").await;
    sim.clear_requests();
    sim.set_faults(Faults {
        rate_limit_rate: 1.0,
        rate_limit_reset_after: std::time::Duration::from_secs(30),
        max_injections: Some(1),
        ..Faults::none().scoped(Some(Method::POST), None)
    });
    put_env(&app, "acme", "pr-1", "?wait=0", None).await;
    put_env(&app, "acme", "pr-2", "?wait=0", None).await;
    assert!(run_due_jobs(&app.state).await.unwrap() >= 1);
    let after_429 = launchdarkly_calls(&sim);
    assert_eq!(after_429, 1, "the second job was held back, not sent");
    let rate_limited = app.state.metrics.counter(
        "ld_eaas_launchdarkly_rate_limited_total",
        &[("operation", "create_environment")],
    );
    assert!(rate_limited >= 1);
    let (_, body) = get_env(&app, "acme", "pr-1").await;
    assert_eq!(body["status"], "pending");

    // Twenty seconds on: still before the reset, nothing is due or sent.
    app.clock.advance(ChronoDuration::seconds(20));
    assert_eq!(run_due_jobs(&app.state).await.unwrap(), 0);
    assert_eq!(launchdarkly_calls(&sim), after_429);
    // Past the reset, both go through.
    app.clock.advance(ChronoDuration::seconds(20));
    assert_eq!(run_due_jobs(&app.state).await.unwrap(), 2);
    for eph in ["pr-1", "pr-2"] {
        let (_, body) = get_env(&app, "acme", eph).await;
        assert_eq!(body["status"], "ready", "{body}");
    }
}

#[tokio::test]
async fn work_held_by_a_429_falls_due_at_the_reset_itself_not_a_random_while_after() {
    // LaunchDarkly's next window opens with its first request, so every
    // millisecond between the reset and the first job that runs is lost from
    // every window of a burst.
    let sim = start_sim().await;
    let app = spawn(&sim, false).await;
    ready_tenant(&app, "acme").await;
    sim.set_faults(Faults {
        rate_limit_rate: 1.0,
        rate_limit_reset_after: std::time::Duration::from_secs(30),
        max_injections: Some(1),
        ..Faults::none().scoped(Some(Method::POST), None)
    });
    for i in 0..6 {
        put_env(&app, "acme", &format!("pr-{i}"), "?wait=0", None).await;
    }
    let before = app.state.now();
    assert!(run_due_jobs(&app.state).await.unwrap() >= 1);
    let due: Vec<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("select run_at from jobs where state = 'queued' order by run_at")
            .fetch_all(&app.state.db)
            .await
            .unwrap();
    assert_eq!(due.len(), 6, "every job is held: {due:?}");
    let (first, last) = (due[0], due[5]);
    assert!(
        first >= before + ChronoDuration::seconds(29)
            && first <= before + ChronoDuration::seconds(31),
        "held until the reset 30 s on: {first} (now {before})"
    );
    assert!(
        last - first <= ChronoDuration::milliseconds(50),
        "all due within 50 ms of the reset, not scattered over a jitter: {due:?}"
    );
}

#[tokio::test]
async fn rate_limit_state_is_shared_by_replicas_on_one_database() {
    let sim = start_sim().await;
    let first = spawn(&sim, false).await;
    let keyring = first.state.config.keyring.clone();
    let base = sim.base_url();
    let second = crate::support::helpers::spawn_app_on(
        TestDatabase::shared(&first.database.url),
        &["--launchdarkly-url", &base],
        |c| {
            let mut c = fast(c, false);
            c.keyring = keyring;
            c
        },
    )
    .await;
    ready_tenant(&first, "acme").await;
    sim.clear_requests();
    sim.set_faults(Faults {
        rate_limit_rate: 1.0,
        rate_limit_reset_after: std::time::Duration::from_secs(30),
        max_injections: Some(1),
        ..Faults::none().scoped(Some(Method::POST), None)
    });
    put_env(&first, "acme", "pr-1", "?wait=0", None).await;
    run_due_jobs(&first.state).await.unwrap();
    assert_eq!(launchdarkly_calls(&sim), 1);
    // The other replica learns of the 429 from the database: its own new
    // job is held back without a request.
    put_env(&second, "acme", "pr-2", "?wait=0", None).await;
    second.clock.set(first.now());
    run_due_jobs(&second.state).await.unwrap();
    assert_eq!(
        launchdarkly_calls(&sim),
        1,
        "the second replica sent nothing"
    );
    let (_, body) = get_env(&second, "acme", "pr-2").await;
    assert_eq!(body["status"], "pending");
}

#[tokio::test]
async fn environments_past_their_ttl_are_deleted_and_nothing_else() {
    let sim = start_sim().await;
    let app = spawn(&sim, false).await;
    ready_tenant(&app, "acme").await;
    put_env(
        &app,
        "acme",
        "short",
        "?wait=0",
        Some(json!({"ttl_seconds": 3600})),
    )
    .await;
    put_env(&app, "acme", "forever", "?wait=0", None).await;
    run_due_jobs(&app.state).await.unwrap();
    assert_eq!(demo_envs(&sim).len(), 2);
    let (_, short) = get_env(&app, "acme", "short").await;
    assert!(short["expires_at"].is_string());

    app.clock.advance(ChronoDuration::minutes(59));
    assert_eq!(sweeper::expire_due(&app.state).await.unwrap(), 0);
    app.clock.advance(ChronoDuration::minutes(2));
    assert_eq!(sweeper::expire_due(&app.state).await.unwrap(), 1);
    assert_eq!(sweeper::expire_due(&app.state).await.unwrap(), 0, "once");
    run_due_jobs(&app.state).await.unwrap();

    let left: Vec<String> = demo_envs(&sim).into_iter().map(|e| e.key).collect();
    let (_, forever) = get_env(&app, "acme", "forever").await;
    assert_eq!(
        left,
        [forever["launchdarkly"]["environment_key"].as_str().unwrap()]
    );
    let (_, short) = get_env(&app, "acme", "short").await;
    assert_eq!(short["status"], "deleted");
    let actions = audit_actions(&app, "acme").await;
    assert!(actions.contains(&("environment.expired".to_owned(), Some("short".to_owned()))));
    // The seeded environments are untouched.
    assert_eq!(sim.environments(DEMO_ACCOUNT, "demo").len(), 4);
}

#[tokio::test]
async fn the_sweeper_deletes_only_recorded_generations_no_longer_live_after_the_grace_period() {
    let sim = start_sim().await;
    let app = spawn(&sim, false).await;
    ready_tenant(&app, "acme").await;
    put_env(&app, "acme", "managed", "?wait=0", None).await;
    put_env(&app, "acme", "late", "?wait=0", None).await;
    run_due_jobs(&app.state).await.unwrap();
    // "late" is deleted, then a create held somewhere lands after all.
    let (_, late) = get_env(&app, "acme", "late").await;
    let late_key = late["launchdarkly"]["environment_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let late_env = sim.environment(DEMO_ACCOUNT, "demo", &late_key).unwrap();
    delete_env(&app, "acme", "late", "?wait=0").await;
    run_due_jobs(&app.state).await.unwrap();
    assert!(sim.environment(DEMO_ACCOUNT, "demo", &late_key).is_none());
    sim.add_environment(DEMO_ACCOUNT, "demo", late_env).unwrap();
    // "replaced" is deleted, then someone makes another environment under its
    // key and tags: not the one we created, so never ours to delete.
    put_env(&app, "acme", "replaced", "?wait=0", None).await;
    run_due_jobs(&app.state).await.unwrap();
    let (_, replaced) = get_env(&app, "acme", "replaced").await;
    let replaced_key = replaced["launchdarkly"]["environment_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut impostor = sim
        .environment(DEMO_ACCOUNT, "demo", &replaced_key)
        .unwrap();
    delete_env(&app, "acme", "replaced", "?wait=0").await;
    run_due_jobs(&app.state).await.unwrap();
    impostor.id = "0123456789abcdef01234567".to_owned();
    sim.add_environment(DEMO_ACCOUNT, "demo", impostor).unwrap();
    // "guarded" lands late too, and someone has marked it critical since.
    put_env(&app, "acme", "guarded", "?wait=0", None).await;
    run_due_jobs(&app.state).await.unwrap();
    let (_, guarded) = get_env(&app, "acme", "guarded").await;
    let guarded_key = guarded["launchdarkly"]["environment_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut guarded_env = sim.environment(DEMO_ACCOUNT, "demo", &guarded_key).unwrap();
    delete_env(&app, "acme", "guarded", "?wait=0").await;
    run_due_jobs(&app.state).await.unwrap();
    guarded_env.critical = true;
    sim.add_environment(DEMO_ACCOUNT, "demo", guarded_env)
        .unwrap();

    let ours = keys::environment_tags("ld-eaas.default", &tenant("acme"), &[]);
    let with_tags = |key: &str, tags: Vec<String>, critical: bool| {
        let mut env = SimEnvironment::new(key, key, "112233");
        env.tags = tags;
        env.critical = critical;
        sim.add_environment(DEMO_ACCOUNT, "demo", env).unwrap();
    };
    // Our tags on a key we never recorded: we cannot have created it.
    with_tags("eph-unrecorded", ours.clone(), false);
    with_tags("hand-made", vec![], false);
    with_tags(
        "other-deployment",
        vec![
            "ld-eaas".into(),
            "ld-eaas.elsewhere".into(),
            keys::tenant_tag(&tenant("acme")),
        ],
        false,
    );
    with_tags(
        "other-tenant",
        keys::environment_tags("ld-eaas.default", &tenant("someone-else"), &[]),
        false,
    );
    let before = sim.environments(DEMO_ACCOUNT, "demo").len();

    // Scheduled sweeps: one per tenant per interval, however often asked,
    // due within the spread (a tenth of the interval, at most a minute).
    assert_eq!(sweeper::schedule_sweeps(&app.state).await.unwrap(), 1);
    assert_eq!(sweeper::schedule_sweeps(&app.state).await.unwrap(), 0);
    let spread = sweeper::sweep_spread(&app.state);
    assert_eq!(spread, ChronoDuration::minutes(1), "the default interval's");
    let due: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("select run_at from jobs where kind = 'sweep_tenant'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(
        due >= app.now() && due <= app.now() + spread,
        "due at {due}, scheduled at {}",
        app.now()
    );
    app.clock.advance(spread);
    run_due_jobs(&app.state).await.unwrap();
    assert_eq!(
        sweeper::schedule_sweeps(&app.state).await.unwrap(),
        0,
        "swept recently"
    );

    let sweep = || async {
        assert!(
            sweeper::enqueue_sweep(&app.state, &tenant("acme"))
                .await
                .unwrap()
        );
        run_due_jobs(&app.state).await.unwrap();
    };
    sweep().await; // first sighting
    assert_eq!(sim.environments(DEMO_ACCOUNT, "demo").len(), before);
    app.clock.advance(ChronoDuration::minutes(9));
    sweep().await; // still within the grace period
    assert_eq!(sim.environments(DEMO_ACCOUNT, "demo").len(), before);
    app.clock.advance(ChronoDuration::minutes(2));
    sweep().await;
    let mut left: Vec<String> = sim
        .environments(DEMO_ACCOUNT, "demo")
        .into_iter()
        .map(|e| e.key)
        .collect();
    left.sort();
    let (_, managed) = get_env(&app, "acme", "managed").await;
    let mut expected = vec![
        "eph-unrecorded".to_owned(),
        "hand-made".to_owned(),
        replaced_key,
        guarded_key,
        managed["launchdarkly"]["environment_key"]
            .as_str()
            .unwrap()
            .to_owned(),
        "other-deployment".to_owned(),
        "other-tenant".to_owned(),
        "production".to_owned(),
        "staging".to_owned(),
        "test".to_owned(),
    ];
    expected.sort();
    assert_eq!(left, expected);
    let swept: Vec<String> = sqlx::query_scalar(
        "select environment_key from audit_events where action = 'environment.orphan_deleted' order by environment_key",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(swept, vec![late_key]);
}

/// Each delivery's headers and body.
pub(crate) type Deliveries = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A webhook receiver that fails its first `failures` deliveries.
pub(crate) struct Receiver {
    pub(crate) url: String,
    pub(crate) received: Deliveries,
}

pub(crate) async fn receiver(failures: usize) -> Receiver {
    let received: Deliveries = Arc::default();
    let seen = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let mut seen = seen.lock().unwrap();
                seen.push((headers, body.to_vec()));
                if seen.len() <= failures {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, received }
}

/// Asserts the delivery's signature verifies with `HOOK_SECRET`, at the
/// instant it names, and not with another secret.
pub(crate) fn assert_signed(headers: &HeaderMap, body: &[u8]) {
    let signature = headers
        .get(webhooks::SIGNATURE_HEADER)
        .unwrap()
        .to_str()
        .unwrap();
    let t: i64 = signature
        .split(',')
        .next()
        .unwrap()
        .trim_start_matches("t=")
        .parse()
        .unwrap();
    assert!(
        webhooks::verify(HOOK_SECRET, signature, body, t, 0),
        "{signature}"
    );
    assert!(!webhooks::verify(
        "wrong-secret-value",
        signature,
        body,
        t,
        0
    ));
}

pub(crate) const HOOK_SECRET: &str = "whsec-test-0123456789";

#[tokio::test]
async fn webhooks_are_signed_and_a_failing_receiver_gets_retries() {
    let sim = start_sim().await;
    let hook = receiver(2).await;
    let url = hook.url.clone();
    let app = spawn_with(&sim, false, move |mut c| {
        c.webhook = Some(WebhookConfig {
            url: url::Url::parse(&url).unwrap(),
            secret: SecretString::from(HOOK_SECRET.to_owned()),
        });
        c
    })
    .await;
    ready_tenant(&app, "acme").await;
    put_env(&app, "acme", "pr-1", "?wait=0", None).await;
    run_due_jobs(&app.state).await.unwrap();

    assert_eq!(webhooks::deliver_due(&app.state).await.unwrap(), 1); // 500
    assert_eq!(
        webhooks::deliver_due(&app.state).await.unwrap(),
        0,
        "not before its backoff"
    );
    app.clock.advance(ChronoDuration::minutes(2));
    assert_eq!(webhooks::deliver_due(&app.state).await.unwrap(), 1); // 500
    app.clock.advance(ChronoDuration::minutes(5));
    assert_eq!(webhooks::deliver_due(&app.state).await.unwrap(), 1); // delivered
    app.clock.advance(ChronoDuration::hours(2));
    assert_eq!(
        webhooks::deliver_due(&app.state).await.unwrap(),
        0,
        "delivered once"
    );

    let received = hook.received.lock().unwrap().clone();
    assert_eq!(received.len(), 3);
    let ids: Vec<&str> = received
        .iter()
        .map(|(h, _)| h.get(webhooks::DELIVERY_HEADER).unwrap().to_str().unwrap())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "the same event each time"
    );
    for (headers, body) in &received {
        assert_signed(headers, body);
        let event: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(event["type"], "environment.ready");
        assert_eq!(event["tenant_id"], "acme");
        assert_eq!(event["data"]["ephemeral_id"], "pr-1");
        assert!(
            event["data"]["launchdarkly"]["sdk_key"].is_null(),
            "no secret in webhooks"
        );
    }
    let (attempts, delivered): (i32, bool) =
        sqlx::query_as("select attempts, delivered_at is not null from webhook_outbox")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((attempts, delivered), (3, true));

    delete_env(&app, "acme", "pr-1", "?wait=0").await;
    run_due_jobs(&app.state).await.unwrap();
    assert_eq!(webhooks::deliver_due(&app.state).await.unwrap(), 1);
    let last = hook.received.lock().unwrap().last().cloned().unwrap();
    let event: Value = serde_json::from_slice(&last.1).unwrap();
    assert_eq!(event["type"], "environment.deleted");
}

#[tokio::test]
async fn offboarding_deletes_managed_environments_upstream_then_forgets_the_tenant() {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    ready_tenant(&app, "acme").await;
    ready_tenant(&app, "neighbour").await;
    let mut keys = Vec::new();
    for eph in ["pr-1", "pr-2", "pr-3"] {
        let (status, body) = put_env(&app, "acme", eph, "?wait=10", None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        keys.push(
            body["launchdarkly"]["environment_key"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (_, theirs) = put_env(&app, "neighbour", "pr-1", "?wait=10", None).await;
    let their_key = theirs["launchdarkly"]["environment_key"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, body) = app.api(Method::DELETE, "/tenants/acme", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    eventually(Duration::from_secs(20), "tenant forgotten", || async {
        app.api(Method::GET, "/tenants/acme", None).await.0 == StatusCode::NOT_FOUND
    })
    .await;
    for key in &keys {
        assert!(
            sim.environment(DEMO_ACCOUNT, "demo", key).is_none(),
            "{key} deleted upstream"
        );
    }
    assert!(
        sim.environment(DEMO_ACCOUNT, "demo", &their_key).is_some(),
        "another tenant's stays"
    );
    for table in [
        "connections",
        "environments",
        "audit_events",
        "tenant_settings",
        "jobs",
    ] {
        let n: i64 = sqlx::query_scalar(&format!(
            "select count(*) from {table} where tenant_id = 'acme'"
        ))
        .fetch_one(&app.db)
        .await
        .unwrap();
        assert_eq!(n, 0, "{table} still holds the tenant's rows");
    }
}
