//! LaunchDarkly rate-limit state in Postgres, so every replica holds back
//! for an account the moment any replica learns it is throttled.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::launchdarkly::{BoxFuture, Bucket, RateLimitStore, StoreError};
use crate::store::ratelimits;

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
        ratelimits::purge(db, before).await
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
            ratelimits::blocked_until(&self.db, account, &keys, now)
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
            ratelimits::record_block(&self.db, account, &bucket.key(), until)
                .await
                .map_err(|e| Box::new(e) as StoreError)
        })
    }
}
