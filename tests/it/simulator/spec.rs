//! Conformance to LaunchDarkly's OpenAPI document (the subset ld-eaas uses): every
//! answer of every operation, success or error, validates against the schema the
//! document gives for that operation and status; a status the document does not
//! list for the operation fails the test. The request side too: the simulator
//! requires exactly the fields `EnvironmentPost` requires.

use std::collections::BTreeSet;
use std::time::Duration;

use ld_eaas::simulator::{ApiTokenGrant, RateLimitConfig, SimulatorConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::{READER, Sim, WRITER, base_config, env_post, start, start_with};
use crate::support::conformance::Conformance;

const SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/launchdarkly/openapi-eaas-subset.json"
);

fn load_spec() -> Value {
    let text = std::fs::read_to_string(SPEC).unwrap_or_else(|e| panic!("reading {SPEC}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Produces every answer the simulator gives for the spec's operations.
async fn exercise(s: &Sim, c: &mut Conformance) {
    let envs = "/api/v2/projects/demo/environments";
    let scoped = "scoped-to-sandbox-token";
    s.sim
        .add_api_token(ApiTokenGrant::new(scoped, "writer").with_projects(&["sandbox"]));

    // getCallerIdentity
    c.check(
        "getCallerIdentity",
        &s.get("/api/v2/caller-identity", WRITER).await,
    );
    let bearer = format!(
        "Bearer {}",
        s.sim.issue_access_token(
            "spec-client",
            super::ACCOUNT,
            ld_eaas::simulator::Role::Writer
        )
    );
    c.check(
        "getCallerIdentity",
        &s.get("/api/v2/caller-identity", &bearer).await,
    );
    c.check(
        "getCallerIdentity",
        &s.get("/api/v2/caller-identity", "bad").await,
    );

    // getProjects
    for path in [
        "/api/v2/projects",
        "/api/v2/projects?limit=1&offset=1",
        "/api/v2/projects?expand=environments&filter=query:demo&sort=-name",
    ] {
        c.check("getProjects", &s.get(path, READER).await);
    }
    c.check(
        "getProjects",
        &s.get("/api/v2/projects?limit=x", READER).await,
    );
    c.check(
        "getProjects",
        &s.get("/api/v2/projects?expand=flags", READER).await,
    );
    c.check(
        "getProjects",
        &s.call(Method::GET, "/api/v2/projects", None, None).await,
    );

    // getProject
    c.check("getProject", &s.get("/api/v2/projects/demo", READER).await);
    c.check(
        "getProject",
        &s.get("/api/v2/projects/demo?expand=environments", READER)
            .await,
    );
    c.check(
        "getProject",
        &s.get("/api/v2/projects/demo?expand=members", READER).await,
    );
    c.check(
        "getProject",
        &s.get("/api/v2/projects/missing", READER).await,
    );
    c.check("getProject", &s.get("/api/v2/projects/demo", scoped).await);
    c.check("getProject", &s.get("/api/v2/projects/demo", "bad").await);

    // getEnvironmentsByProject
    for path in [
        envs,
        "/api/v2/projects/sandbox/environments?limit=5&offset=5",
        "/api/v2/projects/sandbox/environments?filter=tags%3Aqa%2Bodd",
    ] {
        c.check("getEnvironmentsByProject", &s.get(path, READER).await);
    }
    c.check(
        "getEnvironmentsByProject",
        &s.get(&format!("{envs}?limit=-3"), READER).await,
    );
    c.check(
        "getEnvironmentsByProject",
        &s.get(&format!("{envs}?filter=colour:red"), READER).await,
    );
    c.check(
        "getEnvironmentsByProject",
        &s.get("/api/v2/projects/missing/environments", READER).await,
    );
    c.check("getEnvironmentsByProject", &s.get(envs, scoped).await);
    c.check("getEnvironmentsByProject", &s.get(envs, "bad").await);
    c.check(
        "getEnvironmentsByProject",
        &s.call(Method::PUT, envs, Some(WRITER), Some(&json!({})))
            .await,
    );

    // postEnvironment
    let mut clone = env_post("spec-clone");
    clone["source"] = json!({"key": "staging"});
    clone["tags"] = json!(["ld-eaas"]);
    c.check("postEnvironment", &s.post(envs, WRITER, &clone).await);
    c.check("postEnvironment", &s.post(envs, WRITER, &clone).await);
    c.check(
        "postEnvironment",
        &s.post(envs, WRITER, &json!({"key": "k"})).await,
    );
    let mut unknown = env_post("spec-unknown-source");
    unknown["source"] = json!({"key": "nowhere"});
    c.check("postEnvironment", &s.post(envs, WRITER, &unknown).await);
    c.check(
        "postEnvironment",
        &s.post(
            "/api/v2/projects/missing/environments",
            WRITER,
            &env_post("x"),
        )
        .await,
    );
    c.check(
        "postEnvironment",
        &s.post(envs, READER, &env_post("x")).await,
    );
    c.check(
        "postEnvironment",
        &s.post(envs, scoped, &env_post("x")).await,
    );
    c.check(
        "postEnvironment",
        &s.post(envs, "bad", &env_post("x")).await,
    );
    s.sim
        .set_segment_count(super::ACCOUNT, "demo", "production", 5000)
        .unwrap();
    let mut big = env_post("spec-big");
    big["source"] = json!({"key": "production"});
    c.check("postEnvironment", &s.post(envs, WRITER, &big).await);

    // getEnvironment
    c.check(
        "getEnvironment",
        &s.get(&format!("{envs}/spec-clone"), READER).await,
    );
    c.check(
        "getEnvironment",
        &s.get(&format!("{envs}/missing"), READER).await,
    );
    c.check(
        "getEnvironment",
        &s.get("/api/v2/projects/missing/environments/x", READER)
            .await,
    );
    c.check(
        "getEnvironment",
        &s.get(&format!("{envs}/production"), scoped).await,
    );
    c.check(
        "getEnvironment",
        &s.get(&format!("{envs}/production"), "bad").await,
    );

    // deleteEnvironment
    c.check(
        "deleteEnvironment",
        &s.delete(&format!("{envs}/spec-clone"), READER).await,
    );
    c.check(
        "deleteEnvironment",
        &s.delete(&format!("{envs}/spec-clone"), scoped).await,
    );
    c.check(
        "deleteEnvironment",
        &s.delete(&format!("{envs}/spec-clone"), "bad").await,
    );
    c.check(
        "deleteEnvironment",
        &s.delete(&format!("{envs}/spec-clone"), WRITER).await,
    );
    c.check(
        "deleteEnvironment",
        &s.delete(&format!("{envs}/spec-clone"), WRITER).await,
    );
}

#[tokio::test]
async fn every_answer_of_every_operation_matches_the_openapi_document() {
    let s = start().await;
    let mut c = Conformance::new(load_spec());
    exercise(&s, &mut c).await;

    // Rate limited: a route limit of one makes every second call a 429.
    let rate_limits = RateLimitConfig {
        route_limit: 1,
        window: Duration::from_secs(600),
        ..RateLimitConfig::default()
    };
    let limited = start_with(SimulatorConfig {
        rate_limits,
        ..base_config()
    })
    .await;
    let envs = "/api/v2/projects/demo/environments";
    for _ in 0..2 {
        c.check(
            "getCallerIdentity",
            &limited.get("/api/v2/caller-identity", WRITER).await,
        );
        c.check(
            "getProjects",
            &limited.get("/api/v2/projects", WRITER).await,
        );
        c.check(
            "getProject",
            &limited.get("/api/v2/projects/demo", WRITER).await,
        );
        c.check("getEnvironmentsByProject", &limited.get(envs, WRITER).await);
        c.check(
            "getEnvironment",
            &limited.get(&format!("{envs}/test"), WRITER).await,
        );
    }
    c.check(
        "postEnvironment",
        &limited.post(envs, WRITER, &env_post("one")).await,
    );
    c.check(
        "postEnvironment",
        &limited.post(envs, WRITER, &env_post("two")).await,
    );
    c.check(
        "deleteEnvironment",
        &limited.delete(&format!("{envs}/one"), WRITER).await,
    );
    c.check(
        "deleteEnvironment",
        &limited.delete(&format!("{envs}/one"), WRITER).await,
    );

    c.assert_covered(&[
        ("getCallerIdentity", &[200, 401, 429]),
        ("getProjects", &[200, 400, 401, 429]),
        ("getProject", &[200, 400, 401, 403, 404, 429]),
        (
            "getEnvironmentsByProject",
            &[200, 400, 401, 403, 404, 405, 429],
        ),
        ("postEnvironment", &[201, 400, 401, 403, 404, 409, 429]),
        ("getEnvironment", &[200, 401, 403, 404, 429]),
        ("deleteEnvironment", &[204, 401, 403, 404, 429]),
    ]);
}

#[tokio::test]
async fn every_operation_in_the_document_is_served_at_its_path() {
    let s = start().await;
    let c = Conformance::new(load_spec());
    let mut served = 0;
    for (path, item) in c.spec["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            let concrete = path
                .replace("{projectKey}", "demo")
                .replace("{environmentKey}", "test");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // Unauthenticated: a served route says 401, an unknown one would say 404.
            let answer = s.call(method.clone(), &concrete, None, None).await;
            answer.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
            served += 1;
        }
    }
    assert_eq!(served, 7, "the subset has seven operations");
}

/// A valid value for each `EnvironmentPost` property.
fn valid_value(name: &str, schema: &Value) -> Value {
    match name {
        "key" => json!("spec-key"),
        "name" => json!("Spec name"),
        "color" => json!("A1B2C3"),
        "tags" => json!(["spec"]),
        "source" => json!({"key": "test"}),
        "defaultTtl" => json!(5),
        _ => match schema["type"].as_str() {
            Some("boolean") => json!(true),
            Some("integer") => json!(1),
            Some("string") => json!("x"),
            other => panic!("no valid value for {name} ({other:?}): extend this test"),
        },
    }
}

#[tokio::test]
async fn the_simulator_requires_exactly_the_fields_the_document_requires() {
    let s = start().await;
    let spec = load_spec();
    let post = &spec["components"]["schemas"]["EnvironmentPost"];
    let required: BTreeSet<String> = post["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(!required.is_empty());
    let properties = post["properties"].as_object().unwrap();
    let full: Map<String, Value> = properties
        .iter()
        .map(|(name, schema)| (name.clone(), valid_value(name, schema)))
        .collect();
    let envs = "/api/v2/projects/demo/environments";

    // Every documented field is accepted, and the answer reflects it.
    let created = s.post(envs, WRITER, &Value::Object(full.clone())).await;
    let env = created.assert(StatusCode::CREATED).clone();
    for (name, value) in &full {
        if name != "source" {
            assert_eq!(&env[name], value, "{name} is stored as sent");
        }
    }
    assert_eq!(
        s.delete(&format!("{envs}/spec-key"), WRITER).await.status,
        StatusCode::NO_CONTENT
    );

    for name in properties.keys() {
        let mut body = full.clone();
        body.remove(name);
        let answer = s.post(envs, WRITER, &Value::Object(body)).await;
        if required.contains(name) {
            answer.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
            assert!(
                answer.body["message"]
                    .as_str()
                    .unwrap()
                    .contains(name.as_str()),
                "the message names {name}: {}",
                answer.body
            );
        } else {
            answer.assert(StatusCode::CREATED);
            assert_eq!(
                s.delete(&format!("{envs}/spec-key"), WRITER).await.status,
                StatusCode::NO_CONTENT
            );
        }
    }
}

/// LaunchDarkly's whole document: the flag operations are not in the subset.
const FULL_SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/launchdarkly/openapi.json"
);

fn load_full_spec() -> Value {
    let text =
        std::fs::read_to_string(FULL_SPEC).unwrap_or_else(|e| panic!("reading {FULL_SPEC}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Produces every answer the simulator gives for the flag operations.
async fn exercise_flags(s: &Sim, c: &mut Conformance) {
    use super::flags::{SEMANTIC, clone_staging, json_patch, patch_raw, semantic, variation_id};

    let flags = "/api/v2/flags/demo";
    let scoped = "flags-scoped-to-sandbox-token";
    s.sim
        .add_api_token(ApiTokenGrant::new(scoped, "writer").with_projects(&["sandbox"]));

    // getFeatureFlags
    for path in [
        flags.to_owned(),
        format!("{flags}?env=staging"),
        format!("{flags}?env=staging&summary=0&limit=1&offset=1"),
        format!("{flags}?filter=query:check,tags:x&sort=-creationDate&expand=evaluation"),
        "/api/v2/flags/sandbox?limit=1".to_owned(),
    ] {
        c.check("getFeatureFlags", &s.get(&path, READER).await);
    }
    c.check(
        "getFeatureFlags",
        &s.get(&format!("{flags}?summary=perhaps"), READER).await,
    );
    c.check(
        "getFeatureFlags",
        &s.get(&format!("{flags}?expand=everything"), READER).await,
    );
    c.check("getFeatureFlags", &s.get(flags, "bad").await);
    c.check("getFeatureFlags", &s.get(flags, scoped).await);
    c.check(
        "getFeatureFlags",
        &s.get("/api/v2/flags/missing", READER).await,
    );

    // getFeatureFlag
    for flag in ["new-checkout", "search-ranking", "dark-mode"] {
        c.check(
            "getFeatureFlag",
            &s.get(&format!("{flags}/{flag}"), READER).await,
        );
        c.check(
            "getFeatureFlag",
            &s.get(&format!("{flags}/{flag}?env=staging&env=test"), READER)
                .await,
        );
    }
    c.check(
        "getFeatureFlag",
        &s.get(&format!("{flags}/missing"), READER).await,
    );
    c.check(
        "getFeatureFlag",
        &s.get(&format!("{flags}/new-checkout"), "bad").await,
    );
    c.check(
        "getFeatureFlag",
        &s.get(&format!("{flags}/new-checkout"), scoped).await,
    );

    // patchFeatureFlag: semantic patches, JSON patches, and their errors.
    clone_staging(s, "spec-flags").await;
    let flag = s.get(&format!("{flags}/new-checkout"), READER).await.body;
    let (yes, no) = (
        variation_id(&flag, &json!(true)),
        variation_id(&flag, &json!(false)),
    );
    let rule = flag["environments"]["spec-flags"]["rules"][0]["_id"].clone();
    let good = [
        json!([{"kind": "turnFlagOff"}, {"kind": "updateOffVariation", "variationId": yes}]),
        json!([{"kind": "turnFlagOn"}, {"kind": "updateFallthroughVariationOrRollout",
            "rolloutWeights": {yes.clone(): 25000, no.clone(): 75000}, "rolloutBucketBy": "email"}]),
        json!([{"kind": "addRule", "variationId": yes, "description": "d",
            "clauses": [{"contextKind": "user", "attribute": "country", "op": "in", "values": ["SE"], "negate": false}]}]),
        json!([{"kind": "removeRule", "ruleId": rule}]),
        json!([{"kind": "addTargets", "contextKind": "device", "variationId": no, "values": ["d-1"]}]),
        json!([{"kind": "removeTargets", "variationId": yes, "values": ["qa-bob"]}]),
        json!([{"kind": "clearTargets", "variationId": no}]),
        json!([{"kind": "replaceTargets", "targets": []}, {"kind": "replaceRules", "rules": []}]),
        json!([{"kind": "updateName", "value": "New checkout"}]),
    ];
    for instructions in good {
        let body = json!({"environmentKey": "spec-flags", "instructions": instructions});
        c.check(
            "patchFeatureFlag",
            &semantic(s, "new-checkout", WRITER, &body).await,
        );
    }
    let example = c.spec["paths"]["/api/v2/flags/{projectKey}/{featureFlagKey}"]["patch"]
        ["requestBody"]["content"]["application/json"]["example"]
        .clone();
    assert!(example["patch"].is_array(), "the document's example body");
    let json_patches = [
        example,
        json!([{"op": "replace", "path": "/environments/spec-flags/on", "value": true}]),
        json!({"patch": [{"op": "add", "path": "/environments/spec-flags/targets/-",
            "value": {"variation": 0, "values": ["TestClient10"]}}], "comment": "c"}),
    ];
    for body in &json_patches {
        let answer = json_patch(s, "new-checkout", WRITER, body).await;
        c.check("patchFeatureFlag", &answer);
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        // The request side: a `{patch}` body fits `PatchWithComment`, and an
        // array fits the `JSONPatch` it wraps.
        let schema = if body.is_array() {
            "JSONPatch"
        } else {
            "PatchWithComment"
        };
        assert_eq!(c.schema_errors(schema, body), Vec::<String>::new());
    }
    let semantic_bad =
        json!({"environmentKey": "spec-flags", "instructions": [{"kind": "frobnicate"}]});
    c.check(
        "patchFeatureFlag",
        &semantic(s, "new-checkout", WRITER, &semantic_bad).await,
    );
    c.check(
        "patchFeatureFlag",
        &json_patch(s, "new-checkout", WRITER, &json!({"comment": "no patch"})).await,
    );
    let on = json!({"environmentKey": "spec-flags", "instructions": [{"kind": "turnFlagOn"}]});
    c.check(
        "patchFeatureFlag",
        &semantic(s, "missing", WRITER, &on).await,
    );
    c.check(
        "patchFeatureFlag",
        &semantic(s, "new-checkout", "bad", &on).await,
    );
    let path = "/api/v2/flags/missing/new-checkout";
    c.check(
        "patchFeatureFlag",
        &patch_raw(s, path, WRITER, SEMANTIC, &on.to_string()).await,
    );
    // A reader is refused with LaunchDarkly's 403 (ForbiddenErrorRep), which the
    // document does not list for this operation: checked against the schema alone.
    let refused = semantic(s, "new-checkout", READER, &on).await;
    refused.assert_error(StatusCode::FORBIDDEN, "forbidden");
    let op = &c.spec["paths"]["/api/v2/flags/{projectKey}/{featureFlagKey}"]["patch"];
    assert!(
        op["responses"].get("403").is_none(),
        "the document lists a 403 now: check it"
    );
    assert_eq!(
        c.schema_errors("ForbiddenErrorRep", &refused.body),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn every_answer_of_the_flag_operations_matches_launchdarkly_s_document() {
    let s = start().await;
    let mut c = Conformance::new(load_full_spec());
    exercise_flags(&s, &mut c).await;

    let rate_limits = RateLimitConfig {
        route_limit: 1,
        window: Duration::from_secs(600),
        ..RateLimitConfig::default()
    };
    let limited = start_with(SimulatorConfig {
        rate_limits,
        ..base_config()
    })
    .await;
    let on = json!({"environmentKey": "test", "instructions": [{"kind": "turnFlagOn"}]});
    for _ in 0..2 {
        c.check(
            "getFeatureFlags",
            &limited.get("/api/v2/flags/demo", WRITER).await,
        );
        c.check(
            "getFeatureFlag",
            &limited.get("/api/v2/flags/demo/dark-mode", WRITER).await,
        );
        c.check(
            "patchFeatureFlag",
            &super::flags::semantic(&limited, "dark-mode", WRITER, &on).await,
        );
    }
    c.assert_covered(&[
        ("getFeatureFlags", &[200, 400, 401, 403, 404, 429]),
        ("getFeatureFlag", &[200, 401, 403, 404, 429]),
        ("patchFeatureFlag", &[200, 400, 401, 404, 429]),
    ]);
}

/// The `kind`s LaunchDarkly documents for patchFeatureFlag's semantic patches.
fn documented_instruction_kinds(spec: &Value) -> BTreeSet<String> {
    let description =
        spec["paths"]["/api/v2/flags/{projectKey}/{featureFlagKey}"]["patch"]["description"]
            .as_str()
            .unwrap();
    description
        .lines()
        .filter_map(|l| l.strip_prefix("#### "))
        .map(|k| k.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn every_instruction_kind_and_query_parameter_is_launchdarkly_s_own() {
    let spec = load_full_spec();
    let kinds = documented_instruction_kinds(&spec);
    assert!(
        kinds.contains("turnFlagOn") && kinds.len() > 40,
        "{kinds:?}"
    );
    let simulated = ld_eaas::simulator::ENVIRONMENT_INSTRUCTIONS
        .iter()
        .chain(ld_eaas::simulator::FLAG_INSTRUCTIONS);
    for kind in simulated {
        assert!(
            kinds.contains(*kind),
            "the simulator's {kind} is not documented"
        );
    }
    // What the client sends.
    let sent =
        serde_json::to_value(ld_eaas::launchdarkly::Instruction::serve_to_everyone("v")).unwrap();
    for instruction in sent.as_array().unwrap() {
        let kind = instruction["kind"].as_str().unwrap();
        assert!(
            kinds.contains(kind),
            "the client's {kind} is not documented"
        );
    }
    assert!(
        spec["paths"]["/api/v2/flags/{projectKey}/{featureFlagKey}"]["patch"]["description"]
            .as_str()
            .unwrap()
            .contains(ld_eaas::simulator::SEMANTIC_PATCH_PARAMETER),
        "the Content-Type parameter is LaunchDarkly's"
    );

    // The query parameters the simulator reads are the documented ones.
    let documented = |path: &str, method: &str| -> BTreeSet<String> {
        spec["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = documented("/api/v2/flags/{projectKey}", "get");
    for name in [
        "env", "summary", "limit", "offset", "filter", "sort", "expand", "tag",
    ] {
        assert!(list.contains(name), "getFeatureFlags {name}");
    }
    let one = documented("/api/v2/flags/{projectKey}/{featureFlagKey}", "get");
    assert!(one.contains("env") && one.contains("expand"));
    let patch = documented("/api/v2/flags/{projectKey}/{featureFlagKey}", "patch");
    assert!(patch.contains("dryRun"));
}
