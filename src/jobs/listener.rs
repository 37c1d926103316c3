//! The Postgres LISTEN loop of a replica: notifications on the jobs,
//! environments, outbox, API-key and tenant channels become in-process
//! wake-ups of idle workers, webhook senders and waiting API calls, and
//! evictions from the key and tenant caches.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::environments::events;
use crate::store::jobs;
use crate::store::{notify, outbox};

/// Turns Postgres notifications into in-process wake-ups. Waiters also poll,
/// so a lost notification only costs latency.
pub(super) async fn listen(state: AppState, shutdown: CancellationToken) {
    let channels = [
        jobs::JOBS_CHANNEL,
        events::ENVIRONMENTS_CHANNEL,
        outbox::OUTBOX_CHANNEL,
        notify::API_KEYS_CHANNEL,
        notify::TENANTS_CHANNEL,
    ];
    while !shutdown.is_cancelled() {
        let mut listener = match PgListener::connect_with(state.db.notifications()).await {
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
        // Revocations and changes sent while no one listened were missed.
        state.lifecycle.api_keys.clear();
        state.lifecycle.tenants.clear();
        state.lifecycle.wake_all_waiters();
        loop {
            tokio::select! {
                received = listener.recv() => match received {
                    Ok(n) if n.channel() == jobs::JOBS_CHANNEL => state.lifecycle.jobs.notify_one(),
                    Ok(n) if n.channel() == outbox::OUTBOX_CHANNEL => state.lifecycle.outbox.notify_one(),
                    Ok(n) if n.channel() == notify::TENANTS_CHANNEL => state.lifecycle.tenants.evict(n.payload()),
                    Ok(n) if n.channel() == notify::API_KEYS_CHANNEL => {
                        match uuid::Uuid::parse_str(n.payload()) {
                            Ok(id) => state.lifecycle.api_keys.evict(id),
                            Err(_) => state.lifecycle.api_keys.clear(),
                        }
                    }
                    Ok(n) => {
                        if let Some((id, now, by)) = notify::parse_environment_notice(n.payload()) {
                            state.lifecycle.environment_noticed(id, now, by);
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
