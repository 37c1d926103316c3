//! Claiming jobs and holding them: the claims (from the queue, or made by
//! the API's statement that queues the job, for an idle worker here), the
//! lease a worker renews, and the one statement that settles a held job.
//!
//! The claims and the lease's renewal commit without waiting for the disk
//! (`synchronous_commit` off for their transaction alone): a claim or a
//! renewal lost to a Postgres crash leaves the job as it was, queued or
//! under its old lease, and it is claimed and run again. Running a job
//! twice is already allowed for (a worker that outlives its lease), and
//! LaunchDarkly's answers make a repeated create or delete come out the
//! same. See "What is durable when" in `crate::store`.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::{Job, JobKind};
use crate::ids::TenantId;

/// Claims the next due job (or one whose lease ran out). No tenant may hold
/// more than `per_tenant` running jobs, so one tenant's backlog never takes
/// every worker from the others; among the rest the oldest due job goes
/// first. The statement walks the due jobs in `run_at` order (the
/// `jobs_due` index) and stops at the first one it may take, so its cost does
/// not grow with the backlog; a job whose lease ran out is taken before any
/// queued one. Tenant-wide jobs (sweeps, offboardings) only when
/// `background` (the worker's replica has a background slot free,
/// `app::Runtime::reserve_background`): otherwise they are passed over, so
/// that a wave of them never holds every worker while previews wait.
/// `environments::settle` makes the same claim for a busy worker's next job,
/// and `environments::settle_many` the same for several workers at once,
/// of previews' jobs only (keep the three in step).
pub async fn claim<'e>(
    db: impl sqlx::PgExecutor<'e>,
    worker: &str,
    now: DateTime<Utc>,
    lease: Duration,
    per_tenant: i64,
    background: bool,
) -> sqlx::Result<Option<Job>> {
    sqlx::query_as!(
        Job,
        r#"with full_up as (
             select tenant_id from jobs
              where state = 'running' and locked_until > $1
              group by tenant_id having count(*) >= $4
         ), expired as (
             select id from jobs
              where state = 'running' and locked_until <= $1
                and ($5 or kind = 'reconcile_environment')
                and tenant_id not in (select tenant_id from full_up)
              order by locked_until
              limit 1
              for update skip locked
         ), due as (
             select id from jobs
              where state = 'queued' and run_at <= $1
                and ($5 or kind = 'reconcile_environment')
                and not exists (select 1 from expired)
                and tenant_id not in (select tenant_id from full_up)
              order by run_at
              limit 1
              for update skip locked
         ), next as (
             select id from expired union all select id from due
         )
         update jobs set state = 'running', locked_by = $2, locked_until = $3,
                         attempts = jobs.attempts + 1, updated_at = $1
           from next
          where jobs.id = next.id and set_config('synchronous_commit', 'off', true) = 'off'
         returning jobs.id, jobs.tenant_id as "tenant_id: TenantId", jobs.kind as "kind: JobKind",
                   jobs.environment_id, jobs.attempts, jobs.run_at as "run_at: _", jobs.locked_by,
                   jobs.locked_until as "locked_until: _", jobs.last_error, jobs.created_at as "created_at: _""#,
        now as DateTime<Utc>,
        worker,
        (now + lease) as DateTime<Utc>,
        per_tenant,
        background,
    )
    .fetch_optional(db)
    .await
}

/// A claim made by the statement that queues a job: the API's one-statement
/// PUT and DELETE (`environments::insert_requested`,
/// `mark_absent_requested`) insert the job already running under this
/// lease when a worker of this replica is idle and promised it
/// (`app::Runtime::promise`), and its tenant holds fewer than `per_tenant`
/// running jobs (the limit [`claim`] keeps); otherwise it is queued as
/// usual. No claim of its own, and no queued row version left behind.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// The job's id, chosen here so the claimed job can be run without
    /// reading it back.
    pub job_id: Uuid,
    pub worker: &'a str,
    pub until: DateTime<Utc>,
    pub per_tenant: i64,
}

