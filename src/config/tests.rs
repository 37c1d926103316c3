//! Unit tests of the configuration checks.

#![allow(clippy::unwrap_used)]
use clap::Parser;

use super::*;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: ServeArgs,
}

fn args(extra: &[&str]) -> ServeArgs {
    let mut argv = vec!["ld-eaas"];
    argv.extend_from_slice(extra);
    Cli::try_parse_from(argv).unwrap().args
}

#[test]
fn serve_refuses_to_start_without_an_encryption_key() {
    let err = args(&[]).into_config().unwrap_err();
    assert_eq!(err.setting, "LD_EAAS_ENCRYPTION_KEYS");
}

#[test]
fn errors_name_the_setting() {
    let key = Keyring::generate_spec("k1");
    let err = args(&["--encryption-keys", &key, "--public-url", "ftp://x"])
        .into_config()
        .unwrap_err();
    assert_eq!(err.setting, "LD_EAAS_PUBLIC_URL");
    let err = args(&["--encryption-keys", &key, "--instance-id", "has space"])
        .into_config()
        .unwrap_err();
    assert_eq!(err.setting, "LD_EAAS_INSTANCE_ID");
    let err = args(&["--encryption-keys", &key, "--oauth-client-id", "only-id"])
        .into_config()
        .unwrap_err();
    assert_eq!(err.setting, "LD_EAAS_OAUTH_CLIENT_ID");
    for (flag, value, setting) in [
        (
            "--session-idle-seconds",
            "5",
            "LD_EAAS_SESSION_IDLE_SECONDS",
        ),
        (
            "--launchdarkly-timeout-seconds",
            "0",
            "LD_EAAS_LAUNCHDARKLY_TIMEOUT_SECONDS",
        ),
        ("--job-lease-seconds", "1", "LD_EAAS_JOB_LEASE_SECONDS"),
        (
            "--header-timeout-seconds",
            "31",
            "LD_EAAS_HEADER_TIMEOUT_SECONDS",
        ),
        (
            "--header-timeout-seconds",
            "0",
            "LD_EAAS_HEADER_TIMEOUT_SECONDS",
        ),
        (
            "--body-timeout-seconds",
            "0",
            "LD_EAAS_BODY_TIMEOUT_SECONDS",
        ),
        (
            "--idle-timeout-seconds",
            "0",
            "LD_EAAS_IDLE_TIMEOUT_SECONDS",
        ),
        ("--max-connections", "0", "LD_EAAS_MAX_CONNECTIONS"),
    ] {
        let err = args(&["--encryption-keys", &key, flag, value])
            .into_config()
            .unwrap_err();
        assert_eq!(err.setting, setting);
    }
    let tuned = args(&[
        "--encryption-keys",
        &key,
        "--session-idle-seconds",
        "600",
        "--launchdarkly-timeout-seconds",
        "5",
        "--job-lease-seconds",
        "20",
    ])
    .into_config()
    .unwrap();
    assert_eq!(tuned.session_idle_timeout, Duration::from_secs(600));
    assert_eq!(tuned.lifecycle.launchdarkly_timeout, Duration::from_secs(5));
    assert_eq!(tuned.lifecycle.lease, Duration::from_secs(20));
    let err = args(&["--encryption-keys", "k1:short"])
        .into_config()
        .unwrap_err();
    assert_eq!(err.setting, "LD_EAAS_ENCRYPTION_KEYS");
    assert!(
        !err.to_string().contains("short"),
        "key material must not be echoed"
    );
}

#[test]
fn defaults_start_locally() {
    let key = Keyring::generate_spec("k1");
    let config = args(&["--encryption-keys", &key]).into_config().unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(
        config.oauth_redirect_uri().as_str(),
        "http://localhost:8080/oauth/callback"
    );
    assert!(!config.cookies_secure());
    assert_eq!(config.instance_tag(), "ld-eaas.default");
    assert_eq!(config.server, ServerLimits::default());
    assert!(config.server.header_timeout <= Duration::from_secs(30));
    let material = key.split(':').nth(1).unwrap();
    assert!(!format!("{config:?}").contains(material));
    let raw = args(&[
        "--encryption-keys",
        &key,
        "--oauth-client-id",
        "id",
        "--oauth-client-secret",
        "s3cret-value",
    ]);
    let printed = format!("{raw:?}");
    assert!(
        !printed.contains(material) && !printed.contains("s3cret-value"),
        "{printed}"
    );
}

#[test]
fn return_url_origins_are_origins_only() {
    let key = Keyring::generate_spec("k1");
    let config = args(&["--encryption-keys", &key]).into_config().unwrap();
    assert!(config.return_url_origins.is_empty(), "none by default");
    assert_eq!(
        parse_origins(" https://App.Example.com/ , http://localhost:3000,https://app.example.com")
            .unwrap(),
        ["https://app.example.com", "http://localhost:3000"]
    );
    assert_eq!(
        parse_origins("https://example.com:443").unwrap(),
        ["https://example.com"]
    );
    for bad in [
        "app.example.com",
        "ftp://example.com",
        "https://example.com/app",
        "https://user@example.com",
        "https://example.com?x=1",
        "https://example.com/#top",
    ] {
        let err = args(&["--encryption-keys", &key, "--return-url-origins", bad])
            .into_config()
            .unwrap_err();
        assert_eq!(err.setting, "LD_EAAS_RETURN_URL_ORIGINS", "{bad}");
    }
}
