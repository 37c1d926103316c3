//! Unit tests of the OAuth client (no network).

use super::*;

fn oauth() -> Result<LdOAuth, Box<dyn std::error::Error>> {
    let http = LdClientConfig::new(Url::parse("https://ld.example")?, "acme");
    let config = OAuthClientConfig {
        client_id: "cid".to_owned(),
        client_secret: SecretString::from("csecret"),
        redirect_uri: Url::parse("https://eaas.example/oauth/callback")?,
    };
    Ok(LdOAuth::new(&http, config)?)
}

#[test]
fn the_authorize_url_asks_for_a_code_with_pkce_s256_and_no_secret()
-> Result<(), Box<dyn std::error::Error>> {
    let request = oauth()?.authorize_url("writer");
    let url = request.url;
    assert_eq!(url.path(), "/trust/oauth/authorize");
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query.get("response_type").map(String::as_str), Some("code"));
    assert_eq!(query.get("client_id").map(String::as_str), Some("cid"));
    assert_eq!(query.get("scope").map(String::as_str), Some("writer"));
    assert_eq!(
        query.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );
    assert_eq!(query.get("state"), Some(request.state.secret()));
    assert!(query.contains_key("code_challenge"));
    assert_eq!(
        query.get("redirect_uri").map(String::as_str),
        Some("https://eaas.example/oauth/callback")
    );
    assert!(!url.as_str().contains("csecret"));
    assert!(!url.as_str().contains(request.pkce_verifier.secret()));
    Ok(())
}

#[test]
fn a_redirect_uri_with_a_query_string_is_refused() -> Result<(), url::ParseError> {
    let http = LdClientConfig::new(Url::parse("https://ld.example")?, "acme");
    let config = OAuthClientConfig {
        client_id: "cid".to_owned(),
        client_secret: SecretString::from("csecret"),
        redirect_uri: Url::parse("https://eaas.example/cb?x=1")?,
    };
    assert!(matches!(
        LdOAuth::new(&http, config),
        Err(OAuthError::Config { .. })
    ));
    Ok(())
}
