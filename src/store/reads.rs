//! What readers are served: a feed's title and its newest entries (merged feeds one member
//! per cluster, a source's own feed in its own words, each entry with the sources that carried
//! it), and the entries `tributary export` writes out. Reads run on the reader connection, so
//! serving never waits behind a write group.

use chrono::{DateTime, Utc};
use std::collections::HashSet;

use super::packed::Unpacked;
use super::sql::{Conn, Param};
use super::{from_json, from_unix, search, Store, StoreError};
use crate::model::{Copy, Cursor, EntrySource, FeedQuery, Page, Scope, StoredEntry};

/// One entry as `Store::export_entries` returns it: the entry and the one source it is
/// exported under.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportEntry {
    pub id: i64,
    pub title: String,
    pub link: Option<String>,
    /// Sanitized HTML.
    pub summary: Option<String>,
    /// Sanitized HTML.
    pub content: Option<String>,
    pub published: DateTime<Utc>,
    pub source_name: String,
    /// The source's category.
    pub category: String,
    /// The source's tags.
    pub tags: Vec<String>,
}

impl Store {
    /// The title of `scope`'s feed (the category, or the source's name), or None when no
    /// configured source makes that feed exist.
    pub fn scope_title(&self, scope: &Scope) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            Ok(match scope {
                Scope::All => Some("All sources".to_string()),
                Scope::Category(cat) => c.query_opt(
                    "SELECT category FROM sources WHERE category = ?1 AND active = 1 LIMIT 1",
                    &[cat],
                    |r| r.get(0),
                )?,
                Scope::Source(id) => c.query_opt(
                    "SELECT name FROM sources WHERE id = ?1 AND active = 1",
                    &[id],
                    |r| r.get(0),
                )?,
                Scope::Tag(t) => c.query_opt(
                    &format!(
                        "SELECT CAST(?1 AS TEXT) FROM sources s
                         WHERE s.active = 1 AND {} LIMIT 1",
                        has_tag(c, "?1")
                    ),
                    &[t],
                    |r| r.get(0),
                )?,
            })
        })
    }

    /// The newest entries of `scope` narrowed by `q`, newest first, each with every source that
    /// carried it (for merged feeds, every source of its cluster).
    pub fn entries(&self, scope: &Scope, q: &FeedQuery) -> Result<Vec<StoredEntry>, StoreError> {
        let read = PageRead {
            scope,
            q,
            copies: false,
        };
        Ok(self.page(&read, &mut Some)?.entries)
    }

    /// A page of `scope` narrowed by `q` as `show` lets it through: each entry, newest first,
    /// is given to `show`, which returns it (changed or not) or None to leave it out, until the
    /// page has `q.limit` entries. With `read.copies`, each entry comes with the words every
    /// source gives it and its cluster's other members (`StoredEntry::copies`).
    ///
    /// However few entries `show` lets through, one page reads at most [`MAX_SCAN`] of them;
    /// the page then ends early with a `next` cursor where it stopped.
    pub fn page(
        &self,
        read: &PageRead<'_>,
        show: &mut dyn FnMut(StoredEntry) -> Option<StoredEntry>,
    ) -> Result<Page, StoreError> {
        // One read transaction: a search reads the index's queue, then the index, then the
        // entries, each as of one moment (see `search::search_condition`), and every chunk of
        // the page sees the same store.
        self.snapshot(|conn| {
            self.queries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            page_in(conn, read, show)
        })
    }

    /// One entry as merged feeds show it, with every source of its cluster (and, with
    /// `copies`, their words); None when no configured source carries it.
    pub fn entry(&self, id: i64, copies: bool) -> Result<Option<StoredEntry>, StoreError> {
        self.read(|conn| {
            let mut query = FeedSql::new(1);
            let p = query.arg(Box::new(id));
            query.entry_conds.push(format!("e.id = {p}"));
            let view_arg = query.arg(Box::new(None::<String>));
            let sources = SourcesOf::new(conn, None, copies);
            query
                .run(conn, &view_arg)?
                .pop()
                .map(|(e, cluster)| sources.fill(e, cluster))
                .transpose()
        })
    }

    /// Entries for a static export (`tributary export`), oldest first: every entry carried by
    /// an active source (of `category`, when given) and published at or after `since`. Each
    /// comes with the first such source to carry it: its name, category and tags.
    pub fn export_entries(
        &self,
        category: Option<&str>,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<ExportEntry>, StoreError> {
        let since = since.map_or(i64::MIN, |t| t.timestamp());
        self.read(|c| {
            // The order sources linked the entry in: SQLite's rowid, PostgreSQL's `seq`.
            let order = if c.is_pg() { "seq" } else { "rowid" };
            c.query_map(
                &format!(
                    "SELECT e.id, e.title, e.link, e.summary, e.content, e.published,
                            s.name, s.category, s.tags
                     FROM entries e
                     JOIN entry_sources es ON es.entry_id = e.id
                     JOIN sources s ON s.id = es.source_id
                     WHERE e.published >= ?2
                       AND es.{order} = (SELECT es2.{order} FROM entry_sources es2
                                       JOIN sources s2 ON s2.id = es2.source_id
                                       WHERE es2.entry_id = e.id AND s2.active = 1
                                         AND (CAST(?1 AS TEXT) IS NULL OR s2.category = ?1)
                                       ORDER BY es2.first_seen, es2.{order} LIMIT 1)
                     ORDER BY e.published, e.sort_key, e.id"
                ),
                &[&category, &since],
                |r| {
                    Ok(ExportEntry {
                        id: r.get(0)?,
                        title: r.get(1)?,
                        link: r.get(2)?,
                        summary: r.get::<Unpacked>(3)?.0,
                        content: r.get::<Unpacked>(4)?.0,
                        published: from_unix(r.get(5)?),
                        source_name: r.get(6)?,
                        category: r.get(7)?,
                        tags: from_json(&r.get::<String>(8)?),
                    })
                },
            )
        })
    }
}

