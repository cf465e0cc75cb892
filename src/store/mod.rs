//! Storage: SQLite, or PostgreSQL for instances sharing one database (being brought over
//! concern by concern: `sql` is the statement layer both run, `pg` the PostgreSQL side). The
//! only module that writes SQL.
//!
//! Entries and sources are many-to-many (`entry_sources`): one story carried by several sources
//! is one entry. `entry_keys` maps every identity key (see `normalize::identity_keys`) to its
//! entry, so matching an incoming entry is a few primary-key lookups, never a scan.
//!
//! The database runs in WAL mode with one connection for writes and one for reads, so serving
//! feeds never waits behind a fetch's transaction. Calls block: async callers go through
//! [`Store::call`], which runs them on the blocking pool.
//!
//! This file holds the [`Store`] itself: opening the database, its two connections, and the
//! writer's candidate index. Each concern has a file of its own:
//!
//! - `sql`: the statements both backends run (`sql::Conn`);
//! - `schema`: the migrations, and refusing a database newer than the build;
//! - `sources`: the sources table and the scheduling state kept on it;
//! - `writes`: group commit, and the `writes::Txn` and `writes::Batch` a write group's steps
//!   share;
//! - `entries`: matching entries by their keys, inserting and updating them;
//! - `copies`: each source's own words for an entry it shares;
//! - `clusters`: near-duplicate placement, clusters as components of matched pairs, the
//!   canonical member;
//! - `search`: the FTS5 index and search conditions;
//! - `reads`: what feeds and `tributary export` read;
//! - `packed`: long texts stored zstd-compressed;
//! - `retention`: pruning what `keep_days` / `keep_entries` let go;
//! - `backup`: copies of the live store, and restoring one.

mod backup;
mod clusters;
mod copies;
mod entries;
mod indexer;
mod migrate;
mod packed;
pub mod pg;
mod readers;
mod reads;
mod retention;
mod schema;
mod search;
mod sources;
pub(crate) mod sql;
#[cfg(test)]
mod testing;
mod writes;

pub use backup::{Backup, Restored};
pub use clusters::ClusterMember;
pub use entries::ArticleNeed;
pub use indexer::verify_search_index;
pub use reads::{ExportEntry, PageRead, MAX_SCAN};
pub use retention::{PruneReport, PruneRequest, TOMBSTONE_GRACE};
pub use sources::{FetchRecord, SourceState};
pub use writes::{StoreFetch, UpsertCounts};

use std::path::Path;
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::Connection;

