//! Full-text search over entries: queueing entries for the index (`store::indexer` keeps it,
//! in its own file, attached to every reader as `search`), and turning a reader's search into
//! a condition on a feed query. How a term is looked up depends on how many entries hold it,
//! so a page of the newest matches costs about the same for rare and common terms. Every match
//! is checked on the stored text, so the index only ever narrows: an entry it has not reached
//! yet is found through the queue, an edit it has not seen is not found by its old words.

use rusqlite::{params, Connection};

use super::sql::{Conn, Param};
use super::StoreError;

/// Queues `entries` (new, or with a new text) for the index, in the transaction that writes
/// their text, and drops the queue's rows the index has committed (up to `indexed`).
pub(super) fn queue_for_index(
    tx: &rusqlite::Connection,
    entries: &[i64],
    indexed: i64,
) -> Result<(), StoreError> {
    if !entries.is_empty() {
        let ids = serde_json::to_string(entries).unwrap_or_else(|_| "[]".into());
        tx.prepare_cached("INSERT INTO search_queue (entry_id) SELECT value FROM json_each(?1)")?
            .execute([ids])?;
    }
    tx.prepare_cached("DELETE FROM search_queue WHERE seq <= ?1")?
        .execute([indexed])?;
    Ok(())
}

/// A search as the index sees it: NFKC, lower case, split into terms at spaces.
pub(super) fn search_terms(text: &str) -> Vec<String> {
    crate::dedupe::normalize(text)
        .split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Matches above which a term counts as common (see [`search_condition`]).
const RARE_TERM_MATCHES: usize = 5_000;

/// Trigrams beginning with a two-character term above which it counts as common: each is a
/// term of the index query, and a pair followed by this many different characters is in
/// many entries anyway.
const MAX_PAIR_TRIGRAMS: usize = 300;

/// Every term must occur, as a substring of the entry's normalized title and text.
///
/// A feed is a page of the newest matches, so how to find them depends on how many there are.
/// A rare term is looked up in the search index, with the entries it has not indexed yet, and
/// the page is built from the entries found; walking the feed newest first instead would read
/// every entry of the scope to find none. A common term (more than [`RARE_TERM_MATCHES`]
/// entries), a single character, or any term while more than [`MAX_QUEUED`] entries wait for
/// the index, is checked on each entry's text as the feed is walked newest first: a page needs
/// about as many entries as it shows, where the index would have checked every match first.
///
/// `conn` must be in a read transaction: the queue is read before the index, so an entry the
/// index took from the queue after that read is in the index as read.
///
/// PostgreSQL has no index yet (issue 21): every term is checked on each entry's text as
/// the feed is walked, which gives the same entries in the same order, more slowly for rare
/// terms.
pub(super) fn search_condition(
    conn: Conn<'_>,
    terms: &[String],
    arg: &mut dyn FnMut(Box<dyn Param>) -> String,
) -> Result<SearchSql, StoreError> {
    let Conn::Lite(conn) = conn else {
        let conds: Vec<String> = terms.iter().map(|t| text_condition(t, arg)).collect();
        return Ok(SearchSql {
            cond: conds.join(" AND "),
            drive: None,
        });
    };
    let use_index = queued_for_index(conn)? <= MAX_QUEUED;
    let mut found = Vec::with_capacity(terms.len());
    for term in terms {
        found.push(match use_index {
            true => rare_term_matches(conn, term)?,
            false => None,
        });
    }
    // A term found nowhere while the index has every queued entry: no entry can match, and a
    // constant false is decided before any row is read (a term's id list does not drive the
    // query, so the feed would be walked to its end to find nothing). Decided before any
    // parameter is added, so none goes unused.
    if found.iter().any(|f| f.as_ref().is_some_and(Vec::is_empty)) && all_indexed(conn)? {
        return Ok(SearchSql {
            cond: "0".to_string(),
            drive: None,
        });
    }
    // The fewest candidates any term has, with every queued entry: a superset of the matches,
    // from which the page is built instead of walking the feed to find them.
    let drive = found
        .iter()
        .flatten()
        .min_by_key(|ids| ids.len())
        .map(|ids| {
            let ids = arg(Box::new(serde_json::to_string(ids).unwrap_or_default()));
            format!("(SELECT value AS id FROM json_each({ids}) UNION SELECT entry_id FROM search_queue)")
        });
    let mut conds = Vec::with_capacity(terms.len());
    for (term, found) in terms.iter().zip(found) {
        let text = text_condition(term, arg);
        conds.push(match found {
            Some(ids) => {
                let ids = arg(Box::new(serde_json::to_string(&ids).unwrap_or_default()));
                format!(
                    "e.id IN (SELECT value FROM json_each({ids})
                              UNION ALL SELECT entry_id FROM search_queue) AND {text}"
                )
            }
            None => text,
        });
    }
    Ok(SearchSql {
        cond: conds.join(" AND "),
        drive,
    })
}

