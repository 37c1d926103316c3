//! What a request about one ephemeral environment does: lock it, read its
//! generations, insert one, mark it unwanted or try it again.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::{Desired, EnvironmentRow, FailureCode, NewEnvironment, Status};
use crate::ids::{EphemeralId, TenantId};

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
        format!("environment/{tenant}/{ephemeral_id}"),
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

pub async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    new: &NewEnvironment<'_>,
    now: DateTime<Utc>,
) -> sqlx::Result<EnvironmentRow> {
    rows!(
        "insert into environments (id, tenant_id, ephemeral_id, generation, desired, status, request,
                                   project_key, environment_key, environment_name, source_environment_key,
                                   color, tags, flags, expires_at, created_at, updated_at)
         values ($1, $2, $3, $4, 'present', 'pending', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)
         returning";
        "",
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
    )
    .fetch_one(&mut **tx)
    .await
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
pub async fn list(
    db: &PgPool,
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