use crate::dedupe::index::CandidateIndex;
use sql::Conn;
use writes::WriteQueue;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("cannot create the database's folder: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "database schema version {found} is newer than this build knows ({known}); \
         upgrade tributary"
    )]
    TooNew { found: i64, known: i64 },
    #[error("not an SQLite database (another file, encrypted, or damaged); it was not changed")]
    NotADatabase,
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database lock poisoned by a panic in another thread")]
    Poisoned,
    /// A group commit failed; every fetch in the group gets the cause.
    #[error("database: {0}")]
    Group(String),
    /// A backup could not be written or failed its check.
    #[error("backup: {0}")]
    Backup(String),
    /// A store could not be copied into another.
    #[error("migrate: {0}")]
    Migrate(String),
    /// A PostgreSQL store's call failed.
    #[error("{0}")]
    Pg(#[from] pg::PgError),
    /// A column held another type than the statement reads.
    #[error("database: {0}")]
    Column(String),
    /// What only the PostgreSQL store does (instances sharing the database).
    #[error("{0} need the PostgreSQL store")]
    PgOnly(&'static str),
    /// What the PostgreSQL store cannot do yet (issue 21 is bringing each part over).
    #[error("not yet on PostgreSQL: {0}")]
    NotYet(&'static str),
    /// The blocking task a call ran on panicked or was cancelled.
    #[error("database task failed: {0}")]
    Task(String),
}

impl StoreError {
    pub(crate) fn from_pg(e: tokio_postgres::Error) -> StoreError {
        StoreError::Pg(pg::PgError::Sql(e))
    }
}

/// Prepared statements kept per connection (see `Store::open`).
const STATEMENT_CACHE: usize = 128;

/// The one connection that writes, and what it keeps in memory for placing entries.
struct Writer {
    conn: WriteConn,
    /// Candidate keys of the days placements needed lately (see `dedupe::index`).
    candidates: CandidateIndex,
    /// `PRAGMA data_version` when `candidates` was last known to mirror the database.
    data_version: i64,
    /// How far the search index has come (the queue rows it has done are dropped), and
    /// where to say that more is queued.
    search: Arc<indexer::Progress>,
}

/// What writes: SQLite's one connection, or PostgreSQL's pool (a session per write).
enum WriteConn {
    Lite(Connection),
    Pg,
}

/// The backend behind the store.
enum Engine {
    Lite {
        /// The search index's thread (see `indexer`).
        search: indexer::SearchIndex,
        readers: readers::Readers,
        /// The lock a restore waits for (see `backup`). Fields drop in order: this one last,
        /// once every connection is closed.
        _in_use: backup::InUse,
    },
    Pg(pg::Pg),
}

/// Memory the candidate keys may keep between groups of writes. At ~500 bytes an entry (~20
/// keys of 12 bytes in a table at most 7/8 full, its times and figures) that is ~270 k
/// entries in the dedupe window; below that no day is evicted and loaded again, which is what
/// made an entry's cost grow with the store when the bound was 32 k entries.
const CANDIDATE_MEMORY: usize = 128 << 20;

impl Writer {
    /// SQLite's writing connection, for what is not yet written for both backends.
    fn lite(&self) -> Result<&Connection, StoreError> {
        match &self.conn {
            WriteConn::Lite(conn) => Ok(conn),
            WriteConn::Pg => Err(StoreError::NotYet("this write")),
        }
    }

    /// Starts a group of writes. Another connection's commit (another `tributary` process)
    /// may have stored entries the index does not hold: then it is dropped, and reloaded as
    /// needed. The write lock is taken first, so that nothing can commit between the check and
    /// the group's reads.
    fn begin(&mut self) -> Result<(rusqlite::Transaction<'_>, &mut CandidateIndex), StoreError> {
        let WriteConn::Lite(conn) = &mut self.conn else {
            return Err(StoreError::NotYet("writing entries"));
        };
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if version != self.data_version {
            self.candidates.clear();
            self.data_version = version;
        }
        self.candidates.begin();
        Ok((tx, &mut self.candidates))
    }

    /// Ends a group: a rolled-back one leaves the index ahead of the database, so it is
    /// dropped.
    fn end<T>(&mut self, result: &Result<T, StoreError>) {
        match result {
            Ok(_) => self.candidates.trim(),
            Err(_) => self.candidates.clear(),
        }
    }
}

pub struct Store {
    writer: Mutex<Writer>,
    /// Fetches waiting for the writer (see [`Store::store_fetch`]).
    queue: Mutex<WriteQueue>,
    /// Feed queries run (GET /metrics shows it; a cached 304 must not move it).
    queries: std::sync::atomic::AtomicU64,
    /// Bumped by every write through this store, so readers can cache what they rendered.
    generation: std::sync::atomic::AtomicU64,
    /// Last: its SQLite lock outlives every connection.
    engine: Engine,
}

impl Store {
    /// Runs `f` on the store from async code: on the blocking pool, so a slow query never
    /// stalls the runtime's workers.
    pub async fn call<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
                path: path.display().to_string(),
                source,
            })?;
        }
        let not_a_database = |e: StoreError| match e {
            StoreError::Sql(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::NotADatabase =>
            {
                StoreError::NotADatabase
            }
            e => e,
        };
        let in_use = backup::in_use(path)?;
        let mut writer = open_connection(path).map_err(not_a_database)?;
        // The writer walks the indexes of every new entry (keys, dedupe buckets, search): a
        // 16 MiB page cache keeps their upper levels in memory (the default is 2 MiB).
        writer.pragma_update(None, "cache_size", -16_384)?;
        schema::incremental_vacuum(&writer, "the store").map_err(not_a_database)?;
        schema::migrate(&mut writer).map_err(not_a_database)?;
        let search = indexer::SearchIndex::start(path, &mut writer)?;
        let reader = open_reader(path)?;
        let path = path.to_path_buf();
        let writer = Writer {
            conn: WriteConn::Lite(writer),
            candidates: CandidateIndex::new(CANDIDATE_MEMORY),
            data_version: -1,
            search: search.progress().clone(),
        };
        Ok(Store {
            writer: Mutex::new(writer),
            queue: Mutex::default(),
            queries: Default::default(),
            generation: Default::default(),
            engine: Engine::Lite {
                search,
                readers: readers::Readers::new(reader, move || open_reader(&path)),
                _in_use: in_use,
            },
        })
    }

    /// The store `config` names: its PostgreSQL database (`[storage] url`, with its
    /// connections and lease) when it has one, else its SQLite file.
    pub fn open_configured(config: &crate::config::Config) -> Result<Store, StoreError> {
        match &config.storage_url {
            Some(pg) => Ok(Store::open_pg(&pg.url, pg.connections)?.with_lease_ttl(pg.lease)),
            None => Store::open(&config.storage_path),
        }
    }

    /// Opens the PostgreSQL store at `url` (`postgres://user@host/db`), with at most
    /// `connections` at once, bringing its schema up to date.
    pub fn open_pg(url: &str, connections: usize) -> Result<Store, StoreError> {
        let pg = pg::Pg::connect(url, connections)?;
        let writer = Writer {
            conn: WriteConn::Pg,
            candidates: CandidateIndex::new(CANDIDATE_MEMORY),
            data_version: -1,
            search: Arc::default(),
        };
        Ok(Store {
            writer: Mutex::new(writer),
            queue: Mutex::default(),
            queries: Default::default(),
            generation: Default::default(),
            engine: Engine::Pg(pg),
        })
    }

    /// Runs `read` on a connection of the reading side.
    fn read<T>(
        &self,
        read: impl FnOnce(Conn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &self.engine {
            Engine::Lite { readers, .. } => read(Conn::Lite(&*readers.get()?)),
            Engine::Pg(pg) => read(Conn::Pg(&pg.session()?)),
        }
    }

    /// Runs `read` in one read transaction: every statement sees the store as of one moment.
    fn snapshot<T>(
        &self,
        read: impl FnOnce(Conn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &self.engine {
            Engine::Lite { readers, .. } => {
                let reader = readers.get()?;
                let tx = reader.unchecked_transaction()?;
                read(Conn::Lite(&tx))
            }
            Engine::Pg(pg) => pg.session()?.snapshot(read),
        }
    }

    /// Runs `write` on the writing side, outside any transaction (one statement, or
    /// statements each right on its own).
    fn write<T>(
        &self,
        write: impl FnOnce(Conn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let writer = self.writer()?;
        match (&writer.conn, &self.engine) {
            (WriteConn::Lite(conn), _) => write(Conn::Lite(conn)),
            (WriteConn::Pg, Engine::Pg(pg)) => write(Conn::Pg(&pg.session()?)),
            (WriteConn::Pg, Engine::Lite { .. }) => Err(StoreError::Poisoned),
        }
    }

    /// Runs `work` in one transaction on the writing side: committed when it succeeds,
    /// rolled back when it fails.
    fn transaction<T>(
        &self,
        work: impl FnOnce(Conn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut writer = self.writer()?;
        match (&mut writer.conn, &self.engine) {
            (WriteConn::Lite(conn), _) => {
                let tx = conn.transaction()?;
                let done = work(Conn::Lite(&tx))?;
                tx.commit()?;
                Ok(done)
            }
            (WriteConn::Pg, Engine::Pg(pg)) => pg.session()?.transaction(work),
            (WriteConn::Pg, Engine::Lite { .. }) => Err(StoreError::Poisoned),
        }
    }

    fn writer(&self) -> Result<MutexGuard<'_, Writer>, StoreError> {
        // Whoever takes the writer may change what feeds show.
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.writer.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Changes whenever this store may have written anything. On SQLite other processes' writes
    /// are not seen (caches also expire by age); on PostgreSQL other instances' are, within
    /// `pg::WRITE_POLL`.
    pub fn generation(&self) -> u64 {
        let own = self.generation.load(std::sync::atomic::Ordering::Relaxed);
        match &self.engine {
            Engine::Lite { .. } => own,
            // Both only grow: their sum moves when either does.
            Engine::Pg(pg) => own.wrapping_add(pg.generation()),
        }
    }

    /// How many feed queries have run.
    pub fn feed_queries(&self) -> u64 {
        self.queries.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A connection of the PostgreSQL store, for `what` only it does (leases).
    fn pg_session(&self, what: &'static str) -> Result<pg::Session, StoreError> {
        match &self.engine {
            Engine::Pg(pg) => Ok(pg.session()?),
            Engine::Lite { .. } => Err(StoreError::PgOnly(what)),
        }
    }

    /// SQLite's reading side, for what is not yet written for both backends.
    fn reader(&self) -> Result<readers::Reader<'_>, StoreError> {
        match &self.engine {
            Engine::Lite { readers, .. } => readers.get(),
            Engine::Pg(_) => Err(StoreError::NotYet("this read")),
        }
    }

    /// Blocks until the search index holds every entry stored before the call. Searches are
    /// exact without it (they read the text of what the index has not reached); this is for
    /// what inspects the index itself, and for tests. Fails with the cause when the index
    /// could not index what is queued.
    pub fn wait_for_search_index(&self) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Lite { search, .. } => search.progress().wait_until_idle(),
            Engine::Pg(_) => Ok(()),
        }
    }

    /// Answers when the database does: for health checks.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| c.query_one("SELECT 1", &[], |_| Ok(())))
    }
}

