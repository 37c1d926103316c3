//! What the settings page asks of LaunchDarkly and of the settings rules:
//! one seam, so the page code reads the same whatever sits behind it.

use std::future::Future;

use serde::Serialize;

use super::SettingsDraft;
use crate::app::AppState;
use crate::connections::{CallError, ConnectionError, LdProblem, interactive, problem};
use crate::error::AppError;
use crate::ids::{EphemeralId, ProjectKey, TenantId};
use crate::launchdarkly::{LdError, RequestAuth};
use crate::naming as keys;
use crate::settings::{self as rules, SettingsError, SettingsInput};

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
    /// The project asked for is not one the connection can see.
    NoSuchProject(String),
}

impl Choices {
    pub fn first_key(&self) -> Option<String> {
        match self {
            Self::Loaded(items) => items.first().map(|c| c.key.clone()),
            Self::Unavailable(_) | Self::NoSuchProject(_) => None,
        }
    }

    pub fn is_loaded(&self) -> bool {
        matches!(self, Self::Loaded(_))
    }

    pub fn items(&self) -> &[Choice] {
        match self {
            Self::Loaded(items) => items,
            Self::Unavailable(_) | Self::NoSuchProject(_) => &[],
        }
    }

    pub fn problem(&self) -> &str {
        match self {
            Self::Loaded(_) => "",
            Self::Unavailable(message) | Self::NoSuchProject(message) => message,
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

    /// In the order the form shows its fields (a problem of no field
    /// first), so the summary reads top to bottom like the form.
    pub fn in_form_order(mut self) -> Self {
        self.0.sort_by_key(|(field, _)| {
            FORM_ORDER
                .iter()
                .position(|f| f == field)
                .unwrap_or(FORM_ORDER.len())
        });
        self
    }
}

/// The settings form's fields, top to bottom.
const FORM_ORDER: [&str; 7] = [
    "form",
    "project_key",
    "source_environment_key",
    "name_template",
    "key_prefix",
    "color",
    "ttl_value",
];

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
        name_template: rules::DEFAULT_NAME_TEMPLATE.to_owned(),
        color: rules::DEFAULT_COLOR.to_owned(),
        key_prefix: rules::DEFAULT_KEY_PREFIX.to_owned(),
    }
}

pub fn oauth_enabled(state: &AppState) -> bool {
    state.oauth.is_some()
}

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

/// The rules' field names, as the form names them.
fn form_field(field: &str) -> &str {
    match field {
        "default_ttl_seconds" => "ttl_value",
        other => other,
    }
}

/// The draft as the settings rules take it; a TTL the form cannot read is
/// reported on its field.
fn input(draft: &SettingsDraft, errors: &mut FieldErrors) -> SettingsInput {
    let default_ttl_seconds = match draft.ttl_seconds() {
        Ok(ttl) => ttl,
        Err(message) => {
            errors.add("ttl_value", message);
            None
        }
    };
    SettingsInput {
        project_key: draft.project_key.trim().to_owned(),
        source_environment_key: draft.source_environment_key.trim().to_owned(),
        name_template: Some(draft.name_template.clone()),
        color: Some(draft.color_hex()),
        default_ttl_seconds,
        key_prefix: Some(draft.key_prefix.clone()),
    }
}

/// The example preview environment shown on the settings page.
const EXAMPLE_ID: &str = "pr-1234";

/// What the next environment would look like with the draft. A project or
/// source not chosen yet does not stop the preview of the rest.
pub fn preview(
    state: &AppState,
    tenant: &TenantId,
    draft: &SettingsDraft,
) -> Result<Preview, FieldErrors> {
    let mut errors = FieldErrors::default();
    let mut input = input(draft, &mut errors);
    let project_missing = input.project_key.is_empty();
    let source_missing = input.source_environment_key.is_empty();
    if project_missing {
        input.project_key = "project".to_owned();
    }
    if source_missing {
        input.source_environment_key = "source".to_owned();
    }
    let settings = match rules::normalize(&input, state.now()) {
        Ok(settings) => settings,
        Err(problems) => {
            for p in problems {
                errors.add(form_field(p.field), p.message);
            }
            return Err(errors.in_form_order());
        }
    };
    if !errors.is_empty() {
        return Err(errors.in_form_order());
    }
    let Ok(example) = EphemeralId::parse(EXAMPLE_ID) else {
        return Err(errors);
    };
    let p = keys::preview(&settings, tenant, &example, &state.config.instance_tag());
    Ok(Preview {
        example_id: p.ephemeral_id,
        project_key: if project_missing {
            String::new()
        } else {
            p.project_key
        },
        environment_key: p.environment_key,
        environment_name: p.environment_name,
        source_environment_key: if source_missing {
            String::new()
        } else {
            p.source_environment_key
        },
        color: p.color,
        tags: p.tags,
        expires: p.ttl_seconds.map_or_else(
            || "Never, unless deleted".to_owned(),
            |s| format!("{} after creation", super::layout::duration(s)),
        ),
    })
}

/// Checks the draft (shape, then with LaunchDarkly) and saves it. Problems
/// come back per field; `form` holds one that belongs to no field.
pub async fn validate_and_save(
    state: &AppState,
    tenant: &TenantId,
    draft: &SettingsDraft,
) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::default();
    let input = input(draft, &mut errors);
    if !errors.is_empty() {
        // Report the rules' findings on the other fields too.
        if let Err(problems) = rules::normalize(&input, state.now()) {
            for p in problems {
                errors.add(form_field(p.field), p.message);
            }
        }
        return Err(errors);
    }
    match rules::validate_and_save(state, tenant, &input, "browser").await {
        Ok(_) => Ok(()),
        Err(SettingsError::Fields(problems)) => {
            for p in problems {
                errors.add(form_field(p.field), p.message);
            }
            Err(errors)
        }
        Err(err) => {
            errors.add("form", unsaved(err));
            Err(errors)
        }
    }
}

/// Why settings that could not be checked were not saved, for the customer.
fn unsaved(err: SettingsError) -> String {
    match err {
        SettingsError::Internal(_)
        | SettingsError::Unavailable(CallError::Connection(ConnectionError::Internal(_))) => {
            AppError::from(err).log();
            "Something went wrong on our side; the settings were not saved. Try again in a moment."
                .to_owned()
        }
        SettingsError::Unavailable(
            CallError::Connection(ConnectionError::NeedsReconnect)
            | CallError::Ld(LdError::Unauthorized)
            | CallError::Connection(ConnectionError::Upstream(LdError::Unauthorized)),
        ) => {
            "LaunchDarkly no longer accepts our access to this account: reconnect above, then save."
                .to_owned()
        }
        SettingsError::Unavailable(CallError::Connection(ConnectionError::NotConnected)) => {
            "Connect LaunchDarkly first, then save.".to_owned()
        }
        other => {
            let err = AppError::from(other);
            err.log();
            format!(
                "The settings could not be checked with LaunchDarkly, so they were not saved: {}",
                err.public_message()
            )
        }
    }
}
