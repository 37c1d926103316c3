//! Making LaunchDarkly match one generation's desired state, and recording
//! the result.
//!
//! Create: POST; on a 409 (our own create landed but we never heard, or a
//! crash came between LaunchDarkly's 201 and our commit) GET the environment
//! and adopt it only if its tags are exactly ours. Delete: GET first, and
//! delete only an environment that carries our ownership tags, is the one we
//! recorded, is not marked critical and is not the tenant's source.

mod apply;
mod choices;

use chrono::{DateTime, Utc};

use super::{JobOutcome, conclude};
use crate::app::AppState;
use crate::connections::{CallError, ConnectionError, Upstream};
use crate::environments::{EnvironmentRecord, FailureCode};
use crate::launchdarkly::{Environment, EnvironmentPost, LdError, SourceEnv};
use crate::naming;
use crate::store::environments::{self, Desired};
use crate::store::jobs::Job;
use crate::store::settings;

use apply::apply;

/// After this many attempts an answer we cannot read is no longer "maybe
/// transient" but a failure someone must look at.
const MAX_UNEXPECTED_ATTEMPTS: i32 = 8;

/// What one attempt achieved.
pub(crate) enum EnvOutcome {
    Ready {
        env: Box<Environment>,
        adopted: bool,
    },
    /// Given up; `code` names the request's choice LaunchDarkly did not know.
    Failed {
        error: String,
        code: Option<FailureCode>,
    },
    Deleted {
        untouched: Option<String>,
    },
    /// The delete was refused by a safety rule; nothing was touched.
    Refused(String),
    Retry(Retry),
}

impl EnvOutcome {
    fn failed(error: String) -> Self {
        Self::Failed { error, code: None }
    }
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
        LdError::Forbidden { message } => EnvOutcome::failed(format!(
            "LaunchDarkly did not allow us to {doing} (403 forbidden: {message}); the connected \
             account or token needs the writer role on this project"
        )),
        LdError::InvalidRequest { message } => {
            EnvOutcome::failed(format!("LaunchDarkly refused to {doing}: {message}"))
        }
        e @ (LdError::Decode { .. } | LdError::UnexpectedStatus { .. })
            if attempts < MAX_UNEXPECTED_ATTEMPTS =>
        {
            EnvOutcome::Retry(Retry::Transient(format!("could not {doing}: {e}")))
        }
        e => EnvOutcome::failed(format!("could not {doing}: {e}")),
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
    let outcome = match created {
        Ok(created) => EnvOutcome::Ready {
            env: Box::new(created),
            adopted: false,
        },
        Err(CallError::Ld(LdError::Conflict { .. })) => adopt(up, env, attempts).await,
        Err(CallError::Ld(LdError::NotFound)) => {
            choices::unknown_project_or_source(state, up, env, attempts).await
        }
        Err(e) => classify(e, "create the environment", attempts),
    };
    // Ready only once the preview's flag values are applied.
    if let EnvOutcome::Ready { .. } = outcome {
        if let Some(instead) = choices::apply_flags(state, up, env, attempts).await {
            return instead;
        }
    }
    outcome
}

/// The key is taken: ours if its tags are exactly ours, else someone else's.
async fn adopt(up: &mut Upstream<'_>, env: &EnvironmentRecord, attempts: i32) -> EnvOutcome {
    let (project, key) = (env.project_key.as_str(), env.environment_key.as_str());
    match up.get_environment(project, key).await {
        Ok(existing) if same_tags(&existing.tags, &env.tags) => EnvOutcome::Ready {
            env: Box::new(existing),
            adopted: true,
        },
        Ok(_) => EnvOutcome::failed(format!(
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
    let ownership = naming::ownership_tags(&state.config.instance_tag(), &env.tenant_id);
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
    let cached = state.lifecycle.tenants.ready(&env.tenant_id);
    let current = match cached {
        Some(settings) => Some(settings),
        None => settings::get(&state.db, &env.tenant_id)
            .await
            .ok()
            .flatten(),
    }
    .filter(|s| s.project_key == env.project_key)
    .map(|s| s.source_environment_key);
    let mut sources = vec![env.source_environment_key.as_str()];
    if let Some(current) = current.as_deref() {
        sources.push(current);
    }
    protection_reason(existing, &sources)
}

/// One attempt at a reconcile job, and its outcome recorded. `seen`: the
/// environment's row as the API committed it with the job (offered jobs);
/// otherwise it is read. A row that changed since is caught when the outcome
/// is recorded (`apply` compares revisions under the row's lock).
pub(crate) async fn run(
    state: &AppState,
    job: &Job,
    seen: Option<EnvironmentRecord>,
) -> anyhow::Result<&'static str> {
    let tenant = &job.tenant_id;
    let Some(env_id) = job.environment_id else {
        return conclude(state, job, JobOutcome::Done).await;
    };
    let env = match seen.filter(|row| row.id == env_id && &row.tenant_id == tenant) {
        Some(row) => Some(row),
        None => environments::get(&state.db, tenant, env_id).await?,
    };
    let Some(env) = env else {
        return conclude(state, job, JobOutcome::Done).await;
    };
    if env.is_settled() {
        return conclude(state, job, JobOutcome::Done).await;
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
