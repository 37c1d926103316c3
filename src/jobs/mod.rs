//! The generic job runtime and its handlers.
//!
//! Workers ([`worker`]) claim due jobs and hand each to its handler through
//! [`handle`], the one place that knows every kind; handlers report back
//! through [`conclude`] and never call the workers. The handlers:
//! [`reconcile`] makes LaunchDarkly match one generation's desired state,
//! [`sweeper`] deletes our tagged environments that no record explains (and
//! expires TTLs), [`offboard`] deletes a tenant's environments and forgets
//! it.

mod housekeeping;
mod listener;
mod offboard;
mod reconcile;
pub mod sweeper;
pub mod worker;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::AppState;
use crate::config::Tuning;
use crate::store::environments::EnvironmentRow;
use crate::store::jobs::{self, Job, JobKind};
use crate::webhooks;

pub use housekeeping::housekeeping;
pub use worker::run_due_jobs;
pub(crate) use worker::{lease, per_tenant};

/// How a job attempt ended, for the job row.
#[derive(Debug, Clone)]
pub(crate) enum JobOutcome {
    Done,
    RetryAt { at: DateTime<Utc>, error: String },
}

/// Runs one attempt of `job` with the handler of its kind. `seen`: the
/// environment's row as committed with the job, when the API offered it.
async fn handle(
    state: &AppState,
    job: &Job,
    seen: Option<EnvironmentRow>,
) -> anyhow::Result<&'static str> {
    match job.kind {
        JobKind::ReconcileEnvironment => reconcile::run(state, job, seen).await,
        JobKind::SweepTenant => sweeper::run(state, job).await,
        JobKind::OffboardTenant => offboard::run(state, job).await,
    }
}

/// The job retry delay after `attempts` attempts.
pub(crate) fn backoff(tuning: &Tuning, attempts: i32) -> chrono::Duration {
    crate::retry::backoff(tuning.backoff_base, tuning.backoff_max, attempts)
}

/// Writes a job's outcome, if this worker still holds its lease (one
/// statement: the lease check and the write).
pub(crate) async fn conclude(
    state: &AppState,
    job: &Job,
    outcome: JobOutcome,
) -> anyhow::Result<&'static str> {
    let (settle, label) = match &outcome {
        JobOutcome::Done => (jobs::Settle::Done, "done"),
        JobOutcome::RetryAt { at, error } => (
            jobs::Settle::Retry {
                run_at: *at,
                error: Some(error),
                reset_attempts: false,
            },
            "retry",
        ),
    };
    let worker = state.lifecycle.replica_id.as_str();
    if !jobs::settle_held(&state.db, job.id, worker, settle, state.now()).await? {
        return Ok("lost_lease");
    }
    Ok(label)
}

/// Starts the notification listener, the sender of the API's
/// announcements, the lanes that write the API's PUTs and DELETEs together
/// (`environments::batched`) and, unless turned off, the workers,
/// housekeeping and webhook delivery.
pub fn spawn(state: &AppState, shutdown: &CancellationToken, tasks: &TaskTracker) {
    tasks.spawn(listener::listen(state.clone(), shutdown.clone()));
    tasks.spawn(crate::app::announcements::run(
        state.clone(),
        shutdown.clone(),
    ));
    crate::environments::spawn_lanes(state, shutdown, tasks);
    if !state.config.lifecycle.run_workers {
        return;
    }
    for _ in 0..state.config.workers {
        tasks.spawn(worker::worker_loop(state.clone(), shutdown.clone()));
    }
    tasks.spawn(housekeeping::housekeeping_loop(
        state.clone(),
        shutdown.clone(),
    ));
    if state.config.webhook.is_some() {
        tasks.spawn(webhooks::delivery_loop(state.clone(), shutdown.clone()));
    }
    tracing::info!(workers = state.config.workers, replica = %state.lifecycle.replica_id, "lifecycle workers started");
}
