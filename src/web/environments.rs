//! The environments page: the tenant's managed LaunchDarkly environments,
//! their status, age and expiry, a link into LaunchDarkly, SDK keys shown
//! only when asked for (by POST, never in a URL), and recreate / delete with
//! confirmation.

use askama::Template;
use askama_web::WebTemplate;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::layout::{self, Layout, Nav};
use super::pages::require_tenant;
use super::{CsrfOnly, CustomerSession, FlashKind, PageError, PageResult, WebForm, check_csrf};
use crate::app::AppState;
use crate::audit::{AuditAction, event};
use crate::error::AppError;
use crate::ids::EphemeralId;
use crate::store::audit;
use crate::store::tenants::Tenant;

mod backend;

pub use backend::{EnvView, Keys};

/// Rows per page.
pub const PAGE_SIZE: usize = 25;

/// One row of the table.
pub struct EnvRow {
    pub ephemeral_id: String,
    pub name: String,
    pub key: String,
    pub project_key: String,
    pub source: String,
    pub status: &'static str,
    pub status_label: &'static str,
    pub tone: &'static str,
    pub busy: bool,
    pub created_relative: String,
    pub created_iso: String,
    pub created_human: String,
    pub expires_relative: String,
    pub expires_iso: String,
    pub url: String,
    pub client_side_id: String,
    pub last_error: String,
    pub swatch: String,
    pub can_reveal: bool,
    pub can_recreate: bool,
    pub can_delete: bool,
    pub keys: Option<Keys>,
}

