//! Recording one reconcile attempt's outcome: the environment row, its
//! audit and webhook, and the job, in one transaction.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{EnvOutcome, Retry};
use crate::app::AppState;
use crate::audit::AuditAction;
use crate::crypto::SealedColumn;
use crate::environments::{EnvironmentRecord, EnvironmentStatus as Status, count_write, events};
use crate::jobs::{backoff, worker};
use crate::launchdarkly::Environment;
use crate::store::environments::{self, Desired, Settled, Settlement};
use crate::store::jobs::{self, Job, Settle};
use crate::store::notify;

/// Records an attempt's outcome and concludes the job, in one transaction,
/// unless this worker lost the job's lease (then the new holder decides).
pub(super) async fn apply(
    state: &AppState,
    job: &Job,
    seen: &EnvironmentRecord,
    outcome: EnvOutcome,
) -> anyhow::Result<&'static str> {
    if let Some(label) = settle_unlocked(state, job, seen, &outcome).await? {
        count_write(state, "outcome", "statement");
        return Ok(label);
    }
    let tenant = &job.tenant_id;
    let now = state.now();
    let worker = state.lifecycle.replica_id.as_str();
    let mut tx = state.db.begin().await?;
    // The lock order (`crate::store`): the environment row first, then its
    // job row (`settle_held` checks the lease and locks the job in one
    // statement). The API's transactions take them in that order too.
    let current = environments::get_for_update(&mut tx, tenant, seen.id).await?;
    // A retry's due time and error, decided before the job row is written.
    let retry = match &outcome {
        EnvOutcome::Retry(retry) => Some(retry_at(state, job, retry, now)),
        _ => None,
    };
    let settle = match (&current, &retry) {
        (Some(current), _) if current.revision != seen.revision => Settle::Retry {
            run_at: now,
            error: None,
            reset_attempts: true,
        },
        (Some(_), Some((run_at, error))) => Settle::Retry {
            run_at: *run_at,
            error: Some(error),
            reset_attempts: false,
        },
        _ => Settle::Done,
    };
    if !jobs::settle_held(&mut *tx, job.id, worker, settle, now).await? {
        tracing::warn!(job_id = %job.id, "lost the job's lease before recording its outcome; another worker has it");
        return Ok("lost_lease");
    }
    count_write(state, "outcome", "transaction");
    let Some(current) = current else {
        tx.commit().await?;
        return Ok("done");
    };
    if current.revision != seen.revision {
        // The vendor changed their mind while we worked: keep what we
        // learnt (a created environment's keys), then look again.
        if let EnvOutcome::Ready { env, .. } = &outcome {
            record_created(state, &mut tx, &current, env).await?;
        }
        tx.commit().await?;
        return Ok("requeued");
    }
    let label = match outcome {
        EnvOutcome::Ready { env, adopted } => {
            let record = record_created(state, &mut tx, &current, &env).await?;
            events::announce(
                state,
                &mut tx,
                &record,
                "system",
                AuditAction::EnvironmentReady,
                ready_details(&record, adopted),
                Some("environment.ready"),
            )
            .await?;
            tx.commit().await?;
            ready(state, &record, adopted, now)
        }
        EnvOutcome::Failed { error, code } => {
            let record =
                environments::mark_failed(&mut tx, tenant, current.id, &error, false, code, now)
                    .await?;
            events::announce(
                state,
                &mut tx,
                &record,
                "system",
                AuditAction::EnvironmentFailed,
                json!({"generation": record.generation, "desired": record.desired, "error": error, "code": code}),
                Some("environment.failed"),
            )
            .await?;
            jobs::wake_offboarding(&mut tx, tenant, now).await?;
            tx.commit().await?;
            state.lifecycle.environment_settled(&record);
            tracing::warn!(tenant_id = %tenant, ephemeral_id = %record.ephemeral_id,
                environment_key = %record.environment_key, error = %error, "environment failed");
            "failed"
        }
        EnvOutcome::Refused(error) => {
            let record =
                environments::mark_failed(&mut tx, tenant, current.id, &error, true, None, now)
                    .await?;
            events::announce(
                state,
                &mut tx,
                &record,
                "system",
                AuditAction::EnvironmentDeleteRefused,
                json!({"generation": record.generation, "error": error}),
                Some("environment.failed"),
            )
            .await?;
            jobs::wake_offboarding(&mut tx, tenant, now).await?;
            tx.commit().await?;
            state.lifecycle.environment_settled(&record);
            tracing::warn!(tenant_id = %tenant, environment_key = %record.environment_key, reason = %error, "delete refused");
            "refused"
        }
        EnvOutcome::Deleted { untouched } => {
            let record = environments::mark_deleted(&mut tx, tenant, current.id, now).await?;
            events::announce(
                state,
                &mut tx,
                &record,
                "system",
                AuditAction::EnvironmentDeleted,
                deleted_details(&record, untouched.as_deref()),
                Some("environment.deleted"),
            )
            .await?;
            jobs::wake_offboarding(&mut tx, tenant, now).await?;
            tx.commit().await?;
            deleted(state, &record)
        }
        EnvOutcome::Retry(why) => {
            let (run_at, error) = retry.unwrap_or_else(|| retry_at(state, job, &why, now));
            environments::note_error(&mut *tx, tenant, current.id, &error, now).await?;
            tx.commit().await?;
            tracing::info!(tenant_id = %tenant, environment_key = %current.environment_key,
                attempts = job.attempts, %run_at, error = %error, "will retry");
            let Retry::RateLimited {
                reset_at,
                account_id,
            } = why
            else {
                return Ok("retry");
            };
            wake_workers_at(state, run_at - now);
            let Some(account) = account_id else {
                return Ok("retry");
            };
            // Hold back every queued job on this account, not just this one:
            // they would only be refused too. A short spread keeps their order
            // without leaving the window's start idle.
            let spread = chrono::Duration::milliseconds(50);
            jobs::hold_account(&state.db, &account, reset_at, spread).await?;
            "rate_limited"
        }
    };
    Ok(label)
}

