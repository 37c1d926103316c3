//! Job workers: every replica runs a few, each claiming one due job at a time
//! (`FOR UPDATE SKIP LOCKED`) under a lease it renews while it works. A
//! replica that dies stops renewing; its jobs become claimable again when the
//! lease runs out. Also here: the Postgres LISTEN loop that wakes workers,
//! webhook senders and waiting API calls, and periodic housekeeping.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::{Tuning, events, offboard, reconcile, sweeper, webhooks};
use crate::startup::AppState;
use crate::store::jobs::{self, Job, JobKind};
use crate::store::outbox;

/// How a job attempt ended, for the job row.
#[derive(Debug, Clone)]
pub(crate) enum JobOutcome {
    Done,
    RetryAt { at: DateTime<Utc>, error: String },
}

/// A random delay of up to `max_ms` milliseconds.
pub(crate) fn jitter(max_ms: u64) -> Duration {
    Duration::from_millis(rand::thread_rng().gen_range(0..=max_ms))
}

/// Exponential backoff with jitter: about `base * 2^(attempt-1)`, capped,
/// somewhere in its upper half so that retries of many jobs spread out.
pub(crate) fn backoff(tuning: &Tuning, attempts: i32) -> chrono::Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(0);
    let ceiling = tuning
        .backoff_base
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(tuning.backoff_max);
    let half = ceiling / 2;
    let delay = half + half.mul_f64(rand::thread_rng().r#gen::<f64>());
    chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(1))
}

fn per_tenant(state: &AppState) -> i64 {
    let tuning = &state.config.lifecycle;
    let n = if tuning.per_tenant_concurrency == 0 {
        (state.config.workers / 2).max(1)
    } else {
        tuning.per_tenant_concurrency
    };
    i64::try_from(n).unwrap_or(1)
}

/// Writes a job's outcome, if this worker still holds its lease.
pub(crate) async fn conclude(
    state: &AppState,
    job: &Job,
    outcome: JobOutcome,
) -> anyhow::Result<&'static str> {
    let now = state.now();
    let mut tx = state.db.begin().await?;
    if !jobs::still_held(&mut tx, job.id, &state.lifecycle.replica_id).await? {
        return Ok("lost_lease");
    }
    let label = match outcome {
        JobOutcome::Done => {
            jobs::finish(&mut *tx, job.id, now).await?;
            "done"
        }
        JobOutcome::RetryAt { at, error } => {
            jobs::retry(&mut *tx, job.id, at, Some(&error), false, now).await?;
            "retry"
        }
    };
    tx.commit().await?;
    Ok(label)
}

