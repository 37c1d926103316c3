//! Per-process lifecycle state: this replica's worker id and the wake-ups
//! that Postgres notifications turn into (idle workers, webhook senders, and
//! API calls waiting for one environment), and the API keys it checked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use uuid::Uuid;

use crate::store::api_keys::KeyCache;

/// How often a waiting API call looks at its environment even without a
/// notification. Notifications reach every replica while its listener is
/// connected, and a listener that (re)connects wakes every waiter
/// ([`Runtime::wake_all_waiters`]), so this only bounds the cost of a
/// notification lost some other way; a short poll would make every waiting
/// call read its row again and again while the workers are busy.
pub const FALLBACK_POLL: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Runtime {
    /// Names this process in `jobs.locked_by`.
    pub(crate) replica_id: String,
    pub(crate) jobs: Notify,
    pub(crate) outbox: Notify,
    waiters: Mutex<HashMap<Uuid, Weak<Notify>>>,
    /// API keys this replica checked recently; revocations evict them.
    pub api_keys: KeyCache,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    pub fn new() -> Self {
        Self {
            replica_id: format!("replica-{}", Uuid::new_v4().simple()),
            jobs: Notify::new(),
            outbox: Notify::new(),
            waiters: Mutex::new(HashMap::new()),
            api_keys: KeyCache::default(),
        }
    }

    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// A handle woken whenever environment `id` changes (in any replica).
    pub(crate) fn watch(&self, id: Uuid) -> Arc<Notify> {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = waiters.get(&id).and_then(Weak::upgrade) {
            return existing;
        }
        if waiters.len() > 256 {
            waiters.retain(|_, w| w.strong_count() > 0);
        }
        let notify = Arc::new(Notify::new());
        waiters.insert(id, Arc::downgrade(&notify));
        notify
    }

    /// Wakes every waiting call: notifications may have been missed (the
    /// listener has just (re)connected), so each reads its environment again.
    pub(crate) fn wake_all_waiters(&self) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        waiters.retain(|_, waiter| match waiter.upgrade() {
            Some(notify) => {
                notify.notify_waiters();
                true
            }
            None => false,
        });
    }

    /// Environment `id` changed.
    pub(crate) fn environment_changed(&self, id: Uuid) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        match waiters.get(&id).map(Weak::upgrade) {
            Some(Some(notify)) => notify.notify_waiters(),
            Some(None) => {
                waiters.remove(&id);
            }
            None => {}
        }
    }
}
