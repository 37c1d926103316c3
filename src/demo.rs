//! `ld-eaas demo`: the whole product on one machine with no LaunchDarkly
//! account. The app and the built-in LaunchDarkly simulator run on loopback;
//! a demo tenant, an internal API key and a connect link are made, and the
//! command prints how to use them.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::audit::{AuditAction, event as audit_event};
use crate::clock::SharedClock;
use crate::config::ServeArgs;
use crate::crypto::Keyring;
use crate::ids::TenantId;
use crate::pgtemp::{self, PgTemp, ServerBinaries};
use crate::simulator::{
    ApiTokenGrant, DEMO_PROJECT, OAuthClientRegistration, Simulator, SimulatorConfig,
};
use crate::startup::Application;
use crate::store::audit;
use crate::store::{api_keys, connect_links, random_alphanumeric, tenants};

/// The OAuth client the demo registers on its simulator.
const DEMO_CLIENT_ID: &str = "ld-eaas-demo";
/// Where the demo keeps its data when `DATABASE_URL` is left at its default.
pub const DEMO_DATABASE_URL: &str = "postgres://localhost/ld_eaas_demo";

/// The flags of `ld-eaas demo`: those of `serve`, plus where the simulator
/// listens and which tenant to set up. The LaunchDarkly URL and OAuth client
/// are always the simulator's.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Address the built-in LaunchDarkly simulator listens on.
    #[arg(
        long,
        env = "LD_EAAS_DEMO_SIMULATOR_LISTEN",
        default_value = "127.0.0.1:8090"
    )]
    pub simulator_listen: SocketAddr,
    /// The demo tenant's id; it is set up afresh on every start.
    #[arg(long, env = "LD_EAAS_DEMO_TENANT", default_value = "demo")]
    pub tenant: String,
    /// Where the demo keeps its data when DATABASE_URL is not set. When no
    /// server there lets it in, the demo runs on a private PostgreSQL.
    #[arg(long, hide = true, default_value = DEMO_DATABASE_URL)]
    pub default_database_url: String,
    /// Where to look for PostgreSQL's server binaries; the usual places and
    /// PATH when unset.
    #[arg(skip)]
    pub postgres_bin_dirs: Option<Vec<PathBuf>>,
}

/// What the demo made, for the instructions.
#[derive(Debug, Clone)]
pub struct DemoInfo {
    pub tenant: TenantId,
    pub app_url: String,
    pub simulator_url: String,
    pub connect_url: String,
    pub connect_expires_at: DateTime<Utc>,
    pub api_key: String,
    /// An API access token the simulator accepts (writer role).
    pub launchdarkly_api_token: String,
    pub generated_encryption_key: bool,
    /// Which database the demo runs on, for people (no password).
    pub database: String,
}

/// A started demo: serve it with [`Demo::run_until_stopped`].
pub struct Demo {
    pub app: Application,
    pub simulator: Simulator,
    pub info: DemoInfo,
    /// The private PostgreSQL the demo started, if it did: stopped and
    /// removed after the app stops (or when this is dropped).
    pub database: Option<PgTemp>,
}

