//! A tenant's environment settings: checked field by field (so the web UI can
//! show each problem next to its input), then against LaunchDarkly (the
//! project and the source environment must exist), then saved.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::AppState;
use crate::audit::{AuditAction, event as audit_event};
use crate::connections::{CallError, interactive};
use crate::ids::{EnvironmentKey, ProjectKey, TenantId};
use crate::launchdarkly::LdError;
use crate::naming::PLACEHOLDERS;
use crate::store::audit;
use crate::store::settings::{self as store, TenantSettings};

pub const DEFAULT_NAME_TEMPLATE: &str = "Preview {ephemeral_id}";
pub const DEFAULT_COLOR: &str = "7c3aed";
pub const DEFAULT_KEY_PREFIX: &str = "eph";
/// Longest TTL a tenant may set: a year.
pub const MAX_TTL_SECONDS: i64 = 365 * 24 * 3600;
/// Shortest TTL: a second (short ones are handy when testing a pipeline).
pub const MIN_TTL_SECONDS: i64 = 1;

/// What the vendor (API) or the customer (web form) submits. Only the project
/// and the source are required; blank optional fields take the defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsInput {
    #[serde(default)]
    pub project_key: String,
    #[serde(default)]
    pub source_environment_key: String,
    #[serde(default)]
    pub name_template: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub default_ttl_seconds: Option<i64>,
    #[serde(default)]
    pub key_prefix: Option<String>,
}

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The input's name: `project_key`, `source_environment_key`,
    /// `name_template`, `color`, `default_ttl_seconds` or `key_prefix`.
    pub field: &'static str,
    pub message: String,
}

/// Why settings were not saved.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The input needs fixing; one entry per problem, in form order.
    #[error("the settings need fixing")]
    Fields(Vec<FieldError>),
    /// The input could not be checked with LaunchDarkly (not connected,
    /// LaunchDarkly down, ...).
    #[error(transparent)]
    Unavailable(#[from] CallError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl SettingsError {
    /// The message for `field`, if it has one.
    pub fn field(&self, field: &str) -> Option<&str> {
        match self {
            Self::Fields(errors) => errors
                .iter()
                .find(|e| e.field == field)
                .map(|e| e.message.as_str()),
            Self::Unavailable(_) | Self::Internal(_) => None,
        }
    }
}

impl From<sqlx::Error> for SettingsError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(anyhow::Error::new(err).context("database"))
    }
}

fn blank_to_none(value: Option<&String>) -> Option<&str> {
    value.map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// Checks the shape of every field (no LaunchDarkly call) and fills in the
/// defaults. The web UI uses it for a live preview of a draft.
pub fn normalize(
    input: &SettingsInput,
    now: DateTime<Utc>,
) -> Result<TenantSettings, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut problem = |field: &'static str, message: String| {
        errors.push(FieldError { field, message });
    };
    let project_key = input.project_key.trim();
    if project_key.is_empty() {
        problem("project_key", "Choose a LaunchDarkly project.".into());
    } else if let Err(e) = ProjectKey::parse(project_key) {
        problem("project_key", format!("The {e}."));
    }
    let source = input.source_environment_key.trim();
    if source.is_empty() {
        problem(
            "source_environment_key",
            "Choose the environment new ones are cloned from.".into(),
        );
    } else if let Err(e) = EnvironmentKey::parse(source) {
        problem("source_environment_key", format!("The source {e}."));
    }
    let name_template =
        blank_to_none(input.name_template.as_ref()).unwrap_or(DEFAULT_NAME_TEMPLATE);
    // What was sent, as the OpenAPI document's `maxLength` counts.
    if input
        .name_template
        .as_ref()
        .is_some_and(|t| t.chars().count() > 200)
    {
        problem(
            "name_template",
            "The name template must be at most 200 characters.".into(),
        );
    } else if let Err(e) = crate::text::check("name_template", name_template) {
        problem(
            "name_template",
            format!(
                "The name template {}.",
                e.to_string().trim_start_matches("name_template ")
            ),
        );
    } else if let Some(bad) = unknown_placeholder(name_template) {
        problem(
            "name_template",
            format!(
                "Unknown placeholder {bad}; use {}.",
                PLACEHOLDERS.join(", ")
            ),
        );
    }
    let color = blank_to_none(input.color.as_ref())
        .map(|c| c.trim_start_matches('#'))
        .unwrap_or(DEFAULT_COLOR);
    if color.len() != 6 || !color.bytes().all(|b| b.is_ascii_hexdigit()) {
        problem(
            "color",
            "The color must be six hexadecimal digits, like 7c3aed.".into(),
        );
    }
    if let Some(ttl) = input.default_ttl_seconds {
        if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl) {
            problem(
                "default_ttl_seconds",
                format!(
                    "The time to live must be between {MIN_TTL_SECONDS} second and {} days.",
                    MAX_TTL_SECONDS / 86_400
                ),
            );
        }
    }
    let key_prefix = blank_to_none(input.key_prefix.as_ref()).unwrap_or(DEFAULT_KEY_PREFIX);
    let prefix_ok = key_prefix.len() <= 20
        && key_prefix.starts_with(|c: char| c.is_ascii_alphanumeric())
        && key_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !prefix_ok {
        problem(
            "key_prefix",
            "The key prefix must be 1-20 letters, digits, '.', '_' or '-', starting with a letter or digit."
                .into(),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(TenantSettings {
        project_key: project_key.to_owned(),
        source_environment_key: source.to_owned(),
        name_template: name_template.to_owned(),
        color: color.to_ascii_lowercase(),
        default_ttl_seconds: input.default_ttl_seconds,
        key_prefix: key_prefix.to_owned(),
        updated_at: now,
    })
}

/// The first `{...}` that is not a known placeholder.
fn unknown_placeholder(template: &str) -> Option<String> {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start..];
        let end = after.find('}').map_or(after.len(), |e| e + 1);
        let candidate = &after[..end];
        if !PLACEHOLDERS.contains(&candidate) {
            return Some(candidate.to_owned());
        }
        rest = &after[end..];
    }
    None
}

