//! Per-process lifecycle state: this replica's worker id and the wake-ups
//! that Postgres notifications turn into (idle workers, webhook senders, and
//! API calls waiting for one environment), the API keys it checked, and the
//! jobs its API hands straight to its idle workers.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use uuid::Uuid;

use super::batcher::Batcher;
use super::{Announcements, TenantCache};
use crate::store::api_keys::KeyCache;
use crate::store::environments::{
    AbsentRequested, EnvironmentRow, NewRequested, Next, Requested, Settlement, Status,
};
use crate::store::jobs::Job;

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

/// How long the latest change of an environment nobody watches is kept.
pub(crate) const WATCH_RETAINED: Duration = Duration::from_secs(10);

/// Past this many watches (or twice as many as the last pruning kept),
/// those nobody holds and unchanged for [`WATCH_RETAINED`] are dropped.
const PRUNE_PAST: usize = 1024;

/// A watch, kept a while after its last change.
#[derive(Debug)]
struct Retained {
    watch: Arc<Watch>,
    touched: Instant,
}

/// The watches by environment id.
#[derive(Debug, Default)]
struct Watches {
    by_id: HashMap<Uuid, Retained>,
    /// Prune when there are more than this many.
    prune_past: usize,
}

impl Watches {
    fn entry(&mut self, id: Uuid) -> &mut Retained {
        if self.by_id.len() > self.prune_past.max(PRUNE_PAST) {
            self.by_id.retain(|_, r| {
                Arc::strong_count(&r.watch) > 1 || r.touched.elapsed() < WATCH_RETAINED
            });
            self.prune_past = self.by_id.len() * 2;
        }
        self.by_id.entry(id).or_insert_with(|| Retained {
            watch: Arc::default(),
            touched: Instant::now(),
        })
    }
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
        // A notification of what is already known says nothing new: the
        // outcome a worker here already handed over, a duplicate, or an
        // earlier state arriving late. Notifications can overtake each
        // other: the API announces its write after its commit
        // (`store::notify::announce_committed`), and a worker may have
        // settled the job before that. Within a revision the outcome is the
        // last state (every step back to work bumps the revision).
        if let (Change::Notice(Some(said)), Some(known)) = (&change, latest.1.says()) {
            let (revision, status) = *said;
            if revision < known.0
                || (revision == known.0 && (status == known.1 || !status.is_final()))
            {
                return;
            }
        }
        *latest = (latest.0 + 1, change);
        drop(latest);
        self.notify.notify_waiters();
    }
}

impl Change {
    /// The revision and status this change says the row reached, if it says.
    fn says(&self) -> Option<(i32, Status)> {
        match self {
            Self::None | Self::Notice(None) => None,
            Self::Notice(Some(now)) => Some(*now),
            Self::Settled(row) => Some((row.revision, row.status)),
        }
    }
}

/// A job the API's statement claimed for this replica's idle workers
/// (`store::jobs::Claim`), with its environment's row as that statement
/// wrote it: the worker runs it as it is, without a claim or a read.
#[derive(Debug, Clone)]
pub(crate) struct Offer {
    pub record: EnvironmentRow,
    pub job: Job,
    /// When it was claimed: one that waited long for a worker renews its
    /// lease before it runs.
    pub claimed_at: Instant,
}

/// The offers waiting for a worker, and the promises of one not yet kept.
#[derive(Debug, Default)]
struct Offers {
    waiting: VecDeque<Offer>,
    promised: usize,
}

