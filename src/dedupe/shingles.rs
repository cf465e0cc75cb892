//! The text primitives fingerprints are made of: folding (NFKC, case, width), units (a CJK
//! character or a Latin word), shingles and their hashes, SimHash, MinHash bands, and the set
//! measures pairs are scored with.

use super::*;

/// NFKC (full-width digits and letters fold to ASCII, U+3000 to a space), lower case, and
/// every run of punctuation or space collapsed to one space.
pub fn normalize(text: &str) -> String {
    // Most text is in NFKC already, and the quick check (a table lookup per character) says
    // so for far less than normalizing it does.
    if is_nfkc_quick(text.chars()) == IsNormalized::Yes {
        fold(text.chars())
    } else {
        fold(text.nfkc())
    }
}

/// Lower case, and every run of punctuation or space collapsed to one space.
pub(super) fn fold(chars: impl Iterator<Item = char>) -> String {
    let mut folded = Folded::default();
    for c in chars {
        if c.is_ascii() {
            folded.push(c.to_ascii_lowercase());
        } else {
            c.to_lowercase().for_each(|c| folded.push(c));
        }
    }
    folded.out
}

#[derive(Default)]
pub(super) struct Folded {
    out: String,
    /// Punctuation or space since the last character kept.
    gap: bool,
    /// The last character kept is an ASCII digit (a point or comma may follow it).
    after_digit: bool,
}

impl Folded {
    fn push(&mut self, c: char) {
        if c.is_alphanumeric() || (c == '.' || c == ',') && self.after_digit && !self.gap {
            if self.gap && !self.out.is_empty() {
                self.out.push(' ');
            }
            self.gap = false;
            self.out.push(c);
            self.after_digit = c.is_ascii_digit();
        } else {
            self.gap = true;
        }
    }
}

pub(super) fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30ff | 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xac00..=0xd7af | 0xf900..=0xfaff
        | 0x20000..=0x2fa1f)
}

/// Units of text: each CJK character, and each run of other letters or digits (a word).
pub(super) fn units(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if is_cjk(c) {
            if let Some(s) = start.take() {
                out.push(&text[s..i]);
            }
            out.push(&text[i..i + c.len_utf8()]);
        } else if c == ' ' {
            if let Some(s) = start.take() {
                out.push(&text[s..i]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(&text[s..]);
    }
    out
}

/// Body shingles, hashed: CJK character 3-grams, Latin word 2-grams (a unit's n is set by the
/// unit starting the gram).
pub(super) fn shingles(text: &str) -> HashSet<u64> {
    let units = units(text);
    let mut out = HashSet::with_capacity_and_hasher(units.len(), Default::default());
    for i in 0..units.len() {
        let n = if units[i].chars().next().is_some_and(is_cjk) {
            3
        } else {
            2
        };
        let end = (i + n).min(units.len());
        if end - i < n && !out.is_empty() {
            break;
        }
        out.insert(hash_units(&units[i..end]));
    }
    out
}

pub(super) fn hash_units(units: &[&str]) -> u64 {
    let mut h = FNV_OFFSET;
    for u in units {
        h = fnv_extend(h, u.as_bytes());
        h = fnv_extend(h, &[0x1f]);
    }
    mix(h)
}

pub(super) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

pub(super) fn fnv_extend(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// FNV-1a then a finalizer: stable across runs and builds (fingerprints are stored).
pub(super) fn fnv(bytes: &[u8]) -> u64 {
    mix(fnv_extend(FNV_OFFSET, bytes))
}

/// splitmix64's finalizer: spreads FNV's weak low bits.
pub(super) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub(super) fn simhash(shingles: &HashSet<u64>) -> u64 {
    if shingles.is_empty() {
        return 0;
    }
    // A bit's weight is +1 for each shingle that sets it and -1 for each that does not: it is
    // positive when more than half set it. Counting ones is the same, and vectorizes.
    let mut ones = [0u32; 64];
    for h in shingles {
        for (bit, n) in ones.iter_mut().enumerate() {
            *n += (h >> bit & 1) as u32;
        }
    }
    let half = shingles.len() as u32;
    ones.iter()
        .enumerate()
        .filter(|(_, n)| 2 * **n > half)
        .fold(0u64, |acc, (bit, _)| acc | 1 << bit)
}

/// MinHash LSH: `bands` bands of `rows` minima each, one key per band.
pub(super) fn bands(set: &HashSet<u64>, kind: u64, bands: u64, rows: u64, keys: &mut Vec<i64>) {
    if set.is_empty() {
        return;
    }
    for band in 0..bands {
        let mut h = FNV_OFFSET;
        for row in 0..rows {
            let seed = mix((band * rows + row + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let min = set.iter().map(|x| mix(x ^ seed)).min().unwrap_or(0);
            h = fnv_extend(h, &min.to_le_bytes());
        }
        keys.push(key(kind, band, h));
    }
}

/// A key namespaced by kind and band, as SQLite's signed 64-bit integer.
pub(super) fn key(kind: u64, band: u64, value: u64) -> i64 {
    mix(value ^ (kind << 56) ^ (band << 48)) as i64
}

pub(super) fn jaccard(a: &HashSet<u64>, b: &HashSet<u64>) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let inter = a.intersection(b).count();
    inter as f64 / (a.len() + b.len() - inter) as f64
}

pub(super) fn containment(a: &HashSet<u64>, b: &HashSet<u64>) -> f64 {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if small.is_empty() {
        return 0.0;
    }
    small.intersection(large).count() as f64 / small.len() as f64
}

pub(super) fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
