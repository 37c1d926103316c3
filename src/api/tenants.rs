//! Tenants: register, read, offboard; and connect links for their browsers.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::TenantScope;
use crate::app::AppState;
use crate::audit::{AuditAction, event};
use crate::connections::revoke_if_oauth;
use crate::error::{ApiJson, AppError, AppResult};
use crate::ids::TenantId;
use crate::store::audit;
use crate::store::connect_links;
use crate::store::connections::{self, ConnectionSummary};
use crate::store::settings::TenantSettings;
use crate::store::tenants::{self, TenantOverview, Upserted};
use crate::store::{environments, jobs};
use crate::web::return_url;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutTenant {
    display_name: String,
}

#[derive(Debug, Serialize)]
pub struct TenantView {
    id: String,
    display_name: String,
    offboarding: bool,
    connection: ConnectionView,
    settings: Option<TenantSettings>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ConnectionView {
    NotConnected { status: &'static str },
    Connected(ConnectionSummary),
}

impl From<TenantOverview> for TenantView {
    fn from(o: TenantOverview) -> Self {
        let TenantOverview {
            tenant,
            connection,
            settings,
        } = o;
        Self {
            id: tenant.id.to_string(),
            display_name: tenant.display_name,
            offboarding: tenant.offboarding_at.is_some(),
            connection: match connection {
                Some(c) => ConnectionView::Connected(c),
                None => ConnectionView::NotConnected {
                    status: "not_connected",
                },
            },
            settings,
            created_at: tenant.created_at,
            updated_at: tenant.updated_at,
        }
    }
}

/// The tenant as the API shows it: one query.
async fn tenant_view(state: &AppState, tenant: &TenantId) -> AppResult<TenantView> {
    tenants::overview(&state.db, tenant)
        .await?
        .map(TenantView::from)
        .ok_or_else(|| crate::tenants::TenantError::NotFound(tenant.clone()).into())
}

#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant))]
pub async fn put_tenant(
    State(state): State<AppState>,
    scope: TenantScope,
    ApiJson(body): ApiJson<PutTenant>,
) -> AppResult<Response> {
    // The length counts what was sent, so the limit reads the same as the
    // OpenAPI document's `maxLength`.
    let display_name = body.display_name.trim();
    crate::text::check("display_name", display_name)?;
    if display_name.is_empty() || body.display_name.chars().count() > 200 {
        return Err(AppError::invalid("display_name must be 1-200 characters"));
    }
    let (status, tenant) =
        match tenants::upsert(&state.db, &scope.tenant, display_name, state.now()).await? {
            Upserted::Created(t) => {
                audit::record(
                    &state.db,
                    &t.id,
                    state.now(),
                    event(&scope.caller.actor(), AuditAction::TenantCreated),
                )
                .await?;
                (StatusCode::CREATED, t)
            }
            Upserted::Updated(t) => (StatusCode::OK, t),
            Upserted::Offboarding => {
                return Err(AppError::conflict(
                    "tenant_offboarding",
                    "this tenant is being offboarded; wait until it is gone to register it again",
                ));
            }
        };
    Ok((status, Json(tenant_view(&state, &tenant.id).await?)).into_response())
}

#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant))]
pub async fn get_tenant(
    State(state): State<AppState>,
    scope: TenantScope,
) -> AppResult<Json<TenantView>> {
    Ok(Json(tenant_view(&state, &scope.tenant).await?))
}

/// Offboarding: with no live environments the tenant is forgotten at once
/// (204); otherwise workers delete its environments upstream first (202).
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant))]
pub async fn delete_tenant(
    State(state): State<AppState>,
    scope: TenantScope,
) -> AppResult<Response> {
    let now = state.now();
    let mut tx = state.db.begin().await?;
    let exists = tenants::start_offboarding(&mut *tx, &scope.tenant, now).await?;
    if !exists {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let live = environments::count_live(&mut *tx, &scope.tenant).await?;
    if live == 0 {
        let connection = connections::delete(&mut *tx, &scope.tenant).await?;
        tenants::delete(&mut *tx, &scope.tenant).await?;
        tx.commit().await?;
        state.lifecycle.tenants.evict(scope.tenant.as_str());
        // The tokens are gone from here; the grant should not outlive them.
        revoke_if_oauth(&state, connection.as_ref()).await;
        tracing::info!("tenant offboarded");
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    jobs::enqueue_tenant_job(&mut tx, &scope.tenant, jobs::JobKind::OffboardTenant, now).await?;
    audit::record(
        &mut *tx,
        &scope.tenant,
        now,
        event(&scope.caller.actor(), AuditAction::TenantOffboarding),
    )
    .await?;
    tx.commit().await?;
    state.lifecycle.tenants.evict(scope.tenant.as_str());
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": scope.tenant, "status": "offboarding", "live_environments": live})),
    )
        .into_response())
}

/// The optional body of a connect-link request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectLinkInput {
    /// Where the customer goes back to in the vendor's app.
    return_url: Option<String>,
}

/// A JSON body that may be left out entirely (no bytes at all).
async fn optional_json<T: serde::de::DeserializeOwned>(request: Request) -> AppResult<Option<T>> {
    let (parts, body) = request.into_parts();
    let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), &())
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::PayloadTooLarge
            } else {
                AppError::invalid("could not read request body")
            }
        })?;
    if bytes.is_empty() {
        return Ok(None);
    }
    let request = Request::from_parts(parts, Body::from(bytes));
    let ApiJson(value) = ApiJson::<T>::from_request(request, &()).await?;
    Ok(Some(value))
}

#[derive(Debug, Serialize)]
pub struct ConnectLinkView {
    url: String,
    expires_at: DateTime<Utc>,
}

#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant))]
pub async fn create_connect_link(
    State(state): State<AppState>,
    scope: TenantScope,
    request: Request,
) -> AppResult<Response> {
    let input: ConnectLinkInput = optional_json(request).await?.unwrap_or_default();
    // Checked before anything else, so a refused return_url changes nothing.
    let return_url = match input.return_url.as_deref() {
        None => None,
        Some(raw) => Some(
            return_url::check(raw, &state.config.return_url_origins).map_err(|err| {
                AppError::Invalid {
                    code: err.code(),
                    message: err.to_string(),
                }
            })?,
        ),
    };
    let tenant = crate::tenants::active(&state.db, &scope.tenant).await?;
    let (token, expires_at) = connect_links::create_returning_to(
        &state.db,
        &tenant.id,
        state.now(),
        state.config.connect_link_ttl,
        return_url.as_ref().map(url::Url::as_str),
    )
    .await?;
    let url = state
        .config
        .public_url
        .join(&format!("/connect/{}", token.expose_secret()))
        .map_err(|e| AppError::Internal(e.into()))?;
    Ok((
        StatusCode::CREATED,
        Json(ConnectLinkView {
            url: url.to_string(),
            expires_at,
        }),
    )
        .into_response())
}
