//! A LaunchDarkly simulator: the REST API subset ld-eaas uses (with LaunchDarkly's
//! shapes, error bodies, pagination and rate-limit headers), OAuth with a consent
//! page and PKCE, API access tokens, and injected faults. Vendors develop against
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
mod error;
mod faults;
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
pub use model::{SimEnvironment, SimFlag, SimFlagState, SimProject};
pub use record::{RecordedRequest, fingerprint};
pub use seed::{DEMO_ACCOUNT, DEMO_PROJECT};

use model::SimAccount;
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

    /// Every request so far, oldest first (the newest 10,000).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().log.entries()
    }

    pub fn clear_requests(&self) {
        self.shared.lock().log.clear();
    }

    /// Replaces the injected faults (`Faults::default()` turns them off).
    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().faults.set(faults);
    }

    /// Replaces the rate limits and starts every window afresh.
    pub fn set_rate_limits(&self, limits: RateLimitConfig) {
        self.shared.lock().limiter.set_config(limits);
    }

    /// Forgets every rate-limit count (as if every window just reset).
    pub fn reset_rate_limits(&self) {
        self.shared.lock().limiter.reset();
    }

    /// Adds an empty account (no-op if it exists).
    pub fn add_account(&self, account_id: &str) {
        self.shared.lock().ensure_account(account_id);
    }

    /// Registers an API access token (creating its account if needed).
    pub fn add_api_token(&self, grant: ApiTokenGrant) {
        let mut state = self.shared.lock();
        state.ensure_account(&grant.account_id);
        state.api_tokens.insert(grant.token.clone(), grant);
    }

    /// Registers another OAuth client.
    pub fn add_oauth_client(&self, client: OAuthClientRegistration) {
        let mut state = self.shared.lock();
        state.oauth.clients.insert(client.client_id.clone(), client);
    }

    /// Adds (or replaces) project `key` in `account` (created if needed) with
    /// environments `env_keys` (named after their keys, no flags).
    pub fn add_project(&self, account: &str, key: &str, name: &str, env_keys: &[&str]) {
        let mut project = SimProject::new(key, name);
        project.environments = env_keys
            .iter()
            .map(|k| SimEnvironment::new(k, k, "7F8C8D"))
            .collect();
        let mut state = self.shared.lock();
        let account = state.ensure_account(account);
        account.projects.retain(|p| p.key != key);
        account.projects.push(project);
    }

    /// Adds (or replaces, by key) an environment in an existing project.
    pub fn add_environment(
        &self,
        account: &str,
        project: &str,
        env: SimEnvironment,
    ) -> anyhow::Result<()> {
        self.with_project(account, project, |p| {
            p.environments.retain(|e| e.key != env.key);
            p.environments.push(env);
        })
    }

    /// Sets a flag's state in one environment, defining the flag (boolean) on the
    /// project if it is new.
    pub fn set_flag(
        &self,
        account: &str,
        project: &str,
        env: &str,
        flag: &str,
        state: SimFlagState,
    ) -> anyhow::Result<()> {
        self.with_environment(account, project, env, |p, env_key| {
            if !p.flags.iter().any(|f| f.key == flag) {
                p.flags.push(SimFlag::boolean(flag, flag));
            }
            if let Some(e) = p.environment_mut(env_key) {
                e.flags.insert(flag.to_owned(), state);
            }
        })
    }

    /// Sets how many segments an environment holds (cloning refuses over
    /// [`MAX_CLONE_SEGMENTS`]).
    pub fn set_segment_count(
        &self,
        account: &str,
        project: &str,
        env: &str,
        count: usize,
    ) -> anyhow::Result<()> {
        self.with_environment(account, project, env, |p, env_key| {
            if let Some(e) = p.environment_mut(env_key) {
                e.segment_count = count;
            }
        })
    }

    /// The environments of a project, in creation order (empty if none or missing).
    pub fn environments(&self, account: &str, project: &str) -> Vec<SimEnvironment> {
        self.shared
            .lock()
            .account(account)
            .and_then(|a| a.project(project))
            .map(|p| p.environments.clone())
            .unwrap_or_default()
    }

    /// One environment, if it exists.
    pub fn environment(&self, account: &str, project: &str, env: &str) -> Option<SimEnvironment> {
        self.shared
            .lock()
            .account(account)
            .and_then(|a| a.project(project))
            .and_then(|p| p.environment(env))
            .cloned()
    }

    /// The projects of an account, in creation order.
    pub fn projects(&self, account: &str) -> Vec<SimProject> {
        self.shared
            .lock()
            .account(account)
            .map(|a| a.projects.clone())
            .unwrap_or_default()
    }

    /// Every OAuth access token issued so far now answers 401.
    pub fn expire_access_tokens(&self) {
        self.shared.lock().oauth.expire_access_tokens();
    }

    /// Every refresh token issued so far now answers `invalid_grant`.
    pub fn revoke_refresh_tokens(&self) {
        self.shared.lock().oauth.revoke_refresh_tokens();
    }

    /// How often `/trust/oauth/token` was called with this `grant_type`
    /// (`"authorization_code"`, `"refresh_token"`), failures included.
    pub fn token_endpoint_calls(&self, grant_type: &str) -> usize {
        self.shared
            .lock()
            .oauth
            .token_calls
            .get(grant_type)
            .copied()
            .unwrap_or(0)
    }

    /// An OAuth access token for `account` as if `client_id` had been through the
    /// whole flow with `scope`: for tests that need a bearer token, not the flow.
    pub fn issue_access_token(&self, client_id: &str, account: &str, scope: Role) -> String {
        let ttl = self.shared.settings.access_token_ttl;
        let mut state = self.shared.lock();
        state.ensure_account(account);
        let grant = state.oauth.new_grant_id();
        state
            .oauth
            .issue(grant, client_id, account, scope, ttl, None)
            .access_token
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

    fn with_project(
        &self,
        account: &str,
        project: &str,
        f: impl FnOnce(&mut SimProject),
    ) -> anyhow::Result<()> {
        let mut state = self.shared.lock();
        let p = state
            .account_mut(account)
            .and_then(|a: &mut SimAccount| a.project_mut(project))
            .with_context(|| format!("no project {project:?} in account {account:?}"))?;
        f(p);
        Ok(())
    }

    fn with_environment(
        &self,
        account: &str,
        project: &str,
        env: &str,
        f: impl FnOnce(&mut SimProject, &str),
    ) -> anyhow::Result<()> {
        let mut state = self.shared.lock();
        let p = state
            .account_mut(account)
            .and_then(|a| a.project_mut(project))
            .with_context(|| format!("no project {project:?} in account {account:?}"))?;
        if p.environment(env).is_none() {
            bail!("no environment {env:?} in project {project:?}");
        }
        f(p, env);
        Ok(())
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        // Graceful: the server task ends on its own once open requests finish.
        self.shared.shutdown.cancel();
    }
}
