//! Each source keeps its own words. An entry's row holds the words of the source that ranks
//! first (priority, then id); the other sources' rows in `entry_sources` (`own = 1`) keep what
//! differs, and the entry takes from any of them what it lacks (text, authors, a surer date).
//! The outcome does not depend on the order the sources' fetches were stored in.

use super::entries::Incoming;
use super::sql::Conn;
use super::{json, StoreError};

/// The statements that keep each source's own copy of a shared entry, and let the entry take
/// what it lacks from them, on a write group's connection.
pub(super) struct SourceCopies<'t> {
    pub(super) c: Conn<'t>,
}

/// The source whose words the row holds (the first linked that is not a copy: SQLite's rowid,
/// PostgreSQL's `seq`, are the order of linking), and whether `?2` outranks it: a higher
/// priority, or the same and a smaller id (a total order, so the outcome is the same whatever
/// order the sources' fetches were stored in).
const HOLDER_LITE: &str =
    "SELECT me.priority > h.priority OR (me.priority = h.priority AND me.id < h.id)
     FROM entry_sources es JOIN sources h ON h.id = es.source_id, sources me
     WHERE es.entry_id = ?1 AND es.own = 0 AND me.id = ?2
     ORDER BY es.rowid LIMIT 1";
const HOLDER_PG: &str =
    "SELECT me.priority > h.priority OR (me.priority = h.priority AND me.id < h.id)
     FROM entry_sources es JOIN sources h ON h.id = es.source_id, sources me
     WHERE es.entry_id = ?1 AND es.own = 0 AND me.id = ?2
     ORDER BY es.seq LIMIT 1";

