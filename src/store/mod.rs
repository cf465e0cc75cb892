//! SQLite storage. The only module that writes SQL.
//!
//! Entries and sources are many-to-many (`entry_sources`): one story carried by several sources
//! is one entry. `entry_keys` maps every identity key (see `normalize::identity_keys`) to its
//! entry, so matching an incoming entry is a few primary-key lookups, never a scan.
//!
//! The database runs in WAL mode with one connection for writes and one for reads, so serving
//! feeds never waits behind a fetch's transaction. Calls block: async callers use
//! `spawn_blocking`.

mod reads;
mod schema;
mod search;
mod sources;

pub use reads::ExportEntry;
pub use sources::{FetchRecord, SourceState};

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use crate::dedupe::index::{self as dedupe_index, CandidateIndex, Signature};
use crate::dedupe::{self, Fingerprint, Thresholds};
use crate::model::{Entry, Validators};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("cannot create folder for database {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "database schema version {found} is newer than this build knows ({known}); \
         upgrade tributary"
    )]
    TooNew { found: i64, known: i64 },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database lock poisoned by a panic in another thread")]
    Poisoned,
    /// A group commit failed; every fetch in the group gets the cause.
    #[error("database: {0}")]
    Group(String),
}

/// Prepared statements kept per connection (see `Store::open`).
const STATEMENT_CACHE: usize = 128;

/// Whether an item from a list still needs its article page fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArticleNeed {
    /// Not stored yet.
    New,
    /// Stored, but its article fetch failed before.
    Pending,
    /// Stored with its article.
    Done,
}

/// What one batch of entries did to the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertCounts {
    pub new: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// New or edited entries that joined another source's story (near-duplicates).
    pub merged: usize,
    /// Time spent placing entries in clusters (candidate lookup and comparison).
    pub dedupe_time: std::time::Duration,
}

/// One member of a cluster, for `tributary dedupe --explain`.
#[derive(Debug, Clone)]
pub struct ClusterMember {
    pub entry_id: i64,
    pub title: String,
    pub published: DateTime<Utc>,
    pub canonical: bool,
    pub sources: Vec<String>,
    /// The member it matched, the rule and the score; None for the cluster's first member.
    pub merged: Option<(i64, String, f64)>,
}

/// One fetch's outcome, handed to [`Store::store_fetch`].
#[derive(Debug, Clone)]
pub struct StoreFetch {
    pub source_id: String,
    pub entries: Vec<Entry>,
    pub thresholds: Thresholds,
    pub now: DateTime<Utc>,
    pub validators: Validators,
}

#[derive(Default)]
struct WriteQueue {
    next: u64,
    pending: Vec<(u64, StoreFetch)>,
    done: HashMap<u64, Result<UpsertCounts, StoreError>>,
}

/// The one connection that writes, and what it keeps in memory for placing entries.
struct Writer {
    conn: Connection,
    /// Candidate keys of the days placements needed lately (see `dedupe::index`).
    candidates: CandidateIndex,
    /// `PRAGMA data_version` when `candidates` was last known to mirror the database.
    data_version: i64,
}

/// Entries whose candidate keys stay in memory between groups of writes: about 20 MB.
const RESIDENT_CANDIDATES: usize = 32_768;

