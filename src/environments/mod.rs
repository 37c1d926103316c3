//! The environment lifecycle: what the internal API and the web UI call to
//! make, read, recreate and delete a tenant's LaunchDarkly environments.
//!
//! Every call records the vendor's intent (this ephemeral environment should
//! exist / be gone) atomically with a job (one statement in the common case,
//! see `write.rs`; a transaction otherwise); workers in every
//! replica (`crate::jobs`) make LaunchDarkly match, with retries. Callers may
//! wait a bounded time for the work ([`wait_until_settled`]).

mod batched;
pub mod events;
mod read;
mod request;
mod view;
mod write;

use serde_json::json;

use crate::app::AppState;
use crate::audit::AuditAction;
use crate::ids::{EphemeralId, TenantId};
use crate::store::environments::{self, Requested};
use crate::store::jobs;
use crate::tenants::{self, TenantError};

pub use crate::store::environments::{
    Desired, EnvironmentRow as EnvironmentRecord, FailureCode, Status as EnvironmentStatus,
};
pub(crate) use batched::{spawn_lanes, write_settlement};
pub use read::{
    EnvironmentPage, ListQuery, RevealedKeys, environment_url, get_environment, list_environments,
    reveal_keys, wait_until_settled,
};
pub use request::EnvironmentRequest;
pub use view::{EnvironmentView, LaunchDarklyView};
pub(crate) use write::count_write;
use write::{
    Planned, announce, announce_new, claim_here, hand_over, insert_unlocked, plan_next,
    write_planned,
};

/// Why an environment call did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    /// The request is malformed; the message says what to fix.
    #[error("{0}")]
    InvalidRequest(String),
    #[error("cursor: 1-18 digits, the next_cursor of a page")]
    InvalidCursor,
    /// A free-text field holds a character we refuse (NUL, control).
    #[error(transparent)]
    InvalidText(#[from] crate::text::InvalidText),
    /// The tenant cannot get environments now (unknown, offboarding, not
    /// connected, no source chosen).
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error(
        "environment '{0}' already exists with a different request; \
         repeat the original request, or delete it first"
    )]
    ConflictingRequest(EphemeralId),
    /// Recreate needs a live generation.
    #[error("environment '{0}' does not exist (or is being deleted); PUT it instead")]
    NotLive(EphemeralId),
    /// The generation being waited for was removed meanwhile.
    #[error("the environment is gone")]
    Gone,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for EnvironmentError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(anyhow::Error::new(err).context("database"))
    }
}

type Result<T, E = EnvironmentError> = std::result::Result<T, E>;

/// The request a generation was made with. A stored request that no
/// longer reads is an error, never silently an empty request.
fn stored_request(record: &EnvironmentRecord) -> Result<EnvironmentRequest> {
    serde_json::from_value(record.request.clone()).map_err(|e| {
        EnvironmentError::Internal(anyhow::anyhow!(
            "environment {} holds a stored request that does not parse: {e}",
            record.id
        ))
    })
}

/// The answer to [`ensure_environment`].
#[derive(Debug, Clone)]
pub struct Ensured {
    pub record: EnvironmentRecord,
    /// This call asked for the environment to be made: a new generation, or
    /// a retry of one that had failed (rather than finding it there).
    pub created: bool,
}

