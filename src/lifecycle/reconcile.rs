//! Making LaunchDarkly match one generation's desired state, and recording
//! the result.
//!
//! Create: POST; on a 409 (our own create landed but we never heard, or a
//! crash came between LaunchDarkly's 201 and our commit) GET the environment
//! and adopt it only if its tags are exactly ours. Delete: GET first, and
//! delete only an environment that carries our ownership tags, is the one we
//! recorded, is not marked critical and is not the tenant's source.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::upstream::{CallError, Upstream};
use super::worker::{self, JobOutcome};
use super::{EnvironmentRecord, events, keys};
use crate::connections::ConnectionError;
use crate::crypto::SealedColumn;
use crate::launchdarkly::{Environment, EnvironmentPost, LdError, SourceEnv};
use crate::startup::AppState;
use crate::store::environments::{self, Desired};
use crate::store::jobs::{self, Job};
use crate::store::settings;

/// After this many attempts an answer we cannot read is no longer "maybe
/// transient" but a failure someone must look at.
const MAX_UNEXPECTED_ATTEMPTS: i32 = 8;

/// What one attempt achieved.
pub(crate) enum EnvOutcome {
    Ready {
        env: Box<Environment>,
        adopted: bool,
    },
    Failed(String),
    Deleted {
        untouched: Option<String>,
    },
    /// The delete was refused by a safety rule; nothing was touched.
    Refused(String),
    Retry(Retry),
}

pub(crate) enum Retry {
    /// Not before `reset_at`, for any tenant on this account.
    RateLimited {
        reset_at: DateTime<Utc>,
        account_id: Option<String>,
    },
    /// Worth another try after a backoff.
    Transient(String),
    /// Cannot proceed until the customer reconnects.
    Waiting(String),
}

fn classify(err: CallError, doing: &str, attempts: i32) -> EnvOutcome {
    let ld = match err {
        CallError::Connection(ConnectionError::NotConnected) => {
            return EnvOutcome::Retry(Retry::Waiting(
                "waiting: the tenant has no LaunchDarkly connection".into(),
            ));
        }
        CallError::Connection(ConnectionError::NeedsReconnect) => {
            return EnvOutcome::Retry(Retry::Waiting(
                "waiting: the tenant's LaunchDarkly connection needs a reconnect".into(),
            ));
        }
        CallError::Connection(ConnectionError::Internal(e)) => {
            tracing::error!(
                error = format!("{e:#}"),
                "using the tenant's credential failed"
            );
            return EnvOutcome::Retry(Retry::Transient(
                "an internal error occurred while using the tenant's credential".into(),
            ));
        }
        CallError::Connection(ConnectionError::Upstream(e)) | CallError::Ld(e) => e,
    };
    match ld {
        LdError::RateLimited { reset_at } => EnvOutcome::Retry(Retry::RateLimited {
            reset_at,
            account_id: None,
        }),
        e if e.is_retryable() => {
            EnvOutcome::Retry(Retry::Transient(format!("could not {doing}: {e}")))
        }
        LdError::Unauthorized => EnvOutcome::Retry(Retry::Waiting(
            "waiting: LaunchDarkly no longer accepts the tenant's credential".into(),
        )),
        LdError::Forbidden { message } => EnvOutcome::Failed(format!(
            "LaunchDarkly did not allow us to {doing} (403 forbidden: {message}); the connected \
             account or token needs the writer role on this project"
        )),
        LdError::InvalidRequest { message } => {
            EnvOutcome::Failed(format!("LaunchDarkly refused to {doing}: {message}"))
        }
        e @ (LdError::Decode { .. } | LdError::UnexpectedStatus { .. })
            if attempts < MAX_UNEXPECTED_ATTEMPTS =>
        {
            EnvOutcome::Retry(Retry::Transient(format!("could not {doing}: {e}")))
        }
        e => EnvOutcome::Failed(format!("could not {doing}: {e}")),
    }
}

