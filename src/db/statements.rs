//! Connections for single statements outside a transaction, handed back
//! without a round trip to Postgres.
//!
//! sqlx's pool tests every connection it takes back with a ping (a `Sync`
//! and its `ReadyForQuery`): a second round trip, and a wake-up of Postgres
//! and of the replica, for every statement run on `&PgPool`. At saturation
//! that was about a sixth of the whole box's CPU per lifecycle
//! (BENCHMARKS.md, item 35). The ping guards against a connection left
//! half-way through a statement by a caller that was cancelled, or broken
//! on the wire. [`StatementPool`] knows which of its connections are in
//! that state instead of asking Postgres: one goes back to the idle list
//! only when its statement ran to its end (every answer read, up to the
//! `ReadyForQuery`) or Postgres refused it with an error answer (sqlx reads
//! up to the `ReadyForQuery` before the connection's next statement). A
//! statement dropped before its end, or any other error, closes the
//! connection. As in the transaction pool (`super::connect`), a connection
//! idle for a while (`PING_IDLE_AFTER`, a second) is pinged before it is used, so one
//! that died with a database restart is replaced rather than failing a
//! request.
//!
//! [`Db`] puts the pools behind one handle: as an executor (`&Db`) it runs
//! a statement here; everything else (`begin`, tools that take a `&PgPool`)
//! goes to sqlx's pool through `Deref`, and the notification listener has a
//! pool of its own (`Db::notifications`). Transactions must
//! stay on sqlx's pool: a connection here is handed back as soon as its one
//! statement ends.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use sqlx::postgres::{PgConnectOptions, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Connection, Describe, Either, Execute, Executor, PgConnection, PgPool, Postgres};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The database: sqlx's pool for transactions and the rest, and a
/// [`StatementPool`] for single statements (`&Db` as an executor).
#[derive(Clone, Debug)]
pub struct Db {
    pool: PgPool,
    statements: Arc<StatementPool>,
    notifications: PgPool,
}

impl Db {
    /// `pool` for transactions; `statements` for single statements;
    /// `notifications` for the replica's `LISTEN` connection.
    pub fn new(pool: PgPool, statements: StatementPool, notifications: PgPool) -> Self {
        Self {
            pool,
            statements: Arc::new(statements),
            notifications,
        }
    }

    /// The pool the replica's one `LISTEN` connection comes from, so that
    /// it never holds one of the transactions' connections.
    pub fn notifications(&self) -> &PgPool {
        &self.notifications
    }

    /// sqlx's pool (transactions, migrations, sessions).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The pool of single-statement connections.
    pub fn statements(&self) -> &StatementPool {
        &self.statements
    }
}

impl std::ops::Deref for Db {
    type Target = PgPool;

    fn deref(&self) -> &PgPool {
        &self.pool
    }
}

/// Up to `max` connections for single statements, opened on demand and
/// kept while they stay clean (the module's documentation).
pub struct StatementPool {
    options: PgConnectOptions,
    idle: Mutex<Vec<Idle>>,
    permits: Semaphore,
    max: u32,
    acquire_timeout: Duration,
    ping_idle_after: Duration,
}

struct Idle {
    conn: PgConnection,
    since: Instant,
}

impl std::fmt::Debug for StatementPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatementPool")
            .field("max", &self.max)
            .field("idle", &self.idle_count())
            .finish_non_exhaustive()
    }
}

impl StatementPool {
    /// A pool of up to `max` connections made with `options`; a statement
    /// waits up to `acquire_timeout` for one (`sqlx::Error::PoolTimedOut`).
    pub fn new(
        options: PgConnectOptions,
        max: u32,
        acquire_timeout: Duration,
        ping_idle_after: Duration,
    ) -> Self {
        let max = max.max(1);
        Self {
            options,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(max as usize),
            max,
            acquire_timeout,
            ping_idle_after,
        }
    }

    /// How many connections wait unused.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map_or(0, |idle| idle.len())
    }

    /// Closes the idle connections; statements after this fail with
    /// `sqlx::Error::PoolClosed`, and connections in use close when their
    /// statement ends.
    pub fn close(&self) {
        self.permits.close();
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    /// A connection for one statement: the most recently used idle one
    /// (pinged first if it sat idle long), or a new one.
    async fn acquire(&self) -> Result<Lease<'_>, sqlx::Error> {
        let permit = tokio::time::timeout(self.acquire_timeout, self.permits.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        loop {
            let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            let Some(Idle { mut conn, since }) = idle else {
                break;
            };
            // A dead connection is dropped here, and the next one tried.
            if since.elapsed() < self.ping_idle_after || conn.ping().await.is_ok() {
                return Ok(Lease::new(self, conn, permit));
            }
        }
        let conn = tokio::time::timeout(
            self.acquire_timeout,
            PgConnection::connect_with(&self.options),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
        Ok(Lease::new(self, conn, permit))
    }
}

/// A connection lent for one statement. Dropped, it goes back to the idle
/// list if [`Lease::finish`] found it clean, and is closed otherwise.
struct Lease<'p> {
    pool: &'p StatementPool,
    conn: Option<PgConnection>,
    clean: bool,
    _permit: SemaphorePermit<'p>,
}

