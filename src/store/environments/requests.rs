//! What a request about one ephemeral environment does: lock it, read its
//! generations, insert one, mark it unwanted or try it again.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgExecutor, Postgres, Transaction};
use uuid::Uuid;

use super::{ClaimedRow, Desired, EnvironmentRow, FailureCode, NewEnvironment, Status};
use crate::ids::{EphemeralId, TenantId};
use crate::store::jobs::Claim;

/// The name of [`lock_ephemeral`]'s lock.
pub(super) fn ephemeral_lock_key(tenant: &TenantId, ephemeral_id: &EphemeralId) -> String {
    format!("environment/{tenant}/{ephemeral_id}")
}

/// Serialises every request about one ephemeral environment (for the rest of
/// the transaction), so concurrent PUTs and DELETEs apply in a single order
/// and the last one's intent wins.
pub async fn lock_ephemeral(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
) -> sqlx::Result<()> {
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtextextended($1, 7))",
        ephemeral_lock_key(tenant, ephemeral_id),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The generation the vendor wants to exist, locked for the transaction.
pub async fn present_for_update(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
) -> sqlx::Result<Option<EnvironmentRow>> {
    rows!(
        "select";
        "from environments
          where tenant_id = $1 and ephemeral_id = $2 and desired = 'present'
          for update",
        tenant.as_str(),
        ephemeral_id.as_str(),
    )
    .fetch_optional(&mut **tx)
    .await
}

/// The generation to show for an ephemeral id: the wanted one if any, else
/// the newest.
pub async fn current<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
) -> sqlx::Result<Option<EnvironmentRow>> {
    rows!(
        "select";
        "from environments
          where tenant_id = $1 and ephemeral_id = $2
          order by (desired = 'present') desc, generation desc
          limit 1",
        tenant.as_str(),
        ephemeral_id.as_str(),
    )
    .fetch_optional(db)
    .await
}

pub async fn max_generation(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
) -> sqlx::Result<i32> {
    sqlx::query_scalar!(
        r#"select coalesce(max(generation), 0) as "max!" from environments where tenant_id = $1 and ephemeral_id = $2"#,
        tenant.as_str(),
        ephemeral_id.as_str(),
    )
    .fetch_one(&mut **tx)
    .await
}

/// The revision of a generation when it is inserted.
pub const FIRST_REVISION: i32 = 1;

/// The generation number of an ephemeral id's first generation.
pub const FIRST_GENERATION: i32 = 1;

/// What [`insert_requested`] did.
#[derive(Debug)]
pub enum Requested {
    /// It wrote the generation; `claimed`: and claimed its job.
    Written { row: EnvironmentRow, claimed: bool },
    /// It wrote nothing: the id already has generations, and this is its
    /// current one (only for a [`FIRST_GENERATION`]).
    Found(EnvironmentRow),
}

impl Requested {
    /// The row written and whether its job was claimed; `None` if nothing
    /// was written.
    pub fn written(self) -> Option<(EnvironmentRow, bool)> {
        match self {
            Self::Written { row, claimed } => Some((row, claimed)),
            Self::Found(_) => None,
        }
    }
}

