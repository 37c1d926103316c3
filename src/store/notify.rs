//! Postgres notifications: the channels replicas listen on, and the one
//! statement that sends on them (inside the sender's transaction, so a
//! notification goes out only if the change it announces commits).

use sqlx::PgExecutor;
use uuid::Uuid;

/// Wakes idle workers in every replica when a job is queued.
pub const JOBS_CHANNEL: &str = "ld_eaas_jobs";
/// Wakes the webhook senders when an event is written.
pub const OUTBOX_CHANNEL: &str = "ld_eaas_outbox";
/// Carries changed environment ids to every replica's waiters.
pub const ENVIRONMENTS_CHANNEL: &str = "ld_eaas_environments";

/// `pg_notify(channel, payload)`.
pub async fn send<'e>(db: impl PgExecutor<'e>, channel: &str, payload: &str) -> sqlx::Result<()> {
    sqlx::query!("select pg_notify($1, $2)", channel, payload)
        .execute(db)
        .await?;
    Ok(())
}

/// Wakes whoever waits for environment `id` (the payload is its id).
pub async fn environment_changed<'e>(db: impl PgExecutor<'e>, id: Uuid) -> sqlx::Result<()> {
    send(db, ENVIRONMENTS_CHANNEL, &id.to_string()).await
}
