//! The flag calls against the simulator over real HTTP: reading a flag with its
//! variation ids, a semantic patch that makes every context get one value, the
//! typed errors, the headers, and the rate-limit gate.

use std::time::Duration;

use ld_eaas::launchdarkly::{
    API_VERSION, EnvironmentPost, FlagError, Instruction, LdError, SEMANTIC_PATCH_CONTENT_TYPE,
    SourceEnv,
};
use ld_eaas::simulator::{
    DEMO_ACCOUNT, DEMO_PROJECT, RateLimitConfig, SimContext, SimulatorConfig, fingerprint,
};
use serde_json::{Value, json};

use super::{READER, VENDOR, WRITER, api_token, sim_config, start, start_with, writer};

const GET_FLAG: &str = "GET /api/v2/flags/{projectKey}/{featureFlagKey}";

/// A clone of `staging` named `key`.
async fn preview(ld: &super::Ld, key: &str) {
    let mut post = EnvironmentPost::new(key, format!("Preview {key}"), "00AAFF");
    post.source = Some(SourceEnv::new("staging"));
    ld.client
        .create_environment(&writer(), DEMO_PROJECT, &post)
        .await
        .unwrap();
}

/// What `flag` serves in `env` to contexts the staging seed targets, matches by
/// rule, and leaves to the fallthrough.
fn served(ld: &super::Ld, env: &str, flag: &str) -> Vec<Value> {
    let contexts = [
        SimContext::user("qa-alice").with("email", "alice@beta.example.com"),
        SimContext::user("support-carol").with("country", "NZ"),
        SimContext::user("dave").with("email", "dave@beta.example.com"),
        SimContext::new("organization", "acme-corp"),
        SimContext::user("anyone"),
    ];
    contexts
        .iter()
        .map(|c| {
            ld.sim
                .evaluate(DEMO_ACCOUNT, DEMO_PROJECT, env, flag, c)
                .unwrap()
                .value
        })
        .collect()
}

#[tokio::test]
async fn a_flag_reads_with_its_variation_ids_and_its_targeting_in_one_environment() {
    let ld = start().await;
    let flag = ld
        .client
        .get_feature_flag(
            &api_token(READER),
            DEMO_PROJECT,
            "search-ranking",
            "staging",
        )
        .await
        .unwrap();
    assert_eq!(flag.kind.as_deref(), Some("multivariate"));
    let (index, variation) = flag.variation_for(&json!("ml-v1")).unwrap();
    assert_eq!(index, 1);
    let sim_flag = ld
        .sim
        .flag(DEMO_ACCOUNT, DEMO_PROJECT, "search-ranking")
        .unwrap();
    assert_eq!(
        variation.id.as_deref(),
        Some(sim_flag.variations[1].id.as_str())
    );
    assert!(flag.variation_for(&json!("ml-v9")).is_none());
    assert_eq!(flag.environments.len(), 1, "only the environment asked for");
    let staging = flag.environment("staging").unwrap();
    assert!(staging.on);
    assert_eq!(staging.rules.len(), 1);
    assert_eq!(staging.targets[0].values, ["qa-alice"]);
    assert!(!flag.serves_everyone("staging", &json!("ml-v2")));

    let query = ld.requests_to("/api/v2/flags/demo/search-ranking")[0]
        .query
        .clone();
    assert_eq!(query.as_deref(), Some("env=staging"));
}

#[tokio::test]
async fn unknown_flags_and_environments_are_named_in_the_error() {
    let ld = start().await;
    let auth = writer();
    let missing = ld
        .client
        .get_feature_flag(&auth, DEMO_PROJECT, "no-such-flag", "staging")
        .await;
    assert_eq!(
        missing,
        Err(FlagError::FlagNotFound {
            project: DEMO_PROJECT.into(),
            flag: "no-such-flag".into()
        })
    );
    assert!(missing.unwrap_err().to_string().contains("no-such-flag"));
    let no_env = ld
        .client
        .get_feature_flag(&auth, DEMO_PROJECT, "new-checkout", "no-such-env")
        .await;
    assert!(
        matches!(&no_env, Err(FlagError::EnvironmentNotFound { environment, .. }) if environment == "no-such-env"),
        "{no_env:?}"
    );
    let patch = ld
        .client
        .patch_feature_flag_semantic(
            &auth,
            DEMO_PROJECT,
            "no-such-flag",
            "staging",
            &[Instruction::TurnFlagOn],
        )
        .await;
    assert!(
        matches!(patch, Err(FlagError::FlagNotFound { .. })),
        "{patch:?}"
    );

    // A variation id the flag does not have: LaunchDarkly's 400, with its words.
    let bad = ld
        .client
        .patch_feature_flag_semantic(
            &auth,
            DEMO_PROJECT,
            "new-checkout",
            "staging",
            &Instruction::serve_to_everyone("not-a-variation"),
        )
        .await;
    let Err(FlagError::Ld(LdError::InvalidRequest { message })) = &bad else {
        panic!("expected a 400, got {bad:?}");
    };
    assert!(message.contains("not-a-variation"), "{message}");
    assert!(!bad.unwrap_err().is_retryable());
    assert!(
        ld.sim
            .environment(DEMO_ACCOUNT, DEMO_PROJECT, "staging")
            .unwrap()
            .flags["new-checkout"]
            .on,
        "nothing changed"
    );

    let reader = ld
        .client
        .patch_feature_flag_semantic(
            &api_token(READER),
            DEMO_PROJECT,
            "new-checkout",
            "staging",
            &[Instruction::TurnFlagOff],
        )
        .await;
    assert!(
        matches!(reader, Err(FlagError::Ld(LdError::Forbidden { .. }))),
        "{reader:?}"
    );
}

