//! What every page needs first: the tenant this browser is bound to.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::{CustomerSession, PageError, PageResult, render_error};
use crate::app::AppState;
use crate::error::AppError;
use crate::store::tenants::{self, Tenant};

/// The tenant this browser is bound to, or a page that says how to get bound.
pub async fn require_tenant(state: &AppState, session: &CustomerSession) -> PageResult<Tenant> {
    let Some((id, born)) = session.tenant().await? else {
        return Err(PageError(AppError::Unauthorized(
            "This page is reached through the connect link your environments provider gives you.",
        )));
    };
    match tenants::get(&state.db, &id).await? {
        Some(t) if t.offboarding_at.is_none() && t.created_at.timestamp_micros() == born => {
            tracing::Span::current().record("tenant_id", t.id.as_str());
            Ok(t)
        }
        _ => {
            session.end().await?;
            Err(PageError(AppError::Unauthorized(
                "This account is no longer set up here. Open a new connect link from your environments provider.",
            )))
        }
    }
}

pub async fn home(State(state): State<AppState>, session: CustomerSession) -> PageResult<Response> {
    require_tenant(&state, &session).await?;
    Ok(Redirect::to("/settings").into_response())
}

pub async fn not_found() -> Response {
    render_error(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is nothing at this address. Use the navigation above, or open your connect link again."
            .to_owned(),
    )
}
