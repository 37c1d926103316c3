//! The pool of single-statement connections (`ld_eaas::db::StatementPool`),
//! against a real Postgres: a connection goes back without a round trip to
//! check it, one left half-way by a cancelled caller is closed, an error
//! answer keeps it, a dead idle one is replaced, and the size is a bound;
//! the notification listener takes none of the transactions'; and a replica
//! runs over Postgres's Unix socket, as the operating guide advises for a
//! Postgres on the same machine.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ld_eaas::db::StatementPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::helpers::{TestDatabase, spawn_app_on, spawn_app_with};

fn pool(db: &TestDatabase, max: u32, ping_idle_after: Duration) -> StatementPool {
    let options = PgConnectOptions::from_str(&db.url).expect("test URL");
    StatementPool::new(options, max, Duration::from_secs(10), ping_idle_after)
}

async fn backend_pid(pool: &StatementPool) -> i32 {
    sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(pool)
        .await
        .expect("a statement on the pool")
}

/// Forwards connections to Postgres and counts the bytes clients send.
async fn counting_proxy(target: String) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&target).await else {
                continue;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let upstream = async {
                    let mut buf = [0u8; 8192];
                    while let Ok(n @ 1..) = client_read.read(&mut buf).await {
                        counter.fetch_add(n, Ordering::SeqCst);
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let downstream = async {
                    let mut buf = [0u8; 8192];
                    while let Ok(n @ 1..) = server_read.read(&mut buf).await {
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::join!(upstream, downstream);
            });
        }
    });
    (port, sent)
}

/// Bytes a client sends after a statement's answer is back, for the
/// second run of the same statement (the first also prepares it).
async fn sent_after_the_answer<'c, E>(db: E, sent: &AtomicUsize) -> (usize, usize)
where
    E: sqlx::PgExecutor<'c> + Copy,
{
    let statement = "select count(*) from pg_class";
    let _: i64 = sqlx::query_scalar(statement).fetch_one(db).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = sent.load(Ordering::SeqCst);
    let _: i64 = sqlx::query_scalar(statement).fetch_one(db).await.unwrap();
    let answered = sent.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    (answered - before, sent.load(Ordering::SeqCst) - answered)
}

#[tokio::test]
async fn a_connection_goes_back_without_a_round_trip_to_check_it() {
    let db = TestDatabase::create().await;
    let mut options = PgConnectOptions::from_str(&db.url).unwrap();
    let target = format!("{}:{}", options.get_host(), options.get_port());
    let (port, sent) = counting_proxy(target).await;
    options = options.host("127.0.0.1").port(port);

    let statements = StatementPool::new(
        options.clone(),
        1,
        Duration::from_secs(10),
        Duration::from_secs(60),
    );
    let (statement, after) = sent_after_the_answer(&statements, &sent).await;
    assert!(statement > 0, "the statement went through the proxy");
    assert_eq!(after, 0, "nothing is sent to Postgres after the answer");

    // The control: sqlx's pool checks the connection it takes back with a
    // `Sync` message (5 bytes, more inside TLS), which this test sees.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .unwrap();
    let (_, after) = sent_after_the_answer(&pool, &sent).await;
    assert!(
        after > 0,
        "sqlx's pool pings on release (the test can see it)"
    );
    pool.close().await;
}

#[tokio::test]
async fn a_connection_is_reused_and_an_error_answer_keeps_it() {
    let db = TestDatabase::create().await;
    let statements = pool(&db, 2, Duration::from_secs(60));
    let first = backend_pid(&statements).await;
    assert_eq!(
        backend_pid(&statements).await,
        first,
        "the idle connection is reused"
    );

    let refused = sqlx::query("select 1 / 0").execute(&statements).await;
    let err = refused.expect_err("division by zero is refused");
    assert!(matches!(err, sqlx::Error::Database(_)), "{err:?}");
    assert_eq!(statements.idle_count(), 1, "the connection went back");
    assert_eq!(
        backend_pid(&statements).await,
        first,
        "after an error answer the same connection takes the next statement"
    );
}

#[tokio::test]
async fn a_statement_dropped_half_way_closes_its_connection() {
    let db = TestDatabase::create().await;
    let statements = pool(&db, 1, Duration::from_secs(60));
    let first = backend_pid(&statements).await;

    let slow = sqlx::query("select pg_sleep(10)").execute(&statements);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), slow)
            .await
            .is_err(),
        "the sleep was cut short by the caller"
    );
    assert_eq!(
        statements.idle_count(),
        0,
        "the cancelled connection was not kept"
    );

    // With one connection allowed, the next statement gets a new one at
    // once; the old one would still be sleeping (or answer out of turn).
    let started = Instant::now();
    let next = backend_pid(&statements).await;
    assert_ne!(next, first, "a new connection");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not wait for the abandoned statement: {:?}",
        started.elapsed()
    );
    let rows: Vec<i32> = sqlx::query_scalar("select generate_series(1, 3)")
        .fetch_all(&statements)
        .await
        .unwrap();
    assert_eq!(rows, vec![1, 2, 3], "its answers are its own");
}