/// The most entries one page reads to find those its rules let through.
pub const MAX_SCAN: usize = 5_000;

/// What `Store::page` reads.
pub struct PageRead<'a> {
    pub scope: &'a Scope,
    pub q: &'a FeedQuery,
    /// Read every source's words for each entry and its cluster (`StoredEntry::copies`).
    pub copies: bool,
}

/// [`Store::page`] in its read transaction.
fn page_in(
    conn: Conn<'_>,
    read: &PageRead<'_>,
    show: &mut dyn FnMut(StoredEntry) -> Option<StoredEntry>,
) -> Result<Page, StoreError> {
    let limit = read.q.limit;
    let mut chunk = read.q.clone();
    let mut page = Page::default();
    let mut scanned = 0;
    let view = match read.scope {
        Scope::Source(id) => Some(id.as_str()),
        _ => None,
    };
    let sources = SourcesOf::new(conn, view, read.copies);
    loop {
        let rows = chunk_rows(conn, read.scope, &chunk)?;
        let full = rows.len() == chunk.limit;
        let last = rows.last().map(|(e, _)| e.cursor);
        scanned += rows.len();
        for (row, cluster) in rows {
            let cursor = row.cursor;
            if let Some(e) = show(sources.fill(row, cluster)?) {
                page.entries.push(e);
                if page.entries.len() == limit {
                    page.next = Some(cursor);
                    return Ok(page);
                }
            }
        }
        let Some(last) = last.filter(|_| full) else {
            return Ok(page);
        };
        if scanned >= MAX_SCAN {
            page.next = Some(last);
            return Ok(page);
        }
        // Entries were left out: read on, in larger chunks (a rule that keeps few entries
        // should not cost a query per entry kept).
        chunk.before = Some(last);
        chunk.limit = (chunk.limit * 2).min(500).max(limit);
    }
}

/// A condition that source `s` has the tag in placeholder `p` (its tags are a JSON array).
fn has_tag(c: Conn<'_>, p: &str) -> String {
    if c.is_pg() {
        format!(
            "EXISTS (SELECT 1 FROM json_array_elements_text(CAST(s.tags AS json)) AS t (value)
                     WHERE t.value = {p})"
        )
    } else {
        format!("EXISTS (SELECT 1 FROM json_each(s.tags) WHERE value = {p})")
    }
}

/// The next `q.limit` entries of `scope`, each with its cluster label.
fn chunk_rows(
    conn: Conn<'_>,
    scope: &Scope,
    q: &FeedQuery,
) -> Result<Vec<(StoredEntry, Option<i64>)>, StoreError> {
    // Merged feeds show one member per cluster; a source's own feed shows its entries, in
    // its own words.
    let view = match scope {
        Scope::Source(id) => Some(id.clone()),
        _ => None,
    };
    let mut query = FeedSql::new(q.limit);
    query.narrow_sources(conn, scope, q);
    let view_arg = query.arg(Box::new(view.clone()));
    query.narrow_entries(conn, q, view.is_none())?;
    query.run(conn, &view_arg)
}

