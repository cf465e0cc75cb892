//! Retention: which entries have outlived every source that carries them (`keep_days`,
//! `keep_entries`), and taking them out in small batches, so that fetches and readers never
//! wait long for the writer.
//!
//! What is never pruned: an entry the latest list of an active source still names (its
//! `entry_sources.listing` is the source's `listing`), whatever its age; an
//! entry another source still keeps; the canonical member of a cluster while any member stays
//! (the cluster's other members may go: the pairs that held the cluster together through a
//! pruned member are passed on to its neighbours, so the cluster neither splits nor changes
//! the member merged feeds show).
//!
//! An entry goes with everything kept for it (its sources' rows, keys, fingerprint, candidate
//! keys, pairs; the search index takes it out through its queue). Its identity keys stay as
//! tombstones while its source may still list it, so that listing does not store it again as
//! new; a tombstone goes once its source has listed without it for [`TOMBSTONE_GRACE`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::sql::{Conn, Param};
use super::writes::{write_group, Txn};
use super::{clusters, schema, Store, StoreError};
use crate::config::{Retention, SourceConfig};

/// Entries taken out per transaction. Each one deletes a few rows in eight tables and their
/// indexes; a batch of this size holds the writer for about 30 ms on a 1 M-entry store
/// (BENCHMARKS.md, "Retention").
const BATCH: usize = 64;

/// How long one step of the incremental vacuum may hold the writer. A page moved from the end
/// of the file into a free one costs from microseconds to a few milliseconds (its parent and
/// pointer-map pages are rewritten too): a fixed count of 1024 pages held it up to 1.4 s.
const VACUUM_STEP: Duration = Duration::from_millis(20);

/// A tombstone stays until its source has listed without the entry for this long: lists that
/// come and go (a rotating "hot" list, a CDN serving two versions) do not bring it back.
pub const TOMBSTONE_GRACE: i64 = 7 * 24 * 3600;

/// What a prune is asked to do.
pub struct PruneRequest<'a> {
    /// The configured sources (their retention); a source the config no longer has keeps
    /// `default`.
    pub sources: &'a [Arc<SourceConfig>],
    pub default: Retention,
    pub now: DateTime<Utc>,
    /// Only say what would go.
    pub dry_run: bool,
}

/// What a prune took out (or would have).
#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    /// Per source with anything to prune, by id: entries that go (an entry several sources
    /// carry counts for each).
    pub per_source: Vec<(String, u64)>,
    /// Entries taken out.
    pub entries: u64,
    pub batches: u64,
    /// The longest the writer was held by one batch (its commit included).
    pub longest_batch: Duration,
    /// The longest the writer was held by one step of the incremental vacuum.
    pub longest_vacuum_step: Duration,
    pub tombstones_written: u64,
    pub tombstones_dropped: u64,
    /// Bytes the file gave back to the file system.
    pub bytes_freed: u64,
}

/// The entries chosen to go: the members of one cluster together, so a batch never leaves a
/// cluster without the member its feed shows.
struct Plan {
    groups: Vec<Vec<i64>>,
    per_source: Vec<(String, u64)>,
}

impl Store {
    /// Prunes what has outlived its sources' retention (see the module's doc), then drops
    /// tombstones whose time is up and gives the freed pages back to the file system.
    pub fn prune(&self, req: &PruneRequest<'_>) -> Result<PruneReport, StoreError> {
        let plan = self.snapshot(|c| plan(c, req))?;
        let mut report = PruneReport {
            per_source: plan.per_source,
            ..Default::default()
        };
        if req.dry_run {
            report.entries = plan.groups.iter().map(|g| g.len() as u64).sum();
            return Ok(report);
        }
        for batch in batches(plan.groups) {
            let mut writer = self.writer()?;
            let started = Instant::now();
            let (gone, tombstones) =
                write_group(&self.engine, &mut writer, |txn| prune_batch(txn, &batch))?;
            drop(writer);
            let held = started.elapsed();
            report.longest_batch = report.longest_batch.max(held);
            // The writer's lock is not fair: taken again at once, it would be this loop's again
            // before a waiting fetch woke. A pause as long as the batch lets them in first.
            std::thread::sleep(held);
            report.entries += gone;
            report.tombstones_written += tombstones;
            report.batches += 1;
        }
        {
            let started = Instant::now();
            report.tombstones_dropped = self.write(sweep_tombstones)?;
            report.longest_batch = report.longest_batch.max(started.elapsed());
        }
        if matches!(self.engine, super::Engine::Pg(_)) {
            // PostgreSQL's autovacuum makes the room reusable; its files are its own.
            return Ok(report);
        }
        self.give_back_space(&mut report)?;
        // The file shrinks when the WAL is copied back into it: a passive checkpoint, from a
        // read connection, so that the writer is not held while it copies.
        self.reader()?
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(report)
    }

