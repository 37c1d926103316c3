//! The customer's journey in real headless Chromium: the way back to the
//! vendor's app, the question before switching tenants, the live
//! environments page, confirmations that are never clipped, live field
//! errors, and axe-core clean on every page at desktop and phone widths.

use std::time::{Duration, Instant};

use axum::response::Html;
use reqwest::Method;
use serde_json::json;

use crate::lifecycle::{TOKEN, ready_tenant, spawn_with, start_sim};
use crate::support::browser_support::Browser;
use crate::support::helpers::TestApp;

const SOON: Duration = Duration::from_secs(12);

/// A stand-in for the vendor's own app, on another origin.
async fn vendor_app() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/projects/42",
        axum::routing::get(|| async {
            Html("<!doctype html><title>Vendor</title><h1>The vendor's app</h1>")
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    origin
}

async fn link_with_return(app: &TestApp, tenant: &str, return_url: Option<&str>) -> String {
    let body = return_url.map(|u| json!({ "return_url": u }));
    let (status, body) = app
        .api(
            Method::POST,
            &format!("/tenants/{tenant}/connect-links"),
            body,
        )
        .await;
    assert!(status.is_success(), "{body}");
    body["url"].as_str().unwrap().to_owned()
}

async fn put_ready(app: &TestApp, id: &str) {
    let (status, body) = app
        .api(
            Method::PUT,
            &format!("/tenants/acme/environments/{id}?wait=10"),
            Some(json!({})),
        )
        .await;
    assert!(status.is_success(), "{body}");
    assert_eq!(body["status"], "ready", "{body}");
}

#[tokio::test]
async fn the_way_back_to_the_vendor_and_the_question_before_switching_work_in_chromium() {
    let vendor = vendor_app().await;
    let sim = start_sim().await;
    let origin = vendor.clone();
    let app = spawn_with(&sim, true, move |mut c| {
        c.return_url_origins = vec![origin];
        c
    })
    .await;
    app.create_tenant("alpha").await;
    app.create_tenant("beta").await;
    let mut browser = Browser::start("way-back").await;

    let back = format!("{vendor}/projects/42");
    browser
        .goto(&link_with_return(&app, "alpha", Some(&back)).await)
        .await;
    assert_eq!(browser.path().await, "/settings");
    let link = browser.wait_for("#back-to-product").await;
    assert_eq!(link.text().await.unwrap(), "← Back to Preview Environments");
    browser.screenshot("back-link").await;
    // On a phone too, visible and within the screen.
    browser.phone(true).await;
    browser.goto(&app.url("/activity")).await;
    let fits = browser
        .eval(
            "const r = document.querySelector('#back-to-product').getBoundingClientRect(); \
             return r.width > 0 && r.left >= 0 && r.right <= document.documentElement.clientWidth;",
        )
        .await;
    assert_eq!(fits, json!(true), "the way back fits on a phone");
    browser.screenshot("back-link-phone").await;
    browser.phone(false).await;
    browser.click("#back-to-product").await;
    browser.wait_for_text("The vendor's app", SOON).await;
    assert_eq!(browser.client.current_url().await.unwrap().as_str(), back);
    browser.client.back().await.unwrap();
    browser.wait_for_text("Tenant alpha", SOON).await;

    // Beta's link in alpha's browser asks first; staying changes nothing.
    browser
        .goto(&link_with_return(&app, "beta", None).await)
        .await;
    assert_eq!(browser.path().await, "/connect/switch");
    let text = browser.wait_for_text("Switch to Tenant beta?", SOON).await;
    assert!(text.contains("This browser manages Tenant alpha"), "{text}");
    browser.screenshot("switch-prompt").await;
    browser.click("#stay").await;
    let text = browser
        .wait_for_text("You stayed with Tenant alpha", SOON)
        .await;
    assert!(!text.contains("Account\nTenant beta"), "{text}");
    assert!(
        browser
            .client
            .find(fantoccini::Locator::Css("#back-to-product"))
            .await
            .is_ok()
    );

    // Another link for beta, and switching this time.
    browser
        .goto(&link_with_return(&app, "beta", None).await)
        .await;
    browser.click("#switch").await;
    let text = browser
        .wait_for_text("You switched to Tenant beta", SOON)
        .await;
    assert!(text.contains("Tenant beta"));
    browser.goto(&app.url("/activity")).await;
    let text = browser.text().await;
    assert!(
        text.contains("Tenant beta") && !text.contains("Tenant alpha"),
        "{text}"
    );
    assert!(
        browser
            .client
            .find(fantoccini::Locator::Css("#back-to-product"))
            .await
            .is_err(),
        "alpha's way back does not follow the switch"
    );
    browser.screenshot("switched").await;
    browser.close().await;
}

#[tokio::test]
async fn the_environments_page_stays_live_and_its_confirmations_are_never_clipped() {
    let sim = start_sim().await;
    let app = spawn_with(&sim, true, |c| c).await;
    ready_tenant(&app, "acme").await;
    for id in ["pr-1", "pr-2", "pr-3"] {
        put_ready(&app, id).await;
    }
    let mut browser = Browser::start("live-list").await;
    browser.goto(&app.connect_link("acme").await).await;
    browser.goto(&app.url("/environments")).await;
    browser
        .wait_for("tr.env-row[data-ephemeral-id='pr-3']")
        .await;
    let busy = browser
        .eval("return document.getElementById('environments').getAttribute('data-busy');")
        .await;
    assert_eq!(busy, json!("false"), "nothing is pending");
    browser
        .eval("window.__stillTheSamePage = true; return true;")
        .await;

    // Created through the API while the page is open: it appears by itself.
    let started = Instant::now();
    put_ready(&app, "pr-new").await;
    browser
        .wait_for("tr.env-row[data-ephemeral-id='pr-new'][data-status='ready']")
        .await;
    assert!(started.elapsed() < SOON, "took {:?}", started.elapsed());
    let same = browser
        .eval("return window.__stillTheSamePage === true;")
        .await;
    assert_eq!(same, json!(true), "the page reloaded to show it");
    let first = browser
        .eval("return document.querySelector('tr.env-row').getAttribute('data-ephemeral-id');")
        .await;
    assert_eq!(first, json!("pr-new"), "newest first");
    browser.screenshot("new-row").await;

    // The last row's delete confirmation is whole and clickable, on a
    // desktop and on a phone.
    for phone in [false, true] {
        browser.phone(phone).await;
        let last = "tr.env-row:last-child";
        browser
            .click(&format!("{last} details.confirm:last-of-type > summary"))
            .await;
        let button = format!("{last} button.danger");
        browser.wait_for(&button).await;
        let visible = browser
            .eval(&format!(
                "const b = document.querySelector(\"{button}\");
                 b.scrollIntoView({{block: 'center'}});
                 const r = b.getBoundingClientRect();
                 const card = b.closest('.table-card').getBoundingClientRect();
                 const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
                 return [r.height > 0, r.bottom <= card.bottom + 0.5, r.right <= card.right + 0.5,
                         r.left >= card.left - 0.5, hit === b || b.contains(hit)];"
            ))
            .await;
        assert_eq!(
            visible,
            json!([true, true, true, true, true]),
            "'Yes, delete' is clipped (phone: {phone})"
        );
        browser
            .screenshot(if phone {
                "last-confirm-phone"
            } else {
                "last-confirm"
            })
            .await;
        // Close it again.
        browser
            .click(&format!("{last} details.confirm:last-of-type > summary"))
            .await;
    }

    // On a phone, SDK keys take at most two lines.
    browser
        .click("tr.env-row[data-ephemeral-id='pr-1'] form.reveal button")
        .await;
    browser
        .wait_for("tr.env-row[data-ephemeral-id='pr-1'] .keys code")
        .await;
    let lines = browser
        .eval(
            "const c = document.querySelector(\"tr.env-row[data-ephemeral-id='pr-1'] .keys code\");
             const lh = parseFloat(getComputedStyle(c).lineHeight) || 16;
             return Math.round(c.getBoundingClientRect().height / lh);",
        )
        .await;
    assert!(
        lines.as_i64().unwrap() <= 2,
        "the SDK key takes {lines} lines"
    );
    browser.screenshot("keys-phone").await;
    browser.phone(false).await;
    browser.close().await;
}

#[tokio::test]
async fn settings_show_field_errors_as_you_type_in_chromium() {
    let sim = start_sim().await;
    let app = spawn_with(&sim, true, |c| c).await;
    ready_tenant(&app, "acme").await;
    let mut browser = Browser::start("live-errors").await;
    browser.goto(&app.connect_link("acme").await).await;
    browser.wait_for("#settings-form").await;
    assert_eq!(
        browser.wait_for("#saved-badge").await.text().await.unwrap(),
        "Saved"
    );
    let key_before = browser.wait_for("#preview-key").await.text().await.unwrap();

    // A bad key prefix: the problem shows beside the field, no save needed.
    let prefix = browser.wait_for("#key_prefix").await;
    prefix.clear().await.unwrap();
    prefix.send_keys("-bad prefix").await.unwrap();
    let error = browser.wait_for("#key_prefix-error").await;
    let message = error.text().await.unwrap();
    assert!(message.to_lowercase().contains("prefix"), "{message}");
    assert_eq!(
        prefix.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );
    let described = prefix.attr("aria-describedby").await.unwrap().unwrap();
    assert!(described.contains("key_prefix-error"), "{described}");
    assert!(
        browser
            .wait_for("#preview-problem")
            .await
            .is_displayed()
            .await
            .unwrap()
    );
    assert!(
        !browser
            .wait_for("#preview-fields")
            .await
            .is_displayed()
            .await
            .unwrap()
    );
    assert_eq!(
        browser.wait_for("#saved-badge").await.text().await.unwrap(),
        "Not saved",
        "never 'Saved' beside a problem"
    );
    browser.screenshot("typing-error").await;

    // Fixed: the problem goes and the preview follows.
    prefix.clear().await.unwrap();
    prefix.send_keys("fixed").await.unwrap();
    let started = Instant::now();
    while browser
        .client
        .find(fantoccini::Locator::Css("#key_prefix-error"))
        .await
        .is_ok()
    {
        assert!(started.elapsed() < SOON, "the error never went");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    loop {
        let key = browser.wait_for("#preview-key").await.text().await.unwrap();
        if key.starts_with("fixed-") {
            assert_ne!(key, key_before);
            break;
        }
        assert!(
            started.elapsed() < SOON,
            "the preview never followed: {key}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        browser.wait_for("#saved-badge").await.text().await.unwrap(),
        "Unsaved changes"
    );

    // Saved with several problems: the summary follows the form's order,
    // and `_` in a message stays visible above the link's underline.
    let name = browser.wait_for("#name_template").await;
    name.clear().await.unwrap();
    name.send_keys("PR {nope_here}").await.unwrap();
    let ttl = browser.wait_for("#ttl_value").await;
    ttl.clear().await.unwrap();
    ttl.send_keys("0").await.unwrap();
    browser.wait_for("#name_template-error").await;
    browser.click("#save-settings").await;
    browser.wait_for_text("Please fix", SOON).await;
    let order = browser
        .eval(
            "return Array.from(document.querySelectorAll('#error-summary a'))
               .map(a => a.getAttribute('href'));",
        )
        .await;
    assert_eq!(order, json!(["#name_template", "#ttl_value"]));
    let offset = browser
        .eval(
            "const a = document.querySelector('#error-summary a');
             return parseFloat(getComputedStyle(a).textUnderlineOffset) || 0;",
        )
        .await;
    assert!(offset.as_f64().unwrap() >= 3.0, "underline offset {offset}");
    browser.screenshot_full("summary").await;
    // Fixing a field live takes it out of the summary.
    let ttl = browser.wait_for("#ttl_value").await;
    ttl.clear().await.unwrap();
    ttl.send_keys("3").await.unwrap();
    let started = Instant::now();
    loop {
        let left = browser
            .eval("return Array.from(document.querySelectorAll('#error-summary a')).map(a => a.getAttribute('href'));")
            .await;
        if left == json!(["#name_template"]) {
            break;
        }
        assert!(started.elapsed() < SOON, "the summary kept {left}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.close().await;
}

/// Every page a customer can meet, at a desktop's and a phone's width.
#[tokio::test]
async fn every_page_is_clean_under_axe_at_desktop_and_phone_widths() {
    let vendor = vendor_app().await;
    let sim = start_sim().await;
    let origin = vendor.clone();
    let app = spawn_with(&sim, true, move |mut c| {
        c.return_url_origins = vec![origin];
        c
    })
    .await;
    app.create_tenant("acme").await;
    app.create_tenant("other").await;
    let mut browser = Browser::start("axe").await;

    // Not signed in, then not connected.
    for phone in [false, true] {
        browser.phone(phone).await;
        browser.goto(&app.url("/settings")).await;
        browser.wait_for_text("connect link", SOON).await;
        browser
            .assert_axe_clean(&format!("401 page (phone: {phone})"))
            .await;
    }
    let back = format!("{vendor}/projects/42");
    browser
        .goto(&link_with_return(&app, "acme", Some(&back)).await)
        .await;
    for phone in [false, true] {
        browser.phone(phone).await;
        for path in ["/settings", "/environments", "/activity", "/no/such/page"] {
            browser.goto(&app.url(path)).await;
            browser.wait_for("main").await;
            browser
                .assert_axe_clean(&format!("{path} not connected (phone: {phone})"))
                .await;
        }
        browser.goto(&app.url("/settings")).await;
        browser.click("#api-token > summary").await;
        browser
            .assert_axe_clean(&format!("token form (phone: {phone})"))
            .await;
    }

    // Connected, with settings, environments and activity.
    ld_eaas::connections::connect(
        &app.state,
        &ld_eaas::ids::TenantId::parse("acme").unwrap(),
        ld_eaas::connections::Connected::from_api_token(secrecy::SecretString::from(
            TOKEN.to_owned(),
        )),
        "test",
    )
    .await
    .unwrap();
    crate::lifecycle::configure(&app, "acme", "demo", "staging").await;
    put_ready(&app, "pr-1").await;
    put_ready(&app, "pr-2").await;
    let (status, _) = app
        .api(
            Method::DELETE,
            "/tenants/acme/environments/pr-2?wait=10",
            None,
        )
        .await;
    assert!(status.is_success());
    for phone in [false, true] {
        browser.phone(phone).await;
        browser.goto(&app.url("/settings")).await;
        browser.wait_for("#settings-form").await;
        browser
            .assert_axe_clean(&format!("settings (phone: {phone})"))
            .await;
        // Live problems and then the saved summary.
        let prefix = browser.wait_for("#key_prefix").await;
        prefix.clear().await.unwrap();
        prefix.send_keys("-bad").await.unwrap();
        browser.wait_for("#key_prefix-error").await;
        browser
            .assert_axe_clean(&format!("settings with live errors (phone: {phone})"))
            .await;
        browser.click("#save-settings").await;
        browser.wait_for("#error-summary").await;
        browser
            .assert_axe_clean(&format!("settings error summary (phone: {phone})"))
            .await;

        browser.goto(&app.url("/environments?show=all")).await;
        browser.wait_for("tr.env-row").await;
        browser
            .assert_axe_clean(&format!("environments (phone: {phone})"))
            .await;
        browser
            .click("tr.env-row[data-ephemeral-id='pr-1'] details.confirm:last-of-type > summary")
            .await;
        browser
            .click("tr.env-row[data-ephemeral-id='pr-1'] form.reveal button")
            .await;
        browser.wait_for(".keys code").await;
        browser
            .assert_axe_clean(&format!(
                "environments with keys and a confirmation (phone: {phone})"
            ))
            .await;

        browser.goto(&app.url("/activity")).await;
        browser.wait_for("#activity").await;
        browser
            .assert_axe_clean(&format!("activity (phone: {phone})"))
            .await;
        if phone {
            let stacked = browser
                .eval(
                    "return getComputedStyle(document.querySelector('#activity thead')).display === 'none'
                       && getComputedStyle(document.querySelector('#activity td')).display === 'block'
                       && document.documentElement.scrollWidth <= document.documentElement.clientWidth;",
                )
                .await;
            assert_eq!(stacked, json!(true), "the activity table stacks on a phone");
            browser.screenshot("activity-phone").await;
        }
    }

    // The question before switching, and the disconnected environments page.
    for phone in [false, true] {
        browser.phone(phone).await;
        browser
            .goto(&link_with_return(&app, "other", None).await)
            .await;
        browser.wait_for("#switch").await;
        browser
            .assert_axe_clean(&format!("switch prompt (phone: {phone})"))
            .await;
    }
    browser.goto(&app.url("/settings")).await;
    browser.click("#disconnect > summary").await;
    browser.click("#confirm-disconnect").await;
    browser.wait_for_text("Not connected", SOON).await;
    for phone in [false, true] {
        browser.phone(phone).await;
        browser.goto(&app.url("/environments")).await;
        browser.wait_for("#not-connected-note").await;
        browser
            .assert_axe_clean(&format!("environments while disconnected (phone: {phone})"))
            .await;
    }
    browser.close().await;
}
