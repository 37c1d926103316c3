//! Outgoing webhooks waiting to be delivered. Rows are written in the same
//! transaction as the change they announce; senders take a lease by pushing
//! `next_attempt_at` forward before they call out.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::notify;
use crate::ids::TenantId;

/// Wakes the webhook senders when an event is written.
pub use super::notify::OUTBOX_CHANNEL;

#[derive(Debug, Clone)]
pub struct OutboxEvent {
    pub id: Uuid,
    pub tenant_id: String,
    pub event_type: String,
    pub payload: Value,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

pub async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    event_type: &str,
    payload: &Value,
    now: DateTime<Utc>,
) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query!(
        "insert into webhook_outbox (id, tenant_id, event_type, payload, next_attempt_at, created_at)
         values ($1, $2, $3, $4, $5, $5)",
        id,
        tenant.as_str(),
        event_type,
        payload,
        now as DateTime<Utc>,
    )
    .execute(&mut **tx)
    .await?;
    notify::send(&mut **tx, OUTBOX_CHANNEL, "").await?;
    Ok(id)
}

/// Takes the oldest due event, leasing it until `lease_until`.
pub async fn claim_due(
    db: &PgPool,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> sqlx::Result<Option<OutboxEvent>> {
    sqlx::query_as!(
        OutboxEvent,
        r#"update webhook_outbox set next_attempt_at = $2, attempts = attempts + 1
          where id = (select id from webhook_outbox
                       where delivered_at is null and abandoned_at is null and next_attempt_at <= $1
                       order by next_attempt_at
                       limit 1
                       for update skip locked)
          returning id, tenant_id, event_type, payload, attempts, created_at as "created_at: _""#,
        now as DateTime<Utc>,
        lease_until as DateTime<Utc>,
    )
    .fetch_optional(db)
    .await
}

pub async fn mark_delivered<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update webhook_outbox set delivered_at = $2, last_error = null where id = $1",
        id,
        now as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn schedule_retry<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    next_attempt_at: DateTime<Utc>,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update webhook_outbox set next_attempt_at = $2, last_error = $3 where id = $1",
        id,
        next_attempt_at as DateTime<Utc>,
        error,
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn abandon<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    error: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update webhook_outbox set abandoned_at = $2, last_error = $3 where id = $1",
        id,
        now as DateTime<Utc>,
        error,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets delivered events older than `before`.
pub async fn purge_delivered(db: &PgPool, before: DateTime<Utc>) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "delete from webhook_outbox where delivered_at is not null and delivered_at < $1",
        before as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
