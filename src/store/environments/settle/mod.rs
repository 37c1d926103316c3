//! The workers' common outcomes in one statement: a generation created or
//! deleted as the row the worker saw asked ([`settle`]), and the same for
//! the outcomes of several workers at once ([`settle_many`], `app::batcher`).

mod many;

pub use many::settle_many;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Desired, EnvironmentRow, FailureCode, SettledRow, Status};
use crate::ids::{EphemeralId, TenantId};
use crate::store::jobs::{Job, JobKind};
use crate::store::notify;

/// What a [`Settlement`] records.
#[derive(Clone)]
pub enum Settled {
    /// Created or adopted, as `record_created` records it (keys sealed).
    Created {
        client_side_id: String,
        sealed_sdk_key: String,
        sealed_mobile_key: String,
    },
    /// Gone upstream, as `mark_deleted` records it.
    Deleted,
}

impl Settled {
    /// Whether it is a deletion, and the columns a creation sets.
    fn columns(&self) -> (bool, Option<&str>, Option<&str>, Option<&str>) {
        match self {
            Self::Created {
                client_side_id,
                sealed_sdk_key,
                sealed_mobile_key,
            } => (
                false,
                Some(client_side_id),
                Some(sealed_sdk_key),
                Some(sealed_mobile_key),
            ),
            Self::Deleted => (true, None, None, None),
        }
    }
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

/// What a settlement's claim ([`NextClaim`]) left its worker to run next.
#[derive(Debug, Default)]
pub enum Next {
    /// Nothing was claimed for it: it claims from the queue as usual.
    #[default]
    Unknown,
    /// This job, claimed for the worker from the queue.
    Claimed(Job),
    /// The statement looked and no job was due (or every due one was of a
    /// tenant at its limit): no need to look again at once.
    NoneDue,
}

impl Next {
    /// The job claimed, if one was.
    pub fn job(self) -> Option<Job> {
        match self {
            Self::Claimed(job) => Some(job),
            Self::Unknown | Self::NoneDue => None,
        }
    }
}

/// A worker's outcome for [`settle`]: the generation it saw (its id and
/// revision, the ephemeral id and key for the audit row), the job it holds
/// (`job`, under `worker`'s lease), what to record, the audit row (`action`,
/// `details`, as `system`), the notification (`notice`, the row's text after
/// the change; see `notify::outcome_notice`), when, and the claim of the
/// worker's next job, if it wants one.
#[derive(Clone)]
pub struct Settlement {
    pub tenant: TenantId,
    pub id: Uuid,
    pub revision: i32,
    pub ephemeral_id: EphemeralId,
    pub environment_key: String,
    pub job: Uuid,
    pub worker: String,
    pub outcome: Settled,
    pub action: &'static str,
    pub details: Value,
    pub notice: String,
    pub now: DateTime<Utc>,
    pub next: Option<NextClaim>,
}

impl std::fmt::Debug for Settlement {
    /// Without the sealed keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settlement")
            .field("tenant", &self.tenant)
            .field("id", &self.id)
            .field("revision", &self.revision)
            .field("job", &self.job)
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}

/// The workers' common case, in one statement and no transaction: a
/// generation created or deleted as the row at `revision` asked, recorded as
/// `record_created` or `mark_deleted` would, its finished job deleted
/// (as `jobs::settle_held` does), with its audit row and notification.
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
pub async fn settle<'e>(
    db: impl sqlx::PgExecutor<'e>,
    s: &Settlement,
) -> sqlx::Result<Option<(EnvironmentRow, Next)>> {
    let (deleted, client_side_id, sdk, mobile) = s.outcome.columns();
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
                s.tenant.as_str(),
                s.id,
                s.revision,
                deleted,
                s.now as DateTime<Utc>,
                s.job,
                s.worker,
                s.action,
                s.ephemeral_id.as_str(),
                s.environment_key,
                s.details,
                notify::ENVIRONMENTS_CHANNEL,
                s.notice,
                client_side_id,
                sdk,
                mobile
                $(, $arg)*
            )
            .fetch_optional(db)
            .await?
        };
    }
    let row = match s.next {
        // As `jobs::claim` (keep the three in step: `settle_many` too), the settled job not
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
    Ok(row.map(|row| {
        let (row, job) = row.split(&s.worker);
        let next = match (s.next, job) {
            (None, _) => Next::Unknown,
            (Some(_), Some(job)) => Next::Claimed(job),
            (Some(_), None) => Next::NoneDue,
        };
        (row, next)
    }))
}
