//! Building and running the application. `main` and the tests start the
//! server by this same path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::connections::RefreshLocks;
use crate::launchdarkly::{LdClient, LdClientConfig, LdOAuth, OAuthClientConfig, RateLimitGate};
use crate::lifecycle::ratelimit_store::PgRateLimitStore;
use crate::metrics::Metrics;
use crate::{api, db, lifecycle, web};

/// Largest request body we read. The API's bodies are small JSON documents.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Everything a handler or worker may need. Handlers take what they use.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub clock: SharedClock,
    pub metrics: Arc<Metrics>,
    /// LaunchDarkly's REST API; clones share rate-limit state.
    pub ld: LdClient,
    /// LaunchDarkly OAuth, when this deployment has an OAuth client.
    pub oauth: Option<LdOAuth>,
    pub refresh_locks: Arc<RefreshLocks>,
    /// Lifecycle wake-ups and this replica's worker id.
    pub lifecycle: Arc<lifecycle::Runtime>,
}

impl AppState {
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Application {
    /// Connects to (and creates, and migrates) the database and binds the
    /// listener; `config.listen` may use port 0.
    pub async fn build(config: Config, clock: SharedClock) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("LD_EAAS_LISTEN: could not bind {}", config.listen))?;
        Self::build_with_listener(config, clock, listener).await
    }

    /// Like [`Application::build`] with a listener bound by the caller, so
    /// tests (and `demo`) know the port before the public URL is set.
    pub async fn build_with_listener(
        config: Config,
        clock: SharedClock,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let pool = db::connect(&config.database_url, config.database_pool_size).await?;
        db::migrate(&pool).await?;
        let mut ld_config =
            LdClientConfig::new(config.launchdarkly_url.clone(), config.vendor.clone());
        ld_config.request_timeout = config.lifecycle.launchdarkly_timeout;
        // Rate-limit state lives in Postgres so every replica honours a 429
        // any of them saw; it is judged by the app's (injectable) clock.
        let gate_clock = clock.clone();
        let gate = RateLimitGate::new(
            Arc::new(PgRateLimitStore::new(pool.clone())),
            Arc::new(move || gate_clock.now()),
        );
        let ld =
            LdClient::with_gate(ld_config.clone(), gate).context("LD_EAAS_LAUNCHDARKLY_URL")?;
        let oauth = match &config.oauth {
            Some(client) => {
                let oauth_clock = clock.clone();
                Some(
                    LdOAuth::with_clock(
                        &ld_config,
                        OAuthClientConfig {
                            client_id: client.client_id.clone(),
                            client_secret: client.client_secret.clone(),
                            redirect_uri: config.oauth_redirect_uri(),
                        },
                        Arc::new(move || oauth_clock.now()),
                    )
                    .context("LD_EAAS_OAUTH_CLIENT_ID")?,
                )
            }
            None => None,
        };
        let state = AppState {
            db: pool,
            config: Arc::new(config),
            clock,
            metrics: Arc::new(Metrics::default()),
            ld,
            oauth,
            refresh_locks: Arc::new(RefreshLocks::default()),
            lifecycle: Arc::new(lifecycle::Runtime::new()),
        };
        let router = router(state.clone());
        Ok(Self {
            listener,
            router,
            state,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.listen)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Cancel it to stop the server and its background tasks.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves and runs the background tasks until the shutdown token fires.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            router,
            state,
            shutdown,
            tasks,
        } = self;
        spawn_background(&state, &shutdown, &tasks);
        tracing::info!(address = %listener.local_addr()?, public_url = %state.config.public_url, "ld-eaas listening");
        let stop = shutdown.clone();
        crate::server::serve(
            listener,
            router,
            state.config.server,
            stop.cancelled_owned(),
        )
        .await
        .context("serving HTTP")?;
        shutdown.cancel();
        tasks.close();
        // Workers finish the call they are in; a job cut short is retried
        // by another replica when its lease runs out.
        let _ = tokio::time::timeout(Duration::from_secs(10), tasks.wait()).await;
        Ok(())
    }
}

fn spawn_background(state: &AppState, shutdown: &CancellationToken, tasks: &TaskTracker) {
    lifecycle::spawn(state, shutdown, tasks);
    let store = tower_sessions_sqlx_store::PostgresStore::new(state.db.clone());
    let stop = shutdown.clone();
    tasks.spawn(async move {
        use tower_sessions::ExpiredDeletion;
        tokio::select! {
            result = store.continuously_delete_expired(Duration::from_secs(300)) => {
                if let Err(err) = result {
                    tracing::error!(error = %err, "expired-session cleanup stopped");
                }
            }
            () = stop.cancelled() => {}
        }
    });
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(api::openapi_document))
        .nest("/api/v1", api::router(state.clone()))
        .merge(web::router(state.clone()))
        .layer(middleware::from_fn_with_state(state.clone(), track_request))
        .layer(middleware::from_fn_with_state(
            Arc::new(content_security_policy(&state.config)),
            security_headers,
        ))
        // Extractors refuse larger bodies (413, in the JSON envelope on the API).
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    // The raw URI is never logged: connect links and OAuth
                    // callbacks carry secrets in it. The route pattern is.
                    let route = req
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or("unmatched", MatchedPath::as_str)
                        .to_owned();
                    let request_id = req
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or("-")
                        .to_owned();
                    tracing::info_span!("request", method = %req.method(), route, request_id, tenant_id = tracing::field::Empty)
                })
                .on_request(())
                .on_response(|res: &Response, latency: Duration, _span: &tracing::Span| {
                    tracing::info!(status = res.status().as_u16(), latency_ms = latency.as_millis() as u64, "request done");
                }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .layer(middleware::from_fn(api::envelope::api_error_envelope))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    match db::migrations_current(&state.db).await {
        Ok(true) => (StatusCode::OK, "ready").into_response(),
        Ok(false) => (StatusCode::SERVICE_UNAVAILABLE, "migrations pending").into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// Request counts and latencies by route pattern and status.
async fn track_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [
        ("method", method.as_str()),
        ("route", route.as_str()),
        ("status", status.as_str()),
    ];
    state.metrics.inc(
        "ld_eaas_http_requests_total",
        "HTTP requests by route and status",
        &labels,
    );
    state.metrics.observe(
        "ld_eaas_http_request_duration_seconds",
        "HTTP request latency by route",
        &[("route", route.as_str())],
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Only our own origin, except that a form may lead to LaunchDarkly's OAuth
/// consent page (browsers apply `form-action` to the redirect after a POST).
fn content_security_policy(config: &Config) -> HeaderValue {
    let launchdarkly = config.launchdarkly_url.origin().ascii_serialization();
    let policy = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; \
         base-uri 'none'; form-action 'self' {launchdarkly}; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'self'"))
}

/// Security headers on every answer; a handler may set its own CSP first.
async fn security_headers(
    State(csp): State<Arc<HeaderValue>>,
    req: Request,
    next: Next,
) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, (*csp).clone());
    }
    let defaults: [(HeaderName, &str); 5] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=()",
        ),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