impl Writer {
    /// Starts a group of writes. Another connection's commit (another `tributary` process)
    /// may have stored entries the index does not hold: then it is dropped, and reloaded as
    /// needed. The write lock is taken first, so that nothing can commit between the check and
    /// the group's reads.
    fn begin(&mut self) -> Result<(rusqlite::Transaction<'_>, &mut CandidateIndex), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
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
    reader: Mutex<Connection>,
    /// Feed queries run (GET /metrics shows it; a cached 304 must not move it).
    queries: std::sync::atomic::AtomicU64,
    /// Bumped by every write through this store, so readers can cache what they rendered.
    generation: std::sync::atomic::AtomicU64,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
                path: path.display().to_string(),
                source,
            })?;
        }
        let open = || -> Result<Connection, StoreError> {
            let conn = Connection::open(path).map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            // Checkpoint every ~40 MB of WAL rather than 4 MB: index pages that many
            // commits touch are copied into the database once instead of once per 4 MB.
            conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
            // The writer runs some forty statements per group; rusqlite keeps 16 prepared by
            // default, and a statement pushed out is compiled again on its next use.
            conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            Ok(conn)
        };
        let mut writer = open()?;
        // The writer walks the indexes of every new entry (keys, dedupe buckets, search): a
        // 16 MiB page cache keeps their upper levels in memory (the default is 2 MiB).
        writer.pragma_update(None, "cache_size", -16_384)?;
        schema::migrate(&mut writer)?;
        let reader = open()?;
        let writer = Writer {
            conn: writer,
            candidates: CandidateIndex::new(RESIDENT_CANDIDATES),
            data_version: -1,
        };
        Ok(Store {
            writer: Mutex::new(writer),
            queue: Mutex::default(),
            reader: Mutex::new(reader),
            queries: Default::default(),
            generation: Default::default(),
        })
    }

    fn writer(&self) -> Result<MutexGuard<'_, Writer>, StoreError> {
        // Whoever takes the writer may change what feeds show.
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.writer.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Changes whenever this store may have written anything (other processes' writes are not
    /// seen: caches also expire by age).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many feed queries have run.
    pub fn feed_queries(&self) -> u64 {
        self.queries.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn reader(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.reader.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Answers when the database does: for health checks.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.reader()?.query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }

    /// Whether an entry of `source_id` still waits for its article page: its next poll must
    /// not be answered 304, or the retry would wait until the list changes.
    pub fn articles_pending(&self, source_id: &str) -> Result<bool, StoreError> {
        Ok(self.reader()?.query_row(
            "SELECT EXISTS (SELECT 1 FROM entries e INDEXED BY entries_article_pending
                            JOIN entry_sources es ON es.entry_id = e.id AND es.source_id = ?1
                            WHERE e.article_pending = 1)",
            [source_id],
            |r| r.get(0),
        )?)
    }

    /// For each item of `source_id`, by its identity keys, whether its article page still has
    /// to be fetched.
    pub fn article_needs(
        &self,
        source_id: &str,
        keys: &[Vec<String>],
    ) -> Result<Vec<ArticleNeed>, StoreError> {
        let conn = self.reader()?;
        let mut find = conn.prepare_cached(
            // An entry another source stored without its text (a bare list) wants this
            // source's article, once: an article of this source that has no text is not asked
            // for again on every poll.
            "SELECT e.article_pending
                    OR (e.content IS NULL AND NOT EXISTS (SELECT 1 FROM entry_sources es
                        WHERE es.entry_id = e.id AND es.source_id = ?2))
             FROM entry_keys k JOIN entries e ON e.id = k.entry_id
             WHERE k.key = ?1",
        )?;
        let mut needs = Vec::with_capacity(keys.len());
        for item_keys in keys {
            let mut need = ArticleNeed::New;
            for key in item_keys {
                if let Some(pending) = find
                    .query_row(params![key, source_id], |r| r.get::<_, bool>(0))
                    .optional()?
                {
                    need = if pending {
                        ArticleNeed::Pending
                    } else {
                        ArticleNeed::Done
                    };
                    break;
                }
            }
            needs.push(need);
        }
        Ok(needs)
    }

    /// Stores one fetch's entries for `source_id` in one transaction: an entry whose keys match
    /// a stored entry updates it (if this source's version changed) and links the source to
    /// it; otherwise it is inserted. Missing dates become `now`, the first-seen time.
    pub fn upsert_entries(
        &self,
        source_id: &str,
        entries: &[Entry],
        thresholds: &Thresholds,
        now: DateTime<Utc>,
    ) -> Result<UpsertCounts, StoreError> {
        let mut writer = self.writer()?;
        let result = (|| {
            let (tx, candidates) = writer.begin()?;
            let mut searchable = Vec::new();
            let counts = upsert_in(
                &tx,
                candidates,
                source_id,
                entries,
                thresholds,
                now,
                &mut searchable,
            )?;
            search::index_for_search(&tx, &searchable)?;
            tx.commit()?;
            Ok(counts)
        })();
        writer.end(&result);
        result
    }

    /// Stores one fetch's outcome (its entries, as [`Store::upsert_entries`] does, and the
    /// record on the source), committed together with whatever other fetches are waiting.
    ///
    /// Group commit: the caller that gets the writer runs every queued fetch in one
    /// transaction, and those callers find their result ready when they get the writer in
    /// turn. A commit per fetch rewrote the same index pages (and flushed the search index)
    /// once per source; now that happens once per group. A group that fails is rolled back
    /// whole and each of its fetches gets the error: stored entries are never lost, and every
    /// source in it simply tries again.
    pub fn store_fetch(&self, fetch: StoreFetch) -> Result<UpsertCounts, StoreError> {
        let ticket = {
            let mut q = self.queue()?;
            q.next += 1;
            let ticket = q.next;
            q.pending.push((ticket, fetch));
            ticket
        };
        let mut writer = self.writer()?;
        let group = {
            let mut q = self.queue()?;
            if let Some(done) = q.done.remove(&ticket) {
                return done;
            }
            std::mem::take(&mut q.pending)
        };
        let results = run_group(&mut writer, &group);
        // The others' results are handed over before the writer is let go: whoever takes it
        // next looks for its result first.
        let mut q = self.queue()?;
        let mut mine = Err(StoreError::Poisoned);
        for ((t, _), result) in group.iter().zip(results) {
            if *t == ticket {
                mine = result;
            } else {
                q.done.insert(*t, result);
            }
        }
        drop(q);
        drop(writer);
        mine
    }

    fn queue(&self) -> Result<MutexGuard<'_, WriteQueue>, StoreError> {
        self.queue.lock().map_err(|_| StoreError::Poisoned)
    }
}