/// Same tags, ignoring case and order.
fn same_tags(upstream: &[String], ours: &[String]) -> bool {
    let norm = |tags: &[String]| {
        let mut v: Vec<String> = tags.iter().map(|t| t.to_ascii_lowercase()).collect();
        v.sort();
        v.dedup();
        v
    };
    norm(upstream) == norm(ours)
}

async fn create(
    state: &AppState,
    up: &mut Upstream<'_>,
    env: &EnvironmentRecord,
    attempts: i32,
) -> EnvOutcome {
    let mut post = EnvironmentPost::new(
        env.environment_key.clone(),
        env.environment_name.clone(),
        env.color.clone(),
    );
    post.source = Some(SourceEnv::new(env.source_environment_key.clone()));
    post.tags = env.tags.clone();
    let (post, project) = (&post, env.project_key.as_str());
    let created = up
        .call("create_environment", |auth| async move {
            state.ld.create_environment(&auth, project, post).await
        })
        .await;
    match created {
        Ok(created) => EnvOutcome::Ready {
            env: Box::new(created),
            adopted: false,
        },
        Err(CallError::Ld(LdError::Conflict { .. })) => adopt(up, env, attempts).await,
        Err(CallError::Ld(LdError::NotFound)) => EnvOutcome::Failed(format!(
            "LaunchDarkly has no project '{}' with a source environment '{}' to clone from",
            env.project_key, env.source_environment_key
        )),
        Err(e) => classify(e, "create the environment", attempts),
    }
}

/// The key is taken: ours if its tags are exactly ours, else someone else's.
async fn adopt(up: &mut Upstream<'_>, env: &EnvironmentRecord, attempts: i32) -> EnvOutcome {
    let (project, key) = (env.project_key.as_str(), env.environment_key.as_str());
    match up.get_environment(project, key).await {
        Ok(existing) if same_tags(&existing.tags, &env.tags) => EnvOutcome::Ready {
            env: Box::new(existing),
            adopted: true,
        },
        Ok(_) => EnvOutcome::Failed(format!(
            "an environment with key '{key}' already exists in project '{project}' and was not \
             created by this deployment for this environment (its tags differ); it was left untouched"
        )),
        // Taken, then freed again: try the create once more.
        Err(CallError::Ld(LdError::NotFound)) => EnvOutcome::Retry(Retry::Transient(format!(
            "the key '{key}' was taken and then freed; creating again"
        ))),
        Err(e) => classify(e, "read the environment that holds our key", attempts),
    }
}

async fn delete(
    state: &AppState,
    up: &mut Upstream<'_>,
    env: &EnvironmentRecord,
    attempts: i32,
) -> EnvOutcome {
    let (project, key) = (env.project_key.as_str(), env.environment_key.as_str());
    let existing = match up.get_environment(project, key).await {
        Ok(existing) => existing,
        Err(CallError::Ld(LdError::NotFound)) => return EnvOutcome::Deleted { untouched: None },
        Err(e) => return classify(e, "look up the environment before deleting it", attempts),
    };
    let ownership = keys::ownership_tags(&state.config.instance_tag(), &env.tenant_id);
    let ownership: Vec<&str> = ownership.iter().map(String::as_str).collect();
    if !existing.has_tags(&ownership) {
        return EnvOutcome::Deleted {
            untouched: Some(format!(
                "'{key}' exists but does not carry this deployment's ownership tags; it was left untouched"
            )),
        };
    }
    if env
        .client_side_id
        .as_deref()
        .is_some_and(|id| id != existing.id)
    {
        return EnvOutcome::Deleted {
            untouched: Some(format!(
                "'{key}' is no longer the environment this deployment created; it was left untouched"
            )),
        };
    }
    if let Some(refusal) = protected(state, env, &existing).await {
        return EnvOutcome::Refused(refusal);
    }
    match up.delete_environment(project, key).await {
        Ok(()) => EnvOutcome::Deleted { untouched: None },
        Err(e) => classify(e, "delete the environment", attempts),
    }
}

