//! A LaunchDarkly simulator: the REST API subset ld-eaas uses (with LaunchDarkly's
//! shapes, error bodies, pagination and rate-limit headers), feature flags (read,
//! semantic and JSON patches, cloned with their environment), an HTML page per
//! environment, OAuth with a consent page and PKCE, API access tokens, and
//! injected faults. Vendors develop against
//! it, the tests use it, and `ld-eaas demo` runs on it.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use ld_eaas::simulator::{ApiTokenGrant, Simulator, SimulatorConfig};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let config = SimulatorConfig {
//!     api_tokens: vec![ApiTokenGrant::new("api-token", "writer")],
//!     ..SimulatorConfig::default()
//! };
//! let sim = Simulator::start(config, listener).await?;
//! println!("LaunchDarkly at {}", sim.base_url());
//! # Ok(()) }
//! ```

mod api;
mod auth;
pub mod cli;
mod config;
mod control;
mod error;
mod faults;
mod flags;
mod listing;
mod model;
mod oauth;
mod ratelimit;
mod record;
mod render;
mod seed;
mod server;
mod state;
mod validate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::task::JoinHandle;

pub use api::MAX_CLONE_SEGMENTS;
pub use config::{ApiTokenGrant, OAuthClientRegistration, RateLimitConfig, Role, SimulatorConfig};
pub use faults::Faults;
pub use flags::eval::{EvalReason, Evaluation, SimContext, evaluate};
pub use flags::{ENVIRONMENT_INSTRUCTIONS, FLAG_INSTRUCTIONS, SEMANTIC_PATCH_PARAMETER};
pub use model::{
    SimClause, SimEnvironment, SimFlag, SimFlagConfig, SimFlagState, SimProject, SimRollout,
    SimRule, SimServe, SimTarget, SimVariation,
};
pub use record::{RecordedRequest, fingerprint};
pub use seed::{DEMO_ACCOUNT, DEMO_PROJECT};

use state::{Shared, SharedState};

/// How long [`Simulator::shutdown`] waits for open requests before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running simulator. Serves until [`shutdown`](Self::shutdown) or drop.
pub struct Simulator {
    shared: SharedState,
    base_url: String,
    local_addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

fn check_config(config: &SimulatorConfig) -> anyhow::Result<()> {
    for client in &config.oauth_clients {
        if client.client_id.is_empty() || client.client_secret.is_empty() {
            bail!("an OAuth client needs a client id and a secret");
        }
        let uri = url::Url::parse(&client.redirect_uri).with_context(|| {
            format!(
                "OAuth client {}: the redirect URI is not a URL",
                client.client_id
            )
        })?;
        if uri.query().is_some() || uri.fragment().is_some() {
            bail!(
                "OAuth client {}: the redirect URI must have no query string or fragment",
                client.client_id
            );
        }
    }
    Ok(())
}

impl Simulator {
    /// Starts serving on `listener`.
    pub async fn start(
        config: SimulatorConfig,
        listener: tokio::net::TcpListener,
    ) -> anyhow::Result<Simulator> {
        check_config(&config)?;
        let local_addr = listener
            .local_addr()
            .context("the listener has no local address")?;
        let base_url = config
            .public_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("http://{local_addr}"));
        let shared = Arc::new(Shared::new(&config, base_url.clone()));
        {
            let mut state = shared.lock();
            if config.seed {
                let account = seed::demo_account(config.seed_extra_projects);
                state.accounts.insert(account.id.clone(), account);
            }
            // Tokens name their accounts; make sure those exist.
            for grant in &config.api_tokens {
                state.ensure_account(&grant.account_id);
            }
            if let Some(account) = &config.oauth_account {
                state.ensure_account(account);
            }
        }
        let app = server::router(shared.clone());
        let shutdown = shared.shutdown.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
            if let Err(err) = served {
                tracing::error!(error = %err, "the LaunchDarkly simulator stopped");
            }
        });
        tracing::info!(base_url = %base_url, "LaunchDarkly simulator listening");
        Ok(Simulator {
            shared,
            base_url,
            local_addr,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT` (or the configured public URL): the API is at
    /// `{base}/api/v2/...`, OAuth at `{base}/trust/oauth/...`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The address the simulator listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops serving: held requests are let go, open ones get a few seconds.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        // Graceful: the server task ends on its own once open requests finish.
        self.shared.shutdown.cancel();
    }
}
