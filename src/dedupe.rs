//! Near-duplicate detection: the same story from several sources.
//!
//! Exact identity (guid, document id, canonical link, content hash) is settled by the store's
//! keys before this module is asked anything. Here, texts that differ are compared:
//!
//! - a **fingerprint** per entry: NFKC-folded, lower-cased text cut into shingles (CJK
//!   character 3-grams, Latin word 2-grams, digits kept), a 64-bit SimHash of the body, the
//!   title's character n-grams, and the numbers the text states;
//! - **candidate keys** (LSH): MinHash bands of the title and of the body, and the SimHash's four
//!   16-bit blocks (two fingerprints within 3 bits share a block). The store indexes these, so
//!   finding candidates costs a few index lookups however large the store grows;
//! - a **comparison** of two fingerprints that names the rule that matched and its score, so
//!   `tributary dedupe --explain` can say why two entries were merged.
//!
//! Numbers are a veto: "中标5870万元" and "中标5780万元" are different news however alike the
//! words are.
//!
//! Everything here is pure: no I/O, no clock.

use std::collections::{BTreeSet, HashSet};

use unicode_normalization::UnicodeNormalization;

pub use crate::model::Fingerprint;

/// Thresholds, configurable per category.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Off: every entry stands alone in the merged feeds (exact identity still applies).
    pub enabled: bool,
    /// Entries further apart in time are never merged.
    pub window_hours: i64,
    /// Bodies of at least this many characters are compared by SimHash.
    pub long_body_chars: usize,
    /// Hamming distance between two long bodies' SimHashes that still means "same text".
    pub simhash_distance: u32,
    /// Share of the shorter body's shingles found in the other (wire copies, trimmed copies).
    pub body_containment: f64,
    /// Jaccard of title n-grams for headlines and short items.
    pub title_jaccard: f64,
    /// With titles this alike, bodies need only this much overlap (rewrites).
    pub rewrite_title_jaccard: f64,
    pub rewrite_body_jaccard: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            enabled: true,
            window_hours: 72,
            long_body_chars: 200,
            simhash_distance: 3,
            body_containment: 0.8,
            title_jaccard: 0.7,
            rewrite_title_jaccard: 0.5,
            rewrite_body_jaccard: 0.3,
        }
    }
}

/// A rule that matched, and how strongly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    pub rule: Rule,
    pub score: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Long bodies whose SimHashes are within the distance; score = differing bits.
    SimHash,
    /// The shorter body is (nearly) contained in the longer; score = containment.
    BodyContainment,
    /// Alike titles and overlapping bodies; score = title Jaccard.
    Rewrite,
    /// Alike titles where a body is missing or short; score = title Jaccard.
    Headline,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::SimHash => "simhash",
            Rule::BodyContainment => "body-containment",
            Rule::Rewrite => "rewrite",
            Rule::Headline => "headline",
        }
    }
}

/// Characters of body text kept in a fingerprint: enough to compare, bounded in storage.
pub const MAX_BODY_CHARS: usize = 4000;

/// Builds the fingerprint of an entry's title and plain-text body.
pub fn fingerprint(title: &str, body: &str) -> Fingerprint {
    let title = normalize(title);
    let mut body = normalize(body);
    if let Some((cut, _)) = body.char_indices().nth(MAX_BODY_CHARS) {
        body.truncate(cut);
    }
    let simhash = simhash(&shingles(&body));
    Fingerprint {
        title,
        body,
        simhash,
    }
}