#[tokio::test]
async fn a_dead_idle_connection_is_replaced_before_use() {
    let db = TestDatabase::create().await;
    let statements = pool(&db, 1, Duration::from_millis(100));
    let first = backend_pid(&statements).await;

    let mut admin = PgConnection::connect(&db.url).await.unwrap();
    let terminated: bool = sqlx::query_scalar("select pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(terminated);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let next = backend_pid(&statements).await;
    assert_ne!(
        next, first,
        "the dead connection was found out and replaced"
    );
}

#[tokio::test]
async fn no_more_connections_than_its_size() {
    let db = TestDatabase::create().await;
    let statements = pool(&db, 2, Duration::from_secs(60));
    let started = Instant::now();
    let runs = (0..4).map(|_| async {
        sqlx::query_scalar::<_, i32>("select pg_backend_pid() from pg_sleep(0.3)")
            .fetch_one(&statements)
            .await
            .unwrap()
    });
    let mut pids = futures::future::join_all(runs).await;
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 2, "four statements shared two connections");
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "two rounds of two: {:?}",
        started.elapsed()
    );
    assert_eq!(statements.idle_count(), 2);

    statements.close();
    let closed = sqlx::query("select 1").execute(&statements).await;
    assert!(matches!(closed, Err(sqlx::Error::PoolClosed)), "{closed:?}");
    assert_eq!(statements.idle_count(), 0);
}

/// The notification listener has a connection of its own: with the
/// smallest pool allowed (one connection for transactions, one for
/// statements), transactions still run while the replica listens.
#[tokio::test]
async fn a_replica_with_the_smallest_pool_listens_and_still_runs_transactions() {
    let app = spawn_app_with(|mut config| {
        config.database_pool_size = 2;
        config
    })
    .await;
    let listening = "select count(*) from pg_stat_activity
                      where datname = current_database() and query ilike 'listen%'";
    let started = Instant::now();
    loop {
        let n: i64 = sqlx::query_scalar(listening)
            .fetch_one(&app.db)
            .await
            .unwrap();
        if n > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the replica never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Creating a tenant is a transaction; two in a row, each well within
    // the 10 s a statement waits for a connection.
    for id in ["small-pool-a", "small-pool-b"] {
        let started = Instant::now();
        app.create_tenant(id).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "waited {:?} for a connection",
            started.elapsed()
        );
    }
}

/// The operating guide's advice for a Postgres on the same machine: a
/// `DATABASE_URL` that names the server's socket directory (`?host=…`).
/// Every connection a replica opens goes over it: the transactions', the
/// single statements' and the listener's.
#[tokio::test]
async fn a_replica_runs_over_the_unix_socket() {
    let database = TestDatabase::create().await;
    let mut admin = PgConnection::connect(&database.url).await.unwrap();
    let directories: String = sqlx::query_scalar("show unix_socket_directories")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    let directory = directories.split(',').next().unwrap_or_default().trim();
    // The tests' own throwaway server (`ld_eaas::pgtemp`, when no Postgres
    // lets them in) listens on loopback TCP alone: nothing to run over.
    if !directory.starts_with('/') {
        eprintln!("skipped: this Postgres listens on no socket ({directories:?})");
        return;
    }
    // The same server, user and port; the socket in `directory`.
    let mut socket_url = url::Url::parse(&database.url).unwrap();
    socket_url.query_pairs_mut().append_pair("host", directory);
    let socket_url = socket_url.to_string();
    // A freshly installed server may let this user in over TCP by password
    // but over its socket only as the same system user (`peer`).
    if let Err(err) = PgConnection::connect(&socket_url).await {
        match err.as_database_error().and_then(|e| e.code()) {
            Some(code) if code.starts_with("28") => {
                eprintln!("skipped: this Postgres does not let the test's user in over its socket");
                return;
            }
            _ => panic!("connecting over the socket: {err}"),
        }
    }
    let name = database.name.clone();
    let app = spawn_app_on(database, &[], |mut config| {
        config.database_url = secrecy::SecretString::from(socket_url);
        config
    })
    .await;
    // A transaction and single statements, through the API.
    app.create_tenant("over-the-socket").await;
    let read = app
        .client
        .get(app.url("/api/v1/tenants/over-the-socket"))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let over_socket = "select inet_server_addr() is null";
    let pool: bool = sqlx::query_scalar(over_socket)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let statements: bool = sqlx::query_scalar(over_socket)
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert!(pool, "the transactions' pool connected over TCP");
    assert!(statements, "the statement pool connected over TCP");
    // Every backend of this database but the test's own: the replica's.
    let started = Instant::now();
    loop {
        let (listening, over_tcp): (i64, i64) = sqlx::query_as(
            "select count(*) filter (where query ilike 'listen%'),
                    count(*) filter (where client_addr is not null)
               from pg_stat_activity
              where datname = $1 and pid <> pg_backend_pid()",
        )
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if listening > 0 {
            assert_eq!(over_tcp, 0, "a connection of the replica went over TCP");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the replica never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
