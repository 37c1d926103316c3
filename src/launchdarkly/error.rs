//! Typed errors for LaunchDarkly calls.
//!
//! Messages are safe to log and to show an operator: they never contain a token, an
//! SDK key or a response body that could carry one. LaunchDarkly's own error message
//! (`{"code","message"}`) is kept only where it helps a human fix the request.

use chrono::{DateTime, Utc};

/// Longest upstream message we keep; LaunchDarkly's are one sentence.
const MAX_MESSAGE_CHARS: usize = 500;

/// What went wrong talking to the LaunchDarkly REST API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LdError {
    /// 401: the token is invalid, expired or revoked.
    #[error("LaunchDarkly rejected the credential (401 unauthorized)")]
    Unauthorized,
    /// 403: the token is valid but lacks the permission (for example a `reader` scope).
    #[error("LaunchDarkly denied the request (403 forbidden): {message}")]
    Forbidden { message: String },
    /// 404: the project or environment does not exist (or is invisible to the token).
    #[error("LaunchDarkly resource not found (404)")]
    NotFound,
    /// 409: typically an environment key that is already taken.
    #[error("LaunchDarkly reported a conflict (409): {message}")]
    Conflict { message: String },
    /// 429, or a request held back because the account or route is known to be
    /// throttled until `reset_at`.
    #[error("LaunchDarkly rate limit reached; retry after {reset_at}")]
    RateLimited { reset_at: DateTime<Utc> },
    /// 400 with LaunchDarkly's explanation, or a request refused before sending
    /// because LaunchDarkly would misread it (e.g. a malformed tag filter).
    #[error("LaunchDarkly refused the request: {message}")]
    InvalidRequest { message: String },
    /// Any other status we do not model (405, 413, an unexpected redirect, ...).
    #[error("unexpected answer from LaunchDarkly ({status}): {message}")]
    UnexpectedStatus { status: u16, message: String },
    /// 5xx: LaunchDarkly had a problem; worth retrying later.
    #[error("LaunchDarkly is unavailable ({status})")]
    Upstream { status: u16 },
    /// No answer within the configured timeout.
    #[error("LaunchDarkly did not answer in time")]
    Timeout,
    /// Could not connect, or the connection broke.
    #[error("could not reach LaunchDarkly: {message}")]
    Transport { message: String },
    /// LaunchDarkly answered something we could not read.
    #[error("unexpected answer from LaunchDarkly: {message}")]
    Decode { message: String },
}

impl LdError {
    /// Whether the same request may succeed later without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Upstream { .. }
                | Self::Timeout
                | Self::Transport { .. }
        )
    }

    /// Builds an error from a reqwest failure without its URL (ours carry no secret,
    /// but keeping URLs out of errors keeps it that way if one ever does).
    pub(crate) fn from_reqwest(err: reqwest::Error) -> Self {
        if err.is_timeout() {
            return Self::Timeout;
        }
        if err.is_decode() {
            return Self::Decode {
                message: error_chain(&err.without_url()),
            };
        }
        Self::Transport {
            message: error_chain(&err.without_url()),
        }
    }
}

/// What went wrong in an OAuth exchange with LaunchDarkly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// `invalid_grant`: the code or refresh token is expired, used or revoked. Only the
    /// customer can fix this, by connecting again.
    #[error("LaunchDarkly no longer accepts this authorization; the customer must reconnect")]
    InvalidGrant,
    /// `invalid_client` / `unauthorized_client`: this deployment's OAuth client id,
    /// secret or redirect URI is wrong. An operator must fix the configuration.
    #[error("LaunchDarkly rejected this deployment's OAuth client ({code})")]
    InvalidClient { code: String },
    /// Any other OAuth error code (`invalid_request`, `invalid_scope`, ...).
    #[error("LaunchDarkly refused the OAuth request ({code}){}", describe(.description))]
    Rejected {
        code: String,
        description: Option<String>,
    },
    /// 429 from the token endpoint.
    #[error("LaunchDarkly rate limit reached; retry after {reset_at}")]
    RateLimited { reset_at: DateTime<Utc> },
    /// 5xx from the token endpoint.
    #[error("LaunchDarkly OAuth is unavailable ({status})")]
    Upstream { status: u16 },
    /// No answer within the configured timeout.
    #[error("LaunchDarkly did not answer in time")]
    Timeout,
    /// Could not connect, or the connection broke.
    #[error("could not reach LaunchDarkly: {message}")]
    Transport { message: String },
    /// An answer we could not read. Never includes the body: it may hold a token.
    #[error("unexpected OAuth answer from LaunchDarkly: {message}")]
    Decode { message: String },
    /// The OAuth settings (URLs) are not usable.
    #[error("invalid OAuth configuration: {message}")]
    Config { message: String },
}

impl OAuthError {
    /// Whether the same request may succeed later without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Upstream { .. }
                | Self::Timeout
                | Self::Transport { .. }
        )
    }

    /// True when the stored grant is dead and the customer has to connect again.
    pub fn needs_reconnect(&self) -> bool {
        matches!(self, Self::InvalidGrant)
    }

    pub(crate) fn from_reqwest(err: reqwest::Error) -> Self {
        match LdError::from_reqwest(err) {
            LdError::Timeout => Self::Timeout,
            LdError::Decode { message } => Self::Decode { message },
            LdError::Transport { message } => Self::Transport { message },
            other => Self::Transport {
                message: other.to_string(),
            },
        }
    }
}

fn describe(description: &Option<String>) -> String {
    description
        .as_deref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default()
}

/// Shortens upstream text to something a log line or page can hold.
pub(crate) fn clip(message: &str) -> String {
    let trimmed = message.trim();
    if trimmed.chars().count() <= MAX_MESSAGE_CHARS {
        return trimmed.to_owned();
    }
    let mut clipped: String = trimmed.chars().take(MAX_MESSAGE_CHARS).collect();
    clipped.push('…');
    clipped
}

/// `outer: inner: innermost`, so a transport error says what actually failed
/// (reqwest's top-level message alone is just "error sending request").
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retryable() {
        assert!(LdError::Timeout.is_retryable());
        assert!(LdError::Upstream { status: 503 }.is_retryable());
        assert!(
            LdError::RateLimited {
                reset_at: DateTime::<Utc>::MIN_UTC
            }
            .is_retryable()
        );
        assert!(!LdError::Unauthorized.is_retryable());
        assert!(
            !LdError::Conflict {
                message: String::new()
            }
            .is_retryable()
        );
        assert!(!OAuthError::InvalidGrant.is_retryable());
        assert!(OAuthError::InvalidGrant.needs_reconnect());
    }

    #[test]
    fn long_upstream_messages_are_clipped() {
        let long = "x".repeat(2_000);
        assert_eq!(clip(&long).chars().count(), MAX_MESSAGE_CHARS + 1);
        assert_eq!(clip("  short  "), "short");
    }
}
