//! OAuth 2.0 with LaunchDarkly: authorization code with PKCE (S256), refresh, revoke.
//!
//! Endpoints (not in the OpenAPI document): `{base}/trust/oauth/authorize`,
//! `{base}/trust/oauth/token`, `{base}/trust/oauth/revoke`; client credentials go in
//! the form body. Token lifetimes and refresh-token rotation are not published, so
//! [`TokenSet`] carries whatever came back and callers store a new refresh token
//! whenever one arrives.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use oauth2::basic::{BasicClient, BasicErrorResponse, BasicErrorResponseType, BasicTokenResponse};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    HttpRequest, HttpResponse, PkceCodeChallenge, RedirectUrl, RefreshToken, RequestTokenError,
    Scope, TokenResponse, TokenUrl,
};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

pub use oauth2::{CsrfToken, PkceCodeVerifier};

use super::client::LdClientConfig;
use super::error::{OAuthError, clip};
use super::http::{build_client, decode_json};
use super::ratelimit::{Clock, SystemClock, reset_after_429};

type ConfiguredClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// This deployment's OAuth client, as registered with LaunchDarkly.
#[derive(Debug, Clone)]
pub struct OAuthClientConfig {
    pub client_id: String,
    pub client_secret: SecretString,
    /// `<public url>/oauth/callback`; LaunchDarkly allows one, without a query string.
    pub redirect_uri: Url,
}

/// Tokens from a code exchange or refresh. `Debug` redacts the tokens.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: SecretString,
    /// Present when LaunchDarkly issued one; when it is, store it (it may rotate).
    pub refresh_token: Option<SecretString>,
    /// From `expires_in`, measured when the answer arrived.
    pub expires_at: Option<DateTime<Utc>>,
    /// Granted scopes if LaunchDarkly reported them (otherwise those requested).
    pub scopes: Vec<String>,
}

/// Which kind of token [`LdOAuth::revoke`] is given (RFC 7009 `token_type_hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenHint {
    AccessToken,
    RefreshToken,
}

/// The start of an authorization: send the browser to `url`; keep `state` (to check
/// the callback) and `pkce_verifier` (for the exchange) in the session.
#[derive(Debug)]
pub struct AuthorizeRequest {
    pub url: Url,
    pub state: CsrfToken,
    pub pkce_verifier: PkceCodeVerifier,
}

/// LaunchDarkly OAuth client. Cheap to clone.
#[derive(Clone)]
pub struct LdOAuth {
    inner: Arc<Inner>,
}

struct Inner {
    client: ConfiguredClient,
    http: reqwest::Client,
    revoke_url: Url,
    client_id: String,
    client_secret: SecretString,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for LdOAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdOAuth")
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

impl LdOAuth {
    /// Uses the base URL, User-Agent and timeouts of `http` (one LaunchDarkly host
    /// serves both the API and OAuth).
    pub fn new(http: &LdClientConfig, config: OAuthClientConfig) -> Result<Self, OAuthError> {
        Self::with_clock(http, config, Arc::new(SystemClock))
    }