/// The condition that `term` is in the entry's normalized title and text.
fn text_condition(term: &str, arg: &mut dyn FnMut(Box<dyn Param>) -> String) -> String {
    // Terms are letters, digits and decimal points (normalize drops everything else), so a
    // pattern holds no LIKE wildcard.
    let p = arg(Box::new(format!("%{term}%")));
    format!("EXISTS (SELECT 1 FROM search_text st WHERE st.entry_id = e.id AND st.text LIKE {p})")
}

/// A search as SQL: the condition every matching entry meets, and, when the index has
/// narrowed the search down, the set of candidate ids (a subquery with an `id` column) the
/// query should start from.
pub(super) struct SearchSql {
    pub(super) cond: String,
    pub(super) drive: Option<String>,
}

/// Queued entries above which the index is not asked: each search would also check every
/// queued entry's text (a rebuild queues every entry; walking the feed is then cheaper).
const MAX_QUEUED: i64 = 100_000;

/// About how many entries wait for the index (the queue's span: rows are removed oldest
/// first). Read first in a search's transaction, so the queue is seen as of before the index.
fn queued_for_index(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT COALESCE(MAX(seq) - MIN(seq) + 1, 0) FROM search_queue")?
        .query_row([], |r| r.get(0))?)
}

/// Whether the index has taken every queued entry (queue rows stay until the next write
/// drops them). Read after the queue, in the same transaction (see [`search_condition`]).
fn all_indexed(conn: &Connection) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT NOT EXISTS (SELECT 1 FROM search_queue
                                WHERE seq > (SELECT seq FROM search.progress))",
        )?
        .query_row([], |r| r.get(0))?)
}

/// The entries the index says may hold `term`, when they are at most [`RARE_TERM_MATCHES`];
/// `None` for a common term or one the index cannot look up. The index keeps no text, so what
/// it finds is a superset: the caller checks the text.
///
/// A term of three characters or more is in every entry holding all its trigrams. A pair of
/// characters (most Chinese words) is no trigram, but every place it occurs begins one (the
/// indexed text ends in a space for that), so the entries holding it are those holding any
/// trigram that begins with it: the index's own list of terms says which those are.
pub(super) fn rare_term_matches(
    conn: &Connection,
    term: &str,
) -> Result<Option<Vec<i64>>, StoreError> {
    let chars: Vec<char> = term.chars().collect();
    let query = match chars.len() {
        0 | 1 => return Ok(None),
        2 => {
            let trigrams = conn
                .prepare_cached(
                    "SELECT term FROM search.fts_terms
                     WHERE term >= ?1 AND term < ?1 || char(1114111) LIMIT ?2",
                )?
                .query_map(params![term, MAX_PAIR_TRIGRAMS as i64 + 1], |r| {
                    r.get::<_, String>(0)
                })?
                .collect::<Result<Vec<String>, _>>()?;
            if trigrams.len() > MAX_PAIR_TRIGRAMS {
                return Ok(None);
            }
            if trigrams.is_empty() {
                return Ok(Some(Vec::new()));
            }
            phrases(trigrams.iter().map(String::as_str), " OR ")
        }
        _ => {
            let trigrams: Vec<String> = chars.windows(3).map(|w| w.iter().collect()).collect();
            phrases(trigrams.iter().map(String::as_str), " AND ")
        }
    };
    let limit = RARE_TERM_MATCHES as i64 + 1;
    let found = conn
        .prepare_cached("SELECT rowid FROM search.fts WHERE fts MATCH ?1 LIMIT ?2")?
        .query_map(params![query, limit], |r| r.get::<_, i64>(0))?
        .collect::<Result<Vec<i64>, _>>()?;
    Ok((found.len() <= RARE_TERM_MATCHES).then_some(found))
}

