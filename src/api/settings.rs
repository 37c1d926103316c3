//! A tenant's environment settings, checked against LaunchDarkly before they
//! are saved.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::TenantScope;
use crate::error::{ApiJson, AppError, AppResult};
use crate::lifecycle::settings::{self, SettingsErrors, SettingsInput};
use crate::startup::AppState;
use crate::store::settings::TenantSettings;
use crate::store::tenants;

/// 200 with the saved settings; 400 `invalid_settings` with a message per
/// field; 409 when the tenant is not connected.
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant))]
pub async fn put_settings(
    State(state): State<AppState>,
    scope: TenantScope,
    ApiJson(input): ApiJson<SettingsInput>,
) -> AppResult<Response> {
    let tenant = tenants::get(&state.db, &scope.tenant)
        .await?
        .ok_or_else(|| AppError::not_found(format!("tenant '{}' does not exist", scope.tenant)))?;
    if tenant.offboarding_at.is_some() {
        return Err(AppError::conflict(
            "tenant_offboarding",
            "this tenant is being offboarded",
        ));
    }
    match settings::validate_and_save(&state, &scope.tenant, &input, &scope.caller.actor()).await {
        Ok(saved) => Ok(Json::<TenantSettings>(saved).into_response()),
        Err(SettingsErrors::Unavailable(err)) => Err(err),
        Err(SettingsErrors::Fields(errors)) => {
            let message = errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join(" ");
            let fields: serde_json::Map<String, serde_json::Value> = errors
                .iter()
                .map(|e| (e.field.to_owned(), json!(e.message)))
                .collect();
            Ok((
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"code": "invalid_settings", "message": message, "fields": fields}})),
            )
                .into_response())
        }
    }
}