/// The API's common case of a PUT, in one statement and no transaction: the
/// new generation (at [`FIRST_REVISION`], status `pending`), its reconcile
/// job and the audit row (`actor`, `action`, `details`, naming the
/// generation's ephemeral id and key). With a `claim`, the job is inserted
/// already running under the claim's lease, for the idle worker of this
/// replica that was promised it, if the tenant holds fewer running jobs
/// than the claim allows (as a claim from the queue would check); otherwise
/// it is queued. The caller wakes the workers after the commit if the job
/// was not claimed (`notify::announce_committed`; why not here:
/// `crate::store::notify`). A new generation needs no notice: nobody can
/// be waiting for an id not yet returned.
///
/// `None`, with nothing written, when the tenant is being offboarded or a
/// transaction holds the ephemeral id's lock ([`lock_ephemeral`]; the
/// statement tries it and never waits). The caller read the id's
/// generations without the lock; if a request that did not hold it either
/// got there first, this statement fails on `environments_one_live` or the
/// generation's unique index (nothing written). Either way the caller takes
/// the locked path. Holding the lock while it inserts, this statement never
/// surprises a transaction that holds it.
///
/// A [`FIRST_GENERATION`] is written only if the id has no generation at
/// all: if it has, the statement writes nothing and returns
/// [`Requested::Found`], the id's current generation (as [`current`]
/// reads it), so that the API's PUT of a new id, and its repeat, are one
/// statement each.
///
/// Every other row comes from the generation's insert (`ins`), so nothing
/// is written unless it is.
pub async fn insert_requested<'e>(
    db: impl PgExecutor<'e>,
    new: &NewEnvironment<'_>,
    (actor, action, details): (&str, &str, &Value),
    now: DateTime<Utc>,
    claim: Option<&Claim<'_>>,
) -> sqlx::Result<Option<Requested>> {
    let row = rows!(ClaimedRow =>
        "with cur as (
             select * from environments
              where $4 = 1 and tenant_id = $2 and ephemeral_id = $3
              order by (desired = 'present') desc, generation desc
              limit 1
         ), ins as (
             insert into environments (id, tenant_id, ephemeral_id, generation, revision, desired, status, request,
                                       project_key, environment_key, environment_name, source_environment_key,
                                       color, tags, flags, expires_at, created_at, updated_at)
             select $1, t.id, $3, $4, $15, 'present', 'pending', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14
               from tenants t
              where t.id = $2 and t.offboarding_at is null and not exists (select 1 from cur)
                and pg_try_advisory_xact_lock(hashtextextended($19, 7))
             returning *
         ), claim as (
             select $21::text as worker, $22::timestamptz as until
              where $21::text is not null
                and (select count(*) from jobs r
                      where r.tenant_id = $2 and r.state = 'running' and r.locked_until > $14) < $23
         ), queued as (
             insert into jobs (id, tenant_id, kind, environment_id, state, attempts, run_at, locked_by, locked_until,
                               created_at, updated_at)
             select coalesce($20::uuid, gen_random_uuid()), ins.tenant_id, 'reconcile_environment', ins.id,
                    case when claim.worker is null then 'queued' else 'running' end,
                    case when claim.worker is null then 0 else 1 end,
                    $14, claim.worker, claim.until, $14, $14
               from ins left join claim on true
             returning state
         ), recorded as (
             insert into audit_events (tenant_id, occurred_at, actor, action, ephemeral_id, environment_key, details)
             select tenant_id, $14, $16, $17, ephemeral_id, environment_key, $18 from ins
         ), e as (
             select ins.*, exists (select 1 from queued where state = 'running') as claimed from ins
             union all
             select cur.*, false from cur
         )
         select";
        r#", claimed as "claimed!" from e"#,
        new.id,
        new.tenant.as_str(),
        new.ephemeral_id.as_str(),
        new.generation,
        new.request,
        new.project_key,
        new.environment_key,
        new.environment_name,
        new.source_environment_key,
        new.color,
        new.tags,
        new.flags,
        new.expires_at as Option<DateTime<Utc>>,
        now as DateTime<Utc>,
        FIRST_REVISION,
        actor,
        action,
        details,
        ephemeral_lock_key(new.tenant, new.ephemeral_id),
        claim.map(|c| c.job_id),
        claim.map(|c| c.worker),
        claim.map(|c| c.until) as Option<DateTime<Utc>>,
        claim.map_or(0, |c| c.per_tenant),
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|row| {
        let (row, claimed) = row.split();
        if row.id == new.id {
            Requested::Written { row, claimed }
        } else {
            Requested::Found(row)
        }
    }))
}

