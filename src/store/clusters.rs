//! Near-duplicate clusters: placing a new or edited entry (candidates from the writer's
//! in-memory index, decided by `dedupe`), keeping every matched pair in `dedupe_edges`, and
//! recomputing clusters as the connected components of those pairs, so that they do not depend
//! on the order entries arrived in. Also the canonical member merged feeds show, and
//! `dedupe --explain`'s view of a cluster.
//!
//! Every change to `dedupe_sigs` here is made to the candidate index too, in the same step:
//! the index must equal the table for every day it holds.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::packed::{Pack, Unpacked};
use super::sql::Conn;
use super::writes::{Batch, Txn};
use super::{from_unix, Store, StoreError};
use crate::dedupe::index::{self as dedupe_index, CandidateIndex, Signature};
use crate::dedupe::{self, Figures, Fingerprint};
use crate::model::Entry;

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
    /// The identity keys any source's item could share (`doc:`, `link:`, `hash:`; not the
    /// source-scoped `guid:`): what made several sources' items this one entry.
    pub shared_keys: Vec<String>,
}

impl Store {
    /// The cluster of `entry_id`: every member, how it joined, and which one merged feeds
    /// show. None when there is no such entry.
    pub fn explain(&self, entry_id: i64) -> Result<Option<(i64, Vec<ClusterMember>)>, StoreError> {
        self.read(|c| {
            let cluster: Option<Option<i64>> = c.query_opt(
                "SELECT cluster_id FROM entries WHERE id = ?1",
                &[&entry_id],
                |r| r.get(0),
            )?;
            let Some(cluster) = cluster else {
                return Ok(None);
            };
            let cluster = cluster.unwrap_or(entry_id);
            let (sources, keys) = if c.is_pg() {
                (
                    "string_agg(source_id, ', ')",
                    "CAST(COALESCE(json_agg(key), CAST('[]' AS json)) AS TEXT)",
                )
            } else {
                ("group_concat(source_id, ', ')", "json_group_array(key)")
            };
            let members = c.query_map(
                &format!(
                    "SELECT e.id, e.title, e.published, e.canonical,
                            (SELECT {sources} FROM entry_sources WHERE entry_id = e.id),
                            m.matched_entry, m.rule, m.score,
                            (SELECT {keys} FROM entry_keys k
                             WHERE k.entry_id = e.id AND k.key NOT LIKE 'guid:%')
                     FROM entries e LEFT JOIN cluster_merges m ON m.entry_id = e.id
                     WHERE e.cluster_id = ?1 OR e.id = ?2
                     ORDER BY e.published, e.id"
                ),
                &[&cluster, &entry_id],
                |r| {
                    let matched: Option<i64> = r.get(5)?;
                    Ok(ClusterMember {
                        entry_id: r.get(0)?,
                        title: r.get(1)?,
                        published: from_unix(r.get(2)?),
                        canonical: r.get(3)?,
                        sources: r
                            .get::<Option<String>>(4)?
                            .map(|s| s.split(", ").map(str::to_string).collect())
                            .unwrap_or_default(),
                        merged: match matched {
                            Some(m) => Some((m, r.get(6)?, r.get(7)?)),
                            None => None,
                        },
                        shared_keys: super::from_json(&r.get::<String>(8)?),
                    })
                },
            )?;
            Ok(Some((cluster, members)))
        })
    }
}

/// Entries one candidate key may name before it counts as too common to say anything.
const BUCKET_CAP: usize = 32;
/// Candidates compared per entry, those sharing the most keys first.
const MAX_COMPARED: usize = 16;

/// Why an entry is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placement {
    /// Inserted in this group, with its fingerprint, in a cluster of its own.
    New,
    /// Its compared text changed: it leaves its cluster and is placed again on the new text.
    Edited,
}

/// Where candidates are looked for: a category and a span of publication times.
struct Window<'a> {
    category: &'a str,
    from: i64,
    to: i64,
}

