//! `ld-eaas demo`: what it prints works as printed.

use std::sync::Arc;

use clap::Parser;
use ld_eaas::clock::SystemClock;
use ld_eaas::demo::{Demo, DemoArgs, DemoInfo};
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

use crate::support::helpers::{TestDatabase, init_logging};
use crate::ui::csrf_token;

#[derive(Parser)]
struct DemoCli {
    #[command(flatten)]
    args: DemoArgs,
}

struct RunningDemo {
    info: DemoInfo,
    stop: CancellationToken,
    _database: TestDatabase,
}

impl Drop for RunningDemo {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start_demo() -> RunningDemo {
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
    RunningDemo {
        info,
        stop,
        _database: database,
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_demo_prints_a_working_connect_link_api_key_and_curl_examples() {
    let demo = start_demo().await;
    let info = &demo.info;
    let printed = info.instructions();
    for expected in [
        info.connect_url.as_str(),
        info.api_key.as_str(),
        info.launchdarkly_api_token.as_str(),
        "curl -sS -X PUT",
        "/api/v1/tenants/demo/settings",
        "/api/v1/tenants/demo/environments/pr-1",
        "-X DELETE",
    ] {
        assert!(
            printed.contains(expected),
            "missing {expected:?} in:\n{printed}"
        );
    }
    assert!(info.generated_encryption_key);

    // The API key reaches the demo tenant.
    let api = reqwest::Client::new();
    let res = api
        .get(format!("{}/api/v1/tenants/demo", info.app_url))
        .bearer_auth(&info.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let tenant: serde_json::Value = res.json().await.unwrap();
    assert_eq!(tenant["display_name"], "Demo Company");

    // The connect link lands on settings, offering LaunchDarkly sign-in.
    let browser = browser();
    let res = browser.get(&info.connect_url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let settings = browser
        .get(format!("{}/settings", info.app_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(settings.contains("Demo Company"));
    assert!(settings.contains("Connect with LaunchDarkly"));

    // Sign-in goes to the simulator's consent page, with our redirect URI.
    let res = browser
        .post(format!("{}/oauth/start", info.app_url))
        .form(&[("csrf_token", csrf_token(&settings))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let authorize = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(authorize.starts_with(&info.simulator_url), "{authorize}");
    let consent = reqwest::get(&authorize).await.unwrap();
    assert_eq!(consent.status(), StatusCode::OK, "a consent page");
    assert!(consent.text().await.unwrap().contains("Approve"));

    // The printed API access token is accepted too.
    let res = browser
        .post(format!("{}/connection/api-token", info.app_url))
        .form(&[
            ("csrf_token", csrf_token(&settings)),
            ("api_token", info.launchdarkly_api_token.clone()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let settings = browser
        .get(format!("{}/settings", info.app_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(settings.contains("via an API access token"), "{settings}");
    assert!(
        settings.contains("Demo project (demo)"),
        "projects from the simulator"
    );
}

#[tokio::test]
async fn the_demo_starts_its_tenant_afresh() {
    let database = TestDatabase::create().await;
    init_logging();
    for round in 0..2 {
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
        let pool = demo.app.state().db.clone();
        let events: i64 =
            sqlx::query_scalar("select count(*) from audit_events where tenant_id = 'demo'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(events, 1, "round {round}: only the fresh tenant's creation");
        let live_keys: i64 = sqlx::query_scalar(
            "select count(*) from api_keys where name = 'demo' and revoked_at is null",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(live_keys, 1, "round {round}: one live demo key");
        demo.simulator.shutdown().await;
        pool.close().await;
    }
}