/// Candidate keys: two entries that may be near-duplicates share at least one (with high
/// probability). Each key is namespaced by its kind and band.
pub fn candidate_keys(fp: &Fingerprint, t: &Thresholds) -> Vec<i64> {
    let mut keys = Vec::with_capacity(12);
    let title_grams = title_grams(&fp.title);
    // Titles: 4 bands of 2 MinHash rows; pairs with Jaccard 0.5 collide with p ≈ 0.68, 0.7 with
    // p ≈ 0.94.
    bands(&title_grams, 1, 4, 2, &mut keys);
    let body = shingles(&fp.body);
    bands(&body, 2, 4, 2, &mut keys);
    if fp.body.chars().count() >= t.long_body_chars {
        for block in 0..4u64 {
            let value = (fp.simhash >> (block * 16)) & 0xffff;
            keys.push(key(3, block, value));
        }
    }
    keys
}

/// Compares two fingerprints; `Some` says they tell the same story, and why.
pub fn compare(a: &Fingerprint, b: &Fingerprint, t: &Thresholds) -> Option<Match> {
    if !numbers_agree(a, b) {
        return None;
    }
    let (la, lb) = (a.body.chars().count(), b.body.chars().count());
    if la >= t.long_body_chars && lb >= t.long_body_chars {
        let distance = (a.simhash ^ b.simhash).count_ones();
        if distance <= t.simhash_distance {
            return Some(Match {
                rule: Rule::SimHash,
                score: f64::from(distance),
            });
        }
    }
    let (sa, sb) = (shingles(&a.body), shingles(&b.body));
    if !sa.is_empty() && !sb.is_empty() {
        let containment = containment(&sa, &sb);
        // A trimmed copy still needs a body worth the name: two one-line bodies that share a
        // boilerplate sentence are not one story.
        if containment >= t.body_containment && la.min(lb) >= 40 {
            return Some(Match {
                rule: Rule::BodyContainment,
                score: round(containment),
            });
        }
    }
    let title = jaccard(&title_grams(&a.title), &title_grams(&b.title));
    let short = la.min(lb) < t.long_body_chars / 2;
    if title >= t.title_jaccard && short {
        return Some(Match {
            rule: Rule::Headline,
            score: round(title),
        });
    }
    if title >= t.rewrite_title_jaccard && !sa.is_empty() && !sb.is_empty() {
        let body = jaccard(&sa, &sb);
        if body >= t.rewrite_body_jaccard {
            return Some(Match {
                rule: Rule::Rewrite,
                score: round(title),
            });
        }
    }
    None
}

/// Every measure `compare` looks at, for tuning thresholds on labeled pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct PairScores {
    pub numbers_agree: bool,
    pub simhash_distance: u32,
    pub body_jaccard: f64,
    pub body_containment: f64,
    pub title_jaccard: f64,
    pub body_chars: (usize, usize),
}

pub fn scores(a: &Fingerprint, b: &Fingerprint) -> PairScores {
    let (sa, sb) = (shingles(&a.body), shingles(&b.body));
    PairScores {
        numbers_agree: numbers_agree(a, b),
        simhash_distance: (a.simhash ^ b.simhash).count_ones(),
        body_jaccard: round(jaccard(&sa, &sb)),
        body_containment: round(containment(&sa, &sb)),
        title_jaccard: round(jaccard(&title_grams(&a.title), &title_grams(&b.title))),
        body_chars: (a.body.chars().count(), b.body.chars().count()),
    }
}

/// The numbers two texts state must not contradict each other. Every number of a title must
/// appear somewhere in the other entry, and the numbers of the shorter body must appear in the
/// longer one (a trimmed copy states fewer numbers, never other ones).
fn numbers_agree(a: &Fingerprint, b: &Fingerprint) -> bool {
    let all_a: BTreeSet<String> = numbers(&a.title)
        .into_iter()
        .chain(numbers(&a.body))
        .collect();
    let all_b: BTreeSet<String> = numbers(&b.title)
        .into_iter()
        .chain(numbers(&b.body))
        .collect();
    let titles_ok = numbers(&a.title).is_subset(&all_b) && numbers(&b.title).is_subset(&all_a);
    if !titles_ok {
        return false;
    }
    let (short, long) = if a.body.len() <= b.body.len() {
        (&a.body, &all_b)
    } else {
        (&b.body, &all_a)
    };
    let short_numbers = numbers(short);
    if short_numbers.is_empty() {
        return true;
    }
    let missing = short_numbers.iter().filter(|n| !long.contains(*n)).count();
    // One stray number (a by-line date, a page counter) is tolerated in longer texts.
    missing == 0 || (missing == 1 && short_numbers.len() >= 4)
}

