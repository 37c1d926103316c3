//! What the settings page asks of LaunchDarkly and of the settings rules:
//! one seam, so the page code reads the same whatever sits behind it.

use std::future::Future;

use serde::Serialize;

use super::SettingsDraft;
use crate::connections::{self, ConnectionError};
use crate::ids::TenantId;
use crate::launchdarkly::{LdError, RequestAuth};
use crate::startup::AppState;

/// One option of a picker.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub key: String,
    pub name: String,
    /// e.g. "critical" for a source environment.
    pub note: String,
}

/// A picker's options, or why they could not be loaded.
#[derive(Debug, Clone)]
pub enum Choices {
    Loaded(Vec<Choice>),
    Unavailable(String),
}

impl Choices {
    pub fn first_key(&self) -> Option<String> {
        match self {
            Self::Loaded(items) => items.first().map(|c| c.key.clone()),
            Self::Unavailable(_) => None,
        }
    }

    pub fn is_loaded(&self) -> bool {
        matches!(self, Self::Loaded(_))
    }

    pub fn items(&self) -> &[Choice] {
        match self {
            Self::Loaded(items) => items,
            Self::Unavailable(_) => &[],
        }
    }

    pub fn problem(&self) -> &str {
        match self {
            Self::Loaded(_) => "",
            Self::Unavailable(message) => message,
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.items().iter().any(|c| c.key == key)
    }
}

/// Per-field messages, in form order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FieldErrors(pub Vec<(String, String)>);

impl FieldErrors {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_owned(), message.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &(String, String)> {
        self.0.iter()
    }
}

/// What the next environment will look like.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub example_id: String,
    pub project_key: String,
    pub environment_key: String,
    pub environment_name: String,
    pub source_environment_key: String,
    pub color: String,
    pub tags: Vec<String>,
    pub expires: String,
}

pub struct Defaults {
    pub name_template: String,
    pub color: String,
    pub key_prefix: String,
}

pub fn defaults() -> Defaults {
    Defaults {
        name_template: "Preview {ephemeral_id}".to_owned(),
        color: "7c3aed".to_owned(),
        key_prefix: "eph".to_owned(),
    }
}

pub fn oauth_enabled(state: &AppState) -> bool {
    state.config.oauth.is_some()
}

/// Calls LaunchDarkly as the tenant, refreshing the credential once after a
/// 401. Errors come back as a sentence for the customer; the cause is logged.
pub async fn as_tenant<T, F, Fut>(state: &AppState, tenant: &TenantId, call: F) -> Result<T, String>
where
    F: Fn(RequestAuth) -> Fut,
    Fut: Future<Output = Result<T, LdError>>,
{
    let credential = connections::credential(state, tenant)
        .await
        .map_err(describe_connection)?;
    match call(credential.auth.clone()).await {
        Ok(value) => Ok(value),
        Err(LdError::Unauthorized) => {
            let fresh = connections::refresh_after_unauthorized(state, tenant, &credential)
                .await
                .map_err(describe_connection)?;
            call(fresh.auth).await.map_err(describe_ld)
        }
        Err(err) => Err(describe_ld(err)),
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

fn describe_ld(err: LdError) -> String {
    tracing::warn!(error = %err, "a LaunchDarkly call for the settings page failed");
    match err {
        LdError::Unauthorized => {
            "LaunchDarkly no longer accepts our access to this account: reconnect above.".to_owned()
        }
        LdError::Forbidden { .. } => {
            "Your LaunchDarkly access does not allow this. Check the role of the connected account or token."
                .to_owned()
        }
        LdError::NotFound => "LaunchDarkly does not know that project.".to_owned(),
        LdError::RateLimited { .. } => {
            "LaunchDarkly asked us to slow down; try again in a minute.".to_owned()
        }
        LdError::Timeout | LdError::Transport { .. } | LdError::Upstream { .. } => {
            "LaunchDarkly did not answer; try again in a moment.".to_owned()
        }
        _ => "LaunchDarkly gave an answer we could not use; try again in a moment.".to_owned(),
    }
}

/// Every project of the connected account (all pages), by name.
pub async fn projects(state: &AppState, tenant: &TenantId) -> Choices {
    let listed = as_tenant(state, tenant, |auth| async move {
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

/// Every environment of a project (all pages), in LaunchDarkly's order.
pub async fn environments(state: &AppState, tenant: &TenantId, project: &str) -> Choices {
    if crate::ids::ProjectKey::parse(project).is_err() {
        return Choices::Unavailable("Choose a project first.".to_owned());
    }
    let listed = as_tenant(state, tenant, |auth| async move {
        state.ld.list_environments(&auth, project, &[]).await
    })
    .await;
    match listed {
        Ok(envs) => Choices::Loaded(
            envs.into_iter()
                // Our own environments are not sensible sources.
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
        Err(message) => Choices::Unavailable(message),
    }
}

pub fn preview(
    state: &AppState,
    _tenant: &TenantId,
    draft: &SettingsDraft,
) -> Result<Preview, FieldErrors> {
    let mut errors = FieldErrors::default();
    let ttl = match draft.ttl_seconds() {
        Ok(ttl) => ttl,
        Err(message) => {
            errors.add("ttl_value", message);
            None
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let example = "pr-1234";
    Ok(Preview {
        example_id: example.to_owned(),
        project_key: draft.project_key.clone(),
        environment_key: format!("{}-{example}", draft.key_prefix),
        environment_name: draft.name_template.replace("{ephemeral_id}", example),
        source_environment_key: draft.source_environment_key.clone(),
        color: draft.color_hex(),
        tags: vec!["ld-eaas".to_owned(), state.config.instance_tag()],
        expires: ttl.map_or_else(
            || "Never, unless deleted".to_owned(),
            |s| format!("{} after creation", super::layout::duration(s)),
        ),
    })
}

pub async fn validate_and_save(
    _state: &AppState,
    _tenant: &TenantId,
    _draft: &SettingsDraft,
) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::default();
    errors.add("project_key", "Saving settings is not available yet.");
    Err(errors)
}
