//! Per-preview choices end to end against the simulator over real HTTP:
//! another project and source, flag values served to every context (also
//! after a recreate), and each bad choice with the code that names it.

use chrono::Duration as ChronoDuration;
use ld_eaas::jobs::{run_due_jobs, sweeper};
use ld_eaas::simulator::{DEMO_ACCOUNT, Faults, SimContext};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use super::*;
use crate::support::helpers::assert_error;

/// Contexts the seeded `demo`/`staging` rules and individual targets match,
/// and one they do not.
fn demo_contexts() -> Vec<SimContext> {
    vec![
        SimContext::user("qa-alice"),
        SimContext::user("support-carol"),
        SimContext::user("someone").with("email", "x@beta.example.com"),
        SimContext::user("kiwi").with("country", "NZ"),
        SimContext::new("organization", "acme-corp"),
        SimContext::user("plain"),
    ]
}

fn served(sim: &Simulator, project: &str, env: &str, flag: &str, c: &SimContext) -> Value {
    sim.evaluate(DEMO_ACCOUNT, project, env, flag, c)
        .unwrap_or_else(|| panic!("{flag} in {project}/{env}"))
        .value
}

fn key_of(body: &Value) -> String {
    body["launchdarkly"]["environment_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn chosen_flag_values_reach_every_context_even_where_the_source_had_rules_and_again_after_a_recreate()
 {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    ready_tenant(&app, "acme").await;
    let contexts = demo_contexts();
    // The source really does serve different values to these contexts.
    let source: Vec<Value> = contexts
        .iter()
        .map(|c| served(&sim, "demo", "staging", "new-checkout", c))
        .collect();
    assert!(source.contains(&json!(true)) && source.contains(&json!(false)));

    let flags = json!({"new-checkout": false, "search-ranking": "ml-v2"});
    let (status, body) = put_env(
        &app,
        "acme",
        "pr-7",
        "?wait=10",
        Some(json!({"flags": flags})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["flags"], flags);
    let check = |key: &str| {
        for c in &contexts {
            assert_eq!(
                served(&sim, "demo", key, "new-checkout", c),
                json!(false),
                "{c:?}"
            );
            assert_eq!(
                served(&sim, "demo", key, "search-ranking", c),
                json!("ml-v2"),
                "{c:?}"
            );
        }
        // Flags not named keep the source's state.
        let (copy, staging) = (
            sim.environment(DEMO_ACCOUNT, "demo", key).unwrap(),
            sim.environment(DEMO_ACCOUNT, "demo", "staging").unwrap(),
        );
        for flag in ["dark-mode", "maintenance-banner"] {
            assert_eq!(copy.flags[flag], staging.flags[flag], "{flag}");
        }
    };
    let first = key_of(&body);
    check(&first);
    // The source itself is untouched.
    let after: Vec<Value> = contexts
        .iter()
        .map(|c| served(&sim, "demo", "staging", "new-checkout", c))
        .collect();
    assert_eq!(after, source);

    let (_, read) = get_env(&app, "acme", "pr-7").await;
    assert_eq!(read["flags"], flags);
    // The same choices again: the same environment; other choices: a conflict.
    let (status, _) = put_env(
        &app,
        "acme",
        "pr-7",
        "?wait=10",
        Some(json!({"flags": flags})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = put_env(
        &app,
        "acme",
        "pr-7",
        "?wait=10",
        Some(json!({"flags": {"new-checkout": true}})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "conflicting_request");

    let (status, body) = app
        .api(
            Method::POST,
            "/tenants/acme/environments/pr-7/recreate?wait=10",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = key_of(&body);
    assert_ne!(second, first);
    assert_eq!(body["flags"], flags);
    check(&second);
    super::eventually(
        std::time::Duration::from_secs(10),
        "old generation gone",
        || async { sim.environment(DEMO_ACCOUNT, "demo", &first).is_none() },
    )
    .await;
}

#[tokio::test]
async fn another_project_is_created_read_expired_deleted_and_swept_in_its_own_project() {
    let sim = start_sim().await;
    let app = spawn(&sim, false).await;
    ready_tenant(&app, "acme").await;
    let body = json!({"project_key": "mobile-app", "source_environment_key": "beta",
                      "flags": {"onboarding-flow": "video"}, "ttl_seconds": 3600});
    put_env(&app, "acme", "app-1", "?wait=0", Some(body)).await;
    put_env(
        &app,
        "acme",
        "app-2",
        "?wait=0",
        Some(json!({"project_key": "mobile-app", "source_environment_key": "beta"})),
    )
    .await;
    run_due_jobs(&app.state).await.unwrap();
    let (status, one) = get_env(&app, "acme", "app-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["status"], "ready", "{one}");
    assert_eq!(one["launchdarkly"]["project_key"], "mobile-app");
    assert_eq!(one["launchdarkly"]["source_environment_key"], "beta");
    assert_eq!(one["flags"], json!({"onboarding-flow": "video"}));
    let (one_key, two_key) = (
        key_of(&one),
        key_of(&get_env(&app, "acme", "app-2").await.1),
    );
    for c in [SimContext::user("tester-dan"), SimContext::user("nobody")] {
        assert_eq!(
            served(&sim, "mobile-app", &one_key, "onboarding-flow", &c),
            json!("video")
        );
    }
    assert!(
        demo_envs(&sim).is_empty(),
        "nothing in the settings' project"
    );

    // TTL: the first expires and is deleted from its own project.
    app.clock.advance(ChronoDuration::minutes(61));
    assert_eq!(sweeper::expire_due(&app.state).await.unwrap(), 1);
    run_due_jobs(&app.state).await.unwrap();
    assert!(
        sim.environment(DEMO_ACCOUNT, "mobile-app", &one_key)
            .is_none()
    );
    assert_eq!(get_env(&app, "acme", "app-1").await.1["status"], "deleted");

    // DELETE, then the create lands again late: the sweeper finds it there.
    let late = sim
        .environment(DEMO_ACCOUNT, "mobile-app", &two_key)
        .unwrap();
    let (status, _) = delete_env(&app, "acme", "app-2", "?wait=0").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    run_due_jobs(&app.state).await.unwrap();
    assert!(
        sim.environment(DEMO_ACCOUNT, "mobile-app", &two_key)
            .is_none()
    );
    sim.add_environment(DEMO_ACCOUNT, "mobile-app", late)
        .unwrap();
    for advance in [0, 11] {
        app.clock.advance(ChronoDuration::minutes(advance));
        assert!(
            sweeper::enqueue_sweep(&app.state, &tenant("acme"))
                .await
                .unwrap()
        );
        run_due_jobs(&app.state).await.unwrap();
    }
    assert!(
        sim.environment(DEMO_ACCOUNT, "mobile-app", &two_key)
            .is_none()
    );
    // The source and the rest of the project are untouched.
    let left: Vec<String> = sim
        .environments(DEMO_ACCOUNT, "mobile-app")
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(left, ["production", "beta"]);
}

#[tokio::test]
async fn each_bad_choice_fails_with_a_code_naming_it_is_not_retried_and_leaves_nothing_after_delete()
 {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    ready_tenant(&app, "acme").await;
    let cases = [
        (
            "p-1",
            json!({"project_key": "no-such-project", "source_environment_key": "beta"}),
            "unknown_project",
        ),
        (
            "p-2",
            json!({"project_key": "mobile-app", "source_environment_key": "staging"}),
            "unknown_source_environment",
        ),
        (
            "p-3",
            json!({"flags": {"no-such-flag": true}}),
            "unknown_flag",
        ),
        (
            "p-4",
            json!({"flags": {"new-checkout": "yes"}}),
            "invalid_flag_value",
        ),
        (
            "p-5",
            json!({"flags": {"search-ranking": "ml-v3"}}),
            "invalid_flag_value",
        ),
    ];
    for (eph, body, code) in &cases {
        let (status, answer) = put_env(&app, "acme", eph, "?wait=10", Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{eph}: {answer}");
        assert_error(&answer, code);
        assert_eq!(answer["environment"]["status"], "failed");
        assert_eq!(answer["environment"]["error_code"], *code);
        let (_, read) = get_env(&app, "acme", eph).await;
        assert_eq!(read["error_code"], *code);
    }
    // Not retried: no reconcile job is left to run, and LaunchDarkly hears
    // nothing more. (A sweep of the tenant's projects may be open meanwhile,
    // on the sweeper's own schedule: it is not a retry.)
    let open: Vec<(String, Option<Uuid>)> = sqlx::query_as(
        "select kind, environment_id from jobs where state in ('queued', 'running') order by kind",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let retried: Vec<_> = open
        .iter()
        .filter(|(kind, _)| kind != "sweep_tenant")
        .collect();
    assert!(retried.is_empty(), "open jobs: {open:?}");
    let heard = sim.requests().len();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    // (The sweeper may list a project's environments meanwhile, on its own
    // schedule; nothing else may go out: no create, no flag read or patch.)
    let later: Vec<String> = sim.requests()[heard..]
        .iter()
        .filter(|r| !(r.method == "GET" && r.path.ends_with("/environments")))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(later.is_empty(), "{later:?}");

    // The flag failures did create an environment; DELETE removes it.
    assert_eq!(demo_envs(&sim).len(), 3);
    for (eph, _, _) in &cases {
        let (status, body) = delete_env(&app, "acme", eph, "?wait=10").await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{eph}: {body}");
    }
    assert!(demo_envs(&sim).is_empty());
    assert!(upstream_with_tag(&sim, DEMO_ACCOUNT, "mobile-app", "ld-eaas").is_empty());
}

#[tokio::test]
async fn malformed_choices_are_refused_at_once_and_change_nothing() {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    ready_tenant(&app, "acme").await;
    let many: serde_json::Map<String, Value> = (0..51)
        .map(|i| (format!("flag-{i}"), json!(true)))
        .collect();
    for body in [
        json!({"project_key": "mobile-app"}),
        json!({"project_key": "bad key", "source_environment_key": "beta"}),
        json!({"flags": many}),
        json!({"flags": {"-bad": true}}),
        json!({"flags": {"new-checkout": null}}),
        json!({"flags": ["new-checkout"]}),
    ] {
        let (status, answer) = put_env(&app, "acme", "pr-1", "?wait=1", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_error(&answer, "invalid_request");
        let (status, _) = get_env(&app, "acme", "pr-1").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    assert!(demo_envs(&sim).is_empty());
}

#[tokio::test]
async fn a_flag_change_lost_on_the_way_back_is_finished_on_retry_without_repeating_it() {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    ready_tenant(&app, "acme").await;
    // Retries wait on the app clock: move it with real time.
    let _clock = ClockDriver::start(vec![app.clock.clone()]);
    // The first flag change lands, but its answer is lost (a 5xx after the work).
    sim.set_faults(Faults {
        error_after_commit_rate: 1.0,
        error_status: Some(503),
        method: Some(Method::PATCH),
        path_prefix: Some("/api/v2/flags/".to_owned()),
        max_injections: Some(1),
        ..Faults::default()
    });
    let flags = json!({"new-checkout": false, "search-ranking": "classic"});
    let (status, body) = put_env(
        &app,
        "acme",
        "pr-9",
        "?wait=15",
        Some(json!({"flags": flags})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key = key_of(&body);
    for c in demo_contexts() {
        assert_eq!(served(&sim, "demo", &key, "new-checkout", &c), json!(false));
        assert_eq!(
            served(&sim, "demo", &key, "search-ranking", &c),
            json!("classic")
        );
    }
    let requests = sim.requests();
    let count = |method: &str, path: &str| {
        requests
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    };
    // The retry adopted the environment it had created, and changed each flag once.
    assert_eq!(count("POST", "/api/v2/projects/demo/environments"), 2);
    assert_eq!(count("PATCH", "/api/v2/flags/demo/new-checkout"), 1);
    assert_eq!(count("PATCH", "/api/v2/flags/demo/search-ranking"), 1);
    let patch = requests.iter().find(|r| r.method == "PATCH").unwrap();
    assert!(
        patch.headers["content-type"].contains("domain-model=launchdarkly.semanticpatch"),
        "{:?}",
        patch.headers
    );
}

#[tokio::test]
async fn the_environments_page_shows_a_previews_project_and_flag_values() {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    ready_tenant(&app, "acme").await;
    let body = json!({"project_key": "mobile-app", "source_environment_key": "beta",
                      "flags": {"onboarding-flow": "short", "offline-mode": true}});
    let (status, answer) = put_env(&app, "acme", "pr-3", "?wait=10", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let browser = crate::ui::browser_for(&app, "acme").await;
    let res = browser.get(app.url("/environments")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("Project <code>mobile-app</code>, cloned from <code>beta</code>"));
    assert!(
        html.contains("<code>offline-mode</code>&nbsp;=&nbsp;<code>true</code>"),
        "{html}"
    );
    assert!(
        html.contains("<code>onboarding-flow</code>&nbsp;=&nbsp;<code>&quot;short&quot;</code>")
            || html
                .contains("<code>onboarding-flow</code>&nbsp;=&nbsp;<code>&#34;short&#34;</code>")
    );
}

#[tokio::test]
async fn offboarding_deletes_a_previews_environment_in_its_own_project() {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    ready_tenant(&app, "acme").await;
    let body = json!({"project_key": "mobile-app", "source_environment_key": "beta"});
    let (status, answer) = put_env(&app, "acme", "pr-1", "?wait=10", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (_, in_demo) = put_env(&app, "acme", "pr-2", "?wait=10", None).await;
    let (mobile_key, demo_key) = (key_of(&answer), key_of(&in_demo));
    assert!(
        sim.environment(DEMO_ACCOUNT, "mobile-app", &mobile_key)
            .is_some()
    );

    let (status, body) = app.api(Method::DELETE, "/tenants/acme", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    eventually(
        std::time::Duration::from_secs(20),
        "tenant forgotten",
        || async { app.api(Method::GET, "/tenants/acme", None).await.0 == StatusCode::NOT_FOUND },
    )
    .await;
    assert!(
        sim.environment(DEMO_ACCOUNT, "mobile-app", &mobile_key)
            .is_none()
    );
    assert!(sim.environment(DEMO_ACCOUNT, "demo", &demo_key).is_none());
    assert!(
        sim.environment(DEMO_ACCOUNT, "mobile-app", "beta")
            .is_some()
    );
}
