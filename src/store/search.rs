//! Full-text search over entries (FTS5, trigram tokenizer): keeping the index in step with
//! the fingerprints it reads its text from, and turning a reader's search into a condition on
//! a feed query. How a term is looked up depends on how many entries hold it, so a page of the
//! newest matches costs about the same for rare and common terms.

use rusqlite::{params, Connection};

use super::StoreError;

/// Makes search see `entries` as they are now: new ones, and edited ones whose old text
/// [`unindex`] took out of the index.
pub(super) fn index_for_search(
    tx: &rusqlite::Transaction<'_>,
    entries: &[i64],
) -> Result<(), StoreError> {
    let ids = serde_json::to_string(entries).unwrap_or_else(|_| "[]".into());
    tx.prepare_cached(
        "INSERT INTO entries_fts (rowid, text)
         SELECT entry_id, text FROM search_text
         WHERE entry_id IN (SELECT value FROM json_each(?1))",
    )?
    .execute([ids])?;
    Ok(())
}

/// Takes an entry out of the index before its fingerprint changes. The index keeps no text of
/// its own (it reads `search_text`), and FTS5 removes a row by being told the text it indexed:
/// once the fingerprint is rewritten, that text is gone.
pub(super) fn unindex(tx: &rusqlite::Transaction<'_>, entry_id: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO entries_fts (entries_fts, rowid, text)
         SELECT 'delete', entry_id, text FROM search_text WHERE entry_id = ?1",
    )?
    .execute([entry_id])?;
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
/// A rare term is looked up in the search index and the page is built from the entries found;
/// walking the feed newest first instead would read every entry of the scope to find none. A
/// common term (more than [`RARE_TERM_MATCHES`] entries), or a single character, is checked on
/// each entry's text as the feed is walked newest first: a page needs about as many entries as
/// it shows, where the index would have checked every match in the store first.
pub(super) fn search_condition(
    conn: &Connection,
    terms: &[String],
    arg: &mut dyn FnMut(Box<dyn rusqlite::ToSql>) -> String,
) -> Result<String, StoreError> {
    let mut conds = Vec::with_capacity(terms.len());
    for term in terms {
        // Terms are letters, digits and decimal points (normalize drops everything else),
        // so a pattern holds no LIKE wildcard. A LIKE with ESCAPE would not reach the index.
        let pattern = format!("%{term}%");
        conds.push(match rare_term_matches(conn, term, &pattern)? {
            Some(ids) => {
                let ids = arg(Box::new(serde_json::to_string(&ids).unwrap_or_default()));
                format!("e.id IN (SELECT value FROM json_each({ids}))")
            }
            None => {
                let p = arg(Box::new(pattern));
                format!(
                    "EXISTS (SELECT 1 FROM search_text st WHERE st.entry_id = e.id AND st.text LIKE {p})"
                )
            }
        });
    }
    Ok(conds.join(" AND "))
}

/// The entries whose text holds `term`, when the index can find them and they are at most
/// [`RARE_TERM_MATCHES`]; `None` for a common term or one the index cannot look up.
///
/// FTS5 narrows a LIKE of three characters or more by its trigrams and checks the text. A
/// pair of characters (most Chinese words) is in no trigram's LIKE, but every place it occurs
/// begins a trigram (the indexed text ends in a space for that), so the entries holding it
/// are those holding any trigram that begins with it: the index's own list of terms says
/// which those are.
pub(super) fn rare_term_matches(
    conn: &Connection,
    term: &str,
    pattern: &str,
) -> Result<Option<Vec<i64>>, StoreError> {
    let limit = RARE_TERM_MATCHES as i64 + 1;
    let found = match term.chars().count() {
        0 | 1 => return Ok(None),
        2 => {
            let trigrams = conn
                .prepare_cached(
                    "SELECT term FROM entries_fts_terms
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
            // Each trigram a phrase of its own; the index's terms hold no double quote, and
            // doubling one would keep it literal if they did.
            let any = trigrams
                .iter()
                .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
                .collect::<Vec<_>>()
                .join(" OR ");
            conn.prepare_cached(
                "SELECT rowid FROM entries_fts WHERE entries_fts MATCH ?1 LIMIT ?2",
            )?
            .query_map(params![any, limit], |r| r.get::<_, i64>(0))?
            .collect::<Result<Vec<i64>, _>>()?
        }
        _ => conn
            .prepare_cached("SELECT rowid FROM entries_fts WHERE text LIKE ?1 LIMIT ?2")?
            .query_map(params![pattern, limit], |r| r.get::<_, i64>(0))?
            .collect::<Result<Vec<i64>, _>>()?,
    };
    Ok((found.len() <= RARE_TERM_MATCHES).then_some(found))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{entry, put, scratch, BODY};
    use crate::model::{FeedQuery, Scope};
    use crate::store::Store;

    fn search(store: &Store, text: &str) -> Vec<String> {
        let q = FeedQuery {
            limit: 10,
            text: Some(text.into()),
            ..Default::default()
        };
        let mut titles: Vec<String> = store
            .entries(&Scope::All, &q)
            .expect("search")
            .into_iter()
            .map(|e| e.title)
            .collect();
        titles.sort();
        titles
    }

    #[test]
    fn chinese_terms_of_one_two_and_more_characters_match_whole() {
        let s = scratch();
        put(
            &s.store,
            "first",
            &[
                entry("first", "a", "北京天气", "今天北京天气晴朗，气温回升。"),
                entry("first", "b", "上海新闻", "上海地铁新线路开通，天空多云。"),
            ],
        );
        // Two characters: looked up by the trigrams they begin.
        assert_eq!(search(&s.store, "天气"), ["北京天气"]);
        assert_eq!(search(&s.store, "地铁"), ["上海新闻"]);
        // One character: checked on each entry's text.
        assert_eq!(search(&s.store, "天"), ["上海新闻", "北京天气"]);
        // Three or more: a trigram LIKE.
        assert_eq!(search(&s.store, "新线路"), ["上海新闻"]);
        // Every term must occur.
        assert_eq!(search(&s.store, "北京 地铁"), Vec::<String>::new());
        assert_eq!(search(&s.store, "天津"), Vec::<String>::new());
    }

    /// The index reads its text from the fingerprints: an edit takes the old words out.
    #[test]
    fn an_edit_is_found_by_its_new_words_only() {
        let s = scratch();
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
        assert_eq!(search(&s.store, "lakeside"), ["Lakeside park plan"]);
        assert_eq!(search(&s.store, "riverside"), Vec::<String>::new());
        s.store
            .reader()
            .expect("reader")
            .execute(
                "INSERT INTO entries_fts (entries_fts, rank) VALUES ('integrity-check', 1)",
                [],
            )
            .expect("the index agrees with its text");
    }
}
