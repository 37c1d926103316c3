//! `/trust/oauth/authorize`: checks the client and redirect URI first (a bad one
//! gets an error page, never a redirect), then shows the consent page or, with
//! auto-approve, sends the browser straight back with a code.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{Html, IntoResponse, Response};
use url::Url;

use super::super::config::Role;
use super::super::model::secret;
use super::super::state::{SharedState, SimState};
use super::grants::{AuthCode, PendingConsent};

/// How long a consent page stays answerable.
const CONSENT_TTL: Duration = Duration::from_secs(600);

#[derive(Template)]
#[template(path = "simulator/consent.html")]
struct ConsentPage<'a> {
    client_id: &'a str,
    scope: &'a str,
    redirect_uri: &'a str,
    consent_id: &'a str,
    accounts: Vec<String>,
    default_account: String,
}

#[derive(Template)]
#[template(path = "simulator/error.html")]
struct ErrorPage<'a> {
    error: &'a str,
    message: &'a str,
}

/// An error shown to the browser, not sent to the client's redirect URI.
fn error_page(status: StatusCode, error: &str, message: &str) -> Response {
    let page = ErrorPage { error, message };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "simulator: rendering the OAuth error page failed");
            (status, format!("{error}: {message}")).into_response()
        }
    }
}

/// A redirect to the client's registered URI with `params` added.
fn redirect_back(redirect_uri: &str, status: StatusCode, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = Url::parse(redirect_uri) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The registered redirect URI is not a URL.",
        );
    };
    url.query_pairs_mut().extend_pairs(params);
    (status, [(LOCATION, url.to_string())]).into_response()
}

/// An OAuth error sent back to a redirect URI already known to be the client's.
fn redirect_error(request: &Checked, error: &str, description: &str) -> Response {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(state) = &request.state {
        params.push(("state", state));
    }
    redirect_back(&request.redirect_uri, StatusCode::FOUND, &params)
}

/// A request whose client and redirect URI are known good.
struct Checked {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
}

/// A PKCE S256 challenge: base64url of a SHA-256, 43 characters.
fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Issues a one-time authorization code for an approved request.
fn issue_code(
    state: &mut SimState,
    consent: &PendingConsent,
    account_id: &str,
    ttl: Duration,
) -> String {
    let code = secret("sim-code-");
    let grant_id = state.oauth.new_grant_id();
    state.oauth.codes.insert(
        code.clone(),
        AuthCode {
            grant_id,
            client_id: consent.client_id.clone(),
            redirect_uri: consent.redirect_uri.clone(),
            scope: consent.scope,
            account_id: account_id.to_owned(),
            code_challenge: consent.code_challenge.clone(),
            expires_at: Instant::now() + ttl,
            spent: false,
        },
    );
    code
}

fn approved(consent: &PendingConsent, code: &str, status: StatusCode) -> Response {
    let mut params = vec![("code", code)];
    if let Some(state) = &consent.state {
        params.push(("state", state.as_str()));
    }
    redirect_back(&consent.redirect_uri, status, &params)
}

/// `GET /trust/oauth/authorize`
pub(crate) async fn authorize(
    State(shared): State<SharedState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let param = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let mut state = shared.lock();
    state.oauth.prune();
    let Some(client) = param("client_id").and_then(|id| state.oauth.clients.get(id)) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "Unknown client_id: no OAuth client with this id is registered.",
        );
    };
    if param("redirect_uri") != Some(client.redirect_uri.as_str()) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The redirect_uri is missing or does not match the one registered for this client.",
        );
    }
    let checked = Checked {
        client_id: client.client_id.clone(),
        redirect_uri: client.redirect_uri.clone(),
        state: param("state").map(str::to_owned),
    };
    if param("response_type") != Some("code") {
        return redirect_error(
            &checked,
            "unsupported_response_type",
            "response_type must be code",
        );
    }
    let scope = match param("scope").map(str::parse::<Role>) {
        Some(Ok(scope @ (Role::Reader | Role::Writer))) => scope,
        _ => return redirect_error(&checked, "invalid_scope", "scope must be reader or writer"),
    };
    if param("code_challenge_method") != Some("S256") {
        return redirect_error(
            &checked,
            "invalid_request",
            "PKCE is required: code_challenge_method must be S256",
        );
    }
    let Some(challenge) = param("code_challenge").filter(|c| valid_challenge(c)) else {
        return redirect_error(
            &checked,
            "invalid_request",
            "PKCE is required: code_challenge is missing or malformed",
        );
    };
    let consent = PendingConsent {
        client_id: checked.client_id,
        redirect_uri: checked.redirect_uri,
        scope,
        state: checked.state,
        code_challenge: challenge.to_owned(),
        expires_at: Instant::now() + CONSENT_TTL,
    };
    let Some(default_account) = shared.consenting_account(&state) else {
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "The simulator has no account to sign in to.",
        );
    };
    if shared.settings.auto_approve {
        let code = issue_code(
            &mut state,
            &consent,
            &default_account,
            shared.settings.auth_code_ttl,
        );
        return approved(&consent, &code, StatusCode::FOUND);
    }
    let consent_id = secret("consent-");
    let accounts: Vec<String> = state.accounts.keys().cloned().collect();
    state
        .oauth
        .pending
        .insert(consent_id.clone(), consent.clone());
    drop(state);
    let page = ConsentPage {
        client_id: &consent.client_id,
        scope: scope.as_str(),
        redirect_uri: &consent.redirect_uri,
        consent_id: &consent_id,
        accounts,
        default_account,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "simulator: rendering the consent page failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct Decision {
    consent_id: String,
    decision: String,
    account: Option<String>,
}

/// `POST /trust/oauth/authorize`: the Approve or Deny button.
pub(crate) async fn decide(
    State(shared): State<SharedState>,
    Form(form): Form<Decision>,
) -> Response {
    let mut state = shared.lock();
    state.oauth.prune();
    // One answer per consent page: a second click finds nothing.
    let Some(consent) = state.oauth.pending.remove(&form.consent_id) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "This authorization request has expired or was already answered. Start again from the application.",
        );
    };
    if form.decision != "approve" {
        let mut params = vec![
            ("error", "access_denied"),
            ("error_description", "The user denied access"),
        ];
        if let Some(s) = &consent.state {
            params.push(("state", s.as_str()));
        }
        return redirect_back(&consent.redirect_uri, StatusCode::SEE_OTHER, &params);
    }
    let account = form.account.or_else(|| shared.consenting_account(&state));
    let Some(account) = account.filter(|a| state.accounts.contains_key(a)) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Unknown account.",
        );
    };
    let code = issue_code(
        &mut state,
        &consent,
        &account,
        shared.settings.auth_code_ttl,
    );
    approved(&consent, &code, StatusCode::SEE_OTHER)
}