/// An FTS5 query of `terms`, each a phrase of its own (a double quote doubled keeps it
/// literal), joined by `op`.
fn phrases<'a>(terms: impl Iterator<Item = &'a str>, op: &str) -> String {
    terms
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(op)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{both, entry, put, search_titles, BODY};

    #[test]
    fn chinese_terms_of_one_two_and_more_characters_match_whole() {
        for s in both() {
            put(
                &s.store,
                "first",
                &[
                    entry("first", "a", "北京天气", "今天北京天气晴朗，气温回升。"),
                    entry("first", "b", "上海新闻", "上海地铁新线路开通，天空多云。"),
                ],
            );
            // Two characters: looked up by the trigrams they begin.
            assert_eq!(search_titles(&s.store, "天气"), ["北京天气"]);
            assert_eq!(search_titles(&s.store, "地铁"), ["上海新闻"]);
            // One character: checked on each entry's text.
            assert_eq!(search_titles(&s.store, "天"), ["上海新闻", "北京天气"]);
            // Three or more: a trigram LIKE.
            assert_eq!(search_titles(&s.store, "新线路"), ["上海新闻"]);
            // Every term must occur.
            assert_eq!(search_titles(&s.store, "北京 地铁"), Vec::<String>::new());
            assert_eq!(search_titles(&s.store, "天津"), Vec::<String>::new());
            // Once indexed, a term found nowhere is answered without reading the feed, and the
            // others as before.
            s.store.wait_for_search_index().expect("indexed");
            assert_eq!(search_titles(&s.store, "天津"), Vec::<String>::new());
            assert_eq!(search_titles(&s.store, "北京 zzzqqq"), Vec::<String>::new());
            assert_eq!(search_titles(&s.store, "天气"), ["北京天气"]);
        }
    }

    /// An edit is found by its new words only, before and after the index has seen it.
    #[test]
    fn an_edit_is_found_by_its_new_words_only() {
        for s in both() {
            put(
                &s.store,
                "first",
                &[entry("first", "park", "Riverside park plan", BODY)],
            );
            let lake = BODY.replace("riverside", "lakeside");
            put(
                &s.store,
                "first",
                &[entry("first", "park", "Lakeside park plan", &lake)],
            );
            assert_eq!(search_titles(&s.store, "lakeside"), ["Lakeside park plan"]);
            assert_eq!(search_titles(&s.store, "riverside"), Vec::<String>::new());
            s.store
                .wait_for_search_index()
                .expect("the search index caught up");
            assert_eq!(search_titles(&s.store, "lakeside"), ["Lakeside park plan"]);
            assert_eq!(search_titles(&s.store, "riverside"), Vec::<String>::new());
            // SQLite's index file (PostgreSQL has none yet).
            if matches!(s.store.engine, super::super::Engine::Lite { .. }) {
                s.store
                    .reader()
                    .expect("reader")
                    .execute(
                        "INSERT INTO search.fts (fts, rank) VALUES ('integrity-check', 0)",
                        [],
                    )
                    .expect("the index is whole");
            }
        }
    }
}
