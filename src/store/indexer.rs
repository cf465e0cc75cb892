//! The search index in a database file of its own (`<store>.search`), kept by a thread of its
//! own, so that tokenizing and merging the index no longer happens on the writer's
//! transaction: the writer only queues the ids of entries whose text is new or changed
//! (`search_queue`, in the same transaction as the text), and this thread indexes what is
//! queued in large batches, on the other core.
//!
//! The index is contentless (it keeps no text), with `contentless_delete` so an entry is taken
//! out by its id. Which queue position it has reached is committed with its tokens, so a crash
//! loses nothing: on start it goes on from there. An index file that is missing, or was made
//! for another store (its token differs from the store's), is built again from every entry.
//! Searches stay exact while it lags: `search` also looks at the entries still queued and
//! checks every match on the stored text.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use rusqlite::{params, Connection, OptionalExtension};

use super::StoreError;

/// Queued entries indexed per transaction: large batches, since FTS5 writes its pending terms
/// out (and may merge segments) at every commit.
const BATCH: i64 = 5_000;

/// On close, a backlog up to this many entries is indexed before the store is let go (a
/// `tributary fetch` leaves a complete index); a longer one (a rebuild) waits for the next
/// start, and searches meanwhile read the text.
const DRAIN_ON_CLOSE: i64 = 20_000;

const SCHEMA: &str = "
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(text, content = '', contentless_delete = 1,
    tokenize = 'trigram', detail = 'none');
CREATE VIRTUAL TABLE IF NOT EXISTS fts_terms USING fts5vocab(fts, 'row');
CREATE TABLE IF NOT EXISTS progress (
    one    INTEGER PRIMARY KEY CHECK (one = 1),
    -- The store this index belongs to (its search_index.token).
    token  TEXT NOT NULL,
    -- Every search_queue row up to this one is indexed.
    seq    INTEGER NOT NULL,
    -- The highest entry id indexed: ids only grow, so an entry above it has nothing in the
    -- index to take out first.
    newest INTEGER NOT NULL DEFAULT 0
);
";

/// The index file next to the store's: `data/tributary.db` → `data/tributary.db.search`.
pub(super) fn index_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".search");
    PathBuf::from(name)
}

/// What the writer and the index thread share.
#[derive(Default)]
pub(super) struct Progress {
    state: Mutex<State>,
    /// The thread waits on it for work (or the stop).
    wake: Condvar,
    /// Waiters on [`Progress::wait_until_idle`].
    idle: Condvar,
}

#[derive(Default)]
struct State {
    /// The queue position indexed and committed.
    indexed: i64,
    /// Work was queued since the thread last looked.
    queued: bool,
    /// Nothing is left in the queue (as of the thread's last look), or indexing failed.
    caught_up: bool,
    /// Why the last batch failed, until one succeeds.
    failed: Option<String>,
    stop: bool,
}

impl Progress {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few integers, consistent at every unlock: a panic elsewhere leaves
        // nothing half-written.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every queue row up to this one is in the index (the writer drops them).
    pub(super) fn indexed(&self) -> i64 {
        self.state().indexed
    }

    /// A write group queued entries and committed.
    pub(super) fn queued(&self) {
        let mut s = self.state();
        s.queued = true;
        s.caught_up = false;
        self.wake.notify_one();
    }

