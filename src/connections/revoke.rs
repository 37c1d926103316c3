//! Revoking an OAuth grant upstream: the one place tokens are revoked, for a
//! stored connection that is forgotten or replaced, and for a grant just
//! issued that could not be stored.

use secrecy::SecretString;

use crate::app::AppState;
use crate::crypto::SealedColumn;
use crate::launchdarkly::{LdOAuth, TokenHint};
use crate::store::connections::{AuthKind, Connection};

/// Best-effort revocation of a grant's tokens, refresh token first. A
/// failure is logged; there is nothing more the caller could do.
pub async fn revoke_tokens(
    oauth: &LdOAuth,
    access: Option<&SecretString>,
    refresh: Option<&SecretString>,
) {
    let tokens = [
        (TokenHint::RefreshToken, refresh),
        (TokenHint::AccessToken, access),
    ];
    for (hint, token) in tokens {
        let Some(token) = token else { continue };
        if let Err(err) = oauth.revoke(token, hint).await {
            tracing::warn!(error = %err, "revoking the OAuth token upstream failed");
        }
    }
}

/// Best-effort revocation of a stored OAuth grant.
pub async fn revoke_upstream(state: &AppState, conn: &Connection) {
    let Some(oauth) = state.oauth.as_ref() else {
        return;
    };
    let keyring = &state.config.keyring;
    let open = |column, sealed: Option<&str>| {
        let opened = keyring.open(&conn.tenant_id, column, sealed?);
        if let Err(err) = &opened {
            tracing::warn!(tenant_id = %conn.tenant_id, error = %err, "a stored OAuth token could not be opened to revoke it");
        }
        opened.ok()
    };
    let refresh = open(SealedColumn::RefreshToken, conn.refresh_token.as_deref());
    let access = open(SealedColumn::AccessToken, Some(conn.access_token.as_str()));
    revoke_tokens(oauth, access.as_ref(), refresh.as_ref()).await;
}

/// Revokes `conn`'s grant upstream if it is an OAuth one (API tokens are the
/// customer's to revoke in LaunchDarkly).
pub async fn revoke_if_oauth(state: &AppState, conn: Option<&Connection>) {
    if let Some(conn) = conn.filter(|c| c.auth_kind == AuthKind::OAuth) {
        revoke_upstream(state, conn).await;
    }
}
