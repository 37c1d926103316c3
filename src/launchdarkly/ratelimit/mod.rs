//! LaunchDarkly rate limits, kept per account.
//!
//! LaunchDarkly limits each account globally (`X-Ratelimit-Global-Remaining`) and per
//! route (`X-Ratelimit-Route-Remaining`), both reset at `X-Ratelimit-Reset` (epoch
//! ms), and some routes per IP (`Retry-After` seconds on a 429). Every answer is read.
//!
//! Two layers keep requests inside the budget:
//! - **Pacing** (this process): per (account, bucket) the gate keeps what is left of
//!   the current window, takes one off *before* each request goes out and corrects it
//!   from every answer. When nothing is left, requests are held until the reset
//!   instant instead of being sent into a 429; a fresh window starts from the largest
//!   budget the last window showed. While the budget is unknown (the very
//!   first request of an account), one request goes out alone and the others wait for
//!   its answer. So a burst within the window needs no 429 at all.
//! - **Blocks** (shared): an exhausted bucket or a 429 is recorded in a
//!   [`RateLimitStore`] so that replicas share it (a Postgres-backed store);
//!   [`InMemoryRateLimitStore`] serves a single process.
//!
//! All state is keyed by account, so one throttled tenant never holds back another.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

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
/// An answer whose reset lies within this of the window we know belongs to it.
/// (LaunchDarkly's windows are ten seconds; the reset header of one window can move
/// a little when the global and route windows opened at different instants.)
const SAME_WINDOW_SLACK: TimeDelta = TimeDelta::milliseconds(500);
/// How long a request waits for another's answer to learn the budget before it is
/// sent anyway (the answers it waits for are bounded by the request timeout).
const MAX_BUDGET_WAIT: Duration = Duration::from_secs(30);
/// Budgets kept before the stale ones are forgotten.
const MAX_BUDGETS: usize = 10_000;

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

/// What this process knows of one bucket's budget.
#[derive(Debug, Default)]
struct Budget {
    /// Whether answers report this bucket (with a usable reset instant); `None`
    /// until the first answer.
    tracked: Option<bool>,
    /// End of the window `remaining` belongs to; `None` while a fresh window's
    /// first answer is awaited.
    reset: Option<DateTime<Utc>>,
    /// Requests that may still be sent before `reset`, this process's own
    /// requests already taken off; `None` while unknown.
    remaining: Option<i64>,
    /// The largest budget a window has shown: what a fresh window starts from.
    capacity: Option<i64>,
    /// The largest budget the current window has shown; becomes `capacity` when
    /// the window ends, so a lowered limit is learned within one window.
    window_best: Option<i64>,
    /// Requests sent and not answered yet.
    in_flight: u32,
}

/// What to do with a request, judged on one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Go,
    /// Spent until this instant.
    Hold(DateTime<Utc>),
    /// The budget is unknown and an answer that tells it is on its way.
    Wait,
}

impl Decision {
    /// The stricter of two.
    fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::Hold(a), Self::Hold(b)) => Self::Hold(a.max(b)),
            (Self::Hold(a), _) | (_, Self::Hold(a)) => Self::Hold(a),
            (Self::Wait, _) | (_, Self::Wait) => Self::Wait,
            (Self::Go, Self::Go) => Self::Go,
        }
    }
}

impl Budget {
    fn decide(&mut self, now: DateTime<Utc>) -> Decision {
        if self.reset.is_some_and(|reset| reset <= now) {
            // The window is over: a fresh one starts from the known capacity.
            self.reset = None;
            if let Some(best) = self.window_best.take() {
                self.capacity = Some(best);
            }
            self.remaining = self.capacity;
        }
        // With nothing on its way that could tell us more, one request goes out.
        let wait_or_probe = if self.in_flight > 0 {
            Decision::Wait
        } else {
            Decision::Go
        };
        match (self.tracked, self.remaining) {
            (Some(false), _) => Decision::Go,
            (None, _) | (Some(true), None) => wait_or_probe,
            (Some(true), Some(n)) if n > 0 => Decision::Go,
            (Some(true), Some(_)) => match self.reset {
                Some(reset) => Decision::Hold(reset),
                None => wait_or_probe,
            },
        }
    }

    fn take(&mut self) {
        self.in_flight = self.in_flight.saturating_add(1);
        if let Some(n) = &mut self.remaining {
            *n -= 1;
        }
    }

