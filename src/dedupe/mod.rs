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

use std::cell::OnceCell;
use std::collections::BTreeSet;
use std::hash::{BuildHasherDefault, Hasher};

use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

/// The thresholds these functions take; configured per category (`[dedupe]`).
pub use crate::config::Thresholds;

pub mod index;
mod shingles;

pub use shingles::normalize;
use shingles::*;

pub use crate::model::{Figures, Fingerprint};

/// A set of hashed text pieces. Its members are already well-mixed 64-bit hashes (FNV, then
/// splitmix's finalizer), so the set uses them as they are instead of hashing them again
/// with SipHash, which was a good part of building the sets.
type HashSet<T> = std::collections::HashSet<T, BuildHasherDefault<Prehashed>>;

/// Hashes a u64 that is already a good hash (candidate keys, shingle hashes) as itself.
#[derive(Default)]
pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 members are stored; anything else still gets a usable hash.
        self.0 = fnv_extend(self.0 ^ FNV_OFFSET, bytes);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
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

/// Figures per entry used as candidate keys.
const MAX_FIGURE_KEYS: usize = 6;

/// Characters of body text kept in a fingerprint: enough to compare, bounded in storage.
pub const MAX_BODY_CHARS: usize = 4000;

/// Builds the fingerprint of an entry's title and plain-text body.
pub fn fingerprint(title: &str, body: &str) -> Fingerprint {
    fingerprint_and_shingles(title, body).0
}

fn fingerprint_and_shingles(title: &str, body: &str) -> (Fingerprint, HashSet<u64>) {
    let title = strip_wire_prefix(&normalize(title)).to_string();
    let mut body = normalize(body);
    if let Some((cut, _)) = body.char_indices().nth(MAX_BODY_CHARS) {
        body.truncate(cut);
    }
    let shingles = shingles(&body);
    let fp = Fingerprint {
        title,
        simhash: simhash(&shingles),
        body,
    };
    (fp, shingles)
}

/// What an entry is compared and found by: its fingerprint, its candidate keys (none when
/// near-duplicate detection is off) and its figures, built together so that the text is cut
/// into shingles and read for numbers once.
pub fn prepare(title: &str, body: &str, t: &Thresholds) -> (Fingerprint, Vec<i64>, Figures) {
    let (fp, shingles) = fingerprint_and_shingles(title, body);
    let text = Text::of(&fp);
    let keys = if t.enabled {
        keys_of(&fp, &text, &shingles, t)
    } else {
        Vec::new()
    };
    let figures = Figures::from_text(&text);
    (fp, keys, figures)
}

/// Candidate keys: two entries that may be near-duplicates share at least one (with high
/// probability). Each key is namespaced by its kind and band.
pub fn candidate_keys(fp: &Fingerprint, t: &Thresholds) -> Vec<i64> {
    keys_of(fp, &Text::of(fp), &shingles(&fp.body), t)
}

/// The figures of a fingerprint's title and body, and its body's length.
struct Text {
    title_numbers: BTreeSet<String>,
    body_numbers: BTreeSet<String>,
    chars: usize,
}

impl Text {
    fn of(fp: &Fingerprint) -> Text {
        Text {
            title_numbers: numbers(&fp.title),
            body_numbers: numbers(&fp.body),
            chars: fp.body.chars().count(),
        }
    }
}

