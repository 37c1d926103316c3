//! `encryption-keys rotate`: re-seal every stored secret under the current
//! key. Safe while the app runs: each value is swapped only if it is still the
//! one that was read (compare-and-set), so a concurrent token refresh wins.

use sqlx::PgPool;

use crate::crypto::{Keyring, SealedColumn};
use crate::ids::TenantId;

/// Where sealed values live, and how a row is named for the swap.
struct SealedSite {
    table: &'static str,
    column: &'static str,
    row_key: &'static str,
    kind: SealedColumn,
}

const SITES: &[SealedSite] = &[
    SealedSite {
        table: "connections",
        column: "access_token",
        row_key: "tenant_id",
        kind: SealedColumn::AccessToken,
    },
    SealedSite {
        table: "connections",
        column: "refresh_token",
        row_key: "tenant_id",
        kind: SealedColumn::RefreshToken,
    },
    SealedSite {
        table: "environments",
        column: "sdk_key",
        row_key: "id::text",
        kind: SealedColumn::SdkKey,
    },
    SealedSite {
        table: "environments",
        column: "mobile_key",
        row_key: "id::text",
        kind: SealedColumn::MobileKey,
    },
];

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RotationReport {
    pub resealed: u64,
    /// Values that could not be opened with any configured key.
    pub unreadable: u64,
}

pub async fn reseal_all(db: &PgPool, keyring: &Keyring) -> anyhow::Result<RotationReport> {
    let mut report = RotationReport::default();
    let current_prefix = format!("v1.{}.", keyring.current_key_id());
    for site in SITES {
        // Keys are static identifiers from SITES, never user input.
        let select = format!(
            "select {row_key} as row_key, tenant_id, {column} as sealed from {table}
              where {column} is not null and left({column}, $1) <> $2",
            row_key = site.row_key,
            column = site.column,
            table = site.table,
        );
        let update = format!(
            "update {table} set {column} = $1 where {row_key} = $2 and tenant_id = $3 and {column} = $4",
            row_key = site.row_key,
            column = site.column,
            table = site.table,
        );
        let rows: Vec<(String, String, String)> = sqlx::query_as(&select)
            .bind(i32::try_from(current_prefix.len()).unwrap_or(i32::MAX))
            .bind(&current_prefix)
            .fetch_all(db)
            .await?;
        for (row_key, tenant, sealed) in rows {
            let Ok(tenant_id) = TenantId::parse(&tenant) else {
                report.unreadable += 1;
                continue;
            };
            match keyring.reseal(&tenant_id, site.kind, &sealed) {
                Ok(resealed) => {
                    let done = sqlx::query(&update)
                        .bind(&resealed)
                        .bind(&row_key)
                        .bind(&tenant)
                        .bind(&sealed)
                        .execute(db)
                        .await?;
                    report.resealed += done.rows_affected();
                }
                Err(err) => {
                    tracing::error!(table = site.table, column = site.column, tenant_id = %tenant, error = %err,
                        "a stored secret could not be opened with any configured key");
                    report.unreadable += 1;
                }
            }
        }
    }
    Ok(report)
}