impl<'p> Lease<'p> {
    fn new(pool: &'p StatementPool, conn: PgConnection, permit: SemaphorePermit<'p>) -> Self {
        Self {
            pool,
            conn: Some(conn),
            clean: false,
            _permit: permit,
        }
    }

    /// The connection; it is only taken out when the lease is dropped.
    fn conn(&mut self) -> Result<&mut PgConnection, sqlx::Error> {
        self.conn.as_mut().ok_or(sqlx::Error::PoolClosed)
    }

    /// Records how the statement ended: clean if it succeeded or Postgres
    /// answered it with an error.
    fn finish<T>(&mut self, result: &Result<T, sqlx::Error>) {
        self.clean = clean_after(result);
    }
}

/// Whether a connection can take another statement after one that ended
/// with `result`.
fn clean_after<T>(result: &Result<T, sqlx::Error>) -> bool {
    matches!(result, Ok(_) | Err(sqlx::Error::Database(_)))
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        // Runs before the permit is released, so the connection is idle
        // again by the time a waiting statement gets the permit.
        if !self.clean || self.pool.permits.is_closed() {
            return;
        }
        if let (Some(conn), Ok(mut idle)) = (self.conn.take(), self.pool.idle.lock()) {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }
}

type Answer = Either<PgQueryResult, PgRow>;

impl<'p> Executor<'p> for &'p StatementPool {
    type Database = Postgres;

    /// Runs the statement to its end and then yields its answers: a
    /// statement's rows are read whole before the connection goes back, so
    /// a caller that stops reading early cannot leave it half-way.
    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Answer, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let answers = async move {
            let mut lease = match self.acquire().await {
                Ok(lease) => lease,
                Err(err) => return vec![Err(err)],
            };
            let mut answers = Vec::new();
            let mut ended = Ok(());
            match lease.conn() {
                Err(err) => ended = Err(err),
                Ok(conn) => {
                    let mut stream = conn.fetch_many(query);
                    while let Some(answer) = stream.next().await {
                        match answer {
                            Ok(answer) => answers.push(Ok(answer)),
                            Err(err) => {
                                ended = Err(err);
                                break;
                            }
                        }
                    }
                }
            }
            lease.finish(&ended);
            if let Err(err) = ended {
                answers.push(Err(err));
            }
            answers
        };
        Box::pin(futures::stream::once(answers).flat_map(futures::stream::iter))
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        Box::pin(async move {
            let mut lease = self.acquire().await?;
            let row = match lease.conn() {
                Ok(conn) => conn.fetch_optional(query).await,
                Err(err) => Err(err),
            };
            lease.finish(&row);
            row
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement<'q>, sqlx::Error>>
    where
        'p: 'e,
    {
        Box::pin(async move {
            let mut lease = self.acquire().await?;
            let statement = match lease.conn() {
                Ok(conn) => conn.prepare_with(sql, parameters).await,
                Err(err) => Err(err),
            };
            lease.finish(&statement);
            statement
        })
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>>
    where
        'p: 'e,
    {
        Box::pin(async move {
            let mut lease = self.acquire().await?;
            let described = match lease.conn() {
                Ok(conn) => conn.describe(sql).await,
                Err(err) => Err(err),
            };
            lease.finish(&described);
            described
        })
    }
}

impl<'c> Executor<'c> for &'c Db {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Answer, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        self.statements().fetch_many(query)
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        self.statements().fetch_optional(query)
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.statements().prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.statements().describe(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_clean_after_success_or_an_error_answer_only() {
        assert!(clean_after::<()>(&Ok(())));
        assert!(!clean_after::<()>(&Err(sqlx::Error::PoolTimedOut)));
        assert!(!clean_after::<()>(&Err(sqlx::Error::Io(
            std::io::Error::other("reset")
        ))));
        assert!(!clean_after::<()>(&Err(sqlx::Error::Protocol(
            "odd".into()
        ))));
    }
}
