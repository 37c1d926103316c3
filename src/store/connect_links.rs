//! Single-use, short-lived links that bind a browser session to a tenant.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use rand::rngs::OsRng;
use secrecy::SecretString;
use sqlx::PgPool;

use super::hash_secret;
use crate::ids::TenantId;

pub async fn create(
    db: &PgPool,
    tenant: &TenantId,
    now: DateTime<Utc>,
    ttl: Duration,
) -> sqlx::Result<(SecretString, DateTime<Utc>)> {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let expires_at = now + ttl;
    sqlx::query!(
        "insert into connect_links (token_hash, tenant_id, created_at, expires_at) values ($1, $2, $3, $4)",
        hash_secret(&token),
        tenant.as_str(),
        now as DateTime<Utc>,
        expires_at as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok((SecretString::from(token), expires_at))
}

/// Uses the link: returns its tenant when it is known, unused and unexpired,
/// and marks it used in the same statement so it works exactly once.
pub async fn redeem(
    db: &PgPool,
    token: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<TenantId>> {
    let tenant: Option<String> = sqlx::query_scalar!(
        "update connect_links l set used_at = $2
           from tenants t
          where l.token_hash = $1 and l.used_at is null and l.expires_at > $2
            and t.id = l.tenant_id and t.offboarding_at is null
         returning l.tenant_id",
        hash_secret(token),
        now as DateTime<Utc>,
    )
    .fetch_optional(db)
    .await?;
    Ok(tenant.and_then(|t| TenantId::parse(&t).ok()))
}
