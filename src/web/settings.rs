//! The settings page: the LaunchDarkly connection card, and the environment
//! settings form with project and source pickers filled live from
//! LaunchDarkly and a preview of the next environment.
//!
//! Without JavaScript, "Load environments" re-renders the form with the
//! environments of the chosen project (nothing saved); with it, the source
//! list follows the project picker and the preview updates as you type.

use askama::Template;
use askama_web::WebTemplate;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::layout::{self, Layout, Nav};
use super::pages::require_tenant;
use super::{CustomerSession, FlashKind, PageResult, WebForm, check_csrf};
use crate::app::AppState;
use crate::error::envelope;
use crate::store::connections;
use crate::store::settings::{self as settings_store, TenantSettings};
use crate::store::tenants::Tenant;

mod backend;
mod card;

pub use backend::{Choice, Choices, FieldErrors, Preview};
pub use card::ConnectionCard;

/// TTL units the form offers, in seconds.
const UNITS: [(&str, &str, i64); 4] = [
    ("minutes", "minutes", 60),
    ("hours", "hours", 3_600),
    ("days", "days", 86_400),
    ("seconds", "seconds", 1),
];

/// The settings as the form holds them: strings, possibly invalid.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct SettingsDraft {
    pub project_key: String,
    pub source_environment_key: String,
    pub name_template: String,
    /// `#rrggbb` from the colour input, or six hex digits.
    pub color: String,
    /// Empty: environments do not expire unless asked.
    pub ttl_value: String,
    pub ttl_unit: String,
    pub key_prefix: String,
}

impl SettingsDraft {
    fn from_saved(s: &TenantSettings) -> Self {
        let (ttl_value, ttl_unit) = match s.default_ttl_seconds {
            Some(secs) => {
                let (unit, size) = UNITS
                    .iter()
                    .take(3)
                    .rev()
                    .find(|(_, _, size)| secs % size == 0)
                    .map_or(("seconds", 1), |(u, _, size)| (*u, *size));
                ((secs / size).to_string(), unit.to_owned())
            }
            None => (String::new(), "hours".to_owned()),
        };
        Self {
            project_key: s.project_key.clone(),
            source_environment_key: s.source_environment_key.clone(),
            name_template: s.name_template.clone(),
            color: s.color.clone(),
            ttl_value,
            ttl_unit,
            key_prefix: s.key_prefix.clone(),
        }
    }

    fn defaults() -> Self {
        let d = backend::defaults();
        Self {
            name_template: d.name_template,
            color: d.color,
            ttl_unit: "hours".to_owned(),
            key_prefix: d.key_prefix,
            ..Self::default()
        }
    }

    /// Six hex digits, without `#`, for LaunchDarkly.
    pub fn color_hex(&self) -> String {
        self.color
            .trim()
            .trim_start_matches('#')
            .to_ascii_lowercase()
    }

    /// `#rrggbb` for the colour input (which needs a valid value).
    pub fn color_input(&self) -> String {
        let hex = self.color_hex();
        if hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            format!("#{hex}")
        } else {
            "#7c3aed".to_owned()
        }
    }

    /// The TTL in seconds: `Ok(None)` when blank, `Err` with a message for
    /// the TTL field when it is not a positive whole number.
    pub fn ttl_seconds(&self) -> Result<Option<i64>, String> {
        let raw = self.ttl_value.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        let size = UNITS
            .iter()
            .find(|(u, _, _)| *u == self.ttl_unit)
            .map_or(3_600, |(_, _, size)| *size);
        match raw.parse::<i64>() {
            Ok(n) if n > 0 => n
                .checked_mul(size)
                .map(Some)
                .ok_or_else(|| "That is longer than we can keep track of.".to_owned()),
            _ => Err(
                "Enter a whole number greater than zero, or leave it empty for no expiry."
                    .to_owned(),
            ),
        }
    }

    pub fn unit_selected(&self, unit: &str) -> bool {
        self.ttl_unit == unit
    }

    /// The units to offer; "seconds" only when the value needs it.
    pub fn units(&self) -> Vec<(&'static str, &'static str)> {
        UNITS
            .iter()
            .filter(|(u, _, _)| *u != "seconds" || self.ttl_unit == "seconds")
            .map(|(u, label, _)| (*u, *label))
            .collect()
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "settings.html")]
pub struct SettingsPage {
    pub layout: Layout,
    pub connection: ConnectionCard,
    pub oauth_enabled: bool,
    /// The tags every environment made for this tenant carries (the same
    /// the preview shows).
    pub ownership_tags: Vec<String>,
    /// The API-token form was just refused: show it open, ready to retry.
    pub token_form_open: bool,
    pub form: SettingsDraft,
    pub saved: bool,
    pub projects: Choices,
    pub environments: Choices,
    pub errors: FieldErrors,
    pub preview: Option<Preview>,
    /// The form was re-rendered without saving ("Load environments").
    pub is_draft: bool,
}

impl SettingsPage {
    pub fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field)
    }

    pub fn swatch(&self, hex: &str) -> String {
        layout::swatch(hex)
    }

    /// The ownership tags, each with what follows it in a sentence.
    pub fn tag_list(&self) -> Vec<(&str, &'static str)> {
        let n = self.ownership_tags.len();
        self.ownership_tags
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let after = match n - i {
                    1 => "",
                    2 => " and ",
                    _ => ", ",
                };
                (t.as_str(), after)
            })
            .collect()
    }

    /// The badge beside the form's title: never "Saved" beside problems or
    /// an unsaved draft.
    pub fn saved_badge(&self) -> (&'static str, &'static str) {
        if !self.errors.is_empty() {
            ("Not saved", "bad")
        } else if self.is_draft {
            ("Not saved yet", "warn")
        } else if self.saved {
            ("Saved", "good")
        } else {
            ("Not set up yet", "neutral")
        }
    }

    pub fn invalid(&self, field: &str) -> &'static str {
        if self.errors.get(field).is_some() {
            "true"
        } else {
            "false"
        }
    }
}

