//! The gate every LaunchDarkly request passes: [`RateLimitGate`] and the
//! [`Permit`] a request holds until its answer is read.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::budget::{Budgets, Decision};
use super::headers::RateLimitHeaders;
use super::{
    Bucket, Clock, InMemoryRateLimitStore, MAX_BLOCK, MAX_BUDGET_WAIT, MAX_JITTER_MS,
    RateLimitStore, SystemClock,
};

/// One request let through the gate. Hand it back with the answer
/// ([`RateLimitGate::observe`]); dropped without an answer (a transport error), it
/// still frees its place.
pub(crate) struct Permit {
    budgets: Arc<Budgets>,
    account: String,
    buckets: [Bucket; 2],
    done: bool,
}

impl Permit {
    fn finish(&mut self, answer: Option<(&RateLimitHeaders, bool)>, now: DateTime<Utc>) {
        if !self.done {
            self.done = true;
            self.budgets
                .finish(&self.account, &self.buckets, answer, now);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.finish(None, Utc::now());
    }
}

/// Shared rate-limit state plus the clock it is judged by. Cheap to clone; give
/// every [`LdClient`](crate::launchdarkly::LdClient) of a process the same gate.
#[derive(Clone)]
pub struct RateLimitGate {
    store: Arc<dyn RateLimitStore>,
    clock: Arc<dyn Clock>,
    budgets: Arc<Budgets>,
}

impl fmt::Debug for RateLimitGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitGate").finish_non_exhaustive()
    }
}

impl Default for RateLimitGate {
    fn default() -> Self {
        Self::in_memory()
    }
}

impl RateLimitGate {
    pub fn new(store: Arc<dyn RateLimitStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            budgets: Arc::default(),
        }
    }

    /// A process-local gate on the wall clock.
    pub fn in_memory() -> Self {
        Self::new(
            Arc::new(InMemoryRateLimitStore::new()),
            Arc::new(SystemClock),
        )
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The time before which nothing may be sent for `account` on `route`, if any,
    /// as recorded in the (shared) store.
    pub async fn blocked_until(&self, account: &str, route: &str) -> Option<DateTime<Utc>> {
        let buckets = [Bucket::Global, Bucket::Route(route.to_owned())];
        match self
            .store
            .blocked_until(account, &buckets, self.clock.now())
            .await
        {
            Ok(until) => until,
            Err(err) => {
                tracing::warn!(error = %err, "rate-limit store unavailable; sending anyway");
                None
            }
        }
    }

    /// Lets one request for `account` on `route` go, or says until when the budget
    /// is spent (`Err(reset)`; nothing may be sent before then). While the budget is
    /// being learned this waits for the answer that tells it.
    pub(crate) async fn acquire(
        &self,
        account: &str,
        route: &str,
    ) -> Result<Permit, DateTime<Utc>> {
        if let Some(until) = self.blocked_until(account, route).await {
            return Err(until);
        }
        let buckets = [Bucket::Global, Bucket::Route(route.to_owned())];
        let started = Instant::now();
        loop {
            let answered = self.budgets.answered.notified();
            let waited = started.elapsed();
            let force = waited >= MAX_BUDGET_WAIT;
            match self
                .budgets
                .try_take(account, &buckets, self.clock.now(), force)
            {
                Decision::Go => {
                    return Ok(Permit {
                        budgets: self.budgets.clone(),
                        account: account.to_owned(),
                        buckets,
                        done: false,
                    });
                }
                Decision::Hold(until) => {
                    tracing::debug!(%route, %until, "held back: LaunchDarkly budget spent until the reset");
                    return Err(until);
                }
                Decision::Wait => {
                    // Woken by any answer; the timeout only guards a lost wake-up.
                    let left = (MAX_BUDGET_WAIT - waited).min(Duration::from_millis(250));
                    let _ = tokio::time::timeout(left, answered).await;
                }
            }
        }
    }

    /// Reads the rate-limit headers of an answer to the request `permit` let through,
    /// updates the budget and records any exhausted bucket in the store.
    /// Returns the reset time when the answer is a 429.
    pub(crate) async fn observe(
        &self,
        mut permit: Permit,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Option<DateTime<Utc>> {
        let now = self.clock.now();
        let limits = RateLimitHeaders::parse(headers, now);
        let limited = status == StatusCode::TOO_MANY_REQUESTS;
        let route_exhausted = limits.route_remaining.is_some_and(|r| r <= 0);
        let global_exhausted = limits.global_remaining.is_some_and(|r| r <= 0);

        let (until, buckets) = if limited {
            let until = limits.reset_after_429(now);
            // A 429 naming no exhausted bucket (an IP limit, say) holds back the
            // whole account: safest, and still never another account.
            let global = global_exhausted || !route_exhausted;
            (Some(until), (global, route_exhausted))
        } else {
            let until = limits.reset.filter(|reset| *reset > now);
            (until, (global_exhausted, route_exhausted))
        };
        let until = until.map(|until| until.min(now + MAX_BLOCK));
        let learned = RateLimitHeaders {
            reset: if limited { until } else { limits.reset },
            ..limits
        };
        permit.finish(Some((&learned, limited)), now);

        let until = until?;
        let account = permit.account.as_str();
        let (global, route_bucket) = buckets;
        if global {
            self.record(account, Bucket::Global, until).await;
        }
        if route_bucket {
            self.record(account, permit.buckets[1].clone(), until).await;
        }
        limited.then_some(until)
    }

    async fn record(&self, account: &str, bucket: Bucket, until: DateTime<Utc>) {
        tracing::debug!(%bucket, %until, "LaunchDarkly rate limit reached; holding requests back");
        if let Err(err) = self.store.record_block(account, &bucket, until).await {
            tracing::warn!(error = %err, %bucket, "could not record rate-limit block");
        }
    }

    /// How long until `until` on the gate's clock (zero if it has passed).
    pub(crate) fn duration_until(&self, until: DateTime<Utc>) -> Duration {
        (until - self.clock.now())
            .to_std()
            .unwrap_or(Duration::ZERO)
    }

    /// A small random delay to add when waking after a block, so that the workers
    /// waiting on one account do not all hit LaunchDarkly in the same millisecond.
    pub(crate) fn jitter() -> Duration {
        Duration::from_millis(rand::thread_rng().gen_range(0..=MAX_JITTER_MS))
    }
}
