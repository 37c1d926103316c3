//! Postgres notifications: the channels replicas listen on, and the one
//! statement that sends on them (inside the sender's transaction, so a
//! notification goes out only if the change it announces commits).

use sqlx::PgExecutor;
use uuid::Uuid;

use super::environments::{EnvironmentRow, Status};

/// Wakes idle workers in every replica when a job is queued.
pub const JOBS_CHANNEL: &str = "ld_eaas_jobs";
/// Wakes the webhook senders when an event is written.
pub const OUTBOX_CHANNEL: &str = "ld_eaas_outbox";
/// Carries changed environment ids to every replica's waiters.
pub const ENVIRONMENTS_CHANNEL: &str = "ld_eaas_environments";
/// Carries the id of a tenant whose row, connection or settings changed, so
/// every replica drops it from its cache. Sent by triggers (migration 0008).
pub const TENANTS_CHANNEL: &str = "ld_eaas_tenants";
/// Carries the id of an API key that was revoked or deleted, so every
/// replica drops it from its cache. Sent by a trigger on `api_keys`
/// (migration 0004), whatever path changed the row.
pub const API_KEYS_CHANNEL: &str = "ld_eaas_api_keys";

/// `pg_notify(channel, payload)`.
pub async fn send<'e>(db: impl PgExecutor<'e>, channel: &str, payload: &str) -> sqlx::Result<()> {
    sqlx::query!("select pg_notify($1, $2)", channel, payload)
        .execute(db)
        .await?;
    Ok(())
}

/// The payload announcing an environment's change on [`ENVIRONMENTS_CHANNEL`]:
/// `<id> <revision> <status>`, so a waiter that already knows that revision
/// and status need not read the row.
pub fn environment_notice(row: &EnvironmentRow) -> String {
    notice_of(row.id, row.revision, row.status)
}

/// [`environment_notice`] of a row at `revision` and `status`, for a
/// statement that sends it in the same breath as the change (so before the
/// row is read back). The single-statement DELETE builds the same text in
/// SQL (`store::environments::mark_absent_requested`).
pub fn notice_of(id: Uuid, revision: i32, status: Status) -> String {
    format!("{id} {revision} {}", status.as_str())
}

/// Reads a payload on [`ENVIRONMENTS_CHANNEL`]: the environment's id, and
/// its revision and status when the payload says them.
pub fn parse_environment_notice(payload: &str) -> Option<(Uuid, Option<(i32, Status)>)> {
    let mut parts = payload.split(' ');
    let id = Uuid::parse_str(parts.next()?).ok()?;
    let now = match (parts.next(), parts.next(), parts.next()) {
        (Some(revision), Some(status), None) => revision.parse().ok().zip(Status::parse(status)),
        _ => None,
    };
    Some((id, now))
}

/// Wakes whoever waits for environment `id` (the payload is only its id).
pub async fn environment_changed<'e>(db: impl PgExecutor<'e>, id: Uuid) -> sqlx::Result<()> {
    send(db, ENVIRONMENTS_CHANNEL, &id.to_string()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_environment_notice_names_the_id_and_when_it_says_so_the_revision_and_status() {
        let id = Uuid::new_v4();
        assert_eq!(
            parse_environment_notice(&format!("{id} 3 ready")),
            Some((id, Some((3, Status::Ready))))
        );
        // Only the id (a recreate's old generation): a waiter must read.
        assert_eq!(parse_environment_notice(&id.to_string()), Some((id, None)));
        for unclear in [
            format!("{id} 3"),
            format!("{id} x ready"),
            format!("{id} 3 sleeping"),
            format!("{id} 3 ready extra"),
        ] {
            assert_eq!(
                parse_environment_notice(&unclear),
                Some((id, None)),
                "{unclear}"
            );
        }
        assert_eq!(parse_environment_notice("not-a-uuid 1 ready"), None);
    }
}
