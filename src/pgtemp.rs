//! A private, throwaway PostgreSQL: the demo's embedded default, and the test
//! harness's fallback when no Postgres is running.
//!
//! It is started from the PostgreSQL server binaries already on the machine
//! (`initdb` and `postgres`): a cluster initialised in a fresh temporary
//! directory, listening on a free loopback port only, with trust auth for
//! that one TCP socket and no Unix socket. As root it runs as `postgres` (or
//! `nobody`), since PostgreSQL refuses to run as root.
//!
//! Clean-up does not depend on this process exiting cleanly: a small watchdog
//! (`sh`) holds the read end of a pipe whose write end only this process
//! holds. When the handle is stopped or dropped, or the process exits in any
//! way (Ctrl-C, SIGTERM, a panic, even SIGKILL), the pipe closes and the
//! watchdog stops the server and removes the directory. The server and the
//! watchdog sit in process groups of their own, so a terminal's Ctrl-C
//! reaches only ld-eaas, which then stops the app before its database.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// What to install when no server binaries are found.
pub const INSTALL_HINT: &str = "install PostgreSQL's server binaries: \
     `sudo apt-get install -y postgresql` on Debian/Ubuntu, `brew install postgresql` on macOS \
     (or run `scripts/demo` / `scripts/test`, which install what is missing)";

/// Why a private server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum PgTempError {
    #[error(
        "no PostgreSQL server binaries (initdb and postgres) in {searched}; {hint}, \
         or set DATABASE_URL to a Postgres you have",
        hint = INSTALL_HINT
    )]
    NoServerBinaries { searched: String },
    #[error("starting a private PostgreSQL: {0}")]
    Start(String),
    #[error("starting a private PostgreSQL: {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PgTempError {
    let context = context.into();
    move |source| PgTempError::Io { context, source }
}

/// A directory holding both `initdb` and `postgres`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerBinaries {
    pub bin_dir: PathBuf,
}

impl ServerBinaries {
    /// The first directory among [`search_dirs`] that has the server binaries.
    pub fn find() -> Result<Self, PgTempError> {
        Self::find_in(&search_dirs())
    }

    /// The first of `dirs` that has the server binaries.
    pub fn find_in(dirs: &[PathBuf]) -> Result<Self, PgTempError> {
        dirs.iter()
            .find(|dir| is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres")))
            .map(|dir| Self {
                bin_dir: dir.clone(),
            })
            .ok_or_else(|| PgTempError::NoServerBinaries {
                searched: describe_search(dirs),
            })
    }

    fn program(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// `postgres --version`, e.g. "PostgreSQL 15.8".
    pub fn version(&self) -> String {
        Command::new(self.program("postgres"))
            .arg("--version")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| {
                text.split_once("(PostgreSQL)")
                    .map(|(_, v)| format!("PostgreSQL {}", v.trim()))
            })
            .unwrap_or_else(|| "PostgreSQL".to_owned())
    }
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn describe_search(dirs: &[PathBuf]) -> String {
    const SHOWN: usize = 6;
    let mut shown: Vec<String> = dirs
        .iter()
        .take(SHOWN)
        .map(|d| d.display().to_string())
        .collect();
    if dirs.len() > SHOWN {
        shown.push(format!(
            "{} more on PATH and the usual places",
            dirs.len() - SHOWN
        ));
    }
    if shown.is_empty() {
        "no directory".to_owned()
    } else {
        shown.join(", ")
    }
}

/// Where server binaries usually live, newest version first within each
/// family, then every directory on `PATH`.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    // Debian/Ubuntu; the PGDG packages on RHEL; Homebrew (both prefixes).
    for (parent, prefix, suffix) in [
        ("/usr/lib/postgresql", "", "bin"),
        ("/usr", "pgsql-", "bin"),
        ("/opt/homebrew/opt", "postgresql@", "bin"),
        ("/usr/local/opt", "postgresql@", "bin"),
    ] {
        dirs.extend(versioned(Path::new(parent), prefix, suffix));
    }
    for fixed in [
        "/opt/homebrew/opt/postgresql/bin",
        "/usr/local/opt/postgresql/bin",
        "/opt/homebrew/bin",
        "/usr/local/bin",
        "/usr/local/pgsql/bin",
        "/Applications/Postgres.app/Contents/Versions/latest/bin",
    ] {
        dirs.push(PathBuf::from(fixed));
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs
}

/// `<parent>/<prefix><version>/<suffix>`, highest version first.
fn versioned(parent: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name.strip_prefix(prefix)?;
            let key: Vec<u32> = version
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            Some((key, entry.path().join(suffix)))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, path)| path).collect()
}

