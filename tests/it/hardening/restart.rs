//! A Postgres outage, without stopping the shared Postgres: the app reaches
//! its database through a TCP proxy the test cuts and restores. While cut,
//! `/readyz` answers 503; once restored, the app recovers by itself: the
//! pool reconnects, LISTEN is re-established, workers resume.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::lifecycle::{eventually, fast, put_env, ready_tenant, start_sim};
use crate::support::helpers::{TestDatabase, spawn_app_on};

/// Forwards TCP connections to `target` while up; cutting it closes every
/// open connection and refuses new ones until restored.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    cut: Arc<std::sync::Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let (up2, cut2, stop2) = (up.clone(), cut.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = stop2.cancelled() => return,
                };
                let Ok((mut client, _)) = accepted else {
                    continue;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let severed = cut2.lock().unwrap().clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = severed.cancelled() => {}
                    }
                });
            }
        });
        Self {
            port,
            up,
            cut,
            stop,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut token = self.cut.lock().unwrap();
        token.cancel();
        *token = CancellationToken::new();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut.lock().unwrap().cancel();
    }
}

async fn readyz(client: &reqwest::Client, url: &str) -> Option<StatusCode> {
    let res = client
        .get(url)
        .timeout(Duration::from_secs(8))
        .send()
        .await
        .ok()?;
    Some(res.status())
}

#[tokio::test]
async fn the_server_answers_503_while_postgres_is_gone_and_recovers_by_itself() {
    let sim = start_sim().await;
    let database = TestDatabase::create().await;
    let mut direct = url::Url::parse(&database.url).unwrap();
    let target = format!(
        "{}:{}",
        direct.host_str().unwrap(),
        direct.port().unwrap_or(5432)
    );
    let proxy = Proxy::start(target).await;
    direct.set_host(Some("127.0.0.1")).unwrap();
    direct.set_port(Some(proxy.port)).unwrap();
    let through_proxy = direct.to_string();
    let base = sim.base_url();
    let app = spawn_app_on(
        TestDatabase::shared(&through_proxy),
        &["--launchdarkly-url", &base, "--workers", "2"],
        |c| {
            let mut c = fast(c, true);
            // Only a notification wakes an idle worker within the test.
            c.lifecycle.poll_interval = Duration::from_secs(60);
            c
        },
    )
    .await;
    ready_tenant(&app, "acme").await;
    let (status, body) = put_env(&app, "acme", "before", "?wait=10", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let client = reqwest::Client::new();
    let ready_url = app.url("/readyz");
    assert_eq!(readyz(&client, &ready_url).await, Some(StatusCode::OK));

    proxy.cut();
    let started = tokio::time::Instant::now();
    assert_eq!(
        readyz(&client, &ready_url).await,
        Some(StatusCode::SERVICE_UNAVAILABLE),
        "not ready while the database is gone"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the probe answers promptly"
    );
    assert_eq!(
        readyz(&client, &app.url("/healthz")).await,
        Some(StatusCode::OK),
        "still alive"
    );
    let (status, body) = app.api(Method::GET, "/tenants/acme", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");

    proxy.restore();
    // A job cut short during the outage keeps its lease until it runs out;
    // let the (test) clock pass it, as real time would.
    app.clock.advance(chrono::Duration::seconds(5));
    eventually(Duration::from_secs(20), "ready again", || async {
        readyz(&client, &ready_url).await == Some(StatusCode::OK)
    })
    .await;
    // The notification listener is back: a worker sleeping on a long poll
    // interval is woken by the new job's notification.
    let admin = sqlx::PgPool::connect(&database.url).await.unwrap();
    eventually(Duration::from_secs(20), "LISTEN re-established", || async {
        let listening: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity where datname = current_database() \
             and query ilike 'listen%' and pid <> pg_backend_pid()",
        )
        .fetch_one(&admin)
        .await
        .unwrap();
        listening > 0
    })
    .await;
    let (status, body) = put_env(&app, "acme", "after", "?wait=20", None).await;
    assert_eq!(status, StatusCode::CREATED, "workers resumed: {body}");
    admin.close().await;
    app.stop().await;
    drop(proxy);
    drop(database);
}