/// A feed query being built: its conditions on the entry and on the sources carrying it, and
/// their parameters, numbered as they are pushed (`?1` is the limit).
struct FeedSql {
    source_conds: Vec<String>,
    /// The placeholder of the one source the feed is narrowed to, if it is: its entries are
    /// then found by the source's index, not by walking every entry newest first to test
    /// each (which reads the whole store for a source that stopped publishing long ago).
    only_source: Option<String>,
    /// The candidate ids a search narrowed the feed to (a subquery with an `id` column): the
    /// page is built from them rather than by walking every entry to test each.
    candidates: Option<String>,
    entry_conds: Vec<String>,
    args: Vec<Box<dyn Param>>,
}

impl FeedSql {
    fn new(limit: usize) -> Self {
        FeedSql {
            source_conds: vec!["s.active = 1".to_string()],
            only_source: None,
            candidates: None,
            entry_conds: Vec::new(),
            args: vec![Box::new(limit as i64)],
        }
    }

    /// Adds a parameter; returns its placeholder.
    fn arg(&mut self, v: Box<dyn Param>) -> String {
        self.args.push(v);
        format!("?{}", self.args.len())
    }

    /// Which sources' entries the feed holds: the scope's, narrowed by the query's source
    /// and tag.
    fn narrow_sources(&mut self, c: Conn<'_>, scope: &Scope, q: &FeedQuery) {
        match scope {
            Scope::All => {}
            Scope::Category(cat) => {
                let p = self.arg(Box::new(cat.clone()));
                self.source_conds.push(format!("s.category = {p}"));
            }
            Scope::Source(id) => {
                let p = self.arg(Box::new(id.clone()));
                self.source_conds.push(format!("s.id = {p}"));
                self.only_source = Some(p);
            }
            Scope::Tag(t) => {
                let p = self.arg(Box::new(t.clone()));
                self.source_conds.push(has_tag(c, &p));
            }
        }
        if let Some(id) = &q.source {
            let p = self.arg(Box::new(id.clone()));
            self.source_conds.push(format!("s.id = {p}"));
            self.only_source = Some(p);
        }
        if let Some(t) = &q.tag {
            let p = self.arg(Box::new(t.clone()));
            self.source_conds.push(has_tag(c, &p));
        }
    }

    /// Which entries: one per cluster in merged feeds, those before the cursor, those
    /// matching the search.
    fn narrow_entries(
        &mut self,
        conn: Conn<'_>,
        q: &FeedQuery,
        merged: bool,
    ) -> Result<(), StoreError> {
        if merged {
            self.entry_conds.push("e.canonical = 1".to_string());
        }
        if let Some(c) = q.before {
            let (p, k, i) = (
                self.arg(Box::new(c.published)),
                self.arg(Box::new(c.key)),
                self.arg(Box::new(c.id)),
            );
            self.entry_conds
                .push(format!("(e.published, e.sort_key, e.id) < ({p}, {k}, {i})"));
        }
        if let Some(since) = q.since {
            let p = self.arg(Box::new(since));
            self.entry_conds.push(format!("e.published >= {p}"));
        }
        if let Some(text) = q
            .text
            .as_deref()
            .map(search::search_terms)
            .filter(|t| !t.is_empty())
        {
            let search = search::search_condition(conn, &text, &mut |v| self.arg(v))?;
            self.entry_conds.push(search.cond);
            self.candidates = search.drive;
        }
        Ok(())
    }

