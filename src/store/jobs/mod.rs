//! The durable work queue. Jobs are claimed with `FOR UPDATE SKIP LOCKED` and
//! held under a lease (`locked_until`): a replica that dies mid-job loses the
//! lease, and another replica picks the job up again.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};
use uuid::Uuid;

mod leases;

pub use leases::{Claim, Settle, claim, heartbeat, release, settle_held};

use super::notify;
use crate::ids::TenantId;

/// Wakes idle workers in every replica when a job is queued.
pub use super::notify::JOBS_CHANNEL;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    ReconcileEnvironment,
    SweepTenant,
    OffboardTenant,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReconcileEnvironment => "reconcile_environment",
            Self::SweepTenant => "sweep_tenant",
            Self::OffboardTenant => "offboard_tenant",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub kind: JobKind,
    pub environment_id: Option<Uuid>,
    pub attempts: i32,
    pub run_at: DateTime<Utc>,
    pub locked_by: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

async fn notify_workers(tx: &mut Transaction<'_, Postgres>) -> sqlx::Result<()> {
    notify::send(&mut **tx, JOBS_CHANNEL, "").await
}

/// Queues reconciliation of an environment. If one is already open it is
/// brought forward instead (a running one re-runs: its worker sees the
/// environment's revision moved). Unless the caller hands the job to a worker
/// of its own (`wake_replicas` false), the same statement wakes the workers of
/// every replica. Returns the job's id if it is queued (not running).
pub async fn enqueue_reconcile(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    environment_id: Uuid,
    now: DateTime<Utc>,
    wake_replicas: bool,
) -> sqlx::Result<Option<Uuid>> {
    let row = sqlx::query!(
        r#"with queued as (
             insert into jobs (id, tenant_id, kind, environment_id, state, run_at, created_at, updated_at)
             values ($1, $2, 'reconcile_environment', $3, 'queued', $4, $4, $4)
             on conflict (environment_id) where state in ('queued', 'running') and kind = 'reconcile_environment'
             do update set run_at = least(jobs.run_at, excluded.run_at), attempts = 0, updated_at = excluded.updated_at
             returning id, state
         ), woken as (
             select pg_notify($5, '') where $6
         )
         select id as "id!", state = 'queued' as "queued!", (select count(*) from woken) as "woken!"
           from queued"#,
        Uuid::new_v4(),
        tenant.as_str(),
        environment_id,
        now as DateTime<Utc>,
        JOBS_CHANNEL,
        wake_replicas,
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.queued.then_some(row.id))
}

/// Queues a tenant-wide job unless one of that kind is already open.
pub async fn enqueue_tenant_job(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    kind: JobKind,
    run_at: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "insert into jobs (id, tenant_id, kind, state, run_at, created_at, updated_at)
         values ($1, $2, $3, 'queued', $4, $4, $4)
         on conflict do nothing",
        Uuid::new_v4(),
        tenant.as_str(),
        kind.as_str(),
        run_at as DateTime<Utc>,
    )
    .execute(&mut **tx)
    .await?;
    notify_workers(tx).await?;
    Ok(done.rows_affected() == 1)
}

/// Serialises an offboarding's "are the deletes done?" check with each
/// delete finishing, so the last delete always wakes the offboarding job.
pub async fn lock_offboarding(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
) -> sqlx::Result<()> {
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtextextended($1, 7))",
        format!("offboarding/{tenant}"),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A delete of an offboarding tenant finished: bring its offboarding job
/// forward so it can check whether it is done.
pub async fn wake_offboarding(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let offboarding: Option<bool> = sqlx::query_scalar!(
        r#"select offboarding_at is not null as "offboarding!" from tenants where id = $1"#,
        tenant.as_str(),
    )
    .fetch_optional(&mut **tx)
    .await?;
    if offboarding != Some(true) {
        return Ok(());
    }
    lock_offboarding(tx, tenant).await?;
    sqlx::query!(
        "update jobs set run_at = $2
          where tenant_id = $1 and kind = 'offboard_tenant' and state = 'queued' and run_at > $2",
        tenant.as_str(),
        now as DateTime<Utc>,
    )
    .execute(&mut **tx)
    .await?;
    notify_workers(tx).await
}

/// Puts the job back in the queue to run at `run_at`. `reset_attempts` is for
/// a re-run that is not a failure (the environment changed under the worker).
pub async fn retry<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    run_at: DateTime<Utc>,
    error: Option<&str>,
    reset_attempts: bool,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update jobs set state = 'queued', run_at = $2, last_error = coalesce($3, last_error),
                         attempts = case when $4 then 0 else attempts end,
                         locked_by = null, locked_until = null, updated_at = $5
          where id = $1",
        id,
        run_at as DateTime<Utc>,
        error,
        reset_attempts,
        now as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// After a 429: nothing queued for any tenant on that LaunchDarkly account
