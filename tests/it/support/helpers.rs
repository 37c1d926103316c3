#![allow(dead_code)] // shared by every test module; not each uses all of it
//! The test harness: the real server on port 0 against a fresh Postgres
//! database per test, and every log line of the run captured so tests can
//! prove no secret reached a log.

use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};

use clap::Parser;
use ld_eaas::app::AppState;
use ld_eaas::clock::ManualClock;
use ld_eaas::config::{Config, ServeArgs};
use ld_eaas::crypto::Keyring;
use ld_eaas::startup::Application;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The Postgres server tests use; each test gets its own database on it.
/// Without `TEST_DATABASE_URL`, the local default, or a private server of the
/// run's own when that does not let us in (see `ld_eaas::pgtemp`).
pub fn postgres_admin_url() -> String {
    static URL: LazyLock<String> = LazyLock::new(|| {
        std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
            ld_eaas::pgtemp::url_or_process_wide("postgres://postgres@127.0.0.1:5432/postgres")
                .unwrap_or_else(|why| panic!("no Postgres for the tests: {why}"))
        })
    });
    URL.clone()
}

fn url_for_database(name: &str) -> String {
    let mut url = url::Url::parse(&postgres_admin_url()).expect("TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A fresh, empty database. Dropped (forcefully) when the guard goes.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    /// Only the guard that created the database drops it.
    owned: bool,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let name = format!("ldeaas_test_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&postgres_admin_url())
            .await
            .expect("Postgres must be running for the tests (see README: scripts/test)");
        sqlx::query(&format!("create database {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let url = url_for_database(&name);
        Self {
            name,
            url,
            owned: true,
        }
    }

    /// Another handle on a database some other guard owns (a second replica).
    pub fn shared(url: &str) -> Self {
        Self {
            name: String::new(),
            url: url.to_owned(),
            owned: false,
        }
    }

    /// A guard for a database created outside the helpers, dropped with it.
    pub fn adopt(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            url: url_for_database(name),
            owned: true,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let name = self.name.clone();
        // Drop needs its own runtime: the test's may be shutting down.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&postgres_admin_url()).await {
                    let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

// ---- log capture -------------------------------------------------------

/// Where the whole run's log goes, so CI can scan it for secrets afterwards.
pub const LOG_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/test-logs/it.log");

static LOGS: LazyLock<Arc<Mutex<Vec<u8>>>> = LazyLock::new(|| {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let _ = std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/target/test-logs"));
    let file = std::fs::File::create(LOG_FILE)
        .ok()
        .map(|f| Arc::new(Mutex::new(f)));
    let writer = CaptureWriter(buffer.clone(), file);
    let filter = tracing_subscriber::EnvFilter::new(
        "debug,sqlx=warn,hyper=info,hyper_util=info,h2=info,rustls=info,reqwest=info,tower_sessions=info,tower_sessions_core=info,fantoccini=info,tungstenite=info,cookie_store=info",
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(move || writer.clone())
        .try_init();
    buffer
});

#[derive(Clone)]
struct CaptureWriter(Arc<Mutex<Vec<u8>>>, Option<Arc<Mutex<std::fs::File>>>);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        if let Some(file) = &self.1 {
            let _ = file
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_all(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn init_logging() {
    LazyLock::force(&LOGS);
}

/// Every log line written so far in this test process.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// Fails when any secret appears in the logs captured so far. Also writes
/// the whole log under target/ so people can read it.
#[track_caller]
pub fn assert_logs_free_of(secrets: &[&str]) {
    let logs = captured_logs();
    assert!(!logs.is_empty(), "log capture is not working");
    for secret in secrets {
        assert!(
            secret.len() >= 8,
            "a secret this short would match by accident"
        );
        assert!(
            !logs.contains(secret),
            "a secret reached the logs (…{})",
            &secret[secret.len() - 4..]
        );
    }
}

// ---- the application -----------------------------------------------------

#[derive(Parser)]
struct ArgsOnly {
    #[command(flatten)]
    args: ServeArgs,
}

/// Settings for a test app, from the same flags `serve` takes.
pub fn test_config(database_url: &str, public_url: &str, extra: &[&str]) -> Config {
    let key = Keyring::generate_spec("k1");
    let mut argv = vec![
        "ld-eaas",
        "--database-url",
        database_url,
        "--listen",
        "127.0.0.1:0",
        "--public-url",
        public_url,
        "--encryption-keys",
        &key,
        "--database-pool-size",
        "10",
    ];
    argv.extend_from_slice(extra);
    ArgsOnly::try_parse_from(argv)
        .expect("test flags parse")
        .args
        .into_config()
        .expect("test config is valid")
}

pub struct TestApp {
    pub address: String,
    pub state: AppState,
    pub db: PgPool,
    pub clock: Arc<ManualClock>,
    /// A vendor-wide API key.
    pub api_key: String,
    /// A client that does not follow redirects and keeps cookies.
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<()>>,
    pub database: TestDatabase,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|c| c).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(Config) -> Config) -> TestApp {
    let database = TestDatabase::create().await;
    spawn_app_on(database, &[], adjust).await
}

/// Starts the real application on a given database with extra `serve` flags.
pub async fn spawn_app_on(
    database: TestDatabase,
    flags: &[&str],
    adjust: impl FnOnce(Config) -> Config,
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    spawn_app_on_listener(database, listener, flags, adjust).await
}

/// Like [`spawn_app_on`] with a listener bound by the test, so it can tell
/// another service (the simulator's OAuth client) the app's URL first.
pub async fn spawn_app_on_listener(
    database: TestDatabase,
    listener: tokio::net::TcpListener,
    flags: &[&str],
    adjust: impl FnOnce(Config) -> Config,
) -> TestApp {
    init_logging();
    let address = format!("http://{}", listener.local_addr().expect("local addr"));
    let config = adjust(test_config(&database.url, &address, flags));
    let clock = Arc::new(ManualClock::starting_now());
    let app = Application::build_with_listener(config, clock.clone(), listener)
        .await
        .expect("app builds");
    let state = app.state().clone();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(async move {
        if let Err(err) = app.run_until_stopped().await {
            panic!("server failed: {err:#}");
        }
    });
    let (_, key) =
        ld_eaas::store::api_keys::create(&state.db, "vendor-backend", None, clock_now(&clock))
            .await
            .expect("create API key");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("client");
    use secrecy::ExposeSecret;
    TestApp {
        address,
        db: state.db.pool().clone(),
        state,
        clock,
        api_key: key.expose_secret().to_owned(),
        client,
        shutdown,
        server: Some(server),
        database,
    }
}

fn clock_now(clock: &ManualClock) -> chrono::DateTime<chrono::Utc> {
    use ld_eaas::clock::Clock;
    clock.now()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        clock_now(&self.clock)
    }

    /// The Prometheus text `/metrics` serves now.
    pub async fn metrics(&self) -> String {
        self.text("/metrics").await
    }

    /// The value of one series on `/metrics` (`name{labels}`, labels in the
    /// order the exporter writes them: sorted), 0 while it has none.
    pub async fn counter(&self, series: &str) -> u64 {
        let text = self.metrics().await;
        let needle = format!("{series} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&needle))
            .map_or(0, |n| n.trim().parse().unwrap())
    }

    /// The body of a GET of `path` with this app's client (and its cookies).
    pub async fn text(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// An API call with the vendor key.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.api_as(&self.api_key, method, path, body).await
    }

    pub async fn api_as(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, self.url(&format!("/api/v1{path}")))
            .bearer_auth(key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let text = res.text().await.expect("body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    pub async fn create_tenant(&self, id: &str) {
        let (status, body) = self
            .api(
                reqwest::Method::PUT,
                &format!("/tenants/{id}"),
                Some(serde_json::json!({"display_name": format!("Tenant {id}")})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// A connect link's URL for the tenant.
    pub async fn connect_link(&self, tenant: &str) -> String {
        let (status, body) = self
            .api(
                reqwest::Method::POST,
                &format!("/tenants/{tenant}/connect-links"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["url"].as_str().expect("url").to_owned()
    }

    pub async fn stop(mut self) {
        self.stop_serving().await;
    }

    /// Shuts the replica down (its workers finish the job they are in) and
    /// waits for it, keeping its database for the test to read.
    pub async fn stop_serving(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Asserts the body is our JSON error envelope with this code.
#[track_caller]
pub fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "unexpected body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error needs a message: {body}"
    );
}
