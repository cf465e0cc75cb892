//! The schema, as the migrations that build it. Each runs once, in order, and `PRAGMA
//! user_version` counts how many have: a database written by a newer build is refused rather
//! than misread, and an old one is brought up to date at open, before anything reads it.

use rusqlite::Connection;

use super::StoreError;

/// Each migration runs once, in order; `PRAGMA user_version` records how many have run.
/// Never edit a shipped migration: append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE sources (
    id                    TEXT PRIMARY KEY,
    name                  TEXT NOT NULL,
    url                   TEXT NOT NULL,
    category              TEXT NOT NULL,
    tags                  TEXT NOT NULL DEFAULT '[]',
    -- 0 once the source left the config: its entries stay, its feed is gone.
    active                INTEGER NOT NULL DEFAULT 1,
    etag                  TEXT,
    last_modified         TEXT,
    last_fetch_at         INTEGER,
    last_success_at       INTEGER,
    last_status           TEXT,
    last_error            TEXT,
    consecutive_failures  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE entries (
    id          INTEGER PRIMARY KEY,
    title       TEXT NOT NULL,
    link        TEXT,
    summary     TEXT,
    content     TEXT,
    authors     TEXT NOT NULL DEFAULT '[]',
    categories  TEXT NOT NULL DEFAULT '[]',
    published   INTEGER NOT NULL,
    updated     INTEGER NOT NULL,
    first_seen  INTEGER NOT NULL
);
CREATE INDEX entries_by_published ON entries (published DESC, id DESC);
CREATE TABLE entry_sources (
    entry_id    INTEGER NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
    source_id   TEXT NOT NULL REFERENCES sources (id),
    guid        TEXT,
    link        TEXT,
    -- The version this source last sent; a change is an edit.
    version     TEXT NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    PRIMARY KEY (entry_id, source_id)
);
CREATE INDEX entry_sources_by_source ON entry_sources (source_id, entry_id);
CREATE TABLE entry_keys (
    key       TEXT PRIMARY KEY,
    entry_id  INTEGER NOT NULL REFERENCES entries (id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX entry_keys_by_entry ON entry_keys (entry_id);
"#,
    r#"
-- Where the published date came from (model::DateSource), and whether the entry still waits
-- for its article page.
ALTER TABLE entries ADD COLUMN date_source TEXT NOT NULL DEFAULT 'feed';
ALTER TABLE entries ADD COLUMN article_pending INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
-- Near-duplicates (see dedupe.rs). Each entry belongs to one cluster, labelled by the id of
-- one of its members; `canonical` marks the member merged feeds show.
ALTER TABLE entries ADD COLUMN cluster_id INTEGER;
ALTER TABLE entries ADD COLUMN canonical INTEGER NOT NULL DEFAULT 1;
ALTER TABLE entries ADD COLUMN fp_title TEXT NOT NULL DEFAULT '';
ALTER TABLE entries ADD COLUMN fp_body TEXT NOT NULL DEFAULT '';
ALTER TABLE entries ADD COLUMN simhash INTEGER NOT NULL DEFAULT 0;
UPDATE entries SET cluster_id = id;
CREATE INDEX entries_by_cluster ON entries (cluster_id);
CREATE INDEX entries_canonical_by_published ON entries (canonical, published DESC, id DESC);
ALTER TABLE sources ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
-- Candidate keys of recent entries. Keys of entries both published and seen long ago are
-- pruned: nothing new is likely to match them, and the table stays small.
CREATE TABLE dedupe_keys (
    key        INTEGER NOT NULL,
    entry_id   INTEGER NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
    category   TEXT NOT NULL,
    published  INTEGER NOT NULL,
    seen       INTEGER NOT NULL,
    PRIMARY KEY (key, entry_id)
) WITHOUT ROWID;
CREATE INDEX dedupe_keys_by_seen ON dedupe_keys (seen);
CREATE INDEX dedupe_keys_by_entry ON dedupe_keys (entry_id);
-- Why an entry joined its cluster: the member it matched, the rule and the score.
CREATE TABLE cluster_merges (
    entry_id       INTEGER PRIMARY KEY REFERENCES entries (id) ON DELETE CASCADE,
    matched_entry  INTEGER NOT NULL,
    rule           TEXT NOT NULL,
    score          REAL NOT NULL,
    merged_at      INTEGER NOT NULL
);
"#,
    r#"
-- Scheduling state, so a restart neither refetches everything at once nor forgets a backoff.
ALTER TABLE sources ADD COLUMN next_run INTEGER;
-- Why the source is no longer fetched (HTTP 410); cleared by a success or a config change.
ALTER TABLE sources ADD COLUMN disabled_reason TEXT;
-- Where a permanent redirect (301/308) said the feed lives now; reset when the config's URL changes.
ALTER TABLE sources ADD COLUMN moved_to TEXT;
-- Hosts that asked to be left alone (429/503 with Retry-After) until a time.
CREATE TABLE hosts (
    host            TEXT PRIMARY KEY,
    deferred_until  INTEGER NOT NULL,
    reason          TEXT NOT NULL
);
"#,
    r#"
-- Full-text search. The trigram tokenizer needs no dictionary and matches Chinese as well as
-- Latin text (any 3+ character substring); rowid = entries.id. The body is the normalized text
-- of the fingerprint (NFKC, lower case).
CREATE VIRTUAL TABLE entries_fts USING fts5(title, body, tokenize = 'trigram');
INSERT INTO entries_fts (rowid, title, body) SELECT id, title, fp_body FROM entries;
"#,
    r#"
-- Candidate lookups ask for one key in one category and time window: key the table that way,
-- so a lookup reads only the rows it wants (and can stop after the first few).
CREATE TABLE dedupe_keys_new (
    key        INTEGER NOT NULL,
    category   TEXT NOT NULL,
    published  INTEGER NOT NULL,
    entry_id   INTEGER NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
    seen       INTEGER NOT NULL,
    PRIMARY KEY (key, category, published, entry_id)
) WITHOUT ROWID;
INSERT INTO dedupe_keys_new (key, category, published, entry_id, seen)
    SELECT key, category, published, entry_id, seen FROM dedupe_keys;
DROP TABLE dedupe_keys;
ALTER TABLE dedupe_keys_new RENAME TO dedupe_keys;
CREATE INDEX dedupe_keys_by_seen ON dedupe_keys (seen);
CREATE INDEX dedupe_keys_by_entry ON dedupe_keys (entry_id);
"#,
    r#"
-- Search, smaller: one column (the normalized title and body), and no token positions
-- (detail=none). Terms are looked up with LIKE, which FTS5 narrows by the trigram index and
-- then checks against the text itself, so matches stay exact while the index holds only which
-- rows contain each trigram. Writing positions was most of the cost of storing an entry.
DROP TABLE entries_fts;
CREATE VIRTUAL TABLE entries_fts USING fts5(text, tokenize = 'trigram', detail = 'none');
INSERT INTO entries_fts (rowid, text) SELECT id, fp_title || ' ' || fp_body FROM entries;
"#,
    r#"
-- Candidate keys, one row per entry instead of one per key: the writer looks keys up in memory
-- (dedupe::index), loading a category's day of rows at a time. Each key row was an insert at
-- a random place of a large B-tree, and those scattered pages were most of what a commit
-- wrote. Keys: 8 bytes each, big-endian.
CREATE TABLE dedupe_sigs (
    entry_id   INTEGER PRIMARY KEY REFERENCES entries (id) ON DELETE CASCADE,
    category   TEXT NOT NULL,
    published  INTEGER NOT NULL,
    seen       INTEGER NOT NULL,
    keys       BLOB NOT NULL
);
CREATE INDEX dedupe_sigs_by_published ON dedupe_sigs (category, published);
CREATE INDEX dedupe_sigs_by_seen ON dedupe_sigs (category, seen);
INSERT INTO dedupe_sigs (entry_id, category, published, seen, keys)
    SELECT entry_id, MIN(category), MIN(published), MAX(seen),
           unhex(group_concat(printf('%016X', key), ''))
    FROM dedupe_keys GROUP BY entry_id;
DROP TABLE dedupe_keys;
"#,
    r#"
-- Fingerprints in a table of their own. Comparing a new entry with its candidates (~15 of
-- them) read each candidate's fingerprint from the end of its entries row, walking the row's
-- overflow pages past its content. The search index reads its text from here too, through a
-- view (an external-content FTS5 table), instead of keeping a copy of every text. The old
-- entries.fp_* columns are no longer written; dropping them would rewrite every row.
CREATE TABLE fingerprints (
    entry_id  INTEGER PRIMARY KEY REFERENCES entries (id) ON DELETE CASCADE,
    title     TEXT NOT NULL,
    body      TEXT NOT NULL,
    simhash   INTEGER NOT NULL
);
INSERT INTO fingerprints (entry_id, title, body, simhash)
    SELECT id, fp_title, fp_body, simhash FROM entries;
DROP TABLE entries_fts;
CREATE VIEW search_text (entry_id, text) AS
    SELECT entry_id, title || ' ' || body FROM fingerprints;
CREATE VIRTUAL TABLE entries_fts USING fts5(text, content = 'search_text',
    content_rowid = 'entry_id', tokenize = 'trigram', detail = 'none');
INSERT INTO entries_fts (entries_fts) VALUES ('rebuild');
"#,
    r#"
-- Each candidate's figures (dedupe::Figures), kept in memory with its keys: most candidates
-- share a key by chance and their figures alone turn them down, so their fingerprints are not
-- read. Rows stored before this have none and are compared on their fingerprints.
ALTER TABLE dedupe_sigs ADD COLUMN figures TEXT;
"#,
    r#"
-- Two-character terms (most Chinese words) from the search index. No trigram LIKE finds a
-- pair, but each place a pair occurs begins a trigram once the text ends in a space, and the
-- index's list of terms (entries_fts_terms) says which trigrams begin with it. The index is
-- built again: an edit takes an entry out by its text as indexed, which now ends in a space.
DROP VIEW search_text;
CREATE VIEW search_text (entry_id, text) AS
    SELECT entry_id, title || ' ' || body || ' ' FROM fingerprints;
INSERT INTO entries_fts (entries_fts) VALUES ('rebuild');
CREATE VIRTUAL TABLE entries_fts_terms USING fts5vocab(entries_fts, 'row');
"#,
    r#"
-- What each source said of an entry it shares with the source that first stored it: a
-- source's own feed shows its own words. `own` = 1 marks such a copy; a column left NULL
-- means "as the entry says" (the same words, or none of its own). The entry's row is what its
-- first source said, enriched by the others: full text, authors, and the date read the surest
-- way (`date_rank`, see normalize::date_rank).
ALTER TABLE entry_sources ADD COLUMN own INTEGER NOT NULL DEFAULT 0;
ALTER TABLE entry_sources ADD COLUMN title TEXT;
ALTER TABLE entry_sources ADD COLUMN summary TEXT;
ALTER TABLE entry_sources ADD COLUMN content TEXT;
ALTER TABLE entry_sources ADD COLUMN authors TEXT;
ALTER TABLE entry_sources ADD COLUMN published INTEGER;
ALTER TABLE entries ADD COLUMN date_rank INTEGER NOT NULL DEFAULT 2;
"#,
    r#"
-- Entries whose article page could not be read yet: a source with such entries polls its list
-- without validators, so a 304 does not stop the retry (see Store::articles_pending).
CREATE INDEX entries_article_pending ON entries (id) WHERE article_pending = 1;
"#,
    r#"
-- Near-duplicate clusters as the connected components of the pairs that matched, so they do not
-- depend on the order entries arrived in: every match is kept (a < b), and a cluster is
-- recomputed from them whenever a member or its sources change. A pair whose entries share a
-- source does not join them (a source lists one story once). The matches that built the
-- clusters so far are the first edges.
CREATE TABLE dedupe_edges (
    a      INTEGER NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
    b      INTEGER NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
    rule   TEXT NOT NULL,
    score  REAL NOT NULL,
    PRIMARY KEY (a, b)
) WITHOUT ROWID;
CREATE INDEX dedupe_edges_by_b ON dedupe_edges (b, a);
INSERT OR IGNORE INTO dedupe_edges (a, b, rule, score)
    SELECT MIN(entry_id, matched_entry), MAX(entry_id, matched_entry), rule, score
    FROM cluster_merges WHERE entry_id != matched_entry;
"#,
    r#"
-- Entries of one instant in a stable order: `sort_key` is a hash of the entry's first identity
-- key that is not scoped to a source (store::sort_key), so the same stories list the same way
-- whichever was stored first. Entries stored before keep their id as their key.
ALTER TABLE entries ADD COLUMN sort_key INTEGER NOT NULL DEFAULT 0;
UPDATE entries SET sort_key = id;
DROP INDEX entries_by_published;
DROP INDEX entries_canonical_by_published;
CREATE INDEX entries_by_published ON entries (published DESC, sort_key DESC, id DESC);
CREATE INDEX entries_canonical_by_published
    ON entries (canonical, published DESC, sort_key DESC, id DESC);
"#,
    r#"
-- The search index moves to a database file of its own, kept by a thread of its own
-- (store::indexer): the writer only queues the entries whose text is new or changed. The
-- index there is built from every entry on the first start (search_index has no token yet).
DROP TABLE entries_fts_terms;
DROP TABLE entries_fts;
CREATE TABLE search_queue (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id  INTEGER NOT NULL
);
-- Names the index file made for this store, so one made for another (or before a restore)
-- is built again.
CREATE TABLE search_index (token TEXT NOT NULL);
"#,
    r#"
-- What the last fetch saw (health::Seen, JSON), the shape its fetches usually have
-- (health::Shape, JSON), and why it is drifting, if it is (a scraped page's selectors gone
-- stale).
ALTER TABLE sources ADD COLUMN seen TEXT;
ALTER TABLE sources ADD COLUMN shape TEXT;
ALTER TABLE sources ADD COLUMN drift TEXT;
"#,
    r#"
-- Each source's entry count, kept by triggers, so the sources' state (the console, the API,
-- the metrics) costs no count over every entry a source carries.
ALTER TABLE sources ADD COLUMN entry_count INTEGER NOT NULL DEFAULT 0;
UPDATE sources SET entry_count =
    (SELECT COUNT(*) FROM entry_sources es WHERE es.source_id = sources.id);
CREATE TRIGGER entry_sources_counted AFTER INSERT ON entry_sources BEGIN
    UPDATE sources SET entry_count = entry_count + 1 WHERE id = NEW.source_id;
END;
CREATE TRIGGER entry_sources_uncounted AFTER DELETE ON entry_sources BEGIN
    UPDATE sources SET entry_count = entry_count - 1 WHERE id = OLD.source_id;
END;
"#,
    r#"
-- The schedule a source's stored next run was planned with (config::Schedule::canonical): a
-- different one in the config drops the plan, so a shortened schedule takes effect at once.
ALTER TABLE sources ADD COLUMN schedule TEXT;
"#,
    r#"
-- Retention (store::retention). Each stored list of a source counts (`listing`; a 304 leaves
-- the count), and each of its entries keeps the count of the last list that named it: an entry
-- the source's latest list names is kept whatever its age. `listed_at` is when that list was
-- stored. Tombstones are the identity keys of entries pruned while their source may still
-- list them, so that listing does not bring them back as new; each is dropped once its source
-- has gone on listing without it for a while.
ALTER TABLE sources ADD COLUMN listed_at INTEGER;
ALTER TABLE sources ADD COLUMN listing INTEGER NOT NULL DEFAULT 0;
ALTER TABLE entry_sources ADD COLUMN listing INTEGER NOT NULL DEFAULT 0;
UPDATE sources SET listing = 1, listed_at =
    (SELECT MAX(es.last_seen) FROM entry_sources es WHERE es.source_id = sources.id);
UPDATE entry_sources SET listing = 1
    WHERE last_seen >= (SELECT listed_at FROM sources s WHERE s.id = entry_sources.source_id);
CREATE TABLE tombstones (
    key        TEXT PRIMARY KEY,
    source_id  TEXT NOT NULL,
    seen       INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- Large texts packed (store::packed): the content and summary of entries and of sources' own
-- copies, and fingerprints' bodies, as zstd frames; the search view unpacks them. A row of
-- ~2.4 KB of text took a 4 KiB page of its own. Rows written before stay readable as they are;
-- these are packed now, and the fingerprint copies of stores older than migration 9 emptied.
DROP VIEW search_text;
CREATE VIEW search_text (entry_id, text) AS
    SELECT entry_id, title || ' ' || unpack(body) || ' ' FROM fingerprints;
UPDATE entries SET content = pack(content), summary = pack(summary), fp_title = '', fp_body = ''
    WHERE typeof(content) = 'text' OR typeof(summary) = 'text' OR fp_body != '';
UPDATE entry_sources SET content = pack(content), summary = pack(summary)
    WHERE own = 1 AND (typeof(content) = 'text' OR typeof(summary) = 'text');
UPDATE fingerprints SET body = pack(body) WHERE typeof(body) = 'text';
"#,
    r#"
-- The host a source is fetched from, kept by sync_sources: what instances sharing a
-- PostgreSQL store bound their fetches per host by (store::pg::leases); the same column here
-- keeps the sources' SQL one for both backends.
ALTER TABLE sources ADD COLUMN host TEXT NOT NULL DEFAULT '';
"#,
];

/// Has the store give pages freed by prunes back to the file system (`auto_vacuum =
/// incremental`; `store::retention` runs the vacuum). A new file is made so; one made before
/// is converted once, by a VACUUM that rewrites it: minutes for millions of entries, and as
/// much free disk as the file takes. A conversion that cannot run (no room, another process
/// busy) is put off to the next start, logged: the store works the same, it only does not
/// shrink.
pub(super) fn incremental_vacuum(conn: &Connection, what: &str) -> Result<(), StoreError> {
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode == 2 {
        return Ok(());
    }
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    let tables: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))?;
    if tables == 0 {
        // A new file (its header already written in WAL mode): an empty VACUUM sets the mode.
        conn.execute_batch("VACUUM")?;
        return Ok(());
    }
    let started = std::time::Instant::now();
    tracing::info!("converting {what} to incremental vacuum (once: the file is rewritten)");
    match conn.execute_batch("VACUUM") {
        Ok(()) => {
            let secs = started.elapsed().as_secs_f64();
            tracing::info!(secs, "{what} converted to incremental vacuum");
        }
        Err(e) => tracing::warn!(
            error = %e,
            "cannot convert {what} to incremental vacuum now; it will not shrink after prunes \
             until a later start does"
        ),
    }
    Ok(())
}

