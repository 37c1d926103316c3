//! The environment lifecycle against the LaunchDarkly simulator over real
//! HTTP and a real Postgres database: API answers, LaunchDarkly state,
//! safety rules, time (TTL, sweeper, backoff) and convergence under faults.
#![allow(clippy::disallowed_methods)] // The app's manual clock is set to the simulator's real time here.

mod api;
mod batches;
mod choices;
mod convergence;
mod locks;
mod queue;
mod safety;
mod settings;
mod statements;
mod tenant_cache;
pub(crate) mod time;

use std::sync::Arc;
use std::time::Duration;

use ld_eaas::clock::ManualClock;
use ld_eaas::config::Config;
use ld_eaas::connections::{self, Connected};
use ld_eaas::ids::TenantId;
use ld_eaas::simulator::{ApiTokenGrant, DEMO_ACCOUNT, SimEnvironment, Simulator, SimulatorConfig};
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::helpers::{TestApp, TestDatabase, spawn_app_on};

/// A writer token on the seeded account (project `demo`).
pub const TOKEN: &str = "lifecycle-writer-token-0001";
pub const READER_TOKEN: &str = "lifecycle-reader-token-0001";

/// Starts a simulator with our tokens registered (and the seeded `demo`
/// project: `production` (critical), `staging`, `test`).
pub async fn start_sim() -> Simulator {
    crate::support::helpers::init_logging();
    let config = SimulatorConfig {
        api_tokens: vec![
            ApiTokenGrant::new(TOKEN, "writer"),
            ApiTokenGrant::new(READER_TOKEN, "reader"),
        ],
        ..SimulatorConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Simulator::start(config, listener).await.unwrap()
}

/// Short leases, backoffs and timeouts so retries happen within a test.
pub fn fast(mut config: Config, workers: bool) -> Config {
    let t = &mut config.lifecycle;
    t.run_workers = workers;
    t.lease = Duration::from_millis(1500);
    t.poll_interval = Duration::from_millis(100);
    t.backoff_base = Duration::from_millis(50);
    t.backoff_max = Duration::from_millis(400);
    t.launchdarkly_timeout = Duration::from_millis(1500);
    t.housekeeping_interval = Duration::from_millis(200);
    t.webhook_timeout = Duration::from_secs(2);
    t.webhook_backoff_base = Duration::from_secs(30);
    t.webhook_backoff_max = Duration::from_secs(120);
    config.sweep_grace = Duration::from_secs(600);
    config
}

/// The app against `sim`, with or without background workers.
pub async fn spawn(sim: &Simulator, workers: bool) -> TestApp {
    spawn_with(sim, workers, |c| c).await
}

pub async fn spawn_with(
    sim: &Simulator,
    workers: bool,
    adjust: impl FnOnce(Config) -> Config,
) -> TestApp {
    let base = sim.base_url();
    spawn_app_on(
        TestDatabase::create().await,
        &["--launchdarkly-url", &base, "--workers", "8"],
        |c| adjust(fast(c, workers)),
    )
    .await
}

/// A second replica on `first`'s database (and keyring), as [`spawn_with`].
pub async fn spawn_beside(
    sim: &Simulator,
    first: &TestApp,
    workers: bool,
    adjust: impl FnOnce(Config) -> Config + Send + 'static,
) -> TestApp {
    let keyring = first.state.config.keyring.clone();
    let base = sim.base_url();
    spawn_app_on(
        TestDatabase::shared(&first.database.url),
        &["--launchdarkly-url", &base, "--workers", "8"],
        move |c| {
            let mut c = adjust(fast(c, workers));
            c.keyring = keyring;
            c
        },
    )
    .await
}

pub fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

/// Registers the tenant and connects it with `token` (checked with the
/// simulator, like the connect page does).
pub async fn connect(app: &TestApp, id: &str, token: &str) {
    app.create_tenant(id).await;
    connections::connect(
        &app.state,
        &tenant(id),
        Connected::from_api_token(SecretString::from(token.to_owned())),
        "test",
    )
    .await
    .unwrap();
}

/// Saves settings through the API.
pub async fn configure(app: &TestApp, id: &str, project: &str, source: &str) -> Value {
    let (status, body) = app
        .api(
            Method::PUT,
            &format!("/tenants/{id}/settings"),
            Some(json!({"project_key": project, "source_environment_key": source})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// A connected tenant with `demo`/`staging` settings.
pub async fn ready_tenant(app: &TestApp, id: &str) {
    connect(app, id, TOKEN).await;
    configure(app, id, "demo", "staging").await;
}

pub async fn put_env(
    app: &TestApp,
    tenant: &str,
    eph: &str,
    query: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.api(
        Method::PUT,
        &format!("/tenants/{tenant}/environments/{eph}{query}"),
        body,
    )
    .await
}

pub async fn get_env(app: &TestApp, tenant: &str, eph: &str) -> (StatusCode, Value) {
    app.api(
        Method::GET,
        &format!("/tenants/{tenant}/environments/{eph}"),
        None,
    )
    .await
}

pub async fn delete_env(
    app: &TestApp,
    tenant: &str,
    eph: &str,
    query: &str,
) -> (StatusCode, Value) {
    app.api(
        Method::DELETE,
        &format!("/tenants/{tenant}/environments/{eph}{query}"),
        None,
    )
    .await
}

/// The environments of `project` in `account` carrying `tag`.
pub fn upstream_with_tag(
    sim: &Simulator,
    account: &str,
    project: &str,
    tag: &str,
) -> Vec<SimEnvironment> {
    sim.environments(account, project)
        .into_iter()
        .filter(|e| e.tags.iter().any(|t| t == tag))
        .collect()
}

pub fn demo_envs(sim: &Simulator) -> Vec<SimEnvironment> {
    upstream_with_tag(sim, DEMO_ACCOUNT, "demo", "ld-eaas")
}

/// The audit actions recorded for a tenant, oldest first.
pub async fn audit_actions(app: &TestApp, tenant: &str) -> Vec<(String, Option<String>)> {
    sqlx::query_as("select action, ephemeral_id from audit_events where tenant_id = $1 order by id")
        .bind(tenant)
        .fetch_all(&app.db)
        .await
        .unwrap()
}

/// Moves manual clocks along with real time, for runs whose faults reset in
/// real time (the simulator's rate-limit windows, held requests).
pub struct ClockDriver {
    stop: CancellationToken,
}

impl ClockDriver {
    pub fn start(clocks: Vec<Arc<ManualClock>>) -> Self {
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            loop {
                for clock in &clocks {
                    clock.set(chrono::Utc::now());
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(5)) => {}
                    () = token.cancelled() => return,
                }
            }
        });
        Self { stop }
    }
}

impl Drop for ClockDriver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Polls `check` (real time, every 50 ms) until it holds or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
