//! `ld-eaas fake-launchdarkly`: the simulator on its own, seeded, for developing
//! against without a LaunchDarkly account.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

use super::Simulator;
use super::config::{ApiTokenGrant, OAuthClientRegistration, RateLimitConfig, SimulatorConfig};
use super::faults::Faults;
use super::seed::DEMO_ACCOUNT;

/// The flags of `ld-eaas fake-launchdarkly`. `Debug` leaves out the tokens and the
/// client secret.
#[derive(Clone, clap::Args)]
pub struct FakeLaunchDarklyArgs {
    /// Address to listen on.
    #[arg(long, env = "LD_EAAS_SIM_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// The URL clients use to reach the simulator, if not http://<listen>.
    #[arg(long, env = "LD_EAAS_SIM_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// An API access token with writer role on the seeded account (repeatable;
    /// comma-separated in the environment variable).
    #[arg(
        long = "api-token",
        env = "LD_EAAS_SIM_API_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_tokens: Vec<String>,
    /// An API access token with reader role on the seeded account (repeatable).
    #[arg(
        long = "reader-api-token",
        env = "LD_EAAS_SIM_READER_API_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub reader_api_tokens: Vec<String>,
    /// Register an OAuth client with this id (needs the secret and redirect URI).
    #[arg(long, env = "LD_EAAS_SIM_OAUTH_CLIENT_ID", requires_all = ["oauth_client_secret", "redirect_uri"])]
    pub oauth_client_id: Option<String>,
    #[arg(
        long,
        env = "LD_EAAS_SIM_OAUTH_CLIENT_SECRET",
        hide_env_values = true,
        requires = "oauth_client_id"
    )]
    pub oauth_client_secret: Option<String>,
    /// The OAuth client's one redirect URI (no query string).
    #[arg(long, env = "LD_EAAS_SIM_REDIRECT_URI", requires = "oauth_client_id")]
    pub redirect_uri: Option<String>,
    /// Grant OAuth consent without showing the page.
    #[arg(long, env = "LD_EAAS_SIM_AUTO_APPROVE")]
    pub auto_approve: bool,
    /// `expires_in` of issued OAuth access tokens.
    #[arg(
        long,
        env = "LD_EAAS_SIM_ACCESS_TOKEN_TTL_SECONDS",
        default_value_t = 3600
    )]
    pub access_token_ttl_seconds: u64,
    /// Keep refresh tokens across refreshes instead of rotating them.
    #[arg(long, env = "LD_EAAS_SIM_NO_ROTATE_REFRESH_TOKENS")]
    pub no_rotate_refresh_tokens: bool,
    /// Start empty, without the demo account.
    #[arg(long, env = "LD_EAAS_SIM_NO_SEED")]
    pub no_seed: bool,
    /// Filler projects to add to the demo account (to page through projects).
    #[arg(long, env = "LD_EAAS_SIM_EXTRA_PROJECTS", default_value_t = 0)]
    pub extra_projects: usize,
    /// Requests per account per window.
    #[arg(long, env = "LD_EAAS_SIM_RATE_LIMIT_GLOBAL", default_value_t = 10_000)]
    pub rate_limit_global: u32,
    /// Requests per account and route per window.
    #[arg(long, env = "LD_EAAS_SIM_RATE_LIMIT_ROUTE", default_value_t = 5_000)]
    pub rate_limit_route: u32,
    /// Requests per client IP per window (none by default).
    #[arg(long, env = "LD_EAAS_SIM_RATE_LIMIT_IP")]
    pub rate_limit_ip: Option<u32>,
    #[arg(
        long,
        env = "LD_EAAS_SIM_RATE_LIMIT_WINDOW_SECONDS",
        default_value_t = 10
    )]
    pub rate_limit_window_seconds: u64,
    /// Share of API calls answered 500/502/503.
    #[arg(long, env = "LD_EAAS_SIM_ERROR_RATE", default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share of successful API calls answered 5xx after the change was made.
    #[arg(
        long,
        env = "LD_EAAS_SIM_ERROR_AFTER_COMMIT_RATE",
        default_value_t = 0.0
    )]
    pub error_after_commit_rate: f64,
    /// Share of API calls answered 429.
    #[arg(long, env = "LD_EAAS_SIM_RATE_LIMIT_RATE", default_value_t = 0.0)]
    pub rate_limit_rate: f64,
    /// Share of API calls held for --timeout-hold-seconds before being handled.
    #[arg(long, env = "LD_EAAS_SIM_TIMEOUT_RATE", default_value_t = 0.0)]
    pub timeout_rate: f64,
    #[arg(long, env = "LD_EAAS_SIM_TIMEOUT_HOLD_SECONDS", default_value_t = 300)]
    pub timeout_hold_seconds: u64,
    /// Latency added to every API call.
    #[arg(long, env = "LD_EAAS_SIM_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Seed for reproducible fault decisions.
    #[arg(long, env = "LD_EAAS_SIM_FAULT_SEED")]
    pub fault_seed: Option<u64>,
}

