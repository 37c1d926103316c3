//! LaunchDarkly rate limits, kept per account.
//!
//! LaunchDarkly limits each account globally (`X-Ratelimit-Global-Remaining`) and per
//! route (`X-Ratelimit-Route-Remaining`), both reset at `X-Ratelimit-Reset` (epoch
//! ms), and some routes per IP (`Retry-After` seconds on a 429). Every answer is read;
//! when a bucket is exhausted (or a 429 arrives) the bucket is blocked until its reset
//! time, and nothing is sent for that account and bucket before then. The state is
//! keyed by account, so one throttled tenant never holds back another.
//!
//! The state lives behind [`RateLimitStore`] so that replicas can share it (a
//! Postgres-backed store); [`InMemoryRateLimitStore`] serves a single process.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

pub use futures::future::BoxFuture;

/// Error type a store may fail with. The gate fails open on store errors (sends
/// anyway, LaunchDarkly answers 429 if it must), so a database hiccup never stops
/// all LaunchDarkly traffic.
pub type StoreError = Box<dyn std::error::Error + Send + Sync>;

/// How long to hold back after a 429 that names no reset time. LaunchDarkly's
/// windows are ten seconds long.
const DEFAULT_BACKOFF: TimeDelta = TimeDelta::seconds(10);
/// Upper bound on any block, so a garbled header cannot silence an account for days.
const MAX_BLOCK: TimeDelta = TimeDelta::hours(1);
/// Upper bound of the random delay added when waking after a block.
const MAX_JITTER_MS: u64 = 250;

/// Source of the current time, injectable so tests can move time by hand.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

impl<F> Clock for F
where
    F: Fn() -> DateTime<Utc> + Send + Sync + 'static,
{
    fn now(&self) -> DateTime<Utc> {
        self()
    }
}

/// A rate-limit bucket of one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// The account-wide limit.
    Global,
    /// One route: method plus path template, e.g.
    /// `DELETE /api/v2/projects/{projectKey}/environments/{environmentKey}`.
    Route(String),
}

