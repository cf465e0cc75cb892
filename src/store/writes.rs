//! The write path: group commit and the context a write group's steps share.
//!
//! Fetches hand their outcome to [`Store::store_fetch`]; whoever holds the writer stores every
//! waiting fetch in one transaction. A commit per fetch rewrote the same index pages (and
//! flushed the search index) once per source; a group does that once. The steps of a group
//! (entries, clusters, search) take a [`Txn`] and a [`Batch`] instead of the dozen values
//! they would otherwise pass each other.

use std::collections::HashMap;
use std::sync::MutexGuard;

use super::packed::Packs;
use super::sql::Conn;
use super::{entries, search, sources, Engine, FetchRecord, Store, StoreError, WriteConn, Writer};
use crate::config::Thresholds;
use crate::dedupe::index::CandidateIndex;
use crate::health::Seen;
use crate::model::{Entry, Validators};
use chrono::{DateTime, Utc};

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

/// One fetch's outcome, handed to [`Store::store_fetch`].
#[derive(Debug, Clone)]
pub struct StoreFetch {
    pub source_id: String,
    pub entries: Vec<Entry>,
    pub thresholds: Thresholds,
    pub now: DateTime<Utc>,
    pub validators: Validators,
    /// What the fetch saw (`health::Seen`), recorded with it.
    pub seen: Seen,
}

/// Fetches waiting for the writer, and the results of those a group stored for them.
#[derive(Default)]
pub(super) struct WriteQueue {
    next: u64,
    pending: Vec<(u64, StoreFetch, Vec<Packs>)>,
    done: HashMap<u64, Result<UpsertCounts, StoreError>>,
}

/// One write group's transaction and what every step of it shares: the writer's candidate
/// index (kept equal to `dedupe_sigs`: every insert and removal goes to both), and the entries
/// to queue for the search index once the whole group is written.
pub(super) struct Txn<'t> {
    c: Conn<'t>,
    pub(super) candidates: &'t mut CandidateIndex,
    searchable: Vec<i64>,
}

impl<'t> Txn<'t> {
    fn new(c: Conn<'t>, candidates: &'t mut CandidateIndex) -> Self {
        Txn {
            c,
            candidates,
            searchable: Vec::new(),
        }
    }

    /// The group's transaction.
    pub(super) fn conn(&self) -> Conn<'t> {
        self.c
    }

    /// Has `entry_id` (new, or with a new text) queued for the search index.
    pub(super) fn index_later(&mut self, entry_id: i64) {
        self.searchable.push(entry_id);
    }

    /// Queues the group's entries for the index; `indexed`: how far the index has come.
    fn finish(mut self, indexed: i64) -> Result<bool, StoreError> {
        self.searchable.sort_unstable();
        self.searchable.dedup();
        let Conn::Lite(tx) = self.c else {
            // PostgreSQL's search is not brought over yet (issue 21): nothing queues for it.
            return Ok(false);
        };
        search::queue_for_index(tx, &self.searchable, indexed)?;
        Ok(!self.searchable.is_empty())
    }
}

/// One fetch's entries as they are written: whose they are, when, and what they did.
pub(super) struct Batch<'a> {
    pub(super) source_id: &'a str,
    /// The source's category: near-duplicates are looked for within it.
    pub(super) category: String,
    pub(super) thresholds: &'a Thresholds,
    /// When the fetch happened: the first-seen time, and the date of entries without one.
    pub(super) now: DateTime<Utc>,
    /// The source's count of stored lists, this one included (see `store::retention`).
    pub(super) listing: i64,
    pub(super) counts: UpsertCounts,
}

impl<'a> Batch<'a> {
    pub(super) fn new(
        c: Conn<'_>,
        source_id: &'a str,
        thresholds: &'a Thresholds,
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let category: String = c
            .query_opt(
                "SELECT category FROM sources WHERE id = ?1",
                &[&source_id],
                |r| r.get(0),
            )?
            .unwrap_or_default();
        Ok(Batch {
            source_id,
            category,
            thresholds,
            now,
            listing: 0,
            counts: UpsertCounts::default(),
        })
    }

    pub(super) fn now_ts(&self) -> i64 {
        self.now.timestamp()
    }
}

