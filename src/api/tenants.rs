//! Tenants: register, read, offboard; and connect links for their browsers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::TenantScope;
use crate::error::{ApiJson, AppError, AppResult};
use crate::startup::AppState;
use crate::store::audit::{self, NewAuditEvent};
use crate::store::connect_links;
use crate::store::connections::{self, ConnectionSummary};
use crate::store::settings::{self, TenantSettings};
use crate::store::tenants::{self, Tenant, Upserted};

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

async fn tenant_view(state: &AppState, tenant: Tenant) -> AppResult<TenantView> {
    let connection = connections::get(&state.db, &tenant.id).await?;
    let settings = settings::get(&state.db, &tenant.id).await?;
    Ok(TenantView {
        id: tenant.id.to_string(),
        display_name: tenant.display_name,
        offboarding: tenant.offboarding_at.is_some(),
        connection: match connection {
            Some(c) => ConnectionView::Connected(ConnectionSummary::from(&c)),
            None => ConnectionView::NotConnected {
                status: "not_connected",
            },
        },
        settings,
        created_at: tenant.created_at,
        updated_at: tenant.updated_at,
    })
}

async fn load_tenant(state: &AppState, scope: &TenantScope) -> AppResult<Tenant> {
    tenants::get(&state.db, &scope.tenant)
        .await?
        .ok_or_else(|| AppError::not_found(format!("tenant '{}' does not exist", scope.tenant)))
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
                    NewAuditEvent::new(&scope.caller.actor(), "tenant.created"),
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
    Ok((status, Json(tenant_view(&state, tenant).await?)).into_response())
}

#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant))]
pub async fn get_tenant(
    State(state): State<AppState>,
    scope: TenantScope,
) -> AppResult<Json<TenantView>> {
    let tenant = load_tenant(&state, &scope).await?;
    Ok(Json(tenant_view(&state, tenant).await?))
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
    let live: i64 = sqlx::query_scalar(
        "select count(*) from environments where tenant_id = $1 and status <> 'deleted'",
    )
    .bind(scope.tenant.as_str())
    .fetch_one(&mut *tx)
    .await?;
    if live == 0 {
        let connection = connections::delete(&mut *tx, &scope.tenant).await?;
        tenants::delete(&mut *tx, &scope.tenant).await?;
        tx.commit().await?;
        // The tokens are gone from here; the grant should not outlive them.
        if let Some(connection) = connection.filter(|c| c.auth_kind == connections::AuthKind::OAuth)
        {
            crate::connections::revoke_upstream(&state, &connection).await;
        }
        tracing::info!("tenant offboarded");
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    sqlx::query(
        "insert into jobs (id, tenant_id, kind, state, run_at, created_at, updated_at)
         values ($1, $2, 'offboard_tenant', 'queued', $3, $3, $3)
         on conflict do nothing",
    )
    .bind(Uuid::new_v4())
    .bind(scope.tenant.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        &scope.tenant,
        now,
        NewAuditEvent::new(&scope.caller.actor(), "tenant.offboarding"),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": scope.tenant, "status": "offboarding", "live_environments": live})),
    )
        .into_response())
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
) -> AppResult<Response> {
    let tenant = load_tenant(&state, &scope).await?;
    if tenant.offboarding_at.is_some() {
        return Err(AppError::conflict(
            "tenant_offboarding",
            "this tenant is being offboarded",
        ));
    }
    let (token, expires_at) = connect_links::create(
        &state.db,
        &tenant.id,
        state.now(),
        state.config.connect_link_ttl,
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
