//! The environment lifecycle: what the internal API and the web UI call to
//! make, read, recreate and delete a tenant's LaunchDarkly environments.
//!
//! Every call records the vendor's intent (this ephemeral environment should
//! exist / be gone) in the same transaction as a job; workers in every
//! replica (`crate::jobs`) make LaunchDarkly match, with retries. Callers may
//! wait a bounded time for the work ([`wait_until_settled`]).

pub mod events;
mod read;
mod request;
mod view;

use serde_json::json;
use uuid::Uuid;

use crate::app::{AppState, Offer};
use crate::audit::AuditAction;
use crate::ids::{EphemeralId, TenantId};
use crate::naming;
use crate::store::environments::{self, NewEnvironment};
use crate::store::jobs;
use crate::store::settings::TenantSettings;
use crate::tenants::{self, TenantError};

pub use crate::store::environments::{
    Desired, EnvironmentRow as EnvironmentRecord, FailureCode, Status as EnvironmentStatus,
};
pub use read::{
    EnvironmentPage, ListQuery, RevealedKeys, environment_url, get_environment, list_environments,
    reveal_keys, wait_until_settled,
};
pub use request::EnvironmentRequest;
pub use view::{EnvironmentView, LaunchDarklyView};

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

/// Whether this call hands its job to an idle worker of this replica
/// ([`hand_over`]) instead of waking the workers of every replica: the job
/// is then claimed by id, with the row as committed, and no other replica is
/// disturbed. Only while a worker here waits for work and is not yet
/// promised another offer, so under load every job is claimed from the
/// queue, oldest first. The job is queued like any other, so if this replica
/// dies first, another claims it at its next poll.
fn offer_here(state: &AppState) -> bool {
    state.lifecycle.can_take_offer()
}

/// After the commit: offers the queued job (if any) to this replica's workers.
fn hand_over(state: &AppState, here: bool, job: Option<Uuid>, record: &EnvironmentRecord) {
    if let (true, Some(job_id)) = (here, job) {
        state.lifecycle.offer(Offer {
            job_id,
            record: record.clone(),
        });
    }
}

/// Inserts the next generation of `ephemeral_id` and queues its creation;
/// returns it and its job's id (see `jobs::enqueue_reconcile`).
async fn insert_generation(
    state: &AppState,
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
    settings: &TenantSettings,
    request: &EnvironmentRequest,
    wake_replicas: bool,
) -> Result<(EnvironmentRecord, Option<Uuid>)> {
    let now = state.now();
    let generation = environments::max_generation(tx, tenant, ephemeral_id).await? + 1;
    let key = naming::environment_key(&settings.key_prefix, tenant, ephemeral_id, generation);
    let name = match &request.name {
        Some(name) => name.clone(),
        None => naming::environment_name(&settings.name_template, tenant, ephemeral_id, generation),
    };
    // A request's project comes with its own source (checked by `normalized`).
    let project = request
        .project_key
        .as_deref()
        .unwrap_or(&settings.project_key);
    let source = request
        .source_environment_key
        .as_deref()
        .unwrap_or(&settings.source_environment_key);
    let tags = naming::environment_tags(&state.config.instance_tag(), tenant, &request.tags);
    let ttl = request.ttl_seconds.or(settings.default_ttl_seconds);
    let record = environments::insert(
        tx,
        &NewEnvironment {
            id: Uuid::new_v4(),
            tenant,
            ephemeral_id,
            generation,
            request: serde_json::to_value(request).map_err(anyhow::Error::from)?,
            project_key: project,
            environment_key: &key,
            environment_name: &name,
            source_environment_key: source,
            color: &settings.color,
            tags: &tags,
            flags: serde_json::to_value(&request.flags).map_err(anyhow::Error::from)?,
            expires_at: ttl.map(|s| now + chrono::Duration::seconds(s)),
        },
        now,
    )
    .await?;
    let job = jobs::enqueue_reconcile(tx, tenant, record.id, now, wake_replicas).await?;
    Ok((record, job))
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
    let settings = tenants::ready(&state.db, tenant).await?;
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
        let here = offer_here(state);
        let record = environments::rearm(&mut *tx, tenant, existing.id, state.now()).await?;
        let job = jobs::enqueue_reconcile(&mut tx, tenant, record.id, state.now(), !here).await?;
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
        hand_over(state, here, job, &record);
        // This call's retry is what creates it.
        return Ok(Ensured {
            record,
            created: true,
        });
    }
    let here = offer_here(state);
    let (record, job) = insert_generation(
        state,
        &mut tx,
        tenant,
        ephemeral_id,
        &settings,
        &request,
        !here,
    )
    .await?;
    events::announce(
        state,
        &mut tx,
        &record,
        actor,
        AuditAction::EnvironmentCreateRequested,
        json!({
            "generation": record.generation,
            "project_key": record.project_key,
            "source_environment_key": record.source_environment_key,
            "flags": record.flags,
            "expires_at": record.expires_at,
        }),
        None,
    )
    .await?;
    tx.commit().await?;
    hand_over(state, here, job, &record);
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
    let mut tx = state.db.begin().await?;
    environments::lock_ephemeral(&mut tx, tenant, ephemeral_id).await?;
    let now = state.now();
    if let Some(present) = environments::present_for_update(&mut tx, tenant, ephemeral_id).await? {
        let here = offer_here(state);
        let record = environments::mark_absent(&mut *tx, tenant, present.id, now).await?;
        let job = jobs::enqueue_reconcile(&mut tx, tenant, record.id, now, !here).await?;
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
        hand_over(state, here, job, &record);
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
    let settings = tenants::ready(&state.db, tenant).await?;
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
    let (record, _) = insert_generation(
        state,
        &mut tx,
        tenant,
        ephemeral_id,
        &settings,
        &request,
        true,
    )
    .await?;
    jobs::enqueue_reconcile(&mut tx, tenant, old.id, now, true).await?;
    events::announce(
        state,
        &mut tx,
        &record,
        actor,
        AuditAction::EnvironmentRecreateRequested,
        json!({
            "previous_generation": old.generation,
            "previous_environment_key": old.environment_key,
            "generation": record.generation,
        }),
        None,
    )
    .await?;
    events::notify_changed(&mut tx, old.id).await?;
    tx.commit().await?;
    Ok(record)
}
