//! Pages. The UI issue fills these out; the foundation needs the landing
//! target of a connect link.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{CustomerSession, PageError, PageResult, render_error};
use crate::error::AppError;
use crate::ids::TenantId;
use crate::startup::AppState;
use crate::store::tenants::{self, Tenant};

/// The tenant this browser is bound to, or a page that says how to get bound.
pub async fn require_tenant(state: &AppState, session: &CustomerSession) -> PageResult<Tenant> {
    let tenant: Option<TenantId> = session.tenant().await?;
    let Some(id) = tenant else {
        return Err(PageError(AppError::Unauthorized(
            "This page is reached through the connect link your environments provider gives you.",
        )));
    };
    match tenants::get(&state.db, &id).await? {
        Some(t) if t.offboarding_at.is_none() => Ok(t),
        _ => {
            session.end().await?;
            Err(PageError(AppError::Unauthorized(
                "This account is no longer set up here. Open a new connect link from your environments provider.",
            )))
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "settings.html")]
pub struct SettingsPage {
    pub product_name: String,
    pub tenant_name: String,
}

pub async fn settings(
    State(state): State<AppState>,
    session: CustomerSession,
) -> PageResult<SettingsPage> {
    let tenant = require_tenant(&state, &session).await?;
    Ok(SettingsPage {
        product_name: state.config.product_name.clone(),
        tenant_name: tenant.display_name,
    })
}

pub async fn home(State(state): State<AppState>, session: CustomerSession) -> PageResult<Response> {
    require_tenant(&state, &session).await?;
    Ok(axum::response::Redirect::to("/settings").into_response())
}

pub async fn not_found() -> Response {
    render_error(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is nothing at this address.".to_owned(),
    )
}
