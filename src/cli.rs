//! The `ld-eaas` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use crate::clock::{Clock, SystemClock};
use crate::config::{LogFormat, ServeArgs};
use crate::crypto::Keyring;
use crate::ids::TenantId;
use crate::startup::Application;
use crate::store::{api_keys, rotation, tenants};
use crate::{db, telemetry};

#[derive(Parser)]
#[command(
    name = "ld-eaas",
    version,
    about = "LaunchDarkly environments for every ephemeral environment"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the web server and the lifecycle workers.
    Serve(Box<ServeArgs>),
    /// The whole product on loopback against the built-in LaunchDarkly
    /// simulator: prints a connect link, an API key and curl examples.
    // Its database default is the demo's own, and `--help` says so.
    #[command(mut_arg("database_url", |a| a.default_value(crate::demo::DEMO_DATABASE_URL)))]
    Demo(Box<crate::demo::DemoArgs>),
    /// Create the database if needed and apply migrations.
    Migrate(DatabaseArgs),
    /// Manage internal API keys.
    #[command(subcommand, name = "api-keys")]
    ApiKeys(ApiKeysCommand),
    /// Manage the keys that seal stored secrets.
    #[command(subcommand, name = "encryption-keys")]
    EncryptionKeys(EncryptionKeysCommand),
    /// Run the LaunchDarkly simulator alone (the subset of LaunchDarkly's API and OAuth ld-eaas uses).
    #[command(name = "fake-launchdarkly")]
    FakeLaunchDarkly(Box<crate::simulator::cli::FakeLaunchDarklyArgs>),
}

#[derive(Clone, clap::Args)]
pub struct DatabaseArgs {
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://localhost/ld_eaas",
        hide_env_values = true
    )]
    pub database_url: String,
}

#[derive(Subcommand)]
pub enum ApiKeysCommand {
    /// Create a key and print it alone on stdout (it is shown only once).
    Create {
        #[arg(long)]
        name: String,
        /// Scope the key to one tenant.
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// List keys (never the keys themselves).
    List {
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Revoke a key by id or displayed prefix.
    Revoke {
        id_or_prefix: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

#[derive(Subcommand)]
pub enum EncryptionKeysCommand {
    /// Re-seal every stored secret under the first configured key.
    Rotate {
        #[arg(long, env = "LD_EAAS_ENCRYPTION_KEYS", hide_env_values = true)]
        encryption_keys: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Print a fresh key in the LD_EAAS_ENCRYPTION_KEYS format.
    Generate {
        #[arg(long, default_value = "k1")]
        id: String,
    },
}

async fn pool(args: &DatabaseArgs) -> anyhow::Result<db::Db> {
    let pool = db::connect(&SecretString::from(args.database_url.clone()), 2).await?;
    db::migrate(&pool).await?;
    Ok(pool)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let _log = telemetry::init_server(args.log_format);
            let config = args.into_config()?;
            let app = Application::build(config, std::sync::Arc::new(SystemClock)).await?;
            let stop = app.shutdown_token();
            let signalled = shutdown_signal();
            tokio::spawn(async move {
                signalled.await;
                stop.cancel();
            });
            app.run_until_stopped().await
        }
        Command::Demo(args) => {
            let _log = telemetry::init_server(args.serve.log_format);
            let demo = crate::demo::Demo::start(*args, std::sync::Arc::new(SystemClock)).await?;
            let stop = demo.app.shutdown_token();
            // Installed before the instructions are printed, so Ctrl-C the
            // moment they appear still stops the demo gracefully.
            let signalled = shutdown_signal();
            tokio::spawn(async move {
                signalled.await;
                stop.cancel();
            });
            println!("{}", demo.info.instructions());
            demo.run_until_stopped().await
        }
        Command::Migrate(args) => {
            telemetry::init(LogFormat::Text, std::io::stderr);
            pool(&args).await?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::ApiKeys(cmd) => api_keys_command(cmd).await,
        Command::FakeLaunchDarkly(args) => {
            telemetry::init(LogFormat::Text, std::io::stderr);
            crate::simulator::cli::run(*args).await
        }
        Command::EncryptionKeys(EncryptionKeysCommand::Generate { id }) => {
            println!("{}", Keyring::generate_spec(&id));
            Ok(())
        }
        Command::EncryptionKeys(EncryptionKeysCommand::Rotate {
            encryption_keys,
            db,
        }) => {
            telemetry::init(LogFormat::Text, std::io::stderr);
            let keyring = Keyring::parse(&encryption_keys).context("LD_EAAS_ENCRYPTION_KEYS")?;
            let pool = pool(&db).await?;
            let report = rotation::reseal_all(&pool, &keyring).await?;
            eprintln!(
                "re-sealed {} secret(s) under key '{}'; {} could not be opened",
                report.resealed,
                keyring.current_key_id(),
                report.unreadable
            );
            if report.unreadable > 0 {
                anyhow::bail!(
                    "some secrets were sealed with a key that is not configured; keep that key until they are re-sealed"
                );
            }
            Ok(())
        }
    }
}

async fn api_keys_command(cmd: ApiKeysCommand) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Text, std::io::stderr);
    let now = SystemClock.now();
    match cmd {
        ApiKeysCommand::Create { name, tenant, db } => {
            let name = name.trim();
            if name.is_empty() || name.len() > 100 || name.chars().any(crate::text::is_refused) {
                anyhow::bail!("--name must be 1-100 characters, none of them control characters");
            }
            let tenant = tenant.map(|t| TenantId::parse(&t)).transpose()?;
            let pool = pool(&db).await?;
            if let Some(tenant) = &tenant {
                if tenants::get(&pool, tenant).await?.is_none() {
                    anyhow::bail!(
                        "--tenant: there is no tenant '{tenant}'; register it first (PUT /api/v1/tenants/{tenant})"
                    );
                }
            }
            let (_, key) = api_keys::create(&pool, name, tenant.as_ref(), now).await?;
            println!("{}", key.expose_secret());
        }
        ApiKeysCommand::List { db } => {
            let pool = pool(&db).await?;
            println!(
                "{:<36}  {:<10}  {:<24}  {:<20}  {:<25}  status",
                "id", "prefix", "name", "tenant", "created"
            );
            for k in api_keys::list(&pool).await? {
                let status = if k.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                let tenant = k
                    .tenant_id
                    .0
                    .as_ref()
                    .map_or("(all tenants)".to_owned(), ToString::to_string);
                println!(
                    "{:<36}  {:<10}  {:<24}  {:<20}  {:<25}  {status}",
                    k.id,
                    k.display_prefix,
                    k.name,
                    tenant,
                    k.created_at.to_rfc3339()
                );
            }
        }
        ApiKeysCommand::Revoke { id_or_prefix, db } => {
            let pool = pool(&db).await?;
            match api_keys::revoke(&pool, &id_or_prefix, now).await? {
                0 => anyhow::bail!("no active key matches '{id_or_prefix}'"),
                n => eprintln!("revoked {n} key(s)"),
            }
        }
    }
    Ok(())
}

/// Ctrl-C or SIGTERM (what container runtimes send) starts a graceful stop.
/// The handlers are installed by this call, not when the future is first
/// polled: a signal that arrives right after (the demo prints its
/// instructions, and someone presses Ctrl-C at once) stops the process
/// gracefully instead of killing it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let installed = signal(SignalKind::interrupt()).and_then(|int| {
            let term = signal(SignalKind::terminate())?;
            Ok((int, term))
        });
        async move {
            match installed {
                Ok((mut int, mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