#[derive(Debug)]
pub struct Runtime {
    /// Names this process in `jobs.locked_by`.
    pub(crate) replica_id: String,
    pub(crate) jobs: Notify,
    pub(crate) outbox: Notify,
    waiters: Mutex<Watches>,
    /// API keys this replica checked recently; revocations evict them.
    pub api_keys: KeyCache,
    /// Tenants' readiness and connections this replica read recently.
    pub tenants: TenantCache,
    offers: Mutex<Offers>,
    /// Workers waiting for work.
    idle: AtomicUsize,
    /// The last claim here found a job due: the queue has a backlog.
    backlog: AtomicBool,
    /// Tenant-wide jobs (sweeps, offboardings) this replica's workers run
    /// or have claimed ([`Runtime::reserve_background`]).
    background: Arc<AtomicUsize>,
    /// The API's committed writes waiting to be announced
    /// (`app::announcements`).
    pub(crate) announcements: Announcements,
    /// The API's PUTs waiting to be written together
    /// (`environments::batched`), and what each one's statement answered.
    pub(crate) puts: Batcher<NewRequested, sqlx::Result<Option<Requested>>>,
    /// The API's DELETEs waiting to be written together.
    pub(crate) deletes: Batcher<AbsentRequested, sqlx::Result<Option<EnvironmentRow>>>,
    /// The workers' outcomes waiting to be written together.
    pub(crate) settles: Batcher<Settlement, sqlx::Result<Option<(EnvironmentRow, Next)>>>,
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
            waiters: Mutex::new(Watches::default()),
            api_keys: KeyCache::default(),
            tenants: TenantCache::default(),
            offers: Mutex::new(Offers::default()),
            idle: AtomicUsize::new(0),
            backlog: AtomicBool::new(false),
            background: Arc::new(AtomicUsize::new(0)),
            announcements: Announcements::default(),
            puts: Batcher::default(),
            deletes: Batcher::default(),
            settles: Batcher::default(),
        }
    }

    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// The API's PUTs and DELETEs and the workers' outcomes queued for a
    /// lane to write them together (`environments::batched`) and not yet
    /// taken.
    pub fn queued_writes(&self) -> usize {
        self.puts.queued() + self.deletes.queued() + self.settles.queued()
    }

    /// A handle woken whenever environment `id` changes (in any replica).
    /// Its [`Watch::latest`] already holds what arrived in the last
    /// [`WATCH_RETAINED`], so a call that just committed a change and then
    /// watches misses nothing: notifications arrive in commit order, so if
    /// its own has not arrived, no later one has either.
    pub(crate) fn watch(&self, id: Uuid) -> Arc<Watch> {
        locked(&self.waiters).entry(id).watch.clone()
    }

    /// Wakes every waiting call: notifications may have been missed (the
    /// listener has just (re)connected), so each reads its environment again.
    pub(crate) fn wake_all_waiters(&self) {
        let waiters = locked(&self.waiters);
        for retained in waiters.by_id.values() {
            retained.watch.record(Change::Notice(None));
        }
    }

    fn changed(&self, id: Uuid, change: Change) {
        let mut waiters = locked(&self.waiters);
        let retained = waiters.entry(id);
        retained.touched = Instant::now();
        let watch = retained.watch.clone();
        drop(waiters);
        // Nobody waits for it (the map holds one handle, this one another):
        // keep only what the row says, not the row.
        let change = match change {
            Change::Settled(row) if Arc::strong_count(&watch) <= 2 => {
                Change::Notice(Some((row.revision, row.status)))
            }
            other => other,
        };
        watch.record(change);
    }

    /// A notification said environment `id` changed (to this revision and
    /// status, if it said).
    pub(crate) fn environment_changed(&self, id: Uuid, now: Option<(i32, Status)>) {
        self.changed(id, Change::Notice(now));
    }

    /// A notification said environment `id` changed ([`Self::environment_changed`]),
    /// written by a worker of replica `by` if it is an outcome's
    /// (`store::notify::outcome_notice`). An outcome of a worker here is
    /// passed over: that worker hands the row to the calls waiting here
    /// itself ([`Self::environment_settled`]) as soon as its statement
    /// returns, and its notice often arrives first, which would send each
    /// of them to read the row again. Should the worker never hand it over
    /// (its connection lost after the commit), they read it within
    /// [`FALLBACK_POLL`].
    pub(crate) fn environment_noticed(
        &self,
        id: Uuid,
        now: Option<(i32, Status)>,
        by: Option<&str>,
    ) {
        let settled_here = by == Some(self.replica_id.as_str())
            && now.is_some_and(|(_, status)| status.is_final());
        if !settled_here {
            self.environment_changed(id, now);
        }
    }

    /// A worker here committed this outcome: the calls waiting for it take
    /// it as it is, without reading it again.
    pub(crate) fn environment_settled(&self, row: &EnvironmentRow) {
        self.changed(row.id, Change::Settled(Box::new(row.clone())));
    }

    /// Promises the next offer to a worker here that is idle and not yet
    /// promised another: the caller may then claim a job for this replica
    /// in the statement that queues it ([`Promise::keep`]). `None` when every
    /// idle worker is promised (or none is idle): under load every job goes
    /// through the queue, oldest first, so no job waits behind newer
    /// offered ones.
    pub(crate) fn promise(&self) -> Option<Promise<'_>> {
        let mut offers = locked(&self.offers);
        let idle = self.idle.load(Ordering::Acquire);
        if idle <= offers.waiting.len() + offers.promised {
            return None;
        }
        offers.promised += 1;
        Some(Promise(self))
    }

    /// The oldest offer, if any.
    pub(crate) fn take_offer(&self) -> Option<Offer> {
        locked(&self.offers).waiting.pop_front()
    }

    /// Whether every worker here is busy and the last claim from the queue
    /// here (a worker's own, or one made by a job's outcome) found a job:
    /// while so, the workers' outcomes claim their next job themselves
    /// (`jobs::worker::next_claim`). Otherwise an idle worker claims what
    /// is queued, or the queue is empty, and a claim in the outcome would
    /// only make it slower (and the call waiting for it).
    pub(crate) fn backlog(&self) -> bool {
        self.idle.load(Ordering::Acquire) == 0 && self.backlog.load(Ordering::Relaxed)
    }

    /// A claim from the queue found a job (`true`) or none.
    pub(crate) fn set_backlog(&self, found: bool) {
        self.backlog.store(found, Ordering::Relaxed);
    }

    /// Counts a worker as idle until the guard is dropped.
    pub(crate) fn idle_worker(&self) -> IdleWorker<'_> {
        self.idle.fetch_add(1, Ordering::AcqRel);
        IdleWorker(self)
    }

    /// One of this replica's `slots` places for a tenant-wide job (a sweep
    /// or an offboarding), held by a worker from before its claim until
    /// that job is done; `None` when all are taken. A claim made without
    /// one passes tenant-wide jobs over (`store::jobs::claim`), so however
    /// many of them fall due at once (every tenant's sweep, each a listing
    /// of a LaunchDarkly project), the other workers keep running the
    /// previews' creates and deletes.
    pub(crate) fn reserve_background(&self, slots: usize) -> Option<BackgroundSlot> {
        self.background
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| {
                (taken < slots).then_some(taken + 1)
            })
            .ok()
            .map(|_| BackgroundSlot(self.background.clone()))
    }
}

