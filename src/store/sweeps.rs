//! The sweeper's sightings: environments found upstream with this
//! deployment's tags and no live record, and when each was first seen.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::ids::TenantId;

/// Records that `orphan_keys` of the project are orphaned now (keeping the
/// first sighting of each) and forgets the project's other sightings, in one
/// statement. Returns each orphan's key with when it was first seen.
pub async fn record_sightings<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
    project_key: &str,
    orphan_keys: &[String],
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<(String, DateTime<Utc>)>> {
    let rows = sqlx::query!(
        r#"with forgotten as (
             delete from sweep_sightings
              where tenant_id = $1 and project_key = $2 and not (environment_key = any($3))
         ), seen as (
             insert into sweep_sightings (tenant_id, project_key, environment_key, first_seen_at)
             select $1, $2, k, $4 from unnest($3::text[]) as k
             on conflict (tenant_id, project_key, environment_key)
             do update set first_seen_at = sweep_sightings.first_seen_at
             returning environment_key, first_seen_at
         )
         select environment_key as "environment_key!", first_seen_at as "first_seen_at!: DateTime<Utc>" from seen"#,
        tenant.as_str(),
        project_key,
        orphan_keys,
        now as DateTime<Utc>,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.environment_key, r.first_seen_at))
        .collect())
}

/// Forgets one sighting (the sweeper deleted that environment).
pub async fn forget_sighting<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
    project_key: &str,
    environment_key: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "delete from sweep_sightings where tenant_id = $1 and project_key = $2 and environment_key = $3",
        tenant.as_str(),
        project_key,
        environment_key,
    )
    .execute(db)
    .await?;
    Ok(())
}
