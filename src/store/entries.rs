//! Entries by identity: matching an incoming entry to a stored one by its keys (a few
//! primary-key lookups in `entry_keys`, never a scan), inserting it or updating it, linking
//! it to the source, and asking which items of a list still need their article page.
//!
//! An edit is detected per source (`entry_sources.version`), so two sources carrying one story
//! in different words do not overwrite each other on every fetch.

use super::clusters::{self, Placement};
use super::copies::SourceCopies;
use super::packed::{Pack, Packs};
use super::sql::Conn;
use super::writes::{Batch, Txn};
use super::{json, Store, StoreError};
use crate::model::{Entry, Fingerprint};

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

impl Store {
    /// Whether an entry of `source_id` still waits for its article page: its next poll must
    /// not be answered 304, or the retry would wait until the list changes.
    pub fn articles_pending(&self, source_id: &str) -> Result<bool, StoreError> {
        self.read(|c| {
            // SQLite is told which index: it would otherwise walk the source's links.
            let sql = if c.is_pg() {
                "SELECT EXISTS (SELECT 1 FROM entries e
                                JOIN entry_sources es ON es.entry_id = e.id AND es.source_id = ?1
                                WHERE e.article_pending = 1)"
            } else {
                "SELECT EXISTS (SELECT 1 FROM entries e INDEXED BY entries_article_pending
                                JOIN entry_sources es ON es.entry_id = e.id AND es.source_id = ?1
                                WHERE e.article_pending = 1)"
            };
            c.query_one(sql, &[&source_id], |r| r.get(0))
        })
    }

    /// For each item of `source_id`, by its identity keys, whether its article page still has
    /// to be fetched.
    pub fn article_needs(
        &self,
        source_id: &str,
        keys: &[Vec<String>],
    ) -> Result<Vec<ArticleNeed>, StoreError> {
        self.read(|c| {
            let mut needs = Vec::with_capacity(keys.len());
            for item_keys in keys {
                let mut need = ArticleNeed::New;
                for key in item_keys {
                    // An entry another source stored without its text (a bare list) wants this
                    // source's article, once: an article of this source that has no text is
                    // not asked for again on every poll.
                    let pending = c.query_opt(
                        "SELECT e.article_pending = 1
                                OR (e.content IS NULL AND NOT EXISTS (SELECT 1 FROM entry_sources es
                                    WHERE es.entry_id = e.id AND es.source_id = ?2))
                         FROM entry_keys k JOIN entries e ON e.id = k.entry_id
                         WHERE k.key = ?1",
                        &[key, &source_id],
                        |r| r.get::<bool>(0),
                    )?;
                    if let Some(pending) = pending {
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
        })
    }
}

/// The work of [`Store::upsert_entries`] inside a write group: each entry is matched or
/// inserted, linked to the batch's source, and placed in a cluster when its compared text is
/// new. What it did is counted in `batch.counts`.
pub(super) fn upsert_in(
    txn: &mut Txn<'_>,
    batch: &mut Batch<'_>,
    entries: &[Entry],
    packs: Option<&[Packs]>,
) -> Result<(), StoreError> {
    clusters::prune_candidates(txn, batch)?;
    let c = txn.conn();
    // A new list of the source: what it names is kept whatever its age.
    batch.listing = c
        .query_opt(
            "UPDATE sources SET listed_at = ?2, listing = listing + 1 WHERE id = ?1
             RETURNING listing",
            &[&batch.source_id, &batch.now_ts()],
            |r| r.get(0),
        )?
        .unwrap_or(0);
    let mut statements = Statements {
        c,
        copies: SourceCopies { c },
    };
    for (i, e) in entries.iter().enumerate() {
        let incoming = Incoming {
            entry: e,
            authors: json(&e.authors),
            categories: json(&e.categories),
            packs: match packs.and_then(|p| p.get(i)) {
                Some(p) => std::borrow::Cow::Borrowed(p),
                None => std::borrow::Cow::Owned(Packs::of(e)),
            },
        };
        store_entry(txn, batch, &mut statements, &incoming)?;
    }
    Ok(())
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

/// An incoming entry with its lists as stored (JSON) and its long texts packed, made once for
/// every statement that writes them.
pub(super) struct Incoming<'e> {
    pub(super) entry: &'e Entry,
    pub(super) authors: String,
    categories: String,
    packs: std::borrow::Cow<'e, Packs>,
}

impl Incoming<'_> {
    pub(super) fn summary(&self) -> Pack<'_> {
        Pack::ready(&self.entry.summary, &self.packs.summary)
    }

    pub(super) fn content(&self) -> Pack<'_> {
        Pack::ready(&self.entry.content, &self.packs.content)
    }

    fn body(&self) -> Pack<'_> {
        match &self.packs.body {
            Some(f) => Pack::Frame(f, &self.entry.fingerprint.body),
            None => Pack::text(&self.entry.fingerprint.body),
        }
    }
}