#[tokio::test]
async fn serving_one_value_to_everyone_overrides_the_cloned_rules_and_targets() {
    let ld = start().await;
    let auth = writer();
    preview(&ld, "pr-7").await;
    for (flag_key, value) in [
        ("new-checkout", json!(true)),
        ("search-ranking", json!("classic")),
    ] {
        let before = served(&ld, "pr-7", flag_key);
        assert!(
            before.iter().any(|v| *v != value),
            "the clone serves several values: {before:?}"
        );
        let flag = ld
            .client
            .get_feature_flag(&auth, DEMO_PROJECT, flag_key, "pr-7")
            .await
            .unwrap();
        let (_, variation) = flag.variation_for(&value).unwrap();
        let id = variation.id.clone().unwrap();
        let patched = ld
            .client
            .patch_feature_flag_semantic(
                &auth,
                DEMO_PROJECT,
                flag_key,
                "pr-7",
                &Instruction::serve_to_everyone(&id),
            )
            .await
            .unwrap();
        assert!(patched.serves_everyone("pr-7", &value), "{patched:?}");
        assert!(patched.version > flag.version);
        assert!(served(&ld, "pr-7", flag_key).iter().all(|v| *v == value));
        // The source is untouched.
        assert!(served(&ld, "staging", flag_key).iter().any(|v| *v != value));
    }

    let patches: Vec<_> = ld
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 2);
    let agent = format!("launchdarkly-{VENDOR}-int/{}", env!("CARGO_PKG_VERSION"));
    for request in &patches {
        assert_eq!(
            request.header("content-type"),
            Some(SEMANTIC_PATCH_CONTENT_TYPE)
        );
        assert_eq!(request.header("ld-api-version"), Some(API_VERSION));
        assert_eq!(request.header("user-agent"), Some(agent.as_str()));
        assert_eq!(
            request.header("authorization"),
            Some(fingerprint(WRITER).as_str())
        );
        let body = request.body.as_ref().unwrap();
        assert_eq!(body["environmentKey"], "pr-7");
        assert_eq!(body["instructions"][0], json!({"kind": "turnFlagOn"}));
    }
}

#[tokio::test]
async fn listing_flags_fetches_every_page_with_the_environment_summary() {
    let ld = start_with(sim_config(), |c| c.page_size = 1).await;
    let flags = ld
        .client
        .list_feature_flags(&writer(), DEMO_PROJECT, "staging")
        .await
        .unwrap();
    let mut keys: Vec<&str> = flags.iter().map(|f| f.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "dark-mode",
            "maintenance-banner",
            "new-checkout",
            "search-ranking"
        ]
    );
    assert!(flags.iter().all(|f| f.environment("staging").is_some()));
    assert_eq!(
        ld.requests_to("/api/v2/flags/demo").len(),
        4,
        "one page each"
    );
}

#[tokio::test]
async fn flag_calls_go_through_the_rate_limit_gate() {
    let mut rate_limits = RateLimitConfig {
        window: Duration::from_secs(30),
        ..RateLimitConfig::default()
    };
    rate_limits.route_limits.insert(GET_FLAG.to_owned(), 1);
    let ld = start_with(
        SimulatorConfig {
            rate_limits,
            ..sim_config()
        },
        |_| {},
    )
    .await;
    let auth = writer();
    ld.client
        .get_feature_flag(&auth, DEMO_PROJECT, "new-checkout", "staging")
        .await
        .unwrap();
    let sent = ld.sim.requests().len();
    let held = ld
        .client
        .get_feature_flag(&auth, DEMO_PROJECT, "new-checkout", "staging")
        .await;
    assert!(
        matches!(&held, Err(FlagError::Ld(LdError::RateLimited { .. }))),
        "{held:?}"
    );
    assert!(held.unwrap_err().is_retryable());
    assert_eq!(ld.sim.requests().len(), sent, "held back, nothing sent");
    // The patch is another route: it goes.
    ld.client
        .patch_feature_flag_semantic(
            &auth,
            DEMO_PROJECT,
            "new-checkout",
            "test",
            &[Instruction::TurnFlagOff],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_environment_url_the_client_builds_opens_the_simulators_page() {
    let ld = start().await;
    preview(&ld, "pr-9").await;
    let url = ld.client.environment_url(DEMO_PROJECT, "pr-9");
    let res = reqwest::get(url).await.unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Preview pr-9") && html.contains("pr-9"),
        "{html}"
    );
    assert!(html.contains("New checkout flow"), "its flags are listed");
}
