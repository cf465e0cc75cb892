//! The PostgreSQL schema, versioned like SQLite's: each migration runs once, in order, in one
//! transaction; a database whose version is newer than this build's is refused. Instances
//! starting at once migrate one at a time (a transaction-scoped advisory lock), so none sees
//! half a schema.

use tokio_postgres::Client;

use super::PgError;

/// The key of the advisory lock migrations hold (any constant the database does not use
/// otherwise: "trib" in ASCII).
const MIGRATION_LOCK: i64 = 0x7472_6962;

/// Migration `i` brings the schema from version `i` to `i + 1`. The tables mirror SQLite's
/// (`store::schema`) column for column, typed so the store's shared statements (`store::sql`)
/// run on both: integers (times as Unix seconds, flags as 0/1) are `bigint`; source ids
/// compare byte by byte (`COLLATE "C"`, SQLite's BINARY), since which source holds a shared
/// entry and which member a cluster shows follow their order. Until the backend
/// can be chosen in a config no database of this schema exists outside the tests, so it is
/// still written as one migration per table group.
const MIGRATIONS: &[&str] = &[
    // 1: the sources, with their scheduling state and the lease by which instances share
    // their fetches, and the hosts they are fetched from, with the politeness state every
    // instance must see (Retry-After).
    "CREATE TABLE sources (
         id text COLLATE \"C\" PRIMARY KEY,
         name text NOT NULL,
         url text NOT NULL,
         category text NOT NULL,
         tags text NOT NULL DEFAULT '[]',
         active bigint NOT NULL DEFAULT 1,
         etag text,
         last_modified text,
         last_fetch_at bigint,
         last_success_at bigint,
         last_status text,
         last_error text,
         consecutive_failures bigint NOT NULL DEFAULT 0,
         priority bigint NOT NULL DEFAULT 0,
         next_run bigint,
         disabled_reason text,
         moved_to text,
         seen text,
         shape text,
         drift text,
         entry_count bigint NOT NULL DEFAULT 0,
         schedule text,
         listed_at bigint,
         listing bigint NOT NULL DEFAULT 0,
         host text NOT NULL DEFAULT '',
         lease_holder text,
         lease_expires bigint
     );
     CREATE INDEX sources_due ON sources (host, next_run);
     CREATE TABLE hosts (
         host text PRIMARY KEY,
         deferred_until bigint NOT NULL DEFAULT 0,
         reason text NOT NULL DEFAULT ''
     );",
    // 2: the write sequence instances invalidate their caches by.
    "CREATE TABLE write_sequence (seq bigint NOT NULL);
     INSERT INTO write_sequence (seq) VALUES (0);",
    // 3: entries, each source's link to them and copy of them, their identity keys, and what
    // dedupe keeps (fingerprints, candidate keys, matched pairs), as SQLite has them; texts
    // are plain (PostgreSQL compresses long values itself). `entry_sources.seq` is the order
    // of linking, which SQLite's rowid gives.
    "CREATE TABLE entries (
         id bigint PRIMARY KEY,
         title text NOT NULL,
         link text,
         summary text,
         content text,
         authors text NOT NULL DEFAULT '[]',
         categories text NOT NULL DEFAULT '[]',
         published bigint NOT NULL,
         updated bigint NOT NULL,
         first_seen bigint NOT NULL,
         date_source text NOT NULL DEFAULT 'feed',
         article_pending bigint NOT NULL DEFAULT 0,
         cluster_id bigint,
         canonical bigint NOT NULL DEFAULT 1,
         date_rank bigint NOT NULL DEFAULT 2,
         sort_key bigint NOT NULL DEFAULT 0
     );
     CREATE INDEX entries_by_cluster ON entries (cluster_id);
     CREATE INDEX entries_article_pending ON entries (id) WHERE article_pending = 1;
     CREATE INDEX entries_by_published ON entries (published DESC, sort_key DESC, id DESC);
     CREATE INDEX entries_canonical_by_published
         ON entries (canonical, published DESC, sort_key DESC, id DESC);
     CREATE TABLE entry_sources (
         entry_id bigint NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
         source_id text COLLATE \"C\" NOT NULL REFERENCES sources (id),
         guid text,
         link text,
         version text NOT NULL,
         first_seen bigint NOT NULL,
         last_seen bigint NOT NULL,
         own bigint NOT NULL DEFAULT 0,
         title text,
         summary text,
         content text,
         authors text,
         published bigint,
         listing bigint NOT NULL DEFAULT 0,
         seq bigint GENERATED ALWAYS AS IDENTITY,
         PRIMARY KEY (entry_id, source_id)
     );
     CREATE INDEX entry_sources_by_source ON entry_sources (source_id, entry_id);
     CREATE FUNCTION entry_sources_count() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         IF TG_OP = 'INSERT' THEN
             UPDATE sources SET entry_count = entry_count + 1 WHERE id = NEW.source_id;
         ELSE
             UPDATE sources SET entry_count = entry_count - 1 WHERE id = OLD.source_id;
         END IF;
         RETURN NULL;
     END $$;
     CREATE TRIGGER entry_sources_counted AFTER INSERT OR DELETE ON entry_sources
         FOR EACH ROW EXECUTE FUNCTION entry_sources_count();
     CREATE TABLE entry_keys (
         key text PRIMARY KEY,
         entry_id bigint NOT NULL REFERENCES entries (id) ON DELETE CASCADE
     );
     CREATE INDEX entry_keys_by_entry ON entry_keys (entry_id);
     CREATE TABLE cluster_merges (
         entry_id bigint PRIMARY KEY REFERENCES entries (id) ON DELETE CASCADE,
         matched_entry bigint NOT NULL,
         rule text NOT NULL,
         score double precision NOT NULL,
         merged_at bigint NOT NULL
     );
     CREATE TABLE dedupe_sigs (
         entry_id bigint PRIMARY KEY REFERENCES entries (id) ON DELETE CASCADE,
         category text NOT NULL,
         published bigint NOT NULL,
         seen bigint NOT NULL,
         keys bytea NOT NULL,
         figures text
     );
     CREATE INDEX dedupe_sigs_by_published ON dedupe_sigs (category, published);
     CREATE INDEX dedupe_sigs_by_seen ON dedupe_sigs (category, seen);
     CREATE TABLE fingerprints (
         entry_id bigint PRIMARY KEY REFERENCES entries (id) ON DELETE CASCADE,
         title text NOT NULL,
         body text NOT NULL,
         simhash bigint NOT NULL
     );
     CREATE TABLE dedupe_edges (
         a bigint NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
         b bigint NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
         rule text NOT NULL,
         score double precision NOT NULL,
         PRIMARY KEY (a, b)
     );
     CREATE INDEX dedupe_edges_by_b ON dedupe_edges (b, a);
     CREATE TABLE tombstones (
         key text PRIMARY KEY,
         source_id text NOT NULL,
         seen bigint NOT NULL
     );",
    // 4: the text searches read, as SQLite's `search_text` view gives it.
    "CREATE VIEW search_text (entry_id, text) AS
         SELECT entry_id, title || ' ' || body || ' ' FROM fingerprints;",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

pub(super) async fn migrate(client: &mut Client) -> Result<(), PgError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    // Quietly: the server's notice that the table exists would be logged at every start.
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning;
         CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)",
    )
    .await?;
    let found: Option<i32> = tx
        .query_opt("SELECT version FROM schema_version", &[])
        .await?
        .map(|row| row.get(0));
    let found = match found {
        Some(v) => v,
        None => {
            tx.execute("INSERT INTO schema_version (version) VALUES (0)", &[])
                .await?;
            0
        }
    };
    if found > SCHEMA_VERSION {
        return Err(PgError::TooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for sql in &MIGRATIONS[found as usize..] {
        tx.batch_execute(sql).await?;
    }
    tx.execute("UPDATE schema_version SET version = $1", &[&SCHEMA_VERSION])
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn version(client: &Client) -> Result<i32, PgError> {
    Ok(client
        .query_one("SELECT version FROM schema_version", &[])
        .await?
        .get(0))
}