fn keys_of(fp: &Fingerprint, text: &Text, shingles: &HashSet<u64>, t: &Thresholds) -> Vec<i64> {
    let mut keys = Vec::with_capacity(24);
    // Titles: 8 bands of one MinHash row: titles with bigram Jaccard 0.2 collide with
    // p ≈ 0.83, 0.3 with p ≈ 0.94.
    bands(&bigrams(&fp.title), 1, 8, 1, &mut keys);
    bands(shingles, 2, 4, 2, &mut keys);
    // The figures a story states are the best hint that two texts tell it: every significant
    // number is a key (the longest few, to bound the fan-out of common ones).
    let mut figures: Vec<&String> = text
        .title_numbers
        .iter()
        .chain(&text.body_numbers)
        .filter(|n| significant(n))
        .collect();
    figures.sort_by_key(|n| std::cmp::Reverse(n.len()));
    figures.dedup();
    for n in figures.iter().take(MAX_FIGURE_KEYS) {
        // Keyed by integer part, so a rounded figure still meets its exact form.
        let whole = n.split('.').next().unwrap_or(n);
        keys.push(key(4, 0, fnv(whole.as_bytes())));
    }
    if text.chars >= t.long_body_chars {
        for block in 0..4u64 {
            let value = (fp.simhash >> (block * 16)) & 0xffff;
            keys.push(key(3, block, value));
        }
    }
    keys
}

/// Compares two fingerprints; `Some` says they tell the same story, and why.
///
/// Numbers decide first: a title figure that the other entry contradicts, or a figure in the
/// shorter entry that the longer one lacks, means other news (a different amount, a later
/// stage of the story). Then the texts: a (nearly) identical or contained body, a rewrite that
/// shares figures and wording, or a short headline item whose title the other entry's title
/// and lead cover.
pub fn compare(a: &Fingerprint, b: &Fingerprint, t: &Thresholds) -> Option<Match> {
    compare_features(&Features::new(a), &Features::new(b), t)
}

/// A change to [`numbers`] changes what [`Figures`] should hold: stored figures must then be
/// dropped (the store falls back to the fingerprint when they are missing).
impl Figures {
    pub fn of(fp: &Fingerprint) -> Figures {
        Figures::from_text(&Text::of(fp))
    }

    fn from_text(text: &Text) -> Figures {
        let all: BTreeSet<&String> = text
            .title_numbers
            .iter()
            .chain(&text.body_numbers)
            .collect();
        Figures {
            chars: text.chars,
            lists: format!("{}\t{}", join(&text.title_numbers), join(all)).into_boxed_str(),
        }
    }

    /// The stored form, read back by [`Self::parse`].
    pub fn to_stored(&self) -> String {
        format!("{}\t{}", self.chars, self.lists)
    }

    /// None for anything [`Self::to_stored`] could not have written.
    pub fn parse(stored: &str) -> Option<Figures> {
        let (chars, lists) = stored.split_once('\t')?;
        let (title, all) = lists.split_once('\t')?;
        let figure = |n: &str| {
            n.starts_with(|c: char| c.is_ascii_digit())
                && n.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        };
        let well_formed = |list: &str| list.is_empty() || list.split(' ').all(figure);
        let chars = chars.parse().ok()?;
        (well_formed(title) && well_formed(all)).then(|| Figures {
            chars,
            lists: lists.into(),
        })
    }

    fn title(&self) -> impl Iterator<Item = &str> + Clone {
        self.lists
            .split('\t')
            .next()
            .unwrap_or("")
            .split_ascii_whitespace()
    }

    fn all(&self) -> impl Iterator<Item = &str> + Clone {
        self.lists
            .split('\t')
            .nth(1)
            .unwrap_or("")
            .split_ascii_whitespace()
    }

    /// The title's figures and all figures, each parsed once for the comparisons of a pair.
    fn parsed(&self) -> (Vec<Figure<'_>>, Vec<Figure<'_>>) {
        (
            self.title().map(Figure::of).collect(),
            self.all().map(Figure::of).collect(),
        )
    }
}

/// One figure as pairs compare it: its text, and its value and decimals, read once (a pair's
/// check compares every figure of one entry with every figure of the other).
struct Figure<'s> {
    text: &'s str,
    value: Option<f64>,
    decimals: i32,
    significant: bool,
}

