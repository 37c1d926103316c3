//! The demo's "Open in LaunchDarkly" link (issue 14): on the environments page it
//! leads to the simulator's page for that environment, not to a JSON 404.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ld_eaas::clock::SystemClock;
use ld_eaas::demo::{Demo, DemoArgs};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::browser_support::Browser;
use crate::support::helpers::{TestDatabase, init_logging};
use crate::ui::csrf_token;

#[derive(Parser)]
struct DemoCli {
    #[command(flatten)]
    args: DemoArgs,
}

#[tokio::test]
async fn the_demos_open_in_launchdarkly_link_answers_the_environment_page() {
    init_logging();
    let database = TestDatabase::create().await;
    let args = DemoCli::try_parse_from([
        "demo",
        "--database-url",
        &database.url,
        "--listen",
        "127.0.0.1:0",
        "--simulator-listen",
        "127.0.0.1:0",
        "--database-pool-size",
        "4",
    ])
    .unwrap()
    .args;
    let demo = Demo::start(args, Arc::new(SystemClock)).await.unwrap();
    let info = demo.info.clone();
    let stop = demo.app.shutdown_token();
    tokio::spawn(demo.run_until_stopped());

    // The customer connects with the printed API access token...
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    browser.get(&info.connect_url).send().await.unwrap();
    let settings_page = browser
        .get(format!("{}/settings", info.app_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = browser
        .post(format!("{}/connection/api-token", info.app_url))
        .form(&[
            ("csrf_token", csrf_token(&settings_page)),
            ("api_token", info.launchdarkly_api_token.clone()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    // ...and the vendor runs the printed commands.
    let api = reqwest::Client::new();
    let base = format!("{}/api/v1/tenants/demo", info.app_url);
    let res = api
        .put(format!("{base}/settings"))
        .bearer_auth(&info.api_key)
        .json(&json!({"project_key": "demo", "source_environment_key": "staging"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = api
        .put(format!("{base}/environments/pr-1?wait=10"))
        .bearer_auth(&info.api_key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let env: Value = res.json().await.unwrap();
    let url = env["launchdarkly"]["url"].as_str().unwrap().to_owned();
    let key = env["launchdarkly"]["environment_key"].as_str().unwrap();
    assert!(url.starts_with(&info.simulator_url), "{url}");

    // The environments page links there...
    let page = browser
        .get(format!("{}/environments", info.app_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let href = url.replace('&', "&#38;");
    assert!(
        page.contains(&href) || page.contains(&url.replace('&', "&amp;")),
        "the page links {url}"
    );

    // ...and the link answers an HTML page of that environment with its flags.
    let res = reqwest::get(&url).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = res.text().await.unwrap();
    assert!(html.contains(key), "names the environment key");
    assert!(html.contains("Preview pr-1"), "names the environment");
    assert!(html.contains("New checkout flow"), "lists the flags");

    // ...which a real browser shows, too.
    let mut chromium = Browser::start("demo_link").await;
    chromium.goto(&url).await;
    let text = chromium
        .wait_for_text("New checkout flow", Duration::from_secs(10))
        .await;
    assert!(
        text.contains(key),
        "the page in Chromium names the environment key"
    );
    chromium.screenshot("simulator-environment-page").await;
    chromium.close().await;
    stop.cancel();
}