impl Demo {
    /// Starts the simulator, builds the app against it and seeds the tenant.
    pub async fn start(args: DemoArgs, clock: SharedClock) -> anyhow::Result<Self> {
        let tenant = TenantId::parse(&args.tenant).context("--tenant")?;
        let mut serve = args.serve;
        // The demo resets its tenant on every start: unless told otherwise it
        // keeps to a database of its own, never the one `serve` uses, and
        // to a private server when no server at the default lets it in.
        let mut private = None;
        // (`demo --help` shows DEMO_DATABASE_URL as the default, so either
        // spelling of "not set" counts.)
        if serve.database_url == crate::config::DEFAULT_DATABASE_URL
            || serve.database_url == DEMO_DATABASE_URL
        {
            serve.database_url = args.default_database_url.clone();
            if let Err(why) = pgtemp::check_server(&serve.database_url).await {
                tracing::info!("{why}: starting a private PostgreSQL for the demo");
                let dirs = args.postgres_bin_dirs.clone();
                let started = tokio::task::spawn_blocking(move || match dirs {
                    Some(dirs) => PgTemp::start_with(ServerBinaries::find_in(&dirs)?),
                    None => PgTemp::start(),
                })
                .await
                .context("starting a private PostgreSQL")?
                .with_context(|| format!("{why}"))?;
                serve.database_url = started.url("ld_eaas_demo");
                private = Some(started);
            }
        }
        let database = match &private {
            Some(server) => format!(
                "{} ({})",
                pgtemp::display_url(&serve.database_url),
                server.describe()
            ),
            None => pgtemp::display_url(&serve.database_url),
        };
        tracing::info!(database = %database, "demo database");
        let app_listener = TcpListener::bind(&serve.listen)
            .await
            .with_context(|| format!("LD_EAAS_LISTEN: could not bind {}", serve.listen))?;
        let app_addr = app_listener.local_addr()?;
        // On port 0 (tests) the public URL can only be known now.
        if serve.listen.ends_with(":0") {
            serve.public_url = format!("http://{app_addr}");
        }
        serve.listen = app_addr.to_string();
        let public_url = serve.public_url.trim_end_matches('/').to_owned();

        let sim_listener = TcpListener::bind(args.simulator_listen)
            .await
            .with_context(|| {
                format!(
                    "--simulator-listen: could not bind {}",
                    args.simulator_listen
                )
            })?;
        let client_secret = random_alphanumeric(32);
        let launchdarkly_api_token = format!("api-demo-{}", random_alphanumeric(24));
        let simulator = Simulator::start(
            SimulatorConfig {
                api_tokens: vec![ApiTokenGrant::new(launchdarkly_api_token.clone(), "writer")],
                oauth_clients: vec![OAuthClientRegistration {
                    client_id: DEMO_CLIENT_ID.to_owned(),
                    client_secret: client_secret.clone(),
                    redirect_uri: format!("{public_url}/oauth/callback"),
                }],
                auto_approve: false,
                seed: true,
                ..SimulatorConfig::default()
            },
            sim_listener,
        )
        .await
        .context("starting the LaunchDarkly simulator")?;

        serve.launchdarkly_url = simulator.base_url();
        serve.oauth_client_id = Some(DEMO_CLIENT_ID.to_owned());
        serve.oauth_client_secret = Some(client_secret);
        let generated_encryption_key = serve
            .encryption_keys
            .as_deref()
            .is_none_or(|k| k.trim().is_empty());
        if generated_encryption_key {
            serve.encryption_keys = Some(Keyring::generate_spec("demo"));
        }
        let config = serve.into_config()?;
        let app = Application::build_with_listener(config, clock, app_listener).await?;

        let state = app.state();
        let now = state.now();
        // Afresh every time: the simulator forgets everything when it stops,
        // and a generated key cannot open what an earlier run sealed.
        tenants::delete(&state.db, &tenant).await?;
        let display_name = "Demo Company";
        if let tenants::Upserted::Created(_) =
            tenants::upsert(&state.db, &tenant, display_name, now).await?
        {
            audit::record(
                &state.db,
                &tenant,
                now,
                audit_event("system", AuditAction::TenantCreated),
            )
            .await?;
        }
        // One live demo key at a time.
        for old in api_keys::list(&state.db).await? {
            if old.name == "demo" && old.tenant_id.0.is_none() && old.revoked_at.is_none() {
                api_keys::revoke(&state.db, &old.id.to_string(), now).await?;
            }
        }
        let (_, api_key) = api_keys::create(&state.db, "demo", None, now).await?;
        let (token, connect_expires_at) =
            connect_links::create(&state.db, &tenant, now, state.config.connect_link_ttl).await?;
        let info = DemoInfo {
            tenant,
            app_url: public_url.clone(),
            simulator_url: simulator.base_url(),
            connect_url: format!("{public_url}/connect/{}", token.expose_secret()),
            connect_expires_at,
            api_key: api_key.expose_secret().to_owned(),
            launchdarkly_api_token,
            generated_encryption_key,
            database,
        };
        Ok(Self {
            app,
            simulator,
            info,
            database: private,
        })
    }