    /// Like [`new`](Self::new), with the clock `expires_at` is computed from.
    pub fn with_clock(
        http: &LdClientConfig,
        config: OAuthClientConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, OAuthError> {
        if config.redirect_uri.query().is_some() {
            return Err(OAuthError::Config {
                message: "the OAuth redirect URI must not have a query string".to_owned(),
            });
        }
        let endpoint = |name: &str| -> Result<Url, OAuthError> {
            let mut url = http.base_url.clone();
            url.set_query(None);
            url.path_segments_mut()
                .map_err(|()| OAuthError::Config {
                    message: "the LaunchDarkly base URL must be an http(s) URL".to_owned(),
                })?
                .pop_if_empty()
                .extend(["trust", "oauth", name]);
            Ok(url)
        };
        let client = BasicClient::new(ClientId::new(config.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                config.client_secret.expose_secret().to_owned(),
            ))
            .set_auth_uri(AuthUrl::from_url(endpoint("authorize")?))
            .set_token_uri(TokenUrl::from_url(endpoint("token")?))
            .set_redirect_uri(RedirectUrl::from_url(config.redirect_uri))
            .set_auth_type(AuthType::RequestBody);
        let http_client = build_client(
            &http.user_agent(),
            http.request_timeout,
            http.connect_timeout,
        )
        .map_err(OAuthError::from_reqwest)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                http: http_client,
                revoke_url: endpoint("revoke")?,
                client_id: config.client_id,
                client_secret: config.client_secret,
                clock,
            }),
        })
    }

    /// The consent URL for `scope` (ld-eaas asks for `writer`), with a fresh random
    /// `state` and a PKCE S256 challenge.
    pub fn authorize_url(&self, scope: &str) -> AuthorizeRequest {
        let (challenge, pkce_verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = self
            .inner
            .client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new(scope.to_owned()))
            .set_pkce_challenge(challenge)
            .url();
        AuthorizeRequest {
            url,
            state,
            pkce_verifier,
        }
    }

    /// Trades the callback's `code` (plus the PKCE verifier) for tokens.
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: PkceCodeVerifier,
    ) -> Result<TokenSet, OAuthError> {
        let http = OAuthHttp {
            http: &self.inner.http,
            clock: self.inner.clock.as_ref(),
        };
        let answer = self
            .inner
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(pkce_verifier)
            .request_async(&http)
            .await;
        self.token_set(answer)
    }

    /// A new access token from a refresh token. `InvalidGrant` means the customer
    /// must connect again.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, OAuthError> {
        let http = OAuthHttp {
            http: &self.inner.http,
            clock: self.inner.clock.as_ref(),
        };
        let refresh_token = RefreshToken::new(refresh_token.expose_secret().to_owned());
        let answer = self
            .inner
            .client
            .exchange_refresh_token(&refresh_token)
            .request_async(&http)
            .await;
        self.token_set(answer)
    }

    /// Revokes a token (RFC 7009), for disconnects. Best effort: callers forget the
    /// token whatever the answer.
    ///
    /// Sent by hand rather than through `oauth2`, which refuses revocation URLs that
    /// are not https (the simulator and the demo run on loopback http).
    pub async fn revoke(&self, token: &SecretString, hint: TokenHint) -> Result<(), OAuthError> {
        let hint = match hint {
            TokenHint::AccessToken => "access_token",
            TokenHint::RefreshToken => "refresh_token",
        };
        let form = [
            ("token", token.expose_secret()),
            ("token_type_hint", hint),
            ("client_id", self.inner.client_id.as_str()),
            ("client_secret", self.inner.client_secret.expose_secret()),
        ];
        let started = std::time::Instant::now();
        let response = self
            .inner
            .http
            .post(self.inner.revoke_url.clone())
            .form(&form)
            .send()
            .await
            .map_err(OAuthError::from_reqwest)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(OAuthError::from_reqwest)?;
        log_answer("POST", self.inner.revoke_url.path(), status, started);
        if status.is_success() {
            return Ok(());
        }
        if let Some(err) = status_error(status, &headers, self.inner.clock.as_ref()) {
            return Err(err);
        }
        match decode_json::<BasicErrorResponse>(&body) {
            Ok(answer) => Err(oauth_error(&answer)),
            Err(_) => Err(OAuthError::Rejected {
                code: format!("http_{}", status.as_u16()),
                description: None,
            }),
        }
    }

    fn token_set(
        &self,
        answer: Result<BasicTokenResponse, RequestTokenError<Failure, BasicErrorResponse>>,
    ) -> Result<TokenSet, OAuthError> {
        let answer = answer.map_err(|err| match err {
            RequestTokenError::ServerResponse(answer) => oauth_error(&answer),
            RequestTokenError::Request(Failure(err)) => err,
            // Never the body: a half-readable token answer still holds the token.
            RequestTokenError::Parse(..) => OAuthError::Decode {
                message: "the token answer is not the expected JSON".to_owned(),
            },
            RequestTokenError::Other(message) => OAuthError::Decode {
                message: clip(&message),
            },
        })?;
        let now = self.inner.clock.now();
        Ok(TokenSet {
            access_token: SecretString::from(answer.access_token().secret().as_str()),
            refresh_token: answer
                .refresh_token()
                .map(|token| SecretString::from(token.secret().as_str())),
            expires_at: answer
                .expires_in()
                .and_then(|lifetime| TimeDelta::from_std(lifetime).ok())
                .map(|lifetime| now + lifetime),
            scopes: answer
                .scopes()
                .map(|scopes| scopes.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default(),
        })
    }
}