/// An entry that shares candidate keys with the one being placed.
struct Candidate<'a> {
    entry: i64,
    shared: usize,
    figures: Option<&'a Figures>,
}

/// Keys of entries seen and published well outside the window are unlikely to match anything
/// new, and are dropped from `dedupe_sigs` and the index alike. A backfill (old dates, seen
/// now) keeps its keys, so two sources' histories still merge.
pub(super) fn prune_candidates(txn: &mut Txn<'_>, batch: &Batch<'_>) -> Result<(), StoreError> {
    let horizon = batch.now_ts() - batch.thresholds.window_hours * 2 * 3600;
    txn.conn().execute(
        "DELETE FROM dedupe_sigs WHERE category = ?1 AND seen < ?2 AND published < ?2",
        &[&batch.category, &horizon],
    )?;
    txn.candidates.prune(&batch.category, horizon);
    Ok(())
}

/// Finds the cluster a new or edited entry belongs to and records it. Candidates are recent
/// entries of the same category that share a candidate key and come from other sources; every
/// one that `dedupe` accepts (at most [`MAX_COMPARED`] compared, those sharing most keys
/// first) is kept as a pair, and the entry's cluster is the component those pairs make.
/// Returns whether the entry joined another entry's cluster.
pub(super) fn place_in_cluster(
    txn: &mut Txn<'_>,
    batch: &Batch<'_>,
    entry_id: i64,
    e: &Entry,
    placement: Placement,
) -> Result<bool, StoreError> {
    txn.index_later(entry_id);
    if placement == Placement::Edited {
        refingerprint(txn, entry_id, &e.fingerprint)?;
    }
    let t = batch.thresholds;
    let keys: &[i64] = if t.enabled { &e.candidate_keys } else { &[] };
    let published = e.published.unwrap_or(batch.now).timestamp();
    let window = Window {
        category: &batch.category,
        from: published - t.window_hours * 3600,
        to: published + t.window_hours * 3600,
    };
    if !keys.is_empty() {
        load_candidate_days(txn, &window)?;
        txn.candidates
            .touch(window.category, window.from, window.to);
    }
    let c = txn.conn();
    let (ranked, useful) = rank_candidates(txn.candidates, &window, keys, entry_id);
    let matched = compare_candidates(c, batch, e, ranked)?;
    record_matches(c, entry_id, &matched, batch.now_ts())?;
    if !useful.is_empty() {
        let sig = Signature {
            entry: entry_id,
            published,
            seen: batch.now_ts(),
            keys: useful,
            figures: Some(e.figures.clone()),
        };
        remember_signature(txn, &batch.category, sig)?;
    }
    Ok(!matched.is_empty())
}

/// An edited entry leaves its cluster and gets its new fingerprint (a new one was inserted
/// with it), the text the search index reads when it reaches the entry in its queue.
fn refingerprint(txn: &mut Txn<'_>, entry_id: i64, fp: &Fingerprint) -> Result<(), StoreError> {
    leave_cluster(txn, entry_id)?;
    txn.conn().execute(
        "UPDATE fingerprints SET title = ?2, body = ?3, simhash = ?4 WHERE entry_id = ?1",
        &[
            &entry_id,
            &fp.title,
            &Pack::text(&fp.body),
            &(fp.simhash as i64),
        ],
    )?;
    Ok(())
}