/// What storing an entry's words did, and what is left once its source link is written.
struct Stored {
    entry_id: i64,
    counted: Counted,
    /// Placed in a cluster: new, or its compared text changed.
    place: Option<Placement>,
    /// This fetch's words are kept as the source's own copy of the entry.
    keep_copy: bool,
    /// This source links the entry for the first time.
    first_link: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    New,
    Updated,
    Unchanged,
}

/// Stores one entry of the batch.
fn store_entry(
    txn: &mut Txn<'_>,
    batch: &mut Batch<'_>,
    st: &mut Statements<'_>,
    incoming: &Incoming<'_>,
) -> Result<(), StoreError> {
    let e = incoming.entry;
    let stored = match st.find(batch.source_id, e)? {
        Some(id) => st.revisit(batch, id, incoming)?,
        // Pruned while its source still listed it: not news, and not stored again.
        None if st.buried(batch, e)? => {
            batch.counts.unchanged += 1;
            return Ok(());
        }
        None => st.insert(batch, incoming)?,
    };
    let counts = &mut batch.counts;
    match stored.counted {
        Counted::New => counts.new += 1,
        Counted::Updated => counts.updated += 1,
        Counted::Unchanged => counts.unchanged += 1,
    }
    let entry_id = stored.entry_id;
    st.c.execute(
        "INSERT INTO entry_sources (entry_id, source_id, guid, link, version, first_seen,
                 last_seen, listing)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)
             ON CONFLICT (entry_id, source_id) DO UPDATE SET guid = ?3, link = ?4,
                 version = ?5, last_seen = ?6, listing = ?7",
        &[
            &entry_id,
            &batch.source_id,
            &e.guid,
            &e.link,
            &e.version,
            &batch.now_ts(),
            &batch.listing,
        ],
    )?;
    if stored.keep_copy {
        st.copies.keep(entry_id, batch.source_id, incoming)?;
    }
    // A source that carries two members of a cluster now keeps them apart: its cluster is
    // worked out again.
    if stored.first_link && stored.place.is_none() && st.has_edges(entry_id)? {
        clusters::recluster(txn.conn(), &[entry_id])?;
    }
    for key in &e.keys {
        st.c.execute(
            "INSERT INTO entry_keys (key, entry_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            &[key, &entry_id],
        )?;
    }
    // Placed once the source link is written: the canonical choice reads the sources'
    // priorities.
    if let Some(placement) = stored.place {
        let started = std::time::Instant::now();
        let joined = clusters::place_in_cluster(txn, batch, entry_id, e, placement)?;
        batch.counts.merged += usize::from(joined);
        batch.counts.dedupe_time += started.elapsed();
    }
    Ok(())
}

/// What a batch's per-entry steps write with.
struct Statements<'t> {
    c: Conn<'t>,
    copies: SourceCopies<'t>,
}