/// The HTTP client `oauth2` calls. A named type (not a closure) so the
/// futures it makes are `Send` for every lifetime, which axum handlers need.
struct OAuthHttp<'a> {
    http: &'a reqwest::Client,
    clock: &'a dyn Clock,
}

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthHttp<'_> {
    type Error = Failure;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, Failure>> + Send + 'c>,
    >;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(execute(self.http, self.clock, request))
    }
}

/// Transport-level failure handed through `oauth2` untouched.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct Failure(OAuthError);

/// The HTTP client `oauth2` calls. Throttling and server errors are turned into
/// typed errors here, because `oauth2` itself keeps only the body of a non-200
/// answer and would lose the status and `Retry-After`.
async fn execute(
    http: &reqwest::Client,
    clock: &dyn Clock,
    request: HttpRequest,
) -> Result<HttpResponse, Failure> {
    let path = request.uri().path().to_owned();
    let method = request.method().to_string();
    let request: reqwest::Request = request
        .try_into()
        .map_err(|err| Failure(OAuthError::from_reqwest(err)))?;
    let started = std::time::Instant::now();
    let response = http
        .execute(request)
        .await
        .map_err(|err| Failure(OAuthError::from_reqwest(err)))?;
    let status = response.status();
    log_answer(&method, &path, status, started);
    if let Some(err) = status_error(status, response.headers(), clock) {
        return Err(Failure(err));
    }
    let mut answer = oauth2::http::Response::builder().status(status);
    for (name, value) in response.headers() {
        answer = answer.header(name, value);
    }
    let body = response
        .bytes()
        .await
        .map_err(|err| Failure(OAuthError::from_reqwest(err)))?;
    answer.body(body.to_vec()).map_err(|_| {
        Failure(OAuthError::Decode {
            message: "unreadable OAuth answer".to_owned(),
        })
    })
}

/// 429 and 5xx, which carry no OAuth error code worth reading.
fn status_error(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    clock: &dyn Clock,
) -> Option<OAuthError> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Some(OAuthError::RateLimited {
            reset_at: reset_after_429(headers, clock.now()),
        });
    }
    status.is_server_error().then(|| OAuthError::Upstream {
        status: status.as_u16(),
    })
}

fn oauth_error(answer: &BasicErrorResponse) -> OAuthError {
    match answer.error() {
        BasicErrorResponseType::InvalidGrant => OAuthError::InvalidGrant,
        code @ (BasicErrorResponseType::InvalidClient
        | BasicErrorResponseType::UnauthorizedClient) => OAuthError::InvalidClient {
            code: code.as_ref().to_owned(),
        },
        code => OAuthError::Rejected {
            code: clip(code.as_ref()),
            description: answer.error_description().map(|d| clip(d)),
        },
    }
}

fn log_answer(method: &str, path: &str, status: StatusCode, started: std::time::Instant) {
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(%method, %path, status = status.as_u16(), latency_ms, "LaunchDarkly OAuth request");
}

#[cfg(test)]
mod tests;
