//! How a simulator is set up: who may call it (API tokens, OAuth clients), how
//! OAuth behaves, and its rate limits.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::record::fingerprint;
use super::seed::DEMO_ACCOUNT;

/// Everything [`Simulator::start`](super::Simulator::start) needs. `Default` is a
/// seeded simulator with no credentials registered and generous rate limits.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// API access tokens, accepted raw in `Authorization`.
    pub api_tokens: Vec<ApiTokenGrant>,
    /// Registered OAuth clients.
    pub oauth_clients: Vec<OAuthClientRegistration>,
    /// Consent is granted without showing the page (for tests and the demo).
    pub auto_approve: bool,
    /// `expires_in` of the access tokens `/trust/oauth/token` issues.
    pub access_token_ttl: Duration,
    /// How long an authorization code may wait before it is exchanged.
    pub auth_code_ttl: Duration,
    /// A refresh hands out a new refresh token and retires the old one.
    pub rotate_refresh_tokens: bool,
    pub rate_limits: RateLimitConfig,
    /// Create the demo account (`acct-demo`) with its projects and flags.
    pub seed: bool,
    /// With `seed`: this many more filler projects (`project-01`...) so project
    /// lists span pages.
    pub seed_extra_projects: usize,
    /// The account whose member consents on the OAuth page (the "logged-in" user).
    /// `None`: the seeded account, or else the first one.
    pub oauth_account: Option<String>,
    /// The URL clients reach the simulator at, if not `http://<listen address>`
    /// (behind a proxy, or bound to 0.0.0.0).
    pub public_url: Option<String>,
    /// The largest `limit` a list honours; larger ones are cut to it, and the
    /// `_links` tell the client where the rest is.
    pub max_page_limit: usize,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            api_tokens: Vec::new(),
            oauth_clients: Vec::new(),
            auto_approve: false,
            access_token_ttl: Duration::from_secs(3600),
            auth_code_ttl: Duration::from_secs(600),
            rotate_refresh_tokens: true,
            rate_limits: RateLimitConfig::default(),
            seed: true,
            seed_extra_projects: 0,
            oauth_account: None,
            public_url: None,
            max_page_limit: 100,
        }
    }
}

/// What an access token may do. LaunchDarkly's built-in roles; `reader` cannot write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Reader,
    Writer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }

    pub fn can_write(self) -> bool {
        matches!(self, Role::Writer | Role::Admin)
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reader" => Ok(Role::Reader),
            "writer" => Ok(Role::Writer),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?} (expected reader, writer or admin)"
            )),
        }
    }
}

/// One API access token and what it may reach. `Debug` shows a fingerprint of
/// the token, never the token.
#[derive(Clone)]
pub struct ApiTokenGrant {
    pub token: String,
    pub account_id: String,
    pub role: Role,
    /// Shown as `tokenName` by caller-identity.
    pub name: String,
    /// A service token (not tied to a member).
    pub service_token: bool,
    /// Only these projects are visible (`None`: all of the account's).
    pub projects: Option<Vec<String>>,
}

impl ApiTokenGrant {
    /// A personal token on the seeded account (`acct-demo`). An unknown role name
    /// gets the least privilege (`reader`), never more.
    pub fn new(token: impl Into<String>, role: &str) -> Self {
        Self::for_account(token, DEMO_ACCOUNT, role)
    }

    /// A personal token on `account_id`.
    pub fn for_account(
        token: impl Into<String>,
        account_id: impl Into<String>,
        role: &str,
    ) -> Self {
        let role = role.parse().unwrap_or(Role::Reader);
        Self {
            token: token.into(),
            account_id: account_id.into(),
            role,
            name: format!("{} token", role.as_str()),
            service_token: false,
            projects: None,
        }
    }

    /// Restricts the token to `projects`.
    pub fn with_projects(mut self, projects: &[&str]) -> Self {
        self.projects = Some(projects.iter().map(|p| (*p).to_owned()).collect());
        self
    }
}

impl fmt::Debug for ApiTokenGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiTokenGrant")
            .field("token", &fingerprint(&self.token))
            .field("account_id", &self.account_id)
            .field("role", &self.role)
            .field("name", &self.name)
            .field("service_token", &self.service_token)
            .field("projects", &self.projects)
            .finish()
    }
}

/// An OAuth client as registered with LaunchDarkly: exactly one redirect URI,
/// compared exactly. `Debug` leaves out the secret.
#[derive(Clone)]
pub struct OAuthClientRegistration {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
}

impl fmt::Debug for OAuthClientRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClientRegistration")
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// Fixed-window limits, counted per account (global) and per account and route.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Requests one account may make per window, all routes together.
    pub global_limit: u32,
    /// Requests one account may make to one route (method + path template) per window.
    pub route_limit: u32,
    /// Per-route overrides, keyed like `"POST /api/v2/projects/{projectKey}/environments"`.
    pub route_limits: HashMap<String, u32>,
    /// LaunchDarkly's windows are ten seconds.
    pub window: Duration,
    /// Requests one client IP may make per window, authenticated or not; over it the
    /// answer is a 429 with `Retry-After` seconds. `None`: no IP limit.
    pub per_ip_limit: Option<u32>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            global_limit: 10_000,
            route_limit: 5_000,
            route_limits: HashMap::new(),
            window: Duration::from_secs(10),
            per_ip_limit: None,
        }
    }
}

impl RateLimitConfig {
    pub(crate) fn route_limit_for(&self, route: &str) -> u32 {
        self.route_limits
            .get(route)
            .copied()
            .unwrap_or(self.route_limit)
    }
}
