//! Clean-up on a schedule: environments past their TTL are deleted through
//! the normal path, and each project holding a tenant's environments is swept for environments that
//! carry this deployment's tags under a key the tenant recorded but whose
//! generation is no longer live (left by a crash, or by a create LaunchDarkly
//! finished after we had given up on it). Those are deleted once they have
//! stayed so for the grace period, and never if critical, the tenant's
//! source, a key we never recorded, or an environment other than the one
//! recorded under that key.

use std::collections::HashSet;

use serde_json::json;

use super::{JobOutcome, backoff, conclude, reconcile};
use crate::app::AppState;
use crate::audit::{AuditAction, event as audit_event};
use crate::connections::ConnectionError;
use crate::connections::{CallError, Upstream};
use crate::environments::events;
use crate::ids::TenantId;
use crate::launchdarkly::LdError;
use crate::naming;
use crate::store::audit;
use crate::store::environments;
use crate::store::jobs::{self, Job, JobKind};
use crate::store::settings;
use crate::store::sweeps;

/// Marks generations past `expires_at` unwanted and queues their deletion.
/// Returns how many expired.
pub async fn expire_due(state: &AppState) -> anyhow::Result<usize> {
    let now = state.now();
    let mut expired = 0;
    for tenant in environments::tenants_with_expired(&state.db, now).await? {
        loop {
            let mut tx = state.db.begin().await?;
            let rows = environments::expire(&mut tx, &tenant, now, 100).await?;
            if rows.is_empty() {
                break;
            }
            for record in &rows {
                jobs::enqueue_reconcile(&mut tx, &tenant, record.id, now, true).await?;
                events::announce(
                    state,
                    &mut tx,
                    record,
                    "system:ttl",
                    AuditAction::EnvironmentExpired,
                    json!({"generation": record.generation, "expires_at": record.expires_at}),
                    None,
                )
                .await?;
            }
            tx.commit().await?;
            expired += rows.len();
            tracing::info!(tenant_id = %tenant, count = rows.len(), "environments past their TTL queued for deletion");
        }
    }
    if expired > 0 {
        state.metrics.add(
            "ld_eaas_environments_expired_total",
            "Environments deleted because their TTL ran out",
            &[],
            expired as u64,
        );
    }
    Ok(expired)
}

/// Queues a sweep for every connected, configured tenant not swept within
/// the sweep interval, each due within [`sweep_spread`] from now. Safe in
/// every replica at once.
pub async fn schedule_sweeps(state: &AppState) -> anyhow::Result<u64> {
    let now = state.now();
    let interval = chrono::Duration::from_std(state.config.sweep_interval)?;
    Ok(jobs::schedule_sweeps(&state.db, now, now - interval, sweep_spread(state)).await?)
}

/// How far apart scheduled sweeps fall due: a tenth of the sweep interval,
/// at most a minute. Sweeps scheduled together (every tenant's, the first
/// time) would otherwise list LaunchDarkly projects all at once, and fall
/// due together again at every interval.
pub fn sweep_spread(state: &AppState) -> chrono::Duration {
    let tenth = chrono::Duration::from_std(state.config.sweep_interval / 10)
        .unwrap_or(chrono::Duration::zero());
    tenth.min(chrono::Duration::minutes(1))
}

/// Queues a sweep of the tenant's project now (unless one is open).
pub async fn enqueue_sweep(state: &AppState, tenant: &TenantId) -> anyhow::Result<bool> {
    let mut tx = state.db.begin().await?;
    let queued =
        jobs::enqueue_tenant_job(&mut tx, tenant, JobKind::SweepTenant, state.now()).await?;
    tx.commit().await?;
    Ok(queued)
}

