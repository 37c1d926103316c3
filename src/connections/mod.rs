//! A tenant's LaunchDarkly credential, ready to use: opened from its sealed
//! form, refreshed before it expires, and refreshed once after a 401.
//!
//! Refreshing is single-flight per connection across replicas: within a
//! process a per-tenant mutex keeps concurrent callers from queueing on the
//! database, and across processes the connection row is locked `FOR UPDATE`
//! while the refresh call is made. Whoever gets the lock second sees a new
//! `token_version` and uses the fresh token instead of refreshing again.
//!
//! Also here: connecting (checking a new token and storing it sealed),
//! disconnecting, revoking a grant upstream, and [`Upstream`], a tenant's
//! session with LaunchDarkly for one job or request.

mod connect;
mod credential;
mod problem;
mod revoke;
pub mod upstream;

use crate::crypto::CryptoError;
use crate::launchdarkly::{LdError, RequestAuth};

pub use connect::{Connected, connect, disconnect};
pub use credential::{credential, refresh_after_unauthorized};
pub use problem::{LdProblem, problem};
pub use revoke::{revoke_if_oauth, revoke_tokens, revoke_upstream};
pub use upstream::{CallError, Upstream, interactive};

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("this tenant has not connected a LaunchDarkly account")]
    NotConnected,
    #[error("the LaunchDarkly connection must be renewed: the customer needs to reconnect")]
    NeedsReconnect,
    #[error("LaunchDarkly: {0}")]
    Upstream(#[from] LdError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<CryptoError> for ConnectionError {
    fn from(err: CryptoError) -> Self {
        Self::Internal(anyhow::Error::new(err).context("sealing a token"))
    }
}

impl From<sqlx::Error> for ConnectionError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(anyhow::Error::new(err).context("database"))
    }
}

/// Why a new connection was not stored.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The token can only read: it could never create or delete an environment.
    #[error("this LaunchDarkly token can only read; connect with a token or grant that can write")]
    ReadOnly,
    #[error(transparent)]
    Connection(#[from] ConnectionError),
}

impl From<LdError> for ConnectError {
    fn from(err: LdError) -> Self {
        Self::Connection(err.into())
    }
}

impl From<CryptoError> for ConnectError {
    fn from(err: CryptoError) -> Self {
        Self::Connection(err.into())
    }
}

impl From<sqlx::Error> for ConnectError {
    fn from(err: sqlx::Error) -> Self {
        Self::Connection(err.into())
    }
}

/// A usable credential and the LaunchDarkly account it acts for.
#[derive(Debug, Clone)]
pub struct TenantCredential {
    pub auth: RequestAuth,
    pub account_id: String,
    pub token_version: i64,
}
