//! The customer's journey over plain HTTP: the way back to the vendor's app,
//! the question before a browser switches tenants, the live environments
//! list, deleting while disconnected, and pages that read plainly.

use std::time::{Duration, Instant};

use ld_eaas::connections::{self, Connected};
use ld_eaas::ids::TenantId;
use reqwest::header::{ETAG, IF_NONE_MATCH, LOCATION};
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::helpers::{
    TestApp, assert_error, assert_logs_free_of, spawn_app, spawn_app_with,
};
use crate::ui::csrf_token;
use crate::ui::pages::connected;

const VENDOR: &str = "https://app.vendor.test";

fn cookie_browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

async fn page(browser: &reqwest::Client, app: &TestApp, path: &str) -> (StatusCode, String) {
    let res = browser.get(app.url(path)).send().await.unwrap();
    let status = res.status();
    (status, res.text().await.unwrap())
}

/// POST /connect-links with `body` (none: no body at all).
async fn mint_link(app: &TestApp, tenant: &str, body: Option<Value>) -> (StatusCode, Value) {
    app.api(
        Method::POST,
        &format!("/tenants/{tenant}/connect-links"),
        body,
    )
    .await
}

async fn link_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from connect_links")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// The `href` of the "Back to …" link, if the page has one.
fn back_link(html: &str) -> Option<String> {
    let at = html.find("id=\"back-to-product\" href=\"")? + "id=\"back-to-product\" href=\"".len();
    Some(html[at..].split('"').next()?.replace("&amp;", "&"))
}

