//! Connecting a LaunchDarkly account from the browser: OAuth (authorization
//! code + PKCE, one-time `state` kept in the session) or a pasted API access
//! token. Every failure ends on the settings page with a clear message and
//! stores nothing.

use axum::extract::{Query, State};
use axum::response::Redirect;
use secrecy::SecretString;
use serde::Deserialize;

use super::pages::require_tenant;
use super::session::OAuthPending;
use super::{CsrfOnly, CustomerSession, FlashKind, PageResult, WebForm};
use crate::app::AppState;
use crate::connections::{self, ConnectError, Connected, ConnectionError};
use crate::launchdarkly::{LdError, PkceCodeVerifier};

#[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
pub async fn start_oauth(
    State(state): State<AppState>,
    session: CustomerSession,
    WebForm(form): WebForm<CsrfOnly>,
) -> PageResult<Redirect> {
    require_tenant(&state, &session).await?;
    session.verify_csrf(form.csrf_token.as_deref()).await?;
    let Some(oauth) = state.oauth.as_ref() else {
        session
            .flash(FlashKind::Error, "Connecting with LaunchDarkly sign-in is not set up here. Use an API access token instead.")
            .await?;
        return Ok(Redirect::to("/settings"));
    };
    let authorization = oauth.authorize_url("writer");
    session
        .set_oauth_pending(&OAuthPending {
            state: authorization.state.secret().to_owned(),
            pkce_verifier: authorization.pkce_verifier.secret().to_owned(),
        })
        .await?;
    Ok(Redirect::to(authorization.url.as_str()))
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

#[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
pub async fn oauth_callback(
    State(state): State<AppState>,
    session: CustomerSession,
    Query(query): Query<CallbackQuery>,
) -> PageResult<Redirect> {
    let tenant = require_tenant(&state, &session).await?;
    // Taken out whatever happens next: a state is good for one try.
    let pending = session.take_oauth_pending().await?;
    let outcome = finish_oauth(&state, &tenant.id, pending, query).await;
    match outcome {
        Ok(()) => {
            // A new session id now that the browser holds a connected account.
            session.renew_id().await?;
            session
                .flash(FlashKind::Success, "Connected to LaunchDarkly.")
                .await?;
        }
        Err(message) => {
            tracing::info!(reason = %message, "OAuth connection not completed");
            session.flash(FlashKind::Error, message).await?;
        }
    }
    Ok(Redirect::to("/settings"))
}

/// The callback's checks, in order. Errors are the message the customer sees.
async fn finish_oauth(
    state: &AppState,
    tenant: &crate::ids::TenantId,
    pending: Option<OAuthPending>,
    query: CallbackQuery,
) -> Result<(), String> {
    let Some(pending) = pending else {
        return Err("This sign-in attempt is no longer valid (it was already used or has expired). Start again with Connect with LaunchDarkly.".to_owned());
    };
    let state_ok = query
        .state
        .as_deref()
        .is_some_and(|s| constant_time_eq(s.as_bytes(), pending.state.as_bytes()));
    if !state_ok {
        return Err("This sign-in attempt did not start here, so it was ignored. Start again with Connect with LaunchDarkly.".to_owned());
    }
    if let Some(error) = query.error.as_deref() {
        return Err(if error == "access_denied" {
            "You declined access in LaunchDarkly, so nothing was connected. Connect again whenever you are ready.".to_owned()
        } else {
            "LaunchDarkly did not complete the sign-in. Please try again.".to_owned()
        });
    }
    let Some(code) = query.code.filter(|c| !c.is_empty()) else {
        return Err(
            "LaunchDarkly's answer had no authorization code. Please try again.".to_owned(),
        );
    };
    let Some(oauth) = state.oauth.as_ref() else {
        return Err("Connecting with LaunchDarkly sign-in is not set up here.".to_owned());
    };
    let tokens = oauth
        .exchange_code(&code, PkceCodeVerifier::new(pending.pkce_verifier))
        .await
        .map_err(|err| {
            tracing::warn!(error = %err, "OAuth code exchange failed");
            "LaunchDarkly did not accept the sign-in (the token exchange failed). Please try again."
                .to_owned()
        })?;
    let issued = tokens.clone();
    match connections::connect(state, tenant, Connected::from_oauth(tokens), "browser").await {
        Ok(()) => Ok(()),
        Err(err) => {
            tracing::warn!(error = %err, "storing the OAuth connection failed");
            // Nothing was stored, so the grant just made must not stay live.
            connections::revoke_tokens(
                oauth,
                Some(&issued.access_token),
                issued.refresh_token.as_ref(),
            )
            .await;
            Err(match err {
                ConnectError::ReadOnly => READ_ONLY_MESSAGE.to_owned(),
                _ => "Signed in, but LaunchDarkly did not let us read your account. Please try again.".to_owned(),
            })
        }
    }
}

const READ_ONLY_MESSAGE: &str = "That LaunchDarkly access can only read, so it could never create preview environments. \
     Connect with a token or role that can create and delete environments.";

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ApiTokenForm {
    csrf_token: Option<String>,
    api_token: Option<String>,
}

#[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
pub async fn save_api_token(
    State(state): State<AppState>,
    session: CustomerSession,
    WebForm(form): WebForm<ApiTokenForm>,
) -> PageResult<Redirect> {
    let tenant = require_tenant(&state, &session).await?;
    session.verify_csrf(form.csrf_token.as_deref()).await?;
    let token = form.api_token.unwrap_or_default();
    let token = token.trim();
    if token.is_empty()
        || token.len() > 512
        || token
            .chars()
            .any(|c| c.is_whitespace() || crate::text::is_refused(c))
    {
        session.keep_token_form_open().await?;
        session
            .flash(FlashKind::Error, "Paste the whole API access token from LaunchDarkly (Organization settings → Authorization).")
            .await?;
        return Ok(Redirect::to("/settings"));
    }
    let result = connections::connect(
        &state,
        &tenant.id,
        Connected::from_api_token(SecretString::from(token.to_owned())),
        "browser",
    )
    .await;
    match result {
        Ok(()) => {
            session.renew_id().await?;
            session
                .flash(
                    FlashKind::Success,
                    "Connected to LaunchDarkly with an API access token.",
                )
                .await?;
        }
        Err(ConnectError::ReadOnly) => {
            session.keep_token_form_open().await?;
            session.flash(FlashKind::Error, READ_ONLY_MESSAGE).await?;
        }
        Err(ConnectError::Connection(ConnectionError::Upstream(LdError::Unauthorized))) => {
            session.keep_token_form_open().await?;
            session
                .flash(FlashKind::Error, "LaunchDarkly did not accept that API access token. Check that it is active and copied in full.")
                .await?;
        }
        Err(err) => {
            tracing::warn!(error = %err, "connecting with an API token failed");
            session.keep_token_form_open().await?;
            session
                .flash(
                    FlashKind::Error,
                    "We could not check that token with LaunchDarkly just now. Please try again.",
                )
                .await?;
        }
    }
    Ok(Redirect::to("/settings"))
}

#[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
pub async fn disconnect(
    State(state): State<AppState>,
    session: CustomerSession,
    WebForm(form): WebForm<CsrfOnly>,
) -> PageResult<Redirect> {
    let tenant = require_tenant(&state, &session).await?;
    session.verify_csrf(form.csrf_token.as_deref()).await?;
    let message = if connections::disconnect(&state, &tenant.id, "browser").await? {
        "Disconnected from LaunchDarkly. Stored tokens were deleted."
    } else {
        "There was no LaunchDarkly connection to remove."
    };
    session.flash(FlashKind::Info, message).await?;
    Ok(Redirect::to("/settings"))
}
