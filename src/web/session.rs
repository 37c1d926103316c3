//! A typed wrapper over the browser session so handlers never juggle string
//! keys: which tenant the browser is bound to, its CSRF token, flash
//! messages and the OAuth round trip in flight.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tower_sessions::Session;

use crate::error::AppError;
use crate::ids::TenantId;

const TENANT: &str = "tenant_id";
/// The bound tenant's creation time (micros): a tenant deleted and registered
/// again under the same id is another customer's, and old sessions must not
/// reach it.
const TENANT_BORN: &str = "tenant_created_at";
const CSRF: &str = "csrf_token";
const FLASH: &str = "flash";
const OAUTH: &str = "oauth_pending";
/// Where the customer goes back to in the vendor's app (from the link).
const RETURN_URL: &str = "return_url";
/// A connect link for another tenant, waiting for the person to confirm.
const PENDING_SWITCH: &str = "pending_switch";
/// The API-token form was refused: show it open again.
const TOKEN_RETRY: &str = "api_token_retry";

/// A one-shot message shown on the next page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Flash {
    pub kind: FlashKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FlashKind {
    Success,
    Error,
    Info,
}

impl FlashKind {
    pub fn css(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
            Self::Info => "info",
        }
    }
}

/// The OAuth authorization in flight: the one-time `state` and the PKCE
/// verifier, kept server-side in the session.
#[derive(Clone, Serialize, Deserialize)]
pub struct OAuthPending {
    pub state: String,
    pub pkce_verifier: String,
}

/// A connect link for another tenant, opened in a browser bound to a
/// tenant: nothing changes until the person confirms (a POST with the CSRF
/// token). The link itself is used up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingSwitch {
    pub tenant_id: String,
    /// The tenant's creation time (micros), as for a bound tenant.
    pub tenant_created_at: i64,
    pub return_url: Option<String>,
    /// When the link was opened (unix seconds): the offer expires.
    pub opened_at: i64,
}

pub struct CustomerSession {
    session: Session,
}

impl<S: Send + Sync> FromRequestParts<S> for CustomerSession {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, msg)| {
                AppError::Internal(anyhow::anyhow!("session layer missing: {msg}"))
            })?;
        Ok(Self { session })
    }
}