    /// The page of entries, newest first, each with its cluster label; `view_arg` names the
    /// source whose own words are read (NULL for merged feeds).
    fn run(
        mut self,
        conn: Conn<'_>,
        view_arg: &str,
    ) -> Result<Vec<(StoredEntry, Option<i64>)>, StoreError> {
        self.entry_conds.push(format!(
            "EXISTS (SELECT 1 FROM entry_sources es JOIN sources s ON s.id = es.source_id
                     WHERE es.entry_id = e.id AND {})",
            self.source_conds.join(" AND ")
        ));
        // SQLite's CROSS JOIN fixes the order: the source's rows first, then their entries,
        // sorted for the page (a cost in the source's own entries, not the store's).
        // PostgreSQL's planner orders the join itself.
        let join = if conn.is_pg() { "JOIN" } else { "CROSS JOIN" };
        let from = match (&self.only_source, &self.candidates) {
            (Some(p), _) => {
                self.entry_conds.push(format!("d.source_id = {p}"));
                format!("entry_sources d {join} entries e ON e.id = d.entry_id")
            }
            (None, Some(ids)) => format!("{ids} d {join} entries e ON e.id = d.id"),
            (None, None) => "entries e".to_string(),
        };
        let sql = format!(
            "SELECT e.id, COALESCE(o.title, e.title), COALESCE(o.link, e.link),
                    COALESCE(o.summary, e.summary), COALESCE(o.content, e.content),
                    COALESCE(o.authors, e.authors), e.categories,
                    e.published, e.updated, e.cluster_id, COALESCE(o.published, e.published),
                    e.sort_key
             FROM {from}
             LEFT JOIN entry_sources o ON o.entry_id = e.id AND o.source_id = {view_arg}
             WHERE {}
             ORDER BY e.published DESC, e.sort_key DESC, e.id DESC
             LIMIT ?1",
            self.entry_conds.join(" AND ")
        );
        let params: Vec<&dyn Param> = self.args.iter().map(|a| a.as_ref()).collect();
        conn.query_map(&sql, &params, |r| {
            Ok((
                StoredEntry {
                    id: r.get(0)?,
                    cursor: Cursor {
                        published: r.get(7)?,
                        key: r.get(11)?,
                        id: r.get(0)?,
                    },
                    title: r.get(1)?,
                    link: r.get(2)?,
                    summary: r.get::<Unpacked>(3)?.0,
                    content: r.get::<Unpacked>(4)?.0,
                    authors: from_json(&r.get::<String>(5)?),
                    categories: from_json(&r.get::<String>(6)?),
                    published: from_unix(r.get(10)?),
                    updated: from_unix(r.get::<i64>(8)?.max(r.get(10)?)),
                    sources: Vec::new(),
                    copies: Vec::new(),
                },
                r.get::<Option<i64>>(9)?,
            ))
        })
    }
}

/// Gives each entry its sources: the source whose feed this is (`view`) first, then the
/// entry's other sources, then (merged feeds) its cluster's other members' sources, each once;
/// with `copies`, also the words every source gives the entry and each member.
struct SourcesOf<'c> {
    conn: Conn<'c>,
    sql: String,
    view: Option<&'c str>,
    copies: bool,
}

