//! The customer web UI over plain HTTP: what pages show, who may see them,
//! and what a forged or stale form gets.

mod browser;
mod browser_journey;
mod demo;
mod journey;
mod manifest;
mod pages;

use ld_eaas::ids::TenantId;
use ld_eaas::store::audit::{self, NewAuditEvent};
use ld_eaas::store::connections::{self, AuthKind, NewConnection};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION};

use crate::support::helpers::{TestApp, spawn_app};

/// A browser (cookie jar, no redirects followed) bound to `tenant` through a
/// fresh connect link.
pub async fn browser_for(app: &TestApp, tenant: &str) -> reqwest::Client {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let link = app.connect_link(tenant).await;
    let res = browser.get(&link).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "connect link redirects"
    );
    assert_eq!(res.headers()[LOCATION], "/settings");
    browser
}

async fn page(browser: &reqwest::Client, app: &TestApp, path: &str) -> (StatusCode, String) {
    let res = browser.get(app.url(path)).send().await.unwrap();
    let status = res.status();
    (status, res.text().await.unwrap())
}

/// The CSRF token the page's forms carry.
pub fn csrf_token(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("page has a CSRF field") + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end].to_owned()
}

async fn connect_fake_account(app: &TestApp, tenant: &str, label: &str) {
    let tenant = TenantId::parse(tenant).unwrap();
    let sealed = app
        .state
        .config
        .keyring
        .seal(
            &tenant,
            ld_eaas::crypto::SealedColumn::AccessToken,
            &secrecy::SecretString::from("api-00000000-fake-token".to_owned()),
        )
        .unwrap();
    connections::save(
        &app.db,
        &tenant,
        &NewConnection {
            auth_kind: AuthKind::ApiToken,
            account_id: &format!("acct-{label}"),
            account_label: Some(label),
            scope: None,
            access_token: &sealed,
            refresh_token: None,
            access_expires_at: None,
        },
        app.now(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn every_page_shows_the_product_the_account_and_the_navigation() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let browser = browser_for(&app, "acme").await;
    for (path, heading) in [
        ("/settings", "<h1>Settings</h1>"),
        ("/environments", "<h1>Environments</h1>"),
        ("/activity", "<h1>Activity</h1>"),
    ] {
        let res = browser.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert!(
            res.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let html = res.text().await.unwrap();
        assert!(html.contains(heading), "{path} has its heading");
        assert!(
            html.contains("Preview Environments"),
            "{path} names the product"
        );
        assert!(html.contains("Tenant acme"), "{path} names the account");
        for nav in [
            "href=\"/settings\"",
            "href=\"/environments\"",
            "href=\"/activity\"",
        ] {
            assert!(html.contains(nav), "{path} links {nav}");
        }
        // The current tab is announced to assistive technology.
        let current = format!("href=\"{path}\" aria-current=\"page\"");
        assert!(html.contains(&current), "{path} marks itself current");
    }
    // "/" leads to the settings page.
    let res = browser.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.headers()[LOCATION], "/settings");
}

#[tokio::test]
async fn the_product_name_is_configurable() {
    let app = crate::support::helpers::spawn_app_with(|mut c| {
        c.product_name = "Acme Previews".to_owned();
        c
    })
    .await;
    app.create_tenant("t1").await;
    let browser = browser_for(&app, "t1").await;
    let (_, html) = page(&browser, &app, "/settings").await;
    assert!(html.contains("<title>Settings · Acme Previews</title>"));
    // Error pages too.
    let (status, html) = page(&browser, &app, "/no/such/page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Acme Previews"));
}

#[tokio::test]
async fn pages_are_served_with_a_strict_content_security_policy() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let browser = browser_for(&app, "acme").await;
    for path in ["/settings", "/environments", "/activity", "/nope"] {
        let res = browser.get(app.url(path)).send().await.unwrap();
        let csp = res.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        assert_eq!(res.headers()["x-frame-options"], "DENY");
        let html = res.text().await.unwrap();
        // Nothing the policy would block: no inline script or style, no
        // third-party origin.
        assert!(!html.contains("<script>"), "{path} has an inline script");
        assert!(!html.contains("style=\""), "{path} has an inline style");
        assert!(!html.contains("<style"), "{path} has a style element");
        assert!(!html.contains("src=\"http"), "{path} loads from elsewhere");
        assert!(
            !html.contains("href=\"http"),
            "{path} links a third-party asset"
        );
    }
}

