//! sqlx's own migration bookkeeping (`_sqlx_migrations`), read-only.

use sqlx::PgExecutor;

/// The newest migration version applied successfully, if any.
pub async fn latest_applied<'e>(db: impl PgExecutor<'e>) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!("select max(version) from _sqlx_migrations where success")
        .fetch_one(db)
        .await
}