/// The numbers a text states: digit runs with their decimal part ("5870", "3.25").
pub fn numbers(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            current.push(c);
        } else if (c == '.' || c == ',') && !current.is_empty() {
            match chars.peek() {
                Some(d) if d.is_ascii_digit() => {
                    // A thousands separator is dropped; a decimal point is kept.
                    if c == '.' {
                        current.push(c);
                    }
                }
                _ => {
                    out.insert(std::mem::take(&mut current));
                }
            }
        } else if !current.is_empty() {
            out.insert(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.insert(current);
    }
    out
}

/// NFKC (full-width digits and letters fold to ASCII, U+3000 to a space), lower case, and
/// every run of punctuation or space collapsed to one space.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut gap = false;
    for c in text.nfkc().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() || c == '.' && out.ends_with(|p: char| p.is_ascii_digit()) {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.push(c);
        } else {
            gap = true;
        }
    }
    out
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30ff | 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xac00..=0xd7af | 0xf900..=0xfaff
        | 0x20000..=0x2fa1f)
}

/// Units of text: each CJK character, and each run of other letters or digits (a word).
fn units(text: &str) -> Vec<&str> {
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
fn shingles(text: &str) -> HashSet<u64> {
    let units = units(text);
    let mut out = HashSet::with_capacity(units.len());
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

/// Title grams: character bigrams of the title without spaces for CJK, character trigrams
/// otherwise; short titles keep their grams all the same.
fn title_grams(title: &str) -> HashSet<u64> {
    let chars: Vec<char> = title.chars().filter(|c| *c != ' ').collect();
    let cjk = chars.iter().filter(|c| is_cjk(**c)).count() * 2 >= chars.len();
    let n = if cjk { 2 } else { 3 };
    if chars.len() < n {
        return chars
            .iter()
            .map(|c| fnv(c.to_string().as_bytes()))
            .collect();
    }
    chars
        .windows(n)
        .map(|w| fnv(w.iter().collect::<String>().as_bytes()))
        .collect()
}

fn hash_units(units: &[&str]) -> u64 {
    let mut h = FNV_OFFSET;
    for u in units {
        h = fnv_extend(h, u.as_bytes());
        h = fnv_extend(h, &[0x1f]);
    }
    mix(h)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv_extend(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// FNV-1a then a finalizer: stable across runs and builds (fingerprints are stored).
fn fnv(bytes: &[u8]) -> u64 {
    mix(fnv_extend(FNV_OFFSET, bytes))
}

/// splitmix64's finalizer: spreads FNV's weak low bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn simhash(shingles: &HashSet<u64>) -> u64 {
    if shingles.is_empty() {
        return 0;
    }
    let mut weights = [0i32; 64];
    for h in shingles {
        for (bit, w) in weights.iter_mut().enumerate() {
            *w += if h >> bit & 1 == 1 { 1 } else { -1 };
        }
    }
    weights
        .iter()
        .enumerate()
        .filter(|(_, w)| **w > 0)
        .fold(0u64, |acc, (bit, _)| acc | 1 << bit)
}

/// MinHash LSH: `bands` bands of `rows` minima each, one key per band.
fn bands(set: &HashSet<u64>, kind: u64, bands: u64, rows: u64, keys: &mut Vec<i64>) {
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
fn key(kind: u64, band: u64, value: u64) -> i64 {
    mix(value ^ (kind << 56) ^ (band << 48)) as i64
}

fn jaccard(a: &HashSet<u64>, b: &HashSet<u64>) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let inter = a.intersection(b).count();
    inter as f64 / (a.len() + b.len() - inter) as f64
}

fn containment(a: &HashSet<u64>, b: &HashSet<u64>) -> f64 {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if small.is_empty() {
        return 0.0;
    }
    small.intersection(large).count() as f64 / small.len() as f64
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(title: &str, body: &str) -> Fingerprint {
        fingerprint(title, body)
    }

    #[test]
    fn full_width_digits_fold() {
        assert_eq!(
            normalize("中标５８７０万元，　增长１２．５％"),
            "中标5870万元 增长12.5"
        );
        assert_eq!(
            numbers("中标5870万元，增长12.5%，代码300004"),
            ["12.5", "300004", "5870"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        );
    }

    #[test]
    fn different_amounts_are_different_news() {
        let t = Thresholds::default();
        let a = fp("恒泰股份：全资子公司中标5870万元项目", "");
        let b = fp("恒泰股份：全资子公司中标5780万元项目", "");
        assert_eq!(compare(&a, &b, &t), None);
        let c = fp("恒泰股份全资子公司中标5870万元智慧园区项目", "");
        assert_eq!(compare(&a, &c, &t).map(|m| m.rule), Some(Rule::Headline));
    }

    #[test]
    fn a_wire_copy_with_boilerplate_matches() {
        let t = Thresholds::default();
        let body = "中国人民银行12月1日表示，将继续保持流动性合理充裕，引导市场利率围绕政策利率波动。\
            央行有关负责人指出，当前经济持续稳定恢复，但外部环境依然复杂严峻，稳健的货币政策要更加灵活适度、精准导向，\
            综合运用多种货币政策工具，保持货币供应量和社会融资规模增速同名义经济增速基本匹配，支持实体经济发展。";
        let a = fp("央行：保持流动性合理充裕", body);
        let b = fp(
            "央行称将保持流动性合理充裕 引导市场利率波动",
            &format!("（文章来源：中国证券报）{body}责任编辑：张三"),
        );
        let m = compare(&a, &b, &t).expect("a wire copy is the same story");
        assert!(
            matches!(m.rule, Rule::SimHash | Rule::BodyContainment),
            "{m:?}"
        );
        // The keys overlap, so the store would find it.
        let ka: HashSet<i64> = candidate_keys(&a, &t).into_iter().collect();
        assert!(candidate_keys(&b, &t).iter().any(|k| ka.contains(k)));
    }

    #[test]
    fn same_template_different_day_is_not_merged() {
        let t = Thresholds::default();
        let a = fp(
            "沪深两市成交额连续第5个交易日突破8000亿元",
            "截至12月1日收盘，沪深两市成交额合计8735亿元，连续第5个交易日突破8000亿元。",
        );
        let b = fp(
            "沪深两市成交额连续第6个交易日突破8000亿元",
            "截至12月2日收盘，沪深两市成交额合计9012亿元，连续第6个交易日突破8000亿元。",
        );
        assert_eq!(compare(&a, &b, &t), None);
    }

    #[test]
    fn english_rewrite_matches_and_unrelated_does_not() {
        let t = Thresholds::default();
        let a = fp(
            "Acme Corp wins $58.7 million smart-park contract",
            "Acme Corp said on Tuesday its wholly owned unit won a $58.7 million contract to build a \
             smart industrial park in Suzhou, the company's largest order this year.",
        );
        let b = fp(
            "Acme wins $58.7 million contract for Suzhou smart park",
            "Acme Corp's wholly owned unit has won a $58.7 million contract to build a smart industrial \
             park in Suzhou, the company said on Tuesday. It is Acme's largest order this year.",
        );
        assert!(compare(&a, &b, &t).is_some());
        let c = fp(
            "Acme Corp names new chief financial officer",
            "Acme Corp said on Tuesday it appointed Jane Doe as chief financial officer.",
        );
        assert_eq!(compare(&a, &c, &t), None);
    }
}
