//! A tenant's environment settings: which project and source environment to
//! clone, and how new environments are named, coloured and timed.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;

use crate::ids::TenantId;

#[derive(Debug, Clone, Serialize)]
pub struct TenantSettings {
    pub project_key: String,
    pub source_environment_key: String,
    pub name_template: String,
    pub color: String,
    pub default_ttl_seconds: Option<i64>,
    pub key_prefix: String,
    pub updated_at: DateTime<Utc>,
}

pub async fn get<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
) -> sqlx::Result<Option<TenantSettings>> {
    sqlx::query_as!(
        TenantSettings,
        r#"select project_key, source_environment_key, name_template, color, default_ttl_seconds, key_prefix,
                  updated_at as "updated_at: _"
             from tenant_settings where tenant_id = $1"#,
        tenant.as_str(),
    )
    .fetch_optional(db)
    .await
}

pub async fn save<'e>(
    db: impl PgExecutor<'e>,
    tenant: &TenantId,
    s: &TenantSettings,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into tenant_settings (tenant_id, project_key, source_environment_key, name_template, color,
                                      default_ttl_seconds, key_prefix, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         on conflict (tenant_id) do update set
             project_key = excluded.project_key, source_environment_key = excluded.source_environment_key,
             name_template = excluded.name_template, color = excluded.color,
             default_ttl_seconds = excluded.default_ttl_seconds, key_prefix = excluded.key_prefix,
             updated_at = excluded.updated_at",
        tenant.as_str(),
        s.project_key,
        s.source_environment_key,
        s.name_template,
        s.color,
        s.default_ttl_seconds,
        s.key_prefix,
        s.updated_at as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(())
}
