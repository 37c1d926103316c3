//! Connecting a LaunchDarkly account, against the simulator over real HTTP:
//! OAuth with PKCE and one-time state, API tokens, disconnect, and the token
//! lifecycle (refresh before expiry, once after a 401, single-flight across
//! replicas, invalid_grant => needs_reconnect).

use chrono::Duration;
use ld_eaas::connections;
use ld_eaas::crypto::SealedColumn;
use ld_eaas::ids::TenantId;
use ld_eaas::launchdarkly::{Credential, RequestAuth};
use ld_eaas::simulator::{ApiTokenGrant, OAuthClientRegistration, Simulator, SimulatorConfig};
use ld_eaas::store::connections as stored;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;

use crate::support::helpers::{
    TestApp, TestDatabase, assert_logs_free_of, spawn_app_on, spawn_app_on_listener,
};

const CLIENT_ID: &str = "ld-eaas-test-client";
const CLIENT_SECRET: &str = "test-client-secret-value";
pub const WRITER_TOKEN: &str = "api-writer-token-0001";
const READER_TOKEN: &str = "api-reader-token-0001";

/// The simulator plus an app pointed at it, with OAuth registered both ends.
pub struct Connected {
    pub sim: Simulator,
    pub app: TestApp,
}

pub async fn start_simulator(redirect_uri: &str, auto_approve: bool) -> Simulator {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = SimulatorConfig {
        api_tokens: vec![
            ApiTokenGrant::new(WRITER_TOKEN, "writer"),
            ApiTokenGrant::new(READER_TOKEN, "reader"),
        ],
        oauth_clients: vec![OAuthClientRegistration {
            client_id: CLIENT_ID.to_owned(),
            client_secret: CLIENT_SECRET.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
        }],
        auto_approve,
        ..SimulatorConfig::default()
    };
    Simulator::start(config, listener).await.unwrap()
}

/// An app whose OAuth client and LaunchDarkly URL point at a fresh simulator.
pub async fn app_with_simulator(auto_approve: bool) -> Connected {
    let database = TestDatabase::create().await;
    app_with_simulator_on(database, auto_approve).await
}

pub async fn app_with_simulator_on(database: TestDatabase, auto_approve: bool) -> Connected {
    app_with_simulator_configured(database, auto_approve, |config| config).await
}

pub async fn app_with_simulator_configured(
    database: TestDatabase,
    auto_approve: bool,
    adjust: impl FnOnce(ld_eaas::config::Config) -> ld_eaas::config::Config,
) -> Connected {
    // The simulator must know the app's callback URL, so the app's port is
    // bound first.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", listener.local_addr().unwrap());
    let sim = start_simulator(&format!("{public}/oauth/callback"), auto_approve).await;
    let base = sim.base_url();
    let app = spawn_app_on_listener(
        database,
        listener,
        &[
            "--launchdarkly-url",
            &base,
            "--oauth-client-id",
            CLIENT_ID,
            "--oauth-client-secret",
            CLIENT_SECRET,
        ],
        adjust,
    )
    .await;
    Connected { sim, app }
}

