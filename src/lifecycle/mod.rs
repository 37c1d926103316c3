//! The environment lifecycle: what the internal API and the web UI call to
//! make, read, recreate and delete a tenant's LaunchDarkly environments.
//!
//! Every call records the vendor's intent (this ephemeral environment should
//! exist / be gone) in the same transaction as a job; workers in every
//! replica (`worker`) make LaunchDarkly match (`reconcile`), with retries.
//! Callers may wait a bounded time for the work ([`wait_until_settled`]).

pub mod keys;
pub mod ratelimit_store;
pub mod settings;
pub mod sweeper;
pub mod upstream;
pub mod webhooks;
pub mod worker;

mod events;
mod offboard;
mod reconcile;
mod runtime;
mod view;

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::crypto::SealedColumn;
use crate::error::{AppError, AppResult};
use crate::ids::{EnvironmentKey, EphemeralId, Tag, TenantId};
use crate::startup::AppState;
use crate::store::connections::{self, ConnectionStatus};
use crate::store::environments::{self, NewEnvironment};
use crate::store::jobs;
use crate::store::settings::{self as settings_store, TenantSettings};
use crate::store::tenants;

pub use crate::store::environments::{
    Desired, EnvironmentRow as EnvironmentRecord, Status as EnvironmentStatus,
};
pub use runtime::Runtime;
pub use view::{EnvironmentView, LaunchDarklyView};

/// How the lifecycle machinery paces itself. The defaults suit production;
/// tests shorten them.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Run job workers, TTL expiry, sweeps and webhook delivery in this
    /// process. Off: the API only (a test then runs jobs by hand).
    pub run_workers: bool,
    /// How long a claimed job stays ours without a heartbeat.
    pub lease: Duration,
    /// How often idle workers look for due jobs (they are also woken by
    /// Postgres notifications).
    pub poll_interval: Duration,
    /// First retry delay after a transient failure; doubles per attempt.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Jobs one tenant may have running at once, across all replicas (so
    /// one tenant's backlog leaves workers for the others); 0: half of this
    /// replica's workers.
    pub per_tenant_concurrency: usize,
    /// Bound on one LaunchDarkly request.
    pub launchdarkly_timeout: Duration,
    /// TTL expiry, sweep scheduling, queue metrics and clean-up run this often.
    pub housekeeping_interval: Duration,
    pub webhook_timeout: Duration,
    pub webhook_backoff_base: Duration,
    pub webhook_backoff_max: Duration,
    /// Deliveries of one event before it is abandoned.
    pub webhook_max_attempts: i32,
    /// `?wait=` when the caller gives none, and its upper bound.
    pub default_wait: Duration,
    pub max_wait: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            run_workers: true,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            per_tenant_concurrency: 0,
            launchdarkly_timeout: Duration::from_secs(30),
            housekeeping_interval: Duration::from_secs(10),
            webhook_timeout: Duration::from_secs(10),
            webhook_backoff_base: Duration::from_secs(10),
            webhook_backoff_max: Duration::from_secs(3600),
            webhook_max_attempts: 15,
            default_wait: Duration::from_secs(10),
            max_wait: Duration::from_secs(60),
        }
    }
}

/// The optional body of a PUT: what may differ from the tenant's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentRequest {
    /// The LaunchDarkly environment's name (default: the settings' template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Clone from this environment instead of the settings' source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_environment_key: Option<String>,
    /// Delete it this long after creation (default: the settings' TTL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
    /// More LaunchDarkly tags, besides the ownership tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

const MAX_REQUEST_TAGS: usize = 20;
const MAX_NAME_CHARS: usize = 128;

