//! Ownership and safety: adoption only of our own environment after a 409,
//! never taking over or deleting someone else's, the source or a critical
//! one; permanent LaunchDarkly errors end in `failed` with a readable error.

use chrono::Duration as ChronoDuration;
use ld_eaas::ids::EphemeralId;
use ld_eaas::jobs::run_due_jobs;
use ld_eaas::naming as keys;
use ld_eaas::simulator::{DEMO_ACCOUNT, Faults, SimEnvironment};
use reqwest::{Method, StatusCode};

use super::*;
use crate::support::helpers::assert_error;

/// The key generation 1 of `eph` gets for tenant `acme` under the defaults.
fn first_key(eph: &str) -> String {
    keys::environment_key("eph", &tenant("acme"), &EphemeralId::parse(eph).unwrap(), 1)
}

fn our_tags() -> Vec<String> {
    keys::environment_tags("ld-eaas.default", &tenant("acme"), &[])
}

#[tokio::test]
async fn after_a_crash_between_launchdarklys_201_and_our_commit_the_409_adopts_our_environment() {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    ready_tenant(&app, "acme").await;
    // LaunchDarkly already holds generation 1, created by us (our tags) but
    // never recorded.
    let mut landed = SimEnvironment::new(&first_key("pr-9"), "Preview pr-9", "7c3aed");
    landed.tags = our_tags();
    sim.add_environment(DEMO_ACCOUNT, "demo", landed.clone())
        .unwrap();

    let (status, body) = put_env(&app, "acme", "pr-9", "?wait=10", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["launchdarkly"]["client_side_id"], landed.id.as_str());
    assert_eq!(body["launchdarkly"]["sdk_key"], landed.api_key.as_str());
    assert_eq!(demo_envs(&sim).len(), 1, "adopted, not duplicated");
    let adopted: bool = sqlx::query_scalar(
        "select (details->>'adopted')::bool from audit_events where action = 'environment.ready'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(adopted);
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_adopted_on_retry() {
    let sim = start_sim().await;
    let app = spawn(&sim, false).await;
    ready_tenant(&app, "acme").await;
    // The create lands upstream, but we see a 502.
    sim.set_faults(Faults {
        error_after_commit_rate: 1.0,
        error_status: Some(502),
        max_injections: Some(1),
        ..Faults::none().scoped(
            Some(Method::POST),
            Some("/api/v2/projects/demo/environments"),
        )
    });
    let (status, _) = put_env(&app, "acme", "pr-1", "?wait=0", None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(run_due_jobs(&app.state).await.unwrap(), 1);
    let (_, body) = get_env(&app, "acme", "pr-1").await;
    assert_eq!(body["status"], "pending");
    assert!(
        body["last_error"].as_str().unwrap().contains("502"),
        "{body}"
    );
    assert_eq!(demo_envs(&sim).len(), 1, "it landed anyway");
    // Not due before its backoff; due after.
    assert_eq!(run_due_jobs(&app.state).await.unwrap(), 0);
    app.clock.advance(ChronoDuration::seconds(5));
    assert_eq!(run_due_jobs(&app.state).await.unwrap(), 1);
    let (_, body) = get_env(&app, "acme", "pr-1").await;
    assert_eq!(body["status"], "ready", "{body}");
    let upstream = demo_envs(&sim);
    assert_eq!(upstream.len(), 1);
    assert_eq!(
        body["launchdarkly"]["sdk_key"],
        upstream[0].api_key.as_str()
    );
}

#[tokio::test]
async fn a_foreign_environment_holding_our_key_is_never_taken_over_or_deleted() {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    ready_tenant(&app, "acme").await;
    let mut foreign = SimEnvironment::new(&first_key("pr-5"), "Someone else's", "000000");
    foreign.tags = vec!["ld-eaas".into(), "ld-eaas.other-deployment".into()];
    sim.add_environment(DEMO_ACCOUNT, "demo", foreign.clone())
        .unwrap();

    let (status, body) = put_env(&app, "acme", "pr-5", "?wait=10", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&body, "environment_failed");
    assert_eq!(body["environment"]["status"], "failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("left untouched"),
        "{body}"
    );
    assert!(body["environment"]["launchdarkly"]["sdk_key"].is_null());

    let (status, _) = delete_env(&app, "acme", "pr-5", "?wait=10").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let still = sim
        .environment(DEMO_ACCOUNT, "demo", &foreign.key)
        .expect("not deleted");
    assert_eq!(still.id, foreign.id);
    assert_eq!(still.name, "Someone else's");
    let untouched: Option<String> = sqlx::query_scalar(
        "select details->>'left_untouched' from audit_events where action = 'environment.deleted'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(untouched.unwrap().contains("ownership tags"));
    let deletes = sim
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count();
    assert_eq!(deletes, 0, "no delete was ever sent");
}

#[tokio::test]
async fn a_delete_launchdarkly_forbids_fails_with_its_reason_not_as_protected() {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    ready_tenant(&app, "acme").await;
    let (status, body) = put_env(&app, "acme", "pr-9", "?wait=10", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key = body["launchdarkly"]["environment_key"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.set_faults(
        Faults::always_error(403).scoped(Some(Method::DELETE), Some("/api/v2/projects/demo")),
    );

    let (status, body) = delete_env(&app, "acme", "pr-9", "?wait=10").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&body, "environment_delete_failed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("403 forbidden"), "{message}");
    assert_eq!(body["environment"]["status"], "failed");
    assert!(sim.environment(DEMO_ACCOUNT, "demo", &key).is_some());

    // Once LaunchDarkly allows it, deleting again succeeds.
    sim.set_faults(Faults::none());
    let (status, body) = delete_env(&app, "acme", "pr-9", "?wait=10").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(sim.environment(DEMO_ACCOUNT, "demo", &key).is_none());
}

#[tokio::test]
async fn a_put_repeated_after_a_failure_retries_and_answers_created() {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    ready_tenant(&app, "acme").await;
    sim.set_faults(
        Faults::always_error(403).scoped(Some(Method::POST), Some("/api/v2/projects/demo")),
    );
    let (status, body) = put_env(&app, "acme", "pr-8", "?wait=10", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    sim.set_faults(Faults::none());

    let (status, body) = put_env(&app, "acme", "pr-8", "?wait=10", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["generation"], 1, "the same generation, retried");
    assert!(body["launchdarkly"]["sdk_key"].is_string());
    let (status, _) = put_env(&app, "acme", "pr-8", "?wait=10", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_critical_environment_is_not_deleted_until_the_flag_is_cleared() {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    ready_tenant(&app, "acme").await;
    let (status, body) = put_env(&app, "acme", "pr-3", "?wait=10", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key = body["launchdarkly"]["environment_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut env = sim.environment(DEMO_ACCOUNT, "demo", &key).unwrap();
    env.critical = true;
    sim.add_environment(DEMO_ACCOUNT, "demo", env.clone())
        .unwrap();

    let (status, body) = delete_env(&app, "acme", "pr-3", "?wait=10").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "environment_protected");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("critical")
    );
    assert!(sim.environment(DEMO_ACCOUNT, "demo", &key).is_some());
    let (_, got) = get_env(&app, "acme", "pr-3").await;
    assert_eq!(got["status"], "failed");

    env.critical = false;
    sim.add_environment(DEMO_ACCOUNT, "demo", env).unwrap();
    let (status, body) = delete_env(&app, "acme", "pr-3", "?wait=10").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(sim.environment(DEMO_ACCOUNT, "demo", &key).is_none());
    // The seeded critical production environment was never touched either.
    assert!(
        sim.environment(DEMO_ACCOUNT, "demo", "production")
            .is_some()
    );
    let actions: Vec<String> = audit_actions(&app, "acme")
        .await
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert!(
        actions.contains(&"environment.delete_refused".to_owned()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn the_tenants_source_environment_is_never_deleted() {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    ready_tenant(&app, "acme").await;
    let (_, body) = put_env(&app, "acme", "golden", "?wait=10", None).await;
    let key = body["launchdarkly"]["environment_key"]
        .as_str()
        .unwrap()
        .to_owned();
    // The customer makes that environment the source of new ones.
    configure(&app, "acme", "demo", &key).await;
    let (status, body) = delete_env(&app, "acme", "golden", "?wait=10").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("source"),
        "{body}"
    );
    assert!(sim.environment(DEMO_ACCOUNT, "demo", &key).is_some());
    // New environments clone from it.
    let (status, body) = put_env(&app, "acme", "pr-1", "?wait=10", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["launchdarkly"]["source_environment_key"], key.as_str());
}

#[tokio::test]
async fn permanent_launchdarkly_errors_end_in_failed_with_a_readable_error() {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    // A token whose role was narrowed to reader after it connected (a reader
    // token is refused at connect time): LaunchDarkly answers 403 to the create.
    app.create_tenant("readonly").await;
    let sealed = app
        .state
        .config
        .keyring
        .seal(
            &tenant("readonly"),
            ld_eaas::crypto::SealedColumn::AccessToken,
            &secrecy::SecretString::from(READER_TOKEN.to_owned()),
        )
        .unwrap();
    ld_eaas::store::connections::save(
        &app.db,
        &tenant("readonly"),
        &ld_eaas::store::connections::NewConnection {
            auth_kind: ld_eaas::store::connections::AuthKind::ApiToken,
            account_id: DEMO_ACCOUNT,
            account_label: None,
            scope: None,
            access_token: &sealed,
            refresh_token: None,
            access_expires_at: None,
        },
        app.now(),
    )
    .await
    .unwrap();
    configure(&app, "readonly", "demo", "staging").await;
    let (status, body) = put_env(&app, "readonly", "pr-1", "?wait=10", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("403") && message.contains("writer"),
        "{message}"
    );

    ready_tenant(&app, "acme").await;
    let (status, body) = put_env(
        &app,
        "acme",
        "pr-2",
        "?wait=10",
        Some(serde_json::json!({"source_environment_key": "ghost"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("ghost"),
        "{body}"
    );

    sim.set_segment_count(DEMO_ACCOUNT, "demo", "test", 1_001)
        .unwrap();
    let (status, body) = put_env(
        &app,
        "acme",
        "pr-3",
        "?wait=10",
        Some(serde_json::json!({"source_environment_key": "test"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("segments"),
        "{body}"
    );

    assert!(demo_envs(&sim).is_empty());
    let failed: i64 =
        sqlx::query_scalar("select count(*) from audit_events where action = 'environment.failed'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(failed, 3);
    // A repeat of the same request tries again (the customer may have fixed it).
    sim.set_segment_count(DEMO_ACCOUNT, "demo", "test", 3)
        .unwrap();
    let (status, body) = put_env(
        &app,
        "acme",
        "pr-3",
        "?wait=10",
        Some(serde_json::json!({"source_environment_key": "test"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "ready");
}
