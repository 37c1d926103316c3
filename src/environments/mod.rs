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
use crate::store::settings::TenantSettings;
use crate::store::{jobs, notify};
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

/// After the commit: offers the environment's job, if it was queued, to
/// this replica's workers.
fn hand_over(state: &AppState, here: bool, queued: bool, record: &EnvironmentRecord) {
    if here && queued {
        state.lifecycle.offer(Offer {
            record: record.clone(),
        });
    }
}

/// Counts a lifecycle write by the way it went: `statement` (the common
/// case, one statement without a transaction) or `transaction` (the locked
/// path, when the statement could not settle it). `write`: `put`, `delete`
/// or `outcome`.
pub(crate) fn count_write(state: &AppState, write: &'static str, path: &'static str) {
    state.metrics.inc(
        "ld_eaas_lifecycle_writes_total",
        "Environment requests and job outcomes written, by write and by path (one statement or a transaction)",
        &[("write", write), ("path", path)],
    );
}

/// A new generation's row, worked out from the settings and the request.
struct Planned<'a> {
    id: Uuid,
    generation: i32,
    key: String,
    name: String,
    project: &'a str,
    source: &'a str,
    color: &'a str,
    tags: Vec<String>,
    request: serde_json::Value,
    flags: serde_json::Value,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl<'a> Planned<'a> {
    fn new(
        state: &AppState,
        tenant: &TenantId,
        ephemeral_id: &EphemeralId,
        settings: &'a TenantSettings,
        request: &'a EnvironmentRequest,
        generation: i32,
    ) -> Result<Self> {
        let name = match &request.name {
            Some(name) => name.clone(),
            None => {
                naming::environment_name(&settings.name_template, tenant, ephemeral_id, generation)
            }
        };
        let ttl = request.ttl_seconds.or(settings.default_ttl_seconds);
        Ok(Self {
            id: Uuid::new_v4(),
            generation,
            key: naming::environment_key(&settings.key_prefix, tenant, ephemeral_id, generation),
            name,
            // A request's project comes with its own source (checked by `normalized`).
            project: request
                .project_key
                .as_deref()
                .unwrap_or(&settings.project_key),
            source: request
                .source_environment_key
                .as_deref()
                .unwrap_or(&settings.source_environment_key),
            color: &settings.color,
            tags: naming::environment_tags(&state.config.instance_tag(), tenant, &request.tags),
            request: serde_json::to_value(request).map_err(anyhow::Error::from)?,
            flags: serde_json::to_value(&request.flags).map_err(anyhow::Error::from)?,
            expires_at: ttl.map(|s| state.now() + chrono::Duration::seconds(s)),
        })
    }

    fn row<'r>(
        &'r self,
        tenant: &'r TenantId,
        ephemeral_id: &'r EphemeralId,
    ) -> NewEnvironment<'r> {
        NewEnvironment {
            id: self.id,
            tenant,
            ephemeral_id,
            generation: self.generation,
            request: self.request.clone(),
            project_key: self.project,
            environment_key: &self.key,
            environment_name: &self.name,
            source_environment_key: self.source,
            color: self.color,
            tags: &self.tags,
            flags: self.flags.clone(),
            expires_at: self.expires_at,
        }
    }

    /// The audit details of `environment.create_requested`.
    fn details(&self) -> serde_json::Value {
        json!({
            "generation": self.generation,
            "project_key": self.project,
            "source_environment_key": self.source,
            "flags": self.flags,
            "expires_at": self.expires_at,
        })
    }
}

/// The next generation of `ephemeral_id`, planned under the id's lock.
async fn plan_next<'a>(
    state: &AppState,
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
    settings: &'a TenantSettings,
    request: &'a EnvironmentRequest,
) -> Result<Planned<'a>> {
    let generation = environments::max_generation(tx, tenant, ephemeral_id).await? + 1;
    Planned::new(state, tenant, ephemeral_id, settings, request, generation)
}

