//! The environments page: the tenant's managed LaunchDarkly environments,
//! their status, age and expiry, a link into LaunchDarkly, SDK keys shown
//! only when asked for (by POST, never in a URL), and recreate / delete with
//! confirmation.
//!
//! The page stays live while it is open: `static/app.js` asks
//! `/environments/version` (a conditional request, 304 while nothing
//! changed) and merges in the rows that changed or appeared.

use askama::Template;
use askama_web::WebTemplate;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::layout::{Layout, Nav};
use super::pages::require_tenant;
use super::{CsrfOnly, CustomerSession, FlashKind, PageError, PageResult, WebForm, check_csrf};
use crate::app::AppState;
use crate::audit::{AuditAction, event};
use crate::error::AppError;
use crate::ids::EphemeralId;
use crate::store::audit;
use crate::store::tenants::Tenant;

mod backend;
mod row;

pub use backend::{EnvView, FlagChoice, Keys};
pub use row::EnvRow;
use row::list_version;

/// Rows per page.
pub const PAGE_SIZE: usize = 25;

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
    /// See [`list_version`].
    pub version: String,
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
    let (connected, configured) = backend::readiness(state, &tenant.id).await?;
    let mut rows: Vec<EnvRow> = views
        .into_iter()
        .map(|v| EnvRow::new(v, now, connected))
        .collect();
    let version = list_version(&rows, older.as_deref(), connected, configured);
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
    Ok(EnvironmentsPage {
        layout,
        rows,
        paged,
        older,
        show_deleted,
        connected,
        configured,
        version,
    })
}

/// The list's version for the live page: JSON `{"version"}` with an ETag,
/// and a bodiless 304 when the page already shows it (`If-None-Match`).
#[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
pub async fn environments_version(
    State(state): State<AppState>,
    session: CustomerSession,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> PageResult<Response> {
    let tenant = require_tenant(&state, &session).await?;
    let show_deleted = query.show.as_deref() == Some("all");
    let cursor = query.cursor.filter(|c| !c.is_empty() && c.len() <= 200);
    let (views, older) = backend::list(&state, &tenant.id, cursor, PAGE_SIZE, show_deleted).await?;
    let (connected, configured) = backend::readiness(&state, &tenant.id).await?;
    let now = state.now();
    let rows: Vec<EnvRow> = views
        .into_iter()
        .map(|v| EnvRow::new(v, now, connected))
        .collect();
    let version = list_version(&rows, older.as_deref(), connected, configured);
    let etag = format!("\"{version}\"");
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Json(json!({ "version": version, "busy": rows.iter().any(|r| r.busy) })).into_response()
    };
    let h = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(response)
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
    let (connected, _) = backend::readiness(&state, &tenant.id).await?;
    match backend::delete(&state, &tenant.id, &eph).await {
        Ok(true) if !connected => {
            session
                .flash(
                    FlashKind::Info,
                    format!(
                        "{eph} will be deleted from LaunchDarkly once LaunchDarkly is reconnected in Settings. \
                         Until then it stays there, and its SDK keys keep working."
                    ),
                )
                .await?
        }
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
