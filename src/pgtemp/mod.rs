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

mod binaries;
mod check;
mod server;

pub use binaries::{ServerBinaries, search_dirs};
pub use check::{Unusable, answers, check_server, display_url, url_or_process_wide};

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin};
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
}

impl Drop for PgTemp {
    fn drop(&mut self) {
        self.shutdown();
    }
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