impl std::fmt::Debug for FakeLaunchDarklyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeLaunchDarklyArgs")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field(
                "api_tokens",
                &format_args!("[{} redacted]", self.api_tokens.len()),
            )
            .field(
                "reader_api_tokens",
                &format_args!("[{} redacted]", self.reader_api_tokens.len()),
            )
            .field("oauth_client_id", &self.oauth_client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("auto_approve", &self.auto_approve)
            .finish_non_exhaustive()
    }
}

impl FakeLaunchDarklyArgs {
    /// The simulator configuration these flags describe.
    pub fn config(&self) -> SimulatorConfig {
        let writers = self
            .api_tokens
            .iter()
            .map(|t| ApiTokenGrant::for_account(t.clone(), DEMO_ACCOUNT, "writer"));
        let readers = self
            .reader_api_tokens
            .iter()
            .map(|t| ApiTokenGrant::for_account(t.clone(), DEMO_ACCOUNT, "reader"));
        let oauth_clients = match (
            &self.oauth_client_id,
            &self.oauth_client_secret,
            &self.redirect_uri,
        ) {
            (Some(id), Some(secret), Some(uri)) => vec![OAuthClientRegistration {
                client_id: id.clone(),
                client_secret: secret.clone(),
                redirect_uri: uri.clone(),
            }],
            _ => Vec::new(),
        };
        SimulatorConfig {
            api_tokens: writers.chain(readers).collect(),
            oauth_clients,
            auto_approve: self.auto_approve,
            access_token_ttl: Duration::from_secs(self.access_token_ttl_seconds),
            rotate_refresh_tokens: !self.no_rotate_refresh_tokens,
            rate_limits: RateLimitConfig {
                global_limit: self.rate_limit_global,
                route_limit: self.rate_limit_route,
                per_ip_limit: self.rate_limit_ip,
                window: Duration::from_secs(self.rate_limit_window_seconds.max(1)),
                ..RateLimitConfig::default()
            },
            seed: !self.no_seed,
            seed_extra_projects: self.extra_projects,
            public_url: self.public_url.clone(),
            ..SimulatorConfig::default()
        }
    }

    /// The faults these flags describe, applied to the API and token endpoints.
    pub fn faults(&self) -> Faults {
        Faults {
            error_rate: self.error_rate,
            error_after_commit_rate: self.error_after_commit_rate,
            rate_limit_rate: self.rate_limit_rate,
            timeout_rate: self.timeout_rate,
            timeout_hold: Duration::from_secs(self.timeout_hold_seconds),
            latency: Duration::from_millis(self.latency_ms),
            seed: self.fault_seed,
            ..Faults::default()
        }
    }
}

/// Starts the simulator as configured and serves until the process is told to stop.
pub async fn run(args: FakeLaunchDarklyArgs) -> anyhow::Result<()> {
    let sim = start(&args).await?;
    // Printed for people; the tokens themselves are not repeated.
    println!("LaunchDarkly simulator at {}", sim.base_url());
    println!(
        "  seeded account: {}; API tokens: {} writer, {} reader; OAuth client: {}",
        if args.no_seed { "none" } else { DEMO_ACCOUNT },
        args.api_tokens.len(),
        args.reader_api_tokens.len(),
        args.oauth_client_id.as_deref().unwrap_or("none"),
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    sim.shutdown().await;
    Ok(())
}

/// Binds and starts the simulator the flags describe (what [`run`] serves).
pub async fn start(args: &FakeLaunchDarklyArgs) -> anyhow::Result<Simulator> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let sim = Simulator::start(args.config(), listener).await?;
    sim.set_faults(args.faults());
    Ok(sim)
}
