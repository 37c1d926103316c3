//! Retry pacing shared by the job workers, webhook delivery and calls made
//! for a waiting person: exponential backoff and jitter.

use std::time::Duration;

use rand::Rng;

/// A random delay of up to `max_ms` milliseconds.
pub fn jitter(max_ms: u64) -> Duration {
    Duration::from_millis(rand::thread_rng().gen_range(0..=max_ms))
}

/// Exponential backoff with jitter: about `base * 2^(attempt-1)`, capped at
/// `max`, somewhere in its upper half so that retries of many jobs spread
/// out.
pub fn backoff(base: Duration, max: Duration, attempts: i32) -> chrono::Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(0);
    let ceiling = base.saturating_mul(2u32.saturating_pow(exponent)).min(max);
    let half = ceiling / 2;
    let delay = half + half.mul_f64(rand::thread_rng().r#gen::<f64>());
    chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(1))
}
