//! The application state every handler, job and domain call receives.
//!
//! It sits low in the layering: it knows the configuration, the clock, the
//! metrics, the database pool and the LaunchDarkly clients, and nothing of
//! the domain modules or the HTTP layers that use it (so none of them has
//! to be imported back here).

pub(crate) mod announcements;
pub(crate) mod batcher;
mod locks;
mod runtime;
mod tenant_cache;

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::launchdarkly::{LdClient, LdOAuth};
use crate::metrics::Metrics;

pub use announcements::Announcements;
pub use announcements::announce;
pub use locks::RefreshLocks;
pub(crate) use runtime::{BackgroundSlot, Change, Offer, Promise};
pub use runtime::{FALLBACK_POLL, Runtime};
pub use tenant_cache::{TENANT_CACHE_TTL, TenantCache};

/// Everything a handler or worker may need. Handlers take what they use.
///
/// One shared allocation: axum clones the state for every extractor and
/// middleware of every request, and a clone is one reference count here
/// instead of one per field (their drops were the replica's hottest own
/// function on the API's reads; BENCHMARKS.md round four).
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

/// What [`AppState`] holds; read through it (`state.db`, `state.config`…).
pub struct Parts {
    pub db: crate::db::Db,
    pub config: Arc<Config>,
    pub clock: SharedClock,
    pub metrics: Arc<Metrics>,
    /// LaunchDarkly's REST API; clones share rate-limit state.
    pub ld: LdClient,
    /// LaunchDarkly OAuth, when this deployment has an OAuth client.
    pub oauth: Option<LdOAuth>,
    pub refresh_locks: Arc<RefreshLocks>,
    /// Lifecycle wake-ups and this replica's worker id.
    pub lifecycle: Arc<Runtime>,
}

impl std::ops::Deref for AppState {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl From<Parts> for AppState {
    fn from(parts: Parts) -> Self {
        Self(Arc::new(parts))
    }
}

impl AppState {
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}