#[tokio::test]
async fn a_connect_link_with_an_allowed_return_url_shows_the_way_back_on_every_page() {
    let app = spawn_app_with(|mut c| {
        c.return_url_origins = vec![VENDOR.to_owned()];
        c.product_name = "Acme Previews".to_owned();
        c
    })
    .await;
    app.create_tenant("acme").await;
    let return_url = format!("{VENDOR}/projects/42/integrations?tab=launchdarkly");
    let (status, body) = mint_link(&app, "acme", Some(json!({ "return_url": return_url }))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let link = body["url"].as_str().unwrap();
    assert!(
        !link.contains("vendor.test"),
        "the return URL is never put in the link"
    );

    let browser = cookie_browser();
    let res = browser.get(link).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/settings");
    for path in ["/settings", "/environments", "/activity", "/no/such/page"] {
        let (_, html) = page(&browser, &app, path).await;
        assert_eq!(
            back_link(&html).as_deref(),
            Some(return_url.as_str()),
            "{path} offers the way back"
        );
        assert!(html.contains("Back to Acme Previews"), "{path}");
    }

    // A link minted without one shows no way back, in a fresh browser.
    let (_, body) = mint_link(&app, "acme", None).await;
    let other = cookie_browser();
    other
        .get(body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let (status, html) = page(&other, &app, "/settings").await;
    assert_eq!(status, StatusCode::OK);
    assert!(back_link(&html).is_none());
    assert!(!html.contains("Back to Acme Previews"));
    assert_logs_free_of(&[&return_url]);
}

#[tokio::test]
async fn a_return_url_is_refused_unless_its_origin_is_allowed_and_nothing_is_stored() {
    // By default no origin is allowed.
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let (status, body) = mint_link(
        &app,
        "acme",
        Some(json!({"return_url": format!("{VENDOR}/x")})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "return_url_not_allowed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("LD_EAAS_RETURN_URL_ORIGINS")
    );
    assert_eq!(link_count(&app).await, 0);

    let app = spawn_app_with(|mut c| {
        c.return_url_origins = vec![VENDOR.to_owned()];
        c
    })
    .await;
    app.create_tenant("acme").await;
    for (return_url, code) in [
        ("https://evil.test/", "return_url_not_allowed"),
        ("http://app.vendor.test/", "return_url_not_allowed"),
        (
            "https://app.vendor.test.evil.test/",
            "return_url_not_allowed",
        ),
        ("https://app.vendor.test@evil.test/", "invalid_return_url"),
        ("https://user:secret@app.vendor.test/", "invalid_return_url"),
        ("//app.vendor.test/", "invalid_return_url"),
        ("/settings", "invalid_return_url"),
        ("javascript:alert(1)", "invalid_return_url"),
        ("https://app.vendor.test/\r\nx", "invalid_return_url"),
    ] {
        let (status, body) =
            mint_link(&app, "acme", Some(json!({ "return_url": return_url }))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{return_url:?}: {body}");
        assert_error(&body, code);
    }
    // Not a string, or a field that does not exist.
    let (status, body) = mint_link(&app, "acme", Some(json!({"return_url": 7}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = mint_link(&app, "acme", Some(json!({"return_to": VENDOR}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_request");
    // A body that is not JSON.
    let res = app
        .client
        .post(app.url("/api/v1/tenants/acme/connect-links"))
        .bearer_auth(&app.api_key)
        .header("content-type", "text/plain")
        .body("return_url=https://app.vendor.test/")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(link_count(&app).await, 0, "a refused request stored a link");

    // An allowed one, and an empty JSON object, both work.
    let (status, _) = mint_link(
        &app,
        "acme",
        Some(json!({"return_url": format!("{VENDOR}/ok")})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = mint_link(&app, "acme", Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let stored: Vec<Option<String>> =
        sqlx::query_scalar("select return_url from connect_links order by created_at, return_url")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored.contains(&Some(format!("{VENDOR}/ok"))));
    assert!(stored.contains(&None));
}

#[tokio::test]
async fn a_link_for_another_tenant_asks_before_the_browser_switches() {
    let app = spawn_app_with(|mut c| {
        c.return_url_origins = vec![VENDOR.to_owned()];
        c
    })
    .await;
    app.create_tenant("alpha").await;
    app.create_tenant("beta").await;
    let browser = cookie_browser();
    let (_, body) = mint_link(&app, "alpha", None).await;
    browser
        .get(body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let (_, html) = page(&browser, &app, "/settings").await;
    let alpha_csrf = csrf_token(&html);

    // Beta's link in alpha's browser: a question, nothing switched yet.
    let (_, body) = mint_link(
        &app,
        "beta",
        Some(json!({"return_url": format!("{VENDOR}/beta")})),
    )
    .await;
    let beta_link = body["url"].as_str().unwrap().to_owned();
    let res = browser.get(&beta_link).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/connect/switch");
    let (_, html) = page(&browser, &app, "/settings").await;
    assert!(html.contains("Tenant alpha") && !html.contains("Tenant beta"));
    let (status, html) = page(&browser, &app, "/connect/switch").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Switch to Tenant beta?"), "{html}");
    assert!(html.contains("This browser manages <strong>Tenant alpha</strong>"));
    assert!(html.contains("action=\"/connect/switch\""));
    assert_eq!(csrf_token(&html), alpha_csrf);

    // Without the CSRF token, or with a GET, nothing changes.
    let res = browser
        .post(app.url("/connect/switch"))
        .form(&[("decision", "switch")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let (_, html) = page(&browser, &app, "/activity").await;
    assert!(html.contains("Tenant alpha"));

    // Staying keeps alpha, and beta's link is used up.
    let res = browser
        .post(app.url("/connect/switch"))
        .form(&[("csrf_token", alpha_csrf.as_str()), ("decision", "stay")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(&browser, &app, "/settings").await;
    assert!(html.contains("You stayed with Tenant alpha"), "{html}");
    assert!(!html.contains("Tenant beta</span>"));
    assert!(back_link(&html).is_none(), "beta's way back is not taken");
    let (status, _) = page(
        &cookie_browser(),
        &app,
        beta_link.trim_start_matches(&app.address),
    )
    .await;
    assert_eq!(status, StatusCode::GONE);
    // Nothing pending any more: the question is not asked again.
    let res = browser
        .get(app.url("/connect/switch"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()[LOCATION], "/settings");

    // Another link for beta, and this time switching: bound to beta alone,
    // with a new session id and beta's way back.
    let (_, body) = mint_link(
        &app,
        "beta",
        Some(json!({"return_url": format!("{VENDOR}/beta")})),
    )
    .await;
    browser
        .get(body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let res = browser
        .post(app.url("/connect/switch"))
        .form(&[("csrf_token", alpha_csrf.as_str()), ("decision", "switch")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        res.headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("ld_eaas_session=")),
        "the session id is renewed"
    );
    let (_, html) = page(&browser, &app, "/settings").await;
    assert!(html.contains("You switched to Tenant beta"), "{html}");
    assert!(html.contains("Tenant beta") && !html.contains("Tenant alpha</span>"));
    assert_ne!(csrf_token(&html), alpha_csrf, "a new CSRF token");
    assert_eq!(back_link(&html), Some(format!("{VENDOR}/beta")));

    // The same tenant's link again binds at once, no question.
    let (_, body) = mint_link(&app, "beta", None).await;
    let res = browser
        .get(body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()[LOCATION], "/settings");
}

#[tokio::test]
async fn the_environment_list_answers_not_modified_until_an_environment_appears() {
    let env = connected(0).await;
    env.save_settings(&[]).await;
    let version = |browser: reqwest::Client, url: String, etag: Option<String>| async move {
        let mut req = browser.get(url).header("accept", "application/json");
        if let Some(etag) = etag {
            req = req.header(IF_NONE_MATCH, etag);
        }
        req.send().await.unwrap()
    };
    let url = env.app.url("/environments/version");
    let res = version(env.browser.clone(), url.clone(), None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let etag = res.headers()[ETAG].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(etag, format!("\"{}\"", body["version"].as_str().unwrap()));
    // The page the script polls from carries the same version.
    let html = env.page("/environments").await;
    assert!(html.contains(&format!(
        "data-version=\"{}\"",
        body["version"].as_str().unwrap()
    )));
    let res = version(env.browser.clone(), url.clone(), Some(etag.clone())).await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);

    let (status, _) = env
        .api(
            Method::PUT,
            "/tenants/acme/environments/pr-live?wait=0",
            Some(json!({})),
        )
        .await;
    assert!(status.is_success());
    let res = version(env.browser.clone(), url.clone(), Some(etag.clone())).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "a new environment is a change"
    );
    let changed = res.headers()[ETAG].to_str().unwrap().to_owned();
    assert_ne!(changed, etag);
    // Without a session the list is not for anyone.
    let res = version(cookie_browser(), url, None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn deleting_while_disconnected_says_plainly_it_waits_for_a_reconnect() {
    let env = connected(0).await;
    env.save_settings(&[("ttl_value", "2"), ("ttl_unit", "hours")])
        .await;
    for id in ["pr-1", "pr-2"] {
        env.api(
            Method::PUT,
            &format!("/tenants/acme/environments/{id}?wait=10"),
            Some(json!({})),
        )
        .await;
        env.wait_for_status(id, "ready").await;
    }
    let html = env.page("/environments").await;
    assert!(html.contains("action=\"/environments/pr-1/recreate\""));

    // Disconnect, then delete pr-1 from the page.
    let res = env.post("/connection/disconnect", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let html = env.page("/environments").await;
    assert!(
        !html.contains("/recreate\""),
        "re-creating cannot run while disconnected, so it is not offered"
    );
    assert!(html.contains("is deleted there once you reconnect it"));
    let res = env.post("/environments/pr-1/delete", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let html = env.page("/environments").await;
    assert!(
        html.contains("pr-1 will be deleted from LaunchDarkly once LaunchDarkly is reconnected"),
        "{html}"
    );
    assert!(!html.contains("flash-success"), "no green flash");
    // Let a worker try (and wait), then look again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let html = env.page("/environments").await;
    let row = html
        .split("data-ephemeral-id=\"pr-1\"")
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(row.contains("Waiting to delete"), "{row}");
    assert!(row.contains("once LaunchDarkly is reconnected in Settings"));
    assert!(!row.contains("waiting:"), "no worker notes: {row}");
    assert!(!row.contains("in 2 hours"), "a deleted one does not expire");
    assert!(!row.contains("Delete…") && !row.contains("Recreate…"));

    // Reconnecting lets the deletion run.
    connections::connect(
        &env.app.state,
        &TenantId::parse("acme").unwrap(),
        Connected::from_api_token(SecretString::from("api-ui-pages-writer-token".to_owned())),
        "test",
    )
    .await
    .unwrap();
    let started = Instant::now();
    loop {
        let (_, v) = env
            .api(Method::GET, "/tenants/acme/environments/pr-1", None)
            .await;
        if v["status"] == "deleted" {
            break;
        }
        // The worker waits out its backoff; nudge the clock past it.
        env.app.clock.advance(chrono::Duration::seconds(30));
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never deleted: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let html = env.page("/environments?show=all").await;
    let row = html
        .split("data-ephemeral-id=\"pr-1\"")
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(row.contains(">Deleted<"), "{row}");
    assert!(!row.contains("in 2 hours") && !row.contains("Expires in"));
}

#[tokio::test]
async fn activity_details_read_as_words_not_raw_fields() {
    let env = connected(0).await;
    env.save_settings(&[("ttl_value", "2"), ("ttl_unit", "days")])
        .await;
    env.api(
        Method::PUT,
        "/tenants/acme/environments/pr-3?wait=10",
        Some(json!({})),
    )
    .await;
    env.wait_for_status("pr-3", "ready").await;
    let html = env.page("/activity").await;
    for raw in [
        "auth kind",
        "expires at",
        "api_token",
        "default ttl seconds",
        "source environment key",
    ] {
        assert!(!html.contains(raw), "a raw detail: {raw}");
    }
    assert!(html.contains("<dt>Connected with</dt><dd>API access token</dd>"));
    assert!(html.contains("<dt>Default lifetime</dt><dd>2 days</dd>"));
    assert!(html.contains("<dt>Cloned from</dt><dd>staging</dd>"));
    assert!(html.contains("<dt>Expires</dt><dd>"), "{html}");
    assert!(html.contains(" UTC</dd>"), "times for people");
    // The table stacks on a phone and its scroll region takes focus.
    assert!(html.contains("<table class=\"table stack\" id=\"activity\">"));
    assert!(html.contains("tabindex=\"0\" role=\"region\""));
}

#[tokio::test]
async fn settings_problems_are_summarized_in_field_order_and_never_beside_saved() {
    let env = connected(0).await;
    env.save_settings(&[]).await;
    let html = env.page("/settings").await;
    assert!(html.contains(">Saved</span>"));
    let res = env
        .save_settings(&[
            ("ttl_value", "soon"),
            ("key_prefix", "-bad prefix"),
            ("name_template", "Preview {nope}"),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    let summary = html
        .split("id=\"error-summary\"")
        .nth(1)
        .unwrap()
        .split("</ul>")
        .next()
        .unwrap();
    let at = |field: &str| {
        summary
            .find(&format!("href=\"#{field}\""))
            .unwrap_or_else(|| panic!("{field} not in the summary"))
    };
    assert!(at("name_template") < at("key_prefix"));
    assert!(at("key_prefix") < at("ttl_value"));
    assert!(!html.contains(">Saved</span>"), "Saved beside problems");
    assert!(html.contains(">Not saved</span>"));
    // The footer names every tag the preview shows.
    let tags = ld_eaas::naming::ownership_tags(
        &env.app.state.config.instance_tag(),
        &TenantId::parse("acme").unwrap(),
    );
    let footer = html.split("id=\"ownership-tags\"").nth(1).unwrap();
    let footer = footer.split("</p>").next().unwrap();
    for tag in &tags {
        assert!(footer.contains(&format!("<code>{tag}</code>")), "{footer}");
    }
}

#[tokio::test]
async fn right_after_connecting_the_preview_names_the_project_the_picker_shows() {
    let env = connected(0).await;
    let html = env.page("/settings").await;
    let selected = html
        .split("<select id=\"project_key\"")
        .nth(1)
        .unwrap()
        .split("</select>")
        .next()
        .unwrap();
    assert!(
        selected.contains("<option value=\"demo\" selected>"),
        "{selected}"
    );
    assert!(
        html.contains("<code id=\"preview-project\">demo</code>"),
        "{html}"
    );
}

#[tokio::test]
async fn a_refused_api_token_keeps_the_token_form_open() {
    let app = crate::support::helpers::spawn_app_on(
        crate::support::helpers::TestDatabase::create().await,
        &[
            "--oauth-client-id",
            "some-client",
            "--oauth-client-secret",
            "some-secret",
        ],
        |c| c,
    )
    .await;
    app.create_tenant("acme").await;
    let browser = cookie_browser();
    let (_, body) = mint_link(&app, "acme", None).await;
    browser
        .get(body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let (_, html) = page(&browser, &app, "/settings").await;
    assert!(
        html.contains("<details class=\"alt-path\" id=\"api-token\">"),
        "closed at first when OAuth is on"
    );
    let res = browser
        .post(app.url("/connection/api-token"))
        .form(&[
            ("csrf_token", csrf_token(&html).as_str()),
            ("api_token", "has a space"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(&browser, &app, "/settings").await;
    assert!(
        html.contains("id=\"api-token\" open data-retry=\"true\""),
        "open again to retry"
    );
    assert!(html.contains("Organization settings → Authorization"));
    assert!(!html.contains("Account settings"));
    // Only once: the next visit starts closed again.
    let (_, html) = page(&browser, &app, "/settings").await;
    assert!(html.contains("<details class=\"alt-path\" id=\"api-token\">"));
}

#[test]
fn demo_help_names_the_demos_own_default_database() {
    use clap::CommandFactory;
    let mut cli = ld_eaas::cli::Cli::command();
    let demo = cli
        .find_subcommand_mut("demo")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(
        demo.contains("[default: postgres://localhost/ld_eaas_demo]"),
        "{demo}"
    );
    let serve = cli
        .find_subcommand_mut("serve")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(
        serve.contains("[default: postgres://localhost/ld_eaas]"),
        "{serve}"
    );
}
