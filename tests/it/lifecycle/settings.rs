//! Settings are checked against LaunchDarkly before they are saved.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::*;
use crate::support::helpers::assert_error;

#[tokio::test]
async fn settings_are_saved_with_defaults_once_launchdarkly_knows_project_and_source() {
    let sim = start_sim().await;
    let app = spawn(&sim, false).await;
    connect(&app, "acme", TOKEN).await;
    let saved = configure(&app, "acme", "demo", "staging").await;
    assert_eq!(saved["project_key"], "demo");
    assert_eq!(saved["name_template"], "Preview {ephemeral_id}");
    assert_eq!(saved["key_prefix"], "eph");
    assert_eq!(saved["color"], "7c3aed");
    let (_, tenant) = app.api(Method::GET, "/tenants/acme", None).await;
    assert_eq!(tenant["settings"]["source_environment_key"], "staging");
    let actions = audit_actions(&app, "acme").await;
    assert!(actions.iter().any(|(a, _)| a == "settings.updated"));

    let (status, saved) = app
        .api(
            Method::PUT,
            "/tenants/acme/settings",
            Some(
                json!({"project_key": "demo", "source_environment_key": "test",
                        "name_template": "PR {ephemeral_id}", "color": "#00FF00",
                        "default_ttl_seconds": 86400, "key_prefix": "pr"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["color"], "00ff00");
    assert_eq!(saved["default_ttl_seconds"], 86400);
}

#[tokio::test]
async fn unknown_projects_sources_and_bad_fields_are_reported_per_field() {
    let sim = start_sim().await;
    let app = spawn(&sim, false).await;
    connect(&app, "acme", TOKEN).await;
    let put = |body| async {
        app.api(Method::PUT, "/tenants/acme/settings", Some(body))
            .await
    };

    let (status, body) =
        put(json!({"project_key": "nope", "source_environment_key": "staging"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_settings");
    assert!(
        body["error"]["fields"]["project_key"]
            .as_str()
            .unwrap()
            .contains("nope")
    );

    let (status, body) =
        put(json!({"project_key": "demo", "source_environment_key": "nope"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["fields"]["source_environment_key"].is_string(),
        "{body}"
    );

    let (status, body) = put(json!({"project_key": "", "source_environment_key": "staging", "color": "blue", "key_prefix": "-x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let fields = body["error"]["fields"].as_object().unwrap();
    assert!(
        fields.contains_key("project_key")
            && fields.contains_key("color")
            && fields.contains_key("key_prefix"),
        "{body}"
    );

    let (status, body) =
        put(json!({"project_key": "demo", "source_environment_key": "staging", "extra": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_request");

    let saved: i64 = sqlx::query_scalar("select count(*) from tenant_settings")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(saved, 0, "nothing invalid was saved");

    app.create_tenant("lonely").await;
    let (status, body) = app
        .api(
            Method::PUT,
            "/tenants/lonely/settings",
            Some(json!({"project_key": "demo", "source_environment_key": "staging"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "not_connected");
}
