//! LaunchDarkly rate-limit state in Postgres, so every replica holds back
//! for an account the moment any replica learns it is throttled, and replicas
//! take the requests of a small budget from one shared count.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::launchdarkly::{
    BoxFuture, Bucket, Lesson, RateLimitStore, Reservation, SAME_WINDOW_SLACK, SharedSeed,
    StoreError, UNKNOWN_END_EXPIRY,
};
use crate::store::ratelimits;

fn store_error(err: sqlx::Error) -> StoreError {
    Box::new(err)
}

#[derive(Debug, Clone)]
pub struct PgRateLimitStore {
    db: crate::db::Db,
}

impl PgRateLimitStore {
    pub fn new(db: crate::db::Db) -> Self {
        Self { db }
    }

    /// Forgets blocks and shared budgets that ended before `before`.
    pub async fn purge(db: &PgPool, before: DateTime<Utc>) -> sqlx::Result<u64> {
        let blocks = ratelimits::purge(db, before).await?;
        let budgets = ratelimits::purge_budgets(db, before).await?;
        Ok(blocks + budgets)
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

    fn reserve<'a>(
        &'a self,
        account: &'a str,
        bucket: &'a Bucket,
        seed: SharedSeed,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Reservation, StoreError>> {
        Box::pin(async move {
            let seed = ratelimits::Seed {
                remaining: seed.remaining,
                window_end: seed.window_end,
                capacity: seed.capacity,
            };
            let row = ratelimits::reserve(
                &self.db,
                account,
                &bucket.key(),
                seed,
                now,
                now - UNKNOWN_END_EXPIRY,
            )
            .await
            .map_err(store_error)?;
            Ok(match row {
                Some(row) if row.taken => Reservation::Taken {
                    window: row.opened_at,
                    probe: row.capacity == 0,
                    capacity: row.capacity,
                },
                Some(ratelimits::Reserved {
                    window_end: Some(end),
                    ..
                }) if end > now => Reservation::Hold(end),
                // Spent with the end not told yet, or read from a snapshot older
                // than the row that refused: ask again.
                _ => Reservation::Unknown,
            })
        })
    }

    fn release<'a>(
        &'a self,
        account: &'a str,
        bucket: &'a Bucket,
        window: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            ratelimits::release(&self.db, account, &bucket.key(), window)
                .await
                .map_err(store_error)
        })
    }

    fn learn<'a>(
        &'a self,
        account: &'a str,
        lesson: &'a Lesson,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let answer = ratelimits::Answer {
            remaining: lesson.remaining,
            reset: lesson.reset,
            limited: lesson.limited,
            in_flight: lesson.in_flight,
        };
        Box::pin(async move {
            ratelimits::learn(
                &self.db,
                account,
                &lesson.bucket.key(),
                answer,
                SAME_WINDOW_SLACK,
                now,
            )
            .await
            .map_err(store_error)
        })
    }

    fn forget_probe<'a>(
        &'a self,
        account: &'a str,
        bucket: &'a Bucket,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            ratelimits::forget_probe(&self.db, account, &bucket.key())
                .await
                .map_err(store_error)
        })
    }
}