/// Checks the input, then with LaunchDarkly that the project and the source
/// environment exist, then saves and audits the settings.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
pub async fn validate_and_save(
    state: &AppState,
    tenant: &TenantId,
    input: &SettingsInput,
    actor: &str,
) -> Result<TenantSettings, SettingsError> {
    let settings = normalize(input, state.now()).map_err(SettingsError::Fields)?;
    check_with_launchdarkly(state, tenant, &settings).await?;
    let mut tx = state.db.begin().await?;
    store::save(&mut *tx, tenant, &settings).await?;
    let mut event = audit_event(actor, AuditAction::SettingsUpdated);
    event.details = json!({
        "project_key": settings.project_key,
        "source_environment_key": settings.source_environment_key,
        "name_template": settings.name_template,
        "color": settings.color,
        "default_ttl_seconds": settings.default_ttl_seconds,
        "key_prefix": settings.key_prefix,
    });
    audit::record(&mut *tx, tenant, state.now(), event).await?;
    tx.commit().await?;
    // Every replica hears of it (a trigger); this one forgets it at once.
    state.lifecycle.tenants.evict(tenant.as_str());
    tracing::info!(project_key = %settings.project_key, source = %settings.source_environment_key, "settings saved");
    Ok(settings)
}

async fn check_with_launchdarkly(
    state: &AppState,
    tenant: &TenantId,
    settings: &TenantSettings,
) -> Result<(), SettingsError> {
    // A person is waiting: wait out a short rate limit rather than fail.
    let deadline = state.now() + chrono::Duration::seconds(5);
    let project = &settings.project_key;
    let source = &settings.source_environment_key;
    let found = interactive(state, tenant, deadline, "get_project", |auth| async move {
        state.ld.get_project(&auth, project).await
    })
    .await;
    match found {
        Ok(_) => {}
        Err(CallError::Ld(LdError::NotFound)) => {
            return Err(SettingsError::Fields(vec![FieldError {
                field: "project_key",
                message: format!(
                    "LaunchDarkly has no project '{project}' that the connected account can see."
                ),
            }]));
        }
        Err(err) => return Err(SettingsError::Unavailable(err)),
    }
    let found = interactive(
        state,
        tenant,
        deadline,
        "get_environment",
        |auth| async move { state.ld.get_environment(&auth, project, source).await },
    )
    .await;
    match found {
        Ok(_) => Ok(()),
        Err(CallError::Ld(LdError::NotFound)) => Err(SettingsError::Fields(vec![FieldError {
            field: "source_environment_key",
            message: format!("Project '{project}' has no environment '{source}'."),
        }])),
        Err(err) => Err(SettingsError::Unavailable(err)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Normalizing only stamps the time; any fixed instant does.
    fn now() -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(19_675)
    }

    fn input(project: &str, source: &str) -> SettingsInput {
        SettingsInput {
            project_key: project.into(),
            source_environment_key: source.into(),
            ..SettingsInput::default()
        }
    }

    #[test]
    fn blanks_take_the_defaults() {
        let mut i = input(" demo ", "staging");
        i.color = Some("  ".into());
        let s = normalize(&i, now()).unwrap();
        assert_eq!(s.project_key, "demo");
        assert_eq!(s.name_template, DEFAULT_NAME_TEMPLATE);
        assert_eq!(s.color, DEFAULT_COLOR);
        assert_eq!(s.key_prefix, DEFAULT_KEY_PREFIX);
        assert_eq!(s.default_ttl_seconds, None);
    }

    #[test]
    fn every_bad_field_is_reported_by_name() {
        let i = SettingsInput {
            project_key: String::new(),
            source_environment_key: "-bad".into(),
            name_template: Some("Env {branch}".into()),
            color: Some("#12345g".into()),
            default_ttl_seconds: Some(0),
            key_prefix: Some("_x".into()),
        };
        let errors = normalize(&i, now()).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "project_key",
                "source_environment_key",
                "name_template",
                "color",
                "default_ttl_seconds",
                "key_prefix"
            ]
        );
        assert!(errors[2].message.contains("{branch}"), "{:?}", errors[2]);
    }

    #[test]
    fn a_hash_before_the_color_is_accepted() {
        let mut i = input("demo", "staging");
        i.color = Some("#ABCDEF".into());
        assert_eq!(normalize(&i, now()).unwrap().color, "abcdef");
    }
}