/// Runs `work` as one write group: committed whole, with its entries queued for search, or
/// rolled back whole. The candidate index follows: trimmed after a commit, dropped after a
/// rollback (it would hold entries the database does not).
pub(super) fn write_group<T>(
    engine: &Engine,
    writer: &mut Writer,
    work: impl FnOnce(&mut Txn<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let result = match (&writer.conn, engine) {
        (WriteConn::Lite(_), _) => lite_group(writer, work),
        (WriteConn::Pg, Engine::Pg(pg)) => pg_group(pg, writer, work),
        (WriteConn::Pg, Engine::Lite { .. }) => Err(StoreError::Poisoned),
    };
    writer.end(&result);
    result
}

fn lite_group<T>(
    writer: &mut Writer,
    work: impl FnOnce(&mut Txn<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let search = writer.search.clone();
    let (tx, candidates) = writer.begin()?;
    let mut txn = Txn::new(Conn::Lite(&tx), candidates);
    let done = work(&mut txn)?;
    let queued = txn.finish(search.indexed())?;
    tx.commit()?;
    if queued {
        search.queued();
    }
    Ok(done)
}

/// The key of the advisory lock every PostgreSQL write group holds ("tribwrit" in ASCII).
const PG_WRITE_LOCK: i64 = 0x7472_6962_7772_6974;

/// Takes the lock of PostgreSQL's write groups for the transaction `c` is in.
pub(super) fn lock_pg_writes(c: Conn<'_>) -> Result<(), StoreError> {
    c.execute("SELECT pg_advisory_xact_lock(?1)", &[&PG_WRITE_LOCK])?;
    Ok(())
}

/// A write group on PostgreSQL: one lock for every instance's groups, so that matching and
/// placing an entry sees every entry stored before it, as SQLite's one writer does (two
/// instances storing one story at once give one entry, one cluster). It is the only lock a
/// group waits for, and it is taken first, so groups cannot deadlock over it. Under it the
/// write sequence tells whether another instance wrote since this one's last group: the
/// candidate index is then dropped (reloaded as needed); the group moves the sequence, and
/// its NOTIFY reaches the other instances at commit.
fn pg_group<T>(
    pg: &super::pg::Pg,
    writer: &mut Writer,
    work: impl FnOnce(&mut Txn<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let session = pg.session()?;
    session.transaction(|c| {
        lock_pg_writes(c)?;
        let seq: i64 = c.query_one("SELECT seq FROM write_sequence", &[], |r| r.get(0))?;
        if seq != writer.data_version {
            writer.candidates.clear();
        }
        writer.candidates.begin();
        let mut txn = Txn::new(c, &mut writer.candidates);
        let done = work(&mut txn)?;
        txn.finish(0)?;
        writer.data_version = super::pg::note_write_in(c)? as i64;
        Ok(done)
    })
}

impl Store {
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
        write_group(&self.engine, &mut writer, |txn| {
            let mut batch = Batch::new(txn.conn(), source_id, thresholds, now)?;
            entries::upsert_in(txn, &mut batch, entries, None)?;
            Ok(batch.counts)
        })
    }

    /// Stores one fetch's outcome (its entries, as [`Store::upsert_entries`] does, and the
    /// record on the source), committed together with whatever other fetches are waiting.
    ///
    /// Group commit: the caller that gets the writer runs every queued fetch in one
    /// transaction, and those callers find their result ready when they get the writer in
    /// turn. A group that fails is rolled back whole and each of its fetches gets the error:
    /// stored entries are never lost, and every source in it simply tries again.
    pub fn store_fetch(&self, fetch: StoreFetch) -> Result<UpsertCounts, StoreError> {
        // Packed here, on the fetch's thread, while the writer may be storing other fetches.
        let packs: Vec<Packs> = fetch.entries.iter().map(Packs::of).collect();
        let ticket = {
            let mut q = self.queue()?;
            q.next += 1;
            let ticket = q.next;
            q.pending.push((ticket, fetch, packs));
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
        let results = run_group(&self.engine, &mut writer, &group);
        // The others' results are handed over before the writer is let go: whoever takes it
        // next looks for its result first.
        let mut q = self.queue()?;
        let mut mine = Err(StoreError::Poisoned);
        for ((t, _, _), result) in group.iter().zip(results) {
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

/// Runs a group of fetches in one transaction; one result per fetch, in order.
fn run_group(
    engine: &Engine,
    writer: &mut Writer,
    group: &[(u64, StoreFetch, Vec<Packs>)],
) -> Vec<Result<UpsertCounts, StoreError>> {
    let result = write_group(engine, writer, |txn| {
        let mut counts = Vec::with_capacity(group.len());
        for (_, f, packs) in group {
            let mut batch = Batch::new(txn.conn(), &f.source_id, &f.thresholds, f.now)?;
            entries::upsert_in(txn, &mut batch, &f.entries, Some(packs))?;
            counts.push(batch.counts);
            sources::record_fetch_in(
                txn.conn(),
                &f.source_id,
                &FetchRecord {
                    at: f.now,
                    status: "ok",
                    error: None,
                    validators: Some(&f.validators),
                    seen: Some(&f.seen),
                },
            )?;
        }
        Ok(counts)
    });
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

#[cfg(test)]
mod tests {
    use super::super::testing::{at, both, entry, scratch, BODY, OTHER};
    use super::*;

    fn fetch(source: &str, entries: Vec<Entry>) -> StoreFetch {
        StoreFetch {
            source_id: source.into(),
            entries,
            thresholds: Thresholds::default(),
            now: at(0),
            validators: Validators {
                etag: Some(format!("\"{source}\"")),
                last_modified: None,
            },
            seen: Seen::default(),
        }
    }

    #[test]
    fn a_fetch_is_stored_with_its_record_on_the_source() {
        for s in both() {
            let counts = s
                .store
                .store_fetch(fetch("first", vec![entry("first", "park", "Park", BODY)]))
                .expect("stored");
            assert_eq!(counts.new, 1);
            let state = s.store.source_state("first").expect("state");
            assert_eq!(state.validators.etag.as_deref(), Some("\"first\""));
            assert_eq!(state.last_fetch_at, Some(at(0)));
            // The same item again is the same entry.
            let again = s
                .store
                .store_fetch(fetch("first", vec![entry("first", "park", "Park", BODY)]))
                .expect("stored");
            assert_eq!((again.new, again.unchanged), (0, 1));
        }
    }

    /// One fetch of the group fails (its source is unknown to the database): none of the
    /// group is kept, each fetch is told why, and the index forgets what it was given.
    #[test]
    fn a_failed_group_is_rolled_back_whole_and_every_fetch_gets_the_error() {
        let s = scratch();
        let group = vec![
            (
                1,
                fetch("first", vec![entry("first", "park", "Park", BODY)]),
                Vec::new(),
            ),
            (
                2,
                fetch("nowhere", vec![entry("nowhere", "x", "Library", OTHER)]),
                Vec::new(),
            ),
        ];
        let results = {
            let mut writer = s.store.writer().expect("writer");
            let results = run_group(&s.store.engine, &mut writer, &group);
            assert!(writer.candidates.is_empty(), "nothing the database lacks");
            results
        };
        assert_eq!(results.len(), 2);
        assert!(results
            .iter()
            .all(|r| matches!(r, Err(StoreError::Group(cause)) if cause.contains("FOREIGN KEY"))));
        let statuses = s.store.source_statuses().expect("statuses");
        assert!(statuses.iter().all(|x| x.entry_count == 0));
        assert_eq!(
            s.store.source_state("first").expect("state").last_fetch_at,
            None
        );
    }

    /// Fetches that wait for the writer together are stored by whoever gets it: each caller
    /// gets its own fetch's counts.
    #[test]
    fn concurrent_fetches_each_get_their_own_result() {
        for s in both() {
            concurrent_fetches(&s);
        }
    }

    fn concurrent_fetches(s: &super::super::testing::Scratch) {
        let sizes = [("first", 1), ("second", 2), ("third", 3)];
        std::thread::scope(|scope| {
            let store = &s.store;
            let handles: Vec<_> = sizes
                .iter()
                .map(|&(source, n)| {
                    scope.spawn(move || {
                        let entries = (0..n)
                            .map(|i| {
                                let title = format!("{source} item {i}");
                                entry(source, &i.to_string(), &title, &title)
                            })
                            .collect();
                        (n, store.store_fetch(fetch(source, entries)))
                    })
                })
                .collect();
            for h in handles {
                let (n, result) = h.join().expect("thread");
                assert_eq!(result.expect("stored").new, n);
            }
        });
        let statuses = s.store.source_statuses().expect("statuses");
        let counts: Vec<u64> = statuses.iter().map(|x| x.entry_count).collect();
        assert_eq!(counts, [1, 2, 3]);
    }
}
