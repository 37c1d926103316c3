//! Every error under `/api/v1` answers in the JSON envelope
//! `{"error": {"code", "message"}}`, whichever layer produced it: the
//! router's 404 and 405, a body limit's 413, the web fallback's HTML page for
//! `/api/v1/` and unknown API paths, an empty answer from a lower layer.
//! Browser paths keep their pages.

use axum::Json;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Whether the path belongs to the internal API.
pub fn is_api_path(path: &str) -> bool {
    path == "/api/v1" || path.starts_with("/api/v1/")
}

/// Middleware: rewrites a non-JSON error answer on an API path.
pub async fn api_error_envelope(req: Request, next: Next) -> Response {
    let api = is_api_path(req.uri().path());
    let head = req.method() == Method::HEAD;
    let response = next.run(req).await;
    if !api || !(response.status().is_client_error() || response.status().is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let (code, message) = describe(parts.status);
    let rewritten = Json(json!({"error": {"code": code, "message": message}})).into_response();
    let (new_parts, body) = rewritten.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        new_parts
            .headers
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/json")),
    );
    let body = if head { Body::empty() } else { body };
    Response::from_parts(parts, body)
}

/// A code and message for an error status that came without our body.
pub fn describe(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::BAD_REQUEST => ("invalid_request", "the request is malformed"),
        StatusCode::UNAUTHORIZED => ("unauthorized", "an API key is required"),
        StatusCode::FORBIDDEN => ("forbidden", "this API key may not do that"),
        StatusCode::NOT_FOUND => ("not_found", "no such API route"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this method is not allowed on this route",
        ),
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "the request did not arrive in time"),
        StatusCode::LENGTH_REQUIRED => ("length_required", "a Content-Length is required"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "request body is too large"),
        StatusCode::URI_TOO_LONG => ("uri_too_long", "the request URI is too long"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            "request_header_fields_too_large",
            "the request headers are too large",
        ),
        StatusCode::TOO_MANY_REQUESTS => ("rate_limited", "too many requests; slow down"),
        s if s.is_server_error() => ("internal_error", "internal error; it has been logged"),
        _ => ("invalid_request", "the request could not be served"),
    }
}
