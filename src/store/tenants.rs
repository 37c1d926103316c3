use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};

use crate::ids::TenantId;
use crate::store::connections::{AuthKind, ConnectionStatus, ConnectionSummary};
use crate::store::settings::TenantSettings;

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub display_name: String,
    pub offboarding_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub enum Upserted {
    Created(Tenant),
    Updated(Tenant),
    /// The tenant is being offboarded and cannot be changed.
    Offboarding,
}

/// Creates the tenant, or renames it. Refuses while it is being offboarded.
pub async fn upsert(
    db: &PgPool,
    id: &TenantId,
    display_name: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Upserted> {
    let row = sqlx::query!(
        r#"insert into tenants as t (id, display_name, created_at, updated_at)
         values ($1, $2, $3, $3)
         on conflict (id) do update
            set display_name = excluded.display_name,
                updated_at = case when t.display_name = excluded.display_name then t.updated_at else excluded.updated_at end
          where t.offboarding_at is null
         returning t.id as "id: TenantId", t.display_name, t.offboarding_at as "offboarding_at: DateTime<Utc>",
                   t.created_at as "created_at: DateTime<Utc>", t.updated_at as "updated_at: DateTime<Utc>",
                   (xmax = 0) as "created!""#,
        id.as_str(),
        display_name,
        now as DateTime<Utc>,
    )
    .fetch_optional(db)
    .await?;
    Ok(match row {
        None => Upserted::Offboarding,
        Some(r) => {
            let tenant = Tenant {
                id: r.id,
                display_name: r.display_name,
                offboarding_at: r.offboarding_at,
                created_at: r.created_at,
                updated_at: r.updated_at,
            };
            if r.created {
                Upserted::Created(tenant)
            } else {
                Upserted::Updated(tenant)
            }
        }
    })
}

pub async fn get<'e>(db: impl PgExecutor<'e>, id: &TenantId) -> sqlx::Result<Option<Tenant>> {
    sqlx::query_as!(
        Tenant,
        r#"select id as "id: TenantId", display_name, offboarding_at as "offboarding_at: _",
                  created_at as "created_at: _", updated_at as "updated_at: _"
             from tenants where id = $1"#,
        id.as_str(),
    )
    .fetch_optional(db)
    .await
}

/// A tenant with what the API shows of its connection (never a token) and
/// its settings.
#[derive(Debug, Clone)]
pub struct TenantOverview {
    pub tenant: Tenant,
    pub connection: Option<ConnectionSummary>,
    pub settings: Option<TenantSettings>,
}

/// The tenant, its connection summary and its settings in one indexed query
/// (both joined tables are keyed by the tenant id).
pub async fn overview<'e>(
    db: impl PgExecutor<'e>,
    id: &TenantId,
) -> sqlx::Result<Option<TenantOverview>> {
    let Some(r) = sqlx::query!(
        r#"select t.id as "id: TenantId", t.display_name, t.offboarding_at as "offboarding_at: DateTime<Utc>",
                  t.created_at as "created_at: DateTime<Utc>", t.updated_at as "updated_at: DateTime<Utc>",
                  c.status as "connection_status?: ConnectionStatus", c.auth_kind as "auth_kind?: AuthKind",
                  c.account_id as "account_id?", c.account_label as "account_label?", c.scope as "scope?",
                  c.access_expires_at as "access_expires_at?: DateTime<Utc>",
                  c.connected_at as "connected_at?: DateTime<Utc>",
                  s.project_key as "project_key?", s.source_environment_key as "source_environment_key?",
                  s.name_template as "name_template?", s.color as "color?",
                  s.default_ttl_seconds as "default_ttl_seconds?", s.key_prefix as "key_prefix?",
                  s.updated_at as "settings_updated_at?: DateTime<Utc>"
             from tenants t
             left join connections c on c.tenant_id = t.id
             left join tenant_settings s on s.tenant_id = t.id
            where t.id = $1"#,
        id.as_str(),
    )
    .fetch_optional(db)
    .await?
    else {
        return Ok(None);
    };
    // The not-null columns of each joined table tell whether it had a row.
    let connection = match (
        r.connection_status,
        r.auth_kind,
        r.account_id,
        r.connected_at,
    ) {
        (Some(status), Some(auth_kind), Some(account_id), Some(connected_at)) => {
            Some(ConnectionSummary {
                status,
                auth_kind,
                account_id,
                account_label: r.account_label,
                scope: r.scope,
                access_expires_at: r.access_expires_at,
                connected_at,
            })
        }
        _ => None,
    };
    let settings = SettingsColumns {
        project_key: r.project_key,
        source_environment_key: r.source_environment_key,
        name_template: r.name_template,
        color: r.color,
        default_ttl_seconds: r.default_ttl_seconds,
        key_prefix: r.key_prefix,
        updated_at: r.settings_updated_at,
    }
    .settings();
    Ok(Some(TenantOverview {
        tenant: Tenant {
            id: r.id,
            display_name: r.display_name,
            offboarding_at: r.offboarding_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        },
        connection,
        settings,
    }))
}

/// Marks the tenant as being offboarded. Returns false when it does not exist.
pub async fn start_offboarding<'e>(
    db: impl PgExecutor<'e>,
    id: &TenantId,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update tenants set offboarding_at = coalesce(offboarding_at, $2), updated_at = $2 where id = $1",
        id.as_str(),
        now as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Forgets the tenant and, by cascade, every row it owns (tokens included).
pub async fn delete<'e>(db: impl PgExecutor<'e>, id: &TenantId) -> sqlx::Result<bool> {
    let done = sqlx::query!("delete from tenants where id = $1", id.as_str())
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The settings' columns as a left join reads them: all there, or none.
struct SettingsColumns {
    project_key: Option<String>,
    source_environment_key: Option<String>,
    name_template: Option<String>,
    color: Option<String>,
    default_ttl_seconds: Option<i64>,
    key_prefix: Option<String>,
    updated_at: Option<DateTime<Utc>>,
}

impl SettingsColumns {
    fn settings(self) -> Option<TenantSettings> {
        Some(TenantSettings {
            project_key: self.project_key?,
            source_environment_key: self.source_environment_key?,
            name_template: self.name_template?,
            color: self.color?,
            default_ttl_seconds: self.default_ttl_seconds,
            key_prefix: self.key_prefix?,
            updated_at: self.updated_at?,
        })
    }
}
