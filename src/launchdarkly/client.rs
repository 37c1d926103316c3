//! [`LdClient`]: configuration, the request pipeline every operation goes through
//! (rate-limit gate, auth, logging, error mapping) and the 429 retry helper.
//! The operations themselves live in `operations.rs`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use url::Url;

use super::auth::RequestAuth;
use super::error::{LdError, clip};
use super::http::{build_client, decode_json, user_agent};
use super::models::ErrorBody;
use super::ratelimit::RateLimitGate;

/// Give up waiting out 429s after this many rounds even if the deadline allows more;
/// guards against a clock that does not move.
const MAX_RATE_LIMIT_RETRIES: u32 = 20;

/// How to reach LaunchDarkly.
#[derive(Debug, Clone)]
pub struct LdClientConfig {
    /// `https://app.launchdarkly.com`, another instance's host, or the simulator.
    /// An origin: paths are appended, and LaunchDarkly's pagination links are
    /// origin-relative.
    pub base_url: Url,
    /// The vendor's product key, for the User-Agent `launchdarkly-<vendor>-int/<v>`.
    pub vendor: String,
    /// Bound on a whole request, body included.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Items asked for per page when listing (LaunchDarkly's default is 20).
    pub page_size: u32,
}

impl LdClientConfig {
    /// A configuration with production-minded timeouts (30 s total, 10 s connect).
    pub fn new(base_url: Url, vendor: impl Into<String>) -> Self {
        Self {
            base_url,
            vendor: vendor.into(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            page_size: 20,
        }
    }

    /// The User-Agent every request carries.
    pub fn user_agent(&self) -> String {
        user_agent(&self.vendor)
    }
}

/// A LaunchDarkly REST API v2 client. Cheap to clone; clones share connections and
/// rate-limit state.
#[derive(Debug, Clone)]
pub struct LdClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base_url: Url,
    page_size: u32,
    gate: RateLimitGate,
}

/// A 2xx-or-not answer with its body read.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
    /// Set on a 429: when LaunchDarkly lets us try again.
    pub reset_at: Option<DateTime<Utc>>,
}

impl LdClient {
    /// A client with its own in-memory rate-limit state.
    pub fn new(config: LdClientConfig) -> Result<Self, LdError> {
        Self::with_gate(config, RateLimitGate::in_memory())
    }