impl EnvRow {
    fn new(v: EnvView, now: chrono::DateTime<chrono::Utc>) -> Self {
        let (status_label, tone) = match v.status {
            "pending" => ("Creating", "info"),
            "ready" => ("Ready", "good"),
            "deleting" => ("Deleting", "warn"),
            "deleted" => ("Deleted", "neutral"),
            "failed" => ("Failed", "bad"),
            "delete_failed" => ("Delete failed", "bad"),
            _ => ("Unknown", "neutral"),
        };
        let busy = matches!(v.status, "pending" | "deleting");
        Self {
            can_reveal: v.status == "ready" && v.has_keys,
            can_recreate: matches!(v.status, "ready" | "failed"),
            can_delete: matches!(v.status, "ready" | "failed" | "pending" | "delete_failed"),
            ephemeral_id: v.ephemeral_id,
            name: v.name,
            key: v.key,
            project_key: v.project_key,
            source: v.source,
            status: v.status,
            status_label,
            tone,
            busy,
            created_relative: layout::relative(v.created_at, now),
            created_iso: layout::iso(v.created_at),
            created_human: layout::human(v.created_at),
            expires_relative: v
                .expires_at
                .map(|at| layout::relative(at, now))
                .unwrap_or_default(),
            expires_iso: v.expires_at.map(layout::iso).unwrap_or_default(),
            url: v.url,
            client_side_id: v.client_side_id,
            last_error: v.last_error,
            swatch: layout::swatch(&v.color),
            keys: None,
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "environments.html")]
pub struct EnvironmentsPage {
    pub layout: Layout,
    pub rows: Vec<EnvRow>,
    /// This is not the first page.
    pub paged: bool,
    /// The cursor of the next (older) page.
    pub older: Option<String>,
    /// Deleted environments are listed too.
    pub show_deleted: bool,
    pub connected: bool,
    pub configured: bool,
}

impl EnvironmentsPage {
    pub fn any_busy(&self) -> bool {
        self.rows.iter().any(|r| r.busy)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    /// Where the page starts (from the previous page's "Older" link).
    cursor: Option<String>,
    /// `all`: deleted environments too.
    show: Option<String>,
    /// Set by the page's own background refresh.
    poll: Option<String>,
}

impl ListQuery {
    fn first_page() -> Self {
        Self::default()
    }
}

async fn render(
    state: &AppState,
    session: &CustomerSession,
    tenant: &Tenant,
    query: ListQuery,
    revealed: Option<(String, Keys)>,
) -> PageResult<EnvironmentsPage> {
    let now = state.now();
    let show_deleted = query.show.as_deref() == Some("all");
    let cursor = query.cursor.filter(|c| !c.is_empty() && c.len() <= 200);
    let paged = cursor.is_some();
    let (views, older) = backend::list(state, &tenant.id, cursor, PAGE_SIZE, show_deleted).await?;
    let mut rows: Vec<EnvRow> = views.into_iter().map(|v| EnvRow::new(v, now)).collect();
    if let Some((id, keys)) = revealed {
        if let Some(row) = rows.iter_mut().find(|r| r.ephemeral_id == id) {
            row.keys = Some(keys);
        }
    }
    let mut layout = if query.poll.is_some() {
        Layout::for_tenant_quiet(state, session, tenant, Nav::Environments).await?
    } else {
        Layout::for_tenant(state, session, tenant, Nav::Environments).await?
    };
    if rows.iter().any(|r| r.busy) {
        // Without JavaScript, the page refreshes itself while work is under way.
        layout.refresh_seconds = Some(5);
    }
    let (connected, configured) = backend::readiness(state, &tenant.id).await?;
    Ok(EnvironmentsPage {
        layout,
        rows,
        paged,
        older,
        show_deleted,
        connected,
        configured,
    })
}

#[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
pub async fn list_environments(
    State(state): State<AppState>,
    session: CustomerSession,
    Query(query): Query<ListQuery>,
) -> PageResult<EnvironmentsPage> {
    let tenant = require_tenant(&state, &session).await?;
    render(&state, &session, &tenant, query, None).await
}

fn parse_id(raw: &str) -> PageResult<EphemeralId> {
    EphemeralId::parse(raw).map_err(|_| {
        PageError(AppError::not_found(
            "There is no such environment. It may have been deleted already.",
        ))
    })
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Shows an environment's SDK keys. A POST so keys never sit in a URL, a
/// history entry or a referrer; the answer is not cached (`no-store`).
#[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty, ephemeral_id = %id))]
pub async fn reveal_environment_keys(
    State(state): State<AppState>,
    session: CustomerSession,
    Path(id): Path<String>,
    headers: HeaderMap,
    WebForm(form): WebForm<CsrfOnly>,
) -> PageResult<Response> {
    let tenant = require_tenant(&state, &session).await?;
    check_csrf(&session, form.csrf_token.as_deref()).await?;
    let eph = parse_id(&id)?;
    let Some(keys) = backend::reveal_keys(&state, &tenant.id, &eph).await? else {
        return Err(PageError(AppError::not_found(
            "That environment has no SDK keys yet: it is not ready, or it was deleted.",
        )));
    };
    let mut revealed = event("browser", AuditAction::EnvironmentKeysRevealed);
    revealed.ephemeral_id = Some(eph.as_str());
    revealed.environment_key = Some(keys.environment_key.as_str());
    audit::record(&state.db, &tenant.id, state.now(), revealed).await?;
    if wants_json(&headers) {
        return Ok(Json(json!({
            "sdk_key": keys.sdk_key,
            "mobile_key": keys.mobile_key,
            "client_side_id": keys.client_side_id,
        }))
        .into_response());
    }
    let page = render(
        &state,
        &session,
        &tenant,
        ListQuery::first_page(),
        Some((id, keys)),
    )
    .await?;
    Ok(page.into_response())
}

#[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty, ephemeral_id = %id))]
pub async fn recreate_environment(
    State(state): State<AppState>,
    session: CustomerSession,
    Path(id): Path<String>,
    WebForm(form): WebForm<CsrfOnly>,
) -> PageResult<Redirect> {
    let tenant = require_tenant(&state, &session).await?;
    check_csrf(&session, form.csrf_token.as_deref()).await?;
    let eph = parse_id(&id)?;
    match backend::recreate(&state, &tenant.id, &eph).await {
        Ok(()) => {
            session
                .flash(
                    FlashKind::Info,
                    format!("Re-creating {eph} from its source. Its SDK keys will change."),
                )
                .await?
        }
        Err(message) => session.flash(FlashKind::Error, message).await?,
    }
    Ok(Redirect::to("/environments"))
}

#[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty, ephemeral_id = %id))]
pub async fn delete_environment(
    State(state): State<AppState>,
    session: CustomerSession,
    Path(id): Path<String>,
    WebForm(form): WebForm<CsrfOnly>,
) -> PageResult<Redirect> {
    let tenant = require_tenant(&state, &session).await?;
    check_csrf(&session, form.csrf_token.as_deref()).await?;
    let eph = parse_id(&id)?;
    match backend::delete(&state, &tenant.id, &eph).await {
        Ok(true) => {
            session
                .flash(
                    FlashKind::Success,
                    format!("Deleting {eph}. Its LaunchDarkly environment is being removed."),
                )
                .await?
        }
        Ok(false) => {
            session
                .flash(FlashKind::Info, format!("{eph} was already deleted."))
                .await?
        }
        Err(message) => session.flash(FlashKind::Error, message).await?,
    }
    Ok(Redirect::to("/environments"))
}
