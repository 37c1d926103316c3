//! The `serve`/`demo` flags and their validation into a [`Config`].

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::validate::http_url;
use super::{
    Config, ConfigError, DEFAULT_DATABASE_URL, LogFormat, OAuthClientConfig, ServerLimits, Tuning,
    WebhookConfig, invalid, parse_origins, validate_instance_id,
};
use crate::crypto::Keyring;

/// The flags `serve` and `demo` share. Every field also reads an env var.
/// Its `Debug` redacts: it holds secrets in the clear until `into_config`
/// moves them into redacting types.
#[derive(Clone, clap::Args)]
pub struct ServeArgs {
    /// Postgres connection URL; the database is created if missing.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true
    )]
    pub database_url: String,
    /// Address to bind.
    #[arg(long, env = "LD_EAAS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// The URL browsers use; the OAuth redirect URI is `<public>/oauth/callback`.
    #[arg(
        long,
        env = "LD_EAAS_PUBLIC_URL",
        default_value = "http://localhost:8080"
    )]
    pub public_url: String,
    /// LaunchDarkly base URL (REST API and OAuth).
    #[arg(
        long,
        env = "LD_EAAS_LAUNCHDARKLY_URL",
        default_value = "https://app.launchdarkly.com"
    )]
    pub launchdarkly_url: String,
    /// OAuth client id; without it OAuth connect is off (API tokens still work).
    #[arg(long, env = "LD_EAAS_OAUTH_CLIENT_ID")]
    pub oauth_client_id: Option<String>,
    /// OAuth client secret.
    #[arg(long, env = "LD_EAAS_OAUTH_CLIENT_SECRET", hide_env_values = true)]
    pub oauth_client_secret: Option<String>,
    /// Comma-separated `key_id:base64(32 bytes)`; the first one seals.
    #[arg(long, env = "LD_EAAS_ENCRYPTION_KEYS", hide_env_values = true)]
    pub encryption_keys: Option<String>,
    /// This deployment's id, part of the ownership tag `ld-eaas.<instance-id>`.
    #[arg(long, env = "LD_EAAS_INSTANCE_ID", default_value = "default")]
    pub instance_id: String,
    /// The vendor's product key, in the LaunchDarkly User-Agent.
    #[arg(long, env = "LD_EAAS_VENDOR", default_value = "eaas")]
    pub vendor: String,
    /// The product name customers see in the web UI.
    #[arg(
        long,
        env = "LD_EAAS_PRODUCT_NAME",
        default_value = "Preview Environments"
    )]
    pub product_name: String,
    /// Comma-separated origins (`https://app.example.com`) a connect link's
    /// `return_url` may point to; none by default, so `return_url` is refused.
    #[arg(long, env = "LD_EAAS_RETURN_URL_ORIGINS")]
    pub return_url_origins: Option<String>,
    /// Where outgoing webhooks are delivered.
    #[arg(long, env = "LD_EAAS_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// The HMAC secret that signs outgoing webhooks.
    #[arg(long, env = "LD_EAAS_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Log format.
    #[arg(long, env = "LD_EAAS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Lifecycle jobs each replica works on at once; sweeps and offboardings
    /// take at most a quarter of them (at least one).
    #[arg(long, env = "LD_EAAS_WORKERS", default_value_t = 8)]
    pub workers: usize,
    /// Postgres connections per replica, besides the notification
    /// listener's: half for transactions, half for single statements.
    #[arg(long, env = "LD_EAAS_DATABASE_POOL_SIZE", default_value_t = 20)]
    pub database_pool_size: u32,
    /// How often the sweeper looks for orphaned environments, in seconds.
    #[arg(long, env = "LD_EAAS_SWEEP_INTERVAL_SECONDS", default_value_t = 900)]
    pub sweep_interval_seconds: u64,
    /// How long a lost generation's environment must have been seen before the sweeper deletes it, in seconds.
    #[arg(long, env = "LD_EAAS_SWEEP_GRACE_SECONDS", default_value_t = 3600)]
    pub sweep_grace_seconds: u64,
    /// A browser session idle this long, in seconds, is signed out.
    #[arg(long, env = "LD_EAAS_SESSION_IDLE_SECONDS", default_value_t = 8 * 3600)]
    pub session_idle_seconds: u64,
    /// Bound on one LaunchDarkly request, in seconds.
    #[arg(
        long,
        env = "LD_EAAS_LAUNCHDARKLY_TIMEOUT_SECONDS",
        default_value_t = 30
    )]
    pub launchdarkly_timeout_seconds: u64,
    /// How long a claimed job stays with its replica without a heartbeat, in
    /// seconds: a job whose replica died is taken up again after this.
    #[arg(long, env = "LD_EAAS_JOB_LEASE_SECONDS", default_value_t = 60)]
    pub job_lease_seconds: u64,
    /// A client must send a request's whole header within this many seconds
    /// (at most 30); slower connections are closed.
    #[arg(long, env = "LD_EAAS_HEADER_TIMEOUT_SECONDS", default_value_t = 10)]
    pub header_timeout_seconds: u64,
    /// A client must send a request's whole body within this many seconds of
    /// its header; slower requests get 408 and the connection is closed.
    #[arg(long, env = "LD_EAAS_BODY_TIMEOUT_SECONDS", default_value_t = 30)]
    pub body_timeout_seconds: u64,
    /// A keep-alive connection idle this many seconds between requests is closed.
    #[arg(long, env = "LD_EAAS_IDLE_TIMEOUT_SECONDS", default_value_t = 60)]
    pub idle_timeout_seconds: u64,
    /// Open client connections served at once; more wait to be accepted.
    #[arg(long, env = "LD_EAAS_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
}