    /// Learns from an answer: `remaining` as reported for this bucket, `reset` the
    /// answer's reset instant if it lies ahead, `limited` a 429 holding this bucket
    /// until `reset`.
    fn learn(
        &mut self,
        remaining: Option<i64>,
        reset: Option<DateTime<Utc>>,
        limited: bool,
        now: DateTime<Utc>,
    ) {
        let (Some(remaining), Some(reset)) = (remaining, reset.filter(|r| *r > now)) else {
            // Not reported, or against a clock we do not share: no pacing on this
            // bucket (a 429 still blocks through the store).
            if self.tracked != Some(true) || reset.is_some_and(|r| r <= now) {
                self.tracked = Some(false);
            }
            return;
        };
        self.tracked = Some(true);
        let remaining = remaining.max(0);
        if limited {
            // Spent until the instant the 429 names, neither sooner nor later.
            self.reset = Some(reset);
            self.remaining = Some(0);
            return;
        }
        self.capacity = self.capacity.max(Some(remaining + 1));
        self.window_best = self.window_best.max(Some(remaining + 1));
        match self.reset {
            Some(known) if reset <= known + SAME_WINDOW_SLACK => {
                self.reset = Some(known.max(reset));
                self.remaining = Some(self.remaining.map_or(remaining, |n| n.min(remaining)));
            }
            Some(_) => {
                // A later window than the one we knew (the request was counted after
                // LaunchDarkly's reset): what else is in flight may count in it too.
                self.reset = Some(reset);
                self.remaining = Some(remaining - i64::from(self.in_flight));
            }
            None => {
                self.reset = Some(reset);
                self.remaining = Some(self.remaining.map_or(remaining, |n| n.min(remaining)));
            }
        }
    }
}

/// The budgets of every (account, bucket) this process has talked to.
#[derive(Debug, Default)]
struct Budgets {
    map: Mutex<HashMap<(String, Bucket), Budget>>,
    /// Woken whenever an answer (or a failure) is recorded.
    answered: tokio::sync::Notify,
}

impl Budgets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Bucket), Budget>> {
        // A poisoned lock only means another thread panicked mid-update of plain
        // numbers; the map is still usable.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes one request off every bucket of `account` and `route`, or says why not.
    fn try_take(
        &self,
        account: &str,
        buckets: &[Bucket],
        now: DateTime<Utc>,
        force: bool,
    ) -> Decision {
        let mut map = self.lock();
        if map.len() > MAX_BUDGETS {
            map.retain(|_, b| b.in_flight > 0 || b.reset.is_some_and(|r| r > now));
        }
        let mut decision = Decision::Go;
        for bucket in buckets {
            let budget = map.entry((account.to_owned(), bucket.clone())).or_default();
            decision = decision.and(budget.decide(now));
        }
        if force && decision == Decision::Wait {
            decision = Decision::Go;
        }
        if decision == Decision::Go {
            for bucket in buckets {
                map.entry((account.to_owned(), bucket.clone()))
                    .or_default()
                    .take();
            }
        }
        decision
    }

