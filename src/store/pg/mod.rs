//! The PostgreSQL side of the store, for deployments where several instances share one
//! database: the connection pool, the versioned schema (`schema`), the leases by which
//! instances share the sources' fetches (`leases`), and the write sequence by which they
//! invalidate their caches (`generation`).
//!
//! The store's interface is synchronous (SQLite's calls block, and the daemon makes them on
//! tokio's blocking pool), so this side keeps its async client (tokio-postgres, pooled by
//! deadpool-postgres) on a small runtime of its own and answers each call over a channel: a
//! call blocks its caller the way an SQLite call does, from any thread, inside a runtime or
//! not.

mod generation;
mod leases;
mod schema;
mod session;
#[cfg(test)]
pub(crate) mod testing;

use std::future::Future;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

pub(crate) use generation::note_write_in;
pub use generation::POLL as WRITE_POLL;
pub use leases::{Claim, ClaimRequest, Lease, LeaseRequest};
pub use schema::SCHEMA_VERSION;
pub use session::Session;

/// How long a claim lasts unless renewed, when the config does not say (`[storage]
/// lease_secs`' default).
pub const DEFAULT_LEASE_TTL: chrono::Duration = chrono::Duration::seconds(120);

/// Why a PostgreSQL call failed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("bad PostgreSQL URL: {0}")]
    Url(String),
    /// Not the error's source: its words are in the message already, and tokio-postgres'
    /// chain would say them again ("db error: ERROR: …").
    #[error("PostgreSQL: {}", describe(.0))]
    Sql(tokio_postgres::Error),
    #[error("PostgreSQL connection pool: {0}")]
    Pool(String),
    #[error(
        "PostgreSQL schema version {found} is newer than this build knows ({known}); \
         upgrade tributary"
    )]
    TooNew { found: i32, known: i32 },
    #[error("PostgreSQL runtime: {0}")]
    Runtime(String),
}

/// The server's own words for an error (tokio-postgres shows only "db error"), else the
/// client's.
fn describe(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return crate::error_chain(e);
    };
    let mut text = db.message().to_string();
    for more in [db.detail(), db.hint()].into_iter().flatten() {
        text.push_str(&format!(" ({more})"));
    }
    text
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        PgError::Sql(e)
    }
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => PgError::Sql(e),
            other => PgError::Pool(other.to_string()),
        }
    }
}

/// A pool of connections to one database, migrated to this build's schema.
pub struct Pg {
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// The highest write heard of (`generation`), and the listening connection's backend.
    generation: tokio::sync::watch::Receiver<u64>,
    listener_pid: tokio::sync::watch::Receiver<Option<i32>>,
    /// This instance's name among those sharing the database: what its leases are held by.
    holder: String,
    /// How long this instance's claims last unless renewed (`[storage] lease_secs`).
    lease_ttl: chrono::Duration,
    held: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Drop for Pg {
    fn drop(&mut self) {
        // Dropping a runtime waits for its tasks, which tokio refuses inside another runtime;
        // the pool's connections need no waiting for.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Pg {
    /// Connects to `url` (`postgres://user@host:port/db`) with at most `connections` at once,
    /// and brings the schema up to this build's version (refused when the database's is newer).
    pub fn connect(url: &str, connections: usize) -> Result<Pg, PgError> {
        Pg::connect_polling(url, connections, generation::POLL)
    }

    /// As `connect`, reading the write counter every `poll` besides its notifications.
    pub fn connect_polling(
        url: &str,
        connections: usize,
        poll: std::time::Duration,
    ) -> Result<Pg, PgError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| PgError::Url(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tributary-pg")
            .enable_all()
            .build()
            .map_err(|e| PgError::Runtime(e.to_string()))?;
        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(connections.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| PgError::Pool(e.to_string()))?;
        let (generation_tx, generation) = tokio::sync::watch::channel(0);
        let (pid_tx, listener_pid) = tokio::sync::watch::channel(None);
        let pg = Pg {
            runtime: Some(runtime),
            pool,
            generation,
            listener_pid,
            holder: instance_name(),
            lease_ttl: DEFAULT_LEASE_TTL,
            held: Default::default(),
        };
        pg.run(|pool| async move {
            let mut client = pool.get().await?;
            schema::migrate(&mut client).await
        })?;
        if let Some(runtime) = &pg.runtime {
            runtime.spawn(generation::listen(generation::Listener {
                config,
                generation: generation_tx,
                pid: pid_tx,
                poll,
            }));
        }
        Ok(pg)
    }

    /// Runs `work` on the pool's runtime and waits for its answer.
    fn run<T, F, Fut>(&self, work: F) -> Result<T, PgError>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, PgError>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let future = work(self.pool.clone());
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| PgError::Runtime("the pool was shut down".into()))?;
        runtime.spawn(async move {
            // The caller waits on the other end; if it is gone, nobody needs the answer.
            let _ = tx.send(future.await);
        });
        rx.recv()
            .map_err(|_| PgError::Runtime("the call was dropped before it answered".into()))?
    }

    /// A connection of the pool for the shared store logic's statements (`store::sql`).
    pub fn session(&self) -> Result<Session, PgError> {
        let client = self.run(|pool| async move { Ok(pool.get().await?) })?;
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| PgError::Runtime("the pool was shut down".into()))?;
        Ok(Session {
            runtime: runtime.handle().clone(),
            client: std::sync::Arc::new(client),
            open: Default::default(),
        })
    }

    pub fn lease_ttl(&self) -> chrono::Duration {
        self.lease_ttl
    }

    pub fn set_lease_ttl(&mut self, ttl: chrono::Duration) {
        self.lease_ttl = ttl;
    }

    /// The sources this instance's running fetches hold claims on: only those are renewed.
    pub fn held(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// This instance's name: what its leases are held by.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> Result<i32, PgError> {
        self.run(|pool| async move {
            let client = pool.get().await?;
            schema::version(&client).await
        })
    }
}

/// A name no other instance has: the machine's, the process's id and the time it started.
fn instance_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}:{}:{started}", host.trim(), std::process::id())
}
