//! Text Postgres cannot store (NUL) and other control characters are a 400
//! naming the field, before anything is written or sent to LaunchDarkly;
//! `.` and `..` are not ids; the settings page's source list answers a
//! client error for an unknown project.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::raw_request;
use crate::lifecycle::{TOKEN, connect, ready_tenant, spawn, start_sim};
use crate::support::helpers::assert_error;
use crate::ui::{browser_for, csrf_token};

#[tokio::test]
async fn nul_and_control_characters_are_refused_with_the_field_named_and_nothing_changes() {
    let sim = start_sim().await;
    let app = spawn(&sim, true).await;

    for bad in ["Acme\u{0}Corp", "Acme\u{1b}[31m", "line\nbreak"] {
        let (status, body) = app
            .api(
                Method::PUT,
                "/tenants/fresh",
                Some(json!({ "display_name": bad })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_error(&body, "invalid_text");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("display_name"),
            "{body}"
        );
    }
    let (status, _) = app.api(Method::GET, "/tenants/fresh", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no tenant was written");

    ready_tenant(&app, "acme").await;
    sim.clear_requests();
    let (status, body) = app
        .api(
            Method::PUT,
            "/tenants/acme/environments/pr-1",
            Some(json!({ "name": "PR\u{0}1" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("name "),
        "{body}"
    );
    let (status, _) = app
        .api(Method::GET, "/tenants/acme/environments/pr-1", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no environment was recorded");
    assert!(
        sim.requests().iter().all(|r| r.method == "GET"),
        "nothing was sent to LaunchDarkly: {:?}",
        sim.requests()
    );

    let (status, body) = app
        .api(
            Method::PUT,
            "/tenants/acme/settings",
            Some(
                json!({"project_key": "demo", "source_environment_key": "staging",
                        "name_template": "Preview\u{0} {ephemeral_id}"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_settings");
    assert!(
        body["error"]["fields"]["name_template"]
            .as_str()
            .unwrap()
            .contains("control characters"),
        "{body}"
    );
    let (_, tenant) = app.api(Method::GET, "/tenants/acme", None).await;
    assert_eq!(
        tenant["settings"]["name_template"], "Preview {ephemeral_id}",
        "the saved settings are unchanged"
    );
}

#[tokio::test]
async fn dot_and_dot_dot_are_refused_as_tenant_and_ephemeral_ids() {
    let sim = start_sim().await;
    let app = spawn(&sim, false).await;
    ready_tenant(&app, "acme").await;
    // Sent raw: HTTP clients would resolve the dot segments themselves.
    for path in [
        "/api/v1/tenants/acme/environments/..",
        "/api/v1/tenants/acme/environments/.",
        "/api/v1/tenants/../environments/x",
        "/api/v1/tenants/.",
    ] {
        let request = format!(
            "PUT {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n",
            app.api_key
        );
        let answer = raw_request(&app.address, request.as_bytes()).await;
        assert_eq!(answer.status, 400, "{path}: {answer:?}");
        assert_error(&answer.json(), "invalid_id");
    }
    let (_, list) = app
        .api(Method::GET, "/tenants/acme/environments", None)
        .await;
    assert_eq!(list["items"], json!([]), "nothing was recorded");
}

#[tokio::test]
async fn the_settings_form_shows_a_control_character_error_on_its_field() {
    let sim = start_sim().await;
    let app = spawn(&sim, false).await;
    connect(&app, "acme", TOKEN).await;
    let browser = browser_for(&app, "acme").await;
    let html = browser
        .get(app.url("/settings"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = csrf_token(&html);
    let res = browser
        .post(app.url("/settings"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("project_key", "demo"),
            ("source_environment_key", "staging"),
            ("name_template", "Preview\u{0} {ephemeral_id}"),
            ("color", "#7c3aed"),
            ("ttl_value", ""),
            ("ttl_unit", "hours"),
            ("key_prefix", "eph"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("must not contain control characters"),
        "the field's error is on the form"
    );
    assert!(!page.contains("Something went wrong"), "{page}");
    let saved: Option<String> =
        sqlx::query_scalar("select name_template from tenant_settings where tenant_id = 'acme'")
            .fetch_optional(&app.db)
            .await
            .unwrap();
    assert_eq!(saved, None, "nothing was saved");
}

#[tokio::test]
async fn the_source_list_answers_a_client_error_for_an_unknown_project() {
    let sim = start_sim().await;
    let app = spawn(&sim, false).await;
    connect(&app, "acme", TOKEN).await;
    let browser = browser_for(&app, "acme").await;
    let get = |project: &'static str| {
        let browser = browser.clone();
        let url = app.url("/settings/environments");
        async move {
            // As the page's script asks.
            let res = browser
                .get(url)
                .header(reqwest::header::ACCEPT, "application/json")
                .query(&[("project_key", project)])
                .send()
                .await
                .unwrap();
            let status = res.status();
            let json = res
                .headers()
                .get(CONTENT_TYPE)
                .is_some_and(|v| v.to_str().unwrap().starts_with("application/json"));
            let text = res.text().await.unwrap();
            assert!(json, "{project}: {status} {text}");
            (
                status,
                serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            )
        }
    };
    let (status, body) = get("no-such-project").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "project_not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-project")
    );
    let (status, body) = get("-not a key").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_project_key");
    let (status, body) = get("demo").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["environments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["key"] == "staging")
    );
}
