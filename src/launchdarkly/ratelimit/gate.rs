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
    Bucket, Clock, InMemoryRateLimitStore, Lesson, MAX_BLOCK, MAX_BUDGET_WAIT, MAX_JITTER_MS,
    RateLimitStore, Reservation, SHARED_POLL, SharedSeed, SystemClock,
};

/// One request let through the gate. Hand it back with the answer
/// ([`RateLimitGate::observe`]); dropped without an answer (a transport error), it
/// still frees its place.
pub(crate) struct Permit {
    budgets: Arc<Budgets>,
    store: Arc<dyn RateLimitStore>,
    account: String,
    buckets: [Bucket; 2],
    /// The shared counts of `buckets` the request was taken from.
    shared: [Option<Taken>; 2],
    done: bool,
}

/// A request taken from a shared count: from the window opened at `window`;
/// `probe`, the budget is unknown and everybody waits for this request's answer.
#[derive(Debug, Clone, Copy)]
struct Taken {
    window: DateTime<Utc>,
    probe: bool,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("account", &self.account)
            .field("buckets", &self.buckets)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl Permit {
    fn finish(
        &mut self,
        answer: Option<(&RateLimitHeaders, bool)>,
        now: DateTime<Utc>,
    ) -> Vec<Lesson> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        let shared = self.shared.map(|taken| taken.is_some());
        self.budgets
            .finish(&self.account, &self.buckets, &shared, answer, now)
    }

    /// The request is not sent after all: its place goes back to the local budget.
    fn cancel(mut self) {
        self.done = true;
        self.budgets.untake(&self.account, &self.buckets);
    }
}

