//! Every REST operation, pagination, tag filters, error mapping and the headers
//! every request carries.

use std::time::Duration;

use ld_eaas::launchdarkly::{
    API_VERSION, Credential, DeleteOutcome, EnvironmentPost, LdClient, LdClientConfig, LdError,
    RequestAuth, SourceEnv,
};
use ld_eaas::simulator::{DEMO_ACCOUNT, DEMO_PROJECT, Faults, SimulatorConfig, fingerprint};
use secrecy::ExposeSecret;

use super::{READER, VENDOR, WRITER, api_token, sim_config, start, start_with, writer};

fn post(key: &str, tags: &[&str]) -> EnvironmentPost {
    let mut post = EnvironmentPost::new(key, format!("Preview {key}"), "00AAFF");
    post.source = Some(SourceEnv::new("staging"));
    post.tags = tags.iter().map(|t| (*t).to_owned()).collect();
    post
}

#[tokio::test]
async fn every_operation_works_against_the_simulator() {
    let ld = start().await;
    let auth = api_token(WRITER);

    let me = ld.client.caller_identity(&auth).await.unwrap();
    assert_eq!(me.account_id.as_deref(), Some(DEMO_ACCOUNT));
    assert!(me.scopes.iter().any(|s| s == "writer"), "{me:?}");

    let projects = ld.client.list_projects(&auth).await.unwrap();
    assert!(projects.iter().any(|p| p.key == DEMO_PROJECT));
    let project = ld.client.get_project(&auth, DEMO_PROJECT).await.unwrap();
    assert_eq!(project.key, DEMO_PROJECT);

    let envs = ld
        .client
        .list_environments(&auth, DEMO_PROJECT, &[])
        .await
        .unwrap();
    let mut keys: Vec<_> = envs.iter().map(|e| e.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["production", "staging", "test"]);
    assert!(envs.iter().any(|e| e.key == "production" && e.critical));

    let created = ld
        .client
        .create_environment(
            &auth,
            DEMO_PROJECT,
            &post("pr-1", &["ld-eaas", "ld-eaas.t"]),
        )
        .await
        .unwrap();
    assert_eq!(created.key, "pr-1");
    assert_eq!(created.name, "Preview pr-1");
    assert_eq!(created.color, "00AAFF");
    assert_eq!(created.tags, ["ld-eaas", "ld-eaas.t"]);
    assert!(!created.critical);
    let keys = created.sdk_keys();
    assert!(keys.server.expose_secret().starts_with("sdk-"));
    assert!(keys.mobile.expose_secret().starts_with("mob-"));
    assert!(!keys.client_side_id.is_empty());
    let body = &ld.requests_to("/api/v2/projects/demo/environments")[1].body;
    assert_eq!(
        body.as_ref().unwrap()["source"],
        serde_json::json!({"key": "staging"}),
        "the create asks for a clone"
    );

    let fetched = ld
        .client
        .get_environment(&auth, DEMO_PROJECT, "pr-1")
        .await
        .unwrap();
    assert_eq!(fetched.sdk_keys().client_side_id, keys.client_side_id);
    assert_eq!(
        fetched.sdk_keys().server.expose_secret(),
        keys.server.expose_secret()
    );

    let deleted = ld
        .client
        .delete_environment(&auth, DEMO_PROJECT, "pr-1")
        .await
        .unwrap();
    assert_eq!(deleted, DeleteOutcome::Deleted);
    assert!(
        ld.sim
            .environment(DEMO_ACCOUNT, DEMO_PROJECT, "pr-1")
            .is_none()
    );
    let again = ld.client.get_environment(&auth, DEMO_PROJECT, "pr-1").await;
    assert_eq!(again.unwrap_err(), LdError::NotFound);

    let url = ld.client.environment_url(DEMO_PROJECT, "pr-1");
    assert_eq!(
        url.as_str(),
        format!(
            "{}/projects/demo/settings/environments?env=pr-1&selected-env=pr-1",
            ld.sim.base_url()
        )
    );

    crate::support::helpers::assert_logs_free_of(&[WRITER, keys.server.expose_secret()]);
}