/// The two common outcomes (created, deleted, as the row at `seen` asked)
/// recorded in one statement (`environments::settle`, or with other
/// workers' outcomes: `crate::environments::write_settlement`) instead of a
/// transaction of five. `None` when that does not apply: another outcome,
/// a webhook to queue with it (the transaction writes the outbox), or the
/// statement found the row changed, the lease lost or the tenant being
/// offboarded and wrote nothing; the transaction then sorts out which.
/// Run by a worker, the statement also claims that worker's next job
/// (`worker::next_claim`).
async fn settle_unlocked(
    state: &AppState,
    job: &Job,
    seen: &EnvironmentRecord,
    outcome: &EnvOutcome,
) -> anyhow::Result<Option<&'static str>> {
    if state.config.webhook.is_some() {
        return Ok(None);
    }
    let now = state.now();
    let replica = state.lifecycle.replica_id();
    let (settled, action, details, notice) = match outcome {
        EnvOutcome::Ready { env, adopted } => {
            let keys = seal_keys(state, seen, env)?;
            let mut expected = seen.clone();
            expected.client_side_id = Some(keys.client_side_id.clone());
            if seen.desired == Desired::Present {
                expected.status = Status::Ready;
            }
            let settled = Settled::Created {
                client_side_id: keys.client_side_id,
                sealed_sdk_key: keys.sdk,
                sealed_mobile_key: keys.mobile,
            };
            (
                settled,
                AuditAction::EnvironmentReady,
                ready_details(&expected, *adopted),
                notify::outcome_notice(expected.id, expected.revision, expected.status, replica),
            )
        }
        EnvOutcome::Deleted { untouched } => (
            Settled::Deleted,
            AuditAction::EnvironmentDeleted,
            deleted_details(seen, untouched.as_deref()),
            notify::outcome_notice(seen.id, seen.revision, Status::Deleted, replica),
        ),
        _ => return Ok(None),
    };
    let next_claim = worker::next_claim(state, now);
    let settlement = Settlement {
        tenant: job.tenant_id.clone(),
        id: seen.id,
        revision: seen.revision,
        ephemeral_id: seen.ephemeral_id.clone(),
        environment_key: seen.environment_key.clone(),
        job: job.id,
        worker: state.lifecycle.replica_id.clone(),
        outcome: settled,
        action: action.as_str(),
        details,
        notice,
        now,
        next: next_claim,
    };
    let Some((record, next)) = crate::environments::write_settlement(state, settlement).await?
    else {
        return Ok(None);
    };
    worker::claimed_next(state, next_claim, next);
    Ok(Some(match outcome {
        EnvOutcome::Ready { adopted, .. } => ready(state, &record, *adopted, now),
        _ => deleted(state, &record),
    }))
}

