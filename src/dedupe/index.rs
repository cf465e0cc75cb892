//! Candidate keys of stored entries, in memory, by category and day of publication.
//!
//! Placing an entry asks, for each of its ~20 candidate keys, which entries of its category
//! published within the window share it. Asked of an SQLite index, that was ~20 lookups and
//! ~20 inserts into a B-tree of random keys per entry; each insert dirtied a page of its own,
//! and those pages were most of what a commit wrote. Here a lookup is a hash probe.
//!
//! The store keeps one row of keys per entry (`dedupe_sigs`) and loads the days a placement
//! needs. For every day it holds, this index is exactly those rows: the store applies each
//! insert, removal and prune to both, and clears the index when a transaction rolls back or
//! another connection wrote. So the decisions are the ones SQLite would give.
//!
//! Pure: no I/O, no clock.

use std::collections::HashMap;

use super::Figures;

const DAY: i64 = 86_400;

/// The keys of the days loaded so far, bounded by their size in bytes (see [`Self::trim`]).
pub struct CandidateIndex {
    categories: HashMap<String, HashMap<i64, Partition>>,
    members: usize,
    /// What the partitions hold, in bytes (as [`Partition::bytes`] counts them).
    bytes: usize,
    limit: usize,
    /// Advanced by [`Self::begin`]; partitions used since then are not evicted.
    tick: u64,
}

/// One category's entries published on one UTC day.
#[derive(Default)]
struct Partition {
    used: u64,
    members: Vec<Member>,
    keys: KeyTable,
    /// The members' figures, on the heap.
    figure_bytes: usize,
    bytes: usize,
}

/// Key → members that have it, as one open-addressing table: a key and its member side by
/// side in two arrays (12 bytes a pair, at most 7/8 full), a key that several members have
/// stored once per member in the same probe run. Most of an entry's memory is its ~20 keys:
/// a hash map of chains took about three times this.
#[derive(Default)]
struct KeyTable {
    keys: Vec<i64>,
    /// `EMPTY` marks a free slot.
    owners: Vec<u32>,
    len: usize,
}

const EMPTY: u32 = u32::MAX;

/// Where `key` starts probing: Fibonacci hashing spreads keys whatever bits they vary in.
fn slot(key: i64, mask: usize) -> usize {
    ((key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask
}

impl KeyTable {
    fn insert(&mut self, key: i64, owner: u32) {
        if (self.len + 1) * 8 > self.owners.len() * 7 {
            self.grow();
        }
        let mask = self.owners.len() - 1;
        let mut at = slot(key, mask);
        while self.owners[at] != EMPTY {
            at = (at + 1) & mask;
        }
        self.keys[at] = key;
        self.owners[at] = owner;
        self.len += 1;
    }

    fn grow(&mut self) {
        let size = (self.owners.len() * 2).max(64);
        let keys = std::mem::replace(&mut self.keys, vec![0; size]);
        let owners = std::mem::replace(&mut self.owners, vec![EMPTY; size]);
        self.len = 0;
        for (key, owner) in keys.into_iter().zip(owners) {
            if owner != EMPTY {
                self.insert(key, owner);
            }
        }
    }

    /// The members that have `key`.
    fn get(&self, key: i64) -> impl Iterator<Item = u32> + '_ {
        let mask = self.owners.len().wrapping_sub(1);
        let mut at = if self.owners.is_empty() {
            None
        } else {
            Some(slot(key, mask))
        };
        std::iter::from_fn(move || loop {
            let i = at?;
            let owner = self.owners[i];
            if owner == EMPTY {
                at = None;
                return None;
            }
            at = Some((i + 1) & mask);
            if self.keys[i] == key {
                return Some(owner);
            }
        })
    }

    fn bytes(&self) -> usize {
        self.keys.capacity() * std::mem::size_of::<i64>()
            + self.owners.capacity() * std::mem::size_of::<u32>()
    }
}

struct Member {
    entry: i64,
    published: i64,
    seen: i64,
    gone: bool,
    /// None for entries stored before figures were (they are compared on their text).
    figures: Option<Figures>,
}

/// A stored entry's keys and figures, as the store loads them.
pub struct Signature {
    pub entry: i64,
    pub published: i64,
    pub seen: i64,
    pub keys: Vec<i64>,
    pub figures: Option<Figures>,
}

/// An entry that shares a key, with its figures when they are known.
pub struct Hit<'a> {
    pub entry: i64,
    pub figures: Option<&'a Figures>,
}