/// Whether a Postgres server answers at `url`'s host and port (a TCP
/// connection is accepted within a second).
pub fn answers(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    let host = parsed.host_str().unwrap_or("localhost");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = parsed.port().unwrap_or(5432);
    let Ok(addrs) = (host, port).to_socket_addrs() else {
        return false;
    };
    addrs
        .into_iter()
        .any(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok())
}

/// A running private PostgreSQL. Stopped and removed by [`PgTemp::stop`], on
/// drop, or by its watchdog when this process goes away.
pub struct PgTemp {
    dir: PathBuf,
    port: u16,
    binaries: ServerBinaries,
    version: String,
    run_as: Option<RunAs>,
    server: Option<Child>,
    watchdog: Option<Child>,
    /// Its closing tells the watchdog to clean up.
    lifeline: Option<ChildStdin>,
}

impl fmt::Debug for PgTemp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTemp")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .field("bin_dir", &self.binaries.bin_dir)
            .finish_non_exhaustive()
    }
}

/// The unprivileged user a root process runs the server as.
#[derive(Debug, Clone)]
struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
}

impl PgTemp {
    /// Starts a private server from the binaries found in the usual places.
    /// Blocking (initdb takes a second or two): from async code use
    /// `spawn_blocking`.
    pub fn start() -> Result<Self, PgTempError> {
        Self::start_with(ServerBinaries::find()?)
    }

    /// Starts a private server from `binaries`.
    pub fn start_with(binaries: ServerBinaries) -> Result<Self, PgTempError> {
        let dir = std::env::temp_dir().join(format!(
            "ld-eaas-pg-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let mut this = Self {
            dir,
            port: 0,
            version: binaries.version(),
            binaries,
            run_as: None,
            server: None,
            watchdog: None,
            lifeline: None,
        };
        // From here on, dropping `this` (any early return) cleans up.
        this.spawn_watchdog()?;
        this.prepare_dir()?;
        this.initdb()?;
        this.spawn_server()?;
        this.wait_until_ready()?;
        tracing::info!(
            port = this.port,
            dir = %this.dir.display(),
            bin_dir = %this.binaries.bin_dir.display(),
            "private PostgreSQL started"
        );
        Ok(this)
    }

    /// A URL for `database` on this server (superuser `postgres`, no password).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary directory holding the cluster; gone after [`PgTemp::stop`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(Child::id)
    }

    /// One line for people: which server, where, and that it goes away.
    pub fn describe(&self) -> String {
        let user = self
            .run_as
            .as_ref()
            .map(|r| format!(", running as {}", r.name))
            .unwrap_or_default();
        format!(
            "a private {} from {} in {} on 127.0.0.1:{}{user}, removed on exit",
            self.version,
            self.binaries.bin_dir.display(),
            self.dir.display(),
            self.port
        )
    }