/// runs before `reset_at`; they wake spread over `spread` so they do not all
/// knock at once. Returns how many jobs moved. Job rows another transaction
/// holds are skipped, never waited for: this statement takes many job rows
/// without their environments, which the lock order (`crate::store`) allows
/// only without waiting (a skipped job meets the limit and is held itself).
pub async fn hold_account<'e>(
    db: impl sqlx::PgExecutor<'e>,
    account_id: &str,
    reset_at: DateTime<Utc>,
    spread: Duration,
) -> sqlx::Result<u64> {
    let spread_ms = spread.num_milliseconds().max(0) as f64;
    let done = sqlx::query!(
        "update jobs set run_at = $2 + make_interval(secs => random() * $3 / 1000.0)
          where id in (select id from jobs
                        where state = 'queued' and run_at < $2
                          and tenant_id in (select tenant_id from connections where account_id = $1)
                        for update skip locked)",
        account_id,
        reset_at as DateTime<Utc>,
        spread_ms,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Queues a sweep for every connected, configured tenant that is not being
/// offboarded and has had no sweep open or finished since `since`, each due
/// at a random instant within `spread` from `now`: tenants scheduled in the
/// same pass (all of them, the first time) drift apart rather than falling
/// due together at every interval. One statement, so replicas running it at
/// once queue each sweep once.
pub async fn schedule_sweeps(
    db: &PgPool,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
    spread: Duration,
) -> sqlx::Result<u64> {
    let spread_ms = spread.num_milliseconds().max(0) as f64;
    let done = sqlx::query!(
        "insert into jobs (id, tenant_id, kind, state, run_at, created_at, updated_at)
         select gen_random_uuid(), s.tenant_id, 'sweep_tenant', 'queued',
                $1::timestamptz + make_interval(secs => random() * $3 / 1000.0), $1, $1
           from tenant_settings s
           join connections c on c.tenant_id = s.tenant_id and c.status = 'connected'
           join tenants t on t.id = s.tenant_id and t.offboarding_at is null
          where not exists (select 1 from jobs j
                             where j.tenant_id = s.tenant_id and j.kind = 'sweep_tenant'
                               and (j.state in ('queued', 'running') or j.updated_at > $2))
         on conflict do nothing",
        now as DateTime<Utc>,
        since as DateTime<Utc>,
        spread_ms,
    )
    .execute(db)
    .await?;
    if done.rows_affected() > 0 {
        notify::send(db, JOBS_CHANNEL, "").await?;
    }
    Ok(done.rows_affected())
}

/// Queue depth by state, for the metrics: (queued and due, queued later, running).
pub async fn depth(db: &PgPool, now: DateTime<Utc>) -> sqlx::Result<(i64, i64, i64)> {
    let row = sqlx::query!(
        r#"select count(*) filter (where state = 'queued' and run_at <= $1) as "due!",
                  count(*) filter (where state = 'queued' and run_at > $1) as "later!",
                  count(*) filter (where state = 'running') as "running!"
             from jobs where state in ('queued', 'running')"#,
        now as DateTime<Utc>,
    )
    .fetch_one(db)
    .await?;
    Ok((row.due, row.later, row.running))
}

/// Vacuums the queue table, so the claims' index scans do not wade through
/// the entries of jobs claimed and finished since the last vacuum. Every job
/// leaves such entries behind (its claim and its end each change `state`,
/// which the queue's partial indexes name), the claims walk those indexes
/// from their oldest entry, and Postgres's autovacuum visits a database
/// about once a minute at most (or, as on some servers, not at all): at a
/// few hundred lifecycles a second a claim took three times as long after
/// 30 s without a vacuum. The table holds only open jobs and a day of
/// sweeps and offboardings, so this is quick. `skip_locked`: a replica
/// never waits for another's vacuum. Not a checked macro: `vacuum` cannot
/// be prepared; sent as a simple query.
pub async fn vacuum(db: &PgPool) -> sqlx::Result<()> {
    sqlx::raw_sql("vacuum (skip_locked) jobs")
        .execute(db)
        .await?;
    Ok(())
}

/// Forgets finished jobs older than `before`.
pub async fn purge_finished(db: &PgPool, before: DateTime<Utc>) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "delete from jobs where state in ('done', 'failed') and updated_at < $1",
        before as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