impl CandidateIndex {
    /// An empty index that keeps about `limit` bytes once a group of writes is done.
    pub fn new(limit: usize) -> Self {
        CandidateIndex {
            categories: HashMap::new(),
            members: 0,
            bytes: 0,
            limit,
            tick: 0,
        }
    }

    /// Entries held (including removed ones not yet evicted).
    pub fn len(&self) -> usize {
        self.members
    }

    pub fn is_empty(&self) -> bool {
        self.members == 0
    }

    /// Memory the held days take, in bytes (what [`Self::trim`] bounds).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Changes the bound [`Self::trim`] keeps to.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Starts a group of writes: what it uses stays until the next group.
    pub fn begin(&mut self) {
        self.tick += 1;
    }

    pub fn clear(&mut self) {
        self.categories.clear();
        self.members = 0;
        self.bytes = 0;
    }

    /// The days (as `[start, end]` second ranges) of `[from, to]` not held for `category`.
    pub fn missing(&self, category: &str, from: i64, to: i64) -> Vec<(i64, i64)> {
        let held = self.categories.get(category);
        days(from, to)
            .filter(|d| !held.is_some_and(|parts| parts.contains_key(d)))
            .map(|d| (d * DAY, d * DAY + DAY - 1))
            .collect()
    }

    /// Holds the day starting at `day_start`: `rows` must be every stored signature of
    /// `category` published that day.
    pub fn load(&mut self, category: &str, day_start: i64, rows: Vec<Signature>) {
        let day = day_start.div_euclid(DAY);
        let part = Partition::loaded(self.tick, rows);
        self.members += part.members.len();
        self.bytes += part.bytes;
        if let Some(old) = self
            .categories
            .entry(category.to_string())
            .or_default()
            .insert(day, part)
        {
            self.members -= old.members.len();
            self.bytes -= old.bytes;
        }
    }

    /// Marks the days of `[from, to]` as used by the current group (see [`Self::trim`]).
    pub fn touch(&mut self, category: &str, from: i64, to: i64) {
        if let Some(parts) = self.categories.get_mut(category) {
            for day in days(from, to) {
                if let Some(part) = parts.get_mut(&day) {
                    part.used = self.tick;
                }
            }
        }
    }

    /// The entries of `category` published in `[from, to]` (other than `exclude`) that have
    /// `key`, or None when there are more than `cap` of them. Every day of the range must be
    /// held (see [`Self::missing`]).
    pub fn lookup(
        &self,
        category: &str,
        from: i64,
        to: i64,
        key: i64,
        exclude: i64,
        cap: usize,
    ) -> Option<Vec<Hit<'_>>> {
        let mut found = Vec::new();
        let Some(parts) = self.categories.get(category) else {
            return Some(found);
        };
        for day in days(from, to) {
            let Some(part) = parts.get(&day) else {
                continue;
            };
            for member in part.keys.get(key) {
                let m = &part.members[member as usize];
                if !m.gone && m.entry != exclude && (from..=to).contains(&m.published) {
                    found.push(Hit {
                        entry: m.entry,
                        figures: m.figures.as_ref(),
                    });
                    if found.len() > cap {
                        return None;
                    }
                }
            }
        }
        Some(found)
    }

    /// Adds an entry, if its day is held (otherwise loading the day will find it).
    pub fn insert(&mut self, category: &str, sig: Signature) {
        let day = sig.published.div_euclid(DAY);
        if let Some(part) = self
            .categories
            .get_mut(category)
            .and_then(|parts| parts.get_mut(&day))
        {
            let before = part.bytes;
            part.add(sig);
            self.members += 1;
            self.bytes = self.bytes - before + part.bytes;
        }
    }

    /// Forgets the keys of an entry of `category` published at `published`.
    pub fn remove(&mut self, category: &str, published: i64, entry: i64) {
        let day = published.div_euclid(DAY);
        if let Some(part) = self
            .categories
            .get_mut(category)
            .and_then(|parts| parts.get_mut(&day))
        {
            for m in part.members.iter_mut().filter(|m| m.entry == entry) {
                m.gone = true;
            }
        }
    }

    /// Forgets the entries of `category` both published and seen before `horizon`, as the
    /// store prunes its rows.
    pub fn prune(&mut self, category: &str, horizon: i64) {
        let last_day = horizon.div_euclid(DAY);
        if let Some(parts) = self.categories.get_mut(category) {
            for (_, part) in parts.iter_mut().filter(|(d, _)| **d <= last_day) {
                for m in part.members.iter_mut() {
                    if m.published < horizon && m.seen < horizon {
                        m.gone = true;
                    }
                }
            }
        }
    }

    /// Evicts the days least recently used until at most `limit` bytes are held, keeping
    /// those the current group used.
    pub fn trim(&mut self) {
        if self.bytes <= self.limit {
            return;
        }
        let mut by_age: Vec<(u64, String, i64)> = self
            .categories
            .iter()
            .flat_map(|(c, parts)| {
                parts
                    .iter()
                    .filter(|(_, p)| p.used < self.tick)
                    .map(move |(d, p)| (p.used, c.clone(), *d))
            })
            .collect();
        by_age.sort_unstable_by_key(|(used, _, _)| *used);
        for (_, category, day) in by_age {
            if self.bytes <= self.limit {
                break;
            }
            if let Some(parts) = self.categories.get_mut(&category) {
                if let Some(part) = parts.remove(&day) {
                    self.members -= part.members.len();
                    self.bytes -= part.bytes;
                }
                if parts.is_empty() {
                    self.categories.remove(&category);
                }
            }
        }
    }
}

