//! OAuth: authorization code with PKCE S256, consent page, refresh with rotation,
//! revocation, metadata.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ld_eaas::simulator::SimulatorConfig;
use rand::Rng;
use rand::distributions::Alphanumeric;
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{
    ACCOUNT, Answer, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, Sim, base_config, read, start_with,
};

struct Pkce {
    verifier: String,
    challenge: String,
}

fn pkce() -> Pkce {
    let verifier: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(64)
        .map(char::from)
        .collect();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

async fn auto_approving() -> Sim {
    start_with(SimulatorConfig {
        auto_approve: true,
        ..base_config()
    })
    .await
}

fn authorize_path(pkce: &Pkce, scope: &str, state: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("scope", scope)
        .append_pair("state", state)
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    format!("/trust/oauth/authorize?{query}")
}

/// The query of a redirect back to the client, checked to go to REDIRECT_URI.
fn redirected(res: &reqwest::Response) -> HashMap<String, String> {
    assert!(res.status().is_redirection(), "{}", res.status());
    let location = res.headers()["location"].to_str().unwrap();
    let url = url::Url::parse(location).unwrap();
    assert_eq!(
        format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap(),
            url.path()
        ),
        REDIRECT_URI
    );
    url.query_pairs().into_owned().collect()
}

impl Sim {
    /// Goes through an auto-approved authorization and returns the code.
    async fn code(&self, pkce: &Pkce, scope: &str) -> String {
        let res = self
            .http
            .get(self.url(&authorize_path(pkce, scope, "st-1")))
            .send()
            .await
            .unwrap();
        let query = redirected(&res);
        assert_eq!(query["state"], "st-1");
        query["code"].clone()
    }

    async fn token(&self, form: &[(&str, &str)]) -> Answer {
        let res = self
            .http
            .post(self.url("/trust/oauth/token"))
            .form(form)
            .send()
            .await
            .unwrap();
        read(res).await
    }

    async fn exchange(&self, code: &str, verifier: &str) -> Answer {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await
    }

    async fn refresh(&self, refresh_token: &str) -> Answer {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await
    }

    async fn revoke(&self, token: &str) -> StatusCode {
        let form = [
            ("token", token),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ];
        self.http
            .post(self.url("/trust/oauth/revoke"))
            .form(&form)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn identity(&self, access_token: &str) -> Answer {
        self.get("/api/v2/caller-identity", &format!("Bearer {access_token}"))
            .await
    }

    /// A fresh access and refresh token pair with `scope`.
    async fn tokens(&self, scope: &str) -> (String, String) {
        let pkce = pkce();
        let code = self.code(&pkce, scope).await;
        let answer = self.exchange(&code, &pkce.verifier).await;
        let body = answer.assert(StatusCode::OK);
        (
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }
}

#[track_caller]
fn assert_oauth_error(answer: &Answer, status: StatusCode, error: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.body["error"], error, "{}", answer.body);
    assert!(answer.body["error_description"].is_string());
}

#[tokio::test]
async fn the_code_flow_with_the_right_verifier_issues_working_tokens() {
    let s = auto_approving().await;
    let pkce = pkce();
    let code = s.code(&pkce, "writer").await;
    let answer = s.exchange(&code, &pkce.verifier).await;
    let body = answer.assert(StatusCode::OK);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "writer");
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let access = body["access_token"].as_str().unwrap();
    let me = s.identity(access).await;
    let me = me.assert(StatusCode::OK);
    assert_eq!(me["accountId"], ACCOUNT);
    assert_eq!(me["authKind"], "oauth");
    assert_eq!(me["clientId"], CLIENT_ID);
    assert_eq!(s.sim.token_endpoint_calls("authorization_code"), 1);
    assert_eq!(s.sim.token_endpoint_calls("refresh_token"), 0);
    // A writer token writes.
    let created = s
        .post(
            "/api/v2/projects/demo/environments",
            &format!("Bearer {access}"),
            &super::env_post("oauth-made"),
        )
        .await;
    created.assert(StatusCode::CREATED);

    let refresh = body["refresh_token"].as_str().unwrap();
    let log = format!("{:?}", s.sim.requests());
    for secret in [
        access,
        refresh,
        code.as_str(),
        pkce.verifier.as_str(),
        CLIENT_SECRET,
    ] {
        assert!(!log.contains(secret), "the request log holds no secret");
    }
    crate::support::helpers::assert_logs_free_of(&[
        access,
        refresh,
        &code,
        &pkce.verifier,
        CLIENT_SECRET,
    ]);
}