/// The SQLite file at `path` in WAL mode, waiting up to 5 s for another writer's lock: the
/// store's and its search index's connections all start so.
fn open_wal(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.display().to_string(),
        source,
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    Ok(conn)
}

/// A connection to the database at `path`, set up as every one of the store's is.
fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = open_wal(path)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    packed::register(&conn)?;
    // Checkpoint every ~40 MB of WAL rather than 4 MB: index pages that many
    // commits touch are copied into the database once instead of once per 4 MB.
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    // The writer runs some forty statements per group; rusqlite keeps 16 prepared by
    // default, and a statement pushed out is compiled again on its next use.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// A read connection: the store's database, with the search index attached as `search`.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = open_connection(path)?;
    let index = indexer::index_path(path);
    conn.execute("ATTACH DATABASE ?1 AS search", [index.to_string_lossy()])?;
    Ok(conn)
}

fn json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

fn from_json(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn from_unix(ts: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(ts, 0).single().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::testing::{entry, feed, put, scratch, BODY};
    use crate::model::Scope;

    /// Another `tributary` process's commit (here: its keys pruned) is not in the index: the
    /// next group drops the index and decides on the database as it is.
    #[test]
    fn another_connections_commit_drops_the_candidate_index() {
        let s = scratch();
        put(
            &s.store,
            "first",
            &[entry("first", "park", "Park plan approved", BODY)],
        );
        assert!(!s.store.writer().expect("writer").candidates.is_empty());
        let other = rusqlite::Connection::open(&s.path).expect("second connection");
        other
            .execute("DELETE FROM dedupe_sigs", [])
            .expect("keys removed elsewhere");
        {
            let mut writer = s.store.writer().expect("writer");
            let (tx, candidates) = writer.begin().expect("begin");
            assert!(
                candidates.is_empty(),
                "the index no longer mirrors the database"
            );
            drop(tx);
        }
        // The first story's keys are gone from the database, so its copy finds nothing.
        let copy = entry("second", "park", "Council approves park plan", BODY);
        assert_eq!(put(&s.store, "second", &[copy]).merged, 0);
        let merged = feed(&s.store, Scope::All);
        assert_eq!(merged.len(), 2);
    }
}
