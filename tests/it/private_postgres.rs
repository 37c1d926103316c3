//! The private, throwaway PostgreSQL (`ld_eaas::pgtemp`): the demo's embedded
//! default. These tests start servers of their own on free ports and never
//! touch the shared one.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use ld_eaas::clock::SystemClock;
use ld_eaas::demo::{Demo, DemoArgs};
use ld_eaas::pgtemp::{PgTemp, ServerBinaries};
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::helpers::init_logging;

#[derive(Parser)]
struct DemoCli {
    #[command(flatten)]
    args: DemoArgs,
}

/// A loopback address where nothing listens.
fn unused_database_url() -> String {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("postgres://postgres@127.0.0.1:{port}/ld_eaas_demo")
}

fn demo_args(default_database_url: &str) -> DemoArgs {
    DemoCli::try_parse_from([
        "demo",
        // The default itself: as good as DATABASE_URL not being set.
        "--database-url",
        ld_eaas::config::DEFAULT_DATABASE_URL,
        "--default-database-url",
        default_database_url,
        "--listen",
        "127.0.0.1:0",
        "--simulator-listen",
        "127.0.0.1:0",
    ])
    .unwrap()
    .args
}

fn process_exists(pid: u32) -> bool {
    // A process still there (even a zombie) answers signal 0.
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn port_answers(port: u16) -> bool {
    TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Waits up to `limit` for `done`; true when it came.
fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    done()
}

async fn start_private() -> PgTemp {
    tokio::task::spawn_blocking(PgTemp::start)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_private_postgres_accepts_connections_and_leaves_nothing_behind_when_stopped() {
    let server = start_private().await;
    let (dir, pid, port) = (
        server.dir().to_owned(),
        server.pid().unwrap(),
        server.port(),
    );
    assert!(
        dir.join("data").join("PG_VERSION").exists(),
        "a fresh cluster"
    );
    let mut conn = PgConnection::connect(&server.url("postgres"))
        .await
        .unwrap();
    let answer: i32 = sqlx::query_scalar("select 41 + 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(answer, 42);
    let listen: String = sqlx::query_scalar("show listen_addresses")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(listen, "127.0.0.1", "loopback only");
    conn.close().await.unwrap();

    tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
    assert!(!dir.exists(), "{} removed", dir.display());
    assert!(!process_exists(pid), "postgres (pid {pid}) gone");
    assert!(!port_answers(port), "nothing listens on {port} any more");
}

#[tokio::test]
async fn dropping_a_private_postgres_stops_and_removes_it() {
    let server = start_private().await;
    let (dir, pid, port) = (
        server.dir().to_owned(),
        server.pid().unwrap(),
        server.port(),
    );
    assert!(port_answers(port));
    tokio::task::spawn_blocking(move || drop(server))
        .await
        .unwrap();
    assert!(!dir.exists(), "{} removed", dir.display());
    assert!(!process_exists(pid), "postgres (pid {pid}) gone");
}

#[tokio::test]
async fn the_demo_runs_on_a_private_postgres_when_nothing_answers_at_its_default_address() {
    init_logging();
    let default_url = unused_database_url();
    let demo = Demo::start(demo_args(&default_url), Arc::new(SystemClock))
        .await
        .unwrap();
    let server = demo.database.as_ref().expect("a private server");
    let (dir, pid, url) = (
        server.dir().to_owned(),
        server.pid().unwrap(),
        server.url("ld_eaas_demo"),
    );
    assert!(
        demo.info.database.contains("a private PostgreSQL") && demo.info.database.contains(&url),
        "it says which database it used: {}",
        demo.info.database
    );
    assert!(
        demo.info.instructions().contains(&demo.info.database),
        "and prints it"
    );
    // The demo's tenant lives there.
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let tenants: i64 = sqlx::query_scalar("select count(*) from tenants where id = 'demo'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(tenants, 1);
    conn.close().await.unwrap();
    // The address it was pointed at stays unused.
    assert!(!ld_eaas::pgtemp::answers(&default_url));

    let stop = demo.app.shutdown_token();
    let running = tokio::spawn(demo.run_until_stopped());
    stop.cancel();
    running.await.unwrap().unwrap();
    assert!(
        !dir.exists(),
        "{} removed when the demo stopped",
        dir.display()
    );
    assert!(!process_exists(pid), "postgres (pid {pid}) gone");
}

#[tokio::test]
async fn without_server_binaries_the_demo_names_the_package_to_install() {
    init_logging();
    let empty = std::env::temp_dir().join(format!("ld-eaas-no-pg-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&empty).unwrap();
    let mut args = demo_args(&unused_database_url());
    args.postgres_bin_dirs = Some(vec![empty.clone()]);
    let err = match Demo::start(args, Arc::new(SystemClock)).await {
        Ok(_) => panic!("the demo started without server binaries"),
        Err(err) => format!("{err:#}"),
    };
    assert!(err.contains("nothing answers at 127.0.0.1:"), "{err}");
    assert!(err.contains(&empty.display().to_string()), "{err}");
    assert!(err.contains("apt-get install -y postgresql"), "{err}");
    assert!(err.contains("brew install postgresql"), "{err}");
    std::fs::remove_dir(&empty).unwrap();
}

#[test]
fn a_directory_with_initdb_but_no_postgres_does_not_count() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("ld-eaas-half-pg-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).unwrap();
    let initdb = dir.join("initdb");
    std::fs::write(&initdb, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&initdb, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = ServerBinaries::find_in(std::slice::from_ref(&dir))
        .unwrap_err()
        .to_string();
    assert!(err.contains("apt-get install -y postgresql"), "{err}");
    std::fs::write(dir.join("postgres"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(dir.join("postgres"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        ServerBinaries::find_in(std::slice::from_ref(&dir))
            .unwrap()
            .bin_dir,
        dir
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs the real `ld-eaas demo` in a process group of its own (as a terminal
/// would), waits for its instructions and returns it with the private
/// server's directory, read from what it printed.
async fn spawn_demo_binary() -> (tokio::process::Child, PathBuf, u16) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ld-eaas"))
        .args(["demo", "--listen", "127.0.0.1:0"])
        .args(["--simulator-listen", "127.0.0.1:0"])
        .args(["--default-database-url", &unused_database_url()])
        .env_remove("DATABASE_URL")
        .env_remove("LD_EAAS_ENCRYPTION_KEYS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let database = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("Database: ") {
                return rest.to_owned();
            }
        }
        panic!("the demo ended without saying which database it used");
    })
    .await
    .expect("the demo printed its instructions");
    // "... in /tmp/ld-eaas-pg-... on 127.0.0.1:PORT, ..."
    let dir = database
        .split(" in ")
        .nth(1)
        .and_then(|rest| rest.split(" on ").next())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no directory in {database:?}"));
    let port: u16 = database
        .split(" on 127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {database:?}"));
    assert!(dir.exists(), "{} exists while the demo runs", dir.display());
    assert!(port_answers(port));
    // Keep reading so the demo never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, dir, port)
}

fn signal_group(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, "--", &format!("-{pid}")])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn ctrl_c_stops_the_demo_and_removes_its_private_postgres() {
    let (mut child, dir, port) = spawn_demo_binary().await;
    // Ctrl-C in a terminal: SIGINT to the whole foreground group.
    signal_group(child.id().unwrap(), "-INT");
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the demo exits on Ctrl-C")
        .unwrap();
    assert!(status.success(), "a clean exit: {status}");
    assert!(!dir.exists(), "{} removed", dir.display());
    assert!(!port_answers(port));
}

#[tokio::test]
async fn a_killed_demo_still_leaves_no_postgres_behind() {
    let (mut child, dir, port) = spawn_demo_binary().await;
    signal_group(child.id().unwrap(), "-KILL");
    child.wait().await.unwrap();
    let gone = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || {
            eventually(Duration::from_secs(30), || {
                !dir.exists() && !port_answers(port)
            })
        }
    })
    .await
    .unwrap();
    assert!(
        gone,
        "the watchdog stopped the server and removed {}",
        dir.display()
    );
    assert!(!Path::new(&dir).exists());
}
