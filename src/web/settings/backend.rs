//! What the settings page asks of LaunchDarkly and of the settings rules:
//! one seam, so the page code reads the same whatever sits behind it.
//!
//! The pickers' and form's types live here; `ld` lists projects and
//! environments as the tenant, `draft` previews, checks and saves a draft.

use serde::Serialize;

use crate::app::AppState;
use crate::settings as rules;

mod draft;
mod ld;

pub use draft::{preview, validate_and_save};
pub use ld::{environments, projects};

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
