//! LaunchDarkly rate limits, kept per account.
//!
//! LaunchDarkly limits each account globally (`X-Ratelimit-Global-Remaining`) and per
//! route (`X-Ratelimit-Route-Remaining`), both reset at `X-Ratelimit-Reset` (epoch
//! ms), and some routes per IP (`Retry-After` seconds on a 429). Every answer is read.
//!
//! Three layers keep requests inside the budget:
//! - **Pacing** (this process): per (account, bucket) the gate keeps what is left of
//!   the current window, takes one off *before* each request goes out and corrects it
//!   from every answer. When nothing is left, requests are held until the reset
//!   instant instead of being sent into a 429; a fresh window starts from the largest
//!   budget any window showed (a 429 lowers it to what its own window showed). While the budget is unknown (the very
//!   first request of an account), one request goes out alone and the others wait for
//!   its answer. So a burst within the window needs no 429 at all.
//! - **Shared budget** (small budgets only): when a bucket's known budget is below
//!   [`SHARED_BELOW`] requests, the gate also takes each request from a count kept in
//!   the [`RateLimitStore`] (Postgres: one atomic statement), so replicas together
//!   send no more than the window allows: the store rolls to a fresh window
//!   (capacity - 1) once the stored one is over, answers `Hold(reset)` when it is
//!   spent, or "unknown" when it is spent and no answer has told the fresh window's
//!   end yet (the request then asks again every [`SHARED_POLL`] until an answer,
//!   possibly another replica's, tells it). Every answer on such a bucket corrects
//!   the shared count as it does the local one. Larger budgets are paced locally
//!   only: a round trip per call would cost more than the few requests replicas
//!   can overspend. The probe of an unknown budget is taken from the shared count
//!   too (a count of capacity zero that holds everyone else until its answer), so
//!   replicas starting together send one probe between them; a probe that gets no
//!   answer gives its place back, one whose answer reports no limit clears it.
//!   The count lives in `launchdarkly_rate_budgets` (SQL in
//!   `crate::store::ratelimits`); [`InMemoryRateLimitStore`] keeps the same count
//!   for gates sharing one process (and the unit tests).
//! - **Blocks** (shared): an exhausted bucket or a 429 is recorded in a
//!   [`RateLimitStore`] so that replicas share it (a Postgres-backed store);
//!   [`InMemoryRateLimitStore`] serves a single process.
//!
//! The gate fails open: a store error is logged and the request is sent (paced by
//! this process's budget alone).
//!
//! All state is keyed by account, so one throttled tenant never holds back another.

mod budget;
mod gate;
mod headers;
mod store;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

pub use futures::future::BoxFuture;
pub use gate::RateLimitGate;
pub(crate) use headers::reset_after_429;
pub use store::{InMemoryRateLimitStore, Lesson, RateLimitStore, Reservation, SharedSeed};

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
pub const SAME_WINDOW_SLACK: TimeDelta = TimeDelta::milliseconds(500);
/// How long a request waits for another's answer to learn the budget before it is
/// sent anyway (the answers it waits for are bounded by the request timeout).
const MAX_BUDGET_WAIT: Duration = Duration::from_secs(30);
/// Budgets kept before the stale ones are forgotten.
const MAX_BUDGETS: usize = 10_000;
/// A bucket whose known budget (what is left of the window, or a fresh window's
/// capacity) is below this many requests is counted in the shared store, one round
/// trip per request and per answer, so that replicas together never overspend it.
/// At or above it each replica paces on its own budget, as a single replica does:
/// what replicas can overspend is bounded by their requests in flight (a few per
/// account per replica: per-tenant concurrency is half of 8 workers by default),
/// a small part of such a window, and every answer corrects each replica's count
/// long before it runs out; a Postgres round trip per call would cost throughput
/// for nothing. 64 is many more than the in-flight requests of a few replicas.
pub const SHARED_BELOW: i64 = 64;
/// How often a request asks the shared count again while it is spent and the
/// window's end is not known yet (the answer that tells it may reach another
/// replica). Also woken at once by this process's own answers.
const SHARED_POLL: Duration = Duration::from_millis(50);
/// A shared window whose end no answer has told within this long is treated as
/// over (its requests all failed without an answer), so it cannot hold an
/// account back for good. LaunchDarkly's windows are ten seconds.
pub const UNKNOWN_END_EXPIRY: TimeDelta = TimeDelta::seconds(10);

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