#[tokio::test]
async fn listing_environments_fetches_every_page() {
    let ld = start().await;
    let auth = writer();
    for i in 0..23 {
        ld.client
            .create_environment(&auth, DEMO_PROJECT, &post(&format!("page-{i:02}"), &[]))
            .await
            .unwrap();
    }
    let envs = ld
        .client
        .list_environments(&auth, DEMO_PROJECT, &[])
        .await
        .unwrap();
    let mut keys: Vec<_> = envs.iter().map(|e| e.key.clone()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 26, "3 seeded + 23 created, each once");

    let pages: Vec<_> = ld
        .requests_to("/api/v2/projects/demo/environments")
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert_eq!(pages.len(), 2, "26 environments at 20 a page");
    assert!(pages[1].query.as_deref().unwrap().contains("offset=20"));
}

#[tokio::test]
async fn listing_projects_fetches_every_page() {
    let config = SimulatorConfig {
        seed_extra_projects: 25,
        ..sim_config()
    };
    let ld = start_with(config, |c| c.page_size = 10).await;
    let projects = ld.client.list_projects(&writer()).await.unwrap();
    assert_eq!(projects.len(), 28, "3 seeded + 25 filler projects");
    assert_eq!(ld.requests_to("/api/v2/projects").len(), 3, "10 a page");
}

#[tokio::test]
async fn a_tag_filter_returns_only_environments_with_every_tag() {
    let ld = start().await;
    let auth = writer();
    let mine = ["ld-eaas", "ld-eaas.one"];
    let theirs = ["ld-eaas", "ld-eaas.two"];
    for (key, tags) in [("mine-a", &mine), ("mine-b", &mine), ("theirs", &theirs)] {
        ld.client
            .create_environment(&auth, DEMO_PROJECT, &post(key, tags.as_slice()))
            .await
            .unwrap();
    }

    let found = ld
        .client
        .list_environments(&auth, DEMO_PROJECT, &mine)
        .await
        .unwrap();
    let mut keys: Vec<_> = found.iter().map(|e| e.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["mine-a", "mine-b"]);

    let query = ld
        .requests_to("/api/v2/projects/demo/environments")
        .last()
        .and_then(|r| r.query.clone())
        .unwrap();
    assert!(
        query.contains("filter=tags%3Ald-eaas%2Bld-eaas.one"),
        "the + is sent encoded: {query}"
    );

    let refused = ld
        .client
        .list_environments(&auth, DEMO_PROJECT, &["ld-eaas,query:x"])
        .await;
    assert!(matches!(refused, Err(LdError::InvalidRequest { .. })));
}

#[tokio::test]
async fn a_tag_filter_keeps_its_meaning_across_pages() {
    let ld = start().await;
    // The seeded `sandbox` project: 23 environments tagged `qa`, the odd ones also `odd`.
    let qa = ld
        .client
        .list_environments(&writer(), "sandbox", &["qa"])
        .await
        .unwrap();
    assert_eq!(qa.len(), 23);
    let odd = ld
        .client
        .list_environments(&writer(), "sandbox", &["qa", "odd"])
        .await
        .unwrap();
    assert_eq!(odd.len(), 12);
    assert!(odd.iter().all(|e| e.has_tags(&["qa", "odd"])));
    let pages = ld.requests_to("/api/v2/projects/sandbox/environments");
    assert_eq!(pages.len(), 3, "two pages of `qa`, one of `qa+odd`");
    assert!(
        pages[1]
            .query
            .as_deref()
            .unwrap()
            .contains("filter=tags%3Aqa"),
        "the next page keeps the filter: {:?}",
        pages[1].query
    );
}

#[tokio::test]
async fn creating_a_taken_key_is_a_conflict() {
    let ld = start().await;
    let auth = writer();
    let conflict = ld
        .client
        .create_environment(&auth, DEMO_PROJECT, &post("staging", &[]))
        .await;
    assert!(
        matches!(&conflict, Err(LdError::Conflict { message }) if !message.is_empty()),
        "{conflict:?}"
    );
    assert!(!conflict.unwrap_err().is_retryable());
}

#[tokio::test]
async fn deleting_an_unknown_environment_is_already_gone() {
    let ld = start().await;
    let outcome = ld
        .client
        .delete_environment(&writer(), DEMO_PROJECT, "never-existed")
        .await
        .unwrap();
    assert_eq!(outcome, DeleteOutcome::AlreadyGone);
}

