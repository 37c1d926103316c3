//! Opening the stored credential, refreshing it before it expires and once
//! after a 401, single-flight per connection (see the module above).

use chrono::Duration;
use serde_json::json;

use super::{ConnectionError, TenantCredential};
use crate::app::AppState;
use crate::audit::{AuditAction, event as audit_event};
use crate::crypto::SealedColumn;
use crate::ids::TenantId;
use crate::launchdarkly::{Credential, LdError, OAuthError, RequestAuth};
use crate::store::audit;
use crate::store::connections::{self, AuthKind, Connection, ConnectionStatus};
use crate::store::outbox;

/// Refresh this long before the access token's announced expiry.
const REFRESH_MARGIN: Duration = Duration::seconds(60);

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
    let cache = &state.lifecycle.tenants;
    let conn = match cache.connection(tenant) {
        Some(conn) => conn,
        None => {
            let epoch = cache.epoch();
            let conn = connections::get(&state.db, tenant)
                .await?
                .ok_or(ConnectionError::NotConnected)?;
            cache.remember_connection(tenant, &conn, epoch);
            conn
        }
    };
    if conn.status == ConnectionStatus::NeedsReconnect {
        return Err(ConnectionError::NeedsReconnect);
    }
    let expiring = conn.auth_kind == AuthKind::OAuth
        && conn
            .access_expires_at
            .is_some_and(|at| at <= state.now() + REFRESH_MARGIN);
    if expiring {
        let refreshed = refresh(state, tenant, conn.token_version).await;
        state.lifecycle.tenants.evict(tenant.as_str());
        return refreshed;
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
    // What this replica remembered is what LaunchDarkly just refused.
    state.lifecycle.tenants.evict(tenant.as_str());
    let refreshed = refresh_or_give_up(state, tenant, stale).await;
    state.lifecycle.tenants.evict(tenant.as_str());
    refreshed
}

async fn refresh_or_give_up(
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
            let access = keyring.seal(tenant, SealedColumn::AccessToken, &tokens.access_token)?;
            let refresh = tokens
                .refresh_token
                .as_ref()
                .map(|r| keyring.seal(tenant, SealedColumn::RefreshToken, r))
                .transpose()?;
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
        let mut event = audit_event("system", AuditAction::ConnectionNeedsReconnect);
        event.details = json!({ "reason": reason });
        audit::record(&mut **tx, tenant, state.now(), event).await?;
        if state.config.webhook.is_some() {
            let data = json!({ "tenant_id": tenant, "reason": reason });
            outbox::insert(tx, tenant, "connection.needs_reconnect", &data, state.now()).await?;
        }
    }
    Ok(())
}
