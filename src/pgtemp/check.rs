//! Whether a Postgres at a URL can be used, and the test harness's fallback.

use std::fmt;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::process_wide;

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
