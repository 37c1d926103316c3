//! Per-process lifecycle state: this replica's worker id and the wake-ups
//! that Postgres notifications turn into (idle workers, webhook senders, and
//! API calls waiting for one environment).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use uuid::Uuid;

/// How often a waiting API call looks at its environment even without a
/// notification (in case the notification connection was lost).
pub const FALLBACK_POLL: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub struct Runtime {
    /// Names this process in `jobs.locked_by`.
    pub(crate) replica_id: String,
    pub(crate) jobs: Notify,
    pub(crate) outbox: Notify,
    waiters: Mutex<HashMap<Uuid, Weak<Notify>>>,
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
