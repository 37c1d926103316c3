use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};

use crate::ids::TenantId;

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
