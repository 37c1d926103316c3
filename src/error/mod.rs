//! The HTTP layers' error type: opaque to users, loud in logs.
//!
//! Which error belongs where: domain modules (`environments`, `connections`,
//! `settings`, `tenants`, ...) return their own enums and know nothing of
//! HTTP; [`AppError`] is what `api/` and `web/` answer with, and `domain`
//! (below) turns each domain enum into it in one `From` each. API routes
//! answer the [`envelope`] `{"error": {"code", "message"}}`; browser routes
//! wrap it in [`crate::web::PageError`] and get a friendly page. Internal
//! causes are logged with their whole chain and never shown.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::ids::InvalidId;

mod domain;

pub use domain::upstream_error;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed or fails validation (400).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{0}")]
    Gone(String),
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("this method is not allowed on this route")]
    MethodNotAllowed,
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// LaunchDarkly (or another dependency) could not do it right now (502/503).
    #[error("{message}")]
    Upstream {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// A bug or an outage of our own: logged in full, shown as "internal error".
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            code: "invalid_request",
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Gone(_) => StatusCode::GONE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Upstream { status, .. } => *status,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { code, .. }
            | Self::Conflict { code, .. }
            | Self::Upstream { code, .. } => code,
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Gone(_) => "gone",
            Self::PayloadTooLarge => "payload_too_large",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Internal(_) => "internal_error",
        }
    }

    /// What a user may see. Internal errors say nothing about their cause.
    pub fn public_message(&self) -> String {
        match self {
            Self::Internal(_) => "internal error; it has been logged".to_owned(),
            other => other.to_string(),
        }
    }

    /// Logs the error at a level fitting its kind, with the whole cause chain.
    pub fn log(&self) {
        match self {
            Self::Internal(err) => tracing::error!(error = format!("{err:#}"), "request failed"),
            Self::Upstream { message, .. } => tracing::warn!(error = %message, "upstream failure"),
            other => tracing::debug!(code = other.code(), error = %other, "request refused"),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        // The database being out of reach (down, restarting, a connection
        // cut mid-handshake) is an outage (503), not a bug.
        let outage = match &err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => true,
            // Class 08: connection exception; 57P01-03: shutting down,
            // crashed, starting up.
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
            _ => false,
        };
        if outage {
            tracing::warn!(error = %err, "database unavailable");
            return Self::Upstream {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "database_unavailable",
                message: "the database is unavailable; try again shortly".to_owned(),
            };
        }
        Self::Internal(anyhow::Error::new(err).context("database"))
    }
}

impl From<InvalidId> for AppError {
    fn from(err: InvalidId) -> Self {
        Self::Invalid {
            code: "invalid_id",
            message: err.to_string(),
        }
    }
}

/// The JSON error body every API answer (and every browser route asked for
/// JSON) uses: `{"error": {"code", "message"}}`. Callers may add fields,
/// e.g. `body["error"]["fields"]`.
pub fn envelope(code: &str, message: &str) -> serde_json::Value {
    json!({"error": {"code": code, "message": message}})
}

/// The constraint a database error violated, if any, so the query site can
/// turn a unique violation into a 409.
pub fn violated_constraint(err: &sqlx::Error) -> Option<&str> {
    match err {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let body = envelope(self.code(), &self.public_message());
        (self.status(), Json(body)).into_response()
    }
}

/// `Json` whose rejections use our error envelope. Unknown fields are refused
/// by `#[serde(deny_unknown_fields)]` on the request types.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            AppError::invalid(format!("invalid request body: {}", e.body_text()))
        }
        JsonRejection::JsonSyntaxError(_) => AppError::invalid("request body is not valid JSON"),
        JsonRejection::MissingJsonContentType(_) => {
            AppError::UnsupportedMediaType("expected Content-Type: application/json".to_owned())
        }
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::PayloadTooLarge
        }
        other => AppError::invalid(format!("could not read request body ({})", other.status())),
    }
}

/// `Query` with our error envelope.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| {
                AppError::invalid(format!("invalid query: {}", e.body_text()))
            })
    }
}

/// `Path` with our error envelope.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e: PathRejection| {
                AppError::invalid(format!("invalid path: {}", e.body_text()))
            })
    }
}
