//! Listing projects and environments as the tenant for a person who is
//! waiting, with LaunchDarkly's failures put in words for the customer.

use std::future::Future;

use super::{Choice, Choices};
use crate::app::AppState;
use crate::connections::{CallError, ConnectionError, LdProblem, interactive, problem};
use crate::ids::{ProjectKey, TenantId};
use crate::launchdarkly::{LdError, RequestAuth};

/// Calls LaunchDarkly as the tenant for a person who is waiting (short rate
/// limits are waited out, a 401 refreshes once). Errors come back as a
/// sentence for the customer; the cause is logged.
pub async fn as_tenant<T, F, Fut>(
    state: &AppState,
    tenant: &TenantId,
    operation: &'static str,
    call: F,
) -> Result<T, String>
where
    F: Fn(RequestAuth) -> Fut,
    Fut: Future<Output = Result<T, LdError>>,
{
    call_as_tenant(state, tenant, operation, call)
        .await
        .map_err(describe_call)
}

/// Like [`as_tenant`], with the error as it came.
async fn call_as_tenant<T, F, Fut>(
    state: &AppState,
    tenant: &TenantId,
    operation: &'static str,
    call: F,
) -> Result<T, CallError>
where
    F: Fn(RequestAuth) -> Fut,
    Fut: Future<Output = Result<T, LdError>>,
{
    let deadline = state.now() + chrono::Duration::seconds(5);
    interactive(state, tenant, deadline, operation, call).await
}

fn describe_call(err: CallError) -> String {
    match err {
        CallError::Ld(e) => describe_ld(e),
        CallError::Connection(e) => describe_connection(e),
    }
}

fn describe_connection(err: ConnectionError) -> String {
    match err {
        ConnectionError::NotConnected => "Connect LaunchDarkly first.".to_owned(),
        ConnectionError::NeedsReconnect => {
            "LaunchDarkly no longer accepts our access to this account: reconnect above.".to_owned()
        }
        ConnectionError::Upstream(e) => describe_ld(e),
        ConnectionError::Internal(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "opening the LaunchDarkly credential failed"
            );
            "Something went wrong on our side while talking to LaunchDarkly; try again in a moment."
                .to_owned()
        }
    }
}

/// A LaunchDarkly failure in words for the customer.
fn describe_ld(err: LdError) -> String {
    match problem(&err) {
        LdProblem::Unauthorized => {
            "LaunchDarkly no longer accepts our access to this account: reconnect above.".to_owned()
        }
        LdProblem::Forbidden { .. } => {
            "Your LaunchDarkly access does not allow this. Check the role of the connected account or token."
                .to_owned()
        }
        LdProblem::NotFound => "LaunchDarkly does not know that project.".to_owned(),
        LdProblem::RateLimited { .. } => {
            "LaunchDarkly asked us to slow down; try again in a minute.".to_owned()
        }
        LdProblem::Unavailable => "LaunchDarkly did not answer; try again in a moment.".to_owned(),
        LdProblem::Refused { .. } | LdProblem::Unexpected => {
            "LaunchDarkly gave an answer we could not use; try again in a moment.".to_owned()
        }
    }
}

/// Every project of the connected account (all pages), by name.
pub async fn projects(state: &AppState, tenant: &TenantId) -> Choices {
    let listed = as_tenant(state, tenant, "list_projects", |auth| async move {
        state.ld.list_projects(&auth).await
    })
    .await;
    match listed {
        Ok(mut projects) => {
            projects.sort_by_key(|p| p.name.to_lowercase());
            Choices::Loaded(
                projects
                    .into_iter()
                    .map(|p| Choice {
                        key: p.key,
                        name: p.name,
                        note: String::new(),
                    })
                    .collect(),
            )
        }
        Err(message) => Choices::Unavailable(message),
    }
}

/// Every environment of a project (all pages), in LaunchDarkly's order,
/// without the ones this product made (they are not sensible sources).
pub async fn environments(state: &AppState, tenant: &TenantId, project: &str) -> Choices {
    if ProjectKey::parse(project).is_err() {
        return Choices::Unavailable("Choose a project first.".to_owned());
    }
    let listed = call_as_tenant(state, tenant, "list_environments", |auth| async move {
        state.ld.list_environments(&auth, project, &[]).await
    })
    .await;
    match listed {
        Ok(envs) => Choices::Loaded(
            envs.into_iter()
                .filter(|e| !e.has_tags(&["ld-eaas"]))
                .map(|e| Choice {
                    note: if e.critical {
                        "critical".to_owned()
                    } else {
                        String::new()
                    },
                    key: e.key,
                    name: e.name,
                })
                .collect(),
        ),
        Err(CallError::Ld(LdError::NotFound)) => Choices::NoSuchProject(format!(
            "LaunchDarkly has no project '{project}' that the connected account can see."
        )),
        Err(err) => Choices::Unavailable(describe_call(err)),
    }
}
