//! What the settings page asks of LaunchDarkly and of the settings rules:
//! one seam, so the page code reads the same whatever sits behind it.

use serde::Serialize;

use super::SettingsDraft;
use crate::ids::TenantId;
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

pub async fn projects(_state: &AppState, _tenant: &TenantId) -> Choices {
    Choices::Unavailable("Loading projects from LaunchDarkly is not available yet.".to_owned())
}

pub async fn environments(_state: &AppState, _tenant: &TenantId, _project: &str) -> Choices {
    Choices::Unavailable("Loading environments from LaunchDarkly is not available yet.".to_owned())
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
