//! `encryption-keys rotate`: re-seal every stored secret under the current
//! key. Safe while the app runs: each value is swapped only if it is still the
//! one that was read (compare-and-set), so a concurrent token refresh wins.

use sqlx::PgPool;

use crate::crypto::{Keyring, SealedColumn};
use crate::ids::TenantId;

/// Every column that holds sealed values, in the order they are re-sealed.
const SITES: &[SealedColumn] = &[
    SealedColumn::AccessToken,
    SealedColumn::RefreshToken,
    SealedColumn::SdkKey,
    SealedColumn::MobileKey,
];

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RotationReport {
    pub resealed: u64,
    /// Values that could not be opened with any configured key.
    pub unreadable: u64,
}

/// One sealed value and the row it sits in (`row_key`: the tenant id for
/// connections, the environment id as text for environments).
struct SealedValue {
    row_key: String,
    tenant_id: String,
    sealed: String,
}

/// The values of `site` not sealed under the key that `prefix` names.
async fn not_under(
    db: &PgPool,
    site: SealedColumn,
    prefix: &str,
) -> sqlx::Result<Vec<SealedValue>> {
    let len = i32::try_from(prefix.len()).unwrap_or(i32::MAX);
    // One statement per column: the macros need literal SQL.
    match site {
        SealedColumn::AccessToken => {
            sqlx::query_as!(
                SealedValue,
                r#"select tenant_id as "row_key!", tenant_id, access_token as "sealed!" from connections
                    where access_token is not null and left(access_token, $1) <> $2"#,
                len,
                prefix,
            )
            .fetch_all(db)
            .await
        }
        SealedColumn::RefreshToken => {
            sqlx::query_as!(
                SealedValue,
                r#"select tenant_id as "row_key!", tenant_id, refresh_token as "sealed!" from connections
                    where refresh_token is not null and left(refresh_token, $1) <> $2"#,
                len,
                prefix,
            )
            .fetch_all(db)
            .await
        }
        SealedColumn::SdkKey => {
            sqlx::query_as!(
                SealedValue,
                r#"select id::text as "row_key!", tenant_id, sdk_key as "sealed!" from environments
                    where sdk_key is not null and left(sdk_key, $1) <> $2"#,
                len,
                prefix,
            )
            .fetch_all(db)
            .await
        }
        SealedColumn::MobileKey => {
            sqlx::query_as!(
                SealedValue,
                r#"select id::text as "row_key!", tenant_id, mobile_key as "sealed!" from environments
                    where mobile_key is not null and left(mobile_key, $1) <> $2"#,
                len,
                prefix,
            )
            .fetch_all(db)
            .await
        }
    }
}

/// Replaces `old` by `resealed` if the row still holds `old`. Returns how
/// many rows changed (0 when a concurrent write won).
async fn swap(
    db: &PgPool,
    site: SealedColumn,
    old: &SealedValue,
    resealed: &str,
) -> sqlx::Result<u64> {
    let (row_key, tenant, sealed) = (&old.row_key, &old.tenant_id, &old.sealed);
    let done = match site {
        SealedColumn::AccessToken => {
            sqlx::query!(
                "update connections set access_token = $1
                  where tenant_id = $2 and tenant_id = $3 and access_token = $4",
                resealed,
                row_key,
                tenant,
                sealed,
            )
            .execute(db)
            .await?
        }
        SealedColumn::RefreshToken => {
            sqlx::query!(
                "update connections set refresh_token = $1
                  where tenant_id = $2 and tenant_id = $3 and refresh_token = $4",
                resealed,
                row_key,
                tenant,
                sealed,
            )
            .execute(db)
            .await?
        }
        SealedColumn::SdkKey => {
            sqlx::query!(
                "update environments set sdk_key = $1
                  where id::text = $2 and tenant_id = $3 and sdk_key = $4",
                resealed,
                row_key,
                tenant,
                sealed,
            )
            .execute(db)
            .await?
        }
        SealedColumn::MobileKey => {
            sqlx::query!(
                "update environments set mobile_key = $1
                  where id::text = $2 and tenant_id = $3 and mobile_key = $4",
                resealed,
                row_key,
                tenant,
                sealed,
            )
            .execute(db)
            .await?
        }
    };
    Ok(done.rows_affected())
}

pub async fn reseal_all(db: &PgPool, keyring: &Keyring) -> anyhow::Result<RotationReport> {
    let mut report = RotationReport::default();
    let current_prefix = format!("v1.{}.", keyring.current_key_id());
    for &site in SITES {
        for value in not_under(db, site, &current_prefix).await? {
            let Ok(tenant_id) = TenantId::parse(&value.tenant_id) else {
                report.unreadable += 1;
                continue;
            };
            match keyring.reseal(&tenant_id, site, &value.sealed) {
                Ok(resealed) => {
                    report.resealed += swap(db, site, &value, &resealed).await?;
                }
                Err(err) => {
                    tracing::error!(column = site.name(), tenant_id = %value.tenant_id, error = %err,
                        "a stored secret could not be opened with any configured key");
                    report.unreadable += 1;
                }
            }
        }
    }
    Ok(report)
}
