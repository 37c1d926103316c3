//! A tenant's environment settings, checked against LaunchDarkly before they
//! are saved.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::TenantScope;
use crate::app::AppState;
use crate::error::{ApiJson, AppResult, envelope};
use crate::settings::{self, SettingsError, SettingsInput};
use crate::store::settings::TenantSettings;
use crate::tenants;

/// 200 with the saved settings; 400 `invalid_settings` with a message per
/// field; 409 when the tenant is not connected.
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant))]
pub async fn put_settings(
    State(state): State<AppState>,
    scope: TenantScope,
    ApiJson(input): ApiJson<SettingsInput>,
) -> AppResult<Response> {
    tenants::active(&state.db, &scope.tenant).await?;
    match settings::validate_and_save(&state, &scope.tenant, &input, &scope.caller.actor()).await {
        Ok(saved) => Ok(Json::<TenantSettings>(saved).into_response()),
        Err(SettingsError::Fields(errors)) => {
            let message = errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join(" ");
            let fields: serde_json::Map<String, serde_json::Value> = errors
                .iter()
                .map(|e| (e.field.to_owned(), json!(e.message)))
                .collect();
            let mut body = envelope("invalid_settings", &message);
            body["error"]["fields"] = json!(fields);
            Ok((StatusCode::BAD_REQUEST, Json(body)).into_response())
        }
        Err(err) => Err(err.into()),
    }
}