    /// Stops the server and removes its directory; returns once both are done.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // Closing the pipe is the watchdog's cue.
        drop(self.lifeline.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            // Reap the server as it exits, or the watchdog sees a zombie.
            if let Some(server) = self.server.as_mut() {
                if !matches!(server.try_wait(), Ok(None)) {
                    self.server = None;
                }
            }
            match self.watchdog.as_mut().map(Child::try_wait) {
                Some(Ok(None)) => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    self.watchdog = None;
                    break;
                }
            }
        }
        // Last resort, should the watchdog have failed.
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if self.dir.exists() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// `sh` waits for its stdin to close, then stops the server (fast
    /// shutdown, SIGKILL after ten seconds) and removes the directory. It runs
    /// as this process's user, so it may signal the server and remove it all.
    fn spawn_watchdog(&mut self) -> Result<(), PgTempError> {
        const SCRIPT: &str = r#"
read -r _ || true
pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null)
case "$pid" in
  ''|*[!0-9]*) ;;
  *)
    kill -INT "$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
    kill -KILL "$pid" 2>/dev/null
    ;;
esac
rm -rf "$1"
"#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("ld-eaas-pg-watchdog")
            .arg(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(io("starting the clean-up watchdog (sh)"))?;
        self.lifeline = child.stdin.take();
        self.watchdog = Some(child);
        Ok(())
    }

    /// Owner and mode of the directory; as root, picks the user to run as.
    fn prepare_dir(&mut self) -> Result<(), PgTempError> {
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io("setting the directory's mode"))?;
        // The new directory's owner is this process's effective user.
        let euid = std::fs::metadata(&self.dir)
            .map_err(io("reading the directory"))?
            .uid();
        if euid == 0 {
            let run_as = unprivileged_user().ok_or_else(|| {
                PgTempError::Start(
                    "running as root, and neither a `postgres` nor a `nobody` user exists to run \
                     PostgreSQL as (it refuses root)"
                        .to_owned(),
                )
            })?;
            std::os::unix::fs::chown(&self.dir, Some(run_as.uid), Some(run_as.gid))
                .map_err(io(format!("handing the directory to {}", run_as.name)))?;
            self.run_as = Some(run_as);
        }
        Ok(())
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.binaries.program(program));
        cmd.current_dir(&self.dir)
            .env("LC_ALL", "C")
            .env_remove("PGDATA")
            .stdin(Stdio::null());
        if let Some(run_as) = &self.run_as {
            cmd.gid(run_as.gid).uid(run_as.uid);
        }
        cmd
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    fn initdb(&self) -> Result<(), PgTempError> {
        let out = self
            .command("initdb")
            .arg("--pgdata")
            .arg(self.data_dir())
            .args([
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .output()
            .map_err(io("running initdb"))?;
        if !out.status.success() {
            return Err(PgTempError::Start(format!(
                "initdb failed ({}): {}",
                out.status,
                tail(&String::from_utf8_lossy(&out.stderr))
            )));
        }
        // Only the loopback TCP socket, trusted; nothing else gets in.
        std::fs::write(
            self.data_dir().join("pg_hba.conf"),
            "# ld-eaas private PostgreSQL: loopback TCP only\nhost all all 127.0.0.1/32 trust\n",
        )
        .map_err(io("writing pg_hba.conf"))?;
        Ok(())
    }

    fn spawn_server(&mut self) -> Result<(), PgTempError> {
        let log = File::create(self.log_path()).map_err(io("creating the server log"))?;
        let log_err = log.try_clone().map_err(io("creating the server log"))?;
        self.port = free_port()?;
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", &format!("port={}", self.port)])
            .args(["-c", "unix_socket_directories="])
            .args(["-c", "max_connections=200"])
            // Throwaway data: durability buys nothing.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(io("running postgres"))?;
        self.server = Some(child);
        Ok(())
    }

    /// Until postmaster.pid says "ready" and the port accepts a connection.
    fn wait_until_ready(&mut self) -> Result<(), PgTempError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(server) = self.server.as_mut() {
                if let Ok(Some(status)) = server.try_wait() {
                    self.server = None;
                    return Err(PgTempError::Start(format!(
                        "postgres exited ({status}): {}",
                        tail(&self.read_log())
                    )));
                }
            }
            let ready = std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
                .is_ok_and(|pid| pid.lines().nth(7).is_some_and(|l| l.trim() == "ready"));
            if ready && TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(PgTempError::Start(format!(
                    "postgres did not accept connections within {}s: {}",
                    START_TIMEOUT.as_secs(),
                    tail(&self.read_log())
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn read_log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(self.log_path()) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for PgTemp {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The last few lines of a tool's output, for an error message.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

fn free_port() -> Result<u16, PgTempError> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io("finding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("finding a free port"))?
        .port())
}

/// `postgres` when that user exists, else `nobody`, from /etc/passwd.
fn unprivileged_user() -> Option<RunAs> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let users: Vec<RunAs> = passwd
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?.to_owned();
            let _password = fields.next()?;
            let uid = fields.next()?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            Some(RunAs { name, uid, gid })
        })
        .filter(|user| user.uid != 0)
        .collect();
    ["postgres", "nobody"]
        .iter()
        .find_map(|wanted| users.iter().find(|u| u.name == *wanted).cloned())
}

/// One private server for the whole process, for a test harness: started on
/// first use, and removed by its watchdog when the process exits.
pub fn process_wide() -> Result<&'static PgTemp, String> {
    static SERVER: OnceLock<Result<PgTemp, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| PgTemp::start().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}

/// Why the server at a URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// Nothing accepts a connection at its host and port.
    NothingAnswers { address: String },
    /// A server answers but would not let us in (or the URL is unusable).
    Refused { address: String, reason: String },
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NothingAnswers { address } => write!(f, "nothing answers at {address}"),
            Self::Refused { address, reason } => {
                write!(f, "the server at {address} does not let us in ({reason})")
            }
        }
    }
}

