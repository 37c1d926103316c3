//! Injected faults: server errors (before or after the change is made), spurious
//! 429s, latency, and requests held until the client gives up. Set per run with
//! [`Simulator::set_faults`](super::Simulator::set_faults); with a `seed`, the same
//! sequence of requests meets the same faults.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::error::ApiError;
use super::ratelimit::Standing;
use super::state::SharedState;

/// What to break, how often. Rates are shares of in-scope requests (0.0 to 1.0);
/// one random draw per request picks at most one of timeout, rate limit, error and
/// error after commit, in that order.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Answer 500/502/503 (or `error_status`) without doing anything.
    pub error_rate: f64,
    /// Do the work, then answer 500/502/503 anyway: a create that succeeded though
    /// the client saw a failure. Applies only to requests that succeeded.
    pub error_after_commit_rate: f64,
    /// Answer 429 with LaunchDarkly's headers, resetting after `rate_limit_reset_after`.
    pub rate_limit_rate: f64,
    /// Hold the request for `timeout_hold` before handling it (clients time out first;
    /// the work still lands late, as it can with a real slow upstream).
    pub timeout_rate: f64,
    /// Added to every in-scope answer. The request itself is handled, and
    /// counted against the rate limits, when it arrives, as at LaunchDarkly's
    /// edge; only its answer leaves this much later. (Counting after the delay
    /// would open each rate-limit window one latency late, so a client that
    /// sends exactly at `X-Ratelimit-Reset` would find every window shifted.)
    pub latency: Duration,
    /// Up to this much more latency, at random.
    pub latency_jitter: Duration,
    pub timeout_hold: Duration,
    pub rate_limit_reset_after: Duration,
    /// Always this status for injected errors (`None`: 500, 502 or 503 at random).
    pub error_status: Option<u16>,
    /// Only requests whose path starts with this.
    pub path_prefix: Option<String>,
    /// Only requests with this method.
    pub method: Option<Method>,
    /// Stop injecting after this many faults (`None`: no end).
    pub max_injections: Option<u32>,
    /// Seed for reproducible decisions (`None`: from entropy).
    pub seed: Option<u64>,
}

impl Default for Faults {
    /// No faults at all.
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            error_after_commit_rate: 0.0,
            rate_limit_rate: 0.0,
            timeout_rate: 0.0,
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            timeout_hold: Duration::from_secs(300),
            rate_limit_reset_after: Duration::from_secs(1),
            error_status: None,
            path_prefix: None,
            method: None,
            max_injections: None,
            seed: None,
        }
    }
}

impl Faults {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every in-scope request fails with `status` before doing anything.
    pub fn always_error(status: u16) -> Self {
        Self {
            error_rate: 1.0,
            error_status: Some(status),
            ..Self::default()
        }
    }

    /// Restricts the faults to requests with `method` whose path starts with `prefix`.
    pub fn scoped(mut self, method: Option<Method>, prefix: Option<&str>) -> Self {
        self.method = method;
        self.path_prefix = prefix.map(str::to_owned);
        self
    }
}

/// Put on responses so the request log can say what was injected.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InjectedFault(pub &'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Pass,
    Timeout,
    RateLimit,
    Error(StatusCode),
    ErrorAfterCommit(StatusCode),
}

pub(crate) struct FaultState {
    faults: Faults,
    rng: StdRng,
    injected: u32,
}

impl Default for FaultState {
    fn default() -> Self {
        Self {
            faults: Faults::default(),
            rng: StdRng::from_entropy(),
            injected: 0,
        }
    }
}

impl FaultState {
    pub fn set(&mut self, faults: Faults) {
        self.rng = match faults.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        self.faults = faults;
        self.injected = 0;
    }

    fn in_scope(&self, method: &Method, path: &str) -> bool {
        let f = &self.faults;
        f.method.as_ref().is_none_or(|m| m == method)
            && f.path_prefix.as_deref().is_none_or(|p| path.starts_with(p))
    }

