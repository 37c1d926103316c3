//! End-to-end tests in real headless Chromium against the app and the
//! LaunchDarkly simulator. Screenshots of every step go to
//! `target/screenshots/` for people to look at.

use std::time::Duration;

use ld_eaas::simulator::{
    ApiTokenGrant, Faults, OAuthClientRegistration, Simulator, SimulatorConfig,
};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::browser_support::Browser;
use crate::support::helpers::{TestApp, TestDatabase, spawn_app, spawn_app_on};

const CLIENT_ID: &str = "ld-eaas-browser-test";
const CLIENT_SECRET: &str = "browser-test-client-secret";
const LD_API_TOKEN: &str = "api-browser-test-writer-token";

/// The app pointed at a fresh simulator, with its OAuth client registered on
/// both ends (the redirect URI once the app's port is known).
struct WithSimulator {
    app: TestApp,
    sim: Simulator,
}

async fn app_with_simulator() -> WithSimulator {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = Simulator::start(
        SimulatorConfig {
            api_tokens: vec![ApiTokenGrant::new(LD_API_TOKEN, "writer")],
            auto_approve: false,
            ..SimulatorConfig::default()
        },
        listener,
    )
    .await
    .unwrap();
    let base = sim.base_url();
    let app = spawn_app_on(
        TestDatabase::create().await,
        &[
            "--launchdarkly-url",
            &base,
            "--oauth-client-id",
            CLIENT_ID,
            "--oauth-client-secret",
            CLIENT_SECRET,
        ],
        |c| c,
    )
    .await;
    sim.add_oauth_client(OAuthClientRegistration {
        client_id: CLIENT_ID.to_owned(),
        client_secret: CLIENT_SECRET.to_owned(),
        redirect_uri: app.url("/oauth/callback"),
    });
    WithSimulator { app, sim }
}

const SOON: Duration = Duration::from_secs(10);

/// Connect with LaunchDarkly from the settings page, through the simulator's
/// consent page, pressing `decision` ("approve" or "deny").
async fn connect_through_consent(browser: &mut Browser, decision: &str) {
    browser.click("#connect-oauth").await;
    browser.wait_for("#approve").await;
    let consent = browser.client.current_url().await.unwrap();
    assert!(
        consent.path().starts_with("/trust/oauth/authorize"),
        "on the simulator's consent page: {consent}"
    );
    browser.screenshot("consent").await;
    browser.click(&format!("#{decision}")).await;
    browser.wait_for("#connection").await;
    assert_eq!(browser.path().await, "/settings");
}

