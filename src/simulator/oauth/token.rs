//! `/trust/oauth/token` (authorization_code with PKCE, refresh_token) and
//! `/trust/oauth/revoke`. Errors are RFC 6749 JSON: `invalid_request`,
//! `invalid_client` (401), `invalid_grant`, `unsupported_grant_type`, `invalid_scope`.

use std::collections::HashMap;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::super::config::Role;
use super::super::state::{SharedState, SimState};
use super::grants::IssuedTokens;

/// An RFC 6749 error answer.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// The client authenticated with HTTP Basic: a 401 says how to retry.
    basic_challenge: bool,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }

    fn invalid_client(basic: bool) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "Client authentication failed".to_owned(),
            basic_challenge: basic,
        }
    }

    fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new("invalid_grant", description)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.error, "error_description": self.description}));
        let mut response = (self.status, [(CACHE_CONTROL, "no-store")], body).into_response();
        if self.basic_challenge {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"launchdarkly\""),
            );
        }
        response
    }
}

/// The form fields, refusing repeats (RFC 6749 §3.2: parameters must not repeat).
fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let form_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return Err(OAuthError::new(
            "invalid_request",
            "The body must be application/x-www-form-urlencoded",
        ));
    }
    let mut form = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(body) {
        if form.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(OAuthError::new(
                "invalid_request",
                format!("Parameter {name} is repeated"),
            ));
        }
    }
    Ok(form)
}

/// Client credentials from HTTP Basic or the body (one way only), checked.
fn authenticate_client(
    state: &SimState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<String, OAuthError> {
    let basic = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, encoded)| encoded.trim().to_owned());
    let (client_id, secret) = match (basic, form.get("client_secret")) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::new(
                "invalid_request",
                "Use one client authentication method, not both",
            ));
        }
        (Some(encoded), None) => {
            let decoded = STANDARD
                .decode(encoded)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| OAuthError::invalid_client(true))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_client(true))?;
            // RFC 6749 §2.3.1: both parts are form-urlencoded inside Basic.
            let unescape = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            if form
                .get("client_id")
                .is_some_and(|body_id| *body_id != unescape(id))
            {
                return Err(OAuthError::invalid_client(true));
            }
            (unescape(id), unescape(secret))
        }
        (None, Some(secret)) => {
            let id = form.get("client_id").cloned().unwrap_or_default();
            (id, secret.clone())
        }
        (None, None) => return Err(OAuthError::invalid_client(false)),
    };
    let basic_used = headers.contains_key(AUTHORIZATION);
    state
        .oauth
        .authenticate(&client_id, &secret)
        .map(|c| c.client_id.clone())
        .ok_or_else(|| OAuthError::invalid_client(basic_used))
}

fn required<'a>(form: &'a HashMap<String, String>, name: &str) -> Result<&'a str, OAuthError> {
    form.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::new("invalid_request", format!("Missing parameter {name}")))
}

fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let valid_verifier = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    valid_verifier && URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

