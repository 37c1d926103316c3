//! The REST operations: success and error paths, pagination, filters, cloning.

use ld_eaas::simulator::{ApiTokenGrant, DEMO_PROJECT, Role, SimFlagState, fingerprint};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{ACCOUNT, READER, WRITER, env_post, start};

const ENVS: &str = "/api/v2/projects/demo/environments";

#[tokio::test]
async fn caller_identity_names_the_account_and_kind_of_each_token() {
    let s = start().await;
    let me = s.get("/api/v2/caller-identity", WRITER).await;
    let body = me.assert(StatusCode::OK);
    assert_eq!(body["accountId"], ACCOUNT);
    assert_eq!(body["authKind"], "token");
    assert_eq!(body["tokenKind"], "personal");
    assert_eq!(body["serviceToken"], false);
    assert_eq!(body["scopes"], json!(["writer"]));
    assert!(body["memberId"].as_str().is_some_and(|m| m.len() == 24));

    let bearer = s
        .sim
        .issue_access_token("some-client", ACCOUNT, Role::Reader);
    let me = s
        .get("/api/v2/caller-identity", &format!("Bearer {bearer}"))
        .await;
    let body = me.assert(StatusCode::OK);
    assert_eq!(body["authKind"], "oauth");
    assert_eq!(body["clientId"], "some-client");
    assert_eq!(body["scopes"], json!(["reader"]));
}

#[tokio::test]
async fn missing_unknown_or_misused_credentials_are_401() {
    let s = start().await;
    let none = s.call(Method::GET, "/api/v2/projects", None, None).await;
    none.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    s.get("/api/v2/projects", "api-unknown")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // An API token goes raw; sent as a bearer token it is not an OAuth token.
    let bearer_api = s.get("/api/v2/projects", &format!("Bearer {WRITER}")).await;
    bearer_api.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let deleted = s.delete(&format!("{ENVS}/test"), "nope").await;
    deleted.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        s.sim.environments(ACCOUNT, DEMO_PROJECT).len(),
        3,
        "a 401 changes nothing"
    );
}

