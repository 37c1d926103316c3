//! Bringing the cluster up: the watchdog, the directory, initdb, the server.

use std::fs::File;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{PgTemp, PgTempError, RunAs, START_TIMEOUT, io};

impl PgTemp {
    /// `sh` waits for its stdin to close, then stops the server (fast
    /// shutdown, SIGKILL after ten seconds) and removes the directory. It runs
    /// as this process's user, so it may signal the server and remove it all.
    pub(super) fn spawn_watchdog(&mut self) -> Result<(), PgTempError> {
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
    pub(super) fn prepare_dir(&mut self) -> Result<(), PgTempError> {
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

    pub(super) fn initdb(&self) -> Result<(), PgTempError> {
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

    pub(super) fn spawn_server(&mut self) -> Result<(), PgTempError> {
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
    pub(super) fn wait_until_ready(&mut self) -> Result<(), PgTempError> {
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
