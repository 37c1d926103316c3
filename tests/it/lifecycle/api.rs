//! The environment API end to end: answers and statuses, what lands in
//! LaunchDarkly, generations, idempotency, listing and the audit trail.

use ld_eaas::naming as keys;
use ld_eaas::simulator::{DEMO_ACCOUNT, SimFlagState};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::*;
use crate::support::helpers::{assert_error, assert_logs_free_of};

#[tokio::test]
async fn a_create_returns_sdk_keys_of_a_tagged_clone_of_the_source() {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    ready_tenant(&app, "acme").await;
    // Make the source's flag state distinctive so the clone can be checked.
    sim.set_flag(
        DEMO_ACCOUNT,
        "demo",
        "staging",
        "clone-marker",
        SimFlagState {
            on: true,
            fallthrough_variation: 1,
            off_variation: 0,
        },
    )
    .unwrap();

    let (status, body) = put_env(
        &app,
        "acme",
        "PR-42",
        "?wait=10",
        Some(json!({"tags": ["team-a"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["generation"], 1);
    let ld = &body["launchdarkly"];
    let key = ld["environment_key"].as_str().unwrap();
    assert!(key.starts_with("eph-pr-42-"), "{key}");
    assert_eq!(ld["project_key"], "demo");
    assert_eq!(ld["source_environment_key"], "staging");
    assert_eq!(ld["environment_name"], "Preview PR-42");

    let upstream = sim
        .environment(DEMO_ACCOUNT, "demo", key)
        .expect("created upstream");
    assert_eq!(ld["client_side_id"], upstream.id.as_str());
    assert_eq!(ld["sdk_key"], upstream.api_key.as_str());
    assert_eq!(ld["mobile_key"], upstream.mobile_key.as_str());
    let url = ld["url"].as_str().unwrap();
    assert!(
        url.starts_with(&sim.base_url()) && url.contains(key),
        "{url}"
    );
    let staging = sim.environment(DEMO_ACCOUNT, "demo", "staging").unwrap();
    assert_eq!(
        upstream.flags, staging.flags,
        "a clone copies the source's flag state"
    );
    assert_eq!(upstream.flags["clone-marker"].fallthrough_variation, 1);
    let mut tags = upstream.tags.clone();
    tags.sort();
    let mut expected = vec![
        "ld-eaas".to_owned(),
        "ld-eaas.default".to_owned(),
        keys::tenant_tag(&tenant("acme")),
        "team-a".to_owned(),
    ];
    expected.sort();
    assert_eq!(tags, expected);

    // Keys are sealed at rest, and a later GET does not need LaunchDarkly.
    let stored: (String, String) = sqlx::query_as("select sdk_key, mobile_key from environments")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(stored.0.starts_with("v1.") && !stored.0.contains(&upstream.api_key));
    sim.set_faults(ld_eaas::simulator::Faults::always_error(503));
    let (status, got) = get_env(&app, "acme", "PR-42").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["launchdarkly"]["sdk_key"], upstream.api_key.as_str());
    sim.set_faults(ld_eaas::simulator::Faults::none());

    // Secrets stay out of logs, the audit log and the list.
    let (_, list) = app
        .api(Method::GET, "/tenants/acme/environments", None)
        .await;
    assert!(
        list["items"][0]["launchdarkly"]["sdk_key"].is_null(),
        "{list}"
    );
    let audit: Vec<String> = sqlx::query_scalar("select details::text from audit_events")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .all(|d| !d.contains(&upstream.api_key) && !d.contains(&upstream.mobile_key))
    );
    assert_logs_free_of(&[&upstream.api_key, &upstream.mobile_key, TOKEN]);
}

#[tokio::test]
async fn repeating_a_put_returns_the_same_environment_and_a_different_body_is_a_conflict() {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    ready_tenant(&app, "acme").await;
    let body = json!({"name": "Checkout preview", "tags": ["b", "a"], "ttl_seconds": 3600});
    let (status, first) = put_env(&app, "acme", "pr-1", "?wait=10", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(
        first["launchdarkly"]["environment_name"],
        "Checkout preview"
    );
    // Same request in another spelling (tag order): the same environment.
    let (status, again) = put_env(
        &app,
        "acme",
        "pr-1",
        "",
        Some(json!({"tags": ["a", "b"], "ttl_seconds": 3600, "name": "Checkout preview"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        again["launchdarkly"]["environment_key"],
        first["launchdarkly"]["environment_key"]
    );
    assert_eq!(
        again["launchdarkly"]["sdk_key"],
        first["launchdarkly"]["sdk_key"]
    );
    assert_eq!(demo_envs(&sim).len(), 1, "no second environment upstream");

    let (status, body) = put_env(&app, "acme", "pr-1", "", Some(json!({"name": "Other"}))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "conflicting_request");
    let (status, body) = put_env(&app, "acme", "pr-1", "", None).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "no body is a different body: {body}"
    );
    assert_eq!(demo_envs(&sim).len(), 1);
}

#[tokio::test]
async fn delete_redelete_and_recreate_move_through_generations() {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;
    ready_tenant(&app, "acme").await;
    let (status, first) = put_env(&app, "acme", "pr-7", "?wait=10", None).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let key1 = first["launchdarkly"]["environment_key"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, _) = delete_env(&app, "acme", "pr-7", "?wait=10").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        sim.environment(DEMO_ACCOUNT, "demo", &key1).is_none(),
        "deleted upstream"
    );
    let (status, gone) = get_env(&app, "acme", "pr-7").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(gone["status"], "deleted");
    assert!(gone["launchdarkly"]["sdk_key"].is_null());
    // Deleting what is gone, or what never was, is success.
    let (status, _) = delete_env(&app, "acme", "pr-7", "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = delete_env(&app, "acme", "never-made", "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // So is deleting under a tenant that is gone (offboarding deleted all).
    let (status, _) = delete_env(&app, "acme-gone", "pr-7", "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // A PUT after a delete makes a fresh generation with its own key.
    let (status, second) = put_env(&app, "acme", "pr-7", "?wait=10", None).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["generation"], 2);
    let key2 = second["launchdarkly"]["environment_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(key1, key2);

    // Recreate: the old generation goes, a new clone comes.
    let (status, third) = app
        .api(
            Method::POST,
            "/tenants/acme/environments/pr-7/recreate?wait=10",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{third}");
    assert_eq!(third["generation"], 3);
    let key3 = third["launchdarkly"]["environment_key"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually(
        Duration::from_secs(10),
        "old generation deleted",
        || async {
            // Recorded, not just gone upstream: the record commits after
            // LaunchDarkly answers.
            let status: String = sqlx::query_scalar(
                "select status from environments where ephemeral_id = 'pr-7' and generation = 2",
            )
            .fetch_one(&app.db)
            .await
            .unwrap();
            status == "deleted"
        },
    )
    .await;
    assert!(sim.environment(DEMO_ACCOUNT, "demo", &key2).is_none());
    let upstream: Vec<String> = demo_envs(&sim).into_iter().map(|e| e.key).collect();
    assert_eq!(upstream, std::slice::from_ref(&key3));
    assert_ne!(
        third["launchdarkly"]["sdk_key"],
        second["launchdarkly"]["sdk_key"]
    );

    let (status, body) = app
        .api(
            Method::POST,
            "/tenants/acme/environments/nothing/recreate",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found");

    // Every state change left an audit row.
    let actions: Vec<String> = audit_actions(&app, "acme")
        .await
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    for expected in [
        "environment.create_requested",
        "environment.ready",
        "environment.delete_requested",
        "environment.deleted",
        "environment.recreate_requested",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} missing from {actions:?}"
        );
    }
    assert_eq!(
        actions.iter().filter(|a| *a == "environment.ready").count(),
        3
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "environment.deleted")
            .count(),
        2
    );
    let (status, activity) = app
        .api(Method::GET, "/tenants/acme/activity?limit=2", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(activity["items"].as_array().unwrap().len(), 2);
    assert!(activity["next_cursor"].is_i64(), "{activity}");
}

#[tokio::test]
async fn puts_are_refused_until_the_tenant_is_connected_and_configured() {
    let sim = start_sim().await;
    let app = spawn(&sim, false).await;
    let (status, body) = put_env(&app, "nobody", "pr-1", "", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    app.create_tenant("acme").await;
    let (status, body) = put_env(&app, "acme", "pr-1", "", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "not_connected");
    connections::connect(
        &app.state,
        &tenant("acme"),
        Connected::from_api_token(SecretString::from(TOKEN.to_owned())),
        "test",
    )
    .await
    .unwrap();
    let (status, body) = put_env(&app, "acme", "pr-1", "", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "settings_missing");
    sqlx::query("update connections set status = 'needs_reconnect'")
        .execute(&app.db)
        .await
        .unwrap();
    let (status, body) = put_env(&app, "acme", "pr-1", "", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "needs_reconnect");
    let count: i64 = sqlx::query_scalar("select count(*) from environments")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn bad_environment_requests_are_refused_and_change_nothing() {
    let sim = start_sim().await;
    let app = spawn(&sim, false).await;
    ready_tenant(&app, "acme").await;
    for (body, what) in [
        (json!({"tags": ["ld-eaas.other"]}), "forged ownership tag"),
        (json!({"tags": ["has space"]}), "bad tag"),
        (json!({"ttl_seconds": 0}), "zero ttl"),
        (json!({"name": ""}), "empty name"),
        (json!({"source_environment_key": "-x"}), "bad source key"),
        (json!({"colour": "red"}), "unknown field"),
    ] {
        let (status, answer) = put_env(&app, "acme", "pr-1", "", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
        assert_error(&answer, "invalid_request");
    }
    let (status, answer) = put_env(
        &app,
        "acme",
        "pr-1",
        "",
        Some(json!({"name": "x".repeat(100_000)})),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&answer, "payload_too_large");
    let res = app
        .client
        .put(app.url("/api/v1/tenants/acme/environments/pr-1"))
        .bearer_auth(&app.api_key)
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, answer) = put_env(&app, "acme", "bad%20id", "", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, _) = put_env(&app, "acme", "pr-1", "?wait=abc", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, answer) = put_env(&app, "acme", "pr-1", "?wait=61", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["message"], "wait: at most 60 seconds");
    let count: i64 = sqlx::query_scalar("select count(*) from environments")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn without_workers_a_put_answers_202_and_the_list_pages_newest_first() {
    let sim = start_sim().await;
    let app = spawn(&sim, false).await;
    ready_tenant(&app, "acme").await;
    for i in 0..5 {
        let (status, body) = put_env(&app, "acme", &format!("pr-{i}"), "?wait=0", None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["status"], "pending");
        assert!(body["launchdarkly"]["sdk_key"].is_null());
    }
    let (status, page1) = app
        .api(Method::GET, "/tenants/acme/environments?limit=3", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{page1}");
    let ids: Vec<&str> = page1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["ephemeral_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["pr-4", "pr-3", "pr-2"]);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = app
        .api(
            Method::GET,
            &format!("/tenants/acme/environments?limit=3&cursor={cursor}"),
            None,
        )
        .await;
    let ids: Vec<&str> = page2["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["ephemeral_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["pr-1", "pr-0"]);
    assert!(page2["next_cursor"].is_null());
    let (status, body) = app
        .api(Method::GET, "/tenants/acme/environments?cursor=bogus", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // The workers (here run by hand) make them ready.
    assert!(demo_envs(&sim).is_empty());
    let ran = ld_eaas::jobs::run_due_jobs(&app.state).await.unwrap();
    assert_eq!(ran, 5);
    assert_eq!(demo_envs(&sim).len(), 5);
    let (_, body) = get_env(&app, "acme", "pr-3").await;
    assert_eq!(body["status"], "ready");
    assert!(
        body["launchdarkly"]["sdk_key"]
            .as_str()
            .unwrap()
            .starts_with("sdk-")
    );
}

#[tokio::test]
async fn a_tenant_key_reaches_only_its_own_environments() {
    let sim = start_sim().await;
    let app = spawn(&sim, false).await;
    ready_tenant(&app, "acme").await;
    app.create_tenant("other").await;
    put_env(&app, "acme", "pr-1", "?wait=0", None).await;
    let (_, key) =
        ld_eaas::store::api_keys::create(&app.db, "other-only", Some(&tenant("other")), app.now())
            .await
            .unwrap();
    use secrecy::ExposeSecret;
    let (status, _) = app
        .api_as(
            key.expose_secret(),
            Method::GET,
            "/tenants/acme/environments/pr-1",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .api_as(
            key.expose_secret(),
            Method::GET,
            "/tenants/other/environments/pr-1",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, list) = app
        .api_as(
            key.expose_secret(),
            Method::GET,
            "/tenants/other/environments",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(list["items"].as_array().unwrap().is_empty());
}
