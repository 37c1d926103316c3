//! Storing a new connection (after checking its token with LaunchDarkly)
//! and forgetting one.

use secrecy::SecretString;
use serde_json::json;

use super::credential;
use super::revoke::revoke_if_oauth;
use super::{ConnectError, ConnectionError};
use crate::app::AppState;
use crate::audit::{AuditAction, event as audit_event};
use crate::crypto::SealedColumn;
use crate::ids::TenantId;
use crate::launchdarkly::{Credential, RequestAuth, TokenSet};
use crate::store::audit;
use crate::store::connections::{self, AuthKind};

/// Forgets the tenant's tokens, revoking an OAuth grant upstream (best effort).
pub async fn disconnect(
    state: &AppState,
    tenant: &TenantId,
    actor: &str,
) -> Result<bool, ConnectionError> {
    let mut tx = state.db.begin().await?;
    let Some(conn) = connections::delete(&mut *tx, tenant).await? else {
        return Ok(false);
    };
    let mut event = audit_event(actor, AuditAction::ConnectionDisconnected);
    event.details = json!({ "auth_kind": conn.auth_kind, "account_id": conn.account_id });
    audit::record(&mut *tx, tenant, state.now(), event).await?;
    tx.commit().await?;
    state.lifecycle.tenants.evict(tenant.as_str());
    revoke_if_oauth(state, Some(&conn)).await;
    Ok(true)
}

/// What a new connection stores, from a token set or a pasted API token.
pub struct Connected {
    pub auth_kind: AuthKind,
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub scope: Option<String>,
}

impl Connected {
    pub fn from_oauth(tokens: TokenSet) -> Self {
        Self {
            auth_kind: AuthKind::OAuth,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_at: tokens.expires_at,
            scope: (!tokens.scopes.is_empty()).then(|| tokens.scopes.join(" ")),
        }
    }

    pub fn from_api_token(token: SecretString) -> Self {
        Self {
            auth_kind: AuthKind::ApiToken,
            access_token: token,
            refresh_token: None,
            expires_at: None,
            scope: None,
        }
    }
}

/// Checks the token with LaunchDarkly (caller identity), then seals and
/// stores it, replacing any previous connection.
pub async fn connect(
    state: &AppState,
    tenant: &TenantId,
    new: Connected,
    actor: &str,
) -> Result<(), ConnectError> {
    let probe = match new.auth_kind {
        AuthKind::OAuth => Credential::OAuth(new.access_token.clone()),
        AuthKind::ApiToken => Credential::ApiToken(new.access_token.clone()),
    };
    let identity = state
        .ld
        .caller_identity(&RequestAuth::new(probe, None))
        .await?;
    let account_id = identity.account_id.clone().ok_or_else(|| {
        ConnectionError::Internal(anyhow::anyhow!(
            "LaunchDarkly's caller identity has no account id"
        ))
    })?;
    // A reader token connects fine and then fails every create: refuse it now.
    let can_write = identity.scopes.is_empty()
        || identity
            .scopes
            .iter()
            .any(|scope| scope == "writer" || scope == "admin");
    if !can_write {
        return Err(ConnectError::ReadOnly);
    }
    // What the UI shows next to the account: the token's name, if it has one.
    let label = identity.token_name.clone();
    let scope = new
        .scope
        .clone()
        .or_else(|| (!identity.scopes.is_empty()).then(|| identity.scopes.join(" ")));
    let keyring = &state.config.keyring;
    let access = keyring.seal(tenant, SealedColumn::AccessToken, &new.access_token)?;
    let refresh = new
        .refresh_token
        .as_ref()
        .map(|r| keyring.seal(tenant, SealedColumn::RefreshToken, r))
        .transpose()?;
    let mut tx = state.db.begin().await?;
    let previous = connections::get_for_update(&mut tx, tenant).await?;
    connections::save(
        &mut *tx,
        tenant,
        &connections::NewConnection {
            auth_kind: new.auth_kind,
            account_id: &account_id,
            account_label: label.as_deref(),
            scope: scope.as_deref(),
            access_token: &access,
            refresh_token: refresh.as_deref(),
            access_expires_at: new.expires_at,
        },
        state.now(),
    )
    .await?;
    let mut event = audit_event(actor, AuditAction::ConnectionConnected);
    event.details = json!({ "auth_kind": new.auth_kind, "account_id": account_id });
    audit::record(&mut *tx, tenant, state.now(), event).await?;
    tx.commit().await?;
    state.lifecycle.tenants.evict(tenant.as_str());
    // A replaced OAuth grant is no longer needed.
    revoke_if_oauth(state, previous.as_ref()).await;
    Ok(())
}

/// Compile-time guard: these futures must be `Send` for axum handlers and
/// spawned workers (a closure-based HTTP client once broke that).
#[allow(dead_code)]
fn assert_futures_are_send(state: &AppState, tenant: &TenantId) {
    fn is_send<T: Send>(_: T) {}
    is_send(connect(
        state,
        tenant,
        Connected::from_api_token(SecretString::from(String::new())),
        "x",
    ));
    is_send(disconnect(state, tenant, "x"));
    is_send(credential::credential(state, tenant));
}
