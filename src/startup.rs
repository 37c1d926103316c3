//! Building and running the application. `main` and the tests start the
//! server by this same path.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::{AppState, Parts, RefreshLocks, Runtime};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::launchdarkly::{LdClient, LdClientConfig, LdOAuth, OAuthClientConfig, RateLimitGate};
use crate::metrics::Metrics;
use crate::ratelimit_store::PgRateLimitStore;
use crate::router::router;
use crate::{db, jobs};

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
        let state = AppState::from(Parts {
            db: pool,
            config: Arc::new(config),
            clock,
            metrics: Arc::new(Metrics::default()),
            ld,
            oauth,
            refresh_locks: Arc::new(RefreshLocks::default()),
            lifecycle: Arc::new(Runtime::new()),
        });
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
    jobs::spawn(state, shutdown, tasks);
    let store = tower_sessions_sqlx_store::PostgresStore::new(state.db.pool().clone());
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
