//! Postgres: connect, create the database when missing, migrate.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

mod statements;

pub use statements::{Db, StatementPool};

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// A pooled connection idle this long is pinged before it is handed out.
const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// How long a statement waits for a connection before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Creates the database if it does not exist yet, then connects. The
/// `pool_size` connections are shared out: half (at least one) to sqlx's
/// pool for transactions, the rest (at least one) to the [`StatementPool`]
/// for single statements; the notification listener has one more of its
/// own ([`Db::notifications`]).
pub async fn connect(url: &SecretString, pool_size: u32) -> anyhow::Result<Db> {
    let (transactions, statements) = split_pool(pool_size);
    let pool = connect_pool(url, transactions).await?;
    let options = (*pool.connect_options()).clone();
    let notifications = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(options.clone());
    let statements = StatementPool::new(options, statements, ACQUIRE_TIMEOUT, PING_IDLE_AFTER);
    Ok(Db::new(pool, statements, notifications))
}

/// `pool_size` shared out as (transactions, statements).
fn split_pool(pool_size: u32) -> (u32, u32) {
    let transactions = (pool_size / 2).max(1);
    (transactions, pool_size.saturating_sub(transactions).max(1))
}

/// sqlx's pool of `pool_size` connections, the database created first if
/// it does not exist.
async fn connect_pool(url: &SecretString, pool_size: u32) -> anyhow::Result<PgPool> {
    let url = url.expose_secret();
    // Validate the URL first so a typo does not surface as a confusing
    // "database does not exist" error. The URL itself (it may hold a
    // password) never goes into the message.
    let options = PgConnectOptions::from_str(url)
        .map_err(|_| anyhow::anyhow!("DATABASE_URL is not a valid Postgres URL"))?;
    if !Postgres::database_exists(url)
        .await
        .context("could not reach Postgres at DATABASE_URL")?
    {
        // Two replicas may race to create it; losing the race is fine.
        if let Err(err) = Postgres::create_database(url).await {
            if !Postgres::database_exists(url).await.unwrap_or(false) {
                return Err(anyhow::Error::new(err)
                    .context("could not create the database named in DATABASE_URL"));
            }
        }
        tracing::info!(
            database = options.get_database().unwrap_or("?"),
            "created database"
        );
    }
    PgPoolOptions::new()
        .max_connections(pool_size)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // sqlx pings every connection it hands out by default: a round trip
        // to Postgres before every statement, which under load was about a
        // third of all of them (and it pings again when it takes one back;
        // single statements avoid that in the `StatementPool`). A connection in
        // steady use is known to work; one that sat idle (through a database
        // restart, say) is still pinged and replaced if it is dead.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IDLE_AFTER {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .context("could not connect to the database named in DATABASE_URL")
}

/// Applies pending migrations. Safe with several replicas (sqlx takes an advisory lock).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await.context("applying migrations")?;
    tower_sessions_sqlx_store::PostgresStore::new(pool.clone())
        .migrate()
        .await
        .context("creating the session table")?;
    Ok(())
}

/// How long a readiness check waits for the database: the pool would keep
/// trying to connect for its whole acquire timeout, and a probe wants an
/// answer sooner.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// True when every migration this binary knows has been applied; an error
/// when the database does not answer within [`READINESS_TIMEOUT`].
pub async fn migrations_current(pool: &PgPool) -> anyhow::Result<bool> {
    let latest_known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let applied = tokio::time::timeout(
        READINESS_TIMEOUT,
        crate::store::migrations::latest_applied(pool),
    )
    .await
    .context("the database did not answer in time")??;
    Ok(applied.unwrap_or(0) >= latest_known)
}

#[cfg(test)]
mod tests {
    use super::split_pool;

    #[test]
    fn the_pool_size_is_shared_between_transactions_and_statements() {
        assert_eq!(split_pool(20), (10, 10));
        assert_eq!(split_pool(3), (1, 2));
        assert_eq!(split_pool(2), (1, 1));
    }
}
