//! Job workers: every replica runs a few, each claiming one due job at a time
//! (`FOR UPDATE SKIP LOCKED`) under a lease it renews while it works. A
//! replica that dies stops renewing; its jobs become claimable again when the
//! lease runs out. The LISTEN loop that wakes them is in
//! [`super::listener`].

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::app::{AppState, BackgroundSlot};
use crate::store::environments::{EnvironmentRow, NextClaim};
use crate::store::jobs::{self, Job, JobKind};

/// Offered jobs a worker runs before it claims from the queue again.
const OFFERS_IN_A_ROW: usize = 4;

/// What a worker's job left it to run next: the statement that records a
/// job's outcome may claim the worker's next job in the same breath
/// (`store::environments::settle`), so that a busy worker makes one
/// statement per job instead of a claim and an outcome.
pub(crate) use crate::store::environments::Next;

/// What a job's outcome left for its worker ([`run`]): the next job, and
/// the background place reserved for that claim ([`next_claim`]).
#[derive(Debug, Default)]
struct Pending {
    next: Next,
    slot: Option<BackgroundSlot>,
}

tokio::task_local! {
    /// Set while a worker runs a job ([`run`]): what the job's outcome
    /// claimed for that worker next.
    static NEXT: std::cell::RefCell<Pending>;
}

/// How many tenant-wide jobs (sweeps, offboardings) a replica's workers run
/// at once: a quarter of them, at least one. The rest are kept for the
/// previews' creates and deletes, which would otherwise wait behind a wave
/// of sweeps (every tenant's falls due in the same housekeeping pass).
pub(crate) fn background_slots(state: &AppState) -> usize {
    (state.config.workers / 4).max(1)
}

/// Keeps `slot` only if `job` is tenant-wide: it then holds the slot until
/// it is done.
fn slot_for(job: &Job, slot: Option<BackgroundSlot>) -> Option<BackgroundSlot> {
    if job.kind == JobKind::ReconcileEnvironment {
        None
    } else {
        slot
    }
}

