//! Internal API keys: `lde_` + 40 random characters, shown once; only the
//! SHA-256 is stored.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::PgPool;
use uuid::Uuid;

use super::{hash_secret, random_alphanumeric};
use crate::ids::TenantId;

pub const KEY_PREFIX: &str = "lde_";
const RANDOM_LEN: usize = 40;

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub display_prefix: String,
    pub tenant_id: OptionalTenant,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A nullable tenant id column (null: the vendor backend's key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionalTenant(pub Option<TenantId>);

/// True when the presented string has the shape of one of our keys, so a
/// malformed header is refused without a database round trip.
pub fn looks_like_key(presented: &str) -> bool {
    presented.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        rest.len() == RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

pub async fn create(
    db: &PgPool,
    name: &str,
    tenant: Option<&TenantId>,
    now: DateTime<Utc>,
) -> sqlx::Result<(ApiKey, SecretString)> {
    let key = format!("{KEY_PREFIX}{}", random_alphanumeric(RANDOM_LEN));
    let record = sqlx::query_as!(
        ApiKey,
        r#"insert into api_keys (id, name, display_prefix, key_hash, tenant_id, created_at)
         values ($1, $2, $3, $4, $5, $6)
         returning id, name, display_prefix, tenant_id as "tenant_id!: OptionalTenant",
                   created_at as "created_at: _", last_used_at as "last_used_at: _", revoked_at as "revoked_at: _""#,
        Uuid::new_v4(),
        name,
        &key[..KEY_PREFIX.len() + 6],
        hash_secret(&key),
        tenant.map(TenantId::as_str),
        now as DateTime<Utc>,
    )
    .fetch_one(db)
    .await?;
    Ok((record, SecretString::from(key)))
}

pub async fn list(db: &PgPool) -> sqlx::Result<Vec<ApiKey>> {
    sqlx::query_as!(
        ApiKey,
        r#"select id, name, display_prefix, tenant_id as "tenant_id!: OptionalTenant",
                  created_at as "created_at: _", last_used_at as "last_used_at: _", revoked_at as "revoked_at: _"
             from api_keys order by created_at, id"#,
    )
    .fetch_all(db)
    .await
}

/// Revokes by id or by the displayed prefix. Returns how many keys it revoked.
pub async fn revoke(db: &PgPool, id_or_prefix: &str, now: DateTime<Utc>) -> sqlx::Result<u64> {
    let id = Uuid::parse_str(id_or_prefix).ok();
    let done = sqlx::query!(
        "update api_keys set revoked_at = $3
          where revoked_at is null and (id = $1 or display_prefix = $2)",
        id,
        id_or_prefix,
        now as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// The live key matching the presented secret, if any.
pub async fn authenticate(
    db: &PgPool,
    presented: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<ApiKey>> {
    let key = sqlx::query_as!(
        ApiKey,
        r#"select id, name, display_prefix, tenant_id as "tenant_id!: OptionalTenant",
                  created_at as "created_at: _", last_used_at as "last_used_at: _", revoked_at as "revoked_at: _"
             from api_keys where key_hash = $1 and revoked_at is null"#,
        hash_secret(presented),
    )
    .fetch_optional(db)
    .await?;
    if let Some(key) = &key {
        // Coarse last-used tracking: at most one write a minute per key.
        if key
            .last_used_at
            .is_none_or(|t| now - t > chrono::Duration::minutes(1))
        {
            sqlx::query!(
                "update api_keys set last_used_at = $2 where id = $1",
                key.id,
                now as DateTime<Utc>,
            )
            .execute(db)
            .await?;
        }
    }
    Ok(key)
}
