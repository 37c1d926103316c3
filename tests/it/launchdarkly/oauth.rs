//! OAuth against the simulator: authorization code with PKCE, refresh with
//! rotation, `invalid_grant`, revocation.
#![allow(clippy::disallowed_methods)] // Token lifetimes come from the simulator, which keeps real time.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use ld_eaas::launchdarkly::{
    Credential, LdError, LdOAuth, OAuthClientConfig, OAuthError, PkceCodeVerifier, RequestAuth,
    TokenHint, TokenSet,
};
use ld_eaas::simulator::{DEMO_ACCOUNT, SimulatorConfig};
use secrecy::{ExposeSecret, SecretString};

use super::{CLIENT_ID, CLIENT_SECRET, Ld, REDIRECT_URI, sim_config, start_with};

async fn start_auto_approving() -> Ld {
    start_with(
        SimulatorConfig {
            auto_approve: true,
            ..sim_config()
        },
        |_| {},
    )
    .await
}

fn oauth(ld: &Ld, secret: &str) -> LdOAuth {
    LdOAuth::new(
        &ld.config,
        OAuthClientConfig {
            client_id: CLIENT_ID.to_owned(),
            client_secret: SecretString::from(secret),
            redirect_uri: REDIRECT_URI.parse().unwrap(),
        },
    )
    .unwrap()
}