/// Makes sure `ephemeral_id` has a LaunchDarkly environment. A repeat of the
/// same request returns the same environment (and retries a failed one); a
/// different request for a live one is a conflict; after a delete it makes
/// a fresh generation.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant, ephemeral_id = %ephemeral_id))]
pub async fn ensure_environment(
    state: &AppState,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
    request: EnvironmentRequest,
    actor: &str,
) -> Result<Ensured> {
    let request = request.normalized()?;
    let settings = tenants::ready_cached(state, &state.db, tenant).await?;
    // First without a lock, in one statement: a new id gets its first
    // generation, a repeat finds its current one. What that cannot settle
    // (a failed generation to retry, a request that raced this one) takes
    // the lock below.
    let first = Planned::new(
        state,
        tenant,
        ephemeral_id,
        &settings,
        &request,
        environments::FIRST_GENERATION,
    )?;
    match insert_unlocked(state, tenant, ephemeral_id, &first, actor).await? {
        Some(Requested::Written { row, .. }) => {
            return Ok(Ensured {
                record: row,
                created: true,
            });
        }
        Some(Requested::Found(live)) if live.desired == Desired::Present => {
            if stored_request(&live)? != request {
                return Err(EnvironmentError::ConflictingRequest(ephemeral_id.clone()));
            }
            if live.status != EnvironmentStatus::Failed {
                return Ok(Ensured {
                    record: live,
                    created: false,
                });
            }
        }
        // Deleted (or on its way out): the generation after the newest.
        Some(Requested::Found(newest)) => {
            let planned = Planned::new(
                state,
                tenant,
                ephemeral_id,
                &settings,
                &request,
                newest.generation + 1,
            )?;
            if let Some(Requested::Written { row, .. }) =
                insert_unlocked(state, tenant, ephemeral_id, &planned, actor).await?
            {
                return Ok(Ensured {
                    record: row,
                    created: true,
                });
            }
        }
        None => {}
    }
    let mut tx = state.db.begin().await?;
    environments::lock_ephemeral(&mut tx, tenant, ephemeral_id).await?;
    if let Some(existing) = environments::present_for_update(&mut tx, tenant, ephemeral_id).await? {
        if stored_request(&existing)? != request {
            return Err(EnvironmentError::ConflictingRequest(ephemeral_id.clone()));
        }
        if existing.status != EnvironmentStatus::Failed {
            tx.commit().await?;
            return Ok(Ensured {
                record: existing,
                created: false,
            });
        }
        let record = environments::rearm(&mut *tx, tenant, existing.id, state.now()).await?;
        jobs::enqueue_reconcile(&mut tx, tenant, record.id, state.now(), true).await?;
        events::announce(
            state,
            &mut tx,
            &record,
            actor,
            AuditAction::EnvironmentRetryRequested,
            json!({"generation": record.generation, "previous_error": existing.last_error}),
            None,
        )
        .await?;
        tx.commit().await?;
        count_write(state, "put", "transaction");
        // This call's retry is what creates it.
        return Ok(Ensured {
            record,
            created: true,
        });
    }
    let here = claim_here(state);
    let planned = plan_next(state, &mut tx, tenant, ephemeral_id, &settings, &request).await?;
    let details = planned.details();
    let audit = (actor, AuditAction::EnvironmentCreateRequested, &details);
    let claim = here.as_ref().map(|(_, claim)| claim);
    // This transaction holds the id's lock, so the statement's try
    // succeeds, and the id has no generation if this is the first.
    let (record, claimed) = write_planned(&mut *tx, tenant, ephemeral_id, &planned, audit, claim)
        .await?
        .and_then(Requested::written)
        .ok_or(TenantError::Offboarding)?;
    tx.commit().await?;
    announce_new(state, !claimed).await;
    hand_over(here, claimed, &record, planned.now);
    count_write(state, "put", "transaction");
    tracing::info!(environment_key = %record.environment_key, generation = record.generation, "environment requested");
    Ok(Ensured {
        record,
        created: true,
    })
}