/// One sweep of every project that holds the tenant's environments: the
/// settings' project and each one a request chose.
pub(crate) async fn run(state: &AppState, job: &Job) -> anyhow::Result<&'static str> {
    let tenant = &job.tenant_id;
    let Some(settings) = settings::get(&state.db, tenant).await? else {
        return conclude(state, job, JobOutcome::Done).await;
    };
    let mut up = match Upstream::connect(state, tenant).await {
        Ok(up) => up,
        // Nothing to sweep with; the next scheduled sweep tries again.
        Err(ConnectionError::NotConnected | ConnectionError::NeedsReconnect) => {
            return conclude(state, job, JobOutcome::Done).await;
        }
        Err(e) => return retry(state, job, &CallError::Connection(e)).await,
    };
    let mut projects = environments::projects_with_sources(&state.db, tenant).await?;
    match projects
        .iter_mut()
        .find(|(p, _)| *p == settings.project_key)
    {
        Some((_, sources)) => sources.push(settings.source_environment_key.clone()),
        None => projects.push((
            settings.project_key.clone(),
            vec![settings.source_environment_key.clone()],
        )),
    }
    let mut deleted = 0;
    for (project, sources) in &projects {
        let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
        match sweep_project(state, &mut up, tenant, project, &sources).await {
            Ok(n) => deleted += n,
            Err(Swept::Call(e)) => return retry(state, job, &e).await,
            Err(Swept::Internal(e)) => return Err(e),
        }
    }
    if deleted > 0 {
        state.metrics.add(
            "ld_eaas_environments_swept_total",
            "Unrecorded environments the sweeper deleted",
            &[],
            deleted,
        );
    }
    conclude(state, job, JobOutcome::Done).await
}

enum Swept {
    Call(CallError),
    Internal(anyhow::Error),
}

impl From<sqlx::Error> for Swept {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl From<chrono::OutOfRangeError> for Swept {
    fn from(e: chrono::OutOfRangeError) -> Self {
        Self::Internal(e.into())
    }
}

/// Deletes the orphans of one project that stayed so for the grace period;
/// `sources` are never deleted. Returns how many were deleted.
async fn sweep_project(
    state: &AppState,
    up: &mut Upstream<'_>,
    tenant: &TenantId,
    project: &str,
    sources: &[&str],
) -> Result<u64, Swept> {
    let tags = naming::ownership_tags(&state.config.instance_tag(), tenant);
    let listed = {
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        let tags = &tags;
        up.call("list_environments", |auth| async move {
            state.ld.list_environments(&auth, project, tags).await
        })
        .await
    };
    let upstream = match listed {
        Ok(envs) => envs,
        // The project is gone (or out of reach): nothing of ours to sweep there.
        Err(CallError::Ld(LdError::NotFound)) => return Ok(0),
        Err(e) => return Err(Swept::Call(e)),
    };
    let keys: Vec<String> = upstream.iter().map(|e| e.key.clone()).collect();
    let ids: Vec<String> = upstream.iter().map(|e| e.id.clone()).collect();
    let sweepable: HashSet<String> =
        environments::sweepable_keys(&state.db, tenant, project, &keys, &ids)
            .await?
            .into_iter()
            .collect();
    let now = state.now();
    let grace = chrono::Duration::from_std(state.config.sweep_grace)?;
    let orphans: Vec<_> = upstream
        .iter()
        .filter(|e| sweepable.contains(&e.key))
        .collect();
    let orphan_keys: Vec<String> = orphans.iter().map(|e| e.key.clone()).collect();
    // Remember when each orphan was first seen; forget those no longer orphaned.
    let first_seen =
        sweeps::record_sightings(&state.db, tenant, project, &orphan_keys, now).await?;
    let mut deleted = 0;
    for env in orphans {
        let old_enough = first_seen
            .iter()
            .any(|(k, at)| *k == env.key && now - *at >= grace);
        if !old_enough {
            continue;
        }
        if let Some(reason) = reconcile::protection_reason(env, sources) {
            tracing::info!(tenant_id = %tenant, environment_key = %env.key, reason = %reason, "sweeper left an unrecorded environment alone");
            continue;
        }
        let key = env.key.as_str();
        up.delete_environment(project, key)
            .await
            .map_err(Swept::Call)?;
        deleted += 1;
        let mut event = audit_event("system:sweeper", AuditAction::EnvironmentOrphanDeleted);
        event.environment_key = Some(key);
        event.details = json!({"project_key": project, "reason": "carried this deployment's tags but had no live record"});
        audit::record(&state.db, tenant, state.now(), event).await?;
        sweeps::forget_sighting(&state.db, tenant, project, key).await?;
        tracing::info!(tenant_id = %tenant, project_key = %project, environment_key = %key, "sweeper deleted an unrecorded environment");
    }
    Ok(deleted)
}

async fn retry(state: &AppState, job: &Job, err: &CallError) -> anyhow::Result<&'static str> {
    let now = state.now();
    let at = match err {
        CallError::Ld(LdError::RateLimited { reset_at }) => (*reset_at).max(now),
        _ => now + backoff(&state.config.lifecycle, job.attempts),
    };
    let error = format!("sweep: {err}");
    conclude(state, job, JobOutcome::RetryAt { at, error }).await
}
