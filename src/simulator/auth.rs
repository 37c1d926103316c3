//! Who is calling: an API access token (raw in `Authorization`) or an OAuth access
//! token (`Bearer`). The gate in front of the API also applies the rate limits and
//! puts LaunchDarkly's rate-limit headers on every answer.

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::config::Role;
use super::error::ApiError;
use super::state::{SharedState, SimState};

/// The authenticated caller, as handlers see it.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub account_id: String,
    pub member_id: String,
    pub kind: CallerKind,
}

#[derive(Debug, Clone)]
pub(crate) enum CallerKind {
    Token {
        token_id: String,
        name: String,
        role: Role,
        service: bool,
        projects: Option<Vec<String>>,
    },
    OAuth {
        client_id: String,
        scope: Role,
    },
}

/// Put on responses so the request log can say which account called.
#[derive(Debug, Clone)]
pub(crate) struct CallerAccount(pub String);

impl Caller {
    pub fn role(&self) -> Role {
        match &self.kind {
            CallerKind::Token { role, .. } => *role,
            CallerKind::OAuth { scope, .. } => *scope,
        }
    }

    /// Refuses a write by a `reader` token or scope.
    pub fn require_writer(&self) -> Result<(), ApiError> {
        if self.role().can_write() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "Forbidden. Access to the requested resource was denied: this token has the reader role",
            ))
        }
    }

    /// Whether a project-restricted token may see `project`.
    pub fn sees_project(&self, project: &str) -> bool {
        match &self.kind {
            CallerKind::Token {
                projects: Some(allowed),
                ..
            } => allowed.iter().any(|p| p == project),
            _ => true,
        }
    }

    pub fn require_project(&self, project: &str) -> Result<(), ApiError> {
        if self.sees_project(project) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "Forbidden. Access to the requested resource was denied",
            ))
        }
    }
}

/// Resolves the `Authorization` header. Strict on purpose: an API token sent as
/// `Bearer` or an OAuth token sent raw is refused, as a client bug to catch early.
pub(crate) fn resolve(state: &SimState, header: Option<&str>) -> Result<Caller, ApiError> {
    let header = header.map(str::trim).filter(|h| !h.is_empty());
    let Some(header) = header else {
        return Err(ApiError::unauthorized());
    };
    let bearer = header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    if let Some(token) = bearer {
        let grant = state
            .oauth
            .access_grant(token)
            .ok_or_else(ApiError::unauthorized)?;
        let member_id = state
            .account(&grant.account_id)
            .map(|a| a.member_id.clone())
            .ok_or_else(ApiError::unauthorized)?;
        return Ok(Caller {
            account_id: grant.account_id.clone(),
            member_id,
            kind: CallerKind::OAuth {
                client_id: grant.client_id.clone(),
                scope: grant.scope,
            },
        });
    }
    let grant = state
        .api_tokens
        .get(header)
        .ok_or_else(ApiError::unauthorized)?;
    let account = state
        .account(&grant.account_id)
        .ok_or_else(ApiError::unauthorized)?;
    Ok(Caller {
        account_id: grant.account_id.clone(),
        member_id: account.member_id.clone(),
        kind: CallerKind::Token {
            token_id: super::record::fingerprint(&grant.token),
            name: grant.name.clone(),
            role: grant.role,
            service: grant.service_token,
            projects: grant.projects.clone(),
        },
    })
}

/// Authenticates, counts the request against the account's limits, and answers
/// 401 / 429 or passes on to the handler; every authenticated answer carries the
/// `X-Ratelimit-*` headers.
pub(crate) async fn gate(
    State(shared): State<SharedState>,
    mut req: Request,
    next: Next,
) -> Response {
    let route = format!(
        "{} {}",
        req.method(),
        req.extensions()
            .get::<MatchedPath>()
            .map_or(req.uri().path(), MatchedPath::as_str)
    );
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let verdict = {
        let mut state = shared.lock();
        resolve(&state, header.as_deref()).map(|caller| {
            let standing = state.limiter.check(&caller.account_id, &route);
            (caller, standing)
        })
    };
    let (caller, standing) = match verdict {
        Ok(found) => found,
        Err(err) => return err.into_response(),
    };
    let account = CallerAccount(caller.account_id.clone());
    let mut response = if standing.limited {
        ApiError::rate_limited().into_response()
    } else {
        req.extensions_mut().insert(caller);
        next.run(req).await
    };
    standing.write_headers(response.headers_mut());
    response.extensions_mut().insert(account);
    response
}
