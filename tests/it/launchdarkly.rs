//! The LaunchDarkly client against the simulator over real HTTP: every operation,
//! pagination, error mapping, headers, rate limits, timeouts, and OAuth.

mod api;
mod flags;
mod limits;
mod oauth;

use std::time::Duration;

use ld_eaas::launchdarkly::{Credential, LdClient, LdClientConfig, RequestAuth};
use ld_eaas::simulator::{
    ApiTokenGrant, OAuthClientRegistration, RecordedRequest, Simulator, SimulatorConfig,
};

pub const WRITER: &str = "ld-client-test-writer-token";
pub const READER: &str = "ld-client-test-reader-token";
pub const OTHER_WRITER: &str = "ld-client-test-other-account-token";
pub const OTHER_ACCOUNT: &str = "acct-other";
pub const OTHER_PROJECT: &str = "other";
pub const CLIENT_ID: &str = "ld-client-test-oauth-client";
pub const CLIENT_SECRET: &str = "ld-client-test-oauth-secret";
pub const REDIRECT_URI: &str = "https://eaas.example/oauth/callback";
pub const VENDOR: &str = "acme";

/// A simulator and a client pointed at it.
pub struct Ld {
    pub sim: Simulator,
    pub client: LdClient,
    pub config: LdClientConfig,
}

impl Ld {
    /// Requests so far whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<RecordedRequest> {
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }
}

/// Writer and reader tokens on the demo account, a writer on a second account
/// (with project `other`), and an OAuth client.
pub fn sim_config() -> SimulatorConfig {
    SimulatorConfig {
        api_tokens: vec![
            ApiTokenGrant::new(WRITER, "writer"),
            ApiTokenGrant::new(READER, "reader"),
            ApiTokenGrant::for_account(OTHER_WRITER, OTHER_ACCOUNT, "writer"),
        ],
        oauth_clients: vec![OAuthClientRegistration {
            client_id: CLIENT_ID.to_owned(),
            client_secret: CLIENT_SECRET.to_owned(),
            redirect_uri: REDIRECT_URI.to_owned(),
        }],
        ..SimulatorConfig::default()
    }
}

pub async fn start() -> Ld {
    start_with(sim_config(), |_| {}).await
}

pub async fn start_with(config: SimulatorConfig, adjust: impl FnOnce(&mut LdClientConfig)) -> Ld {
    crate::support::helpers::init_logging();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = Simulator::start(config, listener).await.unwrap();
    sim.add_project(OTHER_ACCOUNT, OTHER_PROJECT, "Other", &["main"]);
    let mut config = LdClientConfig::new(sim.base_url().parse().unwrap(), VENDOR);
    config.request_timeout = Duration::from_secs(10);
    config.connect_timeout = Duration::from_secs(2);
    adjust(&mut config);
    let client = LdClient::new(config.clone()).unwrap();
    Ld {
        sim,
        client,
        config,
    }
}

pub fn api_token(token: &str) -> RequestAuth {
    RequestAuth::new(Credential::ApiToken(token.into()), None)
}

pub fn writer() -> RequestAuth {
    RequestAuth::new(
        Credential::ApiToken(WRITER.into()),
        Some(ld_eaas::simulator::DEMO_ACCOUNT.to_owned()),
    )
}

pub fn other_account() -> RequestAuth {
    RequestAuth::new(
        Credential::ApiToken(OTHER_WRITER.into()),
        Some(OTHER_ACCOUNT.to_owned()),
    )
}