/// The audit details of `environment.ready`.
fn ready_details(record: &EnvironmentRecord, adopted: bool) -> serde_json::Value {
    json!({"generation": record.generation, "adopted": adopted, "client_side_id": record.client_side_id})
}

/// The audit details of `environment.deleted`.
fn deleted_details(record: &EnvironmentRecord, untouched: Option<&str>) -> serde_json::Value {
    json!({"generation": record.generation, "left_untouched": untouched})
}

/// After a ready environment is committed: hand it to the waiting calls,
/// count the time it took, log it.
fn ready(
    state: &AppState,
    record: &EnvironmentRecord,
    adopted: bool,
    now: DateTime<Utc>,
) -> &'static str {
    state.lifecycle.environment_settled(record);
    let waited = (now - record.created_at).num_milliseconds().max(0) as f64 / 1000.0;
    state.metrics.observe(
        "ld_eaas_environment_time_to_ready_seconds",
        "Time from a create request to a ready environment",
        &[],
        waited,
    );
    tracing::info!(tenant_id = %record.tenant_id, ephemeral_id = %record.ephemeral_id,
        environment_key = %record.environment_key, adopted, "environment ready");
    "done"
}

/// After a deletion is committed: hand it to the waiting calls, log it.
fn deleted(state: &AppState, record: &EnvironmentRecord) -> &'static str {
    state.lifecycle.environment_settled(record);
    tracing::info!(tenant_id = %record.tenant_id, ephemeral_id = %record.ephemeral_id,
        environment_key = %record.environment_key, "environment deleted");
    "done"
}

/// When a retried job falls due again, and the error the vendor sees meanwhile.
fn retry_at(
    state: &AppState,
    job: &Job,
    retry: &Retry,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, String) {
    match retry {
        // Due at the reset itself: the gate's budget, not a random delay,
        // keeps the next window from being overrun, and every millisecond
        // after the reset is a millisecond of the window lost (LaunchDarkly's
        // window opens with its first request).
        Retry::RateLimited { reset_at, .. } => (
            (*reset_at).max(now),
            "waiting for LaunchDarkly's rate limit to reset".to_owned(),
        ),
        Retry::Transient(e) => (
            now + backoff(&state.config.lifecycle, job.attempts),
            e.clone(),
        ),
        Retry::Waiting(e) => (
            now + backoff(&state.config.lifecycle, job.attempts.max(6)),
            e.clone(),
        ),
    }
}

/// A created environment's client-side id, and its SDK and mobile keys sealed.
struct SealedKeys {
    client_side_id: String,
    sdk: String,
    mobile: String,
}

fn seal_keys(
    state: &AppState,
    current: &EnvironmentRecord,
    env: &Environment,
) -> anyhow::Result<SealedKeys> {
    let keys = env.sdk_keys();
    let keyring = &state.config.keyring;
    Ok(SealedKeys {
        sdk: keyring.seal(&current.tenant_id, SealedColumn::SdkKey, &keys.server)?,
        mobile: keyring.seal(&current.tenant_id, SealedColumn::MobileKey, &keys.mobile)?,
        client_side_id: keys.client_side_id,
    })
}

/// Seals and stores what LaunchDarkly returned for a created environment.
async fn record_created(
    state: &AppState,
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    current: &EnvironmentRecord,
    env: &Environment,
) -> anyhow::Result<EnvironmentRecord> {
    let keys = seal_keys(state, current, env)?;
    Ok(environments::record_created(
        tx,
        &current.tenant_id,
        current.id,
        &keys.client_side_id,
        &keys.sdk,
        &keys.mobile,
        state.now(),
    )
    .await?)
}

/// Wakes this replica's workers when a job held for a rate limit falls due
/// (and once more when the jobs spread after it do), instead of at their next
/// poll: a window left idle for a poll interval is budget lost.
fn wake_workers_at(state: &AppState, after: chrono::Duration) {
    let runtime = state.lifecycle.clone();
    let after = after.to_std().unwrap_or_default();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        runtime.jobs.notify_one();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        runtime.jobs.notify_one();
    });
}
