//! How a request's writes are made: a new generation planned and written
//! in one statement (its row, job and audit row), announced after the
//! commit when someone needs to hear of it, counted by the path it took,
//! and its job handed to this replica's idle workers.

use serde_json::json;
use uuid::Uuid;

use super::{EnvironmentRecord, EnvironmentRequest, Result};
use crate::app::{AppState, Offer, Promise};
use crate::audit::AuditAction;
use crate::ids::{EphemeralId, TenantId};
use crate::naming;
use crate::store::environments::{self, NewEnvironment, NewRequested, Requested};
use crate::store::jobs::Claim;
use crate::store::notify;
use crate::store::settings::TenantSettings;

/// A claim for this call's job, when a worker of this replica is idle and
/// can be promised it: the statement that queues the job then inserts it
/// already running for that worker (`store::jobs::Claim`), and
/// [`hand_over`] gives it to the worker with the row as committed. No
/// other replica is disturbed, and the worker neither claims nor reads.
/// Only while a worker here waits for work and is not yet promised another
/// job, so under load every job is claimed from the queue, oldest first.
/// If this replica dies before the worker is done, the lease runs out and
/// another replica claims the job.
pub(super) fn claim_here(state: &AppState) -> Option<(Promise<'_>, Claim<'_>)> {
    let promise = state.lifecycle.promise()?;
    let claim = Claim::new(
        &state.lifecycle.replica_id,
        state.now(),
        crate::jobs::lease(state),
        crate::jobs::per_tenant(state),
    );
    Some((promise, claim))
}

/// After the commit of a change to an existing generation (a DELETE's
/// one statement): announces the row as it now is, with `wake_replicas`
/// waking every replica's workers too (`app::announce`: queued for this
/// replica's sender, not waited for). The change is committed whatever
/// happens to the announcement: those who would have been woken find it at
/// their next poll.
pub(super) async fn announce(state: &AppState, record: &EnvironmentRecord, wake_replicas: bool) {
    let notice = notify::environment_notice(record);
    crate::app::announce(state, Some(notice), wake_replicas).await;
}

/// After the commit of a new generation: wakes every replica's workers when
/// no worker here takes the job (`wake_replicas`), and says nothing else.
/// Nobody can be waiting for it: a wait names a generation's id, and this
/// one's is returned only now, to this call (the rows it replaced, if any,
/// were announced by the transaction that changed them).
pub(super) async fn announce_new(state: &AppState, wake_replicas: bool) {
    crate::app::announce(state, None, wake_replicas).await;
}

/// After the commit: gives the job the statement claimed under `promise`
/// to that worker; a promise whose job was not claimed (the tenant was at
/// its limit, or the job was already open) is let go.
pub(super) fn hand_over(
    here: Option<(Promise<'_>, Claim<'_>)>,
    claimed: bool,
    record: &EnvironmentRecord,
    now: chrono::DateTime<chrono::Utc>,
) {
    if let Some((promise, claim)) = here.filter(|_| claimed) {
        promise.keep(Offer {
            record: record.clone(),
            job: claim.job(&record.tenant_id, record.id, now),
            claimed_at: std::time::Instant::now(),
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
pub(super) struct Planned<'a> {
    id: Uuid,
    pub(super) generation: i32,
    key: String,
    name: String,
    project: &'a str,
    source: &'a str,
    color: &'a str,
    tags: Vec<String>,
    request: serde_json::Value,
    flags: serde_json::Value,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it is written.
    pub(super) now: chrono::DateTime<chrono::Utc>,
}

impl<'a> Planned<'a> {
    pub(super) fn new(
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
        let now = state.now();
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
            expires_at: ttl.map(|s| now + chrono::Duration::seconds(s)),
            now,
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

    /// The row as a batched PUT carries it (`super::batched`), with its
    /// audit row.
    fn requested(
        &self,
        tenant: &TenantId,
        ephemeral_id: &EphemeralId,
        (actor, action, details): (&str, AuditAction, &serde_json::Value),
    ) -> NewRequested {
        NewRequested {
            id: self.id,
            tenant: tenant.clone(),
            ephemeral_id: ephemeral_id.clone(),
            generation: self.generation,
            request: self.request.clone(),
            project_key: self.project.to_owned(),
            environment_key: self.key.clone(),
            environment_name: self.name.clone(),
            source_environment_key: self.source.to_owned(),
            color: self.color.to_owned(),
            tags: self.tags.clone(),
            flags: self.flags.clone(),
            expires_at: self.expires_at,
            actor: actor.to_owned(),
            action: action.as_str(),
            details: details.clone(),
            now: self.now,
        }
    }

    /// The audit details of `environment.create_requested`.
    pub(super) fn details(&self) -> serde_json::Value {
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
pub(super) async fn plan_next<'a>(
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

/// Writes the `planned` generation with its job and its audit row
/// (`audit`: actor, action, details) in one statement
/// (`environments::insert_requested`), the job claimed for this replica's
/// idle worker with `claim`; the caller wakes the workers after the commit
/// if need be ([`announce_new`]). `None` when it wrote nothing (the tenant
/// is being offboarded, or, outside the id's lock, a transaction holds
/// it); a first generation is not written if the id has generations, and
/// its current one is returned ([`Requested::Found`]).
pub(super) async fn write_planned<'e>(
    db: impl sqlx::PgExecutor<'e>,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
    planned: &Planned<'_>,
    (actor, action, details): (&str, AuditAction, &serde_json::Value),
    claim: Option<&Claim<'_>>,
) -> sqlx::Result<Option<Requested>> {
    environments::insert_requested(
        db,
        &planned.row(tenant, ephemeral_id),
        (actor, action.as_str(), details),
        planned.now,
        claim,
    )
    .await
}

/// The common case of [`super::ensure_environment`], without a transaction:
/// the `planned` generation written by [`write_planned`]: the first one
/// (which finds the id's current generation instead if it has any), or the
/// one after the newest seen. `None` when that wrote nothing: a request for
/// the same id holds its lock or got there first, or the tenant is being
/// offboarded; the caller takes the locked path, which tells.
pub(super) async fn insert_unlocked(
    state: &AppState,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
    planned: &Planned<'_>,
    actor: &str,
) -> Result<Option<Requested>> {
    let here = claim_here(state);
    let details = planned.details();
    let audit = (actor, AuditAction::EnvironmentCreateRequested, &details);
    // No idle worker to promise the job to: written at once if one of the
    // replica's two places for such PUTs is free, else queued and written
    // with the others queued meanwhile (`super::batched`).
    let written = match &here {
        Some((_, claim)) => {
            write_planned(&state.db, tenant, ephemeral_id, planned, audit, Some(claim)).await
        }
        None => {
            let new = planned.requested(tenant, ephemeral_id, audit);
            super::batched::write(state, new).await
        }
    };
    let (record, claimed) = match written {
        Ok(Some(Requested::Written { row, claimed })) => (row, claimed),
        Ok(found) => return Ok(found),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    announce_new(state, !claimed).await;
    hand_over(here, claimed, &record, planned.now);
    count_write(state, "put", "statement");
    tracing::info!(environment_key = %record.environment_key, generation = record.generation, "environment requested");
    Ok(Some(Requested::Written {
        row: record,
        claimed,
    }))
}