/// Candidates by how many keys they share: a copy shares most of its keys, a chance collision
/// one or two. A key found in more than [`BUCKET_CAP`] recent entries of the category says
/// nothing (text every item shares: a site's boilerplate, a common figure) and is neither used
/// nor extended; the others are returned as the keys worth keeping for the entry.
fn rank_candidates<'a>(
    candidates: &'a CandidateIndex,
    window: &Window<'_>,
    keys: &[i64],
    entry_id: i64,
) -> (Vec<Candidate<'a>>, Vec<i64>) {
    let mut shared: HashMap<i64, (usize, Option<&Figures>)> = HashMap::new();
    let mut useful = Vec::with_capacity(keys.len());
    for key in keys {
        let (category, from, to) = (window.category, window.from, window.to);
        let Some(hits) = candidates.lookup(category, from, to, *key, entry_id, BUCKET_CAP) else {
            continue;
        };
        useful.push(*key);
        for hit in hits {
            shared.entry(hit.entry).or_insert((0, hit.figures)).0 += 1;
        }
    }
    let mut ranked: Vec<Candidate<'a>> = shared
        .into_iter()
        .map(|(entry, (shared, figures))| Candidate {
            entry,
            shared,
            figures,
        })
        .collect();
    ranked.sort_by_key(|c| (std::cmp::Reverse(c.shared), c.entry));
    (ranked, useful)
}

/// Every candidate the entry matches. The pairs are all kept, whatever order the entries came
/// in: the entry's cluster is the connected component they make (see [`recluster`]).
fn compare_candidates(
    c: Conn<'_>,
    batch: &Batch<'_>,
    e: &Entry,
    ranked: Vec<Candidate<'_>>,
) -> Result<Vec<(i64, dedupe::Match)>, StoreError> {
    let mine = dedupe::Features::with_figures(&e.fingerprint, &e.figures);
    let mut matched = Vec::new();
    // At most MAX_COMPARED texts of other sources are compared. The entry's own source's
    // entries are skipped without counting: how many of them came before it depends on the
    // order of the feed, and must not decide which others are compared.
    let (mut compared, mut read) = (0, 0);
    for candidate in ranked {
        if compared >= MAX_COMPARED || read >= 4 * MAX_COMPARED {
            break;
        }
        // Most candidates share a key by chance, and their figures alone say so: their text
        // is not read.
        if candidate
            .figures
            .is_some_and(|theirs| dedupe::figures_differ(&e.figures, theirs))
        {
            continue;
        }
        // Members of a cluster already matched are compared too: the pairs they give hold the
        // cluster together if it later loses the member that joined it, and skipping them
        // would make that depend on the order the entries came in.
        read += 1;
        let other = c.query_opt(
            "SELECT title, body, simhash FROM fingerprints f
             WHERE entry_id = ?1
               AND NOT EXISTS (SELECT 1 FROM entry_sources es
                               WHERE es.entry_id = f.entry_id AND es.source_id = ?2)",
            &[&candidate.entry, &batch.source_id],
            |r| {
                Ok(Fingerprint {
                    title: r.get(0)?,
                    body: r.get::<Unpacked>(1)?.0.unwrap_or_default(),
                    simhash: r.get::<i64>(2)? as u64,
                })
            },
        )?;
        let Some(other) = other else {
            continue;
        };
        compared += 1;
        let theirs = dedupe::Features::new(&other);
        if let Some(m) = dedupe::compare_features(&mine, &theirs, batch.thresholds) {
            matched.push((candidate.entry, m));
        }
    }
    Ok(matched)
}

/// Keeps the pairs an entry matched, notes the best one for `dedupe --explain`, and works its
/// cluster out again. Nothing to do when it matched nothing: it stays alone.
fn record_matches(
    c: Conn<'_>,
    entry_id: i64,
    matched: &[(i64, dedupe::Match)],
    now: i64,
) -> Result<(), StoreError> {
    let Some((first, m)) = matched.first() else {
        return Ok(());
    };
    for (other, m) in matched {
        let (a, b) = (entry_id.min(*other), entry_id.max(*other));
        c.execute(
            "INSERT INTO dedupe_edges (a, b, rule, score) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (a, b) DO UPDATE SET rule = excluded.rule, score = excluded.score",
            &[&a, &b, &m.rule.as_str(), &m.score],
        )?;
    }
    // The best match: the one sharing most keys.
    c.execute(
        "INSERT INTO cluster_merges (entry_id, matched_entry, rule, score, merged_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (entry_id) DO UPDATE SET matched_entry = excluded.matched_entry,
             rule = excluded.rule, score = excluded.score, merged_at = excluded.merged_at",
        &[&entry_id, first, &m.rule.as_str(), &m.score, &now],
    )?;
    recluster(c, &[entry_id])
}