#[tokio::test]
async fn bad_requests_and_unknown_projects_map_to_their_errors() {
    let ld = start().await;
    let auth = writer();
    let missing = ld.client.get_project(&auth, "no-such-project").await;
    assert_eq!(missing.unwrap_err(), LdError::NotFound);

    let bad = ld
        .client
        .create_environment(
            &auth,
            DEMO_PROJECT,
            &EnvironmentPost::new("bad key!", "Bad", "not-a-color"),
        )
        .await;
    assert!(
        matches!(&bad, Err(LdError::InvalidRequest { message }) if !message.is_empty()),
        "{bad:?}"
    );
}

#[tokio::test]
async fn bad_tokens_are_unauthorized_and_readers_are_forbidden_to_write() {
    let ld = start().await;
    let unknown = ld
        .client
        .list_projects(&api_token("api-not-a-real-token"))
        .await;
    assert_eq!(unknown.unwrap_err(), LdError::Unauthorized);

    let bearer = RequestAuth::new(Credential::OAuth("not-a-real-oauth-token".into()), None);
    assert_eq!(
        ld.client.caller_identity(&bearer).await.unwrap_err(),
        LdError::Unauthorized
    );

    let reader = api_token(READER);
    assert!(ld.client.get_project(&reader, DEMO_PROJECT).await.is_ok());
    let write = ld
        .client
        .create_environment(&reader, DEMO_PROJECT, &post("by-reader", &[]))
        .await;
    assert!(matches!(write, Err(LdError::Forbidden { .. })), "{write:?}");
    let delete = ld
        .client
        .delete_environment(&reader, DEMO_PROJECT, "staging")
        .await;
    assert!(
        matches!(delete, Err(LdError::Forbidden { .. })),
        "{delete:?}"
    );
    assert!(
        ld.sim
            .environment(DEMO_ACCOUNT, DEMO_PROJECT, "staging")
            .is_some()
    );
}

#[tokio::test]
async fn every_request_carries_the_api_version_and_the_partner_user_agent() {
    let ld = start().await;
    let auth = writer();
    ld.client.caller_identity(&auth).await.unwrap();
    ld.client.list_projects(&auth).await.unwrap();
    ld.client.get_project(&auth, DEMO_PROJECT).await.unwrap();
    ld.client
        .list_environments(&auth, DEMO_PROJECT, &["ld-eaas"])
        .await
        .unwrap();
    ld.client
        .create_environment(&auth, DEMO_PROJECT, &post("hdr", &[]))
        .await
        .unwrap();
    ld.client
        .get_environment(&auth, DEMO_PROJECT, "hdr")
        .await
        .unwrap();
    ld.client
        .delete_environment(&auth, DEMO_PROJECT, "hdr")
        .await
        .unwrap();
    let oauth = RequestAuth::new(Credential::OAuth("some-oauth-token".into()), None);
    let _ = ld.client.caller_identity(&oauth).await;

    let requests = ld.sim.requests();
    assert_eq!(requests.len(), 8);
    let agent = format!("launchdarkly-{VENDOR}-int/{}", env!("CARGO_PKG_VERSION"));
    for request in &requests {
        assert_eq!(
            request.header("ld-api-version"),
            Some(API_VERSION),
            "{request:?}"
        );
        assert_eq!(request.header("user-agent"), Some(agent.as_str()));
    }
    // API tokens go raw, OAuth tokens as Bearer.
    assert_eq!(
        requests[0].header("authorization"),
        Some(fingerprint(WRITER).as_str())
    );
    assert_eq!(
        requests[7].header("authorization"),
        Some(format!("Bearer {}", fingerprint("some-oauth-token")).as_str())
    );
}

#[tokio::test]
async fn server_errors_are_upstream_and_retryable() {
    let ld = start().await;
    ld.sim.set_faults(Faults::always_error(503));
    let err = ld.client.list_projects(&writer()).await.unwrap_err();
    assert_eq!(err, LdError::Upstream { status: 503 });
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout() {
    let ld = start_with(sim_config(), |c| {
        c.request_timeout = Duration::from_millis(300);
    })
    .await;
    ld.sim.set_faults(Faults {
        timeout_rate: 1.0,
        timeout_hold: Duration::from_secs(5),
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    let err = ld.client.caller_identity(&writer()).await.unwrap_err();
    assert_eq!(err, LdError::Timeout);
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn an_unreachable_host_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let config = LdClientConfig::new(format!("http://{addr}").parse().unwrap(), VENDOR);
    let client = LdClient::new(config).unwrap();
    let err = client.caller_identity(&writer()).await.unwrap_err();
    assert!(matches!(err, LdError::Transport { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(!err.to_string().contains(WRITER));
}