    /// Blocks until the thread has indexed everything queued before the call, or failed to.
    pub(super) fn wait_until_idle(&self) -> Result<(), StoreError> {
        let mut s = self.state();
        while !s.caught_up && !s.stop {
            s = self.idle.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        match &s.failed {
            Some(e) => Err(StoreError::Task(format!("search index: {e}"))),
            None => Ok(()),
        }
    }
}

/// The index thread; stopped (after a short backlog is indexed) when dropped.
pub(super) struct SearchIndex {
    progress: Arc<Progress>,
    thread: Option<JoinHandle<()>>,
}

impl SearchIndex {
    /// Opens the index of the store at `store` (creating or rebuilding it when needed, through
    /// the store's `writer`) and starts its thread.
    pub(super) fn start(store: &Path, writer: &mut Connection) -> Result<SearchIndex, StoreError> {
        let path = index_path(store);
        let index = open_index(&path)?;
        let token: Option<String> = writer
            .query_row("SELECT token FROM search_index", [], |r| r.get(0))
            .optional()?;
        let theirs: Option<(String, i64)> = index
            .query_row("SELECT token, seq FROM progress", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let indexed = match (token, theirs) {
            (Some(ours), Some((theirs, seq))) if ours == theirs => seq,
            _ => rebuild(writer, &index)?,
        };
        let progress = Arc::new(Progress::default());
        progress.state().indexed = indexed;
        progress.queued();
        let main = super::open_connection(store)?;
        let shared = progress.clone();
        let thread = std::thread::Builder::new()
            .name("search-index".into())
            .spawn(move || run(&shared, &main, index))
            .map_err(|e| StoreError::Task(format!("cannot start the search index: {e}")))?;
        Ok(SearchIndex {
            progress,
            thread: Some(thread),
        })
    }

    pub(super) fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }
}

impl Drop for SearchIndex {
    fn drop(&mut self) {
        self.progress.state().stop = true;
        self.progress.wake.notify_one();
        self.progress.idle.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn open_index(path: &Path) -> Result<Connection, StoreError> {
    let conn = super::open_wal(path)?;
    // FULL: the writer drops the queue rows an index commit covers, in the other file, so that
    // commit must survive a power loss (NORMAL may lose a WAL commit). Commits are batches of
    // thousands of entries, so the sync is rare.
    conn.pragma_update(None, "synchronous", "FULL")?;
    super::schema::incremental_vacuum(&conn, "the search index")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// Free pages the index file keeps before the thread gives them back (a prune's deletions,
/// merged away): 4 MiB.
const KEEP_FREE_PAGES: i64 = 1_024;

/// Gives the index file's free pages back to the file system, once there are many.
fn give_back_space(index: &Connection) -> Result<(), StoreError> {
    let free: i64 = index.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    if free > KEEP_FREE_PAGES {
        super::schema::vacuum_pages(index, None)?;
    }
    Ok(())
}

/// Starts the index again: empty, with a new token, and every stored entry queued.
fn rebuild(writer: &mut Connection, index: &Connection) -> Result<i64, StoreError> {
    // Unique enough to tell this index from one made for another store, or before a restore.
    let token = blake3::hash(
        format!("{:?} {}", std::time::SystemTime::now(), std::process::id()).as_bytes(),
    )
    .to_hex()[..16]
        .to_string();
    let tx = writer.transaction()?;
    tx.execute_batch(
        "DELETE FROM search_queue;
         DELETE FROM search_index;
         INSERT INTO search_queue (entry_id) SELECT id FROM entries ORDER BY id;",
    )?;
    tx.execute("INSERT INTO search_index (token) VALUES (?1)", [&token])?;
    let start: i64 = tx.query_row(
        "SELECT COALESCE(MIN(seq), 1) - 1 FROM search_queue",
        [],
        |r| r.get(0),
    )?;
    let queued: i64 = tx.query_row("SELECT COUNT(*) FROM search_queue", [], |r| r.get(0))?;
    // The index first, then the store: a crash between leaves tokens that differ, and the
    // next start builds it again.
    index.execute_batch(
        "BEGIN; INSERT INTO fts (fts) VALUES ('delete-all'); DELETE FROM progress;",
    )?;
    index.execute(
        "INSERT INTO progress (one, token, seq) VALUES (1, ?1, ?2)",
        params![token, start],
    )?;
    index.execute_batch("COMMIT")?;
    tx.commit()?;
    if queued > 0 {
        tracing::info!(
            entries = queued,
            "building the search index; searches read the text until it is done"
        );
    }
    Ok(start)
}

/// Entries taken out (a prune) after which the index is compacted: FTS5 marks a deleted
/// entry in its segments and only a merge drops it; after a prune of nine in ten entries the
/// file had grown by half (BENCHMARKS.md, "Retention").
const COMPACT_AFTER: usize = if cfg!(test) { 8 } else { 10_000 };

/// A compaction waits for this long without new work (a prune's batches keep coming), unless
/// more was taken out than is left (then it cannot wait: a daemon may never be idle so long).
const COMPACT_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// What the thread has taken out of the index since its last compaction.
#[derive(Default)]
struct Removals {
    since_compaction: usize,
    /// Entries in the index when it was last counted, and the removals by then.
    counted: Option<(usize, usize)>,
}

impl Removals {
    /// Whether the index must be compacted now, idle or not: more taken out than is left.
    fn overdue(&mut self, index: &Connection) -> Result<bool, StoreError> {
        if self.since_compaction < COMPACT_AFTER {
            return Ok(false);
        }
        let (rows, at) = match self.counted {
            Some(c) => c,
            None => {
                let rows: i64 =
                    index.query_row("SELECT COUNT(*) FROM fts_docsize", [], |r| r.get(0))?;
                *self
                    .counted
                    .insert((rows.max(0) as usize, self.since_compaction))
            }
        };
        let left = rows.saturating_sub(self.since_compaction - at);
        Ok(self.since_compaction >= left)
    }

    fn compacted(&mut self) {
        *self = Removals::default();
    }
}

/// Merges the index into one segment, dropping what deleted entries left, and gives the pages
/// back.
fn compact(index: &Connection, removals: &mut Removals) {
    let started = std::time::Instant::now();
    let done = index
        .execute("INSERT INTO fts (fts) VALUES ('optimize')", [])
        .map_err(StoreError::from)
        .and_then(|_| super::schema::vacuum_pages(index, None));
    match done {
        Ok(()) => tracing::info!(
            removed = removals.since_compaction,
            secs = started.elapsed().as_secs_f64(),
            "search index compacted after a prune"
        ),
        Err(e) => tracing::warn!(error = %e, "search index: cannot compact"),
    }
    removals.compacted();
}

/// Waits for work; meanwhile, once the thread has been idle for [`COMPACT_IDLE`] after a
/// prune, compacts the index.
fn wait_for_work(progress: &Progress, index: &Connection, removals: &mut Removals) {
    let mut s = progress.state();
    while !s.queued && !s.stop {
        if removals.since_compaction < COMPACT_AFTER {
            s = progress.wake.wait(s).unwrap_or_else(|p| p.into_inner());
            continue;
        }
        let (next, waited) = progress
            .wake
            .wait_timeout(s, COMPACT_IDLE)
            .unwrap_or_else(|p| p.into_inner());
        s = next;
        if waited.timed_out() && !s.queued && !s.stop {
            drop(s);
            compact(index, removals);
            s = progress.state();
        }
    }
    s.queued = false;
}

/// The thread: index whatever is queued, then wait for more.
fn run(progress: &Progress, main: &Connection, mut index: Connection) {
    let mut removals = Removals::default();
    loop {
        wait_for_work(progress, &index, &mut removals);
        loop {
            let stopping = progress.state().stop;
            if stopping && backlog(main, progress.indexed()).unwrap_or(i64::MAX) > DRAIN_ON_CLOSE {
                return;
            }
            match index_batch(main, &mut index) {
                Ok(Batch {
                    reached,
                    more,
                    removed,
                }) => {
                    removals.since_compaction += removed;
                    let mut s = progress.state();
                    s.indexed = reached;
                    s.failed = None;
                    drop(s);
                    if removals.overdue(&index).unwrap_or(false) {
                        compact(&index, &mut removals);
                    }
                    if !more {
                        break;
                    }
                }
                Err(e) => {
                    // Tried again when more is queued; searches read the text meanwhile.
                    tracing::warn!(error = %e, "search index: cannot index queued entries");
                    progress.state().failed = Some(e.to_string());
                    break;
                }
            }
        }
        if let Err(e) = give_back_space(&index) {
            tracing::warn!(error = %e, "search index: cannot give free pages back");
        }
        let mut s = progress.state();
        if !s.queued {
            s.caught_up = true;
            progress.idle.notify_all();
        }
        if s.stop {
            return;
        }
    }
}

fn backlog(main: &Connection, from: i64) -> Result<i64, StoreError> {
    Ok(main.query_row(
        "SELECT COUNT(*) FROM search_queue WHERE seq > ?1",
        [from],
        |r| r.get(0),
    )?)
}

/// Where a batch left the index.
struct Batch {
    /// Every queue row up to this one is indexed.
    reached: i64,
    /// The batch was full: more may be queued.
    more: bool,
    /// Entries taken out of the index and not put back (no longer stored: pruned).
    removed: usize,
}

/// Indexes a batch of the queue after the position the index records: each entry's text as
/// it is now (none for an entry no longer stored). The index's write lock is taken first, so
/// that two processes on one store (the daemon and a `tributary fetch`) never index one row
/// twice: the second finds the position moved.
fn index_batch(main: &Connection, index: &mut Connection) -> Result<Batch, StoreError> {
    let tx = index.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (from, newest): (i64, i64) = tx.query_row("SELECT seq, newest FROM progress", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    // One read of the store: the queue and the texts as of the same moment.
    let read = main.unchecked_transaction()?;
    let queued: Vec<(i64, i64)> = read
        .prepare_cached(
            "SELECT seq, entry_id FROM search_queue WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?
        .query_map(params![from, BATCH], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let Some(&(to, _)) = queued.last() else {
        return Ok(Batch {
            reached: from,
            more: false,
            removed: 0,
        });
    };
    let mut ids: Vec<i64> = queued.iter().map(|&(_, id)| id).collect();
    ids.sort_unstable();
    ids.dedup();
    let json = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
    let texts: Vec<(i64, String)> = read
        .prepare_cached(
            "SELECT entry_id, text FROM search_text
             WHERE entry_id IN (SELECT value FROM json_each(?1))",
        )?
        .query_map([json], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    drop(read);
    {
        let mut remove = tx.prepare_cached("DELETE FROM fts WHERE rowid = ?1")?;
        for &id in ids.iter().filter(|&&id| id <= newest) {
            remove.execute([id])?;
        }
        let mut insert = tx.prepare_cached("INSERT INTO fts (rowid, text) VALUES (?1, ?2)")?;
        for (id, text) in &texts {
            insert.execute(params![id, text])?;
        }
        let newest = newest.max(ids.last().copied().unwrap_or(0));
        tx.prepare_cached("UPDATE progress SET seq = ?1, newest = ?2")?
            .execute([to, newest])?;
    }
    tx.commit()?;
    // Every stored entry has a text: an id without one is no longer stored.
    let removed = ids.len().saturating_sub(texts.len());
    Ok(Batch {
        reached: to,
        more: queued.len() as i64 == BATCH,
        removed,
    })
}

/// Checks the search index of the store at `path` against the store, open or not, without
/// changing either: FTS5's own check of its structure; every entry either indexed or still
/// queued; nothing indexed that is not an entry (or queued); and, when nothing is queued, the
/// index's terms with their entry counts equal those of an index built afresh from the text
/// (an entry indexed twice, or with an old text, fails). For restores and tests: it reads
/// every entry and builds that second index in memory.
pub fn verify_search_index(path: &Path) -> Result<(), String> {
    let fail = |e: rusqlite::Error| format!("{}: {e}", index_path(path).display());
    let conn = super::open_reader(path).map_err(|e| e.to_string())?;
    let read = conn.unchecked_transaction().map_err(fail)?;
    let ids = |sql: &str| -> Result<std::collections::BTreeSet<i64>, String> {
        read.prepare(sql)
            .and_then(|mut q| q.query_map([], |r| r.get(0))?.collect())
            .map_err(fail)
    };
    // The queue first, then the index (as searches read them).
    let queue: Vec<(i64, i64)> = read
        .prepare("SELECT seq, entry_id FROM search_queue")
        .and_then(|mut q| q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .map_err(fail)?;
    let done: i64 = read
        .query_row("SELECT seq FROM search.progress", [], |r| r.get(0))
        .map_err(fail)?;
    let queued: std::collections::BTreeSet<i64> = queue
        .iter()
        .filter(|&&(seq, _)| seq > done)
        .map(|&(_, id)| id)
        .collect();
    let indexed = ids("SELECT rowid FROM search.fts")?;
    let entries = ids("SELECT entry_id FROM search_text")?;
    read.execute(
        "INSERT INTO search.fts (fts, rank) VALUES ('integrity-check', 0)",
        [],
    )
    .map_err(fail)?;
    if let Some(id) = entries
        .iter()
        .find(|id| !indexed.contains(id) && !queued.contains(id))
    {
        return Err(format!(
            "entry {id} is neither in the search index nor queued for it"
        ));
    }
    if let Some(id) = indexed
        .iter()
        .find(|id| !entries.contains(id) && !queued.contains(id))
    {
        return Err(format!("the search index holds {id}, which is no entry"));
    }
    if !queued.is_empty() {
        return Ok(());
    }
    read.execute_batch(
        "CREATE VIRTUAL TABLE temp.expected USING fts5(text, content = '',
             tokenize = 'trigram', detail = 'none');
         CREATE VIRTUAL TABLE temp.expected_terms USING fts5vocab(temp, expected, 'row');
         INSERT INTO temp.expected (rowid, text) SELECT entry_id, text FROM search_text;",
    )
    .map_err(fail)?;
    let differ: Option<(String, i64)> = read
        .query_row(
            "SELECT term, doc FROM (SELECT term, doc FROM search.fts_terms
                                    EXCEPT SELECT term, doc FROM temp.expected_terms)
             UNION ALL
             SELECT term, -doc FROM (SELECT term, doc FROM temp.expected_terms
                                     EXCEPT SELECT term, doc FROM search.fts_terms)
             LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(fail)?;
    match differ {
        Some((term, doc)) if doc >= 0 => Err(format!(
            "the search index has {term:?} in {doc} entries, their text in another number"
        )),
        Some((term, doc)) => Err(format!(
            "the entries' text has {term:?} in {} entries, the search index in another number",
            -doc
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::search::rare_term_matches;
    use super::super::testing::{entry, put, scratch, search_titles, Scratch, OTHER};
    use super::*;
    use crate::model::Entry;

    /// A story sharing no words with the others of these tests.
    fn railway() -> Entry {
        entry(
            "second",
            "b",
            "Mountain railway reopens",
            "The mountain railway reopens after repairs to the upper station.",
        )
    }

    /// What the index itself finds for `term` (not the queue, not the text).
    fn indexed(s: &Scratch, term: &str) -> Option<Vec<i64>> {
        s.store.wait_for_search_index().expect("indexed");
        let reader = s.store.reader().expect("reader");
        rare_term_matches(&reader, term).expect("index")
    }

    fn rows(s: &Scratch) -> i64 {
        let reader = s.store.reader().expect("reader");
        reader
            .query_row("SELECT COUNT(*) FROM search.fts", [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn the_index_goes_on_from_where_it_was_and_holds_each_entry_once() {
        let s = scratch();
        put(
            &s.store,
            "first",
            &[entry("first", "a", "Harbour ferry timetable", OTHER)],
        );
        assert_eq!(indexed(&s, "ferry").map(|f| f.len()), Some(1));
        let s = s.reopen();
        put(&s.store, "second", &[railway()]);
        assert_eq!(indexed(&s, "ferry").map(|f| f.len()), Some(1));
        assert_eq!(indexed(&s, "railway").map(|f| f.len()), Some(1));
        assert_eq!(rows(&s), 2);
        // An edit replaces the entry's row: still two, and the old words are gone.
        put(
            &s.store,
            "first",
            &[entry("first", "a", "Harbour bus timetable", OTHER)],
        );
        assert_eq!(indexed(&s, "ferry"), Some(vec![]));
        assert_eq!(rows(&s), 2);
    }

    #[test]
    fn a_lost_index_or_one_made_for_another_store_is_built_again() {
        let s = scratch();
        put(
            &s.store,
            "first",
            &[entry("first", "a", "Harbour ferry timetable", OTHER)],
        );
        let other = scratch();
        put(
            &other.store,
            "first",
            &[entry(
                "first",
                "z",
                "Glacier trail closed",
                "The glacier trail is closed for the winter season.",
            )],
        );
        other.store.wait_for_search_index().expect("indexed");
        s.store.wait_for_search_index().expect("indexed");
        let index = index_path(&s.path);
        drop(other.store);
        // Another store's index in this one's place: built again from this store's entries.
        let copy = |from: &Path, to: &Path| {
            std::fs::copy(from, to).expect("copy");
            for suffix in ["-wal", "-shm"] {
                let mut to = to.as_os_str().to_owned();
                to.push(suffix);
                let _ = std::fs::remove_file(to);
            }
        };
        let s = s.reopen_with(|| copy(&index_path(&other.path), &index));
        assert_eq!(indexed(&s, "glacier"), Some(vec![]));
        assert_eq!(indexed(&s, "ferry").map(|f| f.len()), Some(1));
        // No index file at all: built again too.
        let s = s.reopen_with(|| {
            std::fs::remove_file(&index).expect("index removed");
        });
        assert_eq!(indexed(&s, "ferry").map(|f| f.len()), Some(1));
        assert_eq!(
            search_titles(&s.store, "ferry"),
            ["Harbour ferry timetable"]
        );
    }

    /// While the index cannot keep up (here: another connection holds its write lock), new
    /// entries are still found, and an edit is not found by its old words.
    #[test]
    fn searches_are_exact_while_the_index_lags() {
        let s = scratch();
        put(
            &s.store,
            "first",
            &[entry("first", "a", "Harbour ferry timetable", OTHER)],
        );
        s.store.wait_for_search_index().expect("indexed");
        let blocker = Connection::open(index_path(&s.path)).expect("index file");
        blocker
            .execute_batch("BEGIN IMMEDIATE")
            .expect("the index's write lock");
        put(&s.store, "second", &[railway()]);
        put(
            &s.store,
            "first",
            &[entry("first", "a", "Harbour bus timetable", OTHER)],
        );
        assert_eq!(
            search_titles(&s.store, "railway"),
            ["Mountain railway reopens"]
        );
        assert_eq!(search_titles(&s.store, "ferry"), Vec::<String>::new());
        assert_eq!(search_titles(&s.store, "bus"), ["Harbour bus timetable"]);
        // The index has not seen them: what it says is stale.
        {
            let reader = s.store.reader().expect("reader");
            assert_eq!(
                rare_term_matches(&reader, "railway").expect("index"),
                Some(vec![])
            );
            assert_eq!(
                rare_term_matches(&reader, "ferry")
                    .expect("index")
                    .map(|f| f.len()),
                Some(1)
            );
        }
        blocker.execute_batch("COMMIT").expect("lock released");
        drop(blocker);
        // The next write wakes it; then the index agrees.
        put(
            &s.store,
            "third",
            &[entry(
                "third",
                "c",
                "Library weekend hours",
                "The library opens at weekends from next month.",
            )],
        );
        assert_eq!(indexed(&s, "railway").map(|f| f.len()), Some(1));
        assert_eq!(indexed(&s, "ferry"), Some(vec![]));
    }
}