impl SourceCopies<'_> {
    /// Gives `source_id` the entry's row if it outranks the source holding it: the holder's
    /// words (and those of copies that read "as the entry says") become copies of their own
    /// first. Returns whether it did.
    pub(super) fn promote(
        &mut self,
        entry_id: i64,
        source_id: &str,
        incoming: &Incoming<'_>,
    ) -> Result<bool, StoreError> {
        let (e, authors) = (incoming.entry, incoming.authors.as_str());
        let holder = if self.c.is_pg() {
            HOLDER_PG
        } else {
            HOLDER_LITE
        };
        let outranks = self
            .c
            .query_opt(holder, &[&entry_id, &source_id], |r| r.get::<bool>(0))?
            .unwrap_or(false);
        if !outranks {
            return Ok(false);
        }
        self.c.execute(
            "UPDATE entry_sources SET own = 1 WHERE entry_id = ?1 AND own = 0",
            &[&entry_id],
        )?;
        self.freeze(entry_id)?;
        let published = e.published.map(|p| p.timestamp());
        // The newcomer's words; what it lacks stays as the entry had it, and the surer date
        // wins (ties: the newcomer's).
        self.c.execute(
            "UPDATE entries SET title = ?2, link = COALESCE(?3, link),
                 summary = COALESCE(?4, summary), content = COALESCE(?5, content),
                 article_pending = CASE WHEN ?5 IS NULL THEN article_pending ELSE 0 END,
                 authors = CASE WHEN ?6 != '[]' THEN ?6 ELSE authors END,
                 categories = ?7,
                 updated = CASE WHEN ?9 >= date_rank AND CAST(?8 AS BIGINT) IS NOT NULL
                                THEN COALESCE(CAST(?10 AS BIGINT), ?8) ELSE updated END,
                 published = CASE WHEN ?9 >= date_rank AND CAST(?8 AS BIGINT) IS NOT NULL
                                  THEN ?8 ELSE published END,
                 date_source = CASE WHEN ?9 >= date_rank AND CAST(?8 AS BIGINT) IS NOT NULL
                                    THEN ?11 ELSE date_source END,
                 date_rank = CASE WHEN date_rank > ?9 THEN date_rank ELSE ?9 END
             WHERE id = ?1",
            &[
                &entry_id,
                &e.title,
                &e.link,
                &incoming.summary(),
                &incoming.content(),
                &authors,
                &json(&e.categories),
                &published,
                &if published.is_some() { e.date_rank } else { 0 },
                &e.updated.map(|u| u.timestamp()),
                &e.date_source.as_str(),
            ],
        )?;
        Ok(true)
    }

    /// Keeps `e` as `source_id`'s own copy of `entry_id` (a source that did not store it):
    /// only what differs from the entry is kept (NULL reads "as the entry says").
    pub(super) fn keep(
        &mut self,
        entry_id: i64,
        source_id: &str,
        incoming: &Incoming<'_>,
    ) -> Result<(), StoreError> {
        let e = incoming.entry;
        self.c.execute(
            "UPDATE entry_sources SET own = 1,
                 title = NULLIF(?3, (SELECT title FROM entries WHERE id = ?1)),
                 summary = NULLIF(?4, (SELECT summary FROM entries WHERE id = ?1)),
                 content = NULLIF(?5, (SELECT content FROM entries WHERE id = ?1)),
                 authors = NULLIF(?6, (SELECT authors FROM entries WHERE id = ?1)),
                 published = NULLIF(?7, (SELECT published FROM entries WHERE id = ?1))
             WHERE entry_id = ?1 AND source_id = ?2",
            &[
                &entry_id,
                &source_id,
                &e.title,
                &incoming.summary(),
                &incoming.content(),
                &incoming.authors,
                &e.published.map(|p| p.timestamp()),
            ],
        )?;
        Ok(())
    }

    /// Before the first source edits the entry, the copies that said the same keep it.
    pub(super) fn freeze(&mut self, entry_id: i64) -> Result<(), StoreError> {
        self.c.execute(
            "UPDATE entry_sources SET
                 title = COALESCE(entry_sources.title, e.title),
                 summary = COALESCE(entry_sources.summary, e.summary),
                 content = COALESCE(entry_sources.content, e.content),
                 authors = COALESCE(entry_sources.authors, e.authors),
                 published = COALESCE(entry_sources.published, e.published)
             FROM (SELECT title, summary, content, authors, published
                   FROM entries WHERE id = ?1) AS e
             WHERE entry_sources.entry_id = ?1 AND entry_sources.own = 1",
            &[&entry_id],
        )?;
        Ok(())
    }

    /// Lets the entry take from a second source's copy what it lacks. Returns whether it took
    /// the text (the entry is then compared and indexed again, as after an edit).
    pub(super) fn enrich(
        &mut self,
        entry_id: i64,
        incoming: &Incoming<'_>,
    ) -> Result<bool, StoreError> {
        let (e, authors) = (incoming.entry, incoming.authors.as_str());
        let (no_text, no_authors, rank): (bool, bool, u8) = self.c.query_one(
            "SELECT content IS NULL, authors = '[]', date_rank FROM entries WHERE id = ?1",
            &[&entry_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let takes_text = no_text && e.content.is_some();
        let takes_authors = no_authors && !e.authors.is_empty();
        let takes_date = e.date_rank > rank && e.published.is_some();
        // Its article page failed too: the entry waits for it (and the list is polled again).
        let waits = no_text && e.article_pending;
        if takes_text || takes_authors || takes_date || waits {
            // The richer copy wins, whatever order the copies came in: text where there was
            // none, authors where none were named, and a date read a surer way.
            self.c.execute(
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
                     date_rank = CASE WHEN date_rank > ?5 THEN date_rank ELSE ?5 END
                 WHERE id = ?1",
                &[
                    &entry_id,
                    &incoming.content(),
                    &authors,
                    &e.published.map(|p| p.timestamp()),
                    &e.date_rank,
                    &e.date_source.as_str(),
                    &e.article_pending,
                ],
            )?;
        }
        Ok(takes_text)
    }
}