/// Follows the consent step like a browser would (auto-approve: straight back),
/// without following the redirect, and returns the callback's query.
async fn authorize(url: &url::Url) -> HashMap<String, String> {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = browser.get(url.clone()).send().await.unwrap();
    assert!(answer.status().is_redirection(), "{}", answer.status());
    let location = answer.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// The whole connect dance: tokens for the demo account.
async fn connect(oauth: &LdOAuth) -> TokenSet {
    let request = oauth.authorize_url("writer");
    let callback = authorize(&request.url).await;
    assert_eq!(callback.get("state"), Some(request.state.secret()));
    oauth
        .exchange_code(&callback["code"], request.pkce_verifier)
        .await
        .unwrap()
}

fn bearer(token: &SecretString) -> RequestAuth {
    RequestAuth::new(Credential::OAuth(token.clone()), None)
}

#[tokio::test]
async fn the_code_flow_with_pkce_yields_tokens_that_work() {
    let ld = start_auto_approving().await;
    let oauth = oauth(&ld, CLIENT_SECRET);
    let tokens = connect(&oauth).await;

    let refresh = tokens.refresh_token.as_ref().expect("a refresh token");
    let expires_at = tokens.expires_at.expect("an expiry");
    let lifetime = expires_at - Utc::now();
    assert!(lifetime > chrono::Duration::minutes(59) && lifetime <= chrono::Duration::hours(1));
    assert_eq!(tokens.scopes, ["writer"]);

    let me = ld
        .client
        .caller_identity(&bearer(&tokens.access_token))
        .await
        .unwrap();
    assert_eq!(me.account_id.as_deref(), Some(DEMO_ACCOUNT));

    // Client credentials and the PKCE verifier went in the form body.
    let exchange = ld.requests_to("/trust/oauth/token").pop().unwrap();
    let form = exchange.body.clone().unwrap();
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["client_id"], CLIENT_ID);
    assert!(
        form["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(
        form["code_verifier"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(form["redirect_uri"], REDIRECT_URI);
    assert_eq!(exchange.header("authorization"), None);
    assert_eq!(exchange.header("ld-api-version"), Some("20240415"));

    let printed = format!("{tokens:?}");
    assert!(!printed.contains(tokens.access_token.expose_secret()));
    crate::support::helpers::assert_logs_free_of(&[
        tokens.access_token.expose_secret(),
        refresh.expose_secret(),
        CLIENT_SECRET,
    ]);
}

#[tokio::test]
async fn a_wrong_pkce_verifier_or_a_reused_code_is_invalid_grant() {
    let ld = start_auto_approving().await;
    let oauth = oauth(&ld, CLIENT_SECRET);
    let request = oauth.authorize_url("writer");
    let callback = authorize(&request.url).await;
    let wrong = PkceCodeVerifier::new("a".repeat(64));
    let err = oauth
        .exchange_code(&callback["code"], wrong)
        .await
        .unwrap_err();
    assert_eq!(err, OAuthError::InvalidGrant);
    assert!(err.needs_reconnect() && !err.is_retryable());

    let request = oauth.authorize_url("writer");
    let callback = authorize(&request.url).await;
    let verifier = request.pkce_verifier.secret().clone();
    oauth
        .exchange_code(&callback["code"], request.pkce_verifier)
        .await
        .unwrap();
    let replay = oauth
        .exchange_code(&callback["code"], PkceCodeVerifier::new(verifier))
        .await;
    assert_eq!(replay.unwrap_err(), OAuthError::InvalidGrant);
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token_and_the_old_one_is_invalid_grant() {
    let ld = start_auto_approving().await;
    let oauth = oauth(&ld, CLIENT_SECRET);
    let first = connect(&oauth).await;
    let first_refresh = first.refresh_token.clone().unwrap();

    ld.sim.expire_access_tokens();
    let expired = ld
        .client
        .caller_identity(&bearer(&first.access_token))
        .await;
    assert_eq!(expired.unwrap_err(), LdError::Unauthorized);

    let second = oauth.refresh(&first_refresh).await.unwrap();
    let second_refresh = second
        .refresh_token
        .clone()
        .expect("a rotated refresh token");
    assert_ne!(
        second_refresh.expose_secret(),
        first_refresh.expose_secret()
    );
    assert_ne!(
        second.access_token.expose_secret(),
        first.access_token.expose_secret()
    );
    ld.client
        .caller_identity(&bearer(&second.access_token))
        .await
        .unwrap();

    let stale = oauth.refresh(&first_refresh).await.unwrap_err();
    assert_eq!(stale, OAuthError::InvalidGrant);
    assert_eq!(ld.sim.token_endpoint_calls("refresh_token"), 2);
    let form = ld
        .requests_to("/trust/oauth/token")
        .pop()
        .unwrap()
        .body
        .unwrap();
    assert_eq!(form["grant_type"], "refresh_token");
}

#[tokio::test]
async fn a_revoked_refresh_token_takes_its_grant_with_it() {
    let ld = start_auto_approving().await;
    let oauth = oauth(&ld, CLIENT_SECRET);
    let tokens = connect(&oauth).await;
    let refresh = tokens.refresh_token.clone().unwrap();

    oauth
        .revoke(&refresh, TokenHint::RefreshToken)
        .await
        .unwrap();
    assert_eq!(
        oauth.refresh(&refresh).await.unwrap_err(),
        OAuthError::InvalidGrant
    );
    assert_eq!(
        ld.client
            .caller_identity(&bearer(&tokens.access_token))
            .await
            .unwrap_err(),
        LdError::Unauthorized
    );
    let form = ld
        .requests_to("/trust/oauth/revoke")
        .pop()
        .unwrap()
        .body
        .unwrap();
    assert_eq!(form["token_type_hint"], "refresh_token");
    assert_eq!(form["client_id"], CLIENT_ID);
}

#[tokio::test]
async fn revoking_an_access_token_ends_it() {
    let ld = start_auto_approving().await;
    let oauth = oauth(&ld, CLIENT_SECRET);
    let tokens = connect(&oauth).await;
    oauth
        .revoke(&tokens.access_token, TokenHint::AccessToken)
        .await
        .unwrap();
    assert_eq!(
        ld.client
            .caller_identity(&bearer(&tokens.access_token))
            .await
            .unwrap_err(),
        LdError::Unauthorized
    );
}

#[tokio::test]
async fn a_wrong_client_secret_is_invalid_client_not_a_reconnect() {
    let ld = start_auto_approving().await;
    let good = oauth(&ld, CLIENT_SECRET);
    let tokens = connect(&good).await;
    let bad = oauth(&ld, "not-the-secret");
    let err = bad
        .refresh(tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, OAuthError::InvalidClient { .. }), "{err:?}");
    assert!(!err.needs_reconnect());
    let revoke = bad
        .revoke(&tokens.access_token, TokenHint::AccessToken)
        .await;
    assert!(
        matches!(revoke, Err(OAuthError::InvalidClient { .. })),
        "{revoke:?}"
    );
}

#[tokio::test]
async fn a_token_endpoint_outage_is_upstream_and_retryable() {
    let ld = start_auto_approving().await;
    let oauth = oauth(&ld, CLIENT_SECRET);
    let tokens = connect(&oauth).await;
    ld.sim.set_faults(
        ld_eaas::simulator::Faults::always_error(502).scoped(None, Some("/trust/oauth/token")),
    );
    let err = oauth
        .refresh(tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err, OAuthError::Upstream { status: 502 });
    assert!(err.is_retryable());
}

#[tokio::test]
async fn expiry_is_measured_on_the_injected_clock() {
    let ld = start_auto_approving().await;
    let frozen = Utc::now() - chrono::Duration::days(365);
    let oauth = LdOAuth::with_clock(
        &ld.config,
        OAuthClientConfig {
            client_id: CLIENT_ID.to_owned(),
            client_secret: SecretString::from(CLIENT_SECRET),
            redirect_uri: REDIRECT_URI.parse().unwrap(),
        },
        Arc::new(move || frozen),
    )
    .unwrap();
    let tokens = connect(&oauth).await;
    assert_eq!(tokens.expires_at, Some(frozen + chrono::Duration::hours(1)));
}