impl std::fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |set: bool| if set { "[REDACTED]" } else { "[unset]" };
        f.debug_struct("ServeArgs")
            .field("database_url", &"[REDACTED]")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("launchdarkly_url", &self.launchdarkly_url)
            .field("oauth_client_id", &self.oauth_client_id)
            .field(
                "oauth_client_secret",
                &redacted(self.oauth_client_secret.is_some()),
            )
            .field("encryption_keys", &redacted(self.encryption_keys.is_some()))
            .field("instance_id", &self.instance_id)
            .field("vendor", &self.vendor)
            .field("return_url_origins", &self.return_url_origins)
            .field("webhook_url", &self.webhook_url)
            .field("webhook_secret", &redacted(self.webhook_secret.is_some()))
            .finish_non_exhaustive()
    }
}

impl ServeArgs {
    /// Validates every setting. `serve` needs an encryption key; `demo`
    /// passes a generated one.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let listen = self
            .listen
            .parse()
            .map_err(|_| invalid("LD_EAAS_LISTEN", "must be host:port, e.g. 127.0.0.1:8080"))?;
        let public_url = http_url("LD_EAAS_PUBLIC_URL", &self.public_url)?;
        if public_url.path() != "/" {
            return Err(invalid("LD_EAAS_PUBLIC_URL", "must not have a path"));
        }
        let launchdarkly_url = http_url("LD_EAAS_LAUNCHDARKLY_URL", &self.launchdarkly_url)?;
        let oauth = match (self.oauth_client_id, self.oauth_client_secret) {
            (None, None) => None,
            (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
                Some(OAuthClientConfig {
                    client_id: id,
                    client_secret: SecretString::from(secret),
                })
            }
            _ => {
                return Err(invalid(
                    "LD_EAAS_OAUTH_CLIENT_ID",
                    "LD_EAAS_OAUTH_CLIENT_ID and LD_EAAS_OAUTH_CLIENT_SECRET go together",
                ));
            }
        };
        let keys = self.encryption_keys.unwrap_or_default();
        if keys.trim().is_empty() {
            return Err(invalid(
                "LD_EAAS_ENCRYPTION_KEYS",
                "required: comma-separated key_id:base64(32 bytes), e.g. k1:$(openssl rand -base64 32)",
            ));
        }
        let keyring =
            Keyring::parse(&keys).map_err(|e| invalid("LD_EAAS_ENCRYPTION_KEYS", e.to_string()))?;
        validate_instance_id(&self.instance_id)?;
        let vendor_ok = !self.vendor.is_empty()
            && self.vendor.len() <= 40
            && self
                .vendor
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !vendor_ok {
            return Err(invalid(
                "LD_EAAS_VENDOR",
                "must be 1-40 characters of letters, digits, '-' or '_'",
            ));
        }
        if self.product_name.trim().is_empty() {
            return Err(invalid("LD_EAAS_PRODUCT_NAME", "must not be empty"));
        }
        let return_url_origins = parse_origins(self.return_url_origins.as_deref().unwrap_or(""))?;
        let webhook = match (self.webhook_url, self.webhook_secret) {
            (None, None) => None,
            (Some(url), Some(secret)) if !secret.is_empty() => Some(WebhookConfig {
                url: http_url("LD_EAAS_WEBHOOK_URL", &url)?,
                secret: SecretString::from(secret),
            }),
            _ => {
                return Err(invalid(
                    "LD_EAAS_WEBHOOK_URL",
                    "LD_EAAS_WEBHOOK_URL and LD_EAAS_WEBHOOK_SECRET go together",
                ));
            }
        };
        if self.workers == 0 || self.workers > 256 {
            return Err(invalid("LD_EAAS_WORKERS", "must be between 1 and 256"));
        }
        if self.database_pool_size < 2 {
            return Err(invalid("LD_EAAS_DATABASE_POOL_SIZE", "must be at least 2"));
        }
        if self.sweep_interval_seconds == 0 {
            return Err(invalid(
                "LD_EAAS_SWEEP_INTERVAL_SECONDS",
                "must be positive",
            ));
        }
        if !(60..=30 * 24 * 3600).contains(&self.session_idle_seconds) {
            return Err(invalid(
                "LD_EAAS_SESSION_IDLE_SECONDS",
                "must be between 60 and 2592000 (30 days)",
            ));
        }
        if !(1..=300).contains(&self.launchdarkly_timeout_seconds) {
            return Err(invalid(
                "LD_EAAS_LAUNCHDARKLY_TIMEOUT_SECONDS",
                "must be between 1 and 300",
            ));
        }
        // Workers renew their leases every third of it.
        if !(3..=3600).contains(&self.job_lease_seconds) {
            return Err(invalid(
                "LD_EAAS_JOB_LEASE_SECONDS",
                "must be between 3 and 3600",
            ));
        }
        if !(1..=30).contains(&self.header_timeout_seconds) {
            return Err(invalid(
                "LD_EAAS_HEADER_TIMEOUT_SECONDS",
                "must be between 1 and 30",
            ));
        }
        if !(1..=600).contains(&self.body_timeout_seconds) {
            return Err(invalid(
                "LD_EAAS_BODY_TIMEOUT_SECONDS",
                "must be between 1 and 600",
            ));
        }
        if !(1..=3600).contains(&self.idle_timeout_seconds) {
            return Err(invalid(
                "LD_EAAS_IDLE_TIMEOUT_SECONDS",
                "must be between 1 and 3600",
            ));
        }
        if !(1..=100_000).contains(&self.max_connections) {
            return Err(invalid(
                "LD_EAAS_MAX_CONNECTIONS",
                "must be between 1 and 100000",
            ));
        }
        let server = ServerLimits {
            header_timeout: Duration::from_secs(self.header_timeout_seconds),
            body_timeout: Duration::from_secs(self.body_timeout_seconds),
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            max_connections: self.max_connections,
        };
        let lifecycle = Tuning {
            lease: Duration::from_secs(self.job_lease_seconds),
            launchdarkly_timeout: Duration::from_secs(self.launchdarkly_timeout_seconds),
            ..Tuning::default()
        };
        Ok(Config {
            database_url: SecretString::from(self.database_url),
            listen,
            public_url,
            launchdarkly_url,
            oauth,
            keyring: Arc::new(keyring),
            instance_id: self.instance_id,
            vendor: self.vendor,
            product_name: self.product_name,
            return_url_origins,
            webhook,
            log_format: self.log_format,
            workers: self.workers,
            database_pool_size: self.database_pool_size,
            sweep_interval: Duration::from_secs(self.sweep_interval_seconds),
            sweep_grace: Duration::from_secs(self.sweep_grace_seconds),
            connect_link_ttl: chrono::Duration::minutes(15),
            session_idle_timeout: Duration::from_secs(self.session_idle_seconds),
            lifecycle,
            server,
        })
    }
}
