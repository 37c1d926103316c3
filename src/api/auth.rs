//! Bearer API keys for `/api/v1`. A key is the vendor backend's (every
//! tenant) or scoped to one tenant.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::AppError;
use crate::ids::TenantId;
use crate::store::api_keys;

/// The authenticated caller of an API route.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub key_name: String,
    pub tenant_scope: Option<TenantId>,
}

impl ApiCaller {
    /// The actor recorded in the audit log.
    pub fn actor(&self) -> String {
        format!("api:{}", self.key_name)
    }
}

pub async fn require_api_key(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let Some(presented) = presented else {
        return AppError::Unauthorized(
            "missing or malformed Authorization header; expected: Bearer <api key>",
        )
        .into_response();
    };
    if !api_keys::looks_like_key(presented) {
        return AppError::Unauthorized("malformed API key").into_response();
    }
    match api_keys::authenticate(&state.db, presented, state.now()).await {
        Ok(Some(key)) => {
            req.extensions_mut().insert(ApiCaller {
                key_name: key.name,
                tenant_scope: key.tenant_id.0,
            });
            next.run(req).await
        }
        Ok(None) => AppError::Unauthorized("unknown or revoked API key").into_response(),
        Err(err) => AppError::from(err).into_response(),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ApiCaller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ApiCaller>()
            .cloned()
            .ok_or(AppError::Unauthorized("missing API key"))
    }
}

/// The `{tenant_id}` of the route, parsed and checked against the caller's
/// key scope. Every tenant route takes this, so none can forget the check.
#[derive(Debug, Clone)]
pub struct TenantScope {
    pub tenant: TenantId,
    pub caller: ApiCaller,
}

impl<S: Send + Sync> FromRequestParts<S> for TenantScope {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = ApiCaller::from_request_parts(parts, state).await?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| AppError::invalid(format!("invalid path: {}", e.body_text())))?;
        let raw = params
            .get("tenant_id")
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("route has no tenant_id")))?;
        let tenant = TenantId::parse(raw)?;
        if caller
            .tenant_scope
            .as_ref()
            .is_some_and(|scope| *scope != tenant)
        {
            return Err(AppError::Forbidden(
                "this API key is scoped to another tenant".to_owned(),
            ));
        }
        tracing::Span::current().record("tenant_id", tenant.as_str());
        Ok(Self { tenant, caller })
    }
}

/// The credential of a `Bearer` Authorization header; the scheme name is
/// case-insensitive (RFC 9110, 11.1).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}
