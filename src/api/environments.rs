//! Ephemeral environments: ensure, read, delete, recreate, list; and the
//! tenant's activity log.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::TenantScope;
use crate::app::AppState;
use crate::environments::{
    self, EnvironmentRecord, EnvironmentRequest, EnvironmentStatus, EnvironmentView, ListQuery,
};
use crate::error::{ApiPath, ApiQuery, AppError, AppResult, envelope};
use crate::ids::EphemeralId;
use crate::pagination;
use crate::store::audit;

#[derive(Debug, Deserialize)]
pub struct EnvironmentPath {
    #[allow(dead_code)] // checked by `TenantScope`
    tenant_id: String,
    ephemeral_id: String,
}

impl EnvironmentPath {
    fn ephemeral_id(&self) -> AppResult<EphemeralId> {
        Ok(EphemeralId::parse(&self.ephemeral_id)?)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Seconds to wait for the workers before answering 202.
    wait: Option<u64>,
}

impl WaitQuery {
    /// How long to wait; more than the maximum is refused before any change.
    fn timeout(&self, state: &AppState) -> AppResult<Duration> {
        let tuning = &state.config.lifecycle;
        let Some(seconds) = self.wait else {
            return Ok(tuning.default_wait);
        };
        let wait = Duration::from_secs(seconds);
        if wait > tuning.max_wait {
            return Err(AppError::invalid(format!(
                "wait: at most {} seconds",
                tuning.max_wait.as_secs()
            )));
        }
        Ok(wait)
    }
}

/// An optional JSON body: none at all means `T::default()`. Refusals use
/// our error envelope, like [`crate::error::ApiJson`]'s.
pub struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::PayloadTooLarge
            } else {
                AppError::invalid("could not read the request body")
            }
        })?;
        optional_body(&headers, &body).map(Self)
    }
}

fn optional_body<T: DeserializeOwned + Default>(headers: &HeaderMap, body: &Bytes) -> AppResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            let v = v.trim();
            v.eq_ignore_ascii_case("application/json")
                || (v.starts_with("application/") && v.ends_with("+json"))
        });
    if !json {
        return Err(AppError::UnsupportedMediaType(
            "expected Content-Type: application/json".to_owned(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            AppError::invalid(format!("invalid request body: {e}"))
        }
        _ => AppError::invalid("request body is not valid JSON"),
    })
}

/// An environment as the API shows it, SDK keys included once it is ready.
fn view(state: &AppState, record: &EnvironmentRecord) -> AppResult<EnvironmentView> {
    let keys = if record.status == EnvironmentStatus::Ready {
        environments::reveal_keys(state, record)?
    } else {
        None
    };
    Ok(EnvironmentView::new(state, record, keys.as_ref()))
}

/// A failed generation: `status`, `code` and its `last_error`, with the
/// environment.
fn failed(
    record: &EnvironmentRecord,
    view: EnvironmentView,
    status: StatusCode,
    code: &'static str,
) -> Response {
    let message = record
        .last_error
        .clone()
        .unwrap_or_else(|| "the environment could not be made".to_owned());
    let mut body = envelope(code, &message);
    body["environment"] = json!(view);
    (status, Json(body)).into_response()
}

/// 201 created and ready, 200 already there, 202 still pending, 422 failed.
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant, ephemeral_id = %path.ephemeral_id))]
pub async fn put_environment(
    State(state): State<AppState>,
    scope: TenantScope,
    ApiPath(path): ApiPath<EnvironmentPath>,
    ApiQuery(query): ApiQuery<WaitQuery>,
    OptionalJson(request): OptionalJson<EnvironmentRequest>,
) -> AppResult<Response> {
    let ephemeral_id = path.ephemeral_id()?;
    let timeout = query.timeout(&state)?;
    let ensured = environments::ensure_environment(
        &state,
        &scope.tenant,
        &ephemeral_id,
        request,
        &scope.caller.actor(),
    )
    .await?;
    let record = environments::wait_until_settled(&state, ensured.record, timeout).await?;
    let body = view(&state, &record)?;
    Ok(match record.status {
        EnvironmentStatus::Ready if ensured.created => {
            (StatusCode::CREATED, Json(body)).into_response()
        }
        EnvironmentStatus::Ready => (StatusCode::OK, Json(body)).into_response(),
        // A code naming the request's choice LaunchDarkly did not know, if one.
        EnvironmentStatus::Failed => failed(
            &record,
            body,
            StatusCode::UNPROCESSABLE_ENTITY,
            record
                .failure_code
                .map_or("environment_failed", |code| code.as_str()),
        ),
        _ => (StatusCode::ACCEPTED, Json(body)).into_response(),
    })
}