#[tokio::test]
async fn static_assets_are_served_from_our_origin_with_their_types() {
    let app = spawn_app().await;
    for (file, kind) in [
        ("style.css", "text/css"),
        ("app.js", "text/javascript"),
        ("logo.svg", "image/svg+xml"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let res = app
            .client
            .get(app.url(&format!("/static/{file}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{file}");
        assert!(
            res.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{file}"
        );
    }
    let res = app
        .client
        .get(app.url("/static/../Cargo.toml"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_browser_without_a_connect_link_gets_a_friendly_page() {
    let app = spawn_app().await;
    for path in ["/settings", "/environments", "/activity", "/"] {
        let (status, html) = page(&app.client, &app, path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            html.contains("connect link"),
            "{path} explains how to get in"
        );
        assert!(html.contains("<h1"), "{path} is a page, not a bare error");
    }
    // A used or unknown link says so.
    let (status, html) = page(&app.client, &app, "/connect/not-a-real-token").await;
    assert_eq!(status, StatusCode::GONE);
    assert!(html.contains("This link no longer works"));
}

#[tokio::test]
async fn unknown_pages_and_wrong_methods_get_friendly_pages() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let browser = browser_for(&app, "acme").await;
    let (status, html) = page(&browser, &app, "/definitely/missing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Page not found"));
    let res = browser.delete(app.url("/settings")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(res.text().await.unwrap().contains("<h1"));
}

#[tokio::test]
async fn a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    connect_fake_account(&app, "acme", "Acme LD").await;
    let browser = browser_for(&app, "acme").await;
    let (_, html) = page(&browser, &app, "/settings").await;
    let token = csrf_token(&html);
    let fields = [
        ("project_key", "demo"),
        ("source_environment_key", "staging"),
        ("name_template", "Preview {ephemeral_id}"),
        ("color", "#ff0000"),
        ("key_prefix", "eph"),
        ("intent", "save"),
    ];
    for forged in [None, Some("wrong-token"), Some("")] {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        if let Some(t) = forged {
            form.push(("csrf_token", t));
        }
        for path in [
            "/settings",
            "/environments/pr-1/delete",
            "/environments/pr-1/recreate",
            "/environments/pr-1/keys",
        ] {
            let res = browser
                .post(app.url(path))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(
                res.status(),
                StatusCode::FORBIDDEN,
                "{path} with {forged:?}"
            );
            let html = res.text().await.unwrap();
            assert!(html.contains("did not come from this site"), "{path}");
        }
    }
    let saved = ld_eaas::store::settings::get(&app.db, &TenantId::parse("acme").unwrap())
        .await
        .unwrap();
    assert!(saved.is_none(), "a refused form saved settings");
    // Another browser's valid token does not work in this one either.
    let other = browser_for(&app, "acme").await;
    let (_, other_html) = page(&other, &app, "/settings").await;
    assert_ne!(csrf_token(&other_html), token);
    let res = browser
        .post(app.url("/environments/pr-1/delete"))
        .form(&[("csrf_token", csrf_token(&other_html).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn every_form_on_the_pages_carries_the_csrf_token() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let browser = browser_for(&app, "acme").await;
    // Not connected: the connect and API-token forms.
    let (_, html) = page(&browser, &app, "/settings").await;
    let token = csrf_token(&html);
    let posts = html.matches("method=\"post\"").count();
    let tokens = html
        .matches(&format!("name=\"csrf_token\" value=\"{token}\""))
        .count();
    assert!(posts >= 1);
    assert_eq!(posts, tokens, "a POST form without a CSRF token");
    // Connected: disconnect and the settings form.
    connect_fake_account(&app, "acme", "Acme LD").await;
    let (_, html) = page(&browser, &app, "/settings").await;
    let posts = html.matches("method=\"post\"").count();
    let tokens = html
        .matches(&format!("name=\"csrf_token\" value=\"{token}\""))
        .count();
    assert!(posts >= 2);
    assert_eq!(posts, tokens, "a POST form without a CSRF token");
}

#[tokio::test]
async fn the_connection_card_shows_the_account_and_how_it_is_connected() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let browser = browser_for(&app, "acme").await;
    let (_, html) = page(&browser, &app, "/settings").await;
    assert!(html.contains("Not connected"));
    assert!(
        html.contains("Use an API access token instead")
            || html.contains("Connect with an API access token")
    );
    assert!(html.contains("action=\"/connection/api-token\""));
    assert!(
        html.contains("createEnvironment"),
        "least-privilege guidance"
    );

    connect_fake_account(&app, "acme", "Acme LD").await;
    let (_, html) = page(&browser, &app, "/settings").await;
    assert!(html.contains(">Connected<"));
    assert!(html.contains("Acme LD"));
    assert!(html.contains("via an API access token"));
    assert!(html.contains("action=\"/connection/disconnect\""));
    assert!(html.contains("Yes, disconnect"));
    assert!(
        !html.contains("api-00000000-fake-token"),
        "the token is never shown"
    );

    connections::mark_needs_reconnect(&app.db, &TenantId::parse("acme").unwrap(), app.now())
        .await
        .unwrap();
    let (_, html) = page(&browser, &app, "/settings").await;
    assert!(html.contains("Needs reconnect"));
    assert!(html.contains("Reconnect"));
}

#[tokio::test]
async fn activity_lists_the_audit_log_newest_first_a_page_at_a_time() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let tenant = TenantId::parse("acme").unwrap();
    for i in 0..30 {
        let mut event = NewAuditEvent::new("api:vendor-backend", "environment.deleted");
        let eph = format!("pr-{i:02}");
        event.ephemeral_id = Some(&eph);
        audit::record(
            &app.db,
            &tenant,
            app.now() + chrono::Duration::seconds(i),
            event,
        )
        .await
        .unwrap();
    }
    let browser = browser_for(&app, "acme").await;
    let (status, html) = page(&browser, &app, "/activity").await;
    assert_eq!(status, StatusCode::OK);
    // The newest first: the connect link just opened, then pr-29, pr-28...
    let first = html.find("Connect link opened").unwrap();
    let p29 = html.find("pr-29").unwrap();
    let p28 = html.find("pr-28").unwrap();
    assert!(first < p29 && p29 < p28, "not newest first");
    assert!(html.contains("Environment deleted"));
    assert!(html.contains("API (vendor-backend)"));
    assert!(!html.contains("pr-05"), "page one holds 25 rows");
    let next = html
        .split("href=\"/activity?before=")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a link to older activity");
    let (_, older) = page(&browser, &app, &format!("/activity?before={next}")).await;
    assert!(older.contains("pr-05") && older.contains("pr-00"));
    assert!(!older.contains("pr-29"));
    assert!(older.contains("tenant.created") || older.contains("Account registered"));
    assert!(
        !older.contains("activity?before="),
        "no page after the last"
    );
    // A garbled cursor is the first page, not an error.
    let (status, _) = page(&browser, &app, "/activity?before=abc").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_second_tenants_browser_sees_none_of_the_first_tenants_data() {
    let app = spawn_app().await;
    app.create_tenant("alpha").await;
    app.create_tenant("beta").await;
    connect_fake_account(&app, "alpha", "Alpha Account").await;
    let alpha = TenantId::parse("alpha").unwrap();
    let mut event = NewAuditEvent::new("api:vendor-backend", "environment.deleted");
    event.ephemeral_id = Some("alpha-secret-preview");
    audit::record(&app.db, &alpha, app.now(), event)
        .await
        .unwrap();

    let alpha_browser = browser_for(&app, "alpha").await;
    let beta_browser = browser_for(&app, "beta").await;
    let (_, html) = page(&alpha_browser, &app, "/activity").await;
    assert!(html.contains("alpha-secret-preview"));
    let (_, html) = page(&alpha_browser, &app, "/settings").await;
    assert!(html.contains("Alpha Account"));

    for path in ["/settings", "/environments", "/activity"] {
        let (status, html) = page(&beta_browser, &app, path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("Tenant beta"), "{path}");
        assert!(
            !html.contains("Tenant alpha"),
            "{path} leaks the other account"
        );
        assert!(
            !html.contains("Alpha Account"),
            "{path} leaks the connection"
        );
        assert!(
            !html.contains("alpha-secret-preview"),
            "{path} leaks activity"
        );
    }
    // Opening beta's link in alpha's browser, once the person confirms the
    // switch, rebinds it to beta alone.
    let link = app.connect_link("beta").await;
    let res = alpha_browser.get(&link).send().await.unwrap();
    assert_eq!(res.headers()[LOCATION], "/connect/switch");
    let (_, html) = page(&alpha_browser, &app, "/connect/switch").await;
    let res = alpha_browser
        .post(app.url("/connect/switch"))
        .form(&[
            ("csrf_token", csrf_token(&html).as_str()),
            ("decision", "switch"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(&alpha_browser, &app, "/activity").await;
    assert!(!html.contains("alpha-secret-preview"));
    assert!(html.contains("Tenant beta"));
}

#[tokio::test]
async fn an_offboarded_tenants_browser_is_turned_away() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let browser = browser_for(&app, "acme").await;
    let (status, _) = page(&browser, &app, "/settings").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .api(reqwest::Method::DELETE, "/tenants/acme", None)
        .await;
    assert!(status.is_success());
    let (status, html) = page(&browser, &app, "/settings").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(html.contains("no longer set up here"));
}

#[tokio::test]
async fn settings_are_shown_only_once_connected() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let browser = browser_for(&app, "acme").await;
    let (_, html) = page(&browser, &app, "/settings").await;
    assert!(html.contains("Connect LaunchDarkly above first"));
    assert!(!html.contains("id=\"settings-form\""));
    let (_, html) = page(&browser, &app, "/environments").await;
    assert!(html.contains("Connect LaunchDarkly to get started"));
}