/// Writes the `planned` generation with its job, its audit row (`audit`:
/// actor, action, details) and the wake-ups, in one statement
/// (`environments::insert_requested`); every replica's workers are woken
/// with `wake_replicas`. `None` when it wrote nothing (the tenant is being
/// offboarded, or, outside the id's lock, a transaction holds it).
async fn write_planned(
    state: &AppState,
    conn: &mut sqlx::PgConnection,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
    planned: &Planned<'_>,
    (actor, action, details): (&str, AuditAction, &serde_json::Value),
    wake_replicas: bool,
) -> sqlx::Result<Option<EnvironmentRecord>> {
    let notice = notify::notice_of(
        planned.id,
        environments::FIRST_REVISION,
        EnvironmentStatus::Pending,
    );
    environments::insert_requested(
        conn,
        &planned.row(tenant, ephemeral_id),
        (actor, action.as_str(), details),
        &notice,
        wake_replicas,
        state.now(),
    )
    .await
}

/// The common case of [`ensure_environment`], without a transaction: the
/// `planned` generation (the newest one seen, plus one) written by
/// [`write_planned`]. `None` when that wrote nothing: a request for the
/// same id holds its lock or got there first, or the tenant is being
/// offboarded; the caller takes the locked path, which tells.
async fn insert_unlocked(
    state: &AppState,
    conn: &mut sqlx::PgConnection,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
    planned: &Planned<'_>,
    actor: &str,
) -> Result<Option<EnvironmentRecord>> {
    let here = offer_here(state);
    let details = planned.details();
    let audit = (actor, AuditAction::EnvironmentCreateRequested, &details);
    let record = match write_planned(state, conn, tenant, ephemeral_id, planned, audit, !here).await
    {
        Ok(Some(record)) => record,
        Ok(None) => return Ok(None),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    hand_over(state, here, true, &record);
    count_write(state, "put", "statement");
    tracing::info!(environment_key = %record.environment_key, generation = record.generation, "environment requested");
    Ok(Some(record))
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
    // One connection for the statements of the common case (each connection
    // sqlx takes back costs a round trip to check it), given back before the
    // locked path takes another.
    let mut conn = state.db.acquire().await?;
    let settings = tenants::ready_cached(state, &mut *conn, tenant).await?;
    // First without a lock: a repeat finds its generation, a new id gets
    // one in one statement. What that cannot settle (a failed generation to
    // retry, a request that raced this one) takes the lock below.
    match environments::current(&mut *conn, tenant, ephemeral_id).await? {
        Some(live) if live.desired == Desired::Present => {
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
        newest => {
            let generation = newest.map_or(0, |row| row.generation) + 1;
            let planned =
                Planned::new(state, tenant, ephemeral_id, &settings, &request, generation)?;
            if let Some(record) =
                insert_unlocked(state, &mut conn, tenant, ephemeral_id, &planned, actor).await?
            {
                return Ok(Ensured {
                    record,
                    created: true,
                });
            }
        }
    }
    drop(conn);
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
        hand_over(state, here, job.is_some(), &record);
        count_write(state, "put", "transaction");
        // This call's retry is what creates it.
        return Ok(Ensured {
            record,
            created: true,
        });
    }
    let here = offer_here(state);
    let planned = plan_next(state, &mut tx, tenant, ephemeral_id, &settings, &request).await?;
    let details = planned.details();
    let audit = (actor, AuditAction::EnvironmentCreateRequested, &details);
    // This transaction holds the id's lock, so the statement's try succeeds.
    let record = write_planned(state, &mut tx, tenant, ephemeral_id, &planned, audit, !here)
        .await?
        .ok_or(TenantError::Offboarding)?;
    tx.commit().await?;
    hand_over(state, here, true, &record);
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
    // The common case, a live generation, in one statement without a lock.
    let here = offer_here(state);
    if let Some(record) = environments::mark_absent_requested(
        &state.db,
        tenant,
        ephemeral_id,
        actor,
        AuditAction::EnvironmentDeleteRequested.as_str(),
        !here,
        state.now(),
    )
    .await?
    {
        hand_over(state, here, true, &record);
        count_write(state, "delete", "statement");
        return Ok(Some(record));
    }
    // Nothing live: look closer, under the lock.
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
        hand_over(state, here, job.is_some(), &record);
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
    let record = write_planned(state, &mut tx, tenant, ephemeral_id, &planned, audit, true)
        .await?
        .ok_or(TenantError::Offboarding)?;
    jobs::enqueue_reconcile(&mut tx, tenant, old.id, now, true).await?;
    events::notify_changed(&mut tx, old.id).await?;
    tx.commit().await?;
    Ok(record)
}