#[tokio::test]
async fn projects_list_filter_sort_and_expand() {
    let s = start().await;
    let all = s.get("/api/v2/projects", READER).await;
    let body = all.assert(StatusCode::OK);
    let keys: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["demo", "mobile-app", "sandbox"]);
    assert_eq!(body["totalCount"], 3);
    assert_eq!(
        body["_links"]["self"]["href"],
        "/api/v2/projects?limit=20&offset=0"
    );
    assert!(
        body["items"][0].get("environments").is_none(),
        "environments only when expanded"
    );

    let by_query = s.get("/api/v2/projects?filter=query:MOBILE", READER).await;
    assert_eq!(
        by_query.assert(StatusCode::OK)["items"][0]["key"],
        "mobile-app"
    );
    let by_keys = s
        .get("/api/v2/projects?filter=keys:demo|sandbox", READER)
        .await;
    assert_eq!(by_keys.assert(StatusCode::OK)["totalCount"], 2);
    let by_tag = s.get("/api/v2/projects?filter=tags:demo", READER).await;
    assert_eq!(by_tag.assert(StatusCode::OK)["totalCount"], 1);
    let sorted = s.get("/api/v2/projects?sort=-name", READER).await;
    assert_eq!(sorted.assert(StatusCode::OK)["items"][0]["key"], "sandbox");

    let expanded = s
        .get(
            "/api/v2/projects?expand=environments&filter=keys:demo",
            READER,
        )
        .await;
    let envs = &expanded.assert(StatusCode::OK)["items"][0]["environments"];
    assert_eq!(envs["totalCount"], 3);
    assert_eq!(envs["items"][0]["key"], "production");

    s.get("/api/v2/projects?filter=color:red", READER)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    s.get("/api/v2/projects?sort=color", READER)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    s.get("/api/v2/projects?limit=ten", READER)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn one_project_or_404() {
    let s = start().await;
    let demo = s.get("/api/v2/projects/demo", READER).await;
    let body = demo.assert(StatusCode::OK);
    assert_eq!(body["name"], "Demo project");
    assert_eq!(body["_links"]["environments"]["href"], ENVS);
    assert!(body["_id"].as_str().is_some_and(|id| id.len() == 24));
    let expanded = s
        .get("/api/v2/projects/demo?expand=environments", READER)
        .await;
    assert_eq!(
        expanded.assert(StatusCode::OK)["environments"]["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    s.get("/api/v2/projects/nope", READER)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn environment_pages_walk_by_next_links_with_launchdarkly_link_rules() {
    let s = start().await;
    let first = s
        .get("/api/v2/projects/sandbox/environments?limit=5", READER)
        .await;
    let body = first.assert(StatusCode::OK);
    assert_eq!(body["totalCount"], 23);
    assert_eq!(body["items"].as_array().unwrap().len(), 5);
    let links = body["_links"].as_object().unwrap();
    assert!(
        !links.contains_key("first") && !links.contains_key("prev"),
        "{links:?}"
    );
    assert_eq!(
        links["next"]["href"],
        "/api/v2/projects/sandbox/environments?limit=5&offset=5"
    );
    assert_eq!(
        links["last"]["href"],
        "/api/v2/projects/sandbox/environments?limit=5&offset=20"
    );

    let middle = s
        .get(
            "/api/v2/projects/sandbox/environments?limit=5&offset=10",
            READER,
        )
        .await;
    let links = middle.assert(StatusCode::OK)["_links"]
        .as_object()
        .unwrap()
        .clone();
    assert_eq!(
        links["prev"]["href"],
        "/api/v2/projects/sandbox/environments?limit=5&offset=5"
    );
    assert_eq!(
        links["first"]["href"],
        "/api/v2/projects/sandbox/environments?limit=5&offset=0"
    );
    assert_eq!(middle.body["items"][0]["key"], "qa-11");

    let last = s
        .get(
            "/api/v2/projects/sandbox/environments?limit=5&offset=20",
            READER,
        )
        .await;
    let body = last.assert(StatusCode::OK);
    assert_eq!(body["items"].as_array().unwrap().len(), 3);
    assert!(body["_links"].get("next").is_none() && body["_links"].get("last").is_none());

    let (items, pages) = s
        .walk("/api/v2/projects/sandbox/environments?limit=4", READER)
        .await;
    assert_eq!(pages, 6);
    let keys: Vec<String> = items
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (1..=23).map(|i| format!("qa-{i:02}")).collect();
    assert_eq!(keys, expected, "every environment exactly once, in order");

    // The default page is 20; beyond the end is an empty page, not an error.
    let default = s.get("/api/v2/projects/sandbox/environments", READER).await;
    assert_eq!(
        default.assert(StatusCode::OK)["items"]
            .as_array()
            .unwrap()
            .len(),
        20
    );
    let beyond = s
        .get("/api/v2/projects/sandbox/environments?offset=100", READER)
        .await;
    assert_eq!(beyond.assert(StatusCode::OK)["items"], json!([]));
    s.get("/api/v2/projects/sandbox/environments?limit=0", READER)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    s.get("/api/v2/projects/sandbox/environments?offset=-1", READER)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    s.get("/api/v2/projects/nope/environments", READER)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn tag_filters_need_every_tag_and_survive_paging() {
    let s = start().await;
    let (odd, _) = s
        .walk(
            "/api/v2/projects/sandbox/environments?filter=tags%3Aqa%2Bodd&limit=5",
            READER,
        )
        .await;
    assert_eq!(odd.len(), 12);
    assert!(
        odd.iter()
            .all(|e| e["tags"].as_array().unwrap().contains(&json!("odd")))
    );
    // A `+` sent unencoded arrives as a space; LaunchDarkly's docs say encode it, but
    // the meaning is the same.
    let raw = s
        .get(
            "/api/v2/projects/sandbox/environments?filter=tags:qa+odd&limit=50",
            READER,
        )
        .await;
    assert_eq!(raw.assert(StatusCode::OK)["totalCount"], 12);
    let one = s
        .get(
            "/api/v2/projects/demo/environments?filter=tags:PROD",
            READER,
        )
        .await;
    let body = one.assert(StatusCode::OK);
    assert_eq!(body["totalCount"], 1, "tag filters ignore case");
    assert_eq!(body["items"][0]["key"], "production");
    let none = s
        .get(
            "/api/v2/projects/demo/environments?filter=tags:prod%2Bqa",
            READER,
        )
        .await;
    assert_eq!(none.assert(StatusCode::OK)["totalCount"], 0);
    let named = s
        .get(
            "/api/v2/projects/demo/environments?filter=query:stag",
            READER,
        )
        .await;
    assert_eq!(named.assert(StatusCode::OK)["items"][0]["key"], "staging");
    let sorted = s
        .get(
            "/api/v2/projects/demo/environments?sort=-critical,name",
            READER,
        )
        .await;
    let keys: Vec<&str> = sorted.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["production", "staging", "test"]);
}

#[tokio::test]
async fn get_environment_returns_its_keys_or_404() {
    let s = start().await;
    let prod = s.get(&format!("{ENVS}/production"), READER).await;
    let body = prod.assert(StatusCode::OK);
    assert_eq!(body["critical"], true);
    let stored = s
        .sim
        .environment(ACCOUNT, DEMO_PROJECT, "production")
        .unwrap();
    assert_eq!(body["apiKey"], stored.api_key);
    assert_eq!(body["mobileKey"], stored.mobile_key);
    assert_eq!(body["_id"], stored.id);
    assert_eq!(body["_links"]["self"]["href"], format!("{ENVS}/production"));
    s.get(&format!("{ENVS}/nope"), READER)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    s.get("/api/v2/projects/nope/environments/production", READER)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn creating_an_environment_returns_fresh_keys_and_a_second_create_is_409() {
    let s = start().await;
    let body = json!({
        "key": "pr-123", "name": "PR 123", "color": "00aaff",
        "tags": ["ld-eaas", "ld-eaas.default"], "defaultTtl": 5, "secureMode": true,
    });
    let created = s.post(ENVS, WRITER, &body).await;
    let env = created.assert(StatusCode::CREATED).clone();
    assert_eq!(env["key"], "pr-123");
    assert_eq!(env["name"], "PR 123");
    assert_eq!(env["color"], "00aaff");
    assert_eq!(env["tags"], json!(["ld-eaas", "ld-eaas.default"]));
    assert_eq!(env["critical"], false);
    assert_eq!(env["secureMode"], true);
    assert_eq!(env["defaultTtl"], 5);
    let id = env["_id"].as_str().unwrap();
    assert!(
        id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let sdk = env["apiKey"].as_str().unwrap();
    assert!(
        sdk.starts_with("sdk-") && uuid::Uuid::parse_str(&sdk[4..]).is_ok(),
        "{sdk}"
    );
    let mob = env["mobileKey"].as_str().unwrap();
    assert!(
        mob.starts_with("mob-") && uuid::Uuid::parse_str(&mob[4..]).is_ok(),
        "{mob}"
    );

    let fetched = s.get(&format!("{ENVS}/pr-123"), READER).await;
    assert_eq!(
        fetched.assert(StatusCode::OK)["apiKey"],
        sdk,
        "the created environment is there"
    );

    let again = s
        .post(
            ENVS,
            WRITER,
            &json!({"key": "pr-123", "name": "Other", "color": "000000"}),
        )
        .await;
    again.assert_error(StatusCode::CONFLICT, "conflict");
    let kept = s.sim.environment(ACCOUNT, DEMO_PROJECT, "pr-123").unwrap();
    assert_eq!(kept.name, "PR 123", "a 409 changes nothing");

    let missing_project = s
        .post("/api/v2/projects/nope/environments", WRITER, &env_post("x"))
        .await;
    missing_project.assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn invalid_create_bodies_are_400_and_change_nothing() {
    let s = start().await;
    let long_tag = "t".repeat(65);
    let cases = [
        json!({"name": "N", "color": "000000"}),
        json!({"key": "k", "color": "000000"}),
        json!({"key": "k", "name": "N"}),
        json!({"key": "-k", "name": "N", "color": "000000"}),
        json!({"key": "k k", "name": "N", "color": "000000"}),
        json!({"key": "k", "name": "N", "color": "#00000"}),
        json!({"key": "k", "name": "N", "color": "GGGGGG"}),
        json!({"key": "k", "name": "N", "color": "000000", "tags": ["a+b"]}),
        json!({"key": "k", "name": "N", "color": "000000", "tags": [long_tag]}),
        json!({"key": "k", "name": "N", "color": "000000", "tags": [""]}),
        json!({"key": "k", "name": "N", "color": "000000", "critical": "yes"}),
        json!({"key": 7, "name": "N", "color": "000000"}),
        json!(["key", "k"]),
    ];
    for body in &cases {
        s.post(ENVS, WRITER, body)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let res = s
        .http
        .post(s.url(ENVS))
        .header("Authorization", WRITER)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    super::read(res)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(s.sim.environments(ACCOUNT, DEMO_PROJECT).len(), 3);
    // The longest tag allowed is fine.
    let ok = json!({"key": "k", "name": "N", "color": "000000", "tags": ["t".repeat(64)]});
    s.post(ENVS, WRITER, &ok).await.assert(StatusCode::CREATED);
}

#[tokio::test]
async fn cloning_copies_the_source_flag_state_and_a_plain_create_starts_off() {
    let s = start().await;
    let staging = s.sim.environment(ACCOUNT, DEMO_PROJECT, "staging").unwrap();
    let production = s
        .sim
        .environment(ACCOUNT, DEMO_PROJECT, "production")
        .unwrap();
    assert_ne!(
        staging.flags, production.flags,
        "the seed differs per environment"
    );

    let mut body = env_post("clone-of-staging");
    body["source"] = json!({"key": "staging"});
    s.post(ENVS, WRITER, &body)
        .await
        .assert(StatusCode::CREATED);
    let clone = s
        .sim
        .environment(ACCOUNT, DEMO_PROJECT, "clone-of-staging")
        .unwrap();
    assert_eq!(clone.flags, staging.flags);
    assert_ne!(clone.api_key, staging.api_key, "a clone gets its own keys");

    // A change to the source after cloning does not reach the clone.
    let flipped = SimFlagState {
        on: false,
        fallthrough_variation: 0,
        off_variation: 1,
    };
    s.sim
        .set_flag(ACCOUNT, DEMO_PROJECT, "staging", "new-checkout", flipped)
        .unwrap();
    let clone = s
        .sim
        .environment(ACCOUNT, DEMO_PROJECT, "clone-of-staging")
        .unwrap();
    assert!(clone.flags["new-checkout"].on);

    s.post(ENVS, WRITER, &env_post("plain"))
        .await
        .assert(StatusCode::CREATED);
    let plain = s.sim.environment(ACCOUNT, DEMO_PROJECT, "plain").unwrap();
    assert_eq!(plain.flags.len(), staging.flags.len());
    assert!(plain.flags.values().all(|f| !f.on), "{:?}", plain.flags);

    let mut unknown = env_post("from-nowhere");
    unknown["source"] = json!({"key": "nowhere"});
    s.post(ENVS, WRITER, &unknown)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    assert!(
        s.sim
            .environment(ACCOUNT, DEMO_PROJECT, "from-nowhere")
            .is_none()
    );
}

#[tokio::test]
async fn sources_with_more_than_1000_segments_cannot_be_cloned() {
    let s = start().await;
    s.sim
        .set_segment_count(ACCOUNT, DEMO_PROJECT, "production", 1001)
        .unwrap();
    let mut body = env_post("too-big");
    body["source"] = json!({"key": "production"});
    let refused = s.post(ENVS, WRITER, &body).await;
    refused.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(
        refused.body["message"].as_str().unwrap().contains("1000"),
        "{}",
        refused.body
    );
    assert!(
        s.sim
            .environment(ACCOUNT, DEMO_PROJECT, "too-big")
            .is_none()
    );

    s.sim
        .set_segment_count(ACCOUNT, DEMO_PROJECT, "production", 1000)
        .unwrap();
    s.post(ENVS, WRITER, &body)
        .await
        .assert(StatusCode::CREATED);
}

#[tokio::test]
async fn deleting_is_204_then_404_and_critical_environments_may_go() {
    let s = start().await;
    s.post(ENVS, WRITER, &env_post("short-lived"))
        .await
        .assert(StatusCode::CREATED);
    let gone = s.delete(&format!("{ENVS}/short-lived"), WRITER).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert_eq!(gone.body, serde_json::Value::Null, "204 has no body");
    s.delete(&format!("{ENVS}/short-lived"), WRITER)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    s.delete("/api/v2/projects/nope/environments/x", WRITER)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    // LaunchDarkly lets a writer delete a critical environment; refusing is ld-eaas's job.
    assert_eq!(
        s.delete(&format!("{ENVS}/production"), WRITER).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(
        s.sim
            .environment(ACCOUNT, DEMO_PROJECT, "production")
            .is_none()
    );
}

#[tokio::test]
async fn reader_tokens_and_scopes_read_but_cannot_write() {
    let s = start().await;
    s.get(ENVS, READER).await.assert(StatusCode::OK);
    s.post(ENVS, READER, &env_post("nope"))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    s.delete(&format!("{ENVS}/test"), READER)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let reader_oauth = format!(
        "Bearer {}",
        s.sim.issue_access_token("c", ACCOUNT, Role::Reader)
    );
    s.post(ENVS, &reader_oauth, &env_post("nope"))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let writer_oauth = format!(
        "Bearer {}",
        s.sim.issue_access_token("c", ACCOUNT, Role::Writer)
    );
    s.post(ENVS, &writer_oauth, &env_post("yes"))
        .await
        .assert(StatusCode::CREATED);
    assert_eq!(s.sim.environments(ACCOUNT, DEMO_PROJECT).len(), 4);
}

#[tokio::test]
async fn accounts_are_isolated_and_project_scoped_tokens_see_only_their_projects() {
    let s = start().await;
    s.sim
        .add_project("acct-other", "other", "Other project", &["prod", "dev"]);
    s.sim.add_api_token(ApiTokenGrant::for_account(
        "other-writer-token",
        "acct-other",
        "writer",
    ));
    let theirs = s.get("/api/v2/projects", "other-writer-token").await;
    let body = theirs.assert(StatusCode::OK);
    assert_eq!(body["totalCount"], 1);
    assert_eq!(body["items"][0]["key"], "other");
    s.get(ENVS, "other-writer-token")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    s.post(ENVS, "other-writer-token", &env_post("x"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");

    s.sim.add_api_token(
        ApiTokenGrant::new("scoped-token-0001", "writer").with_projects(&["sandbox"]),
    );
    let scoped = s.get("/api/v2/projects", "scoped-token-0001").await;
    assert_eq!(scoped.assert(StatusCode::OK)["totalCount"], 1);
    s.get(ENVS, "scoped-token-0001")
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    s.get("/api/v2/projects/sandbox/environments", "scoped-token-0001")
        .await
        .assert(StatusCode::OK);
}

#[tokio::test]
async fn unknown_methods_and_paths_get_launchdarkly_errors() {
    let s = start().await;
    let put = s
        .call(Method::PUT, ENVS, Some(WRITER), Some(&json!({})))
        .await;
    put.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let unknown = s.get("/api/v2/segments/demo/staging", WRITER).await;
    unknown.assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn the_request_log_keeps_versions_and_agents_but_only_fingerprints_of_secrets() {
    let s = start().await;
    s.get("/api/v2/projects?limit=1", WRITER)
        .await
        .assert(StatusCode::OK);
    s.post(ENVS, WRITER, &env_post("logged"))
        .await
        .assert(StatusCode::CREATED);
    // LaunchDarkly does not require the version header; the log shows its absence.
    let res = s
        .http
        .get(s.url("/api/v2/caller-identity"))
        .header("Authorization", WRITER)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let log = s.sim.requests();
    assert_eq!(log.len(), 3);
    let list = &log[0];
    assert_eq!(
        (list.method.as_str(), list.path.as_str()),
        ("GET", "/api/v2/projects")
    );
    assert_eq!(list.query.as_deref(), Some("limit=1"));
    assert_eq!(list.status, Some(200));
    assert_eq!(list.account_id.as_deref(), Some(ACCOUNT));
    assert_eq!(list.header("LD-API-Version"), Some("20240415"));
    assert_eq!(
        list.header("user-agent"),
        Some("launchdarkly-simtest-int/0.0.0")
    );
    assert_eq!(
        list.header("authorization"),
        Some(fingerprint(WRITER).as_str())
    );
    let create = &log[1];
    assert_eq!(create.status, Some(201));
    assert_eq!(create.body.as_ref().unwrap()["key"], "logged");
    assert_eq!(create.header("content-type"), Some("application/json"));
    assert_eq!(log[2].header("ld-api-version"), None);
    assert!(
        !format!("{log:?}").contains(WRITER),
        "the raw token is never kept"
    );

    s.sim.clear_requests();
    assert!(s.sim.requests().is_empty());
}
