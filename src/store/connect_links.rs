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
    create_returning_to(db, tenant, now, ttl, None).await
}

/// Like [`create`], remembering where the customer goes back to in the
/// vendor's app. `return_url` must already be checked against the allowed
/// origins (see `crate::web::return_url`).
pub async fn create_returning_to(
    db: &PgPool,
    tenant: &TenantId,
    now: DateTime<Utc>,
    ttl: Duration,
    return_url: Option<&str>,
) -> sqlx::Result<(SecretString, DateTime<Utc>)> {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let expires_at = now + ttl;
    sqlx::query!(
        "insert into connect_links (token_hash, tenant_id, created_at, expires_at, return_url)
         values ($1, $2, $3, $4, $5)",
        hash_secret(&token),
        tenant.as_str(),
        now as DateTime<Utc>,
        expires_at as DateTime<Utc>,
        return_url,
    )
    .execute(db)
    .await?;
    Ok((SecretString::from(token), expires_at))
}

/// A link that was just used: whose it is and where its customer goes back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    pub tenant: TenantId,
    pub return_url: Option<String>,
}

/// Uses the link: returns its tenant when it is known, unused and unexpired,
/// and marks it used in the same statement so it works exactly once.
pub async fn redeem(
    db: &PgPool,
    token: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<TenantId>> {
    Ok(redeem_returning_to(db, token, now).await?.map(|r| r.tenant))
}

/// Like [`redeem`], with the link's `return_url`.
pub async fn redeem_returning_to(
    db: &PgPool,
    token: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Redeemed>> {
    let row = sqlx::query!(
        "update connect_links l set used_at = $2
           from tenants t
          where l.token_hash = $1 and l.used_at is null and l.expires_at > $2
            and t.id = l.tenant_id and t.offboarding_at is null
         returning l.tenant_id, l.return_url",
        hash_secret(token),
        now as DateTime<Utc>,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(|row| {
        TenantId::parse(&row.tenant_id).ok().map(|tenant| Redeemed {
            tenant,
            return_url: row.return_url,
        })
    }))
}