impl<'c> SourcesOf<'c> {
    fn new(conn: Conn<'c>, view: Option<&'c str>, copies: bool) -> Self {
        // The words are read (and long texts unpacked) only when asked for, and not for the
        // copy whose words are the row's own (the view's source, or in a merged feed a source
        // with no words of its own): those are taken from the entry as read.
        let own = "?5 AND NOT (m.id = ?1 AND (es.source_id IS NOT DISTINCT FROM ?4
                   OR (?4 IS NULL
                   AND es.title IS NULL AND es.summary IS NULL
                   AND es.content IS NULL AND es.authors IS NULL AND es.published IS NULL)))";
        let sql = format!(
            "SELECT es.source_id, s.name, s.url, es.guid, es.link, m.id, {own},
                    CASE WHEN {own} THEN COALESCE(es.title, m.title) END,
                    CASE WHEN {own} THEN COALESCE(es.link, m.link) END,
                    CASE WHEN {own} THEN COALESCE(es.summary, m.summary) END,
                    CASE WHEN {own} THEN COALESCE(es.content, m.content) END,
                    CASE WHEN {own} THEN COALESCE(es.authors, m.authors) END,
                    CASE WHEN {own} THEN m.categories END,
                    COALESCE(es.published, m.published)
             FROM entries m
             JOIN entry_sources es ON es.entry_id = m.id
             JOIN sources s ON s.id = es.source_id
             WHERE m.id = ?1 OR ((?3 OR ?5) AND m.cluster_id = ?2)
             ORDER BY es.source_id IS DISTINCT FROM ?4, m.id != ?1, es.own, s.priority DESC,
                      es.source_id, m.published, m.sort_key"
        );
        SourcesOf {
            conn,
            sql,
            view,
            copies,
        }
    }

    fn fill(&self, mut e: StoredEntry, cluster: Option<i64>) -> Result<StoredEntry, StoreError> {
        let merged = self.view.is_none();
        let cluster = cluster.unwrap_or(e.id);
        let mut seen = HashSet::new();
        let copies = self.copies;
        // The entry's own words, cloned only for a copy that reads as the entry says.
        let row = &e;
        let rows = self.conn.query_map(
            &self.sql,
            &[&row.id, &cluster, &merged, &self.view, &copies],
            |r| {
                let member: i64 = r.get(5)?;
                let source_id: String = r.get(0)?;
                let copy = if !copies {
                    None
                } else if r.get(6)? {
                    Some(Copy {
                        entry_id: member,
                        source_id: source_id.clone(),
                        title: r.get::<Option<String>>(7)?.unwrap_or_default(),
                        link: r.get(8)?,
                        summary: r.get::<Unpacked>(9)?.0,
                        content: r.get::<Unpacked>(10)?.0,
                        authors: from_json(&r.get::<Option<String>>(11)?.unwrap_or_default()),
                        categories: from_json(&r.get::<Option<String>>(12)?.unwrap_or_default()),
                        published: from_unix(r.get(13)?),
                    })
                } else {
                    Some(Copy {
                        entry_id: member,
                        source_id: source_id.clone(),
                        title: row.title.clone(),
                        // Every source's row has its own link.
                        link: r.get::<Option<String>>(4)?.or_else(|| row.link.clone()),
                        summary: row.summary.clone(),
                        content: row.content.clone(),
                        authors: row.authors.clone(),
                        categories: row.categories.clone(),
                        published: row.published,
                    })
                };
                let source = EntrySource {
                    source_id,
                    source_name: r.get(1)?,
                    source_url: r.get(2)?,
                    guid: r.get(3)?,
                    link: r.get(4)?,
                };
                Ok((member, copy, source))
            },
        )?;
        for (member, copy, source) in rows {
            e.copies.extend(copy);
            if (merged || member == e.id) && seen.insert(source.source_id.clone()) {
                e.sources.push(source);
            }
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{at, both, entry, put, BODY, OTHER};
    use super::*;
    use crate::model::Entry;

    /// `n` entries of source "first", "Item 0" the newest, an hour apart, with `body(h)`.
    fn hourly(n: i64, body: impl Fn(i64) -> String) -> Vec<Entry> {
        (0..n)
            .map(|h| {
                let mut e = entry("first", &h.to_string(), &format!("Item {h}"), &body(h));
                e.published = Some(at(-h));
                e
            })
            .collect()
    }

    #[test]
    fn pages_follow_the_cursor_newest_first_without_repeats() {
        for s in both() {
            put(&s.store, "first", &hourly(5, |_| OTHER.to_string()));
            let mut q = FeedQuery {
                limit: 2,
                ..Default::default()
            };
            let mut titles = Vec::new();
            loop {
                let page = s.store.entries(&Scope::All, &q).expect("page");
                let Some(last) = page.last() else { break };
                q.before = Some(last.cursor);
                titles.extend(page.iter().map(|e| e.title.clone()));
            }
            assert_eq!(titles, ["Item 0", "Item 1", "Item 2", "Item 3", "Item 4"]);
        }
    }

    /// Entries a page's filter leaves out are made up from older ones, read on in chunks, and
    /// the next page starts after the last entry shown.
    #[test]
    fn a_filtered_page_is_filled_from_older_entries() {
        for s in both() {
            let body = |h| (0..40).map(|k| format!("w{h}y{k} ")).collect();
            put(&s.store, "first", &hourly(12, body));
            let mut q = FeedQuery {
                limit: 2,
                ..Default::default()
            };
            // Only every third item: the first chunk of two holds one.
            let mut keep = |e: StoredEntry| {
                let n: i64 = e.title.trim_start_matches("Item ").parse().ok()?;
                (n % 3 == 0).then_some(e)
            };
            let mut titles = Vec::new();
            loop {
                let read = PageRead {
                    scope: &Scope::All,
                    q: &q,
                    copies: true,
                };
                let page = s.store.page(&read, &mut keep).expect("page");
                assert!(
                    page.entries.iter().all(|e| !e.copies.is_empty()),
                    "copies read"
                );
                titles.extend(page.entries.iter().map(|e| e.title.clone()));
                match page.next {
                    Some(next) => q.before = Some(next),
                    None => break,
                }
            }
            assert_eq!(titles, ["Item 0", "Item 3", "Item 6", "Item 9"]);
        }
    }

    /// A source's feed, read through its own rows, is the store's newest-first walk kept to
    /// that source: every page, with a search too, the same entries in the same order.
    #[test]
    fn a_sources_pages_are_the_walk_of_all_entries_kept_to_it() {
        for s in both() {
            for (n, source) in ["first", "second", "first", "third", "first"]
                .iter()
                .enumerate()
            {
                let items: Vec<_> = (0..4)
                    .map(|h| {
                        let slug = format!("{n}-{h}");
                        // Words of its own, so that no two are near-duplicates.
                        let body: String = (0..40)
                            .map(|k| format!("w{n}x{h}y{k} "))
                            .chain([format!("part{h}")])
                            .collect();
                        let mut e = entry(source, &slug, &format!("{source} {slug}"), &body);
                        e.published = Some(at(-((n * 4 + h) as i64 % 7)));
                        e
                    })
                    .collect();
                put(&s.store, source, &items);
            }
            let pages = |scope: &Scope, source: Option<&str>, text: Option<&str>| {
                let mut q = FeedQuery {
                    limit: 3,
                    source: source.map(str::to_string),
                    text: text.map(str::to_string),
                    ..Default::default()
                };
                let mut ids = Vec::new();
                loop {
                    let page = s.store.entries(scope, &q).expect("page");
                    let Some(last) = page.last() else { break };
                    q.before = Some(last.cursor);
                    ids.extend(page.iter().map(|e| e.id));
                }
                ids
            };
            let everything = pages(&Scope::All, None, None);
            let carried_by = |id: i64, source: &str| {
                let q = FeedQuery {
                    limit: 1000,
                    ..Default::default()
                };
                s.store
                    .entries(&Scope::All, &q)
                    .expect("all")
                    .into_iter()
                    .any(|e| e.id == id && e.sources.iter().any(|x| x.source_id == source))
            };
            let walked: Vec<i64> = everything
                .iter()
                .copied()
                .filter(|&id| carried_by(id, "first"))
                .collect();
            assert_eq!(walked.len(), 12);
            let scope = Scope::Source("first".into());
            assert_eq!(pages(&scope, None, None), walked);
            assert_eq!(pages(&Scope::All, Some("first"), None), walked);
            assert_eq!(
                pages(&Scope::Category("local".into()), Some("first"), None),
                walked
            );
            let part2 = pages(&scope, None, Some("part2"));
            assert_eq!(part2.len(), 3);
            assert!(part2.iter().all(|id| walked.contains(id)));
        }
    }

    #[test]
    fn a_feed_has_a_title_only_when_configured_sources_make_it() {
        for s in both() {
            let title = |scope: Scope| s.store.scope_title(&scope).expect("title");
            assert_eq!(title(Scope::All).as_deref(), Some("All sources"));
            assert_eq!(
                title(Scope::Category("local".into())).as_deref(),
                Some("local")
            );
            assert_eq!(title(Scope::Category("sports".into())), None);
            assert_eq!(
                title(Scope::Source("third".into())).as_deref(),
                Some("The third")
            );
            assert_eq!(title(Scope::Tag("city".into())).as_deref(), Some("city"));
            assert_eq!(title(Scope::Tag("village".into())), None);
        }
    }

    #[test]
    fn a_tag_feed_holds_its_sources_entries_and_an_export_starts_at_since() {
        for s in both() {
            put(&s.store, "first", &[entry("first", "park", "Park", BODY)]);
            let mut old = entry("third", "library", "Library", OTHER);
            old.published = Some(at(-48));
            put(&s.store, "third", &[old]);
            let q = FeedQuery {
                limit: 10,
                ..Default::default()
            };
            let tagged = s
                .store
                .entries(&Scope::Tag("city".into()), &q)
                .expect("feed");
            assert_eq!(
                tagged.iter().map(|e| e.title.as_str()).collect::<Vec<_>>(),
                ["Library"]
            );
            let all = s.store.export_entries(None, None).expect("export");
            let names: Vec<_> = all
                .iter()
                .map(|e| (e.title.as_str(), e.source_name.as_str()))
                .collect();
            assert_eq!(
                names,
                [("Library", "The third"), ("Park", "The first")],
                "oldest first"
            );
            assert_eq!(all[0].tags, ["city"]);
            let recent = s
                .store
                .export_entries(Some("local"), Some(at(-1)))
                .expect("export");
            assert_eq!(recent.len(), 1);
            assert_eq!(recent[0].title, "Park");
        }
    }
}
