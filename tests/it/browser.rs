//! End-to-end tests in real headless Chromium. Screenshots of every step go
//! to `target/screenshots/` for people to look at.

use std::time::Duration;

use crate::browser_support::Browser;
use crate::helpers::spawn_app;

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
    browser.screenshot_full("settings-not-connected").await;

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
    let text = browser.text().await;
    assert!(text.contains("createEnvironment"));
    browser.screenshot_full("settings-api-token").await;

    // Keyboard: the skip link is the first thing Tab reaches.
    browser
        .client
        .execute(
            "document.activeElement.blur(); window.scrollTo(0,0);",
            vec![],
        )
        .await
        .unwrap();
    let focused = browser
        .client
        .execute(
            "document.body.focus(); \
             const e = new KeyboardEvent('keydown', {key: 'Tab'}); document.dispatchEvent(e); \
             return document.querySelector('a.skip-link').getAttribute('href');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(focused, "#main");

    browser.click("nav.tabs a[href='/environments']").await;
    let text = browser
        .wait_for_text(
            "Connect LaunchDarkly to get started",
            Duration::from_secs(5),
        )
        .await;
    assert!(text.contains("Environments"));
    browser.screenshot("environments-empty").await;

    browser.click("nav.tabs a[href='/activity']").await;
    browser
        .wait_for_text("Connect link opened", Duration::from_secs(5))
        .await;
    browser.screenshot("activity").await;

    browser.goto(&app.url("/no/such/page")).await;
    browser
        .wait_for_text("Page not found", Duration::from_secs(5))
        .await;
    browser.screenshot("not-found").await;

    // Small screens: the same page, stacked.
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.goto(&app.url("/settings")).await;
    browser.screenshot("settings-phone").await;
    browser.close().await;
}
