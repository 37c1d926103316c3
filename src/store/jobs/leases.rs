//! Claiming jobs and holding them: the claims (from the queue, or by id for
//! a job this replica's API offered), the lease a worker renews, and the one
//! statement that settles a held job.
//!
//! The claims and the lease's renewal commit without waiting for the disk
//! (`synchronous_commit` off for their transaction alone): a claim or a
//! renewal lost to a Postgres crash leaves the job as it was, queued or
//! under its old lease, and it is claimed and run again. Running a job
//! twice is already allowed for (a worker that outlives its lease), and
//! LaunchDarkly's answers make a repeated create or delete come out the
//! same. See "What is durable when" in `crate::store`.

use chrono::{DateTime, Duration, Utc};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::{Job, JobKind};
use crate::ids::TenantId;

/// Claims the next due job (or one whose lease ran out). No tenant may hold
/// more than `per_tenant` running jobs, so one tenant's backlog never takes
/// every worker from the others; among the rest the oldest due job goes
/// first. The statement walks the due jobs in `run_at` order (the
/// `jobs_due` index) and stops at the first one it may take, so its cost does
/// not grow with the backlog; a job whose lease ran out is taken before any
/// queued one.
pub async fn claim(
    db: &PgPool,
    worker: &str,
    now: DateTime<Utc>,
    lease: Duration,
    per_tenant: i64,
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
                and tenant_id not in (select tenant_id from full_up)
              order by locked_until
              limit 1
              for update skip locked
         ), due as (
             select id from jobs
              where state = 'queued' and run_at <= $1
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
    )
    .fetch_optional(db)
    .await
}

/// Claims the open reconcile job of one environment, as [`claim`] would:
/// only if it is still queued and due, not locked by another claim, and its
/// tenant holds fewer than `per_tenant` running jobs. For a job this
/// replica's API offered its own workers (an environment has at most one
/// open reconcile job, so its id names the job); `None` when someone else
/// took it, it is already running, or it must wait its turn.
pub async fn claim_offered(
    db: &PgPool,
    environment_id: Uuid,
    worker: &str,
    now: DateTime<Utc>,
    lease: Duration,
    per_tenant: i64,
) -> sqlx::Result<Option<Job>> {
    sqlx::query_as!(
        Job,
        r#"with next as (
             select j.id from jobs j
              where j.environment_id = $1 and j.kind = 'reconcile_environment'
                and j.state = 'queued' and j.run_at <= $2
                and (select count(*) from jobs r
                      where r.tenant_id = j.tenant_id and r.state = 'running' and r.locked_until > $2) < $5
              for update skip locked
         )
         update jobs set state = 'running', locked_by = $3, locked_until = $4,
                         attempts = jobs.attempts + 1, updated_at = $2
           from next
          where jobs.id = next.id and set_config('synchronous_commit', 'off', true) = 'off'
         returning jobs.id, jobs.tenant_id as "tenant_id: TenantId", jobs.kind as "kind: JobKind",
                   jobs.environment_id, jobs.attempts, jobs.run_at as "run_at: _", jobs.locked_by,
                   jobs.locked_until as "locked_until: _", jobs.last_error, jobs.created_at as "created_at: _""#,
        environment_id,
        now as DateTime<Utc>,
        worker,
        (now + lease) as DateTime<Utc>,
        per_tenant,
    )
    .fetch_optional(db)
    .await
}

/// Extends the lease of a job this worker still holds.
pub async fn heartbeat(
    db: &PgPool,
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
