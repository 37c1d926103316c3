//! The tenant's LaunchDarkly connection. Token columns hold sealed values
//! only (see `crypto`); callers seal before writing and open after reading.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, Postgres, Transaction};

use crate::ids::TenantId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    #[sqlx(rename = "oauth")]
    #[serde(rename = "oauth")]
    OAuth,
    ApiToken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Connected,
    NeedsReconnect,
}

/// A stored connection. `access_token` / `refresh_token` are sealed strings.
#[derive(Clone)]
pub struct Connection {
    pub tenant_id: TenantId,
    pub auth_kind: AuthKind,
    pub status: ConnectionStatus,
    pub account_id: String,
    pub account_label: Option<String>,
    pub scope: Option<String>,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub access_expires_at: Option<DateTime<Utc>>,
    pub token_version: i64,
    pub connected_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("tenant_id", &self.tenant_id)
            .field("auth_kind", &self.auth_kind)
            .field("status", &self.status)
            .field("account_id", &self.account_id)
            .field("token_version", &self.token_version)
            .finish_non_exhaustive()
    }
}

/// What may be shown about a connection: never a token.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionSummary {
    pub status: ConnectionStatus,
    pub auth_kind: AuthKind,
    pub account_id: String,
    pub account_label: Option<String>,
    pub scope: Option<String>,
    pub access_expires_at: Option<DateTime<Utc>>,
    pub connected_at: DateTime<Utc>,
}

impl From<&Connection> for ConnectionSummary {
    fn from(c: &Connection) -> Self {
        Self {
            status: c.status,
            auth_kind: c.auth_kind,
            account_id: c.account_id.clone(),
            account_label: c.account_label.clone(),
            scope: c.scope.clone(),
            access_expires_at: c.access_expires_at,
            connected_at: c.connected_at,
        }
    }
}

/// A connection to store: tokens already sealed.
pub struct NewConnection<'a> {
    pub auth_kind: AuthKind,
    pub account_id: &'a str,
    pub account_label: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub access_token: &'a str,
    pub refresh_token: Option<&'a str>,
    pub access_expires_at: Option<DateTime<Utc>>,
}

pub async fn get<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
) -> sqlx::Result<Option<Connection>> {
    sqlx::query_as!(
        Connection,
        r#"select tenant_id as "tenant_id: TenantId", auth_kind as "auth_kind: AuthKind",
                  status as "status: ConnectionStatus", account_id, account_label, scope, access_token,
                  refresh_token, access_expires_at as "access_expires_at: _", token_version,
                  connected_at as "connected_at: _", updated_at as "updated_at: _"
             from connections where tenant_id = $1"#,
        tenant.as_str(),
    )
    .fetch_optional(db)
    .await
}

/// Locks the row for a token refresh: other replicas wait here, then see the
/// new `token_version` and skip their own refresh.
pub async fn get_for_update(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
) -> sqlx::Result<Option<Connection>> {
    sqlx::query_as!(
        Connection,
        r#"select tenant_id as "tenant_id: TenantId", auth_kind as "auth_kind: AuthKind",
                  status as "status: ConnectionStatus", account_id, account_label, scope, access_token,
                  refresh_token, access_expires_at as "access_expires_at: _", token_version,
                  connected_at as "connected_at: _", updated_at as "updated_at: _"
             from connections where tenant_id = $1 for update"#,
        tenant.as_str(),
    )
    .fetch_optional(&mut **tx)
    .await
}

/// Stores a (re)connection, replacing whatever was there.
pub async fn save<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
    new: &NewConnection<'_>,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into connections as c (tenant_id, auth_kind, status, account_id, account_label, scope,
                                       access_token, refresh_token, access_expires_at, token_version,
                                       connected_at, updated_at)
         values ($1, $2, 'connected', $3, $4, $5, $6, $7, $8, nextval('connection_token_versions'), $9, $9)
         on conflict (tenant_id) do update set
             auth_kind = excluded.auth_kind, status = 'connected', account_id = excluded.account_id,
             account_label = excluded.account_label, scope = excluded.scope,
             access_token = excluded.access_token, refresh_token = excluded.refresh_token,
             access_expires_at = excluded.access_expires_at,
             token_version = nextval('connection_token_versions'),
             connected_at = excluded.connected_at, updated_at = excluded.updated_at",
        tenant.as_str(),
        new.auth_kind as AuthKind,
        new.account_id,
        new.account_label,
        new.scope,
        new.access_token,
        new.refresh_token,
        new.access_expires_at as Option<DateTime<Utc>>,
        now as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Stores refreshed tokens. A `None` refresh token keeps the old one (the
/// server did not rotate it). Returns the new token version.
pub async fn update_tokens<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
    access_token: &str,
    refresh_token: Option<&str>,
    access_expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        "update connections set access_token = $2, refresh_token = coalesce($3, refresh_token),
                access_expires_at = $4, token_version = nextval('connection_token_versions'),
                status = 'connected', updated_at = $5
          where tenant_id = $1
         returning token_version",
        tenant.as_str(),
        access_token,
        refresh_token,
        access_expires_at as Option<DateTime<Utc>>,
        now as DateTime<Utc>,
    )
    .fetch_one(db)
    .await
}

/// Returns true when this call changed the status (so the caller audits and
/// announces it once).
pub async fn mark_needs_reconnect<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update connections set status = 'needs_reconnect', updated_at = $2
          where tenant_id = $1 and status <> 'needs_reconnect'",
        tenant.as_str(),
        now as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Forgets the connection; returns it so the caller can revoke upstream.
pub async fn delete<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
) -> sqlx::Result<Option<Connection>> {
    sqlx::query_as!(
        Connection,
        r#"delete from connections where tenant_id = $1
           returning tenant_id as "tenant_id: TenantId", auth_kind as "auth_kind: AuthKind",
                  status as "status: ConnectionStatus", account_id, account_label, scope, access_token,
                  refresh_token, access_expires_at as "access_expires_at: _", token_version,
                  connected_at as "connected_at: _", updated_at as "updated_at: _""#,
        tenant.as_str(),
    )
    .fetch_optional(db)
    .await
}