impl Store {
    /// The cluster of `entry_id`: every member, how it joined, and which one merged feeds
    /// show. None when there is no such entry.
    pub fn explain(&self, entry_id: i64) -> Result<Option<(i64, Vec<ClusterMember>)>, StoreError> {
        let conn = self.reader()?;
        let cluster: Option<Option<i64>> = conn
            .query_row(
                "SELECT cluster_id FROM entries WHERE id = ?1",
                [entry_id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(cluster) = cluster else {
            return Ok(None);
        };
        let cluster = cluster.unwrap_or(entry_id);
        let mut stmt = conn.prepare(
            "SELECT e.id, e.title, e.published, e.canonical,
                    (SELECT group_concat(source_id, ', ') FROM entry_sources WHERE entry_id = e.id),
                    m.matched_entry, m.rule, m.score
             FROM entries e LEFT JOIN cluster_merges m ON m.entry_id = e.id
             WHERE e.cluster_id = ?1 OR e.id = ?2
             ORDER BY e.published, e.id",
        )?;
        let members = stmt
            .query_map(params![cluster, entry_id], |r| {
                let matched: Option<i64> = r.get(5)?;
                Ok(ClusterMember {
                    entry_id: r.get(0)?,
                    title: r.get(1)?,
                    published: from_unix(r.get(2)?),
                    canonical: r.get(3)?,
                    sources: r
                        .get::<_, Option<String>>(4)?
                        .map(|s| s.split(", ").map(str::to_string).collect())
                        .unwrap_or_default(),
                    merged: match matched {
                        Some(m) => Some((m, r.get(6)?, r.get(7)?)),
                        None => None,
                    },
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Some((cluster, members)))
    }
}

/// Entries one candidate key may name before it counts as too common to say anything.
const BUCKET_CAP: usize = 32;
/// Candidates compared per entry, those sharing the most keys first.
const MAX_COMPARED: usize = 16;

/// Finds the cluster a new or edited entry belongs to and records it. Candidates are recent
/// entries of the same category that share a candidate key and come from other sources; the
/// first that `dedupe::compare` accepts, in order of keys shared (then age), decides. Returns whether the entry joined
/// another entry's cluster.
#[allow(clippy::too_many_arguments)]
fn place_in_cluster(
    tx: &rusqlite::Transaction<'_>,
    candidates: &mut CandidateIndex,
    entry_id: i64,
    source_id: &str,
    category: &str,
    published: i64,
    fp: &Fingerprint,
    figures: &dedupe::Figures,
    keys: &[i64],
    t: &Thresholds,
    edited: bool,
    indexed: bool,
    now: i64,
) -> Result<bool, StoreError> {
    if edited {
        leave_cluster(tx, candidates, entry_id)?;
        // A new entry was inserted with its fingerprint; an edited one gets its new one. The
        // search index reads its text from the fingerprint, and takes an entry out by being
        // told the text it indexed: that is said before the text changes (unless the entry
        // is not indexed yet, being new or already edited in this group).
        if indexed {
            search::unindex(tx, entry_id)?;
        }
        tx.prepare_cached(
            "UPDATE fingerprints SET title = ?2, body = ?3, simhash = ?4 WHERE entry_id = ?1",
        )?
        .execute(params![entry_id, fp.title, fp.body, fp.simhash as i64])?;
    }
    let keys = if t.enabled { keys } else { &[] };
    let window = t.window_hours * 3600;
    let (from, to) = (published - window, published + window);
    if !keys.is_empty() {
        load_candidate_days(tx, candidates, category, from, to)?;
        candidates.touch(category, from, to);
    }
    // Candidates by how many keys they share: a copy shares most of its keys, a chance
    // collision one or two. A key found in more than BUCKET_CAP recent entries of the category
    // says nothing (text every item shares: a site's boilerplate, a common figure) and is
    // neither used nor extended.
    let mut shared: HashMap<i64, (usize, Option<&dedupe::Figures>)> = HashMap::new();
    let mut useful = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(hits) = candidates.lookup(category, from, to, *key, entry_id, BUCKET_CAP) else {
            continue;
        };
        useful.push(*key);
        for hit in hits {
            shared.entry(hit.entry).or_insert((0, hit.figures)).0 += 1;
        }
    }
    let mut ranked: Vec<(i64, usize, Option<&dedupe::Figures>)> =
        shared.into_iter().map(|(id, (n, f))| (id, n, f)).collect();
    ranked.sort_by_key(|&(id, n, _)| (std::cmp::Reverse(n), id));
    // Every candidate the entry matches: the pairs are kept, and the entry's cluster is the
    // connected component they make (see `recluster`), whatever order the entries came in.
    let mut matched: Vec<(i64, dedupe::Match)> = Vec::new();
    {
        let mut load = tx.prepare_cached(
            "SELECT title, body, simhash FROM fingerprints f
             WHERE entry_id = ?1
               AND NOT EXISTS (SELECT 1 FROM entry_sources es
                               WHERE es.entry_id = f.entry_id AND es.source_id = ?2)",
        )?;
        let mine = dedupe::Features::with_figures(fp, figures);
        // At most MAX_COMPARED texts of other sources are compared. The entry's own source's
        // entries are skipped without counting: how many of them came before it depends on
        // the order of the feed, and must not decide which others are compared.
        let (mut compared, mut read) = (0, 0);
        for (candidate, _, theirs) in ranked {
            if compared >= MAX_COMPARED || read >= 4 * MAX_COMPARED {
                break;
            }
            // Most candidates share a key by chance, and their figures alone say so: their
            // text is not read.
            if theirs.is_some_and(|theirs| dedupe::figures_differ(figures, theirs)) {
                continue;
            }
            // Members of a cluster already matched are compared too: the pairs they give hold
            // the cluster together if it later loses the member that joined it, and skipping
            // them would make that depend on the order the entries came in.
            read += 1;
            let other = load
                .query_row(params![candidate, source_id], |r| {
                    Ok(Fingerprint {
                        title: r.get(0)?,
                        body: r.get(1)?,
                        simhash: r.get::<_, i64>(2)? as u64,
                    })
                })
                .optional()?;
            let Some(other) = other else {
                continue;
            };
            compared += 1;
            if let Some(m) = dedupe::compare_features(&mine, &dedupe::Features::new(&other), t) {
                matched.push((candidate, m));
            }
        }
    }
    let joined = !matched.is_empty();
    if let Some((first, m)) = matched.first() {
        let mut edge = tx.prepare_cached(
            "INSERT OR REPLACE INTO dedupe_edges (a, b, rule, score) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (other, m) in &matched {
            let (a, b) = (entry_id.min(*other), entry_id.max(*other));
            edge.execute(params![a, b, m.rule.as_str(), m.score])?;
        }
        // What `dedupe --explain` shows: the best match (most keys shared).
        tx.prepare_cached(
            "INSERT OR REPLACE INTO cluster_merges (entry_id, matched_entry, rule, score, merged_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![entry_id, first, m.rule.as_str(), m.score, now])?;
        recluster(tx, &[entry_id])?;
    }
    if !useful.is_empty() {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO dedupe_sigs (entry_id, category, published, seen, keys, figures)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            entry_id,
            category,
            published,
            now,
            dedupe_index::encode_keys(&useful),
            figures.to_stored()
        ])?;
        candidates.insert(
            category,
            Signature {
                entry: entry_id,
                published,
                seen: now,
                keys: useful,
                figures: Some(figures.clone()),
            },
        );
    }
    Ok(joined)
}

/// Brings into the index the days of `[from, to]` it does not hold for `category`.
fn load_candidate_days(
    tx: &rusqlite::Transaction<'_>,
    candidates: &mut CandidateIndex,
    category: &str,
    from: i64,
    to: i64,
) -> Result<(), StoreError> {
    let missing = candidates.missing(category, from, to);
    if missing.is_empty() {
        return Ok(());
    }
    let mut day = tx.prepare_cached(
        "SELECT entry_id, published, seen, keys, figures FROM dedupe_sigs
         WHERE category = ?1 AND published BETWEEN ?2 AND ?3",
    )?;
    for (start, end) in missing {
        let rows = day
            .query_map(params![category, start, end], |r| {
                Ok(Signature {
                    entry: r.get(0)?,
                    published: r.get(1)?,
                    seen: r.get(2)?,
                    keys: dedupe_index::decode_keys(&r.get::<_, Vec<u8>>(3)?),
                    figures: r
                        .get_ref(4)?
                        .as_str_or_null()?
                        .and_then(dedupe::Figures::parse),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        candidates.load(category, start, rows);
    }
    Ok(())
}

/// The work of [`Store::upsert_entries`] inside a transaction. New and edited entries are
/// added to `searchable`, for [`search::index_for_search`] once the whole group is written: FTS5
/// writes its pending terms out at every statement that changes it, so one statement per
/// group instead of one per entry.
fn upsert_in(
    tx: &rusqlite::Transaction<'_>,
    candidates: &mut CandidateIndex,
    source_id: &str,
    entries: &[Entry],
    thresholds: &Thresholds,
    now: DateTime<Utc>,
    searchable: &mut Vec<i64>,
) -> Result<UpsertCounts, StoreError> {
    let mut counts = UpsertCounts::default();
    let now_ts = now.timestamp();
    let category: String = tx
        .query_row(
            "SELECT category FROM sources WHERE id = ?1",
            [source_id],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or_default();
    // Keys of entries seen and published well outside the window are unlikely to match
    // anything new. A backfill (old dates, seen now) keeps its keys, so two sources'
    // histories still merge.
    let horizon = now_ts - thresholds.window_hours * 2 * 3600;
    tx.prepare_cached(
        "DELETE FROM dedupe_sigs WHERE category = ?1 AND seen < ?2 AND published < ?2",
    )?
    .execute(params![category, horizon])?;
    candidates.prune(&category, horizon);
    {
        let mut find_key = tx.prepare_cached("SELECT entry_id FROM entry_keys WHERE key = ?1")?;
        let mut add_key =
            tx.prepare_cached("INSERT OR IGNORE INTO entry_keys (key, entry_id) VALUES (?1, ?2)")?;
        let mut link_version = tx.prepare_cached(
            "SELECT (SELECT version FROM entry_sources
                         WHERE entry_id = ?1 AND source_id = ?2),
                        (SELECT own FROM entry_sources WHERE entry_id = ?1 AND source_id = ?2),
                        article_pending
                 FROM entries WHERE id = ?1",
        )?;
        let mut copies = SourceCopies::prepare(tx)?;
        let mut has_edges = tx.prepare_cached(
            "SELECT 1 FROM dedupe_edges WHERE a = ?1 UNION ALL SELECT 1 FROM dedupe_edges WHERE b = ?1",
        )?;
        let mut same_text = tx.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM fingerprints
                            WHERE entry_id = ?1 AND title = ?2 AND body = ?3 AND simhash = ?4)",
        )?;
        // A new entry is written whole, in its own cluster: a row carries kilobytes of text,
        // so a later UPDATE of one small column would rewrite them. The id is chosen here
        // (what SQLite would choose) so the row can name its own cluster.
        let mut next_id = tx.prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM entries")?;
        let mut insert_entry = tx.prepare_cached(
            "INSERT INTO entries (id, cluster_id, canonical, title, link, summary, content,
                     authors, categories, published, updated, first_seen, date_source,
                     article_pending, date_rank, sort_key)
                 VALUES (?1, ?1, 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        let mut insert_fingerprint = tx.prepare_cached(
            "INSERT INTO fingerprints (entry_id, title, body, simhash) VALUES (?1, ?2, ?3, ?4)",
        )?;
        // An edit seen on a list page carries no article text: keep the text we have.
        let mut update_entry = tx.prepare_cached(
            "UPDATE entries SET title = ?2, link = COALESCE(?3, link),
                     summary = COALESCE(?4, summary), content = COALESCE(?5, content),
                     authors = ?6, categories = ?7, updated = ?8
                 WHERE id = ?1",
        )?;
        // The article arrived after a failed first try: its text, author and date win.
        let mut complete_article = tx.prepare_cached(
            "UPDATE entries SET content = ?2, authors = ?3,
                     published = COALESCE(?4, published), date_source = ?5,
                     article_pending = 0, updated = ?6
                 WHERE id = ?1",
        )?;
        let mut upsert_link = tx.prepare_cached(
            "INSERT INTO entry_sources (entry_id, source_id, guid, link, version, first_seen,
                     last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
                 ON CONFLICT (entry_id, source_id) DO UPDATE SET guid = ?3, link = ?4,
                     version = ?5, last_seen = ?6",
        )?;

        // The guid this source gave an entry, to keep apart two items of one feed that
        // share a link (podcast items linking to the show's home page, `#fragment` links).
        let mut own_guid = tx.prepare_cached(
            "SELECT guid FROM entry_sources WHERE entry_id = ?1 AND source_id = ?2",
        )?;
        for e in entries {
            let mut found = None;
            for key in &e.keys {
                let Some(id) = find_key
                    .query_row([key], |r| r.get::<_, i64>(0))
                    .optional()?
                else {
                    continue;
                };
                let other_guid: Option<String> = own_guid
                    .query_row(params![id, source_id], |r| r.get(0))
                    .optional()?
                    .flatten();
                let same_source_other_item = matches!(
                    (&e.guid, &other_guid),
                    (Some(mine), Some(theirs)) if mine != theirs
                );
                if !same_source_other_item {
                    found = Some(id);
                    break;
                }
            }
            let authors = json(&e.authors);
            let categories = json(&e.categories);
            // Whether (and as an edit or not) to place the entry in a cluster, once its
            // source link is written: the canonical choice reads the sources' priorities.
            let mut place = None;
            // Whether this fetch's words are kept as the source's own copy of the entry.
            let mut keep_copy = false;
            // Whether this source links the entry for the first time.
            let mut first_link = false;
            let entry_id = match found {
                Some(id) => {
                    let (previous, own, pending): (Option<String>, Option<bool>, bool) =
                        link_version.query_row(params![id, source_id], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        })?;
                    // This source did not store the entry: it keeps its own words beside it,
                    // and the entry takes what it lacks from them.
                    first_link = previous.is_none();
                    let mut second = previous.is_none() || own == Some(true);
                    // Which source's words the entry's row holds does not depend on who came
                    // first: a newcomer that outranks the holder takes the row over.
                    let promoted =
                        previous.is_none() && copies.promote(id, source_id, e, &authors)?;
                    second &= !promoted;
                    keep_copy = second && previous.as_deref() != Some(e.version.as_str());
                    // The source that stored the entry brings its article at last (a second
                    // source's article enriches the entry instead, below).
                    let completed = pending && !second && !e.article_pending && e.content.is_some();
                    if completed {
                        complete_article.execute(params![
                            id,
                            e.content,
                            authors,
                            e.published.map(|p| p.timestamp()),
                            e.date_source.as_str(),
                            now_ts
                        ])?;
                    }
                    let enriched = promoted && (e.content.is_some() || e.summary.is_some())
                        || second && !completed && copies.enrich(id, e, &authors)?;
                    // Whether this source edited its item (counted as an update), and whether
                    // the entry's text changed (it is then compared and indexed again).
                    let (edit, changed) = match previous {
                        Some(v) if v == e.version && completed => (true, true),
                        Some(v) if v == e.version => (false, enriched),
                        // Another source already carries it: a duplicate, not news, though it
                        // may bring what the entry lacked.
                        None => (false, enriched),
                        // A second source's edit changes its own copy.
                        Some(_) if second => (true, enriched),
                        Some(_) => {
                            // Other sources' copies that read "as the entry says" keep what
                            // it said before this edit.
                            copies.freeze(id)?;
                            // The edit is news to readers now, whatever date the
                            // feed claims.
                            update_entry.execute(params![
                                id, e.title, e.link, e.summary, e.content, authors, categories,
                                now_ts
                            ])?;
                            (true, true)
                        }
                    };
                    if edit {
                        counts.updated += 1;
                    } else {
                        counts.unchanged += 1;
                    }
                    // An edit may move the entry into, out of, or between clusters; one that
                    // leaves the text as compared (a new link, other markup) moves nothing.
                    let text_changed = changed
                        && same_text
                            .query_row(
                                params![
                                    id,
                                    e.fingerprint.title,
                                    e.fingerprint.body,
                                    e.fingerprint.simhash as i64
                                ],
                                |r| r.get::<_, bool>(0),
                            )
                            .map(|same| !same)?;
                    if text_changed {
                        place = Some(true);
                    }
                    id
                }
                None => {
                    let published = e.published.unwrap_or(now).timestamp();
                    let updated = e.updated.map_or(published, |u| u.timestamp());
                    let id: i64 = next_id.query_row([], |r| r.get(0))?;
                    insert_entry.execute(params![
                        id,
                        e.title,
                        e.link,
                        e.summary,
                        e.content,
                        authors,
                        categories,
                        published,
                        updated,
                        now_ts,
                        e.date_source.as_str(),
                        e.article_pending,
                        e.date_rank,
                        sort_key(source_id, &e.keys).unwrap_or(id)
                    ])?;
                    insert_fingerprint.execute(params![
                        id,
                        e.fingerprint.title,
                        e.fingerprint.body,
                        e.fingerprint.simhash as i64
                    ])?;
                    counts.new += 1;
                    place = Some(false);
                    id
                }
            };
            upsert_link.execute(params![
                entry_id, source_id, e.guid, e.link, e.version, now_ts
            ])?;
            if keep_copy {
                copies.keep(entry_id, source_id, e, &authors)?;
            }
            // A source that carries two members of a cluster now keeps them apart: its
            // cluster is worked out again.
            if first_link && place.is_none() && has_edges.exists([entry_id])? {
                recluster(tx, &[entry_id])?;
            }
            for key in &e.keys {
                add_key.execute(params![key, entry_id])?;
            }
            if let Some(edited) = place {
                let indexed = edited && !searchable.contains(&entry_id);
                searchable.push(entry_id);
                let started = std::time::Instant::now();
                let published = e.published.unwrap_or(now).timestamp();
                let joined = place_in_cluster(
                    tx,
                    candidates,
                    entry_id,
                    source_id,
                    &category,
                    published,
                    &e.fingerprint,
                    &e.figures,
                    &e.candidate_keys,
                    thresholds,
                    edited,
                    indexed,
                    now_ts,
                )?;
                counts.merged += usize::from(joined);
                counts.dedupe_time += started.elapsed();
            }
        }
    }
    Ok(counts)
}

/// An entry's place among those of the same instant: a hash of its first identity key that any
/// source would give it (not a guid, which is scoped to its source, nor a hash scoped to it),
/// non-negative so cursors stay readable. None when every key is the source's own: such an
/// entry is only ever that source's, and its id orders it.
fn sort_key(source_id: &str, keys: &[String]) -> Option<i64> {
    let scoped = format!("hash:{source_id}:");
    let key = keys
        .iter()
        .find(|k| !k.starts_with("guid:") && !k.starts_with(&scoped))?;
    let hash = blake3::hash(key.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash.as_bytes()[..8]);
    Some((u64::from_le_bytes(bytes) >> 1) as i64)
}

/// The statements that keep each source's own copy of a shared entry, and let the entry take
/// what it lacks from them.
struct SourceCopies<'t> {
    own: rusqlite::CachedStatement<'t>,
    freeze: rusqlite::CachedStatement<'t>,
    lacks: rusqlite::CachedStatement<'t>,
    enrich: rusqlite::CachedStatement<'t>,
    holder: rusqlite::CachedStatement<'t>,
    release: rusqlite::CachedStatement<'t>,
    take_over: rusqlite::CachedStatement<'t>,
}

impl<'t> SourceCopies<'t> {
    fn prepare(tx: &'t rusqlite::Transaction<'_>) -> Result<Self, StoreError> {
        Ok(SourceCopies {
            // Only what differs from the entry is kept.
            own: tx.prepare_cached(
                "UPDATE entry_sources SET own = 1,
                     title = NULLIF(?3, (SELECT title FROM entries WHERE id = ?1)),
                     summary = NULLIF(?4, (SELECT summary FROM entries WHERE id = ?1)),
                     content = NULLIF(?5, (SELECT content FROM entries WHERE id = ?1)),
                     authors = NULLIF(?6, (SELECT authors FROM entries WHERE id = ?1)),
                     published = NULLIF(?7, (SELECT published FROM entries WHERE id = ?1))
                 WHERE entry_id = ?1 AND source_id = ?2",
            )?,
            freeze: tx.prepare_cached(
                "UPDATE entry_sources SET
                     title = COALESCE(entry_sources.title, e.title),
                     summary = COALESCE(entry_sources.summary, e.summary),
                     content = COALESCE(entry_sources.content, e.content),
                     authors = COALESCE(entry_sources.authors, e.authors),
                     published = COALESCE(entry_sources.published, e.published)
                 FROM (SELECT title, summary, content, authors, published
                       FROM entries WHERE id = ?1) AS e
                 WHERE entry_sources.entry_id = ?1 AND entry_sources.own = 1",
            )?,
            lacks: tx.prepare_cached(
                "SELECT content IS NULL, authors = '[]', date_rank FROM entries WHERE id = ?1",
            )?,
            // The richer copy wins, whatever order the copies came in: text where there was
            // none, authors where none were named, and a date read a surer way.
            enrich: tx.prepare_cached(
                "UPDATE entries SET
                     content = COALESCE(content, ?2),
                     article_pending = CASE WHEN ?2 IS NOT NULL THEN 0
                                            WHEN content IS NULL AND ?7 THEN 1
                                            ELSE article_pending END,
                     authors = CASE WHEN ?3 != '[]' AND authors = '[]' THEN ?3 ELSE authors END,
                     updated = CASE WHEN ?5 > date_rank AND updated = published THEN ?4
                                    ELSE updated END,
                     published = CASE WHEN ?5 > date_rank THEN ?4 ELSE published END,
                     date_source = CASE WHEN ?5 > date_rank THEN ?6 ELSE date_source END,
                     date_rank = MAX(date_rank, ?5)
                 WHERE id = ?1",
            )?,
            // The source whose words the row holds, and whether `?2` outranks it: a higher
            // priority, or the same and a smaller id (a total order, so the outcome is the
            // same whatever order the sources' fetches were stored in).
            holder: tx.prepare_cached(
                "SELECT me.priority > h.priority OR (me.priority = h.priority AND me.id < h.id)
                 FROM entry_sources es JOIN sources h ON h.id = es.source_id,
                      sources me
                 WHERE es.entry_id = ?1 AND es.own = 0 AND me.id = ?2
                 ORDER BY es.rowid LIMIT 1",
            )?,
            release: tx.prepare_cached(
                "UPDATE entry_sources SET own = 1 WHERE entry_id = ?1 AND own = 0",
            )?,
            // The newcomer's words; what it lacks stays as the entry had it, and the surer
            // date wins (ties: the newcomer's).
            take_over: tx.prepare_cached(
                "UPDATE entries SET title = ?2, link = COALESCE(?3, link),
                     summary = COALESCE(?4, summary), content = COALESCE(?5, content),
                     article_pending = article_pending AND ?5 IS NULL,
                     authors = CASE WHEN ?6 != '[]' THEN ?6 ELSE authors END,
                     categories = ?7,
                     updated = CASE WHEN ?9 >= date_rank AND ?8 IS NOT NULL
                                    THEN COALESCE(?10, ?8) ELSE updated END,
                     published = CASE WHEN ?9 >= date_rank AND ?8 IS NOT NULL
                                      THEN ?8 ELSE published END,
                     date_source = CASE WHEN ?9 >= date_rank AND ?8 IS NOT NULL
                                        THEN ?11 ELSE date_source END,
                     date_rank = MAX(date_rank, ?9)
                 WHERE id = ?1",
            )?,
        })
    }

    /// Gives `source_id` the entry's row if it outranks the source holding it: the holder's
    /// words (and those of copies that read "as the entry says") become copies of their own
    /// first. Returns whether it did.
    fn promote(
        &mut self,
        entry_id: i64,
        source_id: &str,
        e: &Entry,
        authors: &str,
    ) -> Result<bool, StoreError> {
        let outranks = self
            .holder
            .query_row(params![entry_id, source_id], |r| r.get::<_, bool>(0))
            .optional()?
            .unwrap_or(false);
        if !outranks {
            return Ok(false);
        }
        self.release.execute([entry_id])?;
        self.freeze.execute([entry_id])?;
        let published = e.published.map(|p| p.timestamp());
        self.take_over.execute(params![
            entry_id,
            e.title,
            e.link,
            e.summary,
            e.content,
            authors,
            json(&e.categories),
            published,
            if published.is_some() { e.date_rank } else { 0 },
            e.updated.map(|u| u.timestamp()),
            e.date_source.as_str()
        ])?;
        Ok(true)
    }

    /// Keeps `e` as `source_id`'s own copy of `entry_id` (a source that did not store it).
    fn keep(
        &mut self,
        entry_id: i64,
        source_id: &str,
        e: &Entry,
        authors: &str,
    ) -> Result<(), StoreError> {
        self.own.execute(params![
            entry_id,
            source_id,
            e.title,
            e.summary,
            e.content,
            authors,
            e.published.map(|p| p.timestamp())
        ])?;
        Ok(())
    }

    /// Before the first source edits the entry, the copies that said the same keep it.
    fn freeze(&mut self, entry_id: i64) -> Result<(), StoreError> {
        self.freeze.execute([entry_id])?;
        Ok(())
    }

    /// Lets the entry take from a second source's copy what it lacks. Returns whether it took
    /// the text (the entry is then compared and indexed again, as after an edit).
    fn enrich(&mut self, entry_id: i64, e: &Entry, authors: &str) -> Result<bool, StoreError> {
        let (no_text, no_authors, rank): (bool, bool, u8) = self
            .lacks
            .query_row([entry_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        let takes_text = no_text && e.content.is_some();
        let takes_authors = no_authors && !e.authors.is_empty();
        let takes_date = e.date_rank > rank && e.published.is_some();
        // Its article page failed too: the entry waits for it (and the list is polled again).
        let waits = no_text && e.article_pending;
        if takes_text || takes_authors || takes_date || waits {
            self.enrich.execute(params![
                entry_id,
                e.content,
                authors,
                e.published.map(|p| p.timestamp()),
                e.date_rank,
                e.date_source.as_str(),
                e.article_pending
            ])?;
        }
        Ok(takes_text)
    }
}

/// Runs a group of fetches in one transaction; one result per fetch, in order.
fn run_group(
    writer: &mut Writer,
    group: &[(u64, StoreFetch)],
) -> Vec<Result<UpsertCounts, StoreError>> {
    let attempt = |w: &mut Writer| -> Result<Vec<UpsertCounts>, StoreError> {
        let (tx, candidates) = w.begin()?;
        let mut searchable = Vec::new();
        let mut counts = Vec::with_capacity(group.len());
        for (_, f) in group {
            counts.push(upsert_in(
                &tx,
                candidates,
                &f.source_id,
                &f.entries,
                &f.thresholds,
                f.now,
                &mut searchable,
            )?);
            sources::record_fetch_in(
                &tx,
                &f.source_id,
                &FetchRecord {
                    at: f.now,
                    status: "ok",
                    error: None,
                    validators: Some(&f.validators),
                },
            )?;
        }
        search::index_for_search(&tx, &searchable)?;
        tx.commit()?;
        Ok(counts)
    };
    let result = attempt(writer);
    writer.end(&result);
    match result {
        Ok(counts) => counts.into_iter().map(Ok).collect(),
        Err(e) => {
            let cause = e.to_string();
            group
                .iter()
                .map(|_| Err(StoreError::Group(cause.clone())))
                .collect()
        }
    }
}

/// Takes an entry out of its cluster (before an edited version is placed again). When it was
/// Takes an entry out of its cluster (before it is placed again): its matches are dropped,
/// and what is left of its cluster is recomputed from the others' (it may fall apart).
fn leave_cluster(
    tx: &rusqlite::Transaction<'_>,
    candidates: &mut CandidateIndex,
    entry_id: i64,
) -> Result<(), StoreError> {
    let mates = cluster_members(tx, entry_id)?;
    tx.execute("DELETE FROM dedupe_sigs WHERE entry_id = ?1", [entry_id])?;
    candidates.remove(entry_id);
    tx.execute("DELETE FROM cluster_merges WHERE entry_id = ?1", [entry_id])?;
    tx.execute(
        "DELETE FROM dedupe_edges WHERE a = ?1 OR b = ?1",
        [entry_id],
    )?;
    tx.execute(
        "UPDATE entries SET cluster_id = id, canonical = 1 WHERE id = ?1",
        [entry_id],
    )?;
    let rest: Vec<i64> = mates.into_iter().filter(|m| *m != entry_id).collect();
    recluster(tx, &rest)
}

/// The entries of `entry_id`'s cluster, itself included.
fn cluster_members(tx: &rusqlite::Transaction<'_>, entry_id: i64) -> Result<Vec<i64>, StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT id FROM entries
         WHERE cluster_id = (SELECT cluster_id FROM entries WHERE id = ?1) OR id = ?1",
    )?;
    let ids = stmt
        .query_map([entry_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

/// Recomputes the clusters around `seeds` as connected components of `dedupe_edges`, leaving
/// out pairs whose entries share a source. The region recomputed is everything a seed reaches
/// through matches or cluster labels (its cluster-mates, which may part from it, and any entry
/// labelled by one of them), so no cluster outside it keeps a label it reuses. Each component
/// is labelled by its smallest id, and its canonical member chosen.
fn recluster(tx: &rusqlite::Transaction<'_>, seeds: &[i64]) -> Result<(), StoreError> {
    let mut related = tx.prepare_cached(
        "SELECT id FROM entries
         WHERE cluster_id = (SELECT cluster_id FROM entries WHERE id = ?1) OR cluster_id = ?1
         UNION SELECT b FROM dedupe_edges WHERE a = ?1
         UNION SELECT a FROM dedupe_edges WHERE b = ?1",
    )?;
    let mut region = reach(&mut related, seeds, &mut HashSet::new())?;
    region.sort_unstable();
    let mut neighbours = tx.prepare_cached(
        "SELECT m FROM (SELECT b AS m FROM dedupe_edges WHERE a = ?1
                       UNION SELECT a FROM dedupe_edges WHERE b = ?1)
         WHERE NOT EXISTS (SELECT 1 FROM entry_sources x
                           JOIN entry_sources y ON y.source_id = x.source_id AND y.entry_id = m
                           WHERE x.entry_id = ?1)",
    )?;
    let mut label = tx.prepare_cached("UPDATE entries SET cluster_id = ?2 WHERE id = ?1")?;
    let mut seen = HashSet::new();
    let mut labels = Vec::new();
    for start in region {
        if seen.contains(&start) {
            continue;
        }
        let component = reach(&mut neighbours, &[start], &mut seen)?;
        let min = component.iter().copied().min().unwrap_or(start);
        for member in &component {
            label.execute(params![member, min])?;
        }
        labels.push(min);
    }
    // Every member carries its new label before any cluster's canonical member is chosen: a
    // member still labelled as before would count in a cluster it left.
    for l in labels {
        choose_canonical(tx, l)?;
    }
    Ok(())
}

/// Every entry `step` leads to from `starts`, breadth first, the starts included; `seen`
/// collects them (one may be shared by several walks, so none is walked twice).
fn reach(
    step: &mut rusqlite::CachedStatement<'_>,
    starts: &[i64],
    seen: &mut HashSet<i64>,
) -> Result<Vec<i64>, StoreError> {
    let mut found: Vec<i64> = starts.iter().copied().filter(|s| seen.insert(*s)).collect();
    let mut at = 0;
    while at < found.len() {
        let next: Vec<i64> = step
            .query_map([found[at]], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for n in next {
            if seen.insert(n) {
                found.push(n);
            }
        }
        at += 1;
    }
    Ok(found)
}

/// Marks the member merged feeds show: the highest source priority, then the earliest.
fn choose_canonical(tx: &rusqlite::Transaction<'_>, cluster: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE entries SET canonical = (id = (
             SELECT e.id FROM entries e WHERE e.cluster_id = ?1
             ORDER BY (SELECT MAX(s.priority) FROM entry_sources es
                       JOIN sources s ON s.id = es.source_id WHERE es.entry_id = e.id) DESC,
                      e.published,
                      (SELECT MIN(es.source_id) FROM entry_sources es WHERE es.entry_id = e.id),
                      e.id
             LIMIT 1))
         WHERE cluster_id = ?1",
    )?
    .execute([cluster])?;
    Ok(())
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
