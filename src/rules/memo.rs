//! What texts matched, remembered. Reading the text out of a body's HTML and scanning every
//! field for every pattern in scope is most of what rules add to a render, and a feed is
//! rendered again after every write with nearly all of its entries unchanged; so what a copy
//! matched is kept, per scope, under a hash of the texts it was read from. The
//! memory is bounded (two generations of `GENERATION`: what was looked up in the last
//! generation or this one is remembered) and goes with the `Book`, so a config reload starts
//! afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Values per generation.
const GENERATION: usize = 16_384;

/// A scope's number and a hash of the texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Key(usize, u128);

pub(super) struct Memo<V> {
    generations: Mutex<[HashMap<Key, Arc<V>>; 2]>,
    /// The hash's seed, drawn per memo: a source cannot craft words that share a key with
    /// other words (and so pass as them) without knowing it.
    seed: u64,
}

impl<V> Default for Memo<V> {
    fn default() -> Self {
        use std::hash::BuildHasher;
        Memo {
            generations: Mutex::new(Default::default()),
            seed: std::collections::hash_map::RandomState::new().hash_one(0u64),
        }
    }
}

impl<V> Memo<V> {
    /// The key of `parts` in `scope`: each part hashed with its length, so no two lists of
    /// texts share a key.
    pub(super) fn key<'a>(&self, scope: usize, parts: impl IntoIterator<Item = &'a str>) -> Key {
        let mut hasher = xxhash_rust::xxh3::Xxh3::with_seed(self.seed);
        for part in parts {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        Key(scope, hasher.digest128())
    }

    /// The value remembered under `key`, or `make`'s, remembered.
    pub(super) fn get(&self, key: Key, make: impl FnOnce() -> V) -> Arc<V> {
        if let Some(value) = self.remembered(&key) {
            return value;
        }
        // Made without the lock: renders on other threads are not held up by this one.
        let value = Arc::new(make());
        self.remember(key, value.clone());
        value
    }

    fn remembered(&self, key: &Key) -> Option<Arc<V>> {
        let mut generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(value) = generations[0].get(key) {
            return Some(value.clone());
        }
        // Looked up again: into this generation, so it outlives the next turn.
        let value = generations[1].remove(key)?;
        insert(&mut generations, *key, value.clone());
        Some(value)
    }

    fn remember(&self, key: Key, value: Arc<V>) {
        let mut generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        insert(&mut generations, key, value);
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        let generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        generations[0].len() + generations[1].len()
    }
}

/// Into the current generation; a full one becomes the older, and the older is forgotten.
fn insert<V>(generations: &mut [HashMap<Key, Arc<V>>; 2], key: Key, value: Arc<V>) {
    if generations[0].len() >= GENERATION {
        let current = std::mem::take(&mut generations[0]);
        generations[1] = current;
    }
    generations[0].insert(key, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_remembered_by_scope_and_texts() {
        let memo = Memo::default();
        let key = |scope, parts: &[&str]| memo.key(scope, parts.iter().copied());
        let first = memo.get(key(1, &["碳中和", "a"]), || 1);
        assert_eq!(*memo.get(key(1, &["碳中和", "a"]), || 2), 1, "remembered");
        assert!(Arc::ptr_eq(
            &first,
            &memo.get(key(1, &["碳中和", "a"]), || 3)
        ));
        assert_eq!(
            *memo.get(key(2, &["碳中和", "a"]), || 4),
            4,
            "another scope"
        );
        assert_eq!(
            *memo.get(key(1, &["碳中和a"]), || 5),
            5,
            "texts split apart"
        );
        assert_eq!(
            *memo.get(key(1, &["碳中和", "a", ""]), || 6),
            6,
            "one more text"
        );
        assert_eq!(memo.len(), 4);
        let other: Memo<usize> = Memo::default();
        assert_ne!(
            other.key(1, ["碳中和"]),
            memo.key(1, ["碳中和"]),
            "a seed per memo"
        );
    }

    #[test]
    fn the_memory_is_bounded_and_keeps_what_is_looked_up_again() {
        let memo = Memo::default();
        let key = |i: usize| memo.key(0, [i.to_string().as_str()]);
        let kept = memo.get(memo.key(0, ["kept"]), || usize::MAX);
        for i in 0..GENERATION * 3 {
            memo.get(key(i), || i);
            if i % (GENERATION / 2) == 0 {
                let again = memo.get(memo.key(0, ["kept"]), || 0);
                assert!(
                    Arc::ptr_eq(&kept, &again),
                    "looked up again at {i}: remembered"
                );
            }
        }
        assert!(memo.len() <= 2 * GENERATION, "{} values held", memo.len());
        assert_eq!(*memo.get(key(0), || 1), 1, "the oldest are forgotten");
    }

    /// What is looked up again counts towards the bound: rounds of new values, each followed
    /// by a look at every value so far, keep at most two generations.
    #[test]
    fn values_looked_up_again_do_not_outgrow_the_bound() {
        let memo = Memo::default();
        let key = |i: usize| memo.key(0, [i.to_string().as_str()]);
        let mut next = 0;
        for _ in 0..4 {
            for _ in 0..GENERATION - 1 {
                memo.get(key(next), || next);
                next += 1;
            }
            for i in 0..next {
                memo.get(key(i), || i);
            }
            assert!(memo.len() <= 2 * GENERATION, "{} values held", memo.len());
        }
    }
}