impl<'s> Figure<'s> {
    fn of(text: &'s str) -> Figure<'s> {
        Figure {
            text,
            value: text.parse().ok(),
            decimals: text.split_once('.').map_or(0, |(_, d)| d.len() as i32),
            significant: significant(text),
        }
    }
}

/// Figures of `of` that `other` does not state.
fn unmatched(of: &[Figure<'_>], other: &[Figure<'_>]) -> usize {
    of.iter().filter(|n| !agrees(n, other.iter())).count()
}

/// Significant figures of `of` that `other` does not state.
fn only(of: &[Figure<'_>], other: &[Figure<'_>]) -> usize {
    of.iter()
        .filter(|n| n.significant && !agrees(n, other.iter()))
        .count()
}

/// Significant figures of `a` that `b` states among its significant ones.
fn shared(a: &[Figure<'_>], b: &[Figure<'_>]) -> usize {
    a.iter()
        .filter(|n| n.significant && agrees(n, b.iter().filter(|m| m.significant)))
        .count()
}

fn join<'s>(figures: impl IntoIterator<Item = &'s String>) -> String {
    figures
        .into_iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What two entries' figures say, before any text is compared.
struct FigureCheck {
    title_unmatched: (usize, usize),
    only: (usize, usize),
    shared: usize,
    short_is_a: bool,
}

impl FigureCheck {
    fn of(a: &Figures, b: &Figures) -> FigureCheck {
        let (pa, pb) = (a.parsed(), b.parsed());
        let title_unmatched = (unmatched(&pa.0, &pb.1), unmatched(&pb.0, &pa.1));
        Self::with_titles(a, b, (&pa.1, &pb.1), title_unmatched)
    }

    /// The check, or None when each title states a figure the other entry lacks: the first
    /// veto, settled before the body's figures are compared (most chance candidates end here).
    fn unless_titles_disagree(a: &Figures, b: &Figures) -> Option<FigureCheck> {
        let (pa, pb) = (a.parsed(), b.parsed());
        let title_unmatched = (unmatched(&pa.0, &pb.1), unmatched(&pb.0, &pa.1));
        if title_unmatched.0 > 0 && title_unmatched.1 > 0 {
            return None;
        }
        Some(Self::with_titles(a, b, (&pa.1, &pb.1), title_unmatched))
    }

    fn with_titles(
        a: &Figures,
        b: &Figures,
        (all_a, all_b): (&[Figure<'_>], &[Figure<'_>]),
        title_unmatched: (usize, usize),
    ) -> FigureCheck {
        FigureCheck {
            title_unmatched,
            only: (only(all_a, all_b), only(all_b, all_a)),
            shared: shared(all_a, all_b),
            short_is_a: a.chars <= b.chars,
        }
    }

    /// Figures of the shorter entry, then of the longer, that the other does not state.
    fn only_short_long(&self) -> (usize, usize) {
        if self.short_is_a {
            self.only
        } else {
            (self.only.1, self.only.0)
        }
    }

    /// Other news whatever the texts say: each title states a figure the other entry lacks,
    /// or the shorter entry states figures the longer lacks (one stray figure is forgiven
    /// when many agree: a rounded or re-expressed amount).
    fn vetoes(&self) -> bool {
        (self.title_unmatched.0 > 0 && self.title_unmatched.1 > 0)
            || self.only_short_long().0 > usize::from(self.shared >= 5)
    }
}

/// Whether two entries' figures alone say they are different news: [`compare`] would turn
/// the pair down whatever their texts.
pub fn figures_differ(a: &Figures, b: &Figures) -> bool {
    FigureCheck::unless_titles_disagree(a, b).map_or(true, |c| c.vetoes())
}

/// A fingerprint with the sets [`compare`] reads, each built on first use. The store compares
/// one new entry with several candidates: its sets are built once, and most pairs are settled
/// by their figures before any text set is built at all.
pub struct Features<'a> {
    fp: &'a Fingerprint,
    given: Option<&'a Figures>,
    figures: OnceCell<Figures>,
    shingles: OnceCell<HashSet<u64>>,
    bigrams: OnceCell<HashSet<u64>>,
    title_bigrams: OnceCell<HashSet<u64>>,
    title_and_lead: OnceCell<HashSet<u64>>,
}

