//! What a failed LaunchDarkly call means for whoever asked, decided in one
//! place. The HTTP layers word each kind for their audience (a JSON error
//! for the vendor, a sentence for the customer) by matching the variant.

use chrono::{DateTime, Utc};

use crate::launchdarkly::LdError;

/// The kinds of LaunchDarkly failure a caller can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LdProblem<'a> {
    /// Throttled until `reset_at`.
    RateLimited { reset_at: DateTime<Utc> },
    /// No answer, a broken connection or a 5xx: try again shortly.
    Unavailable,
    /// The credential is no longer accepted: the customer must reconnect.
    Unauthorized,
    /// The credential lacks the permission; LaunchDarkly's explanation.
    Forbidden { message: &'a str },
    /// LaunchDarkly refused the request (400 or 409); its explanation.
    Refused { message: &'a str },
    /// The project or environment does not exist (or is invisible).
    NotFound,
    /// An answer we could not read or did not expect.
    Unexpected,
}

/// Classifies a LaunchDarkly error. Transport details (addresses, TLS) are
/// not carried: they belong in the log, which this writes.
pub fn problem(err: &LdError) -> LdProblem<'_> {
    tracing::warn!(error = %err, "LaunchDarkly call failed");
    match err {
        LdError::RateLimited { reset_at } => LdProblem::RateLimited {
            reset_at: *reset_at,
        },
        LdError::Timeout | LdError::Transport { .. } | LdError::Upstream { .. } => {
            LdProblem::Unavailable
        }
        LdError::Unauthorized => LdProblem::Unauthorized,
        LdError::Forbidden { message } => LdProblem::Forbidden { message },
        LdError::InvalidRequest { message } | LdError::Conflict { message } => {
            LdProblem::Refused { message }
        }
        LdError::NotFound => LdProblem::NotFound,
        _ => LdProblem::Unexpected,
    }
}