impl EnvironmentRequest {
    /// Checks the request and puts it in one canonical form, so that a repeat
    /// of the same request compares equal whatever its spelling.
    pub fn normalized(self) -> AppResult<Self> {
        let name = match self.name.as_deref().map(str::trim) {
            None => None,
            Some(n)
                if n.is_empty()
                    || self
                        .name
                        .as_ref()
                        .is_some_and(|raw| raw.chars().count() > MAX_NAME_CHARS) =>
            {
                return Err(AppError::invalid(format!(
                    "name must be 1-{MAX_NAME_CHARS} characters"
                )));
            }
            Some(n) => Some(crate::text::check("name", n).map(|()| n.to_owned())?),
        };
        if let Some(source) = &self.source_environment_key {
            EnvironmentKey::parse(source).map_err(|e| {
                AppError::invalid(format!("source_environment_key: the source {e}"))
            })?;
        }
        if let Some(ttl) = self.ttl_seconds {
            if !(settings::MIN_TTL_SECONDS..=settings::MAX_TTL_SECONDS).contains(&ttl) {
                return Err(AppError::invalid(format!(
                    "ttl_seconds must be between {} and {}",
                    settings::MIN_TTL_SECONDS,
                    settings::MAX_TTL_SECONDS
                )));
            }
        }
        if self.tags.len() > MAX_REQUEST_TAGS {
            return Err(AppError::invalid(format!(
                "at most {MAX_REQUEST_TAGS} tags"
            )));
        }
        let mut tags: Vec<String> = Vec::with_capacity(self.tags.len());
        for tag in self.tags {
            Tag::parse(&tag).map_err(|e| AppError::invalid(format!("tags: every {e}")))?;
            // Ownership tags are ours to set: a request must not forge them.
            if tag.to_ascii_lowercase().starts_with(keys::OWNER_TAG) {
                return Err(AppError::invalid(format!(
                    "tags: '{tag}' is reserved (tags starting with '{}' mark ownership)",
                    keys::OWNER_TAG
                )));
            }
            if !tags.iter().any(|t| t.eq_ignore_ascii_case(&tag)) {
                tags.push(tag);
            }
        }
        tags.sort();
        Ok(Self {
            name,
            source_environment_key: self.source_environment_key,
            ttl_seconds: self.ttl_seconds,
            tags,
        })
    }
}

/// The answer to [`ensure_environment`].
#[derive(Debug, Clone)]
pub struct Ensured {
    pub record: EnvironmentRecord,
    /// This call asked for the environment to be made: a new generation, or
    /// a retry of one that had failed (rather than finding it there).
    pub created: bool,
}

/// An environment's SDK credentials, opened from their sealed form.
#[derive(Debug, Clone)]
pub struct RevealedKeys {
    pub client_side_id: String,
    pub sdk_key: SecretString,
    pub mobile_key: SecretString,
}

/// The tenant exists, is not being offboarded, is connected and has settings.
async fn ready_tenant(state: &AppState, tenant: &TenantId) -> AppResult<TenantSettings> {
    let found = tenants::get(&state.db, tenant)
        .await?
        .ok_or_else(|| AppError::not_found(format!("tenant '{tenant}' does not exist")))?;
    if found.offboarding_at.is_some() {
        return Err(AppError::conflict(
            "tenant_offboarding",
            "this tenant is being offboarded",
        ));
    }
    match connections::get(&state.db, tenant).await? {
        None => {
            return Err(AppError::conflict(
                "not_connected",
                "this tenant has not connected a LaunchDarkly account yet",
            ));
        }
        Some(c) if c.status == ConnectionStatus::NeedsReconnect => {
            return Err(AppError::conflict(
                "needs_reconnect",
                "this tenant's LaunchDarkly connection must be renewed: the customer needs to reconnect",
            ));
        }
        Some(_) => {}
    }
    settings_store::get(&state.db, tenant)
        .await?
        .ok_or_else(|| {
            AppError::conflict(
                "settings_missing",
                "this tenant has not chosen a LaunchDarkly project and source environment yet",
            )
        })
}