/// `url` naming another database on the same server.
fn with_database(url: &str, database: &str) -> Option<url::Url> {
    let mut parsed = url::Url::parse(url).ok()?;
    parsed.set_path(&format!("/{database}"));
    Some(parsed)
}

/// `url` as people may see it: host, port, user and database, no password.
pub fn display_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("********"));
            }
            parsed.to_string()
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

fn address_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .map(|u| {
            format!(
                "{}:{}",
                u.host_str().unwrap_or("localhost"),
                u.port().unwrap_or(5432)
            )
        })
        .unwrap_or_else(|| "(not a URL)".to_owned())
}

/// Whether we can log in to the server `url` names (to its `postgres`
/// database, so the one in the URL need not exist yet).
pub async fn check_server(url: &str) -> Result<(), Unusable> {
    use sqlx::Connection;
    let address = address_of(url);
    if !answers(url) {
        return Err(Unusable::NothingAnswers { address });
    }
    let Some(maintenance) = with_database(url, "postgres") else {
        return Err(Unusable::Refused {
            address,
            reason: "not a Postgres URL".to_owned(),
        });
    };
    let attempt = tokio::time::timeout(
        Duration::from_secs(10),
        sqlx::PgConnection::connect(maintenance.as_str()),
    )
    .await;
    match attempt {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(err)) => Err(Unusable::Refused {
            address,
            reason: match err {
                sqlx::Error::Database(db) => db.message().to_owned(),
                other => other.to_string(),
            },
        }),
        Err(_) => Err(Unusable::Refused {
            address,
            reason: "no answer to the login within 10s".to_owned(),
        }),
    }
}

/// For a test harness: `url` when its server lets us in, else the URL of the
/// `postgres` database on [`process_wide`]'s private server. Blocking.
pub fn url_or_process_wide(url: &str) -> Result<String, String> {
    let owned = url.to_owned();
    let checked = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Unusable::Refused {
                address: address_of(&owned),
                reason: e.to_string(),
            })?;
        runtime.block_on(check_server(&owned))
    })
    .join()
    .map_err(|_| "checking the default Postgres panicked".to_owned())?;
    match checked {
        Ok(()) => Ok(url.to_owned()),
        Err(why) => {
            let server = process_wide()?;
            eprintln!("{why}: using {}", server.describe());
            Ok(server.url("postgres"))
        }
    }
}
