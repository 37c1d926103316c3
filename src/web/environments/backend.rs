//! What the environments page asks of the lifecycle: one seam, so the page
//! code reads the same whatever sits behind it.

use chrono::{DateTime, Utc};

use crate::ids::{EphemeralId, TenantId};
use crate::startup::AppState;
use crate::store::{connections, settings};

use super::PageResult;

/// An environment as the page needs it.
pub struct EnvView {
    pub ephemeral_id: String,
    pub name: String,
    pub key: String,
    pub project_key: String,
    pub source: String,
    /// `pending`, `ready`, `deleting`, `deleted` or `failed`.
    pub status: &'static str,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub url: String,
    pub client_side_id: String,
    pub last_error: String,
    pub color: String,
    pub has_keys: bool,
}

/// An environment's SDK keys, shown once asked for.
pub struct Keys {
    pub environment_key: String,
    pub sdk_key: String,
    pub mobile_key: String,
    pub client_side_id: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("environment_key", &self.environment_key)
            .finish_non_exhaustive()
    }
}

/// Newest first; `page` counts from 1. Returns the rows and whether more follow.
pub async fn list(
    _state: &AppState,
    _tenant: &TenantId,
    _page: usize,
    _per_page: usize,
) -> PageResult<(Vec<EnvView>, bool)> {
    Ok((Vec::new(), false))
}

/// Whether the tenant can get environments at all: connected, configured.
pub async fn readiness(state: &AppState, tenant: &TenantId) -> PageResult<(bool, bool)> {
    let connected = connections::get(&state.db, tenant)
        .await?
        .is_some_and(|c| c.status == connections::ConnectionStatus::Connected);
    let configured = settings::get(&state.db, tenant).await?.is_some();
    Ok((connected, configured))
}

pub async fn reveal_keys(
    _state: &AppState,
    _tenant: &TenantId,
    _id: &EphemeralId,
) -> PageResult<Option<Keys>> {
    Ok(None)
}

/// Errors are the message the customer sees.
pub async fn recreate(
    _state: &AppState,
    _tenant: &TenantId,
    _id: &EphemeralId,
) -> Result<(), String> {
    Err("Re-creating environments is not available yet.".to_owned())
}

pub async fn delete(
    _state: &AppState,
    _tenant: &TenantId,
    _id: &EphemeralId,
) -> Result<(), String> {
    Err("Deleting environments is not available yet.".to_owned())
}
