//! The connect landing: a single-use link binds this browser to a tenant.
//!
//! A fresh browser (or one bound to the same tenant) is bound at once. A
//! browser already bound to another tenant is asked first: someone may have
//! sent a customer's admin their own link, and switching silently would let
//! the admin connect their LaunchDarkly account to the wrong tenant. The
//! answer is a POST with the CSRF token of the session it changes.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::layout::{Layout, Nav};
use super::pages::require_tenant;
use super::session::PendingSwitch;
use super::{CustomerSession, FlashKind, PageResult, WebForm, check_csrf, render_error};
use crate::app::AppState;
use crate::audit::{AuditAction, event};
use crate::ids::TenantId;
use crate::store::audit;
use crate::store::connect_links;
use crate::store::tenants::{self, Tenant};

/// How long a switch offer stands (as long as a connect link lives).
const OFFER_SECONDS: i64 = 15 * 60;

fn link_gone(message: &str) -> Response {
    render_error(
        StatusCode::GONE,
        "This link no longer works",
        message.to_owned(),
    )
}

const USED_OR_EXPIRED: &str = "Connect links work once and expire after 15 minutes. Go back to your environments provider and open \
     the LaunchDarkly integration again to get a fresh link.";

/// The tenant this browser is bound to now, if that binding still holds.
async fn bound_tenant(state: &AppState, session: &CustomerSession) -> PageResult<Option<Tenant>> {
    let Some((id, born)) = session.tenant().await? else {
        return Ok(None);
    };
    Ok(tenants::get(&state.db, &id)
        .await?
        .filter(|t| t.offboarding_at.is_none() && t.created_at.timestamp_micros() == born))
}

async fn record_opened(state: &AppState, tenant: &TenantId) -> PageResult<()> {
    audit::record(
        &state.db,
        tenant,
        state.now(),
        event("browser", AuditAction::ConnectLinkOpened),
    )
    .await?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
pub async fn open_connect_link(
    State(state): State<AppState>,
    session: CustomerSession,
    Path(token): Path<String>,
) -> PageResult<Response> {
    let Some(link) = connect_links::redeem_returning_to(&state.db, &token, state.now()).await?
    else {
        return Ok(link_gone(USED_OR_EXPIRED));
    };
    let tenant = link.tenant;
    tracing::Span::current().record("tenant_id", tenant.as_str());
    let Some(record) = tenants::get(&state.db, &tenant).await? else {
        return Ok(link_gone("This account is no longer set up here."));
    };
    if let Some(current) = bound_tenant(&state, &session).await?
        && current.id != tenant
    {
        // Bound to someone else: ask before anything changes.
        session
            .set_pending_switch(&PendingSwitch {
                tenant_id: tenant.to_string(),
                tenant_created_at: record.created_at.timestamp_micros(),
                return_url: link.return_url,
                opened_at: state.now().timestamp(),
            })
            .await?;
        tracing::info!(bound_tenant = %current.id, "connect link for another tenant: asking before switching");
        return Ok(Redirect::to("/connect/switch").into_response());
    }
    session
        .bind_tenant(&tenant, record.created_at, link.return_url.as_deref())
        .await?;
    record_opened(&state, &tenant).await?;
    Ok(Redirect::to("/settings").into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "switch.html")]
pub struct SwitchPage {
    pub layout: Layout,
    /// The tenant this browser manages now.
    pub current_name: String,
    /// The tenant the link was for.
    pub offered_name: String,
}

/// A pending switch that still stands, with its tenant as it is now.
async fn standing_offer(
    state: &AppState,
    pending: &PendingSwitch,
) -> PageResult<Option<(TenantId, Tenant)>> {
    if state.now().timestamp() - pending.opened_at > OFFER_SECONDS {
        return Ok(None);
    }
    let Ok(id) = TenantId::parse(&pending.tenant_id) else {
        return Ok(None);
    };
    Ok(tenants::get(&state.db, &id)
        .await?
        .filter(|t| {
            t.offboarding_at.is_none()
                && t.created_at.timestamp_micros() == pending.tenant_created_at
        })
        .map(|t| (id, t)))
}

/// The question: stay with the current account, or switch to the link's.
#[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
pub async fn show_switch(
    State(state): State<AppState>,
    session: CustomerSession,
) -> PageResult<Response> {
    let current = require_tenant(&state, &session).await?;
    let offer = match session.pending_switch().await? {
        Some(pending) => standing_offer(&state, &pending).await?,
        None => None,
    };
    let Some((_, offered)) = offer else {
        session.take_pending_switch().await?;
        return Ok(Redirect::to("/settings").into_response());
    };
    Ok(SwitchPage {
        layout: Layout::for_tenant(&state, &session, &current, Nav::None).await?,
        current_name: current.display_name,
        offered_name: offered.display_name,
    }
    .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SwitchForm {
    csrf_token: Option<String>,
    /// `switch` or `stay`.
    decision: String,
}

#[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
pub async fn answer_switch(
    State(state): State<AppState>,
    session: CustomerSession,
    WebForm(form): WebForm<SwitchForm>,
) -> PageResult<Response> {
    let current = require_tenant(&state, &session).await?;
    check_csrf(&session, form.csrf_token.as_deref()).await?;
    let offer = match session.take_pending_switch().await? {
        Some(pending) => standing_offer(&state, &pending)
            .await?
            .map(|(id, tenant)| (id, tenant, pending)),
        None => None,
    };
    let Some((id, offered, pending)) = offer else {
        session
            .flash(
                FlashKind::Info,
                format!(
                    "That link is no longer waiting for an answer. You are still managing {}.",
                    current.display_name
                ),
            )
            .await?;
        return Ok(Redirect::to("/settings").into_response());
    };
    if form.decision == "switch" {
        session.bind_switched(&id, &pending).await?;
        tracing::Span::current().record("tenant_id", id.as_str());
        record_opened(&state, &id).await?;
        session
            .flash(
                FlashKind::Info,
                format!(
                    "You switched to {}. This browser no longer manages {}.",
                    offered.display_name, current.display_name
                ),
            )
            .await?;
    } else {
        session
            .flash(
                FlashKind::Info,
                format!(
                    "You stayed with {}. The link for {} was not used, and it no longer works.",
                    current.display_name, offered.display_name
                ),
            )
            .await?;
    }
    Ok(Redirect::to("/settings").into_response())
}
