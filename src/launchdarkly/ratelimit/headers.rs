//! Reading LaunchDarkly's rate-limit headers (and `Retry-After`) off an answer.

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::{DEFAULT_BACKOFF, MAX_BLOCK};

/// When a 429 answer (with these headers) lets us try again.
pub(crate) fn reset_after_429(headers: &HeaderMap, now: DateTime<Utc>) -> DateTime<Utc> {
    RateLimitHeaders::parse(headers, now)
        .reset_after_429(now)
        .min(now + MAX_BLOCK)
}

/// The rate-limit headers of one answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct RateLimitHeaders {
    pub(super) global_remaining: Option<i64>,
    pub(super) route_remaining: Option<i64>,
    pub(super) reset: Option<DateTime<Utc>>,
    pub(super) retry_after: Option<DateTime<Utc>>,
}

impl RateLimitHeaders {
    pub(super) fn parse(headers: &HeaderMap, now: DateTime<Utc>) -> Self {
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
    pub(super) fn reset_after_429(&self, now: DateTime<Utc>) -> DateTime<Utc> {
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
pub(super) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u32>() {
        return Some(now + TimeDelta::seconds(i64::from(seconds)));
    }
    DateTime::parse_from_rfc2822(value)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
