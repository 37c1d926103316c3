//! The internal JSON API for the EaaS vendor's backend, under `/api/v1`.
//! Every route is behind the bearer API key check in [`auth`].

pub mod auth;
pub mod envelope;
pub mod environments;
pub mod settings;
pub mod tenants;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post, put};

use crate::app::AppState;
use crate::error::AppError;

pub use auth::{ApiCaller, TenantScope};

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/tenants/{tenant_id}",
            put(tenants::put_tenant)
                .get(tenants::get_tenant)
                .delete(tenants::delete_tenant),
        )
        .route(
            "/tenants/{tenant_id}/connect-links",
            post(tenants::create_connect_link),
        )
        .route("/tenants/{tenant_id}/settings", put(settings::put_settings))
        .route(
            "/tenants/{tenant_id}/environments",
            get(environments::list_environments),
        )
        .route(
            "/tenants/{tenant_id}/environments/{ephemeral_id}",
            put(environments::put_environment)
                .get(environments::get_environment)
                .delete(environments::delete_environment),
        )
        .route(
            "/tenants/{tenant_id}/environments/{ephemeral_id}/recreate",
            post(environments::recreate_environment),
        )
        .route(
            "/tenants/{tenant_id}/activity",
            get(environments::list_activity),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        // The key is checked before anything else, body parsing included.
        .layer(middleware::from_fn_with_state(state, auth::require_api_key))
}

/// The served description of this API (public: it holds no data).
pub async fn openapi_document() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

async fn not_found() -> AppError {
    AppError::not_found("no such API route")
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
