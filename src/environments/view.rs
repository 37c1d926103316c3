//! How an environment reads in the API and in webhooks.

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Serialize;

use super::{EnvironmentRecord, EnvironmentStatus, FailureCode, RevealedKeys, environment_url};
use crate::app::AppState;

#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentView {
    pub tenant_id: String,
    pub ephemeral_id: String,
    pub generation: i32,
    pub status: EnvironmentStatus,
    pub launchdarkly: LaunchDarklyView,
    pub tags: Vec<String>,
    /// Flag key → the value this environment serves to every context.
    pub flags: serde_json::Value,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ready_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// For a failed environment, the request's choice LaunchDarkly did not know.
    pub error_code: Option<FailureCode>,
}

#[derive(Clone, Serialize)]
pub struct LaunchDarklyView {
    pub project_key: String,
    pub environment_key: String,
    pub environment_name: String,
    pub source_environment_key: String,
    pub client_side_id: Option<String>,
    pub sdk_key: Option<String>,
    pub mobile_key: Option<String>,
    pub url: String,
}

impl std::fmt::Debug for LaunchDarklyView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchDarklyView")
            .field("project_key", &self.project_key)
            .field("environment_key", &self.environment_key)
            .finish_non_exhaustive()
    }
}

impl EnvironmentView {
    /// The view of `record`; SDK and mobile keys only when `keys` is given.
    pub fn new(state: &AppState, record: &EnvironmentRecord, keys: Option<&RevealedKeys>) -> Self {
        Self {
            tenant_id: record.tenant_id.to_string(),
            ephemeral_id: record.ephemeral_id.to_string(),
            generation: record.generation,
            status: record.status,
            launchdarkly: LaunchDarklyView {
                project_key: record.project_key.clone(),
                environment_key: record.environment_key.clone(),
                environment_name: record.environment_name.clone(),
                source_environment_key: record.source_environment_key.clone(),
                client_side_id: record.client_side_id.clone(),
                sdk_key: keys.map(|k| k.sdk_key.expose_secret().to_owned()),
                mobile_key: keys.map(|k| k.mobile_key.expose_secret().to_owned()),
                url: environment_url(state, record),
            },
            tags: record.tags.clone(),
            flags: record.flags.clone(),
            expires_at: record.expires_at,
            created_at: record.created_at,
            updated_at: record.updated_at,
            ready_at: record.ready_at,
            last_error: record.last_error.clone(),
            error_code: record.failure_code,
        }
    }
}