/// Runs one claimed job to its outcome, renewing the lease meanwhile.
async fn process(state: &AppState, job: Job) {
    let span = tracing::info_span!("job", job_id = %job.id, kind = job.kind.as_str(),
        tenant_id = %job.tenant_id, attempts = job.attempts);
    let beat = tokio::spawn(heartbeat(state.clone(), job.id));
    let result = async {
        match job.kind {
            JobKind::ReconcileEnvironment => reconcile::run(state, &job).await,
            JobKind::SweepTenant => sweeper::run(state, &job).await,
            JobKind::OffboardTenant => offboard::run(state, &job).await,
        }
    }
    .instrument(span)
    .await;
    beat.abort();
    let outcome = match result {
        Ok(label) => label,
        Err(err) => {
            tracing::error!(job_id = %job.id, error = format!("{err:#}"), "job failed with an internal error; it will be retried");
            let at = state.now() + backoff(&state.config.lifecycle, job.attempts);
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

async fn claim(state: &AppState) -> sqlx::Result<Option<Job>> {
    let lease = chrono::Duration::from_std(state.config.lifecycle.lease)
        .unwrap_or(chrono::Duration::seconds(60));
    jobs::claim(
        &state.db,
        &state.lifecycle.replica_id,
        state.now(),
        lease,
        per_tenant(state),
    )
    .await
}

/// Runs due jobs until none is left; returns how many ran. For tests and
/// tools that drive the lifecycle by hand (with the workers off).
pub async fn run_due_jobs(state: &AppState) -> anyhow::Result<usize> {
    let mut ran = 0;
    while let Some(job) = claim(state).await? {
        process(state, job).await;
        ran += 1;
    }
    Ok(ran)
}

async fn worker_loop(state: AppState, shutdown: CancellationToken) {
    let poll = state.config.lifecycle.poll_interval;
    while !shutdown.is_cancelled() {
        match claim(&state).await {
            Ok(Some(job)) => {
                // More may be due: let another idle worker look too.
                state.lifecycle.jobs.notify_one();
                process(&state, job).await;
            }
            Ok(None) => {
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
}

/// Turns Postgres notifications into in-process wake-ups. Waiters also poll,
/// so a lost notification only costs latency.
async fn listen(state: AppState, shutdown: CancellationToken) {
    let channels = [
        jobs::JOBS_CHANNEL,
        events::ENVIRONMENTS_CHANNEL,
        outbox::OUTBOX_CHANNEL,
    ];
    while !shutdown.is_cancelled() {
        let mut listener = match PgListener::connect_with(&state.db).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "could not listen for notifications; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = shutdown.cancelled() => return,
                }
            }
        };
        if let Err(err) = listener.listen_all(channels).await {
            tracing::warn!(error = %err, "could not listen for notifications; retrying");
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                () = shutdown.cancelled() => return,
            }
        }
        loop {
            tokio::select! {
                received = listener.recv() => match received {
                    Ok(n) if n.channel() == jobs::JOBS_CHANNEL => state.lifecycle.jobs.notify_one(),
                    Ok(n) if n.channel() == outbox::OUTBOX_CHANNEL => state.lifecycle.outbox.notify_one(),
                    Ok(n) => {
                        if let Ok(id) = uuid::Uuid::parse_str(n.payload()) {
                            state.lifecycle.environment_changed(id);
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "lost the notification connection; reconnecting");
                        break;
                    }
                },
                () = shutdown.cancelled() => return,
            }
        }
    }
}

/// Periodic work every replica does; each step is safe to run concurrently.
pub async fn housekeeping(state: &AppState) -> anyhow::Result<()> {
    let now = state.now();
    sweeper::expire_due(state).await?;
    sweeper::schedule_sweeps(state).await?;
    let (due, later, running) = jobs::depth(&state.db, now).await?;
    for (label, value) in [("due", due), ("scheduled", later), ("running", running)] {
        state.metrics.set_gauge(
            "ld_eaas_job_queue_depth",
            "Lifecycle jobs waiting or running",
            &[("state", label)],
            value as f64,
        );
    }
    let day = chrono::Duration::days(1);
    let keep_jobs =
        day.max(chrono::Duration::from_std(state.config.sweep_interval * 2).unwrap_or(day));
    jobs::purge_finished(&state.db, now - keep_jobs).await?;
    outbox::purge_delivered(&state.db, now - chrono::Duration::days(7)).await?;
    super::ratelimit_store::PgRateLimitStore::purge(&state.db, now - chrono::Duration::hours(1))
        .await?;
    Ok(())
}

async fn housekeeping_loop(state: AppState, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        if let Err(err) = housekeeping(&state).await {
            tracing::error!(error = format!("{err:#}"), "lifecycle housekeeping failed");
        }
        tokio::select! {
            () = tokio::time::sleep(state.config.lifecycle.housekeeping_interval) => {}
            () = shutdown.cancelled() => {}
        }
    }
}

/// Starts the notification listener and, unless turned off, the workers,
/// housekeeping and webhook delivery.
pub(crate) fn spawn(state: &AppState, shutdown: &CancellationToken, tasks: &TaskTracker) {
    tasks.spawn(listen(state.clone(), shutdown.clone()));
    if !state.config.lifecycle.run_workers {
        return;
    }
    for _ in 0..state.config.workers {
        tasks.spawn(worker_loop(state.clone(), shutdown.clone()));
    }
    tasks.spawn(housekeeping_loop(state.clone(), shutdown.clone()));
    if state.config.webhook.is_some() {
        tasks.spawn(webhooks::delivery_loop(state.clone(), shutdown.clone()));
    }
    tracing::info!(workers = state.config.workers, replica = %state.lifecycle.replica_id, "lifecycle workers started");
}