impl<'a> Features<'a> {
    pub fn new(fp: &'a Fingerprint) -> Self {
        Features {
            fp,
            given: None,
            figures: OnceCell::new(),
            shingles: OnceCell::new(),
            bigrams: OnceCell::new(),
            title_bigrams: OnceCell::new(),
            title_and_lead: OnceCell::new(),
        }
    }

    /// With the fingerprint's figures already at hand (`Figures::of(fp)`).
    pub fn with_figures(fp: &'a Fingerprint, figures: &'a Figures) -> Self {
        Features {
            given: Some(figures),
            ..Features::new(fp)
        }
    }

    pub fn figures(&self) -> &Figures {
        match self.given {
            Some(f) => f,
            None => self.figures.get_or_init(|| Figures::of(self.fp)),
        }
    }

    fn chars(&self) -> usize {
        self.figures().chars
    }

    fn shingles(&self) -> &HashSet<u64> {
        self.shingles.get_or_init(|| shingles(&self.fp.body))
    }

    fn bigrams(&self) -> &HashSet<u64> {
        self.bigrams.get_or_init(|| bigrams(&self.fp.body))
    }

    fn title_bigrams(&self) -> &HashSet<u64> {
        self.title_bigrams.get_or_init(|| bigrams(&self.fp.title))
    }

    fn title_and_lead(&self) -> &HashSet<u64> {
        self.title_and_lead.get_or_init(|| {
            let lead: String = self.fp.body.chars().take(LEAD_CHARS).collect();
            bigrams(&format!("{} {lead}", self.fp.title))
        })
    }

    /// Share of this title's bigrams found in the other's title and lead.
    fn cover(&self, other: &Features) -> f64 {
        let mine = self.title_bigrams();
        if mine.is_empty() {
            return 0.0;
        }
        round(mine.intersection(other.title_and_lead()).count() as f64 / mine.len() as f64)
    }
}

/// [`compare`] on prepared features. The measures are those of [`scores`], each computed only
/// when a rule reaches it.
pub fn compare_features(a: &Features, b: &Features, t: &Thresholds) -> Option<Match> {
    let figures = FigureCheck::unless_titles_disagree(a.figures(), b.figures())?;
    if figures.vetoes() {
        return None;
    }
    let (la, lb) = (a.chars(), b.chars());
    let short_is_a = figures.short_is_a;
    let title_numbers_unmatched = figures.title_unmatched;
    let numbers_only = figures.only;
    let (_, only_long) = figures.only_short_long();
    let numbers_shared = figures.shared;
    let title_unmatched = title_numbers_unmatched.0 + title_numbers_unmatched.1;
    if la.min(lb) >= t.min_body_chars {
        let simhash_distance = (a.fp.simhash ^ b.fp.simhash).count_ones();
        if la.min(lb) >= t.long_body_chars
            && simhash_distance <= t.simhash_distance
            && title_unmatched == 0
        {
            return Some(Match {
                rule: Rule::SimHash,
                score: f64::from(simhash_distance),
            });
        }
        // A trimmed or re-headlined copy may drop one title figure, if the texts share another.
        if title_unmatched == 0 || (title_unmatched == 1 && numbers_shared >= 1) {
            let body_containment = round(containment(a.shingles(), b.shingles()));
            if body_containment >= t.body_containment {
                return Some(Match {
                    rule: Rule::BodyContainment,
                    score: body_containment,
                });
            }
        }
        // A rewrite restates the story's figures in other words: several figures shared (a
        // headline may round or add one), or, for a story without figures, more of the wording.
        let no_figures = numbers_shared == 0 && numbers_only == (0, 0);
        // Several figures shared is enough on its own; one shared figure (a stock code, an
        // amount) only when neither text states other figures and the wording is close.
        let many_figures = (numbers_shared >= 2 && title_unmatched == 0)
            || (numbers_shared >= 3 && title_unmatched <= 1);
        let one_figure = numbers_shared >= 1 && only_long <= 1 && title_unmatched == 0;
        if !many_figures && !one_figure && !no_figures {
            return None;
        }
        let cover = a.cover(b).max(b.cover(a));
        let body_bigram_jaccard = round(jaccard(a.bigrams(), b.bigrams()));
        let figures_agree = many_figures
            || (one_figure
                && body_bigram_jaccard >= 1.25 * t.rewrite_body_bigrams
                && cover >= t.headline_title_cover);
        if (figures_agree
            && body_bigram_jaccard >= t.rewrite_body_bigrams
            && cover >= t.rewrite_title_cover)
            || (no_figures
                && body_bigram_jaccard >= 2.0 * t.rewrite_body_bigrams
                && cover >= t.headline_title_cover)
        {
            return Some(Match {
                rule: Rule::Rewrite,
                score: body_bigram_jaccard,
            });
        }
        return None;
    }
    let (cover, unmatched) = if short_is_a {
        (a.cover(b), title_numbers_unmatched.0)
    } else {
        (b.cover(a), title_numbers_unmatched.1)
    };
    // A headline of a word or two ("Age", "快讯") is in many others by chance, and many
    // others are in it.
    let enough = [a, b]
        .iter()
        .all(|f| f.title_bigrams().len() >= MIN_HEADLINE_BIGRAMS);
    (enough && cover >= t.headline_title_cover && unmatched == 0).then_some(Match {
        rule: Rule::Headline,
        score: cover,
    })
}