impl Partition {
    fn loaded(used: u64, rows: Vec<Signature>) -> Partition {
        let mut part = Partition {
            used,
            ..Partition::default()
        };
        for row in rows {
            part.add(row);
        }
        part.members.shrink_to_fit();
        part.count_bytes();
        part
    }

    fn add(&mut self, sig: Signature) {
        let member = self.members.len() as u32;
        self.figure_bytes += sig.figures.as_ref().map_or(0, |f| f.lists.len());
        self.members.push(Member {
            entry: sig.entry,
            published: sig.published,
            seen: sig.seen,
            gone: false,
            figures: sig.figures,
        });
        for key in unique(sig.keys) {
            self.keys.insert(key, member);
        }
        self.count_bytes();
    }

    /// What the partition takes in memory: its arrays as allocated and each member's figures
    /// on the heap.
    fn count_bytes(&mut self) {
        self.bytes = self.members.capacity() * std::mem::size_of::<Member>()
            + self.figure_bytes
            + self.keys.bytes();
    }
}

/// An entry's keys, each once.
fn unique(mut keys: Vec<i64>) -> Vec<i64> {
    keys.sort_unstable();
    keys.dedup();
    keys
}

fn days(from: i64, to: i64) -> impl Iterator<Item = i64> {
    from.div_euclid(DAY)..=to.div_euclid(DAY)
}

/// Keys as stored: 8 bytes each, big-endian.
pub fn encode_keys(keys: &[i64]) -> Vec<u8> {
    keys.iter().flat_map(|k| k.to_be_bytes()).collect()
}

