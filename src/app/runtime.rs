//! Per-process lifecycle state: this replica's worker id and the wake-ups
//! that Postgres notifications turn into (idle workers, webhook senders, and
//! API calls waiting for one environment), the API keys it checked, and the
//! jobs its API hands straight to its idle workers.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use uuid::Uuid;

use crate::store::api_keys::KeyCache;
use crate::store::environments::{EnvironmentRow, Status};

/// How often a waiting API call looks at its environment even without a
/// notification. Notifications reach every replica while its listener is
/// connected, and a listener that (re)connects wakes every waiter
/// ([`Runtime::wake_all_waiters`]), so this only bounds the cost of a
/// notification lost some other way; a short poll would make every waiting
/// call read its row again and again while the workers are busy.
pub const FALLBACK_POLL: Duration = Duration::from_secs(2);

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// What is known of an environment's latest change, for the calls waiting
/// on it.
#[derive(Debug, Clone, Default)]
pub(crate) enum Change {
    /// Nothing since the watch was made.
    #[default]
    None,
    /// A notification said the environment changed, and to what revision
    /// and status when it said so (`None`: it did not say).
    Notice(Option<(i32, Status)>),
    /// A worker in this process recorded this outcome and committed it.
    Settled(Box<EnvironmentRow>),
}

/// Wakes the calls waiting for one environment and tells them what changed,
/// so that they read the row again only when they must.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    notify: Notify,
    latest: Mutex<(u64, Change)>,
}

impl Watch {
    /// Woken on every change; arm it (`enable`) before looking at [`Watch::latest`].
    pub(crate) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// The latest change and its sequence number (0: none yet).
    pub(crate) fn latest(&self) -> (u64, Change) {
        locked(&self.latest).clone()
    }

    fn record(&self, change: Change) {
        let mut latest = locked(&self.latest);
        // A notification of the very outcome a worker here already handed
        // over says nothing new: keep the record.
        if let (Change::Notice(Some((revision, status))), Change::Settled(row)) =
            (&change, &latest.1)
        {
            if row.revision == *revision && row.status == *status {
                return;
            }
        }
        *latest = (latest.0 + 1, change);
        drop(latest);
        self.notify.notify_waiters();
    }
}

/// A job this replica's API just queued, offered to an idle worker here
/// with the environment row as committed (so the worker need not claim it
/// from the queue or read the row first).
#[derive(Debug, Clone)]
pub(crate) struct Offer {
    pub job_id: Uuid,
    pub record: EnvironmentRow,
}

#[derive(Debug)]
pub struct Runtime {
    /// Names this process in `jobs.locked_by`.
    pub(crate) replica_id: String,
    pub(crate) jobs: Notify,
    pub(crate) outbox: Notify,
    waiters: Mutex<HashMap<Uuid, Weak<Watch>>>,
    /// API keys this replica checked recently; revocations evict them.
    pub api_keys: KeyCache,
    offers: Mutex<VecDeque<Offer>>,
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
            offers: Mutex::new(VecDeque::new()),
        }
    }

    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// A handle woken whenever environment `id` changes (in any replica).
    pub(crate) fn watch(&self, id: Uuid) -> Arc<Watch> {
        let mut waiters = locked(&self.waiters);
        if let Some(existing) = waiters.get(&id).and_then(Weak::upgrade) {
            return existing;
        }
        if waiters.len() > 256 {
            waiters.retain(|_, w| w.strong_count() > 0);
        }
        let watch = Arc::new(Watch::default());
        waiters.insert(id, Arc::downgrade(&watch));
        watch
    }

    /// Wakes every waiting call: notifications may have been missed (the
    /// listener has just (re)connected), so each reads its environment again.
    pub(crate) fn wake_all_waiters(&self) {
        let mut waiters = locked(&self.waiters);
        waiters.retain(|_, waiter| match waiter.upgrade() {
            Some(watch) => {
                watch.record(Change::Notice(None));
                true
            }
            None => false,
        });
    }

    fn changed(&self, id: Uuid, change: Change) {
        let mut waiters = locked(&self.waiters);
        match waiters.get(&id).map(Weak::upgrade) {
            Some(Some(watch)) => {
                drop(waiters);
                watch.record(change);
            }
            Some(None) => {
                waiters.remove(&id);
            }
            None => {}
        }
    }

    /// A notification said environment `id` changed (to this revision and
    /// status, if it said).
    pub(crate) fn environment_changed(&self, id: Uuid, now: Option<(i32, Status)>) {
        self.changed(id, Change::Notice(now));
    }

    /// A worker here committed this outcome: the calls waiting for it take
    /// it as it is, without reading it again.
    pub(crate) fn environment_settled(&self, row: &EnvironmentRow) {
        self.changed(row.id, Change::Settled(Box::new(row.clone())));
    }

    /// Whether this replica's workers can take another offer: fewer than
    /// `workers` are waiting to be taken. Past that the job is left to the
    /// queue and every replica's workers are woken for it.
    pub(crate) fn can_take_offer(&self, workers: usize) -> bool {
        workers > 0 && locked(&self.offers).len() < workers
    }

    /// Hands a queued job to this replica's workers.
    pub(crate) fn offer(&self, offer: Offer) {
        locked(&self.offers).push_back(offer);
        self.jobs.notify_one();
    }

    /// The oldest offer, if any.
    pub(crate) fn take_offer(&self) -> Option<Offer> {
        locked(&self.offers).pop_front()
    }
}
