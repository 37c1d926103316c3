//! Settings: every one a flag and an `LD_EAAS_<NAME>` environment variable
//! (plus `DATABASE_URL`), validated at start with errors that name the setting.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::crypto::Keyring;

mod args;
mod tuning;
mod validate;

pub use args::ServeArgs;
pub use tuning::Tuning;
pub use validate::{parse_origins, validate_instance_id};

/// Where `serve` keeps its state unless `DATABASE_URL` says otherwise.
pub const DEFAULT_DATABASE_URL: &str = "postgres://localhost/ld_eaas";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Validated configuration. Secrets are held in redacting types.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: SecretString,
    pub listen: SocketAddr,
    pub public_url: Url,
    pub launchdarkly_url: Url,
    pub oauth: Option<OAuthClientConfig>,
    pub keyring: Arc<Keyring>,
    pub instance_id: String,
    pub vendor: String,
    pub product_name: String,
    /// Origins a connect link's `return_url` may point to, each as
    /// `scheme://host[:port]` (see [`parse_origins`]).
    pub return_url_origins: Vec<String>,
    pub webhook: Option<WebhookConfig>,
    pub log_format: LogFormat,
    pub workers: usize,
    pub database_pool_size: u32,
    pub sweep_interval: Duration,
    pub sweep_grace: Duration,
    pub connect_link_ttl: chrono::Duration,
    pub session_idle_timeout: Duration,
    /// Lifecycle pacing (leases, backoff, timeouts); tests shorten it.
    pub lifecycle: Tuning,
    /// How long slow or idle clients may hold a connection, and how many.
    pub server: ServerLimits,
}

#[derive(Debug, Clone)]
pub struct OAuthClientConfig {
    pub client_id: String,
    pub client_secret: SecretString,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: Url,
    pub secret: SecretString,
}

#[derive(Debug, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub problem: String,
}

fn invalid(setting: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        problem: problem.into(),
    }
}

impl Config {
    /// The OAuth redirect URI registered with LaunchDarkly.
    pub fn oauth_redirect_uri(&self) -> Url {
        self.public_url
            .join("/oauth/callback")
            .unwrap_or_else(|_| self.public_url.clone())
    }

    pub fn cookies_secure(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// The tag that marks an environment as made by this deployment.
    pub fn instance_tag(&self) -> String {
        format!("ld-eaas.{}", self.instance_id)
    }
}

/// How long slow or idle clients may hold a connection, and how many may
/// (`LD_EAAS_HEADER_TIMEOUT_SECONDS` and the others; see `crate::server`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// From when the connection awaits a request until its header is whole
    /// (on a keep-alive connection this also bounds the silence between requests).
    pub header_timeout: Duration,
    /// From the end of the header until the body is whole.
    pub body_timeout: Duration,
    /// Between requests on a keep-alive connection.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

#[cfg(test)]
mod tests;