    fn error_status(&mut self) -> StatusCode {
        let code = self
            .faults
            .error_status
            .unwrap_or_else(|| [500, 502, 503][self.rng.gen_range(0..3)]);
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The latency to add and the fault (if any) for one request.
    fn decide(&mut self, method: &Method, path: &str) -> (Duration, Decision, Settings) {
        let settings = Settings {
            timeout_hold: self.faults.timeout_hold,
            reset_after: self.faults.rate_limit_reset_after,
        };
        if !self.in_scope(method, path) {
            return (Duration::ZERO, Decision::Pass, settings);
        }
        let jitter = self.faults.latency_jitter;
        let latency = self.faults.latency
            + if jitter.is_zero() {
                Duration::ZERO
            } else {
                jitter.mul_f64(self.rng.r#gen::<f64>())
            };
        let exhausted = self
            .faults
            .max_injections
            .is_some_and(|max| self.injected >= max);
        let draw: f64 = self.rng.r#gen();
        if exhausted {
            return (latency, Decision::Pass, settings);
        }
        let f = &self.faults;
        let bands = [
            f.timeout_rate,
            f.rate_limit_rate,
            f.error_rate,
            f.error_after_commit_rate,
        ];
        let mut upper = 0.0;
        let mut picked = None;
        for (i, rate) in bands.iter().enumerate() {
            upper += rate.clamp(0.0, 1.0);
            if draw < upper {
                picked = Some(i);
                break;
            }
        }
        let decision = match picked {
            None => Decision::Pass,
            Some(0) => Decision::Timeout,
            Some(1) => Decision::RateLimit,
            Some(2) => Decision::Error(self.error_status()),
            Some(_) => Decision::ErrorAfterCommit(self.error_status()),
        };
        if decision != Decision::Pass {
            self.injected += 1;
        }
        (latency, decision, settings)
    }
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    timeout_hold: Duration,
    reset_after: Duration,
}

fn mark(mut response: Response, fault: &'static str) -> Response {
    response.extensions_mut().insert(InjectedFault(fault));
    response
}

/// An injected 429: LaunchDarkly's body and headers, resetting soon.
fn rate_limited(reset_after: Duration) -> Response {
    let after_ms = u64::try_from(reset_after.as_millis()).unwrap_or(u64::MAX);
    let mut response = ApiError::rate_limited().into_response();
    Standing::exhausted(after_ms).write_headers(response.headers_mut());
    let seconds = after_ms.div_ceil(1000).max(1);
    response
        .headers_mut()
        .insert("retry-after", HeaderValue::from(seconds));
    mark(response, "rate_limit")
}

/// Applies the current faults to one request.
pub(crate) async fn inject(
    State(shared): State<SharedState>,
    req: Request,
    next: Next,
) -> Response {
    let (latency, decision, settings) = shared.lock().faults.decide(req.method(), req.uri().path());
    let response = answer(&shared, decision, &settings, req, next).await;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    response
}

async fn answer(
    shared: &SharedState,
    decision: Decision,
    settings: &Settings,
    req: Request,
    next: Next,
) -> Response {
    match decision {
        Decision::Pass => next.run(req).await,
        Decision::Timeout => {
            tokio::select! {
                () = tokio::time::sleep(settings.timeout_hold) => {}
                () = shared.shutdown.cancelled() => {
                    let err = ApiError::server_error(StatusCode::SERVICE_UNAVAILABLE);
                    return mark(err.into_response(), "timeout");
                }
            }
            mark(next.run(req).await, "timeout")
        }
        Decision::RateLimit => rate_limited(settings.reset_after),
        Decision::Error(status) => mark(ApiError::server_error(status).into_response(), "error"),
        Decision::ErrorAfterCommit(status) => {
            let response = next.run(req).await;
            if response.status().is_success() {
                mark(
                    ApiError::server_error(status).into_response(),
                    "error_after_commit",
                )
            } else {
                response
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decisions(faults: Faults, n: usize) -> Vec<Decision> {
        let mut state = FaultState::default();
        state.set(faults);
        (0..n)
            .map(|_| state.decide(&Method::GET, "/api/v2/projects").1)
            .collect()
    }

    #[test]
    fn a_seed_makes_the_fault_sequence_repeat() {
        let faults = Faults {
            error_rate: 0.3,
            rate_limit_rate: 0.2,
            seed: Some(7),
            ..Faults::default()
        };
        let first = decisions(faults.clone(), 200);
        assert_eq!(first, decisions(faults, 200));
        let errors = first
            .iter()
            .filter(|d| matches!(d, Decision::Error(_)))
            .count();
        let limited = first.iter().filter(|d| **d == Decision::RateLimit).count();
        assert!((30..90).contains(&errors), "{errors} errors of 200 at 30%");
        assert!((15..70).contains(&limited), "{limited} 429s of 200 at 20%");
    }

    #[test]
    fn scope_and_max_injections_limit_the_faults() {
        let mut state = FaultState::default();
        state.set(Faults {
            max_injections: Some(2),
            ..Faults::always_error(503).scoped(Some(Method::POST), Some("/api/v2/projects"))
        });
        assert_eq!(
            state.decide(&Method::GET, "/api/v2/projects").1,
            Decision::Pass
        );
        assert_eq!(
            state.decide(&Method::POST, "/api/v2/caller-identity").1,
            Decision::Pass
        );
        let hit = Decision::Error(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            state
                .decide(&Method::POST, "/api/v2/projects/p/environments")
                .1,
            hit
        );
        assert_eq!(
            state
                .decide(&Method::POST, "/api/v2/projects/p/environments")
                .1,
            hit
        );
        assert_eq!(
            state
                .decide(&Method::POST, "/api/v2/projects/p/environments")
                .1,
            Decision::Pass
        );
    }
}
