//! Queries over all of a tenant's generations: offboarding, the TTL and the
//! sweeper.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};

use super::{Desired, EnvironmentRow, FailureCode, Status};
use crate::ids::{EphemeralId, TenantId};

/// Every generation of the tenant still wanted, now unwanted (offboarding).
pub async fn mark_all_absent(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<EnvironmentRow>> {
    rows!(
        "update environments
            set desired = 'absent', status = 'deleting', refused = false, failure_code = null, revision = revision + 1,
                last_error = null, updated_at = $2
          where tenant_id = $1 and desired = 'present'
          returning";
        "",
        tenant.as_str(),
        now as DateTime<Utc>,
    )
    .fetch_all(&mut **tx)
    .await
}

/// Generations of the tenant not yet deleted upstream (offboarding waits for them).
pub async fn count_live<'e>(db: impl PgExecutor<'e>, tenant: &TenantId) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select count(*) as "count!" from environments where tenant_id = $1 and status <> 'deleted'"#,
        tenant.as_str(),
    )
    .fetch_one(db)
    .await
}

/// Generations of the tenant the workers are still deleting.
pub async fn count_deleting<'e>(db: impl PgExecutor<'e>, tenant: &TenantId) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select count(*) as "count!" from environments where tenant_id = $1 and status = 'deleting'"#,
        tenant.as_str(),
    )
    .fetch_one(db)
    .await
}

/// Tenants that have generations past their `expires_at`. A scan over every
/// tenant: the TTL clock is the system's, not any caller's.
pub async fn tenants_with_expired(db: &PgPool, now: DateTime<Utc>) -> sqlx::Result<Vec<TenantId>> {
    let raw: Vec<String> = sqlx::query_scalar!(
        "select distinct tenant_id from environments where desired = 'present' and expires_at <= $1",
        now as DateTime<Utc>,
    )
    .fetch_all(db)
    .await?;
    Ok(raw
        .into_iter()
        .filter_map(|t| TenantId::parse(&t).ok())
        .collect())
}

/// Marks the tenant's expired generations unwanted, returning them.
pub async fn expire(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<EnvironmentRow>> {
    rows!(
        "update environments
            set desired = 'absent', status = 'deleting', refused = false, failure_code = null, revision = revision + 1,
                last_error = null, updated_at = $2
          where id in (select id from environments
                        where tenant_id = $1 and desired = 'present' and expires_at <= $2
                        order by expires_at
                        limit $3
                        for update skip locked)
          returning";
        "",
        tenant.as_str(),
        now as DateTime<Utc>,
        limit,
    )
    .fetch_all(&mut **tx)
    .await
}

/// Which of the listed environments (parallel `keys` and LaunchDarkly `ids`)
/// the sweeper may delete: those whose key the tenant recorded (every key is
/// recorded before its create is sent), with no generation under that key
/// still live, and not an environment other than the one recorded there.
pub async fn sweepable_keys(
    db: &PgPool,
    tenant: &TenantId,
    project_key: &str,
    keys: &[String],
    ids: &[String],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        r#"select u.key as "key!" from unnest($3::text[], $4::text[]) as u(key, id)
          where exists (select 1 from environments e
                         where e.tenant_id = $1 and e.project_key = $2 and e.environment_key = u.key)
            and not exists (select 1 from environments e
                             where e.tenant_id = $1 and e.project_key = $2 and e.environment_key = u.key
                               and (e.status <> 'deleted' or e.client_side_id <> u.id))"#,
        tenant.as_str(),
        project_key,
        keys,
        ids,
    )
    .fetch_all(db)
    .await
}

/// Every project the tenant's generations were made in, with the source
/// environments they were cloned from there (the sweeper looks in each).
pub async fn projects_with_sources(
    db: &PgPool,
    tenant: &TenantId,
) -> sqlx::Result<Vec<(String, Vec<String>)>> {
    let rows = sqlx::query!(
        r#"select project_key as "project_key!",
                  array_agg(distinct source_environment_key) as "sources!"
             from environments where tenant_id = $1
            group by project_key
            order by project_key"#,
        tenant.as_str(),
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.project_key, r.sources))
        .collect())
}
