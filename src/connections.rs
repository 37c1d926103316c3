//! A tenant's LaunchDarkly credential, ready to use: opened from its sealed
//! form, refreshed before it expires, and refreshed once after a 401.
//!
//! Refreshing is single-flight per connection across replicas: within a
//! process a per-tenant mutex keeps concurrent callers from queueing on the
//! database, and across processes the connection row is locked `FOR UPDATE`
//! while the refresh call is made. Whoever gets the lock second sees a new
//! `token_version` and uses the fresh token instead of refreshing again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Duration;
use secrecy::SecretString;
use serde_json::json;

use crate::crypto::SealedColumn;
use crate::error::AppError;
use crate::ids::TenantId;
use crate::launchdarkly::{Credential, LdError, OAuthError, RequestAuth, TokenHint, TokenSet};
use crate::startup::AppState;
use crate::store::audit::{self, NewAuditEvent};
use crate::store::connections::{self, AuthKind, Connection, ConnectionStatus};
use crate::store::outbox;

/// Refresh this long before the access token's announced expiry.
const REFRESH_MARGIN: Duration = Duration::seconds(60);

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("this tenant has not connected a LaunchDarkly account")]
    NotConnected,
    #[error("the LaunchDarkly connection must be renewed: the customer needs to reconnect")]
    NeedsReconnect,
    #[error("LaunchDarkly: {0}")]
    Upstream(#[from] LdError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ConnectionError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(anyhow::Error::new(err).context("database"))
    }
}

impl From<ConnectionError> for AppError {
    fn from(err: ConnectionError) -> Self {
        match err {
            ConnectionError::NotConnected => AppError::conflict("not_connected", err.to_string()),
            ConnectionError::NeedsReconnect => {
                AppError::conflict("needs_reconnect", err.to_string())
            }
            ConnectionError::Upstream(e) => upstream_error(e),
            ConnectionError::Internal(e) => AppError::Internal(e),
        }
    }
}

/// How a LaunchDarkly failure is told to our own callers.
pub fn upstream_error(err: LdError) -> AppError {
    use axum::http::StatusCode;
    // Transport details (addresses, TLS) stay in the log; callers get a
    // fixed sentence, or LaunchDarkly's own explanation where it helps.
    tracing::warn!(error = %err, "LaunchDarkly call failed");
    let (status, code, message) = match &err {
        LdError::RateLimited { reset_at } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "launchdarkly_rate_limited",
            format!("LaunchDarkly is rate-limiting this account until {reset_at}; try again then"),
        ),
        LdError::Timeout | LdError::Transport { .. } | LdError::Upstream { .. } => (
            StatusCode::BAD_GATEWAY,
            "launchdarkly_unavailable",
            "LaunchDarkly could not be reached or failed; try again shortly".to_owned(),
        ),
        LdError::Unauthorized => (
            StatusCode::CONFLICT,
            "needs_reconnect",
            "LaunchDarkly no longer accepts this tenant's credentials; the customer needs to reconnect".to_owned(),
        ),
        LdError::Forbidden { message } => (
            StatusCode::FORBIDDEN,
            "launchdarkly_forbidden",
            format!("LaunchDarkly refused: the connected token lacks the permission ({message})"),
        ),
        LdError::InvalidRequest { message } | LdError::Conflict { message } => (
            StatusCode::BAD_GATEWAY,
            "launchdarkly_error",
            format!("LaunchDarkly refused the request: {message}"),
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            "launchdarkly_error",
            "LaunchDarkly gave an unexpected answer".to_owned(),
        ),
    };
    AppError::Upstream {
        status,
        code,
        message,
    }
}

/// A usable credential and the LaunchDarkly account it acts for.
#[derive(Debug, Clone)]
pub struct TenantCredential {
    pub auth: RequestAuth,
    pub account_id: String,
    pub token_version: i64,
}

/// Per-tenant in-process locks for token refresh.
#[derive(Debug, Default)]
pub struct RefreshLocks {
    locks: Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<()>>>>,
}

impl RefreshLocks {
    fn for_tenant(&self, tenant: &TenantId) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Drop locks nobody holds so the map does not grow with every tenant ever seen.
        if map.len() > 1024 {
            map.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        map.entry(tenant.clone()).or_default().clone()
    }
}

fn open_credential(
    state: &AppState,
    conn: &Connection,
) -> Result<TenantCredential, ConnectionError> {
    let token = state
        .config
        .keyring
        .open(
            &conn.tenant_id,
            SealedColumn::AccessToken,
            &conn.access_token,
        )
        .map_err(|e| anyhow::anyhow!("opening the stored access token: {e}"))?;
    let credential = match conn.auth_kind {
        AuthKind::OAuth => Credential::OAuth(token),
        AuthKind::ApiToken => Credential::ApiToken(token),
    };
    Ok(TenantCredential {
        auth: RequestAuth::new(credential, Some(conn.account_id.clone())),
        account_id: conn.account_id.clone(),
        token_version: conn.token_version,
    })
}