impl Statements<'_> {
    /// Whether `entry_id` has an edge to another entry.
    fn has_edges(&self, entry_id: i64) -> Result<bool, StoreError> {
        Ok(self
            .c
            .query_opt(
                "SELECT 1 FROM dedupe_edges WHERE a = ?1
                 UNION ALL SELECT 1 FROM dedupe_edges WHERE b = ?1",
                &[&entry_id],
                |_| Ok(()),
            )?
            .is_some())
    }

    /// Whether `e` was pruned while its source listed it (a key of it is a tombstone); the
    /// tombstones it matches are kept another while.
    fn buried(&mut self, batch: &Batch<'_>, e: &Entry) -> Result<bool, StoreError> {
        let mut found = false;
        for key in &e.keys {
            // A tombstone the item's list still names stays: its source is the one that
            // listed it last.
            found |= self.c.execute(
                "UPDATE tombstones SET seen = ?3, source_id = ?2 WHERE key = ?1",
                &[key, &batch.source_id, &batch.now_ts()],
            )? > 0;
        }
        Ok(found)
    }

    /// The stored entry `e` is, by the first of its keys that names one; a key naming another
    /// item of the same source (another guid) does not count.
    fn find(&mut self, source_id: &str, e: &Entry) -> Result<Option<i64>, StoreError> {
        for key in &e.keys {
            let Some(id) = self.c.query_opt(
                "SELECT entry_id FROM entry_keys WHERE key = ?1",
                &[key],
                |r| r.get::<i64>(0),
            )?
            else {
                continue;
            };
            // The guid this source gave the entry, to keep apart two items of one feed that
            // share a link (podcast items linking to the show's home page, `#fragment` links).
            let other_guid: Option<String> = self
                .c
                .query_opt(
                    "SELECT guid FROM entry_sources WHERE entry_id = ?1 AND source_id = ?2",
                    &[&id, &source_id],
                    |r| r.get::<Option<String>>(0),
                )?
                .flatten();
            let same_source_other_item = matches!(
                (&e.guid, &other_guid),
                (Some(mine), Some(theirs)) if mine != theirs
            );
            if !same_source_other_item {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// A new entry, written whole with its fingerprint.
    fn insert(&mut self, batch: &Batch<'_>, incoming: &Incoming<'_>) -> Result<Stored, StoreError> {
        let e = incoming.entry;
        let published = e.published.unwrap_or(batch.now).timestamp();
        let updated = e.updated.map_or(published, |u| u.timestamp());
        // A new entry is written whole, in its own cluster: a row carries kilobytes of text, so
        // a later UPDATE of one small column would rewrite them. The id is chosen here (what
        // SQLite would choose) so the row can name its own cluster; writes are serial (SQLite's
        // one writer, PostgreSQL's write lock), so no other writer picks it meanwhile.
        let id: i64 = self.c.query_one(
            "SELECT CAST(COALESCE(MAX(id), 0) + 1 AS BIGINT) FROM entries",
            &[],
            |r| r.get(0),
        )?;
        self.c.execute(
            "INSERT INTO entries (id, cluster_id, canonical, title, link, summary, content,
                     authors, categories, published, updated, first_seen, date_source,
                     article_pending, date_rank, sort_key)
                 VALUES (?1, ?1, 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            &[
                &id,
                &e.title,
                &e.link,
                &incoming.summary(),
                &incoming.content(),
                &incoming.authors,
                &incoming.categories,
                &published,
                &updated,
                &batch.now_ts(),
                &e.date_source.as_str(),
                &e.article_pending,
                &e.date_rank,
                &sort_key(batch.source_id, &e.keys).unwrap_or(id),
            ],
        )?;
        self.c.execute(
            "INSERT INTO fingerprints (entry_id, title, body, simhash) VALUES (?1, ?2, ?3, ?4)",
            &[
                &id,
                &e.fingerprint.title,
                &incoming.body(),
                &(e.fingerprint.simhash as i64),
            ],
        )?;
        Ok(Stored {
            entry_id: id,
            counted: Counted::New,
            place: Some(Placement::New),
            keep_copy: false,
            first_link: false,
        })
    }

    /// A stored entry this source sends again, or for the first time: whose words the row
    /// holds, what the entry takes from this copy, and whether that is an edit.
    fn revisit(
        &mut self,
        batch: &Batch<'_>,
        id: i64,
        incoming: &Incoming<'_>,
    ) -> Result<Stored, StoreError> {
        let (e, authors) = (incoming.entry, incoming.authors.as_str());
        let (previous, own, pending): (Option<String>, Option<bool>, bool) = self.c.query_one(
            "SELECT (SELECT version FROM entry_sources WHERE entry_id = ?1 AND source_id = ?2),
                    (SELECT own FROM entry_sources WHERE entry_id = ?1 AND source_id = ?2),
                    article_pending
             FROM entries WHERE id = ?1",
            &[&id, &batch.source_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        // This source did not store the entry: it keeps its own words beside it, and the
        // entry takes what it lacks from them.
        let first_link = previous.is_none();
        let mut second = first_link || own == Some(true);
        // Which source's words the entry's row holds does not depend on who came first: a
        // newcomer that outranks the holder takes the row over.
        let promoted = first_link && self.copies.promote(id, batch.source_id, incoming)?;
        second &= !promoted;
        let keep_copy = second && previous.as_deref() != Some(e.version.as_str());
        // The source that stored the entry brings its article at last (a second source's
        // article enriches the entry instead, below).
        let completed = pending && !second && !e.article_pending && e.content.is_some();
        if completed {
            // The article arrived after a failed first try: its text, author and date win.
            self.c.execute(
                "UPDATE entries SET content = ?2, authors = ?3,
                         published = COALESCE(?4, published), date_source = ?5,
                         article_pending = 0, updated = ?6
                     WHERE id = ?1",
                &[
                    &id,
                    &incoming.content(),
                    &authors,
                    &e.published.map(|p| p.timestamp()),
                    &e.date_source.as_str(),
                    &batch.now_ts(),
                ],
            )?;
        }
        let enriched = promoted && (e.content.is_some() || e.summary.is_some())
            || second && !completed && self.copies.enrich(id, incoming)?;
        // Whether this source edited its item (counted as an update), and whether the entry's
        // text changed (it is then compared and indexed again).
        let (edit, changed) = match previous {
            Some(v) if v == e.version && completed => (true, true),
            Some(v) if v == e.version => (false, enriched),
            // Another source already carries it: a duplicate, not news, though it may bring
            // what the entry lacked.
            None => (false, enriched),
            // A second source's edit changes its own copy.
            Some(_) if second => (true, enriched),
            Some(_) => {
                self.edit(batch, id, incoming)?;
                (true, true)
            }
        };
        // An edit may move the entry into, out of, or between clusters; one that leaves the
        // text as compared (a new link, other markup) moves nothing.
        let text_changed = changed && !self.same_text(id, &e.fingerprint)?;
        Ok(Stored {
            entry_id: id,
            counted: if edit {
                Counted::Updated
            } else {
                Counted::Unchanged
            },
            place: text_changed.then_some(Placement::Edited),
            keep_copy,
            first_link,
        })
    }

    /// The source whose words the row holds edited its item.
    fn edit(
        &mut self,
        batch: &Batch<'_>,
        id: i64,
        incoming: &Incoming<'_>,
    ) -> Result<(), StoreError> {
        let e = incoming.entry;
        // Other sources' copies that read "as the entry says" keep what it said before this
        // edit.
        self.copies.freeze(id)?;
        // The edit is news to readers now, whatever date the feed claims.
        // A list page's edit carries no article text: the text we have is kept.
        self.c.execute(
            "UPDATE entries SET title = ?2, link = COALESCE(?3, link),
                     summary = COALESCE(?4, summary), content = COALESCE(?5, content),
                     authors = ?6, categories = ?7, updated = ?8
                 WHERE id = ?1",
            &[
                &id,
                &e.title,
                &e.link,
                &incoming.summary(),
                &incoming.content(),
                &incoming.authors,
                &incoming.categories,
                &batch.now_ts(),
            ],
        )?;
        Ok(())
    }

    /// Whether the stored fingerprint of `id` is `fp`.
    fn same_text(&mut self, id: i64, fp: &Fingerprint) -> Result<bool, StoreError> {
        self.c.query_one(
            "SELECT EXISTS (SELECT 1 FROM fingerprints
                            WHERE entry_id = ?1 AND title = ?2 AND body = ?3 AND simhash = ?4)",
            &[&id, &fp.title, &Pack::text(&fp.body), &(fp.simhash as i64)],
            |r| r.get::<bool>(0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{both, entry, feed, put, BODY, OTHER};
    use super::*;
    use crate::model::{FeedQuery, Scope};

    fn entry_count(store: &Store, source: &str) -> u64 {
        store
            .source_statuses()
            .expect("statuses")
            .into_iter()
            .find(|s| s.id == source)
            .expect("source")
            .entry_count
    }

    #[test]
    fn an_entry_another_source_sends_is_linked_not_stored_again() {
        for s in both() {
            let counts = put(
                &s.store,
                "first",
                &[entry("first", "park", "Park plan", BODY)],
            );
            assert_eq!(counts.new, 1);
            let mut same = entry("second", "park", "Park plan", BODY);
            same.keys.push("link:example.org/first/park".into());
            let counts = put(&s.store, "second", &[same]);
            assert_eq!((counts.new, counts.unchanged), (0, 1));
            assert_eq!(
                (
                    entry_count(&s.store, "first"),
                    entry_count(&s.store, "second")
                ),
                (1, 1)
            );
            let all = feed(&s.store, Scope::All);
            assert_eq!(all.len(), 1);
            assert_eq!(all[0].sources.len(), 2);
        }
    }

    /// Podcast items often all link to the show's page: their guids keep them apart.
    #[test]
    fn two_items_of_one_source_sharing_a_link_stay_two_entries() {
        for s in both() {
            let one = entry("first", "show", "Episode one", BODY);
            let mut two = entry("first", "two", "Episode two", OTHER);
            two.keys[1] = one.keys[1].clone();
            assert_eq!(put(&s.store, "first", &[one, two]).new, 2);
        }
    }

    #[test]
    fn a_new_version_is_an_update_and_the_same_one_is_not() {
        for s in both() {
            put(
                &s.store,
                "first",
                &[entry("first", "park", "Park plan", BODY)],
            );
            let edited = entry("first", "park", "Park plan approved", BODY);
            let counts = put(&s.store, "first", std::slice::from_ref(&edited));
            assert_eq!((counts.new, counts.updated, counts.unchanged), (0, 1, 0));
            let counts = put(&s.store, "first", &[edited]);
            assert_eq!((counts.new, counts.updated, counts.unchanged), (0, 0, 1));
            let own = s
                .store
                .entries(
                    &Scope::Source("first".into()),
                    &FeedQuery {
                        limit: 10,
                        ..Default::default()
                    },
                )
                .expect("feed");
            assert_eq!(own[0].title, "Park plan approved");
        }
    }

    #[test]
    fn sort_key_is_the_same_from_any_source_and_none_for_source_scoped_keys() {
        assert_eq!(
            sort_key("a", &["guid:a:1".into(), "hash:a:9f".into()]),
            None
        );
        let from_a = sort_key("a", &["guid:a:1".into(), "link:example.org/x".into()]);
        let from_b = sort_key("b", &["guid:b:7".into(), "link:example.org/x".into()]);
        assert!(from_a.is_some_and(|k| k >= 0));
        assert_eq!(from_a, from_b);
        // Only the fetching source's own scoped hash is passed over.
        assert!(sort_key("a", &["hash:b:9f".into()]).is_some());
    }

    #[test]
    fn article_needs_tell_new_pending_and_done_items_apart() {
        for s in both() {
            let mut waiting = entry("first", "waiting", "Waiting for its page", BODY);
            waiting.article_pending = true;
            waiting.content = None;
            let done = entry("first", "done", "Read", OTHER);
            let mut bare = entry("first", "bare", "A list without text", OTHER);
            bare.content = None;
            let keys = vec![
                waiting.keys.clone(),
                done.keys.clone(),
                bare.keys.clone(),
                vec!["link:example.org/nowhere".to_string()],
            ];
            put(&s.store, "first", &[waiting, done, bare]);
            use ArticleNeed::{Done, New, Pending};
            let needs = s.store.article_needs("first", &keys).expect("needs");
            assert_eq!(needs, [Pending, Done, Done, New]);
            // An entry another source stored without its text wants this source's article.
            let needs = s.store.article_needs("second", &keys).expect("needs");
            assert_eq!(needs, [Pending, Done, Pending, New]);
            assert!(s.store.articles_pending("first").expect("pending"));
            assert!(!s.store.articles_pending("second").expect("pending"));
        }
    }
}
