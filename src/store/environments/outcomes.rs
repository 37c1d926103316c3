//! What the workers record on a generation: created, failed, deleted, or a
//! transient problem they are retrying past.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgExecutor, Postgres, Transaction};
use uuid::Uuid;

use super::{Desired, EnvironmentRow, FailureCode, SettledRow, Status};
use crate::ids::{EphemeralId, TenantId};
use crate::store::jobs::{Job, JobKind};
use crate::store::notify;

/// What LaunchDarkly gave back for a created (or adopted) environment. The
/// keys are sealed. The status becomes `ready` only if the generation is still
/// wanted; a generation deleted meanwhile keeps `deleting` but learns its id.
pub async fn record_created(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    id: Uuid,
    client_side_id: &str,
    sealed_sdk_key: &str,
    sealed_mobile_key: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<EnvironmentRow> {
    rows!(
        "update environments
            set client_side_id = $3, sdk_key = $4, mobile_key = $5,
                status = case desired when 'present' then 'ready' else status end, refused = false, failure_code = null,
                ready_at = case desired when 'present' then $6 else ready_at end,
                last_error = null, updated_at = $6
          where tenant_id = $1 and id = $2
          returning";
        "",
        tenant.as_str(),
        id,
        client_side_id,
        sealed_sdk_key,
        sealed_mobile_key,
        now as DateTime<Utc>,
    )
    .fetch_one(&mut **tx)
    .await
}

/// What the workers' one-statement outcome ([`settle`]) records.
#[derive(Debug, Clone, Copy)]
pub enum Settled<'a> {
    /// Created or adopted, as [`record_created`] records it (keys sealed).
    Created {
        client_side_id: &'a str,
        sealed_sdk_key: &'a str,
        sealed_mobile_key: &'a str,
    },
    /// Gone upstream, as [`mark_deleted`] records it.
    Deleted,
}

/// The job a worker holds, for [`settle`].
#[derive(Debug, Clone, Copy)]
pub struct HeldJob<'a> {
    pub id: Uuid,
    pub worker: &'a str,
}

/// The claim of the worker's next job that [`settle`] makes when it
/// settles the worker's job: the same as `jobs::claim` (a job whose lease
/// ran out first, then the oldest due job of a tenant below `per_tenant`
/// running jobs, the settled job not counted; tenant-wide jobs only when
/// `background`), under a lease until `until`.
#[derive(Debug, Clone, Copy)]
pub struct NextClaim {
    pub until: DateTime<Utc>,
    pub per_tenant: i64,
    pub background: bool,
}