    /// A client sharing `gate` (and so rate-limit state) with others.
    pub fn with_gate(config: LdClientConfig, gate: RateLimitGate) -> Result<Self, LdError> {
        if config.base_url.cannot_be_a_base() {
            return Err(LdError::InvalidRequest {
                message: "the LaunchDarkly base URL must be an http(s) URL".to_owned(),
            });
        }
        let http = build_client(
            &config.user_agent(),
            config.request_timeout,
            config.connect_timeout,
        )
        .map_err(LdError::from_reqwest)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base_url: config.base_url,
                page_size: config.page_size.max(1),
                gate,
            }),
        })
    }

    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    pub fn gate(&self) -> &RateLimitGate {
        &self.inner.gate
    }

    pub(crate) fn page_size(&self) -> u32 {
        self.inner.page_size
    }

    /// `{base}/{segments...}`, each segment percent-encoded, so a key can never
    /// change the path's shape.
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Resolves a `_links` href from LaunchDarkly. Refuses any other origin: the
    /// request carries the customer's token.
    pub(crate) fn resolve_link(&self, href: &str) -> Result<Url, LdError> {
        let url = self
            .inner
            .base_url
            .join(href)
            .map_err(|_| LdError::Decode {
                message: "unreadable pagination link".to_owned(),
            })?;
        if url.origin() != self.inner.base_url.origin() {
            return Err(LdError::Decode {
                message: "pagination link points outside LaunchDarkly".to_owned(),
            });
        }
        Ok(url)
    }

    /// Sends one request through the rate-limit gate and reads the answer.
    ///
    /// `route` is the method and path template (the rate-limit bucket). If the
    /// account's or route's budget is spent (or a 429 was seen), nothing is sent and
    /// the result is `RateLimited` with the known reset time. Any status comes back as an
    /// [`Answer`]; transport failures and timeouts are errors.
    pub(crate) async fn send<B: Serialize + ?Sized>(
        &self,
        auth: &RequestAuth,
        route: &'static str,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<Answer, LdError> {
        self.send_as(auth, route, method, url, body, None).await
    }

    /// [`send`](Self::send) with a JSON body under another `Content-Type` (a
    /// semantic patch's `application/json; domain-model=launchdarkly.semanticpatch`).
    pub(crate) async fn send_as<B: Serialize + ?Sized>(
        &self,
        auth: &RequestAuth,
        route: &'static str,
        method: Method,
        url: Url,
        body: Option<&B>,
        content_type: Option<&'static str>,
    ) -> Result<Answer, LdError> {
        let gate = &self.inner.gate;
        let account = auth.rate_limit_key();
        let authorization =
            auth.credential
                .header_value()
                .map_err(|_| LdError::InvalidRequest {
                    message: "the credential contains characters not allowed in a header"
                        .to_owned(),
                })?;
        let permit = match gate.acquire(&account, route).await {
            Ok(permit) => permit,
            Err(reset_at) => {
                tracing::debug!(%route, %reset_at, "held back: LaunchDarkly rate limit not reset yet");
                return Err(LdError::RateLimited { reset_at });
            }
        };
        let path = url.path().to_owned();
        let mut request = self
            .inner
            .http
            .request(method.clone(), url)
            .header(AUTHORIZATION, authorization);
        if let Some(body) = body {
            // `json` keeps a Content-Type already set.
            if let Some(content_type) = content_type {
                request = request.header(CONTENT_TYPE, content_type);
            }
            request = request.json(body);
        }

        let started = Instant::now();
        let result = async {
            let response = request.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body.to_vec()))
        }
        .await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);

        let (status, headers, body) = match result {
            Ok(answer) => answer,
            Err(err) => {
                let err = LdError::from_reqwest(err);
                tracing::warn!(%method, %path, latency_ms, error = %err, "LaunchDarkly request failed");
                gate.abandon(permit).await;
                return Err(err);
            }
        };
        tracing::info!(%method, %path, status = status.as_u16(), latency_ms, "LaunchDarkly request");
        let reset_at = gate.observe(permit, status, &headers).await;
        Ok(Answer {
            status,
            body,
            reset_at,
        })
    }

    /// Runs `op`, waiting out rate limits until `deadline` (on the gate's clock).
    ///
    /// For interactive paths (the settings page) that would rather wait a few seconds
    /// than fail. Only `RateLimited` is retried: a 429 or a held-back request was
    /// never processed, so retrying is safe even for a create. Each wait ends at the
    /// reset time plus a little jitter; if that lies past the deadline the error is
    /// returned at once instead of sleeping in vain.
    pub async fn with_retry<T, F, Fut>(
        &self,
        deadline: DateTime<Utc>,
        mut op: F,
    ) -> Result<T, LdError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, LdError>>,
    {
        let gate = &self.inner.gate;
        let mut retries = 0;
        loop {
            match op().await {
                Err(LdError::RateLimited { reset_at })
                    if reset_at <= deadline && retries < MAX_RATE_LIMIT_RETRIES =>
                {
                    // Jitter must not push us past the caller's deadline.
                    let wait = (gate.duration_until(reset_at) + RateLimitGate::jitter())
                        .min(gate.duration_until(deadline));
                    tracing::info!(%reset_at, wait_ms = wait.as_millis(), "waiting out LaunchDarkly rate limit");
                    tokio::time::sleep(wait).await;
                    retries += 1;
                }
                other => return other,
            }
        }
    }
}

impl Answer {
    /// Decodes a successful answer, or maps any other status to its error.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, LdError> {
        if !self.status.is_success() {
            return Err(self.into_error());
        }
        decode_json(&self.body).map_err(|message| LdError::Decode { message })
    }

    /// The error for a non-success answer.
    pub(crate) fn into_error(self) -> LdError {
        let message = decode_json::<ErrorBody>(&self.body)
            .ok()
            .and_then(|b| b.message.or(b.code))
            .map(|m| clip(&m))
            .unwrap_or_default();
        match self.status {
            StatusCode::BAD_REQUEST => LdError::InvalidRequest { message },
            StatusCode::UNAUTHORIZED => LdError::Unauthorized,
            StatusCode::FORBIDDEN => LdError::Forbidden { message },
            StatusCode::NOT_FOUND => LdError::NotFound,
            StatusCode::CONFLICT => LdError::Conflict { message },
            StatusCode::TOO_MANY_REQUESTS => LdError::RateLimited {
                // `send` sets it on every 429 (see there).
                reset_at: self.reset_at.unwrap_or(DateTime::<Utc>::MIN_UTC),
            },
            status if status.is_server_error() => LdError::Upstream {
                status: status.as_u16(),
            },
            status => LdError::UnexpectedStatus {
                status: status.as_u16(),
                message,
            },
        }
    }
}