fn token_response(tokens: &IssuedTokens) -> Response {
    let body = json!({
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_in": tokens.expires_in,
        "token_type": "bearer",
        "scope": tokens.scope.as_str(),
    });
    (StatusCode::OK, [(CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

fn exchange_code(
    shared: &SharedState,
    state: &mut SimState,
    client_id: &str,
    form: &HashMap<String, String>,
) -> Result<IssuedTokens, OAuthError> {
    let code = required(form, "code")?;
    let redirect_uri = required(form, "redirect_uri")?;
    let verifier = required(form, "code_verifier")?;
    let Some(found) = state.oauth.codes.get_mut(code) else {
        return Err(OAuthError::invalid_grant("Unknown authorization code"));
    };
    if found.client_id != client_id {
        return Err(OAuthError::invalid_grant(
            "The code was issued to another client",
        ));
    }
    if found.spent {
        // RFC 6749 §4.1.2: a replayed code revokes what it already bought.
        let grant_id = found.grant_id;
        state.oauth.revoke_grant(grant_id);
        return Err(OAuthError::invalid_grant(
            "The authorization code was already used",
        ));
    }
    found.spent = true;
    let found = found.clone();
    if found.expires_at <= Instant::now() {
        return Err(OAuthError::invalid_grant(
            "The authorization code has expired",
        ));
    }
    if found.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    if !pkce_matches(verifier, &found.code_challenge) {
        return Err(OAuthError::invalid_grant(
            "PKCE verification failed: code_verifier does not match code_challenge",
        ));
    }
    Ok(state.oauth.issue(
        found.grant_id,
        client_id,
        &found.account_id,
        found.scope,
        shared.settings.access_token_ttl,
        None,
    ))
}

fn refresh(
    shared: &SharedState,
    state: &mut SimState,
    client_id: &str,
    form: &HashMap<String, String>,
) -> Result<IssuedTokens, OAuthError> {
    let token = required(form, "refresh_token")?;
    let Some(grant) = state.oauth.refresh_grant(token).cloned() else {
        return Err(OAuthError::invalid_grant(
            "The refresh token is invalid, expired or revoked",
        ));
    };
    if grant.client_id != client_id {
        return Err(OAuthError::invalid_grant(
            "The refresh token was issued to another client",
        ));
    }
    if let Some(scope) = form.get("scope") {
        // A refresh may narrow the scope, never widen it.
        let allowed = match scope.parse::<Role>() {
            Ok(Role::Reader) => true,
            Ok(role) => role == grant.scope,
            Err(_) => false,
        };
        if !allowed {
            return Err(OAuthError::new(
                "invalid_scope",
                "The requested scope exceeds the grant",
            ));
        }
    }
    let reuse = if shared.settings.rotate_refresh_tokens {
        state.oauth.remove_refresh(token);
        None
    } else {
        Some(token.to_owned())
    };
    let scope = match form.get("scope").map(|s| s.parse::<Role>()) {
        Some(Ok(scope)) => scope,
        _ => grant.scope,
    };
    Ok(state.oauth.issue(
        grant.grant_id,
        client_id,
        &grant.account_id,
        scope,
        shared.settings.access_token_ttl,
        reuse,
    ))
}

/// `POST /trust/oauth/token`
pub(crate) async fn token(
    State(shared): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match parse_form(&headers, &body) {
        Ok(form) => form,
        Err(err) => return err.into_response(),
    };
    let mut state = shared.lock();
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    *state
        .oauth
        .token_calls
        .entry(grant_type.clone())
        .or_insert(0) += 1;
    let client_id = match authenticate_client(&state, &headers, &form) {
        Ok(id) => id,
        Err(err) => return err.into_response(),
    };
    let issued = match grant_type.as_str() {
        "authorization_code" => exchange_code(&shared, &mut state, &client_id, &form),
        "refresh_token" => refresh(&shared, &mut state, &client_id, &form),
        "" => Err(OAuthError::new(
            "invalid_request",
            "Missing parameter grant_type",
        )),
        _ => Err(OAuthError::new(
            "unsupported_grant_type",
            "grant_type must be authorization_code or refresh_token",
        )),
    };
    match issued {
        Ok(tokens) => token_response(&tokens),
        Err(err) => err.into_response(),
    }
}

/// `POST /trust/oauth/revoke` (RFC 7009): 200 whether or not the token was known.
pub(crate) async fn revoke(
    State(shared): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match parse_form(&headers, &body) {
        Ok(form) => form,
        Err(err) => return err.into_response(),
    };
    let mut state = shared.lock();
    let client_id = match authenticate_client(&state, &headers, &form) {
        Ok(id) => id,
        Err(err) => return err.into_response(),
    };
    let token = match required(&form, "token") {
        Ok(token) => token,
        Err(err) => return err.into_response(),
    };
    state.oauth.revoke(&client_id, token);
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_the_rfc_7636_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(pkce_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_matches(
            "x".repeat(43).as_str(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_matches(
            "short",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }
}
