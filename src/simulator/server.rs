//! The routes and the middleware stack:
//! record → (IP limit → faults →) (auth + rate limits →) handler.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::error::{ApiError, method_not_allowed, not_found};
use super::state::SharedState;
use super::{api, auth, faults, flags, oauth, record};

/// Over the per-IP limit: a 429 with `Retry-After` seconds.
async fn ip_limit(State(shared): State<SharedState>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = ip {
        let verdict = shared.lock().limiter.check_ip(ip);
        if let Err(retry_after) = verdict {
            let mut response = ApiError::rate_limited().into_response();
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(retry_after));
            return response;
        }
    }
    next.run(req).await
}

async fn healthz() -> &'static str {
    "ok"
}

pub(crate) fn router(shared: SharedState) -> Router {
    let api = Router::new()
        .route("/api/v2/caller-identity", get(api::get_caller_identity))
        .route("/api/v2/projects", get(api::list_projects))
        .route("/api/v2/projects/{projectKey}", get(api::get_project))
        .route(
            "/api/v2/projects/{projectKey}/environments",
            get(api::list_environments).post(api::create_environment),
        )
        .route(
            "/api/v2/projects/{projectKey}/environments/{environmentKey}",
            get(api::get_environment).delete(api::delete_environment),
        )
        .route("/api/v2/flags/{projectKey}", get(flags::api::list_flags))
        .route(
            "/api/v2/flags/{projectKey}/{featureFlagKey}",
            get(flags::api::get_flag).patch(flags::api::patch_flag),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(shared.clone(), auth::gate));
    let tokens = Router::new()
        .route("/trust/oauth/token", post(oauth::token))
        .route("/trust/oauth/revoke", post(oauth::revoke));
    // Faults and the IP limit hit what a client's code calls, not the browser pages.
    let called_by_code = api
        .merge(tokens)
        .layer(from_fn_with_state(shared.clone(), faults::inject))
        .layer(from_fn_with_state(shared.clone(), ip_limit));
    let pages = Router::new()
        .route(
            "/trust/oauth/authorize",
            get(oauth::authorize).post(oauth::decide),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::metadata),
        )
        .route(
            "/projects/{projectKey}/settings/environments",
            get(flags::page::environment_page_html),
        )
        .route("/healthz", get(healthz));
    Router::new()
        .merge(called_by_code)
        .merge(pages)
        .fallback(not_found)
        .layer(from_fn_with_state(shared.clone(), record::record))
        .with_state(shared)
}