/// Why an environment must not be deleted, if it must not.
pub(crate) fn protection_reason(existing: &Environment, source_keys: &[&str]) -> Option<String> {
    if existing.critical {
        return Some(format!(
            "'{}' is marked critical in LaunchDarkly, so it was not deleted; clear that and delete again",
            existing.key
        ));
    }
    if source_keys.contains(&existing.key.as_str()) {
        return Some(format!(
            "'{}' is the source environment new environments are cloned from, so it was not deleted",
            existing.key
        ));
    }
    None
}

async fn protected(
    state: &AppState,
    env: &EnvironmentRecord,
    existing: &Environment,
) -> Option<String> {
    // The tenant's current source (if in this project) and this generation's.
    let current = settings::get(&state.db, &env.tenant_id)
        .await
        .ok()
        .flatten()
        .filter(|s| s.project_key == env.project_key)
        .map(|s| s.source_environment_key);
    let mut sources = vec![env.source_environment_key.as_str()];
    if let Some(current) = current.as_deref() {
        sources.push(current);
    }
    protection_reason(existing, &sources)
}

/// One attempt at a reconcile job, and its outcome recorded.
pub(crate) async fn run(state: &AppState, job: &Job) -> anyhow::Result<&'static str> {
    let tenant = &job.tenant_id;
    let Some(env_id) = job.environment_id else {
        return worker::conclude(state, job, JobOutcome::Done).await;
    };
    let Some(env) = environments::get(&state.db, tenant, env_id).await? else {
        return worker::conclude(state, job, JobOutcome::Done).await;
    };
    if env.is_settled() {
        return worker::conclude(state, job, JobOutcome::Done).await;
    }
    let outcome = match Upstream::connect(state, tenant).await {
        Err(e) => classify(CallError::Connection(e), "reach LaunchDarkly", job.attempts),
        Ok(mut up) => {
            let outcome = match env.desired {
                Desired::Present => create(state, &mut up, &env, job.attempts).await,
                Desired::Absent => delete(state, &mut up, &env, job.attempts).await,
            };
            match outcome {
                EnvOutcome::Retry(Retry::RateLimited { reset_at, .. }) => {
                    EnvOutcome::Retry(Retry::RateLimited {
                        reset_at,
                        account_id: Some(up.account_id().to_owned()),
                    })
                }
                other => other,
            }
        }
    };
    apply(state, job, &env, outcome).await
}

