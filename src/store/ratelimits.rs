//! LaunchDarkly rate-limit blocks, shared by every replica. Keyed by
//! LaunchDarkly account (not tenant): tenants on one account share its limits.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// The latest end of a block still running on any of `buckets` of `account`.
pub async fn blocked_until<'e>(
    db: impl PgExecutor<'e>,
    account: &str,
    buckets: &[String],
    now: DateTime<Utc>,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        r#"select max(reset_at) as "until: DateTime<Utc>" from launchdarkly_rate_limits
            where account_id = $1 and bucket = any($2) and reset_at > $3"#,
        account,
        buckets,
        now as DateTime<Utc>,
    )
    .fetch_one(db)
    .await
}

/// Records a block until `until`; an existing later block is kept.
pub async fn record_block<'e>(
    db: impl PgExecutor<'e>,
    account: &str,
    bucket: &str,
    until: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into launchdarkly_rate_limits (account_id, bucket, reset_at) values ($1, $2, $3)
         on conflict (account_id, bucket) do update
            set reset_at = greatest(launchdarkly_rate_limits.reset_at, excluded.reset_at)",
        account,
        bucket,
        until as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets blocks that ended before `before`. Returns how many.
pub async fn purge<'e>(db: impl PgExecutor<'e>, before: DateTime<Utc>) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "delete from launchdarkly_rate_limits where reset_at < $1",
        before as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
