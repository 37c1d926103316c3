//! Whether a tenant can be worked for: it exists and is not being
//! offboarded (`active`), and also is connected and has chosen a source
//! (`ready`). The one place these checks are made.

use crate::app::AppState;
use crate::ids::TenantId;
use crate::store::connections::{self, ConnectionStatus};
use crate::store::settings::{self, TenantSettings};
use crate::store::tenants::{self, Tenant};

/// Why a tenant cannot be worked for right now.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("tenant '{0}' does not exist")]
    NotFound(TenantId),
    #[error("this tenant is being offboarded")]
    Offboarding,
    #[error("this tenant has not connected a LaunchDarkly account yet")]
    NotConnected,
    #[error(
        "this tenant's LaunchDarkly connection must be renewed: the customer needs to reconnect"
    )]
    NeedsReconnect,
    #[error("this tenant has not chosen a LaunchDarkly project and source environment yet")]
    SettingsMissing,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for TenantError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(anyhow::Error::new(err).context("database"))
    }
}

/// How far a tenant is set up.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// `None`: never connected (or disconnected).
    pub connection: Option<ConnectionStatus>,
    pub settings: Option<TenantSettings>,
}

impl Readiness {
    pub fn connected(&self) -> bool {
        self.connection == Some(ConnectionStatus::Connected)
    }

    pub fn configured(&self) -> bool {
        self.settings.is_some()
    }
}

/// The tenant, if it exists and is not being offboarded.
pub async fn active<'e>(
    db: impl sqlx::PgExecutor<'e>,
    tenant: &TenantId,
) -> Result<Tenant, TenantError> {
    let found = tenants::get(db, tenant)
        .await?
        .ok_or_else(|| TenantError::NotFound(tenant.clone()))?;
    if found.offboarding_at.is_some() {
        return Err(TenantError::Offboarding);
    }
    Ok(found)
}

/// The tenant's connection status and settings.
pub async fn readiness<'e>(
    db: impl sqlx::PgExecutor<'e> + Copy,
    tenant: &TenantId,
) -> Result<Readiness, TenantError> {
    let connection = connections::get(db, tenant).await?.map(|c| c.status);
    let settings = settings::get(db, tenant).await?;
    Ok(Readiness {
        connection,
        settings,
    })
}

/// The settings of a tenant that exists, is not being offboarded, is
/// connected and has chosen a project and a source. One statement (the
/// tenant view's): every environment request asks it.
pub async fn ready<'e>(
    db: impl sqlx::PgExecutor<'e>,
    tenant: &TenantId,
) -> Result<TenantSettings, TenantError> {
    let overview = tenants::overview(db, tenant)
        .await?
        .ok_or_else(|| TenantError::NotFound(tenant.clone()))?;
    if overview.tenant.offboarding_at.is_some() {
        return Err(TenantError::Offboarding);
    }
    match overview.connection.map(|c| c.status) {
        None => return Err(TenantError::NotConnected),
        Some(ConnectionStatus::NeedsReconnect) => return Err(TenantError::NeedsReconnect),
        Some(ConnectionStatus::Connected) => {}
    }
    overview.settings.ok_or(TenantError::SettingsMissing)
}

/// [`ready`], from this replica's cache when it found the tenant ready
/// within the last few seconds and nothing about the tenant changed since
/// (see `app::TenantCache`); otherwise read, and remembered if ready.
pub async fn ready_cached<'e>(
    state: &AppState,
    db: impl sqlx::PgExecutor<'e>,
    tenant: &TenantId,
) -> Result<TenantSettings, TenantError> {
    let cache = &state.lifecycle.tenants;
    if let Some(settings) = cache.ready(tenant) {
        return Ok(settings);
    }
    let epoch = cache.epoch();
    let settings = ready(db, tenant).await?;
    cache.remember_ready(tenant, &settings, epoch);
    Ok(settings)
}
