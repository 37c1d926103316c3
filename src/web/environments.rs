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
use sha2::{Digest, Sha256};

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

pub use backend::{EnvView, FlagChoice, Keys};

/// Rows per page.
pub const PAGE_SIZE: usize = 25;

/// One row of the table.
pub struct EnvRow {
    pub ephemeral_id: String,
    pub name: String,
    pub key: String,
    pub project_key: String,
    pub source: String,
    pub flags: Vec<backend::FlagChoice>,
    pub status: &'static str,
    pub status_label: &'static str,
    pub tone: &'static str,
    pub busy: bool,
    /// Work that waits for LaunchDarkly to be (re)connected.
    pub waiting: bool,
    /// What the person should know about it, in plain words.
    pub note: String,
    /// `note` is an error LaunchDarkly or a worker reported.
    pub note_is_error: bool,
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
    /// Changes whenever anything the row shows changes (for live updates).
    pub version: String,
}

impl EnvRow {
    /// `connected`: LaunchDarkly is connected, so work can run now.
    fn new(v: EnvView, now: chrono::DateTime<chrono::Utc>, connected: bool) -> Self {
        let version = row_version(&v);
        let in_progress = matches!(v.status, "pending" | "deleting");
        let waiting = in_progress && !connected;
        let (status_label, tone) = match v.status {
            "pending" if waiting => ("Waiting to create", "warn"),
            "deleting" if waiting => ("Waiting to delete", "warn"),
            "pending" => ("Creating", "info"),
            "ready" => ("Ready", "good"),
            "deleting" => ("Deleting", "warn"),
            "deleted" => ("Deleted", "neutral"),
            "failed" => ("Failed", "bad"),
            "delete_failed" => ("Delete failed", "bad"),
            _ => ("Unknown", "neutral"),
        };
        // The workers' "waiting: …" notes are for operators; say it plainly.
        let note = match v.status {
            "pending" if waiting => {
                "It will be created once LaunchDarkly is reconnected in Settings.".to_owned()
            }
            "deleting" if waiting => {
                "It will be deleted from LaunchDarkly once LaunchDarkly is reconnected in Settings. Nothing else to do here."
                    .to_owned()
            }
            _ if v.last_error.starts_with("waiting:") => {
                "Waiting for LaunchDarkly; it continues on its own.".to_owned()
            }
            _ => v.last_error.clone(),
        };
        let note_is_error = !note.is_empty() && note == v.last_error;
        let gone = matches!(v.status, "deleting" | "deleted");
        Self {
            can_reveal: v.status == "ready" && v.has_keys,
            // Recreating needs LaunchDarkly now; deleting can wait for it.
            can_recreate: connected && matches!(v.status, "ready" | "failed"),
            can_delete: matches!(v.status, "ready" | "failed" | "pending" | "delete_failed"),
            ephemeral_id: v.ephemeral_id,
            name: v.name,
            key: v.key,
            project_key: v.project_key,
            source: v.source,
            flags: v.flags,
            status: v.status,
            status_label,
            tone,
            busy: in_progress && connected,
            waiting,
            note,
            note_is_error,
            created_relative: layout::relative(v.created_at, now),
            created_iso: layout::iso(v.created_at),
            created_human: layout::human(v.created_at),
            // A deleted environment no longer expires.
            expires_relative: v
                .expires_at
                .filter(|_| !gone)
                .map(|at| layout::relative(at, now))
                .unwrap_or_default(),
            expires_iso: v
                .expires_at
                .filter(|_| !gone)
                .map(layout::iso)
                .unwrap_or_default(),
            url: v.url,
            client_side_id: v.client_side_id,
            last_error: v.last_error,
            swatch: layout::swatch(&v.color),
            keys: None,
            version,
        }
    }

    pub fn is_gone(&self) -> bool {
        matches!(self.status, "deleting" | "deleted")
    }
}

/// A short digest of what a row shows.
fn row_version(v: &EnvView) -> String {
    let mut h = Sha256::new();
    for part in [
        v.ephemeral_id.as_str(),
        v.key.as_str(),
        v.name.as_str(),
        v.status,
        v.project_key.as_str(),
        v.source.as_str(),
        v.last_error.as_str(),
        v.client_side_id.as_str(),
        v.url.as_str(),
        v.color.as_str(),
        if v.has_keys { "keys" } else { "" },
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.update(
        v.expires_at
            .map(|t| t.timestamp())
            .unwrap_or(0)
            .to_be_bytes(),
    );
    hex::encode(&h.finalize()[..8])
}

/// What the whole list shows, as one value: the rows' versions, whether
/// another page follows, and whether LaunchDarkly is connected and set up.
fn list_version(rows: &[EnvRow], older: Option<&str>, connected: bool, configured: bool) -> String {
    let mut h = Sha256::new();
    for row in rows {
        h.update(row.version.as_bytes());
    }
    h.update(older.unwrap_or("-").as_bytes());
    h.update([u8::from(connected), u8::from(configured)]);
    hex::encode(&h.finalize()[..12])
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