#[tokio::test]
async fn a_wrong_verifier_fails_and_spends_the_code() {
    let s = auto_approving().await;
    let pkce = pkce();
    let code = s.code(&pkce, "writer").await;
    let wrong = "x".repeat(64);
    assert_oauth_error(
        &s.exchange(&code, &wrong).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert_oauth_error(
        &s.exchange(&code, &pkce.verifier).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    // A verifier that is not even a valid PKCE verifier fails the same way.
    let code = s.code(&pkce, "writer").await;
    assert_oauth_error(
        &s.exchange(&code, "short").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
}

#[tokio::test]
async fn a_replayed_code_fails_and_revokes_what_it_bought() {
    let s = auto_approving().await;
    let pkce = pkce();
    let code = s.code(&pkce, "writer").await;
    let first = s.exchange(&code, &pkce.verifier).await;
    let access = first.assert(StatusCode::OK)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    s.identity(&access).await.assert(StatusCode::OK);
    assert_oauth_error(
        &s.exchange(&code, &pkce.verifier).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    s.identity(&access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn the_token_endpoint_checks_redirect_uri_client_and_grant_type() {
    let s = auto_approving().await;
    let pkce = pkce();
    let code = s.code(&pkce, "writer").await;
    let wrong_redirect = s
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://evil.example/cb"),
            ("code_verifier", &pkce.verifier),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;
    assert_oauth_error(&wrong_redirect, StatusCode::BAD_REQUEST, "invalid_grant");

    let code = s.code(&pkce, "writer").await;
    let wrong_secret = s
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &pkce.verifier),
            ("client_id", CLIENT_ID),
            ("client_secret", "not-the-secret"),
        ])
        .await;
    assert_oauth_error(&wrong_secret, StatusCode::UNAUTHORIZED, "invalid_client");
    let no_client = s
        .token(&[("grant_type", "authorization_code"), ("code", &code)])
        .await;
    assert_oauth_error(&no_client, StatusCode::UNAUTHORIZED, "invalid_client");

    // HTTP Basic client authentication works too, and the code was not spent above.
    let basic = STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", pkce.verifier.as_str()),
    ];
    let res = s
        .http
        .post(s.url("/trust/oauth/token"))
        .header("Authorization", format!("Basic {basic}"))
        .form(&form)
        .send()
        .await
        .unwrap();
    read(res).await.assert(StatusCode::OK);

    let creds = [("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)];
    let password = [&[("grant_type", "password")][..], &creds].concat();
    assert_oauth_error(
        &s.token(&password).await,
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
    );
    let missing_code = [&[("grant_type", "authorization_code")][..], &creds].concat();
    assert_oauth_error(
        &s.token(&missing_code).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    let json_body = s
        .http
        .post(s.url("/trust/oauth/token"))
        .json(&json!({"grant_type": "refresh_token"}))
        .send()
        .await
        .unwrap();
    assert_oauth_error(
        &read(json_body).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
}

#[tokio::test]
async fn bad_clients_and_redirect_uris_get_an_error_page_never_a_redirect() {
    let s = auto_approving().await;
    let pkce = pkce();
    let good = authorize_path(&pkce, "writer", "st");
    for bad in [
        good.replace(CLIENT_ID, "unknown-client"),
        good.replace("eaas.example", "evil.example"),
        good.replace("client_id=", "client=")
            .replace("redirect_uri=", "x="),
    ] {
        let res = s.http.get(s.url(&bad)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            res.headers().get("location").is_none(),
            "no open redirect: {bad}"
        );
        assert!(res.text().await.unwrap().contains("Authorization failed"));
    }
    // Once the client and redirect URI are good, errors go back to the client.
    let no_pkce = good.replace("code_challenge_method=S256", "code_challenge_method=plain");
    let res = s.http.get(s.url(&no_pkce)).send().await.unwrap();
    let query = redirected(&res);
    assert_eq!(
        (query["error"].as_str(), query["state"].as_str()),
        ("invalid_request", "st")
    );
    let admin = authorize_path(&pkce, "admin", "st");
    let query = redirected(&s.http.get(s.url(&admin)).send().await.unwrap());
    assert_eq!(query["error"], "invalid_scope");
    let token = good.replace("response_type=code", "response_type=token");
    let query = redirected(&s.http.get(s.url(&token)).send().await.unwrap());
    assert_eq!(query["error"], "unsupported_response_type");
}

#[tokio::test]
async fn the_consent_page_approves_or_denies_once() {
    let s = super::start().await;
    let pkce = pkce();
    let page = s
        .http
        .get(s.url(&authorize_path(&pkce, "writer", "st-9")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("id=\"approve\"") && html.contains("id=\"deny\""),
        "{html}"
    );
    assert!(html.contains(CLIENT_ID) && html.contains("writer"));
    let consent_id = html
        .split("name=\"consent_id\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();

    let deny = [("consent_id", consent_id.as_str()), ("decision", "deny")];
    let res = s
        .http
        .post(s.url("/trust/oauth/authorize"))
        .form(&deny)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let query = redirected(&res);
    assert_eq!(
        (query["error"].as_str(), query["state"].as_str()),
        ("access_denied", "st-9")
    );
    assert!(!query.contains_key("code"));
    // The page was answered: approving it now fails, without a redirect.
    let approve = [("consent_id", consent_id.as_str()), ("decision", "approve")];
    let res = s
        .http
        .post(s.url("/trust/oauth/authorize"))
        .form(&approve)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get("location").is_none());

    let html = s
        .http
        .get(s.url(&authorize_path(&pkce, "reader", "st-10")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let consent_id = html
        .split("name=\"consent_id\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let approve = [
        ("consent_id", consent_id.as_str()),
        ("decision", "approve"),
        ("account", ACCOUNT),
    ];
    let res = s
        .http
        .post(s.url("/trust/oauth/authorize"))
        .form(&approve)
        .send()
        .await
        .unwrap();
    let query = redirected(&res);
    assert_eq!(query["state"], "st-10");
    let answer = s.exchange(&query["code"], &pkce.verifier).await;
    let body = answer.assert(StatusCode::OK);
    assert_eq!(body["scope"], "reader");
    // A reader grant cannot write.
    let bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());
    let denied = s
        .post(
            "/api/v2/projects/demo/environments",
            &bearer,
            &super::env_post("nope"),
        )
        .await;
    denied.assert_error(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn refresh_rotates_and_the_old_refresh_token_then_fails() {
    let s = auto_approving().await;
    let (access, refresh) = s.tokens("writer").await;
    let answer = s.refresh(&refresh).await;
    let body = answer.assert(StatusCode::OK);
    let new_access = body["access_token"].as_str().unwrap().to_owned();
    let new_refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(new_access, access);
    assert_ne!(new_refresh, refresh);
    s.identity(&new_access).await.assert(StatusCode::OK);
    assert_oauth_error(
        &s.refresh(&refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    s.refresh(&new_refresh).await.assert(StatusCode::OK);
    assert_eq!(s.sim.token_endpoint_calls("refresh_token"), 3);
}

#[tokio::test]
async fn without_rotation_the_refresh_token_keeps_working() {
    let s = start_with(SimulatorConfig {
        auto_approve: true,
        rotate_refresh_tokens: false,
        ..base_config()
    })
    .await;
    let (_, refresh) = s.tokens("writer").await;
    let first = s.refresh(&refresh).await;
    assert_eq!(
        first.assert(StatusCode::OK)["refresh_token"],
        refresh.as_str()
    );
    s.refresh(&refresh).await.assert(StatusCode::OK);
}

#[tokio::test]
async fn expired_access_tokens_are_401_and_revoked_refresh_tokens_invalid_grant() {
    let s = start_with(SimulatorConfig {
        auto_approve: true,
        access_token_ttl: Duration::from_secs(1),
        ..base_config()
    })
    .await;
    let (access, refresh) = s.tokens("writer").await;
    s.identity(&access).await.assert(StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.identity(&access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");

    let body = s.refresh(&refresh).await.assert(StatusCode::OK).clone();
    assert_eq!(
        body["expires_in"], 1,
        "expires_in is the configured lifetime"
    );
    let access = body["access_token"].as_str().unwrap().to_owned();
    s.identity(&access).await.assert(StatusCode::OK);
    s.sim.expire_access_tokens();
    s.identity(&access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    s.sim.revoke_refresh_tokens();
    let refresh = body["refresh_token"].as_str().unwrap();
    assert_oauth_error(
        &s.refresh(refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
}

#[tokio::test]
async fn revoking_an_access_token_or_a_whole_grant() {
    let s = auto_approving().await;
    let (access, refresh) = s.tokens("writer").await;
    let (other_access, other_refresh) = s.tokens("writer").await;
    assert_eq!(s.revoke(&access).await, StatusCode::OK);
    s.identity(&access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    s.refresh(&refresh).await.assert(StatusCode::OK);

    // Revoking a refresh token takes its grant's access tokens along.
    assert_eq!(s.revoke(&other_refresh).await, StatusCode::OK);
    assert_oauth_error(
        &s.refresh(&other_refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    s.identity(&other_access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");

    assert_eq!(
        s.revoke("never-issued").await,
        StatusCode::OK,
        "RFC 7009: unknown tokens are fine"
    );
    let wrong_client = [
        ("token", "x"),
        ("client_id", CLIENT_ID),
        ("client_secret", "wrong"),
    ];
    let res = s
        .http
        .post(s.url("/trust/oauth/revoke"))
        .form(&wrong_client)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_metadata_document_names_every_endpoint() {
    let s = auto_approving().await;
    let res = s
        .http
        .get(s.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    let body = read(res).await;
    let body = body.assert(StatusCode::OK);
    let base = s.sim.base_url();
    assert_eq!(body["issuer"], base.as_str());
    assert_eq!(
        body["authorization_endpoint"],
        format!("{base}/trust/oauth/authorize")
    );
    assert_eq!(body["token_endpoint"], format!("{base}/trust/oauth/token"));
    assert_eq!(
        body["revocation_endpoint"],
        format!("{base}/trust/oauth/revoke")
    );
    assert_eq!(body["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(body["scopes_supported"], json!(["reader", "writer"]));
}
