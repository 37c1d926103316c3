//! Finding PostgreSQL's server binaries (`initdb` and `postgres`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::PgTempError;

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

    pub(super) fn program(&self, name: &str) -> PathBuf {
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