/// The claim of the next job for the outcome statement of the job this task
/// runs, if a worker runs it (`None` for `run_due_jobs` and the like) and
/// the queue has a backlog (`Runtime::backlog`): at saturation every job is
/// claimed from the queue, and the outcome saves the worker that
/// statement; with the queue empty, a claim would find nothing and only
/// delay the outcome (and the call waiting for it).
pub(crate) fn next_claim(
    state: &AppState,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<NextClaim> {
    if !state.lifecycle.backlog() {
        return None;
    }
    NEXT.try_with(|pending| {
        let slot = state.lifecycle.reserve_background(background_slots(state));
        let background = slot.is_some();
        pending.borrow_mut().slot = slot;
        NextClaim {
            until: now + lease(state),
            per_tenant: per_tenant(state),
            background,
        }
    })
    .ok()
}

/// What the outcome statement claimed with `asked`, [`next_claim`]'s
/// claim (if it made one): `next`. A statement that claimed nothing for
/// want of due jobs says so ([`Next::NoneDue`]); one written with others
/// (`settle_many`) that ran short says [`Next::Unknown`], and the worker
/// claims from the queue itself.
pub(crate) fn claimed_next(state: &AppState, asked: Option<NextClaim>, next: Next) {
    if asked.is_none() {
        return;
    }
    match &next {
        Next::Claimed(_) => state.lifecycle.set_backlog(true),
        Next::NoneDue => state.lifecycle.set_backlog(false),
        Next::Unknown => {}
    }
    let _ = NEXT.try_with(|pending| pending.borrow_mut().next = next);
}

/// Runs one claimed job as a worker ([`process`]), holding `slot` (its
/// background place, for a tenant-wide job) until it is done; returns what
/// its outcome claimed for this worker next, and that job's place.
async fn run(
    state: &AppState,
    job: Job,
    seen: Option<EnvironmentRow>,
    slot: Option<BackgroundSlot>,
) -> (Next, Option<BackgroundSlot>) {
    NEXT.scope(std::cell::RefCell::new(Pending::default()), async {
        process(state, job, seen).await;
        drop(slot);
        let Pending { next, slot } = NEXT.with(|pending| pending.take());
        let slot = match &next {
            Next::Claimed(job) => slot_for(job, slot),
            _ => None,
        };
        (next, slot)
    })
    .await
}

/// How many jobs of one tenant may run at once, across every replica.
pub(crate) fn per_tenant(state: &AppState) -> i64 {
    let tuning = &state.config.lifecycle;
    let n = if tuning.per_tenant_concurrency == 0 {
        (state.config.workers / 2).max(1)
    } else {
        tuning.per_tenant_concurrency
    };
    i64::try_from(n).unwrap_or(1)
}

/// Runs one claimed job to its outcome, renewing the lease meanwhile.
/// `seen`: its environment's row as the API committed it, when offered.
async fn process(state: &AppState, job: Job, seen: Option<EnvironmentRow>) {
    let span = tracing::info_span!("job", job_id = %job.id, kind = job.kind.as_str(),
        tenant_id = %job.tenant_id, attempts = job.attempts);
    let beat = tokio::spawn(heartbeat(state.clone(), job.id));
    let result = super::handle(state, &job, seen).instrument(span).await;
    beat.abort();
    let outcome = match result {
        Ok(label) => label,
        Err(err) => {
            tracing::error!(job_id = %job.id, error = format!("{err:#}"), "job failed with an internal error; it will be retried");
            let at = state.now() + super::backoff(&state.config.lifecycle, job.attempts);
            if let Err(err) = jobs::retry(
                &state.db,
                job.id,
                at,
                Some("internal error"),
                false,
                state.now(),
            )
            .await
            {
                tracing::error!(error = %err, "could not reschedule the job; its lease will expire");
            }
            "error"
        }
    };
    state.metrics.inc(
        "ld_eaas_jobs_total",
        "Lifecycle job attempts by kind and outcome",
        &[("kind", job.kind.as_str()), ("outcome", outcome)],
    );
}

/// Renews a job's lease every third of its length until aborted.
async fn heartbeat(state: AppState, id: uuid::Uuid) {
    let tuning = &state.config.lifecycle;
    let lease = chrono::Duration::from_std(tuning.lease).unwrap_or(chrono::Duration::seconds(60));
    loop {
        tokio::time::sleep(tuning.lease / 3).await;
        let until = state.now() + lease;
        if let Err(err) = jobs::heartbeat(&state.db, id, &state.lifecycle.replica_id, until).await {
            tracing::warn!(error = %err, "could not renew a job lease");
        }
    }
}

/// How long a claim holds a job before its worker must renew it.
pub(crate) fn lease(state: &AppState) -> chrono::Duration {
    chrono::Duration::from_std(state.config.lifecycle.lease)
        .unwrap_or(chrono::Duration::seconds(60))
}

/// Claims the next due job from the queue, with the background place it
/// holds if it is a tenant-wide job.
async fn claim(state: &AppState) -> sqlx::Result<Option<(Job, Option<BackgroundSlot>)>> {
    let slot = state.lifecycle.reserve_background(background_slots(state));
    let claimed = jobs::claim(
        &state.db,
        &state.lifecycle.replica_id,
        state.now(),
        lease(state),
        per_tenant(state),
        slot.is_some(),
    )
    .await?;
    state.lifecycle.set_backlog(claimed.is_some());
    Ok(claimed.map(|job| {
        let slot = slot_for(&job, slot);
        (job, slot)
    }))
}

/// Counts a claimed job by how it was found: offered by this replica's API,
/// or claimed from the queue.
fn count_claim(state: &AppState, how: &'static str) {
    state.metrics.inc(
        "ld_eaas_jobs_claimed_total",
        "Jobs claimed by this replica's workers, by how they were found",
        &[("how", how)],
    );
}

/// Runs the job this replica's API claimed for its workers, if any is
/// waiting, and returns what it claimed next (as [`run`]); `None` when
/// there was none to run. An offer that waited for a worker (every one was
/// busy) through a third of its lease renews the lease first, and is let go
/// if the job is no longer this replica's.
async fn run_offered(state: &AppState) -> Option<(Next, Option<BackgroundSlot>)> {
    let offer = state.lifecycle.take_offer()?;
    if offer.claimed_at.elapsed() >= state.config.lifecycle.lease / 3 {
        let until = state.now() + lease(state);
        match jobs::heartbeat(&state.db, offer.job.id, &state.lifecycle.replica_id, until).await {
            Ok(true) => {}
            Ok(false) => return Some((Next::Unknown, None)),
            Err(err) => {
                tracing::warn!(error = %err, "could not renew the lease of an offered job; running it anyway");
            }
        }
    }
    count_claim(state, "offered");
    Some(run(state, offer.job, Some(offer.record), None).await)
}

/// Gives the offers no worker will run back to the queue (this replica is
/// shutting down), so another replica runs them now rather than when their
/// leases run out.
async fn release_offers(state: &AppState) {
    while let Some(offer) = state.lifecycle.take_offer() {
        give_back(state, offer.job.id).await;
    }
}

/// Gives a job claimed for this replica and not started back to the queue.
async fn give_back(state: &AppState, id: uuid::Uuid) {
    let released = jobs::release(&state.db, id, &state.lifecycle.replica_id, state.now()).await;
    if let Err(err) = released {
        tracing::warn!(error = %err, job_id = %id, "could not give a claimed job back; another replica claims it when its lease runs out");
    }
}

/// Runs due jobs until none is left; returns how many ran. For tests and
/// tools that drive the lifecycle by hand (with the workers off).
pub async fn run_due_jobs(state: &AppState) -> anyhow::Result<usize> {
    let mut ran = 0;
    while let Some((job, slot)) = claim(state).await? {
        process(state, job, None).await;
        drop(slot);
        ran += 1;
    }
    Ok(ran)
}

pub(super) async fn worker_loop(state: AppState, shutdown: CancellationToken) {
    let poll = state.config.lifecycle.poll_interval;
    // Offers first, but never more than a few in a row: jobs that were not
    // offered (made while no worker here was idle, by another replica's API,
    // or of a tenant at its limit) get a claim between them.
    let mut offered_in_a_row = 0;
    // The next job, and its background place if it is tenant-wide.
    let mut next = Next::Unknown;
    let mut slot = None;
    while !shutdown.is_cancelled() {
        // The job the last one's outcome claimed from the queue, if any.
        if let Next::Claimed(job) = std::mem::take(&mut next) {
            offered_in_a_row = 0;
            count_claim(&state, "outcome");
            (next, slot) = run(&state, job, None, slot.take()).await;
            continue;
        }
        if offered_in_a_row < OFFERS_IN_A_ROW {
            if let Some(after) = run_offered(&state).await {
                offered_in_a_row += 1;
                (next, slot) = after;
                continue;
            }
        }
        offered_in_a_row = 0;
        // The last outcome found nothing due: wait for news rather than
        // asking the queue again at once.
        let claimed = if matches!(std::mem::take(&mut next), Next::NoneDue) {
            Ok(None)
        } else {
            claim(&state).await
        };
        match claimed {
            Ok(Some((job, claimed_slot))) => {
                count_claim(&state, "queue");
                // More may be due: let another idle worker look too.
                state.lifecycle.jobs.notify_one();
                (next, slot) = run(&state, job, None, claimed_slot).await;
            }
            Ok(None) => {
                let _idle = state.lifecycle.idle_worker();
                tokio::select! {
                    () = state.lifecycle.jobs.notified() => {}
                    () = tokio::time::sleep(poll) => {}
                    () = shutdown.cancelled() => {}
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "claiming a job failed");
                // A notification means the database is back: resume at once.
                tokio::select! {
                    () = state.lifecycle.jobs.notified() => {}
                    () = tokio::time::sleep(poll) => {}
                    () = shutdown.cancelled() => {}
                }
            }
        }
    }
    if let Next::Claimed(job) = next {
        give_back(&state, job.id).await;
    }
    release_offers(&state).await;
}
