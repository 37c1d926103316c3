//! Where rate-limit blocks are kept: the [`RateLimitStore`] trait and its
//! process-local implementation.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

use super::{BoxFuture, Bucket, StoreError};

/// Where "account A's bucket B is blocked until T" is kept.
///
/// `account` is an opaque key (an LD account id, or a token fingerprint while the
/// account is unknown). Implementations keep the latest `until` per (account,
/// bucket) and may forget entries once they are in the past.
pub trait RateLimitStore: Send + Sync + 'static {
    /// The latest block among `buckets` of `account` that is still after `now`.
    fn blocked_until<'a>(
        &'a self,
        account: &'a str,
        buckets: &'a [Bucket],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<DateTime<Utc>>, StoreError>>;

    /// Blocks `bucket` of `account` until `until` (keeping a later block if one exists).
    fn record_block<'a>(
        &'a self,
        account: &'a str,
        bucket: &'a Bucket,
        until: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// Process-local store.
#[derive(Debug, Default)]
pub struct InMemoryRateLimitStore {
    blocks: Mutex<HashMap<(String, Bucket), DateTime<Utc>>>,
}

impl InMemoryRateLimitStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl RateLimitStore for InMemoryRateLimitStore {
    fn blocked_until<'a>(
        &'a self,
        account: &'a str,
        buckets: &'a [Bucket],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<DateTime<Utc>>, StoreError>> {
        // A poisoned lock only means another thread panicked mid-insert of a plain
        // timestamp; the map is still valid.
        let mut blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        let mut latest = None;
        for bucket in buckets {
            let key = (account.to_owned(), bucket.clone());
            match blocks.get(&key).copied() {
                Some(until) if until > now => latest = latest.max(Some(until)),
                Some(_) => {
                    blocks.remove(&key);
                }
                None => {}
            }
        }
        Box::pin(async move { Ok(latest) })
    }

    fn record_block<'a>(
        &'a self,
        account: &'a str,
        bucket: &'a Bucket,
        until: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = blocks
            .entry((account.to_owned(), bucket.clone()))
            .or_insert(until);
        *entry = (*entry).max(until);
        Box::pin(async { Ok(()) })
    }
}