/// The tenant's credential, refreshing an OAuth token that is about to expire.
pub async fn credential(
    state: &AppState,
    tenant: &TenantId,
) -> Result<TenantCredential, ConnectionError> {
    let conn = connections::get(&state.db, tenant)
        .await?
        .ok_or(ConnectionError::NotConnected)?;
    if conn.status == ConnectionStatus::NeedsReconnect {
        return Err(ConnectionError::NeedsReconnect);
    }
    let expiring = conn.auth_kind == AuthKind::OAuth
        && conn
            .access_expires_at
            .is_some_and(|at| at <= state.now() + REFRESH_MARGIN);
    if expiring {
        return refresh(state, tenant, conn.token_version).await;
    }
    open_credential(state, &conn)
}

/// After LaunchDarkly answered 401 to `stale`: refresh once (OAuth) or mark
/// the connection as needing a reconnect (an API token that stopped working).
pub async fn refresh_after_unauthorized(
    state: &AppState,
    tenant: &TenantId,
    stale: &TenantCredential,
) -> Result<TenantCredential, ConnectionError> {
    match stale.auth.credential {
        Credential::OAuth(_) => refresh(state, tenant, stale.token_version).await,
        Credential::ApiToken(_) => {
            let mut tx = state.db.begin().await?;
            let current = connections::get_for_update(&mut tx, tenant)
                .await?
                .ok_or(ConnectionError::NotConnected)?;
            if current.token_version != stale.token_version {
                // Reconnected meanwhile: use the new token.
                tx.commit().await?;
                return open_credential(state, &current);
            }
            needs_reconnect(
                state,
                &mut tx,
                tenant,
                "LaunchDarkly no longer accepts the API access token",
            )
            .await?;
            tx.commit().await?;
            Err(ConnectionError::NeedsReconnect)
        }
    }
}

async fn refresh(
    state: &AppState,
    tenant: &TenantId,
    seen_version: i64,
) -> Result<TenantCredential, ConnectionError> {
    let lock = state.refresh_locks.for_tenant(tenant);
    let _held = lock.lock().await;
    let mut tx = state.db.begin().await?;
    let conn = connections::get_for_update(&mut tx, tenant)
        .await?
        .ok_or(ConnectionError::NotConnected)?;
    if conn.status == ConnectionStatus::NeedsReconnect {
        return Err(ConnectionError::NeedsReconnect);
    }
    if conn.token_version != seen_version || conn.auth_kind != AuthKind::OAuth {
        // Another caller (here or in another replica) refreshed already, or
        // the customer reconnected meanwhile: use what is stored now.
        tx.commit().await?;
        return open_credential(state, &conn);
    }
    let Some(oauth) = state.oauth.as_ref() else {
        return Err(ConnectionError::Internal(anyhow::anyhow!(
            "an OAuth connection needs a refresh but LD_EAAS_OAUTH_CLIENT_ID is not configured"
        )));
    };
    let Some(sealed_refresh) = conn.refresh_token.as_deref() else {
        needs_reconnect(state, &mut tx, tenant, "LaunchDarkly gave no refresh token").await?;
        tx.commit().await?;
        return Err(ConnectionError::NeedsReconnect);
    };
    let refresh_token = state
        .config
        .keyring
        .open(tenant, SealedColumn::RefreshToken, sealed_refresh)
        .map_err(|e| anyhow::anyhow!("opening the stored refresh token: {e}"))?;
    match oauth.refresh(&refresh_token).await {
        Ok(tokens) => {
            let keyring = &state.config.keyring;
            let access = keyring.seal(tenant, SealedColumn::AccessToken, &tokens.access_token);
            let refresh = tokens
                .refresh_token
                .as_ref()
                .map(|r| keyring.seal(tenant, SealedColumn::RefreshToken, r));
            let token_version = connections::update_tokens(
                &mut *tx,
                tenant,
                &access,
                refresh.as_deref(),
                tokens.expires_at,
                state.now(),
            )
            .await?;
            tx.commit().await?;
            state.metrics.inc(
                "ld_eaas_oauth_refreshes_total",
                "OAuth token refreshes",
                &[("outcome", "ok")],
            );
            tracing::info!(tenant_id = %tenant, "refreshed the LaunchDarkly access token");
            Ok(TenantCredential {
                auth: RequestAuth::new(
                    Credential::OAuth(tokens.access_token),
                    Some(conn.account_id.clone()),
                ),
                account_id: conn.account_id,
                token_version,
            })
        }
        Err(OAuthError::InvalidGrant) => {
            state.metrics.inc(
                "ld_eaas_oauth_refreshes_total",
                "OAuth token refreshes",
                &[("outcome", "invalid_grant")],
            );
            needs_reconnect(
                state,
                &mut tx,
                tenant,
                "LaunchDarkly refused the refresh token (invalid_grant)",
            )
            .await?;
            tx.commit().await?;
            Err(ConnectionError::NeedsReconnect)
        }
        Err(err) => {
            state.metrics.inc(
                "ld_eaas_oauth_refreshes_total",
                "OAuth token refreshes",
                &[("outcome", "error")],
            );
            tracing::warn!(tenant_id = %tenant, error = %err, "refreshing the access token failed");
            Err(refresh_failure(err))
        }
    }
}