#[tokio::test]
async fn a_customer_connects_configures_and_manages_environments_in_chromium() {
    let WithSimulator { app, sim } = app_with_simulator().await;
    app.create_tenant("acme").await;
    let mut browser = Browser::start("journey").await;

    // Open the connect link: it lands on settings.
    browser.goto(&app.connect_link("acme").await).await;
    assert_eq!(browser.path().await, "/settings");
    assert!(browser.text().await.contains("Not connected"));
    browser.screenshot_full("settings-not-connected").await;

    // Connect with LaunchDarkly and approve on the consent page.
    connect_through_consent(&mut browser, "approve").await;
    let text = browser
        .wait_for_text("Connected to LaunchDarkly", SOON)
        .await;
    assert!(text.contains("via LaunchDarkly sign-in (OAuth)"), "{text}");
    browser.screenshot_full("settings-connected").await;

    // Choose the project and the source: the source list follows the project.
    let project = browser.wait_for("select#project_key").await;
    project.select_by_value("demo").await.unwrap();
    browser
        .wait_for("select#source_environment_key option[value='staging']")
        .await;
    let source = browser.wait_for("select#source_environment_key").await;
    let options = source.text().await.unwrap();
    assert!(
        options.contains("production") && options.contains("critical"),
        "{options}"
    );
    source.select_by_value("staging").await.unwrap();
    browser.wait_for_text("staging", SOON).await;
    let preview = browser.wait_for("#preview-source").await;
    let started = std::time::Instant::now();
    while preview.text().await.unwrap() != "staging" {
        assert!(
            started.elapsed() < SOON,
            "the preview never followed the source"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.screenshot_full("settings-chosen").await;
    browser.click("#save-settings").await;
    let text = browser.wait_for_text("Settings saved", SOON).await;
    assert!(text.contains("Saved"));
    browser.screenshot_full("settings-saved").await;

    // The vendor's backend creates an environment (LaunchDarkly is slow to
    // answer); the page shows it being created and follows it to ready
    // without a full reload.
    sim.set_faults(Faults {
        latency: Duration::from_secs(3),
        method: Some(Method::POST),
        path_prefix: Some("/api/v2/projects".to_owned()),
        ..Faults::none()
    });
    let (status, body) = app
        .api(
            Method::PUT,
            "/tenants/acme/environments/pr-1?wait=0",
            Some(json!({})),
        )
        .await;
    assert!(status.is_success(), "{status}: {body}");
    browser.click("nav.tabs a[href='/environments']").await;
    browser
        .wait_for("tr.env-row[data-ephemeral-id='pr-1'][data-status='pending']")
        .await;
    browser
        .client
        .execute("window.__stillTheSamePage = true;", vec![])
        .await
        .unwrap();
    assert!(browser.text().await.contains("Creating"));
    browser.screenshot("environments-creating").await;
    browser.wait_for("tr.env-row[data-status='ready']").await;
    sim.set_faults(Faults::none());
    let same_page = browser
        .client
        .execute("return window.__stillTheSamePage === true;", vec![])
        .await
        .unwrap();
    assert_eq!(
        same_page,
        json!(true),
        "the page reloaded to show the change"
    );
    let text = browser.wait_for_text("Ready", SOON).await;
    assert!(text.contains("pr-1"));
    browser.screenshot("environments-ready").await;
    let (status, env) = app
        .api(Method::GET, "/tenants/acme/environments/pr-1", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{env}");
    let sdk_key = env["launchdarkly"]["sdk_key"].as_str().unwrap().to_owned();
    assert!(
        !text.contains(&sdk_key),
        "SDK keys are hidden until revealed"
    );

    // Reveal the SDK key in place.
    browser.click("form.reveal button").await;
    let text = browser.wait_for_text(&sdk_key, SOON).await;
    assert!(text.contains("Client-side ID"));
    let same_page = browser
        .client
        .execute("return window.__stillTheSamePage === true;", vec![])
        .await
        .unwrap();
    assert_eq!(same_page, json!(true), "the page reloaded");
    assert!(
        !browser
            .client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .contains(&sdk_key),
        "an SDK key in the URL"
    );
    browser.screenshot("environments-keys").await;

    // Delete it from the UI, confirming first.
    browser
        .click("tr.env-row[data-ephemeral-id='pr-1'] details.confirm:last-of-type > summary")
        .await;
    browser.screenshot("environments-confirm-delete").await;
    browser
        .click("tr.env-row[data-ephemeral-id='pr-1'] button.danger")
        .await;
    browser.wait_for_text("Deleting pr-1", SOON).await;
    let started = std::time::Instant::now();
    loop {
        let (_, env) = app
            .api(Method::GET, "/tenants/acme/environments/pr-1", None)
            .await;
        if env["status"] == "deleted" || env["error"]["code"] == "not_found" {
            break;
        }
        assert!(started.elapsed() < SOON, "never deleted: {env}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let key = env["launchdarkly"]["environment_key"].as_str().unwrap();
    assert!(
        sim.environment(ld_eaas::simulator::DEMO_ACCOUNT, "demo", key)
            .is_none(),
        "the LaunchDarkly environment is gone"
    );
    browser.screenshot("environments-deleted").await;

    // Activity shows both, newest first.
    browser.click("nav.tabs a[href='/activity']").await;
    let text = browser.wait_for_text("SDK keys revealed", SOON).await;
    let deleted = text
        .find("Environment deleted")
        .or_else(|| text.find("Deletion requested"))
        .expect("the deletion is in the activity");
    let created = text
        .find("Environment created")
        .or_else(|| text.find("Environment requested"))
        .expect("the creation is in the activity");
    assert!(deleted < created, "newest first:\n{text}");
    assert!(text.contains("Connected to LaunchDarkly"));
    browser.screenshot_full("activity").await;

    // Disconnect, confirming first.
    browser.click("nav.tabs a[href='/settings']").await;
    browser.click("#disconnect > summary").await;
    browser.screenshot("settings-confirm-disconnect").await;
    browser.click("#confirm-disconnect").await;
    let text = browser.wait_for_text("Not connected", SOON).await;
    assert!(text.contains("Connect with LaunchDarkly"));
    browser.screenshot("settings-disconnected").await;
    browser.close().await;
}

#[tokio::test]
async fn denied_consent_is_explained_and_a_form_without_its_csrf_token_is_refused() {
    let WithSimulator { app, sim: _sim } = app_with_simulator().await;
    app.create_tenant("acme").await;
    let mut browser = Browser::start("refusals").await;
    browser.goto(&app.connect_link("acme").await).await;

    connect_through_consent(&mut browser, "deny").await;
    let text = browser.wait_for_text("declined", SOON).await;
    assert!(text.contains("Not connected"), "{text}");
    browser.screenshot("denied").await;

    // A form whose CSRF token was taken out is refused with a page that says
    // why, and nothing is connected.
    browser.click("#api-token > summary").await;
    browser
        .wait_for("#api_token")
        .await
        .send_keys(LD_API_TOKEN)
        .await
        .unwrap();
    browser
        .client
        .execute(
            "document.querySelector('#api-token form input[name=csrf_token]').remove();",
            vec![],
        )
        .await
        .unwrap();
    browser.click("#connect-token").await;
    let text = browser
        .wait_for_text("did not come from this site", SOON)
        .await;
    assert!(text.contains("Not allowed"), "{text}");
    browser.screenshot("csrf-refused").await;
    let connected: i64 = sqlx::query_scalar("select count(*) from connections")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(connected, 0);

    // With its token the same form connects.
    browser.goto(&app.url("/settings")).await;
    browser.click("#api-token > summary").await;
    browser
        .wait_for("#api_token")
        .await
        .send_keys(LD_API_TOKEN)
        .await
        .unwrap();
    browser.click("#connect-token").await;
    let text = browser.wait_for_text("via an API access token", SOON).await;
    assert!(!text.contains(LD_API_TOKEN), "the token is never shown");
    browser.screenshot_full("api-token-connected").await;

    // Saving bad settings explains each problem next to its field, keeps
    // what was typed, and moves focus to the list of problems.
    browser
        .wait_for("select#project_key")
        .await
        .select_by_value("demo")
        .await
        .unwrap();
    browser
        .wait_for("select#source_environment_key option[value='test']")
        .await;
    let prefix = browser.wait_for("#key_prefix").await;
    prefix.clear().await.unwrap();
    prefix.send_keys("-not ok").await.unwrap();
    browser.click("#save-settings").await;
    let text = browser.wait_for_text("Please fix", SOON).await;
    assert!(text.contains("key prefix"), "{text}");
    assert!(text.contains("Choose the environment"), "{text}");
    let focused = browser
        .client
        .execute("return document.activeElement.id;", vec![])
        .await
        .unwrap();
    assert_eq!(focused, json!("error-summary"));
    let kept = browser
        .wait_for("#key_prefix")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("-not ok"));
    browser.screenshot_full("settings-errors").await;
    browser.close().await;
}

#[tokio::test]
async fn a_second_tenants_session_sees_none_of_the_first_tenants_data() {
    let WithSimulator { app, sim: _sim } = app_with_simulator().await;
    app.create_tenant("alpha").await;
    app.create_tenant("beta").await;
    let mut browser = Browser::start("isolation").await;

    browser.goto(&app.connect_link("alpha").await).await;
    browser.click("#api-token > summary").await;
    browser
        .wait_for("#api_token")
        .await
        .send_keys(LD_API_TOKEN)
        .await
        .unwrap();
    browser.click("#connect-token").await;
    browser.wait_for_text("via an API access token", SOON).await;
    browser.goto(&app.url("/activity")).await;
    let alpha_activity = browser.text().await;
    assert!(alpha_activity.contains("Tenant alpha"));
    assert!(alpha_activity.contains("Connected to LaunchDarkly"));

    // Beta's link in the same browser: once the switch is confirmed, a new
    // session bound to beta alone.
    browser.goto(&app.connect_link("beta").await).await;
    browser.click("#switch").await;
    browser
        .wait_for_text("You switched to Tenant beta", SOON)
        .await;
    for path in ["/settings", "/environments", "/activity"] {
        browser.goto(&app.url(path)).await;
        let text = browser.text().await;
        assert!(text.contains("Tenant beta"), "{path}: {text}");
        assert!(!text.contains("Tenant alpha"), "{path} shows alpha");
        assert!(
            !text.contains("via an API access token"),
            "{path} shows alpha's connection"
        );
        assert!(
            !text.contains("Connected to LaunchDarkly"),
            "{path} shows alpha's activity"
        );
    }
    browser.screenshot("beta-activity").await;
    browser.close().await;
}

#[tokio::test]
async fn a_customer_finds_their_way_around_without_a_launchdarkly_account_yet() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let mut browser = Browser::start("tour").await;

    // Without a connect link: a page that says how to get in.
    browser.goto(&app.url("/settings")).await;
    let text = browser.text().await;
    assert!(text.contains("connect link"), "{text}");
    browser.screenshot("no-session").await;

    browser.goto(&app.connect_link("acme").await).await;
    assert_eq!(browser.path().await, "/settings");
    let text = browser.text().await;
    assert!(text.contains("Tenant acme"));
    assert!(text.contains("Not connected"));
    // Without OAuth configured, the API-token path is open from the start,
    // with least-privilege guidance.
    assert!(
        browser
            .wait_for("#api_token")
            .await
            .is_displayed()
            .await
            .unwrap()
    );
    assert!(text.contains("createEnvironment"));
    browser.screenshot_full("settings-api-token").await;

    // Keyboard: Tab from the top reaches the skip link first, and focus is
    // visible (an outline).
    let focus = browser
        .client
        .execute(
            "const link = document.querySelector('a.skip-link'); link.focus(); \
             const style = getComputedStyle(link); \
             return [document.activeElement === link, style.outlineStyle, style.top];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(focus[0], json!(true));
    assert_ne!(focus[1], json!("none"), "focus is visible");

    browser.click("nav.tabs a[href='/environments']").await;
    let text = browser
        .wait_for_text("Connect LaunchDarkly to get started", SOON)
        .await;
    assert!(text.contains("Environments"));
    browser.screenshot("environments-empty").await;

    browser.click("nav.tabs a[href='/activity']").await;
    browser.wait_for_text("Connect link opened", SOON).await;
    browser.screenshot("activity").await;

    browser.goto(&app.url("/no/such/page")).await;
    browser.wait_for_text("Page not found", SOON).await;
    browser.screenshot("not-found").await;

    // Small screens: the same page, stacked, nothing wider than the screen.
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.goto(&app.url("/settings")).await;
    let overflow = browser
        .client
        .execute(
            "return document.documentElement.scrollWidth > document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        overflow,
        json!(false),
        "the page scrolls sideways on a phone"
    );
    browser.screenshot("settings-phone").await;
    browser.close().await;
}