pub fn decode_keys(blob: &[u8]) -> Vec<i64> {
    blob.chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            i64::from_be_bytes(b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(entry: i64, published: i64, keys: &[i64]) -> Signature {
        seen(entry, published, published, keys)
    }

    fn seen(entry: i64, published: i64, seen: i64, keys: &[i64]) -> Signature {
        Signature {
            entry,
            published,
            seen,
            keys: keys.to_vec(),
            figures: None,
        }
    }

    /// The entries a lookup found.
    fn ids(hits: Option<Vec<Hit>>) -> Option<Vec<i64>> {
        hits.map(|h| h.iter().map(|h| h.entry).collect())
    }

    fn loaded(rows: Vec<(&str, Signature)>, from: i64, to: i64) -> CandidateIndex {
        let mut index = CandidateIndex::new(1 << 20);
        for category in ["news", "tech"] {
            for (start, _) in index.missing(category, from, to) {
                let day: Vec<Signature> = rows
                    .iter()
                    .filter(|(c, s)| *c == category && s.published.div_euclid(DAY) == start / DAY)
                    .map(|(_, s)| sig(s.entry, s.published, &s.keys))
                    .collect();
                index.load(category, start, day);
            }
        }
        index
    }

    #[test]
    fn lookup_honours_category_window_exclusion_and_cap() {
        let t = 10 * DAY;
        let index = loaded(
            vec![
                ("news", sig(1, t, &[7, 8])),
                ("news", sig(2, t + DAY, &[7])),
                ("news", sig(3, t + 5 * DAY, &[7])),
                ("tech", sig(4, t, &[7])),
            ],
            t - 6 * DAY,
            t + 6 * DAY,
        );
        let mut got = ids(index.lookup("news", t - DAY, t + 2 * DAY, 7, 0, 8)).unwrap();
        got.sort();
        assert_eq!(got, vec![1, 2], "window and category");
        assert_eq!(
            ids(index.lookup("news", t - DAY, t + 2 * DAY, 7, 2, 8)),
            Some(vec![1])
        );
        assert_eq!(
            ids(index.lookup("news", t - DAY, t + 6 * DAY, 7, 0, 2)),
            None,
            "over cap"
        );
        assert_eq!(
            ids(index.lookup("news", t - DAY, t + 6 * DAY, 99, 0, 2)),
            Some(vec![])
        );
    }

    #[test]
    fn inserts_reach_held_days_only_and_removal_and_prune_hide_entries() {
        let t = 10 * DAY;
        let mut index = loaded(vec![], t, t);
        index.insert("news", seen(1, t + 5, t + 5, &[3, 3]));
        index.insert("news", seen(2, t + 3 * DAY, t, &[3]));
        assert_eq!(index.len(), 1, "the day of entry 2 is not held");
        assert_eq!(
            ids(index.lookup("news", t, t + DAY - 1, 3, 0, 8)),
            Some(vec![1]),
            "a repeated key counts once"
        );
        index.remove("news", t + 5, 1);
        assert_eq!(
            ids(index.lookup("news", t, t + DAY - 1, 3, 0, 8)),
            Some(vec![])
        );

        index.insert("news", seen(5, t + 10, t + 10, &[4]));
        index.insert("news", seen(6, t + 20, t + 3 * DAY, &[4]));
        index.prune("news", t + 2 * DAY);
        assert_eq!(
            ids(index.lookup("news", t, t + DAY - 1, 4, 0, 8)),
            Some(vec![6]),
            "an entry seen recently stays"
        );
    }

    #[test]
    fn trim_evicts_least_recently_used_days_but_not_the_current_group() {
        let t = 10 * DAY;
        // No room at all: only what the current group uses stays.
        let mut index = CandidateIndex::new(0);
        index.begin();
        index.load("news", t, vec![sig(1, t, &[1]), sig(2, t, &[1])]);
        index.begin();
        index.load("news", t + DAY, vec![sig(3, t + DAY, &[1])]);
        index.trim();
        assert_eq!(index.len(), 1);
        assert_eq!(index.missing("news", t, t + DAY), vec![(t, t + DAY - 1)]);
        index.load("news", t + 2 * DAY, vec![sig(4, t + 2 * DAY, &[1])]);
        index.load("news", t + 3 * DAY, vec![sig(5, t + 3 * DAY, &[1])]);
        index.trim();
        assert_eq!(index.len(), 3, "days the current group uses stay");
    }

    #[test]
    fn the_key_table_finds_every_member_of_a_key_across_growth() {
        let mut table = KeyTable::default();
        let mut want: HashMap<i64, Vec<u32>> = HashMap::new();
        // Keys that share their low and high bits, and keys shared by several members.
        for member in 0..5_000u32 {
            for key in [i64::from(member) << 40, i64::from(member % 97), -7] {
                table.insert(key, member);
                want.entry(key).or_default().push(member);
            }
        }
        for (key, members) in &want {
            let mut got: Vec<u32> = table.get(*key).collect();
            got.sort_unstable();
            assert_eq!(&got, members, "key {key}");
        }
        assert_eq!(table.get(12_345).count(), 0);
        assert_eq!(KeyTable::default().get(1).count(), 0, "an empty table");
        // 15,000 pairs in a table at most 7/8 full, 12 bytes a slot.
        assert!(table.bytes() <= 32_768 * 12, "{}", table.bytes());
    }

    #[test]
    fn keys_round_trip_through_storage() {
        let keys = vec![i64::MIN, -1, 0, 42, i64::MAX];
        assert_eq!(decode_keys(&encode_keys(&keys)), keys);
    }
}