async fn render(
    state: &AppState,
    session: &CustomerSession,
    tenant: &Tenant,
    draft: Option<SettingsDraft>,
    errors: FieldErrors,
) -> PageResult<SettingsPage> {
    let now = state.now();
    let conn = connections::get(&state.db, &tenant.id).await?;
    let connection = ConnectionCard::new(conn.as_ref(), now);
    let saved = settings_store::get(&state.db, &tenant.id).await?;
    let is_draft = draft.is_some();
    let mut form = match (draft, &saved) {
        (Some(d), _) => d,
        (None, Some(s)) => SettingsDraft::from_saved(s),
        (None, None) => SettingsDraft::defaults(),
    };
    let (projects, environments) = if connection.is_connected() {
        let projects = backend::projects(state, &tenant.id).await;
        if form.project_key.is_empty() {
            // Default to the first project so the source list is useful,
            // and so the preview names the project the picker shows.
            form.project_key = projects.first_key().unwrap_or_default();
        }
        let project = form.project_key.clone();
        let environments = if project.is_empty() {
            Choices::Loaded(Vec::new())
        } else {
            backend::environments(state, &tenant.id, &project).await
        };
        (projects, environments)
    } else {
        (Choices::Loaded(Vec::new()), Choices::Loaded(Vec::new()))
    };
    let preview = backend::preview(state, &tenant.id, &form).ok();
    Ok(SettingsPage {
        layout: Layout::for_tenant(state, session, tenant, Nav::Settings).await?,
        connection,
        oauth_enabled: backend::oauth_enabled(state),
        ownership_tags: crate::naming::ownership_tags(&state.config.instance_tag(), &tenant.id),
        token_form_open: session.take_token_form_open().await?,
        form,
        saved: saved.is_some(),
        projects,
        environments,
        errors,
        preview,
        is_draft,
    })
}

#[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
pub async fn show_settings(
    State(state): State<AppState>,
    session: CustomerSession,
) -> PageResult<SettingsPage> {
    let tenant = require_tenant(&state, &session).await?;
    render(&state, &session, &tenant, None, FieldErrors::default()).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SettingsForm {
    csrf_token: Option<String>,
    /// `save` (default) or `refresh` (re-render with the chosen project's
    /// environments, saving nothing).
    intent: String,
    #[serde(flatten)]
    draft: SettingsDraft,
}

#[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
pub async fn save_settings(
    State(state): State<AppState>,
    session: CustomerSession,
    WebForm(form): WebForm<SettingsForm>,
) -> PageResult<Response> {
    let tenant = require_tenant(&state, &session).await?;
    check_csrf(&session, form.csrf_token.as_deref()).await?;
    let mut draft = form.draft;
    draft.color = draft.color_hex();
    if form.intent == "refresh" {
        // Choosing another project invalidates the source choice.
        let page = render(
            &state,
            &session,
            &tenant,
            Some(draft),
            FieldErrors::default(),
        )
        .await?;
        return Ok(page.into_response());
    }
    match backend::validate_and_save(&state, &tenant.id, &draft).await {
        Ok(()) => {
            session
                .flash(
                    FlashKind::Success,
                    "Settings saved. New environments will use them.",
                )
                .await?;
            Ok(Redirect::to("/settings").into_response())
        }
        Err(errors) => {
            let errors = errors.in_form_order();
            let page = render(&state, &session, &tenant, Some(draft), errors).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ProjectQuery {
    project_key: String,
}

/// The source environments of a project, for the picker (JSON).
#[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
pub async fn list_source_environments(
    State(state): State<AppState>,
    session: CustomerSession,
    Query(query): Query<ProjectQuery>,
) -> PageResult<Response> {
    let tenant = require_tenant(&state, &session).await?;
    if let Err(err) = crate::ids::ProjectKey::parse(query.project_key.trim()) {
        return Ok((
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": "invalid_project_key", "message": format!("project_key: the {err}")}})),
        )
            .into_response());
    }
    Ok(
        match backend::environments(&state, &tenant.id, query.project_key.trim()).await {
            Choices::Loaded(items) => Json(json!({ "environments": items })).into_response(),
            Choices::NoSuchProject(message) => (
                StatusCode::NOT_FOUND,
                Json(json!({"error": {"code": "project_not_found", "message": message}})),
            )
                .into_response(),
            Choices::Unavailable(message) => (
                StatusCode::BAD_GATEWAY,
                Json(envelope("launchdarkly_unavailable", &message)),
            )
                .into_response(),
        },
    )
}

/// The preview of the next environment for a draft (JSON), so the page can
/// update it as the form changes.
#[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
pub async fn preview_settings(
    State(state): State<AppState>,
    session: CustomerSession,
    Query(draft): Query<SettingsDraft>,
) -> PageResult<Response> {
    let tenant = require_tenant(&state, &session).await?;
    Ok(match backend::preview(&state, &tenant.id, &draft) {
        Ok(preview) => Json(json!({ "preview": preview })).into_response(),
        Err(errors) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "errors": errors })),
        )
            .into_response(),
    })
}