/// Records an attempt's outcome and concludes the job, in one transaction,
/// unless this worker lost the job's lease (then the new holder decides).
async fn apply(
    state: &AppState,
    job: &Job,
    seen: &EnvironmentRecord,
    outcome: EnvOutcome,
) -> anyhow::Result<&'static str> {
    let tenant = &job.tenant_id;
    let now = state.now();
    let mut tx = state.db.begin().await?;
    if !jobs::still_held(&mut tx, job.id, &state.lifecycle.replica_id).await? {
        tracing::warn!(job_id = %job.id, "lost the job's lease before recording its outcome; another worker has it");
        return Ok("lost_lease");
    }
    let Some(current) = environments::get_for_update(&mut tx, tenant, seen.id).await? else {
        jobs::finish(&mut *tx, job.id, now).await?;
        tx.commit().await?;
        return Ok("done");
    };
    if current.revision != seen.revision {
        // The vendor changed their mind while we worked: keep what we
        // learnt (a created environment's keys), then look again.
        if let EnvOutcome::Ready { env, .. } = &outcome {
            record_created(state, &mut tx, &current, env).await?;
        }
        jobs::retry(&mut *tx, job.id, now, None, true, now).await?;
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
                "environment.ready",
                json!({"generation": record.generation, "adopted": adopted, "client_side_id": record.client_side_id}),
                Some("environment.ready"),
            )
            .await?;
            jobs::finish(&mut *tx, job.id, now).await?;
            tx.commit().await?;
            let waited = (now - record.created_at).num_milliseconds().max(0) as f64 / 1000.0;
            state.metrics.observe(
                "ld_eaas_environment_time_to_ready_seconds",
                "Time from a create request to a ready environment",
                &[],
                waited,
            );
            tracing::info!(tenant_id = %tenant, ephemeral_id = %record.ephemeral_id,
                environment_key = %record.environment_key, adopted, "environment ready");
            "done"
        }
        EnvOutcome::Failed(error) => {
            let record =
                environments::mark_failed(&mut tx, tenant, current.id, &error, false, now).await?;
            events::announce(
                state,
                &mut tx,
                &record,
                "system",
                "environment.failed",
                json!({"generation": record.generation, "desired": record.desired, "error": error}),
                Some("environment.failed"),
            )
            .await?;
            jobs::finish(&mut *tx, job.id, now).await?;
            jobs::wake_offboarding(&mut tx, tenant, now).await?;
            tx.commit().await?;
            tracing::warn!(tenant_id = %tenant, ephemeral_id = %record.ephemeral_id,
                environment_key = %record.environment_key, error = %error, "environment failed");
            "failed"
        }
        EnvOutcome::Refused(error) => {
            let record =
                environments::mark_failed(&mut tx, tenant, current.id, &error, true, now).await?;
            events::announce(
                state,
                &mut tx,
                &record,
                "system",
                "environment.delete_refused",
                json!({"generation": record.generation, "error": error}),
                Some("environment.failed"),
            )
            .await?;
            jobs::finish(&mut *tx, job.id, now).await?;
            jobs::wake_offboarding(&mut tx, tenant, now).await?;
            tx.commit().await?;
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
                "environment.deleted",
                json!({"generation": record.generation, "left_untouched": untouched}),
                Some("environment.deleted"),
            )
            .await?;
            jobs::finish(&mut *tx, job.id, now).await?;
            jobs::wake_offboarding(&mut tx, tenant, now).await?;
            tx.commit().await?;
            tracing::info!(tenant_id = %tenant, ephemeral_id = %record.ephemeral_id,
                environment_key = %record.environment_key, "environment deleted");
            "done"
        }
        EnvOutcome::Retry(retry) => {
            let (run_at, error) = match &retry {
                Retry::RateLimited { reset_at, .. } => (
                    (*reset_at).max(now)
                        + chrono::Duration::from_std(worker::jitter(250)).unwrap_or_default(),
                    "waiting for LaunchDarkly's rate limit to reset".to_owned(),
                ),
                Retry::Transient(e) => (
                    now + worker::backoff(&state.config.lifecycle, job.attempts),
                    e.clone(),
                ),
                Retry::Waiting(e) => (
                    now + worker::backoff(&state.config.lifecycle, job.attempts.max(6)),
                    e.clone(),
                ),
            };
            environments::note_error(&mut *tx, tenant, current.id, &error, now).await?;
            jobs::retry(&mut *tx, job.id, run_at, Some(&error), false, now).await?;
            tx.commit().await?;
            tracing::info!(tenant_id = %tenant, environment_key = %current.environment_key,
                attempts = job.attempts, %run_at, error = %error, "will retry");
            if let Retry::RateLimited { .. } = &retry {
                wake_workers_at(state, run_at - now);
            }
            if let Retry::RateLimited {
                reset_at,
                account_id: Some(account),
            } = &retry
            {
                // Hold back every queued job on this account, not just this
                // one: they would only be refused too.
                let spread = chrono::Duration::milliseconds(500);
                jobs::hold_account(&state.db, account, *reset_at, spread).await?;
                return Ok("rate_limited");
            }
            "retry"
        }
    };
    Ok(label)
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

/// Seals and stores what LaunchDarkly returned for a created environment.
async fn record_created(
    state: &AppState,
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    current: &EnvironmentRecord,
    env: &Environment,
) -> sqlx::Result<EnvironmentRecord> {
    let keys = env.sdk_keys();
    let keyring = &state.config.keyring;
    let sdk = keyring.seal(&current.tenant_id, SealedColumn::SdkKey, &keys.server);
    let mobile = keyring.seal(&current.tenant_id, SealedColumn::MobileKey, &keys.mobile);
    environments::record_created(
        tx,
        &current.tenant_id,
        current.id,
        &keys.client_side_id,
        &sdk,
        &mobile,
        state.now(),
    )
    .await
}