/// The workers' common case, in one statement and no transaction: a
/// generation created or deleted as the row at `revision` asked, recorded as
/// [`record_created`] or [`mark_deleted`] would, its finished job deleted
/// (as `jobs::settle_held` does),
/// the audit row (`action`, `details`, as `system`) and the notification
/// (`notice`, the row's text after the change; see `notify::notice_of`).
/// Only if the row is still at `revision` (the vendor did not change their
/// mind meanwhile), the worker still holds the job's lease and, for a
/// delete, the tenant is not being offboarded (that needs its offboarding
/// job woken, under its lock). Otherwise `None`, nothing is written, and the
/// caller records the outcome in a transaction, which sorts out why.
///
/// Its commit does not wait for the disk (`synchronous_commit` off for this
/// transaction, set by `current` when it finds the row): it notifies, and a
/// notifying commit holds Postgres's notification lock until its flush
/// (`crate::store::notify`). Nothing is lost if Postgres crashes before the
/// flush: the job is then still queued, as the API's durable commit left
/// it, and runs again; LaunchDarkly's answer is the same (the create finds
/// our environment and adopts it, the delete finds it gone). See "What is
/// durable when" in `crate::store`.
///
/// With `next`, the same statement claims the worker's next job from the
/// queue (when it settled this one), as `jobs::claim` would right after:
/// a busy worker then makes one statement per job where it made two. It
/// comes back with the row.
///
/// Lock order (`crate::store`): `current` locks the environment row, and the
/// job's update reads `current` before it locks the job row. The next job's
/// row is taken with `skip locked`, never waited for, as every claim's is.
#[allow(clippy::too_many_arguments)]
pub async fn settle<'e>(
    db: impl sqlx::PgExecutor<'e>,
    tenant: &TenantId,
    seen: &EnvironmentRow,
    job: HeldJob<'_>,
    outcome: Settled<'_>,
    (action, details): (&str, &Value),
    notice: &str,
    now: DateTime<Utc>,
    next: Option<NextClaim>,
) -> sqlx::Result<Option<(EnvironmentRow, Option<Job>)>> {
    let (deleted, client_side_id, sdk, mobile) = match outcome {
        Settled::Created {
            client_side_id,
            sealed_sdk_key,
            sealed_mobile_key,
        } => (
            false,
            Some(client_side_id),
            Some(sealed_sdk_key),
            Some(sealed_mobile_key),
        ),
        Settled::Deleted => (true, None, None, None),
    };
    // One statement in two forms: with the claim of the next job (its
    // lease's end, the tenant limit and whether tenant-wide jobs may be
    // taken, $17 to $19), or with a `claimed` that claims nothing, so that
    // an outcome with nothing to claim does not plan and start the claim's
    // scans.
    macro_rules! settle_with {
        ($claimed:literal $(, $arg:expr)*) => {
            rows!(SettledRow =>
                "with current as (
                     select id from environments
                      where tenant_id = $1 and id = $2 and revision = $3
                        and not ($4 and exists (select 1 from tenants t where t.id = $1 and t.offboarding_at is not null))
                        and set_config('synchronous_commit', 'off', true) = 'off'
                      for update
                 ), held as (
                     delete from jobs
                      where id = $6 and locked_by = $7 and state = 'running' and exists (select 1 from current)
                     returning id
                 ), recorded as (
                     insert into audit_events (tenant_id, occurred_at, actor, action, ephemeral_id, environment_key, details)
                     select $1, $5, 'system', $8, $9, $10, $11 from held
                     returning pg_notify($12, $13)
                 ), "
                $claimed
                "update environments
                    set status = case when $4 then 'deleted' when desired = 'present' then 'ready' else status end,
                        client_side_id = case when $4 then client_side_id else $14 end,
                        sdk_key = $15, mobile_key = $16,
                        ready_at = case when not $4 and desired = 'present' then $5 else ready_at end,
                        refused = false, failure_code = null, last_error = null, updated_at = $5
                   from (values (1)) as one (x) left join claimed on true
                  where tenant_id = $1 and id = $2 and exists (select 1 from held)
                  returning";
                r#", next_id as "next_id?", next_tenant_id as "next_tenant_id?: TenantId",
                     next_kind as "next_kind?: JobKind", next_environment_id as "next_environment_id?",
                     next_attempts as "next_attempts?", next_run_at as "next_run_at?: _",
                     next_locked_until as "next_locked_until?: _", next_last_error as "next_last_error?",
                     next_created_at as "next_created_at?: _""#,
                tenant.as_str(),
                seen.id,
                seen.revision,
                deleted,
                now as DateTime<Utc>,
                job.id,
                job.worker,
                action,
                seen.ephemeral_id.as_str(),
                seen.environment_key,
                details,
                notify::ENVIRONMENTS_CHANNEL,
                notice,
                client_side_id,
                sdk,
                mobile
                $(, $arg)*
            )
            .fetch_optional(db)
            .await?
        };
    }
    let row = match next {
        // As `jobs::claim` (keep the two in step), the settled job not
        // counted against its tenant, and only if this statement settled it.
        Some(next) => settle_with!(
            "full_up as (
                 select tenant_id from jobs
                  where state = 'running' and locked_until > $5 and id <> $6
                  group by tenant_id having count(*) >= $18
             ), expired as (
                 select id from jobs
                  where state = 'running' and locked_until <= $5 and id <> $6
                    and ($19 or kind = 'reconcile_environment')
                    and exists (select 1 from held)
                    and tenant_id not in (select tenant_id from full_up)
                  order by locked_until
                  limit 1
                  for update skip locked
             ), due as (
                 select id from jobs
                  where state = 'queued' and run_at <= $5
                    and ($19 or kind = 'reconcile_environment')
                    and exists (select 1 from held)
                    and not exists (select 1 from expired)
                    and tenant_id not in (select tenant_id from full_up)
                  order by run_at
                  limit 1
                  for update skip locked
             ), next as (
                 select id from expired union all select id from due
             ), claimed as (
                 update jobs set state = 'running', locked_by = $7, locked_until = $17,
                                 attempts = jobs.attempts + 1, updated_at = $5
                   from next
                  where jobs.id = next.id
                 returning jobs.id as next_id, jobs.tenant_id as next_tenant_id, jobs.kind as next_kind,
                           jobs.environment_id as next_environment_id, jobs.attempts as next_attempts,
                           jobs.run_at as next_run_at, jobs.locked_until as next_locked_until,
                           jobs.last_error as next_last_error, jobs.created_at as next_created_at
             )
             ",
            next.until as DateTime<Utc>,
            next.per_tenant,
            next.background
        ),
        None => settle_with!(
            "claimed as (
                 select null::uuid as next_id, null::text as next_tenant_id, null::text as next_kind,
                        null::uuid as next_environment_id, null::int as next_attempts,
                        null::timestamptz as next_run_at, null::timestamptz as next_locked_until,
                        null::text as next_last_error, null::timestamptz as next_created_at
                  where false
             )
             "
        ),
    };
    Ok(row.map(|row| row.split(job.worker)))
}

/// Ends the generation in `failed`; `refused` when a safety rule refused a
/// delete (nothing was touched) rather than LaunchDarkly failing it.
pub async fn mark_failed(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    id: Uuid,
    error: &str,
    refused: bool,
    code: Option<FailureCode>,
    now: DateTime<Utc>,
) -> sqlx::Result<EnvironmentRow> {
    rows!(
        "update environments set status = 'failed', refused = $4, last_error = $3, failure_code = $6, updated_at = $5
          where tenant_id = $1 and id = $2
          returning";
        "",
        tenant.as_str(),
        id,
        error,
        refused,
        now as DateTime<Utc>,
        code as Option<FailureCode>,
    )
    .fetch_one(&mut **tx)
    .await
}

/// Gone upstream. The sealed keys are dropped: they open nothing any more.
pub async fn mark_deleted(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<EnvironmentRow> {
    rows!(
        "update environments
            set status = 'deleted', refused = false, failure_code = null, sdk_key = null, mobile_key = null, last_error = null, updated_at = $3
          where tenant_id = $1 and id = $2
          returning";
        "",
        tenant.as_str(),
        id,
        now as DateTime<Utc>,
    )
    .fetch_one(&mut **tx)
    .await
}

/// A transient problem the workers are retrying past, shown to the vendor.
pub async fn note_error<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
    id: Uuid,
    error: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update environments set last_error = $3, updated_at = $4 where tenant_id = $1 and id = $2",
        tenant.as_str(),
        id,
        error,
        now as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(())
}