/// A place for a tenant-wide job ([`Runtime::reserve_background`]), given
/// back when dropped.
#[derive(Debug)]
pub(crate) struct BackgroundSlot(Arc<AtomicUsize>);

impl Drop for BackgroundSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An idle worker's next offer, promised ([`Runtime::promise`]); dropped
/// unkept when the statement did not claim the job.
pub(crate) struct Promise<'a>(&'a Runtime);

impl Promise<'_> {
    /// Hands the job claimed under this promise to the workers.
    pub(crate) fn keep(self, offer: Offer) {
        let runtime = self.0;
        // Kept, not dropped: the offer now holds the worker's place.
        std::mem::forget(self);
        let mut offers = locked(&runtime.offers);
        offers.waiting.push_back(offer);
        offers.promised -= 1;
        drop(offers);
        runtime.jobs.notify_one();
    }
}

impl Drop for Promise<'_> {
    fn drop(&mut self) {
        locked(&self.0.offers).promised -= 1;
    }
}

/// A worker waiting for work (see [`Runtime::idle_worker`]).
pub(crate) struct IdleWorker<'a>(&'a Runtime);

impl Drop for IdleWorker<'_> {
    fn drop(&mut self) {
        self.0.idle.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::ids::{EphemeralId, TenantId};
    use crate::store::environments::Desired;

    fn row(id: Uuid, revision: i32, status: Status) -> EnvironmentRow {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        EnvironmentRow {
            id,
            seq: 1,
            tenant_id: TenantId::parse("acme").unwrap(),
            ephemeral_id: EphemeralId::parse("pr-1").unwrap(),
            generation: 1,
            revision,
            desired: Desired::Present,
            status,
            request: json!({}),
            project_key: "demo".into(),
            environment_key: "eph-pr-1".into(),
            environment_name: "pr-1".into(),
            source_environment_key: "staging".into(),
            color: "ffffff".into(),
            tags: vec![],
            flags: json!({}),
            client_side_id: None,
            sdk_key: None,
            mobile_key: None,
            expires_at: None,
            last_error: None,
            refused: false,
            failure_code: None,
            ready_at: None,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn a_watch_counts_every_change_and_keeps_the_latest() {
        let runtime = Runtime::new();
        let id = Uuid::new_v4();
        let watch = runtime.watch(id);
        assert!(matches!(watch.latest(), (0, Change::None)));
        runtime.environment_changed(id, Some((1, Status::Pending)));
        assert!(matches!(
            watch.latest(),
            (1, Change::Notice(Some((1, Status::Pending))))
        ));
        runtime.environment_settled(&row(id, 1, Status::Ready));
        let (sequence, change) = watch.latest();
        assert_eq!(sequence, 2);
        assert!(matches!(change, Change::Settled(r) if r.status == Status::Ready));
        // Another environment's change is not this watch's.
        runtime.environment_changed(Uuid::new_v4(), None);
        assert_eq!(watch.latest().0, 2);
    }

    #[test]
    fn the_notice_of_an_outcome_already_handed_over_keeps_the_record() {
        let runtime = Runtime::new();
        let id = Uuid::new_v4();
        let watch = runtime.watch(id);
        runtime.environment_settled(&row(id, 1, Status::Ready));
        // The worker's own commit, arriving through the listener afterwards,
        // and the API's commit before it (notifications can lag): nothing new.
        runtime.environment_changed(id, Some((1, Status::Ready)));
        runtime.environment_changed(id, Some((1, Status::Pending)));
        assert!(matches!(watch.latest(), (1, Change::Settled(_))));
        // A later change (a DELETE: revision 2) replaces it.
        runtime.environment_changed(id, Some((2, Status::Deleting)));
        assert!(matches!(
            watch.latest(),
            (2, Change::Notice(Some((2, Status::Deleting))))
        ));
        // So does a wake-up that says nothing (the listener reconnected).
        runtime.wake_all_waiters();
        assert!(matches!(watch.latest(), (3, Change::Notice(None))));
    }

    #[test]
    fn an_outcome_of_a_worker_here_is_left_to_the_worker_to_hand_over() {
        let runtime = Runtime::new();
        let id = Uuid::new_v4();
        let watch = runtime.watch(id);
        let here = runtime.replica_id().to_owned();
        // Its notice overtook the worker's hand-over: nothing to read yet.
        runtime.environment_noticed(id, Some((1, Status::Ready)), Some(&here));
        assert!(matches!(watch.latest(), (0, Change::None)));
        runtime.environment_settled(&row(id, 1, Status::Ready));
        assert!(matches!(watch.latest(), (1, Change::Settled(_))));
        // Another replica's outcome is news here.
        runtime.environment_noticed(id, Some((2, Status::Deleted)), Some("replica-other"));
        assert!(matches!(
            watch.latest(),
            (2, Change::Notice(Some((2, Status::Deleted))))
        ));
        // So is a step back to work, even from here (not an outcome).
        runtime.environment_noticed(id, Some((3, Status::Pending)), Some(&here));
        assert!(matches!(
            watch.latest(),
            (3, Change::Notice(Some((3, Status::Pending))))
        ));
    }

    #[test]
    fn a_notice_overtaken_by_a_later_one_is_not_taken_back() {
        let runtime = Runtime::new();
        let id = Uuid::new_v4();
        let watch = runtime.watch(id);
        // A worker on another replica settled the DELETE before the API's
        // announcement of it went out: the outcome's notice arrives first.
        runtime.environment_changed(id, Some((2, Status::Deleted)));
        runtime.environment_changed(id, Some((2, Status::Deleting)));
        runtime.environment_changed(id, Some((1, Status::Ready)));
        runtime.environment_changed(id, Some((2, Status::Deleted)));
        assert!(matches!(
            watch.latest(),
            (1, Change::Notice(Some((2, Status::Deleted))))
        ));
        // A later revision is news.
        runtime.environment_changed(id, Some((3, Status::Deleting)));
        assert!(matches!(
            watch.latest(),
            (2, Change::Notice(Some((3, Status::Deleting))))
        ));
        // Within a revision, the outcome follows the state it ends.
        runtime.environment_changed(id, Some((3, Status::Failed)));
        assert!(matches!(
            watch.latest(),
            (3, Change::Notice(Some((3, Status::Failed))))
        ));
    }

    #[test]
    fn a_change_that_arrived_before_anyone_watched_is_in_the_watch_made_after() {
        let runtime = Runtime::new();
        let id = Uuid::new_v4();
        // The API's own commit, and then a worker's outcome, arrive before
        // the API call watches: both are kept, the row only as a notice
        // (nobody was waiting for it).
        runtime.environment_changed(id, Some((1, Status::Pending)));
        runtime.environment_settled(&row(id, 1, Status::Ready));
        let watch = runtime.watch(id);
        assert!(matches!(
            watch.latest(),
            (2, Change::Notice(Some((1, Status::Ready))))
        ));
        // While someone watches, a worker's row is handed over whole.
        runtime.environment_settled(&row(id, 2, Status::Deleted));
        assert!(matches!(watch.latest(), (3, Change::Settled(r)) if r.status == Status::Deleted));
    }

    fn offer(id: Uuid) -> Offer {
        let tenant = TenantId::parse("acme").unwrap();
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        Offer {
            record: row(id, 1, Status::Pending),
            job: crate::store::jobs::Claim::new("here", now, chrono::Duration::seconds(60), 4)
                .job(&tenant, id, now),
            claimed_at: Instant::now(),
        }
    }

    #[test]
    fn offers_are_promised_one_per_idle_worker_and_taken_oldest_first() {
        let runtime = Runtime::new();
        assert!(runtime.promise().is_none(), "no idle worker: no promise");
        let (_a, _b) = (runtime.idle_worker(), runtime.idle_worker());
        let (first, second) = (runtime.promise().unwrap(), runtime.promise().unwrap());
        assert!(
            runtime.promise().is_none(),
            "both idle workers are promised"
        );
        // A promise the statement did not need (the job was queued) frees
        // its worker for the next call.
        drop(second);
        let second = runtime.promise().unwrap(); // a worker is free again
        let (one, two) = (Uuid::new_v4(), Uuid::new_v4());
        first.keep(offer(one));
        second.keep(offer(two));
        assert!(runtime.promise().is_none(), "both idle workers hold offers");
        assert_eq!(runtime.take_offer().map(|o| o.record.id), Some(one));
        assert!(runtime.promise().is_some(), "one worker took its offer");
        let taken = runtime.take_offer().unwrap();
        assert_eq!(
            (taken.record.id, taken.job.environment_id),
            (two, Some(two))
        );
        assert!(runtime.take_offer().is_none());
    }

    #[test]
    fn background_places_are_bounded_and_given_back_when_dropped() {
        let runtime = Runtime::new();
        let first = runtime.reserve_background(2).unwrap();
        let second = runtime.reserve_background(2).unwrap();
        assert!(runtime.reserve_background(2).is_none(), "both taken");
        drop(first);
        let third = runtime.reserve_background(2).unwrap();
        assert!(runtime.reserve_background(2).is_none());
        drop((second, third));
        assert!(runtime.reserve_background(1).is_some());
    }
}