/// Inserts the next generation of `ephemeral_id` and queues its creation.
async fn insert_generation(
    state: &AppState,
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
    settings: &TenantSettings,
    request: &EnvironmentRequest,
) -> AppResult<EnvironmentRecord> {
    let now = state.now();
    let generation = environments::max_generation(tx, tenant, ephemeral_id).await? + 1;
    let key = keys::environment_key(&settings.key_prefix, tenant, ephemeral_id, generation);
    let name = match &request.name {
        Some(name) => name.clone(),
        None => keys::environment_name(&settings.name_template, tenant, ephemeral_id, generation),
    };
    let source = request
        .source_environment_key
        .as_deref()
        .unwrap_or(&settings.source_environment_key);
    let tags = keys::environment_tags(&state.config.instance_tag(), tenant, &request.tags);
    let ttl = request.ttl_seconds.or(settings.default_ttl_seconds);
    let record = environments::insert(
        tx,
        &NewEnvironment {
            id: Uuid::new_v4(),
            tenant,
            ephemeral_id,
            generation,
            request: serde_json::to_value(request).map_err(anyhow::Error::from)?,
            project_key: &settings.project_key,
            environment_key: &key,
            environment_name: &name,
            source_environment_key: source,
            color: &settings.color,
            tags: &tags,
            expires_at: ttl.map(|s| now + chrono::Duration::seconds(s)),
        },
        now,
    )
    .await?;
    jobs::enqueue_reconcile(tx, tenant, record.id, now).await?;
    Ok(record)
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
) -> AppResult<Ensured> {
    let request = request.normalized()?;
    let settings = ready_tenant(state, tenant).await?;
    let mut tx = state.db.begin().await?;
    environments::lock_ephemeral(&mut tx, tenant, ephemeral_id).await?;
    if let Some(existing) = environments::present_for_update(&mut tx, tenant, ephemeral_id).await? {
        let original: EnvironmentRequest =
            serde_json::from_value(existing.request.clone()).unwrap_or_default();
        if original != request {
            return Err(AppError::conflict(
                "conflicting_request",
                format!(
                    "environment '{ephemeral_id}' already exists with a different request; \
                     repeat the original request, or delete it first"
                ),
            ));
        }
        if existing.status != EnvironmentStatus::Failed {
            tx.commit().await?;
            return Ok(Ensured {
                record: existing,
                created: false,
            });
        }
        let record = environments::rearm(&mut *tx, tenant, existing.id, state.now()).await?;
        jobs::enqueue_reconcile(&mut tx, tenant, record.id, state.now()).await?;
        events::announce(
            state,
            &mut tx,
            &record,
            actor,
            "environment.retry_requested",
            json!({"generation": record.generation, "previous_error": existing.last_error}),
            None,
        )
        .await?;
        tx.commit().await?;
        // This call's retry is what creates it.
        return Ok(Ensured {
            record,
            created: true,
        });
    }
    let record =
        insert_generation(state, &mut tx, tenant, ephemeral_id, &settings, &request).await?;
    events::announce(
        state,
        &mut tx,
        &record,
        actor,
        "environment.create_requested",
        json!({
            "generation": record.generation,
            "project_key": record.project_key,
            "source_environment_key": record.source_environment_key,
            "expires_at": record.expires_at,
        }),
        None,
    )
    .await?;
    tx.commit().await?;
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
) -> AppResult<Option<EnvironmentRecord>> {
    let mut tx = state.db.begin().await?;
    environments::lock_ephemeral(&mut tx, tenant, ephemeral_id).await?;
    let now = state.now();
    if let Some(present) = environments::present_for_update(&mut tx, tenant, ephemeral_id).await? {
        let record = environments::mark_absent(&mut *tx, tenant, present.id, now).await?;
        jobs::enqueue_reconcile(&mut tx, tenant, record.id, now).await?;
        events::announce(
            state,
            &mut tx,
            &record,
            actor,
            "environment.delete_requested",
            json!({"generation": record.generation}),
            None,
        )
        .await?;
        tx.commit().await?;
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
            jobs::enqueue_reconcile(&mut tx, tenant, record.id, now).await?;
            events::announce(
                state,
                &mut tx,
                &record,
                actor,
                "environment.delete_requested",
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
) -> AppResult<EnvironmentRecord> {
    let settings = ready_tenant(state, tenant).await?;
    let mut tx = state.db.begin().await?;
    environments::lock_ephemeral(&mut tx, tenant, ephemeral_id).await?;
    let Some(present) = environments::present_for_update(&mut tx, tenant, ephemeral_id).await?
    else {
        return Err(AppError::not_found(format!(
            "environment '{ephemeral_id}' does not exist (or is being deleted); PUT it instead"
        )));
    };
    let request: EnvironmentRequest =
        serde_json::from_value(present.request.clone()).unwrap_or_default();
    let now = state.now();
    let old = environments::mark_absent(&mut *tx, tenant, present.id, now).await?;
    jobs::enqueue_reconcile(&mut tx, tenant, old.id, now).await?;
    let record =
        insert_generation(state, &mut tx, tenant, ephemeral_id, &settings, &request).await?;
    events::announce(
        state,
        &mut tx,
        &record,
        actor,
        "environment.recreate_requested",
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

/// The generation to show for `ephemeral_id`: the live one, else the newest.
pub async fn get_environment(
    state: &AppState,
    tenant: &TenantId,
    ephemeral_id: &EphemeralId,
) -> AppResult<Option<EnvironmentRecord>> {
    Ok(environments::current(&state.db, tenant, ephemeral_id).await?)
}

/// Which page of the list.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// 1-200.
    pub limit: i64,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Also list generations that are gone.
    pub include_deleted: bool,
}

#[derive(Debug, Clone)]
pub struct EnvironmentPage {
    pub items: Vec<EnvironmentRecord>,
    pub next_cursor: Option<String>,
}

/// A cursor is the last item's sequence number: 1-18 digits, exactly what
/// the OpenAPI document's pattern says (so a fuzzer's "valid" cursor is one).
fn encode_cursor(seq: i64) -> String {
    seq.to_string()
}

fn decode_cursor(cursor: &str) -> AppResult<i64> {
    Some(cursor)
        .filter(|c| (1..=18).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| AppError::invalid("cursor: 1-18 digits, the next_cursor of a page"))
}

/// The tenant's environments, newest first.
pub async fn list_environments(
    state: &AppState,
    tenant: &TenantId,
    query: &ListQuery,
) -> AppResult<EnvironmentPage> {
    let limit = query.limit.clamp(1, 200);
    let before = query.cursor.as_deref().map(decode_cursor).transpose()?;
    // One more than asked tells whether another page follows.
    let mut items =
        environments::list(&state.db, tenant, query.include_deleted, before, limit + 1).await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|r| encode_cursor(r.seq))
    } else {
        None
    };
    Ok(EnvironmentPage { items, next_cursor })
}

/// Opens the environment's sealed SDK and mobile keys (`None` until it is
/// ready). Never log the result.
pub fn reveal_keys(
    state: &AppState,
    record: &EnvironmentRecord,
) -> AppResult<Option<RevealedKeys>> {
    let (Some(client_side_id), Some(sdk), Some(mobile)) = (
        record.client_side_id.as_ref(),
        record.sdk_key.as_deref(),
        record.mobile_key.as_deref(),
    ) else {
        return Ok(None);
    };
    let keyring = &state.config.keyring;
    let open = |column, sealed| {
        keyring
            .open(&record.tenant_id, column, sealed)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("opening a stored SDK key: {e}")))
    };
    Ok(Some(RevealedKeys {
        client_side_id: client_side_id.clone(),
        sdk_key: open(SealedColumn::SdkKey, sdk)?,
        mobile_key: open(SealedColumn::MobileKey, mobile)?,
    }))
}

