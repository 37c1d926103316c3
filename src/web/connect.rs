//! The connect landing: a single-use link binds this browser to a tenant.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::{CustomerSession, PageResult, render_error};
use crate::app::AppState;
use crate::audit::{AuditAction, event};
use crate::store::audit;
use crate::store::connect_links;

#[tracing::instrument(skip_all, fields(tenant_id = tracing::field::Empty))]
pub async fn open_connect_link(
    State(state): State<AppState>,
    session: CustomerSession,
    Path(token): Path<String>,
) -> PageResult<Response> {
    let Some(tenant) = connect_links::redeem(&state.db, &token, state.now()).await? else {
        return Ok(render_error(
            StatusCode::GONE,
            "This link no longer works",
            "Connect links work once and expire after 15 minutes. Go back to your environments provider and open \
             the LaunchDarkly integration again to get a fresh link."
                .to_owned(),
        ));
    };
    tracing::Span::current().record("tenant_id", tenant.as_str());
    let Some(record) = crate::store::tenants::get(&state.db, &tenant).await? else {
        return Ok(render_error(
            StatusCode::GONE,
            "This link no longer works",
            "This account is no longer set up here.".to_owned(),
        ));
    };
    session.bind_tenant(&tenant, record.created_at).await?;
    audit::record(
        &state.db,
        &tenant,
        state.now(),
        event("browser", AuditAction::ConnectLinkOpened),
    )
    .await?;
    Ok(Redirect::to("/settings").into_response())
}