/// Makes sure `ephemeral_id` has no LaunchDarkly environment. `None`: there
/// was nothing to delete (never made, already deleted, or its tenant
/// offboarded, which deleted everything) — success.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant, ephemeral_id = %ephemeral_id))]
pub async fn request_delete(
    state: &AppState,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
    actor: &str,
) -> Result<Option<EnvironmentRecord>> {
    // The common case, a live generation, in one statement without a lock
    // (when no idle worker here can be promised its job, perhaps together
    // with other DELETEs: `batched`).
    let here = claim_here(state);
    let now = state.now();
    let action = AuditAction::EnvironmentDeleteRequested.as_str();
    let marked = match &here {
        Some((_, claim)) => {
            environments::mark_absent_requested(
                &state.db,
                tenant,
                ephemeral_id,
                (actor, action),
                now,
                Some(claim),
            )
            .await?
        }
        None => {
            let request = environments::AbsentRequested {
                tenant: tenant.clone(),
                ephemeral_id: ephemeral_id.clone(),
                actor: actor.to_owned(),
                action,
                now,
            };
            batched::write(state, request)
                .await?
                .map(|row| (row, false))
        }
    };
    if let Some((record, claimed)) = marked {
        announce(state, &record, !claimed).await;
        hand_over(here, claimed, &record, now);
        count_write(state, "delete", "statement");
        return Ok(Some(record));
    }
    drop(here);
    // Nothing live: look closer, under the lock.
    let mut tx = state.db.begin().await?;
    environments::lock_ephemeral(&mut tx, tenant, ephemeral_id).await?;
    let now = state.now();
    if let Some(present) = environments::present_for_update(&mut tx, tenant, ephemeral_id).await? {
        let record = environments::mark_absent(&mut *tx, tenant, present.id, now).await?;
        jobs::enqueue_reconcile(&mut tx, tenant, record.id, now, true).await?;
        events::announce(
            state,
            &mut tx,
            &record,
            actor,
            AuditAction::EnvironmentDeleteRequested,
            json!({"generation": record.generation}),
            None,
        )
        .await?;
        tx.commit().await?;
        count_write(state, "delete", "transaction");
        return Ok(Some(record));
    }
    let Some(latest) = environments::current(&mut *tx, tenant, ephemeral_id).await? else {
        return Ok(None);
    };
    match latest.status {
        // A delete LaunchDarkly-side protection refused: try again (the
        // customer may have cleared the critical flag).
        EnvironmentStatus::Failed => {
            let record = environments::rearm(&mut *tx, tenant, latest.id, now).await?;
            jobs::enqueue_reconcile(&mut tx, tenant, record.id, now, true).await?;
            events::announce(
                state,
                &mut tx,
                &record,
                actor,
                AuditAction::EnvironmentDeleteRequested,
                json!({"generation": record.generation, "previous_error": latest.last_error}),
                None,
            )
            .await?;
            tx.commit().await?;
            count_write(state, "delete", "transaction");
            Ok(Some(record))
        }
        EnvironmentStatus::Deleting => Ok(Some(latest)),
        _ => Ok(None),
    }
}

/// Deletes the live generation and clones a new one from the source (under
/// the current settings), to shed drift. Returns the new generation.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant, ephemeral_id = %ephemeral_id))]
pub async fn request_recreate(
    state: &AppState,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
    actor: &str,
) -> Result<EnvironmentRecord> {
    let settings = tenants::ready_cached(state, &state.db, tenant).await?;
    let mut tx = state.db.begin().await?;
    environments::lock_ephemeral(&mut tx, tenant, ephemeral_id).await?;
    let Some(present) = environments::present_for_update(&mut tx, tenant, ephemeral_id).await?
    else {
        return Err(EnvironmentError::NotLive(ephemeral_id.clone()));
    };
    let request = stored_request(&present)?;
    let now = state.now();
    let old = environments::mark_absent(&mut *tx, tenant, present.id, now).await?;
    // Environment rows before job rows (the lock order in `crate::store`):
    // the new generation (and its new job) first, then the old one's job.
    let planned = plan_next(state, &mut tx, tenant, ephemeral_id, &settings, &request).await?;
    let details = json!({
        "previous_generation": old.generation,
        "previous_environment_key": old.environment_key,
        "generation": planned.generation,
    });
    let audit = (actor, AuditAction::EnvironmentRecreateRequested, &details);
    let (record, _) = write_planned(&mut *tx, tenant, ephemeral_id, &planned, audit, None)
        .await?
        .and_then(Requested::written)
        .ok_or(TenantError::Offboarding)?;
    jobs::enqueue_reconcile(&mut tx, tenant, old.id, now, true).await?;
    events::notify_changed(&mut tx, old.id).await?;
    tx.commit().await?;
    announce_new(state, true).await;
    Ok(record)
}
