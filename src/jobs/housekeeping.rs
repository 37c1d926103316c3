//! Periodic work every replica does: TTL expiry, sweep scheduling, queue
//! metrics, clean-up of finished rows and a vacuum of the queue table.

use tokio_util::sync::CancellationToken;

use super::sweeper;
use crate::app::AppState;
use crate::ratelimit_store::PgRateLimitStore;
use crate::store::jobs;
use crate::store::outbox;

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
    jobs::vacuum(&state.db).await?;
    outbox::purge_delivered(&state.db, now - chrono::Duration::days(7)).await?;
    PgRateLimitStore::purge(&state.db, now - chrono::Duration::hours(1)).await?;
    Ok(())
}

pub(super) async fn housekeeping_loop(state: AppState, shutdown: CancellationToken) {
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
