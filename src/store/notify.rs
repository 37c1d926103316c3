//! Postgres notifications: the channels replicas listen on, and the
//! statements that send on them: inside the sender's transaction (so a
//! notification goes out only if the change it announces commits), or, for
//! the API's one-statement writes, in a statement of its own right after
//! the commit ([`announce_committed`]).
//!
//! Postgres serialises every committing transaction that sent a
//! notification on one lock, held until its commit is flushed to disk. A
//! write that must be durable and notifies holds that lock through its
//! disk flush, and every other notifying commit queues behind it: at 340
//! lifecycles a second, hundreds of commits a second waited over 5 ms for
//! it. So the API's durable writes commit without notifying, and their
//! notifications go out in a statement whose commit does not wait for the
//! disk (nothing durable rides on it: a notification is a hint, and every
//! waiter reads the row again when in doubt and polls without one).

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

/// Announces changes that have just committed: each of `notices` on
/// [`ENVIRONMENTS_CHANNEL`] and, with `wake_workers`, the wake-up of every
/// replica's workers, in one statement (`app::announcements` gathers them).
/// Its own commit is asynchronous (`synchronous_commit` off for this one
/// transaction), so it holds the notification lock only briefly (see the
/// module's doc). Lost only if Postgres crashes in the next fraction of a
/// second, which the waiters' and workers' polling covers.
pub async fn announce_committed<'e>(
    db: impl PgExecutor<'e>,
    notices: &[String],
    wake_workers: bool,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"select set_config('synchronous_commit', 'off', true) as commit_async,
                  (select count(pg_notify($1, notice)) from unnest($2::text[]) as notice) as "notices!",
                  case when $3 then pg_notify($4, '') end as wake"#,
        ENVIRONMENTS_CHANNEL,
        notices,
        wake_workers,
        JOBS_CHANNEL,
    )
    .fetch_one(db)
    .await?;
    Ok(())
}

/// The payload announcing an environment's change on [`ENVIRONMENTS_CHANNEL`]:
/// `<id> <revision> <status>`, so a waiter that already knows that revision
/// and status need not read the row.
pub fn environment_notice(row: &EnvironmentRow) -> String {
    format!("{} {} {}", row.id, row.revision, row.status.as_str())
}

/// [`environment_notice`] for a worker's outcome, sent by the statement
/// that writes it (`store::environments::settle`), so before the row is
/// read back; it also names the replica whose worker wrote it (`<id>
/// <revision> <status> <replica>`): that replica's waiting calls are handed
/// the row by the worker itself right after
/// (`app::Runtime::environment_settled`), so the notice tells them nothing
/// they must read the row for.
pub fn outcome_notice(id: Uuid, revision: i32, status: Status, replica: &str) -> String {
    format!("{id} {revision} {} {replica}", status.as_str())
}

/// What a payload on [`ENVIRONMENTS_CHANNEL`] says: the environment's id,
/// its revision and status when the payload says them, and the replica
/// whose worker wrote it when it is an outcome's ([`outcome_notice`]).
pub type EnvironmentNotice<'a> = (Uuid, Option<(i32, Status)>, Option<&'a str>);

/// Reads a payload on [`ENVIRONMENTS_CHANNEL`] ([`EnvironmentNotice`]).
pub fn parse_environment_notice(payload: &str) -> Option<EnvironmentNotice<'_>> {
    let mut parts = payload.split(' ');
    let id = Uuid::parse_str(parts.next()?).ok()?;
    let said = |revision: &str, status| revision.parse().ok().zip(Status::parse(status));
    Some(
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(revision), Some(status), None, None) => (id, said(revision, status), None),
            (Some(revision), Some(status), Some(by), None) => match said(revision, status) {
                Some(now) => (id, Some(now), Some(by)),
                None => (id, None, None),
            },
            _ => (id, None, None),
        },
    )
}

/// Wakes whoever waits for environment `id` (the payload is only its id).
pub async fn environment_changed<'e>(db: impl PgExecutor<'e>, id: Uuid) -> sqlx::Result<()> {
    send(db, ENVIRONMENTS_CHANNEL, &id.to_string()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_environment_notice_names_the_id_and_when_it_says_so_the_revision_status_and_writer() {
        let id = Uuid::new_v4();
        assert_eq!(
            parse_environment_notice(&format!("{id} 3 ready")),
            Some((id, Some((3, Status::Ready)), None))
        );
        let outcome = outcome_notice(id, 3, Status::Ready, "replica-1");
        assert_eq!(
            parse_environment_notice(&outcome),
            Some((id, Some((3, Status::Ready)), Some("replica-1")))
        );
        // Only the id (a recreate's old generation): a waiter must read.
        assert_eq!(
            parse_environment_notice(&id.to_string()),
            Some((id, None, None))
        );
        for unclear in [
            format!("{id} 3"),
            format!("{id} x ready"),
            format!("{id} 3 sleeping"),
            format!("{id} 3 sleeping replica-1"),
            format!("{id} 3 ready replica-1 extra"),
        ] {
            assert_eq!(
                parse_environment_notice(&unclear),
                Some((id, None, None)),
                "{unclear}"
            );
        }
        assert_eq!(parse_environment_notice("not-a-uuid 1 ready"), None);
    }
}