/// The environment's page in LaunchDarkly.
pub fn environment_url(state: &AppState, record: &EnvironmentRecord) -> String {
    state
        .ld
        .environment_url(&record.project_key, &record.environment_key)
        .to_string()
}

/// Waits (at most `timeout`) until the workers are done with this generation
/// or the vendor changed their mind about it; returns it as it then is.
pub async fn wait_until_settled(
    state: &AppState,
    record: EnvironmentRecord,
    timeout: Duration,
) -> AppResult<EnvironmentRecord> {
    if record.is_settled() || timeout.is_zero() {
        return Ok(record);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let watch = state.lifecycle.watch(record.id);
    loop {
        // Armed before reading, so a change between the read and the wait
        // still wakes us.
        let notified = watch.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let current = environments::get(&state.db, &record.tenant_id, record.id)
            .await?
            .ok_or_else(|| AppError::not_found("the environment is gone"))?;
        if current.is_settled()
            || current.desired != record.desired
            || tokio::time::Instant::now() >= deadline
        {
            return Ok(current);
        }
        let nap = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .min(runtime::FALLBACK_POLL);
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep(nap) => {}
        }
    }
}

/// Starts the lifecycle's background tasks (see [`Tuning::run_workers`]).
pub fn spawn(
    state: &AppState,
    shutdown: &tokio_util::sync::CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) {
    worker::spawn(state, shutdown, tasks);
}