/// Gives free pages of `conn`'s main database back to the file system: all of them, or as
/// many as `budget` allows. The pragma frees one page per row it returns, so it is stepped
/// until it ends or the time is up (stopping early commits the pages freed so far).
pub(super) fn vacuum_pages(
    conn: &Connection,
    budget: Option<std::time::Duration>,
) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let mut stmt = conn.prepare("PRAGMA incremental_vacuum")?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {
        if budget.is_some_and(|b| started.elapsed() >= b) {
            break;
        }
    }
    Ok(())
}

/// The schema version this build writes: a store at or below it can be opened.
pub(super) fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Runs the migrations `conn` has not run yet, each in its own transaction.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // Migrations pack and unpack texts (store::packed) on whatever connection runs them.
    super::packed::register(conn)?;
    let known = MIGRATIONS.len() as i64;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > known {
        return Err(StoreError::TooNew {
            found: version,
            known,
        });
    }
    // An upgrade may rebuild an index over every entry (minutes for a million): said, so an
    // operator waiting for the daemon knows why it is not listening yet.
    let upgrading = version > 0 && version < known;
    let started = std::time::Instant::now();
    if upgrading {
        tracing::info!(from = version, to = known, "upgrading the store's schema");
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    if upgrading {
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(version = known, secs, "store schema upgraded");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedupe::index as dedupe_index;
    use crate::store::search::rare_term_matches;
    use crate::store::Store;

    fn user_version(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("user_version")
    }

    #[test]
    fn a_new_database_reaches_the_current_version_and_a_second_run_changes_nothing() {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        migrate(&mut conn).expect("migrated");
        assert_eq!(user_version(&conn), MIGRATIONS.len() as i64);
        // The last migration's index exists: every migration ran, not just the counter.
        let indexed: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = ?1)",
                ["entries_canonical_by_published"],
                |r| r.get(0),
            )
            .expect("schema");
        assert!(indexed);
        // Running them again would fail on the first CREATE TABLE if any were re-run.
        migrate(&mut conn).expect("nothing to do");
        assert_eq!(user_version(&conn), MIGRATIONS.len() as i64);
    }

    #[test]
    fn an_old_database_runs_only_the_migrations_it_lacks() {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).expect("migration");
        }
        conn.execute_batch(
            "PRAGMA user_version = 3;
             INSERT INTO entries (id, title, published, updated, first_seen)
                 VALUES (1, 'kept', 100, 100, 100);",
        )
        .expect("a version-3 store");
        migrate(&mut conn).expect("migrated");
        assert_eq!(user_version(&conn), MIGRATIONS.len() as i64);
        let (title, sort_key): (String, i64) = conn
            .query_row(
                "SELECT title, sort_key FROM entries WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("the entry survived");
        assert_eq!((title.as_str(), sort_key), ("kept", 1));
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused_untouched() {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        let newer = MIGRATIONS.len() as i64 + 1;
        conn.pragma_update(None, "user_version", newer)
            .expect("user_version");
        match migrate(&mut conn) {
            Err(StoreError::TooNew { found, known }) => {
                assert_eq!((found, known), (newer, MIGRATIONS.len() as i64));
            }
            other => panic!("expected TooNew, got {other:?}"),
        }
        assert_eq!(user_version(&conn), newer);
        let tables: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
            .expect("schema");
        assert_eq!(tables, 0, "nothing was created");
    }

    /// A vacuum stopped by its time budget keeps what it freed; without one it frees all.
    #[test]
    fn a_vacuum_step_stopped_early_keeps_the_pages_it_gave_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = Connection::open(dir.path().join("v.db")).expect("open");
        conn.execute_batch(
            "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL; CREATE TABLE t (x);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
             INSERT INTO t SELECT randomblob(3000) FROM n;
             DELETE FROM t;",
        )
        .expect("free pages");
        let free = || -> i64 {
            conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))
                .expect("free")
        };
        let before = free();
        assert!(before > 100, "{before}");
        vacuum_pages(&conn, Some(std::time::Duration::ZERO)).expect("one step");
        assert_eq!(free(), before - 1);
        vacuum_pages(&conn, None).expect("all");
        assert_eq!(free(), 0);
    }

    /// Migration 21 packs the long texts a store already holds; they read as before, and the
    /// search finds them.
    #[test]
    fn texts_stored_before_packing_are_packed_and_read_the_same() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("v20.db");
        let long = "央行公布人民币汇率中间价上调 the central parity was raised again. ".repeat(30);
        {
            let mut conn = Connection::open(&path).expect("open");
            super::super::packed::register(&conn).expect("functions");
            for sql in &MIGRATIONS[..20] {
                conn.execute_batch(sql).expect("migration");
            }
            let tx = conn.transaction().expect("tx");
            tx.execute_batch("PRAGMA user_version = 20;")
                .expect("version");
            tx.execute(
                "INSERT INTO sources (id, name, url, category) VALUES ('a', 'A', 'http://a/', 'news')",
                [],
            )
            .expect("source");
            tx.execute(
                "INSERT INTO entries (id, title, content, summary, published, updated, first_seen,
                                      cluster_id)
                     VALUES (1, 'Parity', ?1, 'short', 100, 100, 100, 1)",
                [&long],
            )
            .expect("entry");
            tx.execute(
                "INSERT INTO entry_sources (entry_id, source_id, version, first_seen, last_seen)
                     VALUES (1, 'a', 'v', 100, 100)",
                [],
            )
            .expect("link");
            tx.execute(
                "INSERT INTO fingerprints (entry_id, title, body, simhash) VALUES (1, 'parity', ?1, 0)",
                [long.to_lowercase()],
            )
            .expect("fingerprint");
            tx.commit().expect("commit");
        }
        let store = Store::open(&path).expect("migrated");
        let kinds: (String, String, String) = store
            .reader()
            .expect("reader")
            .query_row(
                "SELECT typeof(e.content), typeof(e.summary), typeof(f.body)
                 FROM entries e JOIN fingerprints f ON f.entry_id = e.id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("kinds");
        assert_eq!(kinds, ("blob".into(), "text".into(), "blob".into()));
        let q = crate::model::FeedQuery {
            limit: 10,
            ..Default::default()
        };
        let feed = store.entries(&crate::model::Scope::All, &q).expect("feed");
        assert_eq!(feed[0].content.as_deref(), Some(long.as_str()));
        assert_eq!(feed[0].summary.as_deref(), Some("short"));
        let found = store
            .entries(
                &crate::model::Scope::All,
                &crate::model::FeedQuery {
                    text: Some("中间价上调".into()),
                    ..q
                },
            )
            .expect("search");
        assert_eq!(found.len(), 1);
    }

    /// Migration 8 turns the key rows of a version-7 store into one row per entry; migration 9
    /// moves fingerprints to their own table and searches them there.
    #[test]
    fn a_version_7_store_keeps_its_candidate_keys_fingerprints_and_search() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("v7.db");
        {
            let conn = Connection::open(&path).expect("open");
            for sql in &MIGRATIONS[..7] {
                conn.execute_batch(sql).expect("migration");
            }
            conn.execute_batch(
                "PRAGMA user_version = 7;
                 INSERT INTO entries (id, title, published, updated, first_seen, fp_title,
                                      fp_body, simhash)
                     VALUES (1, 'a', 100, 100, 100, 'park', 'riverside plans', 7),
                            (2, 'b', 300, 300, 300, 'library', 'weekend hours', 9);
                 INSERT INTO dedupe_keys (key, category, published, entry_id, seen) VALUES
                     (-9223372036854775808, 'news', 100, 1, 150),
                     (-1, 'news', 100, 1, 150),
                     (42, 'news', 100, 1, 150),
                     (42, 'tech', 300, 2, 350);",
            )
            .expect("a version-7 store");
        }
        let store = Store::open(&path).expect("migrated");
        let writer = store.writer().expect("writer");
        let mut rows = writer
            .lite()
            .expect("sqlite")
            .prepare("SELECT entry_id, category, published, seen, keys FROM dedupe_sigs")
            .expect("query");
        let mut got: Vec<(i64, String, i64, i64, Vec<i64>)> = rows
            .query_map([], |r| {
                let mut keys = dedupe_index::decode_keys(&r.get::<_, Vec<u8>>(4)?);
                keys.sort_unstable();
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, keys))
            })
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows");
        got.sort();
        assert_eq!(
            got,
            vec![
                (1, "news".into(), 100, 150, vec![i64::MIN, -1, 42]),
                (2, "tech".into(), 300, 350, vec![42]),
            ]
        );
        let fingerprint: (String, String, i64) = writer
            .lite()
            .expect("sqlite")
            .query_row(
                "SELECT title, body, simhash FROM fingerprints WHERE entry_id = 2",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("fingerprint");
        assert_eq!(fingerprint, ("library".into(), "weekend hours".into(), 9));
        drop(rows);
        drop(writer);
        // The search index, in its own file since migration 16, was built from the
        // migrated text on the first start.
        store
            .wait_for_search_index()
            .expect("the search index caught up");
        let reader = store.reader().expect("reader");
        let matches = |term: &str| {
            rare_term_matches(&reader, term)
                .expect("search")
                .map(|mut ids| {
                    ids.sort_unstable();
                    ids
                })
        };
        assert_eq!(matches("side pla"), Some(vec![1]));
        // Pairs of characters are found by the trigrams they begin, even at the very end of
        // a text ("rs" of "hours"): the indexed text ends in a space.
        assert_eq!(matches("rs"), Some(vec![1, 2]));
        assert_eq!(matches("ho"), Some(vec![2]));
        assert_eq!(matches("zq"), Some(vec![]));
        assert_eq!(matches("s"), None);
        reader
            .execute(
                "INSERT INTO search.fts (fts, rank) VALUES ('integrity-check', 0)",
                [],
            )
            .expect("the index is whole");
    }
}