/// The fewest distinct title bigrams a headline-only item needs to be matched by its title:
/// four is a short Chinese headline (five characters) or a two-word English one.
const MIN_HEADLINE_BIGRAMS: usize = 4;

/// Every measure `compare` looks at (also for tuning thresholds on labeled pairs).
#[derive(Debug, Clone, PartialEq)]
pub struct PairScores {
    pub body_chars: (usize, usize),
    pub simhash_distance: u32,
    /// Share of the shorter body's shingles in the longer.
    pub body_containment: f64,
    /// Jaccard of the bodies' character bigrams.
    pub body_bigram_jaccard: f64,
    /// Share of each title's bigrams found in the other's title and lead.
    pub title_cover: (f64, f64),
    /// Significant figures of a found in b.
    pub numbers_shared: usize,
    /// Significant figures of each side that the other does not state.
    pub numbers_only: (usize, usize),
    /// Figures of each title that the other entry does not state.
    pub title_numbers_unmatched: (usize, usize),
}

/// Characters of the body that count as its lead.
const LEAD_CHARS: usize = 200;

pub fn scores(a: &Fingerprint, b: &Fingerprint) -> PairScores {
    let (a, b) = (Features::new(a), Features::new(b));
    let figures = FigureCheck::of(a.figures(), b.figures());
    PairScores {
        body_chars: (a.chars(), b.chars()),
        simhash_distance: (a.fp.simhash ^ b.fp.simhash).count_ones(),
        body_containment: round(containment(a.shingles(), b.shingles())),
        body_bigram_jaccard: round(jaccard(a.bigrams(), b.bigrams())),
        title_cover: (a.cover(&b), b.cover(&a)),
        numbers_shared: figures.shared,
        numbers_only: figures.only,
        title_numbers_unmatched: figures.title_unmatched,
    }
}

/// A figure that identifies news: with decimals, or above 31 (days and months are everywhere)
/// and not a year.
fn significant(n: &str) -> bool {
    if n.contains('.') {
        return true;
    }
    match n.parse::<u64>() {
        Ok(v) => v > 31 && !(n.len() == 4 && (1990..=2039).contains(&v)),
        Err(_) => true,
    }
}

