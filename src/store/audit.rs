//! The audit log: who did what to which environment, per tenant. Never holds
//! a secret: callers pass keys, ids and statuses only.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgExecutor;

use crate::ids::TenantId;

#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub ephemeral_id: Option<String>,
    pub environment_key: Option<String>,
    pub details: Value,
}

/// One audit row. `actor` is e.g. `api:<key name>`, `browser`, `system`.
#[derive(Debug, Clone)]
pub struct NewAuditEvent<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub ephemeral_id: Option<&'a str>,
    pub environment_key: Option<&'a str>,
    pub details: Value,
}

impl<'a> NewAuditEvent<'a> {
    pub fn new(actor: &'a str, action: &'a str) -> Self {
        Self {
            actor,
            action,
            ephemeral_id: None,
            environment_key: None,
            details: Value::Object(Default::default()),
        }
    }
}

pub async fn record<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
    now: DateTime<Utc>,
    event: NewAuditEvent<'_>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into audit_events (tenant_id, occurred_at, actor, action, ephemeral_id, environment_key, details)
         values ($1, $2, $3, $4, $5, $6, $7)",
        tenant.as_str(),
        now as DateTime<Utc>,
        event.actor,
        event.action,
        event.ephemeral_id,
        event.environment_key,
        event.details,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// [`record`], and `pg_notify(channel, payload)` in the same statement (one
/// round trip for what every environment change leaves behind).
pub async fn record_and_notify<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
    now: DateTime<Utc>,
    event: NewAuditEvent<'_>,
    channel: &str,
    payload: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "with recorded as (
             insert into audit_events (tenant_id, occurred_at, actor, action, ephemeral_id, environment_key, details)
             values ($1, $2, $3, $4, $5, $6, $7)
         )
         select pg_notify($8, $9)",
        tenant.as_str(),
        now as DateTime<Utc>,
        event.actor,
        event.action,
        event.ephemeral_id,
        event.environment_key,
        event.details,
        channel,
        payload,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Newest first; `before` is the id of the last row of the previous page.
pub async fn list<'e>(
    db: impl sqlx::PgExecutor<'e>,
    tenant: &TenantId,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<AuditEvent>> {
    sqlx::query_as!(
        AuditEvent,
        r#"select id, occurred_at as "occurred_at: _", actor, action, ephemeral_id, environment_key, details
             from audit_events
            where tenant_id = $1 and ($2::bigint is null or id < $2)
            order by id desc
            limit $3"#,
        tenant.as_str(),
        before,
        limit,
    )
    .fetch_all(db)
    .await
}