/// Keeps an entry's useful keys and figures, in `dedupe_sigs` and the index alike, so later
/// entries find it.
fn remember_signature(txn: &mut Txn<'_>, category: &str, sig: Signature) -> Result<(), StoreError> {
    txn.conn().execute(
        "INSERT INTO dedupe_sigs (entry_id, category, published, seen, keys, figures)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (entry_id) DO UPDATE SET category = excluded.category,
             published = excluded.published, seen = excluded.seen, keys = excluded.keys,
             figures = excluded.figures",
        &[
            &sig.entry,
            &category,
            &sig.published,
            &sig.seen,
            &dedupe_index::encode_keys(&sig.keys),
            &sig.figures.as_ref().map(Figures::to_stored),
        ],
    )?;
    txn.candidates.insert(category, sig);
    Ok(())
}

/// Brings into the index the days of the window it does not hold for the category.
fn load_candidate_days(txn: &mut Txn<'_>, window: &Window<'_>) -> Result<(), StoreError> {
    let missing = txn
        .candidates
        .missing(window.category, window.from, window.to);
    if missing.is_empty() {
        return Ok(());
    }
    let c = txn.conn();
    for (start, end) in missing {
        let rows = c.query_map(
            "SELECT entry_id, published, seen, keys, figures FROM dedupe_sigs
             WHERE category = ?1 AND published BETWEEN ?2 AND ?3",
            &[&window.category, &start, &end],
            |r| {
                Ok(Signature {
                    entry: r.get(0)?,
                    published: r.get(1)?,
                    seen: r.get(2)?,
                    keys: dedupe_index::decode_keys(&r.get::<Vec<u8>>(3)?),
                    figures: r
                        .get::<Option<String>>(4)?
                        .as_deref()
                        .and_then(Figures::parse),
                })
            },
        )?;
        txn.candidates.load(window.category, start, rows);
    }
    Ok(())
}

