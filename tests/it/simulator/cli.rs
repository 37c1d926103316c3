//! `ld-eaas fake-launchdarkly`: flags become a seeded, credentialed simulator.

use clap::Parser;
use ld_eaas::simulator::cli::{self, FakeLaunchDarklyArgs};
use reqwest::StatusCode;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    args: FakeLaunchDarklyArgs,
}

fn parse(argv: &[&str]) -> FakeLaunchDarklyArgs {
    Args::try_parse_from(std::iter::once("fake-launchdarkly").chain(argv.iter().copied()))
        .unwrap()
        .args
}

#[test]
fn the_defaults_listen_on_8090_seeded_with_generous_limits() {
    let args = parse(&[]);
    assert_eq!(args.listen.to_string(), "127.0.0.1:8090");
    let config = args.config();
    assert!(config.seed && config.api_tokens.is_empty() && config.oauth_clients.is_empty());
    assert!(config.rotate_refresh_tokens && !config.auto_approve);
    assert!(config.rate_limits.global_limit >= 1000);
}

#[test]
fn printing_the_flags_shows_no_token_or_secret() {
    let args = parse(&[
        "--api-token",
        "printed-writer-token",
        "--oauth-client-id",
        "c",
        "--oauth-client-secret",
        "printed-client-secret",
        "--redirect-uri",
        "http://127.0.0.1:8080/oauth/callback",
    ]);
    let printed = format!("{args:?} {:?}", args.config());
    assert!(
        !printed.contains("printed-writer-token") && !printed.contains("printed-client-secret"),
        "{printed}"
    );
    assert!(printed.contains("127.0.0.1:8090"));
}

#[test]
fn an_oauth_client_needs_its_secret_and_redirect_uri() {
    let argv = ["fake-launchdarkly", "--oauth-client-id", "c"];
    assert!(Args::try_parse_from(argv).is_err());
    let args = parse(&[
        "--oauth-client-id",
        "c",
        "--oauth-client-secret",
        "s",
        "--redirect-uri",
        "http://127.0.0.1:8080/oauth/callback",
    ]);
    assert_eq!(args.config().oauth_clients.len(), 1);
}

#[tokio::test]
async fn the_command_serves_the_seeded_account_to_its_api_tokens() {
    crate::support::helpers::init_logging();
    let args = parse(&[
        "--listen",
        "127.0.0.1:0",
        "--api-token",
        "cli-writer-token-1",
        "--api-token",
        "cli-writer-token-2",
        "--reader-api-token",
        "cli-reader-token",
        "--oauth-client-id",
        "cli-client",
        "--oauth-client-secret",
        "cli-secret",
        "--redirect-uri",
        "http://127.0.0.1:9/oauth/callback",
        "--auto-approve",
    ]);
    let sim = cli::start(&args).await.unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for token in ["cli-writer-token-1", "cli-writer-token-2"] {
        let res = http
            .post(format!(
                "{}/api/v2/projects/demo/environments",
                sim.base_url()
            ))
            .header("Authorization", token)
            .json(&super::env_post(&format!(
                "made-by-{}",
                &token[token.len() - 1..]
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let res = http
        .get(format!(
            "{}/api/v2/projects/demo/environments",
            sim.base_url()
        ))
        .header("Authorization", "cli-reader-token")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    let keys: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["production", "staging", "test", "made-by-1", "made-by-2"]
    );
    assert_eq!(body["items"][0]["critical"], true);
    let flags = sim
        .environment(super::ACCOUNT, "demo", "staging")
        .unwrap()
        .flags;
    assert!(flags.len() >= 3, "each seeded environment has a few flags");

    let authorize = format!(
        "{}/trust/oauth/authorize?response_type=code&client_id=cli-client&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Foauth%2Fcallback&scope=writer&state=s&code_challenge={}&code_challenge_method=S256",
        sim.base_url(),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    let res = http.get(authorize).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND, "auto-approved");
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("http://127.0.0.1:9/oauth/callback?code=")
    );
    sim.shutdown().await;
}