    /// Marks a request answered (or failed) and applies what its answer said.
    fn finish(
        &self,
        account: &str,
        buckets: &[Bucket],
        answer: Option<(&RateLimitHeaders, bool)>,
        now: DateTime<Utc>,
    ) {
        {
            let mut map = self.lock();
            for bucket in buckets {
                let Some(budget) = map.get_mut(&(account.to_owned(), bucket.clone())) else {
                    continue;
                };
                budget.in_flight = budget.in_flight.saturating_sub(1);
                if let Some((headers, limited)) = answer {
                    let remaining = match bucket {
                        Bucket::Global => headers.global_remaining,
                        Bucket::Route(_) => headers.route_remaining,
                    };
                    let limited = limited && remaining.is_some_and(|r| r <= 0);
                    budget.learn(remaining, headers.reset, limited, now);
                }
            }
        }
        self.answered.notify_waiters();
    }
}

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
/// every [`LdClient`](super::LdClient) of a process the same gate.
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

    /// One request through the gate on `ROUTE`, answered with `status` and `answer`.
    async fn send(
        gate: &RateLimitGate,
        account: &str,
        status: StatusCode,
        answer: &HeaderMap,
    ) -> Option<DateTime<Utc>> {
        let permit = gate.acquire(account, ROUTE).await.ok()?;
        gate.observe(permit, status, answer).await
    }

    #[tokio::test]
    async fn an_exhausted_route_blocks_only_that_route_of_that_account() {
        let gate = gate_at(1_000_000);
        let answer = headers(&[
            ("x-ratelimit-route-remaining", "0"),
            ("x-ratelimit-global-remaining", "50"),
            ("x-ratelimit-reset", "1005000"),
        ]);
        assert_eq!(send(&gate, "a", StatusCode::OK, &answer).await, None);
        assert_eq!(gate.blocked_until("a", ROUTE).await, Some(at(1_005_000)));
        assert_eq!(gate.blocked_until("a", "GET /other").await, None);
        assert_eq!(gate.blocked_until("b", ROUTE).await, None);
    }

    #[tokio::test]
    async fn a_429_with_only_retry_after_blocks_the_account() {
        let gate = gate_at(1_000_000);
        let answer = headers(&[("retry-after", "3")]);
        let reset = send(&gate, "a", StatusCode::TOO_MANY_REQUESTS, &answer).await;
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
        let reset = send(&gate, "a", StatusCode::TOO_MANY_REQUESTS, &answer).await;
        assert_eq!(reset, Some(at(1_005_000)));
    }

    #[tokio::test]
    async fn past_blocks_are_ignored_and_remaining_budget_blocks_nothing() {
        let gate = gate_at(1_000_000);
        let stale = headers(&[
            ("x-ratelimit-global-remaining", "0"),
            ("x-ratelimit-reset", "999000"),
        ]);
        send(&gate, "a", StatusCode::OK, &stale).await;
        let fine = headers(&[
            ("x-ratelimit-global-remaining", "7"),
            ("x-ratelimit-reset", "1009000"),
        ]);
        send(&gate, "a", StatusCode::OK, &fine).await;
        assert_eq!(gate.blocked_until("a", ROUTE).await, None);
    }

    /// A gate whose clock reads the shared millisecond counter.
    fn gate_on(now_ms: Arc<Mutex<i64>>) -> RateLimitGate {
        RateLimitGate::new(
            Arc::new(InMemoryRateLimitStore::new()),
            Arc::new(move || at(*now_ms.lock().unwrap_or_else(PoisonError::into_inner))),
        )
    }

    fn budget(remaining: i64, reset_ms: i64) -> HeaderMap {
        headers(&[
            ("x-ratelimit-route-remaining", &remaining.to_string()),
            ("x-ratelimit-global-remaining", "1000"),
            ("x-ratelimit-reset", &reset_ms.to_string()),
        ])
    }

    #[tokio::test]
    async fn the_budget_is_spent_by_requests_in_flight_before_their_answers_arrive() {
        let gate = gate_at(1_000_000);
        send(&gate, "a", StatusCode::OK, &budget(2, 1_005_000)).await;
        let first = gate.acquire("a", ROUTE).await;
        let second = gate.acquire("a", ROUTE).await;
        assert!(first.is_ok() && second.is_ok());
        assert_eq!(gate.acquire("a", ROUTE).await.err(), Some(at(1_005_000)));
        assert!(gate.acquire("b", ROUTE).await.is_ok(), "another account");
        assert!(
            gate.acquire("a", "GET /other").await.is_ok(),
            "another route"
        );
    }

    #[tokio::test]
    async fn a_fresh_window_starts_from_the_largest_budget_seen() {
        let now = Arc::new(Mutex::new(1_000_000));
        let gate = gate_on(now.clone());
        send(&gate, "a", StatusCode::OK, &budget(2, 1_002_000)).await;
        for _ in 0..2 {
            send(&gate, "a", StatusCode::OK, &budget(0, 1_002_000)).await;
        }
        assert_eq!(gate.acquire("a", ROUTE).await.err(), Some(at(1_002_000)));

        *now.lock().unwrap_or_else(PoisonError::into_inner) = 1_002_000;
        let permits: Vec<_> = futures::future::join_all((0..3).map(|_| gate.acquire("a", ROUTE)))
            .await
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(permits.len(), 3, "a window of three, sent without waiting");
        let mut permits = permits.into_iter();
        if let Some(permit) = permits.next() {
            gate.observe(permit, StatusCode::OK, &budget(2, 1_004_000))
                .await;
        }
        assert_eq!(gate.acquire("a", ROUTE).await.err(), Some(at(1_004_000)));
    }

    #[tokio::test]
    async fn a_429_holds_until_the_instant_it_names_even_inside_a_longer_window() {
        let now = Arc::new(Mutex::new(1_000_000));
        let gate = gate_on(now.clone());
        send(&gate, "a", StatusCode::OK, &budget(50, 1_010_000)).await;
        let refused = send(
            &gate,
            "a",
            StatusCode::TOO_MANY_REQUESTS,
            &budget(0, 1_000_150),
        )
        .await;
        assert_eq!(refused, Some(at(1_000_150)));
        assert_eq!(gate.acquire("a", ROUTE).await.err(), Some(at(1_000_150)));
        *now.lock().unwrap_or_else(PoisonError::into_inner) = 1_000_200;
        assert!(
            gate.acquire("a", ROUTE).await.is_ok(),
            "free again after the 429's reset, not at the window's"
        );
    }

    #[tokio::test]
    async fn while_the_budget_is_unknown_one_request_goes_and_the_rest_wait_for_its_answer() {
        let gate = gate_at(1_000_000);
        let Ok(probe) = gate.acquire("a", ROUTE).await else {
            panic!("the first request goes");
        };
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.acquire("a", ROUTE).await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !waiting.is_finished(),
            "the second waits for the first answer"
        );
        assert!(
            gate.acquire("b", ROUTE).await.is_ok(),
            "another account does not wait"
        );
        gate.observe(probe, StatusCode::OK, &budget(5, 1_005_000))
            .await;
        let went = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert!(matches!(went, Ok(Ok(true))), "{went:?}");
    }

    #[tokio::test]
    async fn buckets_without_headers_are_not_paced_and_a_failed_request_frees_its_place() {
        let gate = gate_at(1_000_000);
        send(&gate, "a", StatusCode::OK, &HeaderMap::new()).await;
        let both = futures::future::join(gate.acquire("a", ROUTE), gate.acquire("a", ROUTE)).await;
        assert!(both.0.is_ok() && both.1.is_ok());

        let probe = gate.acquire("b", ROUTE).await;
        drop(probe);
        let next = tokio::time::timeout(Duration::from_secs(1), gate.acquire("b", ROUTE)).await;
        assert!(matches!(next, Ok(Ok(_))));
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