/// What the shared count said to one request, over all its small buckets.
enum Shared {
    /// Taken from these buckets' shared counts (or the store failed: sent anyway).
    Taken([Option<Taken>; 2]),
    Hold(DateTime<Utc>),
    Unknown,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.finish(None, Utc::now());
        // A probe dropped unanswered (the request was cancelled, say) gives its
        // place in the shared count back, as `RateLimitGate::abandon` does, so
        // other replicas need not wait for the count to expire.
        let probes: Vec<_> = self
            .buckets
            .iter()
            .zip(&mut self.shared)
            .filter_map(|(bucket, taken)| match taken.take() {
                Some(Taken {
                    window,
                    probe: true,
                }) => Some((bucket.clone(), window)),
                _ => None,
            })
            .collect();
        if probes.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let store = self.store.clone();
            let account = self.account.clone();
            runtime.spawn(async move {
                for (bucket, window) in probes {
                    if let Err(err) = store.release(&account, &bucket, window).await {
                        tracing::warn!(error = %err, %bucket, "could not give back a shared rate-limit probe");
                    }
                }
            });
        }
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
        let buckets = [Bucket::Global, Bucket::Route(route.to_owned())];
        // A block another replica recorded matters only when the budget is
        // small or unknown here; with plenty left, skip the round trip.
        if !self.budgets.plentiful(account, &buckets, self.clock.now()) {
            if let Some(until) = self.blocked_until(account, route).await {
                return Err(until);
            }
        }
        let started = Instant::now();
        loop {
            let answered = self.budgets.answered.notified();
            let waited = started.elapsed();
            let force = waited >= MAX_BUDGET_WAIT;
            let now = self.clock.now();
            let take = self.budgets.try_take(account, &buckets, now, force);
            match take.decision {
                Decision::Go => {
                    let mut permit = Permit {
                        budgets: self.budgets.clone(),
                        store: self.store.clone(),
                        account: account.to_owned(),
                        buckets: buckets.clone(),
                        shared: [None; 2],
                        done: false,
                    };
                    match self.reserve(account, &buckets, &take.shared, now).await {
                        Shared::Taken(shared) => {
                            permit.shared = shared;
                            return Ok(permit);
                        }
                        Shared::Hold(until) => {
                            permit.cancel();
                            tracing::debug!(%route, %until, "held back: the replicas' shared LaunchDarkly budget is spent until the reset");
                            return Err(until);
                        }
                        Shared::Unknown => {
                            permit.cancel();
                            // Another replica's answer may tell the window's end:
                            // ask again shortly (sooner if an answer arrives here).
                            let left = (MAX_BUDGET_WAIT.saturating_sub(waited)).min(SHARED_POLL);
                            let _ = tokio::time::timeout(left, answered).await;
                        }
                    }
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

    /// Takes one request from the shared count of each of `small` (fewest left
    /// first); if one is spent, gives back what was taken from the others. A store
    /// error lets the request go (fail open).
    async fn reserve(
        &self,
        account: &str,
        buckets: &[Bucket; 2],
        small: &[(usize, SharedSeed)],
        now: DateTime<Utc>,
    ) -> Shared {
        let mut shared = [None; 2];
        let mut taken = Vec::new();
        let mut refusal = None;
        for (index, seed) in small {
            let bucket = &buckets[*index];
            match self.store.reserve(account, bucket, *seed, now).await {
                Ok(Reservation::Taken {
                    window,
                    probe,
                    capacity,
                }) => {
                    // What other replicas learned of the budget's size: a
                    // replica whose answers were not a window's first would
                    // otherwise start its next window short, hold back, and
                    // hold back every queued job on the account with it.
                    self.budgets.raise_capacity(account, bucket, capacity);
                    shared[*index] = Some(Taken { window, probe });
                    taken.push((bucket, window));
                }
                Ok(Reservation::Hold(until)) => {
                    refusal = Some(Shared::Hold(until));
                    break;
                }
                Ok(Reservation::Unknown) => {
                    refusal = Some(Shared::Unknown);
                    break;
                }
                Err(err) => {
                    tracing::warn!(error = %err, %bucket, "shared rate-limit budget unavailable; sending anyway");
                }
            }
        }
        let Some(refusal) = refusal else {
            return Shared::Taken(shared);
        };
        for (bucket, window) in taken {
            if let Err(err) = self.store.release(account, bucket, window).await {
                tracing::warn!(error = %err, %bucket, "could not give back a shared rate-limit reservation");
            }
        }
        refusal
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
        let lessons = permit.finish(Some((&learned, limited)), now);
        for lesson in &lessons {
            if let Err(err) = self.store.learn(&permit.account, lesson, now).await {
                tracing::warn!(error = %err, bucket = %lesson.bucket, "could not update the shared rate-limit budget");
            }
        }
        // A probe whose answer did not report its bucket: that bucket is not paced,
        // and nobody need wait for it.
        for (bucket, taken) in permit.buckets.iter().zip(permit.shared) {
            let unreported = !lessons.iter().any(|lesson| lesson.bucket == *bucket);
            if taken.is_some_and(|taken| taken.probe) && unreported {
                if let Err(err) = self.store.forget_probe(&permit.account, bucket).await {
                    tracing::warn!(error = %err, %bucket, "could not clear a shared rate-limit probe");
                }
            }
        }
        if permit.shared.iter().any(Option::is_some) {
            // Requests of this process waiting for a shared window's end ask again.
            self.budgets.answered.notify_waiters();
        }
        // Answered: nothing to give back when the permit goes.
        permit.shared = [None; 2];

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

    /// A request `permit` let through got no answer (a transport error). Its place
    /// in the local budget is freed; a probe's place in a shared count is given
    /// back, so the next request probes instead of every replica waiting for an
    /// answer that will not come. (Other shared places are not: LaunchDarkly may
    /// have counted the request.)
    pub(crate) async fn abandon(&self, mut permit: Permit) {
        permit.finish(None, self.clock.now());
        let shared = std::mem::take(&mut permit.shared);
        for (bucket, taken) in permit.buckets.iter().zip(shared) {
            if let Some(Taken {
                window,
                probe: true,
            }) = taken
                && let Err(err) = self.store.release(&permit.account, bucket, window).await
            {
                tracing::warn!(error = %err, %bucket, "could not give back a shared rate-limit probe");
            }
        }
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