    /// Serves until the app's shutdown token fires, then stops the simulator
    /// and the private PostgreSQL, if the demo started one.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            app,
            simulator,
            database,
            ..
        } = self;
        let served = app.run_until_stopped().await;
        simulator.shutdown().await;
        if let Some(database) = database {
            let dir = database.dir().display().to_string();
            let _ = tokio::task::spawn_blocking(move || database.stop()).await;
            tracing::info!(dir = %dir, "private PostgreSQL stopped and removed");
        }
        served
    }
}

impl DemoInfo {
    /// What `ld-eaas demo` prints: where to click and what to run.
    pub fn instructions(&self) -> String {
        let app = &self.app_url;
        let tenant = &self.tenant;
        let key = &self.api_key;
        let mut out = String::new();
        let line = "─".repeat(78);
        out.push_str(&format!(
            "\n{line}\n ld-eaas demo: the app at {app}, LaunchDarkly simulated at {}\n{line}\n\n",
            self.simulator_url
        ));
        out.push_str(&format!("Database: {}\n\n", self.database));
        out.push_str(&format!(
            "1. Open the connect link (works once, until {}; rerun the demo for a new one):\n\n   {}\n\n",
            self.connect_expires_at.format("%H:%M UTC"),
            self.connect_url
        ));
        out.push_str(
            "   Click \"Connect with LaunchDarkly\", approve on the simulator's consent page,\n   \
             then choose project \"demo\" and a source environment (e.g. staging) and save.\n",
        );
        out.push_str(&format!(
            "   Or use \"an API access token instead\" and paste: {}\n\n",
            self.launchdarkly_api_token
        ));
        out.push_str(&format!(
            "2. Drive it as the EaaS backend would, with this internal API key:\n\n   \
             export LD_EAAS_API_KEY={key}\n\n"
        ));
        let auth = "-H \"Authorization: Bearer $LD_EAAS_API_KEY\"";
        let json = "-H 'Content-Type: application/json'";
        let base = format!("{app}/api/v1/tenants/{tenant}");
        out.push_str(&format!(
            "   # choose the source (the same as the settings page)\n   \
             curl -sS -X PUT {base}/settings {auth} {json} \\\n     \
             -d '{{\"project_key\": \"{DEMO_PROJECT}\", \"source_environment_key\": \"staging\"}}'\n\n"
        ));
        out.push_str(&format!(
            "   # a preview environment came up: give it a LaunchDarkly environment\n   \
             curl -sS -X PUT '{base}/environments/pr-1?wait=10' {auth} {json} -d '{{}}'\n\n"
        ));
        out.push_str(&format!(
            "   # read it (status, SDK keys, link)\n   curl -sS {base}/environments/pr-1 {auth}\n\n"
        ));
        out.push_str(&format!(
            "   # the preview went away\n   curl -sS -X DELETE '{base}/environments/pr-1?wait=10' {auth}\n\n"
        ));
        out.push_str(&format!(
            "   # a fresh connect link for the browser\n   curl -sS -X POST {base}/connect-links {auth}\n\n"
        ));
        out.push_str("3. Watch Environments and Activity in the browser while the calls run.\n\n");
        if self.generated_encryption_key {
            out.push_str(
                "Secrets are sealed with a throwaway key generated for this run (set\n\
                 LD_EAAS_ENCRYPTION_KEYS to keep one). Stop with Ctrl-C.\n",
            );
        } else {
            out.push_str("Stop with Ctrl-C.\n");
        }
        out
    }
}
