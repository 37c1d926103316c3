//! LaunchDarkly's error body, `{"code", "message", "id"}`, with its codes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An API error as LaunchDarkly reports it.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Invalid access token",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
        )
    }

    pub fn rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "You've exceeded the API rate limit. Try again later.",
        )
    }

    /// An injected failure: a server error (500, 502, 503 or 504), or a
    /// 403 as LaunchDarkly gives it when a role does not allow the action.
    pub fn server_error(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::FORBIDDEN => ("forbidden", "Access to the requested resource was denied"),
            StatusCode::BAD_GATEWAY => ("bad_gateway", "Bad gateway"),
            StatusCode::SERVICE_UNAVAILABLE => (
                "service_unavailable",
                "Service temporarily unavailable. Try again later.",
            ),
            StatusCode::GATEWAY_TIMEOUT => ("gateway_timeout", "Gateway timeout"),
            _ => ("internal_server_error", "An internal error occurred"),
        };
        Self::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // LaunchDarkly adds an `id` to quote to their support.
        let body = json!({
            "code": self.code,
            "message": self.message,
            "id": uuid::Uuid::new_v4().to_string(),
        });
        (self.status, Json(body)).into_response()
    }
}

/// The API's answer to anything unrouted.
pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("Invalid resource identifier")
}

/// The API's answer to a known path with a method it does not serve.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