fn session_error(err: tower_sessions::session::Error) -> AppError {
    AppError::Internal(anyhow::Error::new(err).context("session store"))
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl CustomerSession {
    /// The typed view of a session taken from the request (middleware).
    pub fn wrap(session: Session) -> Self {
        Self { session }
    }

    /// The bound tenant id and the creation time it had when it was bound.
    pub async fn tenant(&self) -> Result<Option<(TenantId, i64)>, AppError> {
        let raw: Option<String> = self.session.get(TENANT).await.map_err(session_error)?;
        let born: Option<i64> = self.session.get(TENANT_BORN).await.map_err(session_error)?;
        Ok(raw.and_then(|t| TenantId::parse(&t).ok()).zip(born))
    }

    /// Binds the browser to a tenant: a new session id (no fixation), and
    /// nothing carried over from before but the link's way back to the
    /// vendor's app.
    pub async fn bind_tenant(
        &self,
        tenant: &TenantId,
        created_at: chrono::DateTime<chrono::Utc>,
        return_url: Option<&str>,
    ) -> Result<(), AppError> {
        self.bind_tenant_micros(tenant, created_at.timestamp_micros(), return_url)
            .await
    }

    async fn bind_tenant_micros(
        &self,
        tenant: &TenantId,
        created_at_micros: i64,
        return_url: Option<&str>,
    ) -> Result<(), AppError> {
        self.session.clear().await;
        self.session.cycle_id().await.map_err(session_error)?;
        self.session
            .insert(TENANT, tenant.as_str())
            .await
            .map_err(session_error)?;
        self.session
            .insert(TENANT_BORN, created_at_micros)
            .await
            .map_err(session_error)?;
        self.session
            .insert(CSRF, random_token())
            .await
            .map_err(session_error)?;
        if let Some(url) = return_url {
            self.session
                .insert(RETURN_URL, url)
                .await
                .map_err(session_error)?;
        }
        Ok(())
    }

    /// Binds the browser to the tenant of a confirmed switch.
    pub async fn bind_switched(
        &self,
        tenant: &TenantId,
        pending: &PendingSwitch,
    ) -> Result<(), AppError> {
        self.bind_tenant_micros(
            tenant,
            pending.tenant_created_at,
            pending.return_url.as_deref(),
        )
        .await
    }

    /// Where the customer goes back to in the vendor's app, if the link said.
    pub async fn return_url(&self) -> Result<Option<String>, AppError> {
        self.session.get(RETURN_URL).await.map_err(session_error)
    }

    pub async fn set_pending_switch(&self, pending: &PendingSwitch) -> Result<(), AppError> {
        self.session
            .insert(PENDING_SWITCH, pending)
            .await
            .map_err(session_error)
    }

    pub async fn pending_switch(&self) -> Result<Option<PendingSwitch>, AppError> {
        self.session
            .get(PENDING_SWITCH)
            .await
            .map_err(session_error)
    }

    /// Takes the pending switch out: an offer is answered once.
    pub async fn take_pending_switch(&self) -> Result<Option<PendingSwitch>, AppError> {
        self.session
            .remove(PENDING_SWITCH)
            .await
            .map_err(session_error)
    }

    /// Marks the API-token form to be shown open on the next settings page.
    pub async fn keep_token_form_open(&self) -> Result<(), AppError> {
        self.session
            .insert(TOKEN_RETRY, true)
            .await
            .map_err(session_error)
    }

    pub async fn take_token_form_open(&self) -> Result<bool, AppError> {
        Ok(self
            .session
            .remove::<bool>(TOKEN_RETRY)
            .await
            .map_err(session_error)?
            .unwrap_or(false))
    }

    /// Renews the session id, keeping its data (after connecting an account).
    pub async fn renew_id(&self) -> Result<(), AppError> {
        self.session.cycle_id().await.map_err(session_error)
    }

    pub async fn csrf_token(&self) -> Result<String, AppError> {
        if let Some(token) = self
            .session
            .get::<String>(CSRF)
            .await
            .map_err(session_error)?
        {
            return Ok(token);
        }
        let token = random_token();
        self.session
            .insert(CSRF, &token)
            .await
            .map_err(session_error)?;
        Ok(token)
    }

    /// Checks a submitted CSRF token in constant time.
    pub async fn verify_csrf(&self, submitted: Option<&str>) -> Result<(), AppError> {
        let expected: Option<String> = self.session.get(CSRF).await.map_err(session_error)?;
        let ok = match (expected, submitted) {
            (Some(expected), Some(submitted)) => {
                Sha256::digest(expected.as_bytes()).as_slice()
                    == Sha256::digest(submitted.as_bytes()).as_slice()
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "This form has expired or did not come from this site. Go back, reload the page and try again."
                    .to_owned(),
            ))
        }
    }

    pub async fn flash(&self, kind: FlashKind, message: impl Into<String>) -> Result<(), AppError> {
        let mut flashes: Vec<Flash> = self
            .session
            .get(FLASH)
            .await
            .map_err(session_error)?
            .unwrap_or_default();
        flashes.push(Flash {
            kind,
            message: message.into(),
        });
        self.session
            .insert(FLASH, flashes)
            .await
            .map_err(session_error)
    }

    pub async fn take_flashes(&self) -> Result<Vec<Flash>, AppError> {
        Ok(self
            .session
            .remove::<Vec<Flash>>(FLASH)
            .await
            .map_err(session_error)?
            .unwrap_or_default())
    }

    pub async fn set_oauth_pending(&self, pending: &OAuthPending) -> Result<(), AppError> {
        self.session
            .insert(OAUTH, pending)
            .await
            .map_err(session_error)
    }

    /// Takes the pending authorization out: a `state` is good for one try.
    pub async fn take_oauth_pending(&self) -> Result<Option<OAuthPending>, AppError> {
        self.session.remove(OAUTH).await.map_err(session_error)
    }

    /// Forgets everything (the browser is no longer bound to a tenant).
    pub async fn end(&self) -> Result<(), AppError> {
        self.session.flush().await.map_err(session_error)
    }
}