impl Claim<'_> {
    /// The claim of a new job, for a lease of `lease` from `now`.
    pub fn new(worker: &str, now: DateTime<Utc>, lease: Duration, per_tenant: i64) -> Claim<'_> {
        Claim {
            job_id: Uuid::new_v4(),
            worker,
            until: now + lease,
            per_tenant,
        }
    }

    /// The reconcile job of `environment_id` as a statement that made this
    /// claim inserted it at `now`, running (its first attempt).
    pub fn job(&self, tenant: &TenantId, environment_id: Uuid, now: DateTime<Utc>) -> Job {
        Job {
            id: self.job_id,
            tenant_id: tenant.clone(),
            kind: JobKind::ReconcileEnvironment,
            environment_id: Some(environment_id),
            attempts: 1,
            run_at: now,
            locked_by: Some(self.worker.to_owned()),
            locked_until: Some(self.until),
            last_error: None,
            created_at: now,
        }
    }
}

/// Gives a claimed job back to the queue, due now, as if this claim had
/// not been made (a replica shutting down with a claimed job that no
/// worker started). False when this worker no longer holds it.
pub async fn release<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    worker: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update jobs set state = 'queued', run_at = $3, attempts = greatest(attempts - 1, 0),
                         locked_by = null, locked_until = null, updated_at = $3
          where id = $1 and locked_by = $2 and state = 'running'",
        id,
        worker,
        now as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Extends the lease of a job this worker still holds.
pub async fn heartbeat<'e>(
    db: impl sqlx::PgExecutor<'e>,
    id: Uuid,
    worker: &str,
    until: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update jobs set locked_until = $3
          where id = $1 and locked_by = $2 and state = 'running'
            and set_config('synchronous_commit', 'off', true) = 'off'",
        id,
        worker,
        until as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What becomes of a job its worker is done with.
#[derive(Debug, Clone, Copy)]
pub enum Settle<'a> {
    /// Finished.
    Done,
    /// Back in the queue, due at `run_at`. `reset_attempts` is for a re-run
    /// that is not a failure (the environment changed under the worker).
    Retry {
        run_at: DateTime<Utc>,
        error: Option<&'a str>,
        reset_attempts: bool,
    },
}

/// Settles a job this worker holds: done, or back in the queue. False when
/// the worker lost its lease (another replica owns the job now and decides;
/// nothing was changed). One statement: it checks the lease, locks the row
/// for the rest of the transaction and writes the outcome.
///
/// A finished reconcile job is deleted, not kept as `done`: the audit log
/// says what happened, and a queue that keeps two finished rows for every
/// lifecycle grows without end (and with it every vacuum of its indexes).
/// Sweeps and offboardings are kept as `done`: the sweep schedule reads
/// when the last one finished.
pub async fn settle_held<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    worker: &str,
    settle: Settle<'_>,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let (done, run_at, error, reset_attempts) = match settle {
        Settle::Done => (true, None, None, false),
        Settle::Retry {
            run_at,
            error,
            reset_attempts,
        } => (false, Some(run_at), error, reset_attempts),
    };
    let held = sqlx::query_scalar!(
        r#"with finished as (
             delete from jobs
              where id = $1 and locked_by = $2 and state = 'running' and $3 and kind = 'reconcile_environment'
             returning id
         ), settled as (
             update jobs set state = case when $3 then 'done' else 'queued' end,
                             run_at = coalesce($4, run_at),
                             last_error = coalesce($5, last_error),
                             attempts = case when $6 then 0 else attempts end,
                             locked_by = null, locked_until = null, updated_at = $7
              where id = $1 and locked_by = $2 and state = 'running' and not ($3 and kind = 'reconcile_environment')
             returning id
         )
         select id as "id!" from finished union all select id from settled"#,
        id,
        worker,
        done,
        run_at as Option<DateTime<Utc>>,
        error,
        reset_attempts,
        now as DateTime<Utc>,
    )
    .fetch_optional(db)
    .await?;
    Ok(held.is_some())
}