/// The API's common case of a DELETE, in one statement and no transaction:
/// the live generation of `ephemeral_id` marked unwanted (as
/// [`mark_absent`]), its reconcile job queued or brought forward (as
/// `jobs::enqueue_reconcile`) and the audit row (`action`, with the
/// generation in its details). With a `claim`, a job this statement
/// inserts is claimed as [`insert_requested`]'s is; an open job it brings
/// forward is not (it is queued, or running elsewhere and sees the new
/// revision when it records its outcome). The caller announces it after the
/// commit (`notify::announce_committed`). `None` when no generation is
/// live: nothing is written, and the caller takes the locked path to look
/// closer. Returns the row and whether its job was claimed.
///
/// Lock order (`crate::store`): the job row's upsert takes its rows from the
/// update's output, so the environment row is locked first.
pub async fn mark_absent_requested<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
    (actor, action): (&str, &str),
    now: DateTime<Utc>,
    claim: Option<&Claim<'_>>,
) -> sqlx::Result<Option<(EnvironmentRow, bool)>> {
    let row = rows!(ClaimedRow =>
        "with live as (
             update environments
                set desired = 'absent', status = 'deleting', refused = false, failure_code = null,
                    revision = revision + 1, last_error = null, updated_at = $3
              where tenant_id = $1 and ephemeral_id = $2 and desired = 'present'
             returning *
         ), claim as (
             select $7::text as worker, $8::timestamptz as until
              where $7::text is not null
                and (select count(*) from jobs r
                      where r.tenant_id = $1 and r.state = 'running' and r.locked_until > $3) < $9
         ), queued as (
             insert into jobs (id, tenant_id, kind, environment_id, state, attempts, run_at, locked_by, locked_until,
                               created_at, updated_at)
             select coalesce($6::uuid, gen_random_uuid()), live.tenant_id, 'reconcile_environment', live.id,
                    case when claim.worker is null then 'queued' else 'running' end,
                    case when claim.worker is null then 0 else 1 end,
                    $3, claim.worker, claim.until, $3, $3
               from live left join claim on true
             on conflict (environment_id) where state in ('queued', 'running') and kind = 'reconcile_environment'
             do update set run_at = least(jobs.run_at, excluded.run_at), attempts = 0, updated_at = excluded.updated_at
             returning id = $6::uuid and state = 'running' as claimed
         ), recorded as (
             insert into audit_events (tenant_id, occurred_at, actor, action, ephemeral_id, environment_key, details)
             select tenant_id, $3, $4, $5, ephemeral_id, environment_key, jsonb_build_object('generation', generation)
               from live
         )
         select";
        r#", coalesce((select claimed from queued), false) as "claimed!" from live"#,
        tenant.as_str(),
        ephemeral_id.as_str(),
        now as DateTime<Utc>,
        actor,
        action,
        claim.map(|c| c.job_id),
        claim.map(|c| c.worker),
        claim.map(|c| c.until) as Option<DateTime<Utc>>,
        claim.map_or(0, |c| c.per_tenant),
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(ClaimedRow::split))
}

/// The vendor no longer wants this generation: the workers delete it.
pub async fn mark_absent<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
    id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<EnvironmentRow> {
    rows!(
        "update environments
            set desired = 'absent', status = 'deleting', refused = false, failure_code = null, revision = revision + 1,
                last_error = null, updated_at = $3
          where tenant_id = $1 and id = $2
          returning";
        "",
        tenant.as_str(),
        id,
        now as DateTime<Utc>,
    )
    .fetch_one(db)
    .await
}

/// Tries a failed generation again (a repeated PUT or DELETE).
pub async fn rearm<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
    id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<EnvironmentRow> {
    rows!(
        "update environments
            set status = case desired when 'present' then 'pending' else 'deleting' end, refused = false, failure_code = null,
                revision = revision + 1, updated_at = $3
          where tenant_id = $1 and id = $2
          returning";
        "",
        tenant.as_str(),
        id,
        now as DateTime<Utc>,
    )
    .fetch_one(db)
    .await
}

pub async fn get<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
    id: Uuid,
) -> sqlx::Result<Option<EnvironmentRow>> {
    rows!(
        "select";
        "from environments where tenant_id = $1 and id = $2",
        tenant.as_str(),
        id,
    )
    .fetch_optional(db)
    .await
}

pub async fn get_for_update(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    id: Uuid,
) -> sqlx::Result<Option<EnvironmentRow>> {
    rows!(
        "select";
        "from environments where tenant_id = $1 and id = $2 for update",
        tenant.as_str(),
        id,
    )
    .fetch_optional(&mut **tx)
    .await
}

/// Newest first. `before_seq` is the `seq` of the last row of the previous page.
pub async fn list<'e>(
    db: impl sqlx::PgExecutor<'e>,
    tenant: &TenantId,
    include_deleted: bool,
    before_seq: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<EnvironmentRow>> {
    rows!(
        "select";
        "from environments
          where tenant_id = $1 and ($2 or status <> 'deleted') and ($3::bigint is null or seq < $3)
          order by seq desc
          limit $4",
        tenant.as_str(),
        include_deleted,
        before_seq,
        limit,
    )
    .fetch_all(db)
    .await
}
