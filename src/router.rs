//! The whole HTTP surface: the internal API, the browser UI, health,
//! readiness and metrics, and the layers every answer passes through
//! (request ids, tracing, metrics, security headers, body limit).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use crate::config::Config;
use crate::{api, db, web};

/// Largest request body we read. The API's bodies are small JSON documents.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(api::openapi_document))
        .nest("/api/v1", api::router(state.clone()))
        .merge(web::router(state.clone()))
        .layer(middleware::from_fn_with_state(state.clone(), track_request))
        .layer(middleware::from_fn_with_state(
            Arc::new(content_security_policy(&state.config)),
            security_headers,
        ))
        // Extractors refuse larger bodies (413, in the JSON envelope on the API).
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    // The raw URI is never logged: connect links and OAuth
                    // callbacks carry secrets in it. The route pattern is.
                    let route = req
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or("unmatched", MatchedPath::as_str)
                        .to_owned();
                    let request_id = req
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or("-")
                        .to_owned();
                    tracing::info_span!("request", method = %req.method(), route, request_id, tenant_id = tracing::field::Empty)
                })
                .on_request(())
                // `track_request` writes the "request done" line.
                .on_response(()),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .layer(middleware::from_fn(api::envelope::api_error_envelope))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    match db::migrations_current(&state.db).await {
        Ok(true) => (StatusCode::OK, "ready").into_response(),
        Ok(false) => (StatusCode::SERVICE_UNAVAILABLE, "migrations pending").into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// Request counts and latencies by route pattern and status.
async fn track_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    let latency = started.elapsed();
    log_done(&method, response.status(), latency);
    let status = response.status().as_u16().to_string();
    let labels = [
        ("method", method.as_str()),
        ("route", route.as_str()),
        ("status", status.as_str()),
    ];
    state.metrics.inc(
        "ld_eaas_http_requests_total",
        "HTTP requests by route and status",
        &labels,
    );
    state.metrics.observe(
        "ld_eaas_http_request_duration_seconds",
        "HTTP request latency by route",
        &[("route", route.as_str())],
        latency.as_secs_f64(),
    );
    response
}

/// A read that answers well and fast is logged at `debug`: vendors' backends
/// and the environments page poll, and a line per poll would bury the rest
/// (and cost more than the read). Every other request (a write, a refusal, a
/// failure, anything slower than [`SLOW_READ`]) is logged at `info`.
fn log_done(method: &str, status: StatusCode, latency: Duration) {
    let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    let quiet = matches!(method, "GET" | "HEAD")
        && (status.is_success() || status == StatusCode::NOT_MODIFIED)
        && latency < SLOW_READ;
    if quiet {
        tracing::debug!(status = status.as_u16(), latency_ms, "request done");
    } else {
        tracing::info!(status = status.as_u16(), latency_ms, "request done");
    }
}

/// A read slower than this is logged at `info` even when it succeeds.
const SLOW_READ: Duration = Duration::from_secs(1);

/// Only our own origin, except that a form may lead to LaunchDarkly's OAuth
/// consent page (browsers apply `form-action` to the redirect after a POST).
fn content_security_policy(config: &Config) -> HeaderValue {
    let launchdarkly = config.launchdarkly_url.origin().ascii_serialization();
    let policy = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; \
         base-uri 'none'; form-action 'self' {launchdarkly}; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'self'"))
}

/// Security headers on every answer; a handler may set its own CSP first.
async fn security_headers(
    State(csp): State<Arc<HeaderValue>>,
    req: Request,
    next: Next,
) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, (*csp).clone());
    }
    let defaults: [(HeaderName, &str); 5] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=()",
        ),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
