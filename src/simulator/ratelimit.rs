//! LaunchDarkly's rate limits, as fixed windows: per account (global), per account
//! and route, and optionally per client IP. A counter's window opens with its first
//! request and resets a window length later (LaunchDarkly: ten seconds), so a
//! client that waits until `X-Ratelimit-Reset` always finds a fresh window.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue};

use super::config::RateLimitConfig;

/// Counters beyond this many are pruned to the current window.
const MAX_COUNTERS: usize = 10_000;

pub(crate) struct RateLimiter {
    config: RateLimitConfig,
    /// key → (window start in epoch ms, requests counted in it)
    counters: HashMap<String, (u64, u32)>,
}

/// Where an account stands after a request was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Standing {
    pub global_remaining: u32,
    pub route_remaining: u32,
    /// Epoch milliseconds at which the window resets.
    pub reset_ms: u64,
    /// The request went over a limit.
    pub limited: bool,
}

impl Standing {
    /// A 429 that resets `after_ms` from now (injected faults use this).
    pub fn exhausted(after_ms: u64) -> Self {
        Self {
            global_remaining: 0,
            route_remaining: 0,
            reset_ms: now_ms() + after_ms,
            limited: true,
        }
    }

    /// `X-Ratelimit-Global-Remaining`, `X-Ratelimit-Route-Remaining`, `X-Ratelimit-Reset`.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert(
            "x-ratelimit-global-remaining",
            HeaderValue::from(self.global_remaining),
        );
        headers.insert(
            "x-ratelimit-route-remaining",
            HeaderValue::from(self.route_remaining),
        );
        headers.insert("x-ratelimit-reset", HeaderValue::from(self.reset_ms));
    }
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            config,
            counters: HashMap::new(),
        }
    }

    pub fn set_config(&mut self, config: RateLimitConfig) {
        self.config = config;
        self.counters.clear();
    }

    pub fn reset(&mut self) {
        self.counters.clear();
    }

    fn window_ms(&self) -> u64 {
        u64::try_from(self.config.window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Counts one request against `key` and returns the new count and the reset time.
    fn count(&mut self, key: String, now: u64) -> (u32, u64) {
        let window = self.window_ms();
        if self.counters.len() > MAX_COUNTERS {
            self.counters
                .retain(|_, (start, _)| now < start.saturating_add(window));
        }
        let entry = self.counters.entry(key).or_insert((now, 0));
        if now >= entry.0.saturating_add(window) {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        (entry.1, entry.0.saturating_add(window))
    }

    /// Counts a request by `account` to `route` (`"GET /api/v2/projects"`).
    pub fn check(&mut self, account: &str, route: &str) -> Standing {
        let now = now_ms();
        let global_limit = self.config.global_limit;
        let route_limit = self.config.route_limit_for(route);
        let (global, global_reset) = self.count(format!("acct\n{account}"), now);
        let (routed, route_reset) = self.count(format!("route\n{account}\n{route}"), now);
        Standing {
            global_remaining: global_limit.saturating_sub(global),
            route_remaining: route_limit.saturating_sub(routed),
            // One header for two windows: the later reset, so waiting for it is
            // always enough.
            reset_ms: global_reset.max(route_reset),
            limited: global > global_limit || routed > route_limit,
        }
    }

    /// Counts a request from `ip`; `Err(seconds)` to wait when over the IP limit.
    pub fn check_ip(&mut self, ip: IpAddr) -> Result<(), u64> {
        let Some(limit) = self.config.per_ip_limit else {
            return Ok(());
        };
        let now = now_ms();
        let (count, reset_ms) = self.count(format!("ip\n{ip}"), now);
        if count > limit {
            Err(reset_ms.saturating_sub(now).div_ceil(1000).max(1))
        } else {
            Ok(())
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_route_limit_trips_before_the_global_one_and_counts_per_account() {
        let mut limiter = RateLimiter::new(RateLimitConfig {
            global_limit: 10,
            route_limit: 2,
            window: Duration::from_secs(3600),
            ..RateLimitConfig::default()
        });
        let first = limiter.check("a", "GET /x");
        assert_eq!((first.global_remaining, first.route_remaining), (9, 1));
        assert!(!limiter.check("a", "GET /x").limited);
        let third = limiter.check("a", "GET /x");
        assert!(third.limited);
        assert_eq!(third.route_remaining, 0);
        assert!(!limiter.check("a", "GET /y").limited, "another route");
        assert!(!limiter.check("b", "GET /x").limited, "another account");
        assert!(third.reset_ms > now_ms());
    }
}