impl Bucket {
    /// A stable string form, for stores that keep buckets as text.
    pub fn key(&self) -> String {
        match self {
            Self::Global => "global".to_owned(),
            Self::Route(route) => format!("route:{route}"),
        }
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

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

/// Shared rate-limit state plus the clock it is judged by. Cheap to clone; give
/// every [`LdClient`](super::LdClient) of a process the same gate.
#[derive(Clone)]
pub struct RateLimitGate {
    store: Arc<dyn RateLimitStore>,
    clock: Arc<dyn Clock>,
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
        Self { store, clock }
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

    /// The time before which nothing may be sent for `account` on `route`, if any.
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

    /// Reads the rate-limit headers of an answer and records any exhausted bucket.
    /// Returns the reset time when the answer is a 429.
    pub(crate) async fn observe(
        &self,
        account: &str,
        route: &str,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Option<DateTime<Utc>> {
        let now = self.clock.now();
        let limits = RateLimitHeaders::parse(headers, now);
        let route_exhausted = limits.route_remaining.is_some_and(|r| r <= 0);
        let global_exhausted = limits.global_remaining.is_some_and(|r| r <= 0);

        let (until, buckets) = if status == StatusCode::TOO_MANY_REQUESTS {
            let until = limits.reset_after_429(now);
            // A 429 naming no exhausted bucket (an IP limit, say) holds back the
            // whole account: safest, and still never another account.
            let global = global_exhausted || !route_exhausted;
            (Some(until), (global, route_exhausted))
        } else {
            let until = limits.reset.filter(|reset| *reset > now);
            (until, (global_exhausted, route_exhausted))
        };
        let until = until?.min(now + MAX_BLOCK);

        let (global, route_bucket) = buckets;
        if global {
            self.record(account, Bucket::Global, until).await;
        }
        if route_bucket {
            self.record(account, Bucket::Route(route.to_owned()), until)
                .await;
        }
        (status == StatusCode::TOO_MANY_REQUESTS).then_some(until)
    }

    async fn record(&self, account: &str, bucket: Bucket, until: DateTime<Utc>) {
        tracing::info!(%bucket, %until, "LaunchDarkly rate limit reached; holding requests back");
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

/// When a 429 answer (with these headers) lets us try again.
pub(crate) fn reset_after_429(headers: &HeaderMap, now: DateTime<Utc>) -> DateTime<Utc> {
    RateLimitHeaders::parse(headers, now)
        .reset_after_429(now)
        .min(now + MAX_BLOCK)
}

/// The rate-limit headers of one answer.
#[derive(Debug, Default, PartialEq, Eq)]
struct RateLimitHeaders {
    global_remaining: Option<i64>,
    route_remaining: Option<i64>,
    reset: Option<DateTime<Utc>>,
    retry_after: Option<DateTime<Utc>>,
}

impl RateLimitHeaders {
    fn parse(headers: &HeaderMap, now: DateTime<Utc>) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let number = |name: &str| text(name).and_then(|v| v.trim().parse::<i64>().ok());
        Self {
            global_remaining: number("x-ratelimit-global-remaining"),
            route_remaining: number("x-ratelimit-route-remaining"),
            reset: number("x-ratelimit-reset").and_then(DateTime::from_timestamp_millis),
            retry_after: text(RETRY_AFTER.as_str()).and_then(|v| parse_retry_after(v, now)),
        }
    }

    /// When to try again after a 429: the later of the window reset and
    /// `Retry-After` (LaunchDarkly asks to wait at least that long).
    fn reset_after_429(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let candidates = [self.reset, self.retry_after];
        candidates
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .max()
            .unwrap_or(now + DEFAULT_BACKOFF)
    }
}

/// `Retry-After` is seconds, or (rarely) an HTTP date.
fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u32>() {
        return Some(now + TimeDelta::seconds(i64::from(seconds)));
    }
    DateTime::parse_from_rfc2822(value)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap_or_default()
    }

    fn gate_at(now_ms: i64) -> RateLimitGate {
        RateLimitGate::new(
            Arc::new(InMemoryRateLimitStore::new()),
            Arc::new(move || at(now_ms)),
        )
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_str(value) {
                map.insert(*name, value);
            }
        }
        map
    }

    const ROUTE: &str = "GET /api/v2/projects";

    #[tokio::test]
    async fn an_exhausted_route_blocks_only_that_route_of_that_account() {
        let gate = gate_at(1_000_000);
        let answer = headers(&[
            ("x-ratelimit-route-remaining", "0"),
            ("x-ratelimit-global-remaining", "50"),
            ("x-ratelimit-reset", "1005000"),
        ]);
        assert_eq!(
            gate.observe("a", ROUTE, StatusCode::OK, &answer).await,
            None
        );
        assert_eq!(gate.blocked_until("a", ROUTE).await, Some(at(1_005_000)));
        assert_eq!(gate.blocked_until("a", "GET /other").await, None);
        assert_eq!(gate.blocked_until("b", ROUTE).await, None);
    }

    #[tokio::test]
    async fn a_429_with_only_retry_after_blocks_the_account() {
        let gate = gate_at(1_000_000);
        let answer = headers(&[("retry-after", "3")]);
        let reset = gate
            .observe("a", ROUTE, StatusCode::TOO_MANY_REQUESTS, &answer)
            .await;
        assert_eq!(reset, Some(at(1_003_000)));
        assert_eq!(gate.blocked_until("a", "GET /other").await, reset);
    }

    #[tokio::test]
    async fn a_429_waits_for_the_later_of_reset_and_retry_after() {
        let gate = gate_at(1_000_000);
        let answer = headers(&[
            ("x-ratelimit-global-remaining", "0"),
            ("x-ratelimit-reset", "1002000"),
            ("retry-after", "5"),
        ]);
        let reset = gate
            .observe("a", ROUTE, StatusCode::TOO_MANY_REQUESTS, &answer)
            .await;
        assert_eq!(reset, Some(at(1_005_000)));
    }

    #[tokio::test]
    async fn past_blocks_are_ignored_and_remaining_budget_blocks_nothing() {
        let gate = gate_at(1_000_000);
        let stale = headers(&[
            ("x-ratelimit-global-remaining", "0"),
            ("x-ratelimit-reset", "999000"),
        ]);
        gate.observe("a", ROUTE, StatusCode::OK, &stale).await;
        let fine = headers(&[
            ("x-ratelimit-global-remaining", "7"),
            ("x-ratelimit-reset", "1009000"),
        ]);
        gate.observe("a", ROUTE, StatusCode::OK, &fine).await;
        assert_eq!(gate.blocked_until("a", ROUTE).await, None);
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = at(0);
        assert_eq!(parse_retry_after("2", now), Some(at(2_000)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:09 GMT", now),
            Some(at(9_000))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
