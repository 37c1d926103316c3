//! What the environments page asks of the environments domain: one seam, so
//! the page code reads the same whatever sits behind it.

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use crate::app::AppState;
use crate::environments::{
    self, Desired, EnvironmentError, EnvironmentRecord, EnvironmentStatus,
    ListQuery as LifecycleQuery,
};
use crate::error::AppError;
use crate::ids::{EphemeralId, TenantId};
use crate::tenants::{self, TenantError};

use super::PageResult;

/// One flag a preview chose: its key and the JSON text of its value.
#[derive(Clone)]
pub struct FlagChoice {
    pub key: String,
    pub value: String,
}

/// An environment as the page needs it.
pub struct EnvView {
    pub ephemeral_id: String,
    pub name: String,
    pub key: String,
    pub project_key: String,
    pub source: String,
    /// The flag values this preview serves to everyone, in key order.
    pub flags: Vec<FlagChoice>,
    /// `pending`, `ready`, `deleting`, `deleted`, `failed` or
    /// `delete_failed` (a delete LaunchDarkly refused).
    pub status: &'static str,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub url: String,
    pub client_side_id: String,
    pub last_error: String,
    pub color: String,
    pub has_keys: bool,
}

impl EnvView {
    fn new(state: &AppState, r: &EnvironmentRecord) -> Self {
        let status = match (r.desired, r.status) {
            (Desired::Absent, EnvironmentStatus::Failed) => "delete_failed",
            // Asked to go, not yet picked up by a worker.
            (Desired::Absent, EnvironmentStatus::Pending | EnvironmentStatus::Ready) => "deleting",
            (_, s) => s.as_str(),
        };
        Self {
            ephemeral_id: r.ephemeral_id.to_string(),
            name: r.environment_name.clone(),
            key: r.environment_key.clone(),
            project_key: r.project_key.clone(),
            source: r.source_environment_key.clone(),
            flags: r
                .flags
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(key, value)| FlagChoice {
                            key: key.clone(),
                            value: value.to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            status,
            created_at: r.created_at,
            expires_at: r.expires_at,
            url: environments::environment_url(state, r),
            client_side_id: r.client_side_id.clone().unwrap_or_default(),
            last_error: r.last_error.clone().unwrap_or_default(),
            color: r.color.clone(),
            has_keys: r.sdk_key.is_some(),
        }
    }
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

/// One page, newest first, and the cursor of the next.
pub async fn list(
    state: &AppState,
    tenant: &TenantId,
    cursor: Option<String>,
    per_page: usize,
    include_deleted: bool,
) -> PageResult<(Vec<EnvView>, Option<String>)> {
    let query = LifecycleQuery {
        limit: i64::try_from(per_page).unwrap_or(25),
        cursor,
        include_deleted,
    };
    let page = match environments::list_environments(state, tenant, &query).await {
        Ok(page) => page,
        // A cursor we did not make: start from the top instead.
        Err(EnvironmentError::InvalidCursor) => {
            environments::list_environments(
                state,
                tenant,
                &LifecycleQuery {
                    cursor: None,
                    ..query
                },
            )
            .await?
        }
        Err(err) => return Err(err.into()),
    };
    let views = page.items.iter().map(|r| EnvView::new(state, r)).collect();
    Ok((views, page.next_cursor))
}

/// Whether the tenant can get environments at all: connected, configured.
pub async fn readiness(state: &AppState, tenant: &TenantId) -> PageResult<(bool, bool)> {
    let readiness = tenants::readiness(&state.db, tenant).await?;
    Ok((readiness.connected(), readiness.configured()))
}

/// The live environment's SDK keys; `None` when it has none (not ready, or
/// being deleted).
pub async fn reveal_keys(
    state: &AppState,
    tenant: &TenantId,
    id: &EphemeralId,
) -> PageResult<Option<Keys>> {
    let Some(record) = environments::get_environment(state, tenant, id).await? else {
        return Ok(None);
    };
    if record.desired != Desired::Present || record.status != EnvironmentStatus::Ready {
        return Ok(None);
    }
    Ok(environments::reveal_keys(state, &record)?.map(|keys| Keys {
        environment_key: record.environment_key.clone(),
        sdk_key: keys.sdk_key.expose_secret().to_owned(),
        mobile_key: keys.mobile_key.expose_secret().to_owned(),
        client_side_id: keys.client_side_id,
    }))
}

/// What a refused request tells the customer, by the kind of refusal.
fn refusal(err: EnvironmentError) -> Result<(), String> {
    let message = match &err {
        EnvironmentError::Internal(_) | EnvironmentError::Tenant(TenantError::Internal(_)) => {
            "Something went wrong on our side; nothing was changed. Try again in a moment."
                .to_owned()
        }
        EnvironmentError::Tenant(TenantError::NeedsReconnect) => {
            "LaunchDarkly no longer accepts our access: reconnect in Settings first.".to_owned()
        }
        EnvironmentError::Tenant(TenantError::NotConnected) => {
            "Connect LaunchDarkly in Settings first.".to_owned()
        }
        EnvironmentError::Tenant(TenantError::SettingsMissing) => {
            "Choose a project and source environment in Settings first.".to_owned()
        }
        EnvironmentError::NotLive(_)
        | EnvironmentError::Gone
        | EnvironmentError::Tenant(TenantError::NotFound(_)) => {
            "That environment is already gone or being deleted, so there is nothing to re-create."
                .to_owned()
        }
        _ => String::new(),
    };
    let err = AppError::from(err);
    err.log();
    if message.is_empty() {
        return Err(format!("That did not work: {}", err.public_message()));
    }
    Err(message)
}

/// Errors are the message the customer sees.
pub async fn recreate(state: &AppState, tenant: &TenantId, id: &EphemeralId) -> Result<(), String> {
    match environments::request_recreate(state, tenant, id, "browser").await {
        Ok(_) => Ok(()),
        Err(err) => refusal(err),
    }
}

/// `Ok(false)`: there was nothing to delete.
pub async fn delete(state: &AppState, tenant: &TenantId, id: &EphemeralId) -> Result<bool, String> {
    match environments::request_delete(state, tenant, id, "browser").await {
        Ok(found) => Ok(found.is_some()),
        Err(err) => refusal(err).map(|()| false),
    }
}