    /// The incremental vacuum, a few megabytes at a time (the writer is let go in between).
    fn give_back_space(&self, report: &mut PruneReport) -> Result<(), StoreError> {
        let pragma = |conn: &Connection, name: &str| -> Result<i64, StoreError> {
            Ok(conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?)
        };
        loop {
            let writer = self.writer()?;
            let started = Instant::now();
            let conn = writer.lite()?;
            let free = pragma(conn, "freelist_count")?;
            let left = if free > 0 && pragma(conn, "auto_vacuum")? == 2 {
                schema::vacuum_pages(conn, Some(VACUUM_STEP))?;
                pragma(conn, "freelist_count")?
            } else {
                free
            };
            report.bytes_freed += ((free - left) * pragma(conn, "page_size")?) as u64;
            drop(writer);
            let held = started.elapsed();
            report.longest_vacuum_step = report.longest_vacuum_step.max(held);
            if left == 0 || left == free {
                return Ok(());
            }
            std::thread::sleep(held);
        }
    }
}

/// The entries every carrying source lets go, grouped by cluster.
fn plan(conn: Conn<'_>, req: &PruneRequest<'_>) -> Result<Plan, StoreError> {
    let configured: HashMap<&str, Retention> = req
        .sources
        .iter()
        .map(|s| (s.id.as_str(), s.retention))
        .collect();
    let sources: Vec<(String, bool, i64)> = conn.query_map(
        "SELECT id, active, listing FROM sources ORDER BY id",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    // Entries one source lets go; for those several sources carry, how many let go so far.
    let mut released: Vec<(String, Vec<i64>)> = Vec::new();
    let mut shared: HashMap<i64, (u32, u32)> = HashMap::new();
    let mut alone: Vec<i64> = Vec::new();
    for (id, active, listing) in sources {
        let keep = configured.get(id.as_str()).copied().unwrap_or(req.default);
        let listing = active.then_some(listing);
        let ids = released_by(conn, &id, keep, listing, req.now.timestamp(), |e, n| {
            if n == 1 {
                alone.push(e);
            } else {
                let s = shared.entry(e).or_insert((0, n));
                s.0 += 1;
            }
        })?;
        if !ids.is_empty() {
            released.push((id, ids));
        }
    }
    alone.extend(
        shared
            .into_iter()
            .filter(|(_, (let_go, carried))| let_go == carried)
            .map(|(e, _)| e),
    );
    alone.sort_unstable();
    alone.dedup();
    let groups = by_cluster(conn, alone)?;
    let mut going: Vec<i64> = groups.iter().flatten().copied().collect();
    going.sort_unstable();
    let per_source = released
        .into_iter()
        .map(|(id, ids)| {
            let n = ids
                .iter()
                .filter(|e| going.binary_search(e).is_ok())
                .count();
            (id, n as u64)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    Ok(Plan { groups, per_source })
}

/// The entries of `source` past its retention and not in its latest list (`listing`: its
/// number, for an active source), each passed to `each` with the number of sources carrying
/// it.
fn released_by(
    conn: Conn<'_>,
    source: &str,
    keep: Retention,
    listing: Option<i64>,
    now: i64,
    mut each: impl FnMut(i64, u32),
) -> Result<Vec<i64>, StoreError> {
    if keep.keep_days.is_none() && keep.keep_entries.is_none() {
        return Ok(Vec::new());
    }
    let cutoff = keep
        .keep_days
        .map_or(i64::MIN, |d| now - i64::from(d) * 86_400);
    let newest = keep.keep_entries.map_or(usize::MAX, |n| n as usize);
    // Newest first: the rank is the place in the source's own feed. Without keep_entries no
    // rank is needed: only the entries past keep_days come back, unsorted.
    let ranked = keep.keep_entries.is_some();
    let sql = if ranked {
        "SELECT es.entry_id, e.published, es.listing,
                (SELECT COUNT(*) FROM entry_sources x WHERE x.entry_id = es.entry_id)
         FROM entry_sources es JOIN entries e ON e.id = es.entry_id
         WHERE es.source_id = ?1
         ORDER BY e.published DESC, e.sort_key DESC, e.id DESC"
    } else {
        "SELECT es.entry_id, e.published, es.listing,
                (SELECT COUNT(*) FROM entry_sources x WHERE x.entry_id = es.entry_id)
         FROM entry_sources es JOIN entries e ON e.id = es.entry_id
         WHERE es.source_id = ?1 AND e.published < ?2"
    };
    let params: &[&dyn Param] = if ranked {
        &[&source]
    } else {
        &[&source, &cutoff]
    };
    let rows: Vec<(i64, i64, i64, u32)> = conn.query_map(sql, params, |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    let mut ids = Vec::new();
    for (rank, (entry, published, listed_in, carriers)) in rows.into_iter().enumerate() {
        let expired = published < cutoff || rank >= newest;
        let listed = listing == Some(listed_in);
        if expired && !listed {
            each(entry, carriers);
            ids.push(entry);
        }
    }
    Ok(ids)
}

/// `going` grouped by cluster (a cluster's members that go, together). The canonical member
/// of a cluster that keeps any other member stays.
fn by_cluster(conn: Conn<'_>, going: Vec<i64>) -> Result<Vec<Vec<i64>>, StoreError> {
    let mut clusters: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut groups = Vec::new();
    let mut canonical_of: HashMap<i64, i64> = HashMap::new();
    let mut sizes: HashMap<i64, i64> = HashMap::new();
    for id in going {
        let Some((cluster, canonical, size)) = conn.query_opt(
            "SELECT e.cluster_id, e.canonical,
                    (SELECT COUNT(*) FROM entries m WHERE m.cluster_id = e.cluster_id)
             FROM entries e WHERE e.id = ?1",
            &[&id],
            |r| {
                Ok((
                    r.get::<Option<i64>>(0)?,
                    r.get::<bool>(1)?,
                    r.get::<i64>(2)?,
                ))
            },
        )?
        else {
            continue;
        };
        let cluster = cluster.unwrap_or(id);
        if size <= 1 {
            groups.push(vec![id]);
            continue;
        }
        if canonical {
            canonical_of.insert(cluster, id);
        }
        sizes.insert(cluster, size);
        clusters.entry(cluster).or_default().push(id);
    }
    for (cluster, mut members) in clusters {
        let whole = sizes
            .get(&cluster)
            .is_some_and(|&n| n == members.len() as i64);
        if !whole {
            if let Some(canonical) = canonical_of.get(&cluster) {
                members.retain(|m| m != canonical);
            }
        }
        if !members.is_empty() {
            groups.push(members);
        }
    }
    groups.sort_unstable();
    Ok(groups)
}

/// Groups into batches of about [`BATCH`] entries, a cluster's group never split.
fn batches(groups: Vec<Vec<i64>>) -> Vec<Vec<i64>> {
    let mut out: Vec<Vec<i64>> = Vec::new();
    let mut current = Vec::new();
    for g in groups {
        current.extend(g);
        if current.len() >= BATCH {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Takes one batch out, in the write group `txn`: checked again first (a fetch may have listed
/// an entry since the plan was made). Returns the entries taken out and the tombstones left.
fn prune_batch(txn: &mut Txn<'_>, batch: &[i64]) -> Result<(u64, u64), StoreError> {
    let tx = txn.conn();
    let ids = still_going(tx, batch)?;
    if ids.is_empty() {
        return Ok((0, 0));
    }
    let json = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
    let list = tx.id_list("?1");
    // Keys of entries their source listed lately: it may list them again. A key two sources
    // listed is one tombstone (SQLite's REPLACE keeps one of them; PostgreSQL is told which,
    // the latest seen, since an upsert may not touch a row twice).
    let (insert, distinct, upsert) = if tx.is_pg() {
        let upsert = "ORDER BY k.key, es.last_seen DESC, es.source_id
             ON CONFLICT (key) DO UPDATE SET source_id = excluded.source_id, seen = excluded.seen";
        ("INSERT INTO", "DISTINCT ON (k.key)", upsert)
    } else {
        ("INSERT OR REPLACE INTO", "", "")
    };
    let tombstone = format!(
        "{insert} tombstones (key, source_id, seen)
         SELECT {distinct} k.key, es.source_id, es.last_seen
         FROM ({list}) j
         JOIN entry_sources es ON es.entry_id = j.value
         JOIN sources s ON s.id = es.source_id
         JOIN entry_keys k ON k.entry_id = j.value
         WHERE s.active = 1 AND es.last_seen >= s.listed_at - ?2 {upsert}"
    );
    let tombstones = tx.execute(&tombstone, &[&json, &TOMBSTONE_GRACE])? as u64;
    let neighbours = pass_on_pairs(tx, &ids)?;
    let filed: Vec<(i64, String, i64)> = tx.query_map(
        &format!(
            "SELECT entry_id, category, published FROM dedupe_sigs WHERE entry_id IN ({list})"
        ),
        &[&json],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    for (entry, category, published) in filed {
        txn.candidates.remove(&category, published, entry);
    }
    // Everything kept for an entry goes with it (ON DELETE CASCADE).
    let gone = tx.execute(
        &format!("DELETE FROM entries WHERE id IN ({list})"),
        &[&json],
    )? as u64;
    clusters::recluster(tx, &neighbours)?;
    for id in ids {
        txn.index_later(id);
    }
    Ok((gone, tombstones))
}

/// The entries of `batch` that may still go: not listed by an active source since the plan,
/// and not the canonical member of a cluster keeping a member outside the batch.
fn still_going(tx: Conn<'_>, batch: &[i64]) -> Result<Vec<i64>, StoreError> {
    let json = serde_json::to_string(batch).unwrap_or_else(|_| "[]".into());
    let list = tx.id_list("?1");
    tx.query_map(
        &format!(
            "SELECT j.value FROM ({list}) j JOIN entries e ON e.id = j.value
             WHERE NOT EXISTS (SELECT 1 FROM entry_sources es JOIN sources s ON s.id = es.source_id
                               WHERE es.entry_id = e.id AND s.active = 1
                                 AND es.listing = s.listing)
               AND NOT (e.canonical = 1 AND EXISTS (
                   SELECT 1 FROM entries m WHERE m.cluster_id = e.cluster_id
                     AND m.id NOT IN ({list})))"
        ),
        &[&json],
        |r| r.get(0),
    )
}

/// The pairs that joined a member about to go to the rest of its cluster are passed on: its
/// first staying neighbour is paired with each other one (with the pair's rule and score), and
/// whoever noted it as the member it matched notes that neighbour instead. Returns the staying
/// neighbours, whose clusters are worked out again once the batch is gone.
fn pass_on_pairs(tx: Conn<'_>, going: &[i64]) -> Result<Vec<i64>, StoreError> {
    let json = serde_json::to_string(going).unwrap_or_else(|_| "[]".into());
    let pairs = format!(
        "SELECT m, rule, score FROM (
             SELECT b AS m, rule, score FROM dedupe_edges WHERE a = ?1
             UNION ALL SELECT a, rule, score FROM dedupe_edges WHERE b = ?1) AS n
         WHERE m NOT IN ({}) ORDER BY m",
        tx.id_list("?2")
    );
    let mut staying = Vec::new();
    for &id in going {
        let around: Vec<(i64, String, f64)> = tx.query_map(&pairs, &[&id, &json], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        let Some((first, _, _)) = around.first().cloned() else {
            continue;
        };
        for (other, rule, score) in &around[1..] {
            tx.execute(
                "INSERT INTO dedupe_edges (a, b, rule, score) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
                &[&first.min(*other), &first.max(*other), rule, score],
            )?;
        }
        tx.execute(
            "UPDATE cluster_merges SET matched_entry = ?2
             WHERE matched_entry = ?1 AND entry_id != ?2",
            &[&id, &first],
        )?;
        staying.extend(around.into_iter().map(|(m, _, _)| m));
    }
    staying.sort_unstable();
    staying.dedup();
    Ok(staying)
}

/// Drops the tombstones whose source has listed without them for [`TOMBSTONE_GRACE`], or is
/// no longer fetched.
fn sweep_tombstones(conn: Conn<'_>) -> Result<u64, StoreError> {
    Ok(conn.execute(
        "DELETE FROM tombstones WHERE NOT EXISTS (
             SELECT 1 FROM sources s WHERE s.id = tombstones.source_id AND s.active = 1
               AND tombstones.seen >= s.listed_at - ?1)",
        &[&TOMBSTONE_GRACE],
    )? as u64)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{
        at, both, entry, feed, scratch, search_titles, sources, BODY, OTHER,
    };
    use super::*;
    use crate::config::Thresholds;
    use crate::model::{Entry, Scope};

    /// Item `slug` of `source`, published `days` before [`at`]`(0)`.
    fn dated(source: &str, slug: &str, title: &str, days: i64) -> Entry {
        let mut e = entry(source, slug, title, &format!("{title}. {OTHER}"));
        e.published = Some(at(-24 * days));
        e
    }

    /// One fetch of `source` listing `entries`, `hours` after [`at`]`(0)`; near-duplicates
    /// are not looked for (the items of these tests share most of their text).
    fn fetch(store: &Store, source: &str, entries: &[Entry], hours: i64) {
        let alone = Thresholds {
            enabled: false,
            ..Default::default()
        };
        store
            .upsert_entries(source, entries, &alone, at(hours))
            .expect("stored");
    }

    fn prune(store: &Store, extra: &str, hours: i64) -> PruneReport {
        let configured = sources(extra);
        let req = PruneRequest {
            sources: &configured,
            default: Retention::default(),
            now: at(hours),
            dry_run: false,
        };
        store.prune(&req).expect("pruned")
    }

    fn titles(store: &Store, scope: Scope) -> Vec<String> {
        let mut t: Vec<String> = feed(store, scope).into_iter().map(|e| e.title).collect();
        t.sort();
        t
    }

    const TEN_DAYS: &str = "[defaults]\nkeep_days = 10\n";

    /// Listed once, then no more: past `keep_days` it leaves every feed and the search index;
    /// a younger one stays.
    #[test]
    fn entries_past_keep_days_that_their_source_no_longer_lists_go() {
        let s = scratch();
        let old = dated("first", "old", "Harbour ferry timetable", 30);
        let young = dated("first", "young", "Museum late opening", 2);
        fetch(&s.store, "first", &[old, young.clone()], 0);
        // The next list no longer names the old one.
        fetch(&s.store, "first", &[young], 1);
        let dry = s.store.prune(&PruneRequest {
            sources: &sources(TEN_DAYS),
            default: Retention::default(),
            now: at(2),
            dry_run: true,
        });
        let dry = dry.expect("dry run");
        assert_eq!(
            (dry.entries, dry.per_source.clone()),
            (1, vec![("first".into(), 1)])
        );
        assert_eq!(
            feed(&s.store, Scope::All).len(),
            2,
            "a dry run takes nothing"
        );
        let report = prune(&s.store, TEN_DAYS, 2);
        assert_eq!(report.entries, 1);
        assert_eq!(titles(&s.store, Scope::All), ["Museum late opening"]);
        assert_eq!(
            titles(&s.store, Scope::Source("first".into())),
            ["Museum late opening"]
        );
        s.store.wait_for_search_index().expect("indexed");
        assert!(search_titles(&s.store, "ferry").is_empty());
        assert_eq!(search_titles(&s.store, "museum"), ["Museum late opening"]);
        let counts = s.store.source_statuses().expect("statuses");
        assert_eq!(counts[0].entry_count, 1);
        let s = s.reopen();
        s.store.wait_for_search_index().expect("indexed");
        assert!(search_titles(&s.store, "ferry").is_empty());
    }

    /// An entry the latest list still names is kept whatever its age, and listing it again
    /// does not store it twice.
    #[test]
    fn an_entry_still_listed_outlives_keep_days_and_is_not_stored_twice() {
        for s in both() {
            let evergreen = dated("first", "faq", "How to renew a library card", 400);
            fetch(&s.store, "first", std::slice::from_ref(&evergreen), 0);
            assert_eq!(prune(&s.store, TEN_DAYS, 1).entries, 0);
            fetch(&s.store, "first", std::slice::from_ref(&evergreen), 48);
            assert_eq!(prune(&s.store, TEN_DAYS, 49).entries, 0);
            assert_eq!(
                titles(&s.store, Scope::All),
                ["How to renew a library card"]
            );
        }
    }

    /// `keep_entries` counts per source: each keeps its newest, whatever the other has.
    #[test]
    fn keep_entries_holds_per_source() {
        for s in both() {
            let firsts: Vec<Entry> = (0..5)
                .map(|i| dated("first", &format!("f{i}"), &format!("First item {i}"), i))
                .collect();
            let seconds: Vec<Entry> = (0..3)
                .map(|i| dated("second", &format!("s{i}"), &format!("Second item {i}"), i))
                .collect();
            fetch(&s.store, "first", &firsts, 0);
            fetch(&s.store, "second", &seconds, 0);
            // Both lists move on to one new item each.
            fetch(
                &s.store,
                "first",
                &[dated("first", "new", "First news", 0)],
                1,
            );
            fetch(
                &s.store,
                "second",
                &[dated("second", "new", "Second news", 0)],
                1,
            );
            let report = prune(&s.store, "[defaults]\nkeep_entries = 2\n", 2);
            assert_eq!(report.entries, 4 + 2);
            assert_eq!(
                titles(&s.store, Scope::Source("first".into())),
                ["First item 0", "First news"]
            );
            assert_eq!(
                titles(&s.store, Scope::Source("second".into())),
                ["Second item 0", "Second news"]
            );
        }
    }

    /// A cluster keeps the member merged feeds show while another member stays; a member that
    /// joined the cluster through a pruned one stays in it.
    #[test]
    fn a_cluster_keeps_its_canonical_member_while_any_member_stays() {
        for s in both() {
            let story = |source: &str, title: &str| {
                let mut e = entry(source, "park", title, BODY);
                e.published = Some(at(-24 * 30));
                e
            };
            let copies = [
                (
                    "first",
                    story("first", "Council approves riverside park plan"),
                ),
                ("second", story("second", "Riverside park plan approved")),
                (
                    "third",
                    story("third", "Park plan for the riverside approved"),
                ),
            ];
            for (source, copy) in &copies {
                s.store
                    .upsert_entries(
                        source,
                        std::slice::from_ref(copy),
                        &Thresholds::default(),
                        at(-700),
                    )
                    .expect("stored");
            }
            // The third lists its copy to this day.
            fetch(&s.store, "third", std::slice::from_ref(&copies[2].1), 0);
            let merged = feed(&s.store, Scope::All);
            assert_eq!(merged.len(), 1, "one story");
            assert_eq!(merged[0].sources.len(), 3);
            // The first two have moved on; the third still lists its copy.
            fetch(&s.store, "first", &[], 1);
            fetch(&s.store, "second", &[], 1);
            let report = prune(&s.store, TEN_DAYS, 2);
            assert_eq!(
                report.entries, 1,
                "the second's copy goes, the canonical first stays"
            );
            let merged = feed(&s.store, Scope::All);
            assert_eq!(merged.len(), 1);
            assert_eq!(merged[0].title, "Council approves riverside park plan");
            let names: Vec<&str> = merged[0]
                .sources
                .iter()
                .map(|x| x.source_id.as_str())
                .collect();
            assert_eq!(names, ["first", "third"]);
            assert!(feed(&s.store, Scope::Source("second".into())).is_empty());
            // Once the third lets go too, the whole story goes.
            fetch(&s.store, "third", &[], 3);
            assert_eq!(prune(&s.store, TEN_DAYS, 4).entries, 2);
            assert!(feed(&s.store, Scope::All).is_empty());
        }
    }

    /// Pruned while its source may still list it (a list that comes and goes): listed again,
    /// it is not news. Its tombstone goes once the source has listed without it long enough.
    #[test]
    fn a_pruned_entry_listed_again_does_not_come_back() {
        for s in both() {
            let old = dated("first", "old", "Harbour ferry timetable", 30);
            let other = dated("first", "other", "Museum late opening", 1);
            fetch(&s.store, "first", std::slice::from_ref(&old), 0);
            fetch(&s.store, "first", std::slice::from_ref(&other), 1);
            let report = prune(&s.store, TEN_DAYS, 2);
            assert_eq!((report.entries, report.tombstones_written), (1, 2));
            fetch(&s.store, "first", &[old.clone(), other.clone()], 3);
            assert_eq!(titles(&s.store, Scope::All), ["Museum late opening"]);
            // A week and more of lists without it: the tombstone goes, and with it the memory.
            fetch(&s.store, "first", std::slice::from_ref(&other), 3 + 24 * 8);
            let report = prune(&s.store, TEN_DAYS, 4 + 24 * 8);
            assert_eq!(report.tombstones_dropped, 2);
        }
    }

    /// A new store gives freed pages back; an old one is converted once, at open.
    #[test]
    fn the_file_shrinks_after_a_prune() {
        let s = scratch();
        let mode: i64 = s
            .store
            .reader()
            .expect("reader")
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, 2, "incremental");
        let long = OTHER.repeat(20);
        let many: Vec<Entry> = (0..400)
            .map(|i| {
                let mut e = entry("first", &format!("e{i}"), &format!("Item {i}"), &long);
                e.published = Some(at(-24 * 30));
                e
            })
            .collect();
        fetch(&s.store, "first", &many, 0);
        fetch(&s.store, "first", &[], 1);
        // The file's size once the WAL is copied back into it.
        let size = || {
            s.store
                .writer()
                .expect("writer")
                .lite()
                .expect("sqlite")
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .expect("checkpoint");
            std::fs::metadata(&s.path).expect("size").len()
        };
        let before = size();
        let report = prune(&s.store, TEN_DAYS, 2);
        assert_eq!(report.entries, 400);
        assert!(report.bytes_freed > 0);
        let after = size();
        assert!(after * 2 < before, "{before} → {after} bytes");
    }

    /// A prune of most entries leaves the search index compacted: what remains is found, what
    /// went is not, and the index holds exactly the entries left.
    #[test]
    fn the_search_index_is_compacted_after_a_large_prune() {
        let s = scratch();
        let many: Vec<Entry> = (0..30)
            .map(|i| {
                dated(
                    "first",
                    &format!("e{i}"),
                    &format!("Report number {i}"),
                    30 + i,
                )
            })
            .collect();
        fetch(&s.store, "first", &many, 0);
        let young = dated("first", "young", "Museum late opening", 1);
        fetch(&s.store, "first", std::slice::from_ref(&young), 1);
        s.store.wait_for_search_index().expect("indexed");
        // FTS5's own rows: a segment's pages, and what deletions leave in them until a merge.
        let data_rows = || -> i64 {
            s.store
                .reader()
                .expect("reader")
                .query_row("SELECT COUNT(*) FROM search.fts_data", [], |r| r.get(0))
                .expect("rows")
        };
        let before = data_rows();
        assert_eq!(prune(&s.store, TEN_DAYS, 2).entries, 30);
        s.store.wait_for_search_index().expect("indexed");
        assert!(data_rows() < before, "{before} → {} rows", data_rows());
        let free: i64 = s
            .store
            .reader()
            .expect("reader")
            .query_row("PRAGMA search.freelist_count", [], |r| r.get(0))
            .expect("free pages");
        let mode: i64 = s
            .store
            .reader()
            .expect("reader")
            .query_row("PRAGMA search.auto_vacuum", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(
            (free, mode),
            (0, 2),
            "the compacted index gave its pages back"
        );
        crate::store::verify_search_index(&s.path).expect("the index is whole and exact");
        let rows: i64 = s
            .store
            .reader()
            .expect("reader")
            .query_row("SELECT COUNT(*) FROM search.fts_docsize", [], |r| r.get(0))
            .expect("rows");
        assert_eq!(rows, 1);
        assert_eq!(search_titles(&s.store, "museum"), ["Museum late opening"]);
        assert!(search_titles(&s.store, "report").is_empty());
    }

    #[test]
    fn a_store_made_without_incremental_vacuum_is_converted_at_open() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
                .expect("an old file");
        }
        drop(Store::open(&path));
        let conn = Connection::open(&path).expect("open");
        let mode: i64 = conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, 2);
        let kept: i64 = conn
            .query_row("SELECT x FROM t", [], |r| r.get(0))
            .expect("its rows kept");
        assert_eq!(kept, 1);
    }
}