/// The CSRF token on the settings page of the browser session.
pub async fn csrf_token(app: &TestApp) -> String {
    let html = app
        .client
        .get(app.url("/settings"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marker = "name=\"csrf_token\" value=\"";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no CSRF token on the settings page: {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

pub async fn open_connect_link(app: &TestApp, tenant: &str) {
    app.create_tenant(tenant).await;
    let link = app.connect_link(tenant).await;
    let res = app.client.get(link).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("ld_eaas_session="))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

/// POST /oauth/start and return the authorize URL it redirects to.
async fn start_oauth(app: &TestApp) -> String {
    let csrf = csrf_token(app).await;
    let res = app
        .client
        .post(app.url("/oauth/start"))
        .form(&[("csrf_token", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        res.text().await.unwrap()
    );
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// Follows the simulator's auto-approved consent back to our callback URL.
async fn approve(authorize_url: &str) -> String {
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = plain.get(authorize_url).send().await.unwrap();
    let status = res.status();
    if !status.is_redirection() {
        panic!(
            "auto-approve redirects: {status}: {}",
            res.text().await.unwrap()
        );
    }
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// The settings page after a redirect, to read the flash message.
async fn settings_page(app: &TestApp) -> String {
    app.text("/settings").await
}

async fn connection_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from connections")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// Runs the whole browser round trip: start, consent, callback.
pub async fn connect_with_oauth(env: &Connected, tenant: &str) {
    open_connect_link(&env.app, tenant).await;
    let authorize = start_oauth(&env.app).await;
    let callback = approve(&authorize).await;
    let res = env.app.client.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/settings");
}

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

#[tokio::test]
async fn the_oauth_round_trip_stores_only_sealed_tokens_and_renews_the_session() {
    let env = app_with_simulator(true).await;
    let app = &env.app;
    open_connect_link(app, "t1").await;
    let authorize = start_oauth(app).await;
    assert!(
        authorize.starts_with(&format!("{}/trust/oauth/authorize?", env.sim.base_url())),
        "{authorize}"
    );
    let query: std::collections::HashMap<String, String> = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(query["scope"], "writer");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["response_type"], "code");
    assert_eq!(
        query["redirect_uri"],
        format!("{}/oauth/callback", app.address)
    );
    assert!(query["state"].len() >= 16);

    let callback = approve(&authorize).await;
    let res = app.client.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let renewed = session_cookie(&res);
    assert!(
        renewed.is_some(),
        "the session id is renewed after connecting"
    );
    assert!(
        settings_page(app)
            .await
            .contains("Connected to LaunchDarkly.")
    );

    let row = stored::get(&app.db, &tenant("t1")).await.unwrap().unwrap();
    assert_eq!(row.auth_kind, stored::AuthKind::OAuth);
    assert!(
        row.access_token.starts_with("v1.k1.")
            && row.refresh_token.as_deref().unwrap().starts_with("v1.k1.")
    );
    assert!(row.access_expires_at.is_some());
    let keyring = &app.state.config.keyring;
    let access = keyring
        .open(&row.tenant_id, SealedColumn::AccessToken, &row.access_token)
        .unwrap();
    let refresh = keyring
        .open(
            &row.tenant_id,
            SealedColumn::RefreshToken,
            row.refresh_token.as_deref().unwrap(),
        )
        .unwrap();
    // The stored token is the real one: LaunchDarkly accepts it.
    let identity = app
        .state
        .ld
        .caller_identity(&RequestAuth::new(Credential::OAuth(access.clone()), None))
        .await
        .unwrap();
    assert_eq!(
        identity.account_id.as_deref(),
        Some(row.account_id.as_str())
    );

    let (status, body) = app.api(Method::GET, "/tenants/t1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["connection"]["status"], "connected");
    assert_eq!(body["connection"]["auth_kind"], "oauth");
    assert!(!body.to_string().contains(access.expose_secret()));

    let actions: Vec<String> =
        sqlx::query_scalar("select action from audit_events where tenant_id = 't1' order by id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert!(
        actions.contains(&"connection.connected".to_owned()),
        "{actions:?}"
    );

    let dump = std::process::Command::new("pg_dump")
        .arg("--data-only")
        .arg(&app.database.url)
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(!dump.contains(access.expose_secret()) && !dump.contains(refresh.expose_secret()));
    let code = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    assert_logs_free_of(&[
        access.expose_secret(),
        refresh.expose_secret(),
        &code,
        CLIENT_SECRET,
    ]);
}

#[tokio::test]
async fn denied_consent_stores_nothing_and_says_so() {
    let env = app_with_simulator(false).await;
    let app = &env.app;
    open_connect_link(app, "t1").await;
    let authorize = start_oauth(app).await;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let consent = plain.get(&authorize).send().await.unwrap();
    assert_eq!(
        consent.status(),
        StatusCode::OK,
        "a consent page, not an automatic redirect"
    );
    let query = url::Url::parse(&authorize).unwrap();
    let state = query
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    // What the simulator's Deny button sends the browser back with.
    let denied = format!(
        "{}/oauth/callback?error=access_denied&state={state}",
        app.address
    );
    let res = app.client.get(&denied).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        settings_page(app)
            .await
            .contains("You declined access in LaunchDarkly")
    );
    assert_eq!(connection_count(app).await, 0);
}

#[tokio::test]
async fn a_replayed_or_foreign_state_and_a_missing_code_store_nothing() {
    let env = app_with_simulator(true).await;
    let app = &env.app;
    open_connect_link(app, "t1").await;

    // Foreign state: the callback does not answer the attempt this session started.
    let authorize = start_oauth(app).await;
    let callback = approve(&authorize).await;
    let mut forged = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = forged
        .query_pairs()
        .map(|(k, v)| {
            if k == "state" {
                (k.into_owned(), "forged-state".to_owned())
            } else {
                (k.into_owned(), v.into_owned())
            }
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    app.client.get(forged.as_str()).send().await.unwrap();
    assert!(settings_page(app).await.contains("did not start here"));
    assert_eq!(connection_count(app).await, 0);
    // The genuine callback is now stale too: a state is good for one try.
    app.client.get(&callback).send().await.unwrap();
    assert!(settings_page(app).await.contains("no longer valid"));
    assert_eq!(connection_count(app).await, 0);

    // Missing code.
    let authorize = start_oauth(app).await;
    let state = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    app.client
        .get(format!("{}/oauth/callback?state={state}", app.address))
        .send()
        .await
        .unwrap();
    assert!(
        settings_page(app)
            .await
            .contains("had no authorization code")
    );
    assert_eq!(connection_count(app).await, 0);

    // Replay after a success changes nothing.
    let authorize = start_oauth(app).await;
    let callback = approve(&authorize).await;
    app.client.get(&callback).send().await.unwrap();
    assert_eq!(connection_count(app).await, 1);
    let before = stored::get(&app.db, &tenant("t1")).await.unwrap().unwrap();
    app.client.get(&callback).send().await.unwrap();
    assert!(settings_page(app).await.contains("no longer valid"));
    let after = stored::get(&app.db, &tenant("t1")).await.unwrap().unwrap();
    assert_eq!(before.token_version, after.token_version);
}

#[tokio::test]
async fn a_token_endpoint_failure_stores_nothing() {
    let env = app_with_simulator(true).await;
    let app = &env.app;
    open_connect_link(app, "t1").await;
    let authorize = start_oauth(app).await;
    let callback = approve(&authorize).await;
    // A used code is refused by the token endpoint.
    let code = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let oauth = app.state.oauth.clone().unwrap();
    let wrong_verifier = ld_eaas::launchdarkly::PkceCodeVerifier::new("x".repeat(64));
    assert!(
        oauth.exchange_code(&code, wrong_verifier).await.is_err(),
        "a wrong PKCE verifier fails"
    );
    app.client.get(&callback).send().await.unwrap();
    assert!(settings_page(app).await.contains("token exchange failed"));
    assert_eq!(connection_count(app).await, 0);
}

#[tokio::test]
async fn an_api_token_connects_and_a_rejected_one_stores_nothing() {
    let env = app_with_simulator(true).await;
    let app = &env.app;
    open_connect_link(app, "t1").await;
    let csrf = csrf_token(app).await;
    let form = [
        ("csrf_token", csrf.as_str()),
        ("api_token", "api-not-a-real-token"),
    ];
    let res = app
        .client
        .post(app.url("/connection/api-token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        settings_page(app)
            .await
            .contains("did not accept that API access token")
    );
    assert_eq!(connection_count(app).await, 0);

    // A reader token would fail every create: it is refused up front.
    let csrf = csrf_token(app).await;
    let form = [("csrf_token", csrf.as_str()), ("api_token", READER_TOKEN)];
    app.client
        .post(app.url("/connection/api-token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(settings_page(app).await.contains("can only read"));
    assert_eq!(connection_count(app).await, 0);

    let csrf = csrf_token(app).await;
    let form = [("csrf_token", csrf.as_str()), ("api_token", WRITER_TOKEN)];
    app.client
        .post(app.url("/connection/api-token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(
        settings_page(app)
            .await
            .contains("Connected to LaunchDarkly with an API access token.")
    );
    let row = stored::get(&app.db, &tenant("t1")).await.unwrap().unwrap();
    assert_eq!(row.auth_kind, stored::AuthKind::ApiToken);
    assert!(row.refresh_token.is_none());
    let cred = connections::credential(&app.state, &tenant("t1"))
        .await
        .unwrap();
    assert!(
        matches!(cred.auth.credential, Credential::ApiToken(ref t) if t.expose_secret() == WRITER_TOKEN)
    );
    assert_logs_free_of(&[WRITER_TOKEN]);
}

#[tokio::test]
async fn forms_without_their_csrf_token_are_refused() {
    let env = app_with_simulator(true).await;
    let app = &env.app;
    open_connect_link(app, "t1").await;
    for path in ["/oauth/start", "/connection/disconnect"] {
        let res = app
            .client
            .post(app.url(path))
            .form(&[("x", "y")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let res = app
        .client
        .post(app.url("/connection/api-token"))
        .form(&[("api_token", WRITER_TOKEN), ("csrf_token", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(connection_count(app).await, 0);
}

#[tokio::test]
async fn disconnect_revokes_the_grant_upstream_and_forgets_the_tokens() {
    let env = app_with_simulator(true).await;
    let app = &env.app;
    connect_with_oauth(&env, "t1").await;
    let row = stored::get(&app.db, &tenant("t1")).await.unwrap().unwrap();
    let access = app
        .state
        .config
        .keyring
        .open(&row.tenant_id, SealedColumn::AccessToken, &row.access_token)
        .unwrap();
    let csrf = csrf_token(app).await;
    let res = app
        .client
        .post(app.url("/connection/disconnect"))
        .form(&[("csrf_token", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(connection_count(app).await, 0);
    let gone = app
        .state
        .ld
        .caller_identity(&RequestAuth::new(Credential::OAuth(access), None))
        .await;
    assert!(
        gone.is_err(),
        "the revoked access token no longer works upstream"
    );
    let (_, body) = app.api(Method::GET, "/tenants/t1", None).await;
    assert_eq!(body["connection"]["status"], "not_connected");
}

#[tokio::test]
async fn fifty_concurrent_callers_on_an_expired_token_make_exactly_one_refresh_across_two_replicas()
{
    let env = app_with_simulator(true).await;
    connect_with_oauth(&env, "t1").await;
    // A second replica on the same database.
    let second = spawn_app_on(
        TestDatabase::shared(&env.app.database.url),
        &[
            "--launchdarkly-url",
            &env.sim.base_url(),
            "--oauth-client-id",
            CLIENT_ID,
            "--oauth-client-secret",
            CLIENT_SECRET,
        ],
        // Replicas share the encryption keys.
        |mut config| {
            config.keyring = env.app.state.config.keyring.clone();
            config
        },
    )
    .await;
    let before = stored::get(&env.app.db, &tenant("t1"))
        .await
        .unwrap()
        .unwrap();
    let refreshes_before = env.sim.token_endpoint_calls("refresh_token");
    env.app.clock.advance(Duration::hours(2));
    second.clock.advance(Duration::hours(2));

    let mut calls = Vec::new();
    for i in 0..50 {
        let state = if i % 2 == 0 {
            env.app.state.clone()
        } else {
            second.state.clone()
        };
        calls.push(tokio::spawn(async move {
            connections::credential(&state, &TenantId::parse("t1").unwrap()).await
        }));
    }
    let mut tokens = std::collections::HashSet::new();
    for call in calls {
        let cred = call.await.unwrap().unwrap();
        let Credential::OAuth(token) = cred.auth.credential else {
            panic!("oauth expected")
        };
        tokens.insert(token.expose_secret().to_owned());
    }
    assert_eq!(
        env.sim.token_endpoint_calls("refresh_token") - refreshes_before,
        1,
        "exactly one refresh call"
    );
    assert_eq!(tokens.len(), 1, "every caller got the same fresh token");
    let after = stored::get(&env.app.db, &tenant("t1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.token_version, before.token_version + 1);
    assert_ne!(
        after.refresh_token, before.refresh_token,
        "the rotated refresh token replaced the old one"
    );
    assert!(after.access_expires_at.unwrap() > env.app.now());
}

#[tokio::test]
async fn a_refused_refresh_marks_the_connection_needs_reconnect() {
    let env = app_with_simulator(true).await;
    connect_with_oauth(&env, "t1").await;
    env.sim.revoke_refresh_tokens();
    env.app.clock.advance(Duration::hours(2));
    let err = connections::credential(&env.app.state, &tenant("t1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, connections::ConnectionError::NeedsReconnect),
        "{err:?}"
    );
    let (_, body) = env.app.api(Method::GET, "/tenants/t1", None).await;
    assert_eq!(body["connection"]["status"], "needs_reconnect");
    let actions: Vec<String> =
        sqlx::query_scalar("select action from audit_events where tenant_id = 't1' and action = 'connection.needs_reconnect'")
            .fetch_all(&env.app.db)
            .await
            .unwrap();
    assert_eq!(actions.len(), 1);
    // Later callers are told at once, without another refresh attempt.
    let calls = env.sim.token_endpoint_calls("refresh_token");
    assert!(
        connections::credential(&env.app.state, &tenant("t1"))
            .await
            .is_err()
    );
    assert_eq!(env.sim.token_endpoint_calls("refresh_token"), calls);
}

#[tokio::test]
async fn needs_reconnect_is_announced_by_a_signed_webhook() {
    use crate::lifecycle::time::{HOOK_SECRET, assert_signed, receiver};

    let hook = receiver(0).await;
    let url = hook.url.clone();
    let env = app_with_simulator_configured(TestDatabase::create().await, true, move |mut c| {
        c.webhook = Some(ld_eaas::config::WebhookConfig {
            url: url::Url::parse(&url).unwrap(),
            secret: secrecy::SecretString::from(HOOK_SECRET.to_owned()),
        });
        c
    })
    .await;
    connect_with_oauth(&env, "t1").await;
    env.sim.revoke_refresh_tokens();
    env.app.clock.advance(Duration::hours(2));
    assert!(
        connections::credential(&env.app.state, &tenant("t1"))
            .await
            .is_err()
    );

    // The replica's webhook sender delivers it on its own.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (headers, body) = loop {
        if let Some(delivery) = hook.received.lock().unwrap().first().cloned() {
            break delivery;
        }
        assert!(std::time::Instant::now() < deadline, "no webhook arrived");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_signed(&headers, &body);
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["type"], "connection.needs_reconnect");
    assert_eq!(event["tenant_id"], "t1");
    assert_eq!(
        event["data"]["reason"],
        "LaunchDarkly refused the refresh token (invalid_grant)"
    );
    assert_eq!(hook.received.lock().unwrap().len(), 1, "announced once");
}

#[tokio::test]
async fn a_401_is_followed_by_one_refresh_and_the_new_token_works() {
    let env = app_with_simulator(true).await;
    connect_with_oauth(&env, "t1").await;
    let stale = connections::credential(&env.app.state, &tenant("t1"))
        .await
        .unwrap();
    env.sim.expire_access_tokens();
    assert!(env.app.state.ld.caller_identity(&stale.auth).await.is_err());
    let fresh = connections::refresh_after_unauthorized(&env.app.state, &tenant("t1"), &stale)
        .await
        .unwrap();
    env.app.state.ld.caller_identity(&fresh.auth).await.unwrap();
    // A second caller holding the same stale token gets the fresh one, no new refresh.
    let calls = env.sim.token_endpoint_calls("refresh_token");
    let again = connections::refresh_after_unauthorized(&env.app.state, &tenant("t1"), &stale)
        .await
        .unwrap();
    assert_eq!(again.token_version, fresh.token_version);
    assert_eq!(env.sim.token_endpoint_calls("refresh_token"), calls);
}

#[tokio::test]
async fn every_request_to_launchdarkly_carries_the_version_and_partner_user_agent() {
    let env = app_with_simulator(true).await;
    connect_with_oauth(&env, "t1").await;
    let cred = connections::credential(&env.app.state, &tenant("t1"))
        .await
        .unwrap();
    env.app.state.ld.list_projects(&cred.auth).await.unwrap();
    let requests = env.sim.requests();
    let api: Vec<_> = requests
        .iter()
        .filter(|r| r.path.starts_with("/api/v2/"))
        .collect();
    assert!(api.len() >= 2, "{requests:?}");
    for r in api {
        assert_eq!(
            r.header("ld-api-version"),
            Some("20240415"),
            "{} {}",
            r.method,
            r.path
        );
    }
    for r in requests
        .iter()
        .filter(|r| r.path.starts_with("/api/v2/") || r.path == "/trust/oauth/token")
    {
        assert_eq!(
            r.header("user-agent"),
            Some(concat!("launchdarkly-eaas-int/", env!("CARGO_PKG_VERSION"))),
            "{} {}",
            r.method,
            r.path
        );
    }
}

#[tokio::test]
async fn a_stale_credential_from_before_a_reconnect_does_not_break_the_new_connection() {
    let env = app_with_simulator(true).await;
    let app = &env.app;
    connect_with_oauth(&env, "t1").await;
    let stale = connections::credential(&app.state, &tenant("t1"))
        .await
        .unwrap();
    // The customer disconnects and connects again with an API token.
    connections::disconnect(&app.state, &tenant("t1"), "browser")
        .await
        .unwrap();
    let csrf = csrf_token(app).await;
    let form = [("csrf_token", csrf.as_str()), ("api_token", WRITER_TOKEN)];
    app.client
        .post(app.url("/connection/api-token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    // A worker still holding the old OAuth credential sees a 401 and asks again.
    let fresh = connections::refresh_after_unauthorized(&app.state, &tenant("t1"), &stale)
        .await
        .unwrap();
    assert!(matches!(fresh.auth.credential, Credential::ApiToken(_)));
    let (_, body) = app.api(Method::GET, "/tenants/t1", None).await;
    assert_eq!(body["connection"]["status"], "connected", "{body}");
    assert_eq!(body["connection"]["auth_kind"], "api_token");
}

#[tokio::test]
async fn offboarding_a_tenant_revokes_its_oauth_grant_upstream() {
    let env = app_with_simulator(true).await;
    let app = &env.app;
    connect_with_oauth(&env, "t1").await;
    let cred = connections::credential(&app.state, &tenant("t1"))
        .await
        .unwrap();
    let (status, _) = app.api(Method::DELETE, "/tenants/t1", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(connection_count(app).await, 0);
    assert!(
        app.state.ld.caller_identity(&cred.auth).await.is_err(),
        "the grant no longer works once the tenant is gone"
    );
}