/// Takes an entry out of its cluster (before it is placed again): its matches are dropped,
/// and what is left of its cluster is recomputed from the others' (it may fall apart).
fn leave_cluster(txn: &mut Txn<'_>, entry_id: i64) -> Result<(), StoreError> {
    let c = txn.conn();
    let mates = cluster_members(c, entry_id)?;
    let filed: Option<(String, i64)> = c.query_opt(
        "SELECT category, published FROM dedupe_sigs WHERE entry_id = ?1",
        &[&entry_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if let Some((category, published)) = filed {
        c.execute("DELETE FROM dedupe_sigs WHERE entry_id = ?1", &[&entry_id])?;
        txn.candidates.remove(&category, published, entry_id);
    }
    c.execute(
        "DELETE FROM cluster_merges WHERE entry_id = ?1",
        &[&entry_id],
    )?;
    c.execute(
        "DELETE FROM dedupe_edges WHERE a = ?1 OR b = ?1",
        &[&entry_id],
    )?;
    c.execute(
        "UPDATE entries SET cluster_id = id, canonical = 1 WHERE id = ?1",
        &[&entry_id],
    )?;
    let rest: Vec<i64> = mates.into_iter().filter(|m| *m != entry_id).collect();
    recluster(c, &rest)
}

/// The entries of `entry_id`'s cluster, itself included.
fn cluster_members(c: Conn<'_>, entry_id: i64) -> Result<Vec<i64>, StoreError> {
    c.query_map(
        "SELECT id FROM entries
         WHERE cluster_id = (SELECT cluster_id FROM entries WHERE id = ?1) OR id = ?1",
        &[&entry_id],
        |r| r.get(0),
    )
}

/// Recomputes the clusters around `seeds` as connected components of `dedupe_edges`, leaving
/// out pairs whose entries share a source. The region recomputed is everything a seed reaches
/// through matches or cluster labels (its cluster-mates, which may part from it, and any entry
/// labelled by one of them), so no cluster outside it keeps a label it reuses. Each component
/// is labelled by its smallest id, and its canonical member chosen.
pub(super) fn recluster(c: Conn<'_>, seeds: &[i64]) -> Result<(), StoreError> {
    let related = "SELECT id FROM entries
         WHERE cluster_id = (SELECT cluster_id FROM entries WHERE id = ?1) OR cluster_id = ?1
         UNION SELECT b FROM dedupe_edges WHERE a = ?1
         UNION SELECT a FROM dedupe_edges WHERE b = ?1";
    let mut region = reach(c, related, seeds, &mut HashSet::new())?;
    region.sort_unstable();
    let neighbours = "SELECT m FROM (SELECT b AS m FROM dedupe_edges WHERE a = ?1
                       UNION SELECT a FROM dedupe_edges WHERE b = ?1) AS n
         WHERE NOT EXISTS (SELECT 1 FROM entry_sources x
                           JOIN entry_sources y ON y.source_id = x.source_id AND y.entry_id = m
                           WHERE x.entry_id = ?1)";
    let mut seen = HashSet::new();
    let mut labels = Vec::new();
    for start in region {
        if seen.contains(&start) {
            continue;
        }
        let component = reach(c, neighbours, &[start], &mut seen)?;
        let min = component.iter().copied().min().unwrap_or(start);
        for member in &component {
            c.execute(
                "UPDATE entries SET cluster_id = ?2 WHERE id = ?1",
                &[member, &min],
            )?;
        }
        labels.push(min);
    }
    // Every member carries its new label before any cluster's canonical member is chosen: a
    // member still labelled as before would count in a cluster it left.
    for l in labels {
        choose_canonical(c, l)?;
    }
    Ok(())
}

/// Every entry `step` leads to from `starts`, breadth first, the starts included; `seen`
/// collects them (one may be shared by several walks, so none is walked twice).
fn reach(
    c: Conn<'_>,
    step: &str,
    starts: &[i64],
    seen: &mut HashSet<i64>,
) -> Result<Vec<i64>, StoreError> {
    let mut found: Vec<i64> = starts.iter().copied().filter(|s| seen.insert(*s)).collect();
    let mut at = 0;
    while at < found.len() {
        let next: Vec<i64> = c.query_map(step, &[&found[at]], |r| r.get(0))?;
        for n in next {
            if seen.insert(n) {
                found.push(n);
            }
        }
        at += 1;
    }
    Ok(found)
}

/// Marks the member merged feeds show: the highest source priority, then the earliest. NULLs
/// (an entry no source carries any more) are placed as SQLite places them, on both backends.
fn choose_canonical(c: Conn<'_>, cluster: i64) -> Result<(), StoreError> {
    c.execute(
        "UPDATE entries SET canonical = CASE WHEN id = (
             SELECT e.id FROM entries e WHERE e.cluster_id = ?1
             ORDER BY (SELECT MAX(s.priority) FROM entry_sources es
                       JOIN sources s ON s.id = es.source_id WHERE es.entry_id = e.id)
                          DESC NULLS LAST,
                      e.published,
                      (SELECT MIN(es.source_id) FROM entry_sources es WHERE es.entry_id = e.id)
                          NULLS FIRST,
                      e.id
             LIMIT 1) THEN 1 ELSE 0 END
         WHERE cluster_id = ?1",
        &[&cluster],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{both, entry, feed, put, BODY, OTHER};
    use super::*;
    use crate::model::Scope;

    fn id_of(store: &Store, source: &str) -> i64 {
        let own = feed(store, Scope::Source(source.into()));
        assert_eq!(own.len(), 1, "{source} has one entry");
        own[0].id
    }

    /// The members of `id`'s cluster, by id, and which of them is canonical.
    fn cluster_of(store: &Store, id: i64) -> (Vec<i64>, Vec<i64>) {
        let (_, members) = store.explain(id).expect("explain").expect("an entry");
        let ids = members.iter().map(|m| m.entry_id).collect();
        let canonical = members
            .iter()
            .filter(|m| m.canonical)
            .map(|m| m.entry_id)
            .collect();
        (ids, canonical)
    }

    fn copy_of_the_story() -> crate::model::Entry {
        let body = format!("{BODY} Work is expected to start next year.");
        entry(
            "second",
            "park",
            "Riverside park plan approved by council",
            &body,
        )
    }

    #[test]
    fn two_copies_are_one_cluster_until_one_is_edited_into_another_story() {
        for s in both() {
            let story = entry(
                "first",
                "park",
                "Council approves riverside park plan",
                BODY,
            );
            assert_eq!(put(&s.store, "first", &[story]).merged, 0);
            assert_eq!(put(&s.store, "second", &[copy_of_the_story()]).merged, 1);
            let (a, b) = (id_of(&s.store, "first"), id_of(&s.store, "second"));
            // Same priority and date: the smaller source id is shown.
            assert_eq!(cluster_of(&s.store, a), (vec![a, b], vec![a]));
            let merged = feed(&s.store, Scope::All);
            assert_eq!(merged.len(), 1);
            let sources: Vec<&str> = merged[0]
                .sources
                .iter()
                .map(|x| x.source_id.as_str())
                .collect();
            assert_eq!(sources, ["first", "second"]);

            let edited = entry("second", "park", "Library extends weekend hours", OTHER);
            let counts = put(&s.store, "second", &[edited]);
            assert_eq!((counts.updated, counts.merged), (1, 0));
            assert_eq!(cluster_of(&s.store, a), (vec![a], vec![a]));
            assert_eq!(cluster_of(&s.store, b), (vec![b], vec![b]));
            assert_eq!(feed(&s.store, Scope::All).len(), 2);
        }
    }

    /// A source lists one story once: when one source turns out to carry both members, their
    /// pair no longer joins them.
    #[test]
    fn a_source_carrying_both_members_keeps_them_apart() {
        for s in both() {
            let story = entry(
                "first",
                "park",
                "Council approves riverside park plan",
                BODY,
            );
            put(&s.store, "first", &[story]);
            put(&s.store, "second", &[copy_of_the_story()]);
            let (a, b) = (id_of(&s.store, "first"), id_of(&s.store, "second"));
            assert_eq!(cluster_of(&s.store, a).0, vec![a, b]);

            let mut one = entry("third", "one", "Park plan approved", BODY);
            one.keys.push("link:example.org/first/park".into());
            let mut two = entry("third", "two", "Park plan passes", BODY);
            two.keys.push("link:example.org/second/park".into());
            let counts = put(&s.store, "third", &[one, two]);
            assert_eq!(
                (counts.new, counts.unchanged),
                (0, 2),
                "both matched by link"
            );
            assert_eq!(cluster_of(&s.store, a), (vec![a], vec![a]));
            assert_eq!(cluster_of(&s.store, b), (vec![b], vec![b]));
            // The pair is still kept: the clusters are recomputed from it, not forgotten.
            let edges: i64 = s
                .store
                .read(|c| c.query_one("SELECT COUNT(*) FROM dedupe_edges", &[], |r| r.get(0)))
                .expect("edges");
            assert_eq!(edges, 1);
        }
    }

    #[test]
    fn with_dedupe_off_a_copy_stands_alone() {
        for s in both() {
            let off = crate::config::Thresholds {
                enabled: false,
                ..Default::default()
            };
            let story = entry(
                "first",
                "park",
                "Council approves riverside park plan",
                BODY,
            );
            put(&s.store, "first", &[story]);
            let counts = s
                .store
                .upsert_entries(
                    "second",
                    &[copy_of_the_story()],
                    &off,
                    super::super::testing::at(0),
                )
                .expect("stored");
            assert_eq!((counts.new, counts.merged), (1, 0));
            assert_eq!(feed(&s.store, Scope::All).len(), 2);
        }
    }
}
