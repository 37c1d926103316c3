//! Flags in the simulator over real HTTP: seeded flags, getFeatureFlags /
//! getFeatureFlag, semantic and JSON patches, cloning, limits and faults, and the
//! environment page.

use std::time::Duration;

use ld_eaas::simulator::{
    DEMO_PROJECT, EvalReason, Faults, RateLimitConfig, SimContext, SimulatorConfig,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{ACCOUNT, Answer, READER, Sim, WRITER, base_config, env_post, read, start, start_with};

pub const SEMANTIC: &str = "application/json; domain-model=launchdarkly.semanticpatch";
const FLAGS: &str = "/api/v2/flags/demo";

/// A PATCH with `Content-Type: content_type` and a raw body.
pub async fn patch_raw(s: &Sim, path: &str, auth: &str, content_type: &str, body: &str) -> Answer {
    let res = s
        .http
        .request(Method::PATCH, s.url(path))
        .header("Authorization", auth)
        .header("LD-API-Version", "20240415")
        .header("Content-Type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    read(res).await
}

pub async fn semantic(s: &Sim, flag: &str, auth: &str, body: &Value) -> Answer {
    let path = format!("{FLAGS}/{flag}");
    patch_raw(s, &path, auth, SEMANTIC, &body.to_string()).await
}

pub async fn json_patch(s: &Sim, flag: &str, auth: &str, body: &Value) -> Answer {
    let path = format!("{FLAGS}/{flag}");
    patch_raw(s, &path, auth, "application/json", &body.to_string()).await
}

/// Clones `staging` into a new environment `key`.
pub async fn clone_staging(s: &Sim, key: &str) {
    let mut body = env_post(key);
    body["source"] = json!({"key": "staging"});
    s.post("/api/v2/projects/demo/environments", WRITER, &body)
        .await
        .assert(StatusCode::CREATED);
}

/// The variation id of `value` on a flag's representation.
pub fn variation_id(flag: &Value, value: &Value) -> String {
    flag["variations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["value"] == *value)
        .unwrap_or_else(|| panic!("no variation {value} in {flag}"))["_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Contexts that meet every rule and target the seed puts on staging, and some
/// that meet none.
pub fn contexts() -> Vec<SimContext> {
    let mut all = vec![
        SimContext::user("qa-alice").with("email", "alice@beta.example.com"),
        SimContext::user("qa-bob"),
        SimContext::user("support-carol").with("country", "NZ"),
        SimContext::user("dave").with("email", "dave@beta.example.com"),
        SimContext::user("erin").with("country", "AU"),
        SimContext::new("organization", "acme-corp"),
        SimContext::new("device", "phone-1"),
    ];
    all.extend((0..50).map(|i| SimContext::user(&format!("anyone-{i}"))));
    all
}

/// The values `flag` serves in `env` to [`contexts`].
pub fn served(s: &Sim, env: &str, flag: &str) -> Vec<Value> {
    contexts()
        .iter()
        .map(|c| {
            s.sim
                .evaluate(ACCOUNT, DEMO_PROJECT, env, flag, c)
                .unwrap()
                .value
        })
        .collect()
}

#[tokio::test]
async fn every_seeded_project_has_a_boolean_and_a_multivariate_flag() {
    let s = start().await;
    let (projects, _) = s.walk("/api/v2/projects", READER).await;
    assert!(projects.len() >= 3);
    for project in projects {
        let key = project["key"].as_str().unwrap();
        let (flags, _) = s.walk(&format!("/api/v2/flags/{key}"), READER).await;
        let kinds: Vec<&str> = flags.iter().map(|f| f["kind"].as_str().unwrap()).collect();
        assert!(kinds.contains(&"boolean"), "{key}: {kinds:?}");
        let multivariate = flags
            .iter()
            .find(|f| f["kind"] == "multivariate")
            .unwrap_or_else(|| panic!("{key} has no multivariate flag"));
        let values = multivariate["variations"].as_array().unwrap();
        assert!(values.len() >= 2 && values.iter().all(|v| v["value"].is_string()));
        assert!(
            values
                .iter()
                .all(|v| v["_id"].as_str().is_some_and(|i| !i.is_empty()))
        );
    }
}

#[tokio::test]
async fn the_source_environment_has_a_rule_and_individual_targets() {
    let s = start().await;
    let flag = s
        .get(&format!("{FLAGS}/new-checkout?env=staging"), READER)
        .await;
    let flag = flag.assert(StatusCode::OK);
    let envs = flag["environments"].as_object().unwrap();
    assert_eq!(envs.keys().collect::<Vec<_>>(), ["staging"], "env filters");
    let staging = &envs["staging"];
    assert_eq!(staging["rules"].as_array().unwrap().len(), 1);
    assert!(staging["rules"][0]["_id"].is_string());
    assert_eq!(staging["rules"][0]["clauses"][0]["op"], "endsWith");
    assert!(!staging["targets"].as_array().unwrap().is_empty());
    assert_eq!(staging["contextTargets"][0]["contextKind"], "organization");
    assert_eq!(staging["_environmentName"], "Staging");

    // Not one value for everyone: targets, the rule and the fallthrough differ.
    let reasons: Vec<EvalReason> = contexts()
        .iter()
        .map(|c| {
            s.sim
                .evaluate(ACCOUNT, DEMO_PROJECT, "staging", "new-checkout", c)
                .unwrap()
                .reason
        })
        .collect();
    for wanted in [
        EvalReason::TargetMatch,
        EvalReason::RuleMatch(0),
        EvalReason::Fallthrough,
    ] {
        assert!(reasons.contains(&wanted), "{wanted:?} in {reasons:?}");
    }
    let values = served(&s, "staging", "new-checkout");
    assert!(values.contains(&json!(true)) && values.contains(&json!(false)));

    // Unknown flag or project: LaunchDarkly's 404.
    s.get(&format!("{FLAGS}/nope"), READER)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    s.get("/api/v2/flags/nope/new-checkout", READER)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn flag_lists_page_like_launchdarkly_and_summarise_unless_asked() {
    let s = start().await;
    let (all, pages) = s
        .walk(&format!("{FLAGS}?limit=1&env=staging&summary=0"), READER)
        .await;
    assert_eq!(all.len(), 4);
    assert_eq!(pages, 4, "one flag a page");
    // The links carried env and summary along: every page has the full staging config.
    for flag in &all {
        let staging = &flag["environments"]["staging"];
        assert!(staging["rules"].is_array(), "{flag}");
        assert!(flag["environments"].get("production").is_none());
    }
    let summary = s.get(&format!("{FLAGS}?env=staging"), READER).await;
    let first = &summary.assert(StatusCode::OK)["items"][0];
    assert!(first["environments"]["staging"].get("rules").is_none());
    assert!(first["environments"]["staging"]["_summary"]["variations"].is_object());
    let every_env = s.get(FLAGS, READER).await;
    assert_eq!(
        every_env.body["items"][0]["environments"]
            .as_object()
            .unwrap()
            .len(),
        3
    );
    let found = s.get(&format!("{FLAGS}?filter=query:check"), READER).await;
    assert_eq!(found.body["totalCount"], 1);
    assert_eq!(found.body["items"][0]["key"], "new-checkout");
    let sorted = s.get(&format!("{FLAGS}?sort=-key"), READER).await;
    assert_eq!(sorted.body["items"][0]["key"], "search-ranking");
    s.get(&format!("{FLAGS}?summary=maybe"), READER)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    s.get(&format!("{FLAGS}?filter=colour:red"), READER)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn a_semantic_patch_makes_every_context_get_one_value_where_the_source_had_rules() {
    let s = start().await;
    clone_staging(&s, "preview-1").await;
    let flag = s.get(&format!("{FLAGS}/search-ranking"), READER).await.body;
    let before = s.sim.flag(ACCOUNT, DEMO_PROJECT, "search-ranking").unwrap();
    let ml_v1 = variation_id(&flag, &json!("ml-v1"));
    let body = json!({
        "environmentKey": "preview-1",
        "comment": "ld-eaas: flag values for this preview",
        "instructions": [
            {"kind": "turnFlagOn"},
            {"kind": "updateFallthroughVariationOrRollout", "variationId": ml_v1},
            {"kind": "updateOffVariation", "variationId": ml_v1},
            {"kind": "replaceRules", "rules": []},
            {"kind": "replaceTargets", "targets": []},
        ]
    });
    let answer = semantic(&s, "search-ranking", WRITER, &body).await;
    let patched = answer.assert(StatusCode::OK);
    let config = &patched["environments"]["preview-1"];
    assert_eq!(config["rules"], json!([]));
    assert_eq!(config["fallthrough"], json!({"variation": 1}));
    assert!(patched["_version"].as_i64() > Some(before.version));

    assert!(
        served(&s, "preview-1", "search-ranking")
            .iter()
            .all(|v| *v == json!("ml-v1"))
    );
    // The source keeps its rules and targets.
    let staging = served(&s, "staging", "search-ranking");
    assert!(staging.contains(&json!("classic")) && staging.contains(&json!("ml-v2")));

    let logged = s
        .sim
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(logged.path, "/api/v2/flags/demo/search-ranking");
    assert_eq!(logged.header("content-type"), Some(SEMANTIC));
    assert_eq!(logged.status, Some(200));
    assert_eq!(logged.body.as_ref().unwrap()["environmentKey"], "preview-1");
}

#[tokio::test]
async fn semantic_instructions_do_what_launchdarkly_documents() {
    let s = start().await;
    clone_staging(&s, "p").await;
    let flag = s
        .get(&format!("{FLAGS}/new-checkout?env=p"), READER)
        .await
        .body;
    let (yes, no) = (
        variation_id(&flag, &json!(true)),
        variation_id(&flag, &json!(false)),
    );
    let rule_id = flag["environments"]["p"]["rules"][0]["_id"].clone();
    let run = |instructions: Value| {
        let body = json!({"environmentKey": "p", "instructions": instructions});
        let s = &s;
        async move {
            let answer = semantic(s, "new-checkout", WRITER, &body).await;
            answer.assert(StatusCode::OK)["environments"]["p"].clone()
        }
    };
    let eval = |key: &str, email: &str| {
        let c = SimContext::user(key).with("email", email);
        s.sim
            .evaluate(ACCOUNT, DEMO_PROJECT, "p", "new-checkout", &c)
            .unwrap()
            .value
    };
    assert_eq!(
        eval("dave", "dave@beta.example.com"),
        json!(true),
        "the rule"
    );

    let config = run(json!([{"kind": "removeRule", "ruleId": rule_id}])).await;
    assert_eq!(config["rules"], json!([]));
    assert_eq!(eval("dave", "dave@beta.example.com"), json!(false));
    // Removing a rule that is not there does nothing.
    run(json!([{"kind": "removeRule", "ruleId": "gone"}])).await;

    assert_eq!(eval("qa-bob", ""), json!(true));
    run(json!([{"kind": "removeTargets", "variationId": yes, "values": ["qa-bob"]}])).await;
    assert_eq!(eval("qa-bob", ""), json!(false));
    run(json!([{"kind": "addTargets", "contextKind": "user", "variationId": yes, "values": ["zed"]}])).await;
    assert_eq!(eval("zed", ""), json!(true));
    let config = run(json!([{"kind": "clearTargets", "variationId": yes}])).await;
    assert_eq!(eval("zed", ""), json!(false));
    assert!(
        config["contextTargets"].as_array().unwrap().is_empty(),
        "organization targets of that variation went too"
    );
    assert_eq!(config["targets"][0]["values"], json!(["support-carol"]));

    let config = run(json!([
        {"kind": "turnFlagOff"},
        {"kind": "updateOffVariation", "variationId": yes},
    ]))
    .await;
    assert_eq!(
        (config["on"].clone(), config["offVariation"].clone()),
        (json!(false), json!(0))
    );
    assert_eq!(eval("anyone", ""), json!(true));
    run(
        json!([{"kind": "turnFlagOn"}, {"kind": "updateFallthroughVariationOrRollout",
        "rolloutWeights": {yes.clone(): 50000, no.clone(): 50000}}]),
    )
    .await;
    let values: Vec<Value> = (0..200).map(|i| eval(&format!("u{i}"), "")).collect();
    assert!(
        values.contains(&json!(true)) && values.contains(&json!(false)),
        "a 50/50 rollout"
    );
    let config =
        run(json!([{"kind": "updateFallthroughVariationOrRollout", "variationId": no}])).await;
    assert_eq!(config["fallthrough"], json!({"variation": 1}));
    let version = config["version"].as_i64().unwrap();
    let config = run(json!([{"kind": "replaceTargets", "targets": [
        {"contextKind": "device", "variationId": yes, "values": ["phone-1"]}
    ]}]))
    .await;
    assert_eq!(config["version"].as_i64(), Some(version + 1));
    assert_eq!(config["targets"], json!([]));
    assert_eq!(config["contextTargets"][0]["values"], json!(["phone-1"]));
}

#[tokio::test]
async fn bad_semantic_patches_are_launchdarkly_400s_and_change_nothing() {
    let s = start().await;
    let before = s.sim.environments(ACCOUNT, DEMO_PROJECT);
    let flag_before = s.sim.flag(ACCOUNT, DEMO_PROJECT, "new-checkout").unwrap();
    let yes = flag_before.variations[0].id.clone();
    let cases = [
        (
            json!({"environmentKey": "staging", "instructions": [{"kind": "turnFlagOn"}, {"kind": "makeItSo"}]}),
            "makeItSo",
        ),
        (
            json!({"environmentKey": "staging", "instructions": [{"kind": "updateOffVariation", "variationId": "no-such-id"}]}),
            "no-such-id",
        ),
        (
            json!({"environmentKey": "nowhere", "instructions": [{"kind": "turnFlagOn"}]}),
            "nowhere",
        ),
        (
            json!({"instructions": [{"kind": "turnFlagOn"}]}),
            "environmentKey",
        ),
        (
            json!({"environmentKey": "staging", "instructions": []}),
            "instructions",
        ),
        (json!({"environmentKey": "staging"}), "instructions"),
        (
            json!({"environmentKey": "staging", "instructions": [{"variationId": yes}]}),
            "kind",
        ),
        (
            json!({"environmentKey": "staging", "instructions": [{"kind": "addClauses"}]}),
            "not supported",
        ),
        (
            json!({"environmentKey": "staging", "instructions": [{"kind": "turnFlagOff"},
            {"kind": "updateFallthroughVariationOrRollout", "rolloutWeights": {yes.clone(): 10}}]}),
            "100000",
        ),
    ];
    for (body, named) in cases {
        let answer = semantic(&s, "new-checkout", WRITER, &body).await;
        answer.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        let message = answer.body["message"].as_str().unwrap();
        assert!(message.contains(named), "{message} names {named}");
    }
    let answer = patch_raw(
        &s,
        &format!("{FLAGS}/new-checkout"),
        WRITER,
        SEMANTIC,
        "{not json",
    )
    .await;
    answer.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(
        s.sim.environments(ACCOUNT, DEMO_PROJECT),
        before,
        "nothing changed"
    );
    assert_eq!(
        s.sim.flag(ACCOUNT, DEMO_PROJECT, "new-checkout").unwrap(),
        flag_before
    );
}

#[tokio::test]
async fn json_patches_change_targeting_and_refuse_what_they_cannot_change() {
    let s = start().await;
    clone_staging(&s, "j").await;
    let ops = json!([
        {"op": "replace", "path": "/environments/j/on", "value": false},
        {"op": "replace", "path": "/environments/j/offVariation", "value": 2},
        {"op": "replace", "path": "/environments/j/rules", "value": []},
    ]);
    let answer = json_patch(&s, "search-ranking", WRITER, &ops).await;
    let config = &answer.assert(StatusCode::OK)["environments"]["j"];
    assert_eq!(
        (config["on"].clone(), config["rules"].clone()),
        (json!(false), json!([]))
    );
    assert!(
        served(&s, "j", "search-ranking")
            .iter()
            .all(|v| *v == json!("ml-v2"))
    );

    // LaunchDarkly's PatchWithComment form, adding a target to an existing list.
    let with_comment = json!({"comment": "why", "patch": [
        {"op": "replace", "path": "/environments/j/on", "value": true},
        {"op": "add", "path": "/environments/j/targets/0/values/-", "value": "newbie"},
    ]});
    let answer = json_patch(&s, "search-ranking", WRITER, &with_comment).await;
    let config = &answer.assert(StatusCode::OK)["environments"]["j"];
    assert_eq!(
        config["targets"][0]["values"],
        json!(["qa-alice", "newbie"])
    );
    let newbie = SimContext::user("newbie");
    let got = s
        .sim
        .evaluate(ACCOUNT, DEMO_PROJECT, "j", "search-ranking", &newbie)
        .unwrap();
    assert_eq!(got.value, json!("classic"));

    let before = s.sim.environments(ACCOUNT, DEMO_PROJECT);
    for bad in [
        json!([{"op": "replace", "path": "/key", "value": "other"}]),
        json!([{"op": "replace", "path": "/environments/j/salt", "value": "x"}]),
        json!([{"op": "replace", "path": "/environments/j/offVariation", "value": 7}]),
        json!([{"op": "replace", "path": "/environments/j/on", "value": "yes"}]),
        json!([{"op": "test", "path": "/environments/j/on", "value": false},
               {"op": "replace", "path": "/environments/j/on", "value": false}]),
        json!([{"op": "remove", "path": "/environments/j/rules/5"}]),
        json!([{"op": "frobnicate", "path": "/environments/j/on"}]),
        json!([]),
        json!({"comment": "no patch"}),
    ] {
        json_patch(&s, "search-ranking", WRITER, &bad)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    assert_eq!(
        s.sim.environments(ACCOUNT, DEMO_PROJECT),
        before,
        "nothing changed"
    );
}

#[tokio::test]
async fn patching_needs_the_writer_role_a_known_flag_and_keeps_nothing_on_a_dry_run() {
    let s = start().await;
    let body = json!({"environmentKey": "staging", "instructions": [{"kind": "turnFlagOff"}]});
    semantic(&s, "new-checkout", READER, &body)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    semantic(&s, "nope", WRITER, &body)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    patch_raw(
        &s,
        "/api/v2/flags/nope/new-checkout",
        WRITER,
        SEMANTIC,
        &body.to_string(),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");
    patch_raw(
        &s,
        &format!("{FLAGS}/new-checkout"),
        "bad",
        SEMANTIC,
        &body.to_string(),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let path = format!("{FLAGS}/new-checkout?dryRun=true");
    let preview = patch_raw(&s, &path, WRITER, SEMANTIC, &body.to_string()).await;
    assert_eq!(
        preview.assert(StatusCode::OK)["environments"]["staging"]["on"],
        false
    );
    let staging = s.sim.environment(ACCOUNT, DEMO_PROJECT, "staging").unwrap();
    assert!(staging.flags["new-checkout"].on, "a dry run keeps nothing");
    semantic(&s, "new-checkout", WRITER, &body)
        .await
        .assert(StatusCode::OK);
    let staging = s.sim.environment(ACCOUNT, DEMO_PROJECT, "staging").unwrap();
    assert!(!staging.flags["new-checkout"].on);
}

#[tokio::test]
async fn cloning_copies_rules_and_targets_and_the_clone_changes_alone() {
    let s = start().await;
    clone_staging(&s, "c").await;
    let staging = s.sim.environment(ACCOUNT, DEMO_PROJECT, "staging").unwrap();
    let clone = s.sim.environment(ACCOUNT, DEMO_PROJECT, "c").unwrap();
    assert_eq!(clone.flags, staging.flags);
    assert!(!clone.flags["new-checkout"].rules.is_empty());
    assert!(!clone.flags["new-checkout"].targets.is_empty());
    let body =
        json!({"environmentKey": "c", "instructions": [{"kind": "replaceRules", "rules": []}]});
    semantic(&s, "new-checkout", WRITER, &body)
        .await
        .assert(StatusCode::OK);
    let staging_after = s.sim.environment(ACCOUNT, DEMO_PROJECT, "staging").unwrap();
    assert_eq!(staging_after.flags, staging.flags);
    let clone = s.sim.environment(ACCOUNT, DEMO_PROJECT, "c").unwrap();
    assert!(clone.flags["new-checkout"].rules.is_empty());
}

#[tokio::test]
async fn flag_routes_are_rate_limited_and_fault_injected_like_the_others() {
    let s = start_with(SimulatorConfig {
        rate_limits: RateLimitConfig {
            route_limit: 1,
            window: Duration::from_secs(600),
            ..RateLimitConfig::default()
        },
        ..base_config()
    })
    .await;
    let path = format!("{FLAGS}/new-checkout");
    let first = s.get(&path, WRITER).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("x-ratelimit-route-remaining"), Some("0"));
    let second = s.get(&path, WRITER).await;
    second.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(second.header("x-ratelimit-reset").is_some());
    // Another route has its own count.
    assert_eq!(s.get(FLAGS, WRITER).await.status, StatusCode::OK);

    let s = start().await;
    s.sim.set_faults(Faults::always_error(503));
    let body = json!({"environmentKey": "staging", "instructions": [{"kind": "turnFlagOff"}]});
    let answer = semantic(&s, "new-checkout", WRITER, &body).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    let staging = s.sim.environment(ACCOUNT, DEMO_PROJECT, "staging").unwrap();
    assert!(
        staging.flags["new-checkout"].on,
        "an injected error changes nothing"
    );
    let logged = s
        .sim
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(logged.fault, Some("error"));
}

async fn page(s: &Sim, path: &str) -> (StatusCode, String) {
    let res = s.http.get(s.url(path)).send().await.unwrap();
    let status = res.status();
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    (status, res.text().await.unwrap())
}

#[tokio::test]
async fn the_environment_page_shows_each_flag_with_its_state_and_served_value() {
    let s = start().await;
    let (status, html) = page(
        &s,
        "/projects/demo/settings/environments?env=staging&selected-env=staging",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for text in [
        "Demo project",
        "<h1 id=\"environment-name\">Staging</h1>",
        "<code id=\"environment-key\">staging</code>",
        "pre-prod",
        "New checkout flow",
        "data-flag=\"search-ranking\"",
        "&#34;ml-v2&#34;",
        "1 rule, 4 individual targets",
    ] {
        assert!(html.contains(text), "{text} in {html}");
    }
    assert!(!html.contains("sdk-"), "no SDK key on the page");

    // Every text is escaped.
    let mut env =
        ld_eaas::simulator::SimEnvironment::new("odd", "<script>alert(1)</script>", "#fff;");
    env.tags = vec!["<b>".into()];
    s.sim.add_environment(ACCOUNT, DEMO_PROJECT, env).unwrap();
    let (status, html) = page(&s, "/projects/demo/settings/environments?env=odd").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !html.contains("<script>alert") && !html.contains("<b>"),
        "{html}"
    );
    assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
    assert!(
        !html.contains("background-color: ##fff"),
        "no bad color in a style"
    );

    let (status, _) = page(&s, "/projects/demo/settings/environments?env=nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = page(&s, "/projects/nowhere/settings/environments?env=x").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, html) = page(&s, "/projects/demo/settings/environments").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Production") && html.contains("selected-env=test"));
}

#[tokio::test]
async fn every_environment_has_a_configuration_for_every_flag() {
    let s = start().await;
    let added = ld_eaas::simulator::SimEnvironment::new("added", "Added", "000000");
    s.sim.add_environment(ACCOUNT, DEMO_PROJECT, added).unwrap();
    let on = ld_eaas::simulator::SimFlagState {
        on: true,
        ..Default::default()
    };
    s.sim
        .set_flag(ACCOUNT, DEMO_PROJECT, "test", "brand-new", on)
        .unwrap();
    let envs = s.sim.environments(ACCOUNT, DEMO_PROJECT);
    assert_eq!(envs.len(), 4);
    for env in &envs {
        let mut keys: Vec<&str> = env.flags.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "brand-new",
                "dark-mode",
                "maintenance-banner",
                "new-checkout",
                "search-ranking"
            ],
            "{}",
            env.key
        );
        assert_eq!(env.flags["brand-new"].on, env.key == "test");
    }
    let flag = s
        .get(&format!("{FLAGS}/new-checkout?env=added"), READER)
        .await;
    assert_eq!(
        flag.assert(StatusCode::OK)["environments"]["added"]["on"],
        false
    );
}
