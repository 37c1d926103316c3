//! LaunchDarkly rate-limit state in Postgres, so every replica holds back
//! for an account the moment any replica learns it is throttled.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::launchdarkly::{BoxFuture, Bucket, RateLimitStore, StoreError};

#[derive(Debug, Clone)]
pub struct PgRateLimitStore {
    db: PgPool,
}

impl PgRateLimitStore {
    pub fn new(db: PgPool) -> Self {
        Self { db }
    }

    /// Forgets blocks that ended before `before`.
    pub async fn purge(db: &PgPool, before: DateTime<Utc>) -> sqlx::Result<u64> {
        let done = sqlx::query("delete from launchdarkly_rate_limits where reset_at < $1")
            .bind(before)
            .execute(db)
            .await?;
        Ok(done.rows_affected())
    }
}

impl RateLimitStore for PgRateLimitStore {
    fn blocked_until<'a>(
        &'a self,
        account: &'a str,
        buckets: &'a [Bucket],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<DateTime<Utc>>, StoreError>> {
        let keys: Vec<String> = buckets.iter().map(Bucket::key).collect();
        Box::pin(async move {
            sqlx::query_scalar(
                "select max(reset_at) from launchdarkly_rate_limits
                  where account_id = $1 and bucket = any($2) and reset_at > $3",
            )
            .bind(account)
            .bind(&keys)
            .bind(now)
            .fetch_one(&self.db)
            .await
            .map_err(|e| Box::new(e) as StoreError)
        })
    }

    fn record_block<'a>(
        &'a self,
        account: &'a str,
        bucket: &'a Bucket,
        until: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query(
                "insert into launchdarkly_rate_limits (account_id, bucket, reset_at) values ($1, $2, $3)
                 on conflict (account_id, bucket) do update
                    set reset_at = greatest(launchdarkly_rate_limits.reset_at, excluded.reset_at)",
            )
            .bind(account)
            .bind(bucket.key())
            .bind(until)
            .execute(&self.db)
            .await
            .map(|_| ())
            .map_err(|e| Box::new(e) as StoreError)
        })
    }
}