/// A refresh that failed for a passing reason is an upstream error the
/// caller retries (after the reset time, for a 429); others are ours.
fn refresh_failure(err: OAuthError) -> ConnectionError {
    match err {
        OAuthError::RateLimited { reset_at } => LdError::RateLimited { reset_at }.into(),
        OAuthError::Upstream { status } => LdError::Upstream { status }.into(),
        OAuthError::Timeout => LdError::Timeout.into(),
        OAuthError::Transport { message } => LdError::Transport { message }.into(),
        other => ConnectionError::Internal(anyhow::anyhow!(
            "refreshing the access token failed: {other}"
        )),
    }
}

/// Marks the connection, audits it and announces it (once).
async fn needs_reconnect(
    state: &AppState,
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    tenant: &TenantId,
    reason: &str,
) -> Result<(), ConnectionError> {
    if connections::mark_needs_reconnect(&mut **tx, tenant, state.now()).await? {
        tracing::warn!(tenant_id = %tenant, reason, "LaunchDarkly connection needs a reconnect");
        let mut event = NewAuditEvent::new("system", "connection.needs_reconnect");
        event.details = json!({ "reason": reason });
        audit::record(&mut **tx, tenant, state.now(), event).await?;
        if state.config.webhook.is_some() {
            let data = json!({ "tenant_id": tenant, "reason": reason });
            outbox::insert(tx, tenant, "connection.needs_reconnect", &data, state.now()).await?;
        }
    }
    Ok(())
}

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
    let mut event = NewAuditEvent::new(actor, "connection.disconnected");
    event.details = json!({ "auth_kind": conn.auth_kind, "account_id": conn.account_id });
    audit::record(&mut *tx, tenant, state.now(), event).await?;
    tx.commit().await?;
    if conn.auth_kind == AuthKind::OAuth {
        revoke_upstream(state, &conn).await;
    }
    Ok(true)
}

/// Best-effort revocation of a stored OAuth grant.
pub async fn revoke_upstream(state: &AppState, conn: &Connection) {
    let Some(oauth) = state.oauth.as_ref() else {
        return;
    };
    let keyring = &state.config.keyring;
    let sealed = [
        (
            SealedColumn::RefreshToken,
            TokenHint::RefreshToken,
            conn.refresh_token.as_deref(),
        ),
        (
            SealedColumn::AccessToken,
            TokenHint::AccessToken,
            Some(conn.access_token.as_str()),
        ),
    ];
    for (column, hint, value) in sealed {
        let Some(value) = value else { continue };
        let Ok(token) = keyring.open(&conn.tenant_id, column, value) else {
            continue;
        };
        if let Err(err) = oauth.revoke(&token, hint).await {
            tracing::warn!(tenant_id = %conn.tenant_id, error = %err, "revoking the OAuth token upstream failed");
        }
    }
}

/// Why a new connection was not stored.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The token can only read: it could never create or delete an environment.
    #[error("this LaunchDarkly token can only read; connect with a token or grant that can write")]
    ReadOnly,
    #[error(transparent)]
    Connection(#[from] ConnectionError),
}

impl From<LdError> for ConnectError {
    fn from(err: LdError) -> Self {
        Self::Connection(err.into())
    }
}

impl From<sqlx::Error> for ConnectError {
    fn from(err: sqlx::Error) -> Self {
        Self::Connection(err.into())
    }
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
    let access = keyring.seal(tenant, SealedColumn::AccessToken, &new.access_token);
    let refresh = new
        .refresh_token
        .as_ref()
        .map(|r| keyring.seal(tenant, SealedColumn::RefreshToken, r));
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
    let mut event = NewAuditEvent::new(actor, "connection.connected");
    event.details = json!({ "auth_kind": new.auth_kind, "account_id": account_id });
    audit::record(&mut *tx, tenant, state.now(), event).await?;
    tx.commit().await?;
    // A replaced OAuth grant is no longer needed.
    if let Some(previous) = previous.filter(|p| p.auth_kind == AuthKind::OAuth) {
        revoke_upstream(state, &previous).await;
    }
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
    is_send(credential(state, tenant));
}
