//! Each domain error turned into an [`AppError`], in one `From` each: the
//! status and the code a vendor's backend sees. Messages are the domain's
//! own (they never carry secrets); internal causes stay internal.

use axum::http::StatusCode;

use super::AppError;
use crate::connections::{CallError, ConnectionError, LdProblem, problem};
use crate::environments::EnvironmentError;
use crate::launchdarkly::LdError;
use crate::settings::SettingsError;
use crate::tenants::TenantError;
use crate::text::InvalidText;

impl From<ConnectionError> for AppError {
    fn from(err: ConnectionError) -> Self {
        match err {
            ConnectionError::NotConnected => AppError::conflict("not_connected", err.to_string()),
            ConnectionError::NeedsReconnect => {
                AppError::conflict("needs_reconnect", err.to_string())
            }
            ConnectionError::Upstream(e) => upstream_error(e),
            ConnectionError::Internal(e) => AppError::Internal(e),
        }
    }
}

/// How a LaunchDarkly failure is told to the API's callers: a fixed
/// sentence, or LaunchDarkly's own explanation where it helps. Transport
/// details stay in the log.
pub fn upstream_error(err: LdError) -> AppError {
    let (status, code, message) = match problem(&err) {
        LdProblem::RateLimited { reset_at } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "launchdarkly_rate_limited",
            format!("LaunchDarkly is rate-limiting this account until {reset_at}; try again then"),
        ),
        LdProblem::Unavailable => (
            StatusCode::BAD_GATEWAY,
            "launchdarkly_unavailable",
            "LaunchDarkly could not be reached or failed; try again shortly".to_owned(),
        ),
        LdProblem::Unauthorized => (
            StatusCode::CONFLICT,
            "needs_reconnect",
            "LaunchDarkly no longer accepts this tenant's credentials; the customer needs to reconnect".to_owned(),
        ),
        LdProblem::Forbidden { message } => (
            StatusCode::FORBIDDEN,
            "launchdarkly_forbidden",
            format!("LaunchDarkly refused: the connected token lacks the permission ({message})"),
        ),
        LdProblem::Refused { message } => (
            StatusCode::BAD_GATEWAY,
            "launchdarkly_error",
            format!("LaunchDarkly refused the request: {message}"),
        ),
        LdProblem::NotFound | LdProblem::Unexpected => (
            StatusCode::BAD_GATEWAY,
            "launchdarkly_error",
            "LaunchDarkly gave an unexpected answer".to_owned(),
        ),
    };
    AppError::Upstream {
        status,
        code,
        message,
    }
}

impl From<CallError> for AppError {
    fn from(err: CallError) -> Self {
        match err {
            CallError::Ld(e) => upstream_error(e),
            CallError::Connection(e) => e.into(),
        }
    }
}

impl From<TenantError> for AppError {
    fn from(err: TenantError) -> Self {
        match err {
            TenantError::NotFound(_) => AppError::NotFound(err.to_string()),
            TenantError::Offboarding => AppError::conflict("tenant_offboarding", err.to_string()),
            TenantError::NotConnected => AppError::conflict("not_connected", err.to_string()),
            TenantError::NeedsReconnect => AppError::conflict("needs_reconnect", err.to_string()),
            TenantError::SettingsMissing => AppError::conflict("settings_missing", err.to_string()),
            TenantError::Internal(e) => AppError::Internal(e),
        }
    }
}

/// NUL or a control character in a free-text field.
impl From<InvalidText> for AppError {
    fn from(err: InvalidText) -> Self {
        AppError::Invalid {
            code: "invalid_text",
            message: err.to_string(),
        }
    }
}

impl From<EnvironmentError> for AppError {
    fn from(err: EnvironmentError) -> Self {
        match err {
            EnvironmentError::InvalidRequest(message) => AppError::invalid(message),
            EnvironmentError::InvalidCursor => AppError::invalid(err.to_string()),
            EnvironmentError::InvalidText(e) => e.into(),
            EnvironmentError::Tenant(e) => e.into(),
            EnvironmentError::ConflictingRequest(_) => {
                AppError::conflict("conflicting_request", err.to_string())
            }
            EnvironmentError::NotLive(_) | EnvironmentError::Gone => {
                AppError::not_found(err.to_string())
            }
            EnvironmentError::Internal(e) => AppError::Internal(e),
        }
    }
}

/// Only what could not be checked: field problems are answered by the
/// settings route itself (`invalid_settings`, a message per field).
impl From<SettingsError> for AppError {
    fn from(err: SettingsError) -> Self {
        match err {
            SettingsError::Fields(problems) => {
                let message = problems
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join(" ");
                AppError::Invalid {
                    code: "invalid_settings",
                    message,
                }
            }
            SettingsError::Unavailable(e) => e.into(),
            SettingsError::Internal(e) => AppError::Internal(e),
        }
    }
}
