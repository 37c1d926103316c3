//! What the workers record on a generation: created, failed, deleted, or a
//! transient problem they are retrying past. The common outcomes in one
//! statement are in `settle`.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, Postgres, Transaction};
use uuid::Uuid;

use super::{Desired, EnvironmentRow, FailureCode, Status};
use crate::ids::{EphemeralId, TenantId};

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
