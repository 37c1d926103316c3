//! How the lifecycle machinery (job workers, webhook delivery, waiting API
//! calls) paces itself.

use std::time::Duration;

/// How the lifecycle machinery paces itself. The defaults suit production;
/// tests shorten them.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Run job workers, TTL expiry, sweeps and webhook delivery in this
    /// process. Off: the API only (a test then runs jobs by hand).
    pub run_workers: bool,
    /// How long a claimed job stays ours without a heartbeat.
    pub lease: Duration,
    /// How often idle workers look for due jobs (they are also woken by
    /// Postgres notifications).
    pub poll_interval: Duration,
    /// First retry delay after a transient failure; doubles per attempt.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Jobs one tenant may have running at once, across all replicas (so
    /// one tenant's backlog leaves workers for the others); 0: half of this
    /// replica's workers.
    pub per_tenant_concurrency: usize,
    /// Bound on one LaunchDarkly request.
    pub launchdarkly_timeout: Duration,
    /// TTL expiry, sweep scheduling, queue metrics and clean-up run this often.
    pub housekeeping_interval: Duration,
    pub webhook_timeout: Duration,
    pub webhook_backoff_base: Duration,
    pub webhook_backoff_max: Duration,
    /// Deliveries of one event before it is abandoned.
    pub webhook_max_attempts: i32,
    /// `?wait=` when the caller gives none, and its upper bound.
    pub default_wait: Duration,
    pub max_wait: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            run_workers: true,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            per_tenant_concurrency: 0,
            launchdarkly_timeout: Duration::from_secs(30),
            housekeeping_interval: Duration::from_secs(10),
            webhook_timeout: Duration::from_secs(10),
            webhook_backoff_base: Duration::from_secs(10),
            webhook_backoff_max: Duration::from_secs(3600),
            webhook_max_attempts: 15,
            default_wait: Duration::from_secs(10),
            max_wait: Duration::from_secs(60),
        }
    }
}