/// Whether `x` is stated in `set`, allowing for rounding either way ("5870" for "5870.42",
/// "0.6" for "0.63", "2.1" for "2.10").
fn agrees<'a, 's: 'a>(x: &Figure<'_>, set: impl Iterator<Item = &'a Figure<'s>> + Clone) -> bool {
    if set.clone().any(|y| y.text == x.text) {
        return true;
    }
    let Some(fx) = x.value else {
        return false;
    };
    let rounds_to = |v: f64, places: i32, target: f64| {
        let scale = 10f64.powi(places);
        ((v * scale).round() / scale - target).abs() < 1e-9
            || ((v * scale).trunc() / scale - target).abs() < 1e-9
    };
    set.into_iter().any(|y| {
        y.value
            .is_some_and(|fy| rounds_to(fy, x.decimals, fx) || rounds_to(fx, y.decimals, fy))
    })
}

/// Character bigrams of the letters and digits of a text (spaces and punctuation skipped).
fn bigrams(text: &str) -> HashSet<u64> {
    let chars: Vec<char> = text.chars().filter(|c| c.is_alphanumeric()).collect();
    let mut buf = [0u8; 8];
    if chars.len() < 2 {
        return chars
            .iter()
            .map(|c| fnv(c.encode_utf8(&mut buf).as_bytes()))
            .collect();
    }
    chars
        .windows(2)
        .map(|w| {
            // The hash of the two characters' UTF-8 bytes, written side by side.
            let first = w[0].encode_utf8(&mut buf).len();
            let second = w[1].encode_utf8(&mut buf[first..]).len();
            fnv(&buf[..first + second])
        })
        .collect()
}

/// The numbers a text states: digit runs with their decimal part ("5870", "3.25"); thousands
/// separators are dropped. Digits right after Latin letters ("Q1", "A350", "G20") are names,
/// not figures, and are skipped; a unit after the digits ("2.8pc", "4bn") is not.
pub fn numbers(text: &str) -> BTreeSet<String> {
    // Read as bytes: every character this looks at is ASCII, and in UTF-8 no byte of another
    // character is an ASCII byte, so a byte's neighbours are its characters' neighbours.
    let bytes = text.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let glued_before = i > 0 && (bytes[i - 1].is_ascii_alphabetic() || bytes[i - 1] == b'.');
        let mut n = String::new();
        while i < bytes.len() {
            let c = bytes[i];
            let next_digit = bytes.get(i + 1).is_some_and(|d| d.is_ascii_digit());
            if c.is_ascii_digit() || (c == b'.' && next_digit && !n.contains('.')) {
                n.push(char::from(c));
            } else if c == b',' && next_digit {
                // 168,000: a thousands separator.
            } else {
                break;
            }
            i += 1;
        }
        if !glued_before {
            out.insert(in_wan(n, &bytes[i..]));
        }
    }
    out
}

/// A figure followed by 万 (ten thousand) or 亿 (a hundred million) as a count of 万, so that
/// one amount written two ways is one figure: 1.25亿元 and 12500万元 are both `12500`. Other
/// figures stay as written.
fn in_wan(n: String, after: &[u8]) -> String {
    const WAN: &[u8] = "万".as_bytes();
    const YI: &[u8] = "亿".as_bytes();
    let scale = if after.starts_with(YI) {
        10_000.0
    } else if after.starts_with(WAN) {
        1.0
    } else {
        return n;
    };
    let Ok(value) = n.parse::<f64>() else {
        return n;
    };
    let text = format!("{:.4}", value * scale);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Wire services mark revisions in the headline ("UPDATE 2-", "CORRECTED-"); the story is the
/// same.
fn strip_wire_prefix(title: &str) -> &str {
    const PREFIXES: &[&str] = &["update", "corrected", "refile", "exclusive", "breaking"];
    let mut rest = title;
    for p in PREFIXES {
        if let Some(r) = rest.strip_prefix(p) {
            rest = r.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
            return rest;
        }
    }
    rest
}

#[cfg(test)]
mod tests;
