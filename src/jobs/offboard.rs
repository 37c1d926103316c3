//! Offboarding a tenant: delete every environment it has upstream (through
//! the normal, guarded delete path), then forget its tokens and rows.

use serde_json::json;

use super::{JobOutcome, conclude};
use crate::app::AppState;
use crate::audit::AuditAction;
use crate::connections;
use crate::environments::events;
use crate::store::connections::{self as stored, ConnectionStatus};
use crate::store::environments;
use crate::store::jobs::{self, Job};
use crate::store::tenants;

/// How often the offboarding job looks whether the deletes are done.
const RECHECK: chrono::Duration = chrono::Duration::seconds(2);

pub(crate) async fn run(state: &AppState, job: &Job) -> anyhow::Result<&'static str> {
    let tenant = &job.tenant_id;
    let Some(found) = tenants::get(&state.db, tenant).await? else {
        return conclude(state, job, JobOutcome::Done).await;
    };
    if found.offboarding_at.is_none() {
        return conclude(state, job, JobOutcome::Done).await;
    }
    let now = state.now();
    let mut tx = state.db.begin().await?;
    for record in environments::mark_all_absent(&mut tx, tenant, now).await? {
        jobs::enqueue_reconcile(&mut tx, tenant, record.id, now, true).await?;
        events::announce(
            state,
            &mut tx,
            &record,
            "system:offboarding",
            AuditAction::EnvironmentDeleteRequested,
            json!({"generation": record.generation}),
            None,
        )
        .await?;
    }
    tx.commit().await?;

    let connection = stored::get(&state.db, tenant).await?;
    let usable = connection
        .as_ref()
        .is_some_and(|c| c.status == ConnectionStatus::Connected);
    // Counted under the offboarding lock: a delete finishing meanwhile either
    // is counted or finds this job queued and wakes it.
    let mut tx = state.db.begin().await?;
    jobs::lock_offboarding(&mut tx, tenant).await?;
    let remaining = environments::count_deleting(&mut *tx, tenant).await?;
    if remaining > 0 && usable {
        let error = format!("waiting for {remaining} environment(s) to be deleted");
        let settle = jobs::Settle::Retry {
            run_at: now + RECHECK,
            error: Some(&error),
            reset_attempts: true,
        };
        if !jobs::settle_held(&mut *tx, job.id, state.lifecycle.replica_id(), settle, now).await? {
            return Ok("lost_lease");
        }
        tx.commit().await?;
        return Ok("waiting");
    }
    tx.commit().await?;
    if remaining > 0 {
        // Without a working credential nothing more can be deleted; the
        // customer asked to be forgotten, so that still happens.
        tracing::warn!(tenant_id = %tenant, remaining,
            "offboarding without a usable LaunchDarkly connection: environments were left upstream");
    }
    // The tenant row goes, and with it (by cascade) its connection, settings,
    // environments, audit rows and jobs, this one included.
    tenants::delete(&state.db, tenant).await?;
    if let Some(connection) = connection {
        if connection.auth_kind == stored::AuthKind::OAuth {
            connections::revoke_upstream(state, &connection).await;
        }
    }
    tracing::info!(tenant_id = %tenant, "tenant offboarded");
    Ok("done")
}