#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant, ephemeral_id = %path.ephemeral_id))]
pub async fn get_environment(
    State(state): State<AppState>,
    scope: TenantScope,
    ApiPath(path): ApiPath<EnvironmentPath>,
) -> AppResult<Json<EnvironmentView>> {
    let ephemeral_id = path.ephemeral_id()?;
    let record = environments::get_environment(&state, &scope.tenant, &ephemeral_id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("no environment '{ephemeral_id}'")))?;
    Ok(Json(view(&state, &record)?))
}

/// 204 gone (or never there), 202 still being deleted, 409 refused.
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant, ephemeral_id = %path.ephemeral_id))]
pub async fn delete_environment(
    State(state): State<AppState>,
    scope: TenantScope,
    ApiPath(path): ApiPath<EnvironmentPath>,
    ApiQuery(query): ApiQuery<WaitQuery>,
) -> AppResult<Response> {
    let ephemeral_id = path.ephemeral_id()?;
    let timeout = query.timeout(&state)?;
    let Some(record) =
        environments::request_delete(&state, &scope.tenant, &ephemeral_id, &scope.caller.actor())
            .await?
    else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let record = environments::wait_until_settled(&state, record, timeout).await?;
    let body = view(&state, &record)?;
    Ok(match record.status {
        EnvironmentStatus::Deleted => StatusCode::NO_CONTENT.into_response(),
        EnvironmentStatus::Failed if record.refused => {
            failed(&record, body, StatusCode::CONFLICT, "environment_protected")
        }
        EnvironmentStatus::Failed => failed(
            &record,
            body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "environment_delete_failed",
        ),
        _ => (StatusCode::ACCEPTED, Json(body)).into_response(),
    })
}

/// 200 the new generation is ready, 202 still pending, 422 failed.
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant, ephemeral_id = %path.ephemeral_id))]
pub async fn recreate_environment(
    State(state): State<AppState>,
    scope: TenantScope,
    ApiPath(path): ApiPath<EnvironmentPath>,
    ApiQuery(query): ApiQuery<WaitQuery>,
) -> AppResult<Response> {
    let ephemeral_id = path.ephemeral_id()?;
    let timeout = query.timeout(&state)?;
    let record =
        environments::request_recreate(&state, &scope.tenant, &ephemeral_id, &scope.caller.actor())
            .await?;
    let record = environments::wait_until_settled(&state, record, timeout).await?;
    let body = view(&state, &record)?;
    Ok(match record.status {
        EnvironmentStatus::Ready => (StatusCode::OK, Json(body)).into_response(),
        // A code naming the request's choice LaunchDarkly did not know, if one.
        EnvironmentStatus::Failed => failed(
            &record,
            body,
            StatusCode::UNPROCESSABLE_ENTITY,
            record
                .failure_code
                .map_or("environment_failed", |code| code.as_str()),
        ),
        _ => (StatusCode::ACCEPTED, Json(body)).into_response(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
    #[serde(default)]
    include_deleted: bool,
}

/// Newest first; SDK keys are not in lists (read one environment for them).
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant))]
pub async fn list_environments(
    State(state): State<AppState>,
    scope: TenantScope,
    ApiQuery(params): ApiQuery<ListParams>,
) -> AppResult<Response> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(AppError::invalid("limit must be between 1 and 200"));
    }
    let page = environments::list_environments(
        &state,
        &scope.tenant,
        &ListQuery {
            limit,
            cursor: params.cursor,
            include_deleted: params.include_deleted,
        },
    )
    .await?;
    let items: Vec<EnvironmentView> = page
        .items
        .iter()
        .map(|r| EnvironmentView::new(&state, r, None))
        .collect();
    Ok(Json(json!({"items": items, "next_cursor": page.next_cursor})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityParams {
    limit: Option<i64>,
    cursor: Option<i64>,
}

/// The tenant's audit log, newest first.
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant))]
pub async fn list_activity(
    State(state): State<AppState>,
    scope: TenantScope,
    ApiQuery(params): ApiQuery<ActivityParams>,
) -> AppResult<Response> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(AppError::invalid("limit must be between 1 and 200"));
    }
    let rows = audit::list(
        &state.db,
        &scope.tenant,
        params.cursor,
        pagination::fetch_size(limit),
    )
    .await?;
    let (items, next_cursor) = pagination::page(rows, limit, |e| e.id);
    Ok(Json(json!({"items": items, "next_cursor": next_cursor})).into_response())
}
