//! The rule language of `[rules]`, `[categories."…".rules]` and a source's `[sources.rules]`:
//! conditions that keep or block entries, rewrites of their titles and text, and selectors
//! removed from their content. Each level is checked and its patterns compiled here, once per
//! load (a literal becomes a regex that ignores case and width); `rules` puts every pattern in
//! a source's scope into one `RegexSet` per field, and says what a verdict is made of.

use regex::{Regex, RegexBuilder};

use super::raw::{RawCondition, RawRewrite, RawRules};
use super::Sel;

/// The longest pattern accepted, in characters.
pub const MAX_PATTERN_CHARS: usize = 1000;
/// The most conditions (or rewrites, or selectors) in one list.
pub const MAX_RULES_PER_LIST: usize = 1000;
/// The compiled size one regex may take (the `regex` crate's matching is linear in the text
/// either way; this bounds its memory and compile time).
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// Where a rule was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    Global,
    Category(String),
    Source(String),
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Level::Global => write!(f, "[rules]"),
            Level::Category(c) => write!(f, "[categories.{c:?}.rules]"),
            Level::Source(id) => write!(f, "[sources.rules] of {id:?}"),
        }
    }
}

/// What a condition looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Title,
    /// The text of the content (or summary), not its markup.
    Content,
    Author,
    /// The item's own categories.
    Category,
    Link,
}

impl Field {
    pub const ALL: [Field; 5] = [
        Field::Title,
        Field::Content,
        Field::Author,
        Field::Category,
        Field::Link,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Field::Title => "title",
            Field::Content => "content",
            Field::Author => "author",
            Field::Category => "category",
            Field::Link => "link",
        }
    }
}

/// A literal or a `/regex/`, as conditions and `?filter=` write them.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// As written, for messages.
    pub written: String,
    regex: Regex,
}

impl Pattern {
    /// `/…/` (or `/…/i`, ignoring case) is a regex; anything else a literal, found anywhere
    /// in the text whatever its case and width (`ＡＩ`, `ai` and `AI` are one literal). Err
    /// says what is wrong, for a message naming where it was written.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        if text.chars().count() > MAX_PATTERN_CHARS {
            return Err(format!("longer than {MAX_PATTERN_CHARS} characters"));
        }
        let regex = match regex_body(text) {
            Some((body, ignore_case)) => bounded_regex(body, ignore_case)?,
            None if text.trim().is_empty() => {
                return Err("an empty pattern matches everything; leave the key out instead".into())
            }
            None => bounded_regex(&literal_regex(text), true)?,
        };
        Ok(Pattern {
            written: text.to_string(),
            regex,
        })
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }

    /// The compiled pattern (its flags written in it: `Regex::as_str` can build a set).
    pub fn regex(&self) -> &Regex {
        &self.regex
    }
}

/// A literal as a regex (run case-insensitively) that also ignores width: each printable
/// ASCII character matches its full-width form (U+FF01–FF5E, as Chinese and Japanese text
/// writes Latin letters, digits and punctuation) and a space the ideographic space. Matching
/// this way, rather than folding every text before matching, keeps a judged entry's text
/// unread by anything but the set's one scan.
fn literal_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 4);
    for c in text.chars() {
        let c = half_width(c);
        match c {
            ' ' => out.push_str("[ \u{3000}]"),
            '!'..='~' => {
                let full = char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap_or(c);
                out.push('[');
                out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
                out.push(full);
                out.push(']');
            }
            other => out.push_str(&regex::escape(other.encode_utf8(&mut [0; 4]))),
        }
    }
    out
}

/// The ASCII form of a full-width character (and a space for the ideographic one).
fn half_width(c: char) -> char {
    match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFF01 + 0x21).unwrap_or(c),
        0x3000 => ' ',
        _ => c,
    }
}

/// `/body/` or `/body/i`.
fn regex_body(text: &str) -> Option<(&str, bool)> {
    let inner = text.strip_prefix('/')?;
    if let Some(body) = inner.strip_suffix("/i") {
        return Some((body, true)).filter(|(b, _)| !b.is_empty());
    }
    inner
        .strip_suffix('/')
        .filter(|b| !b.is_empty())
        .map(|b| (b, false))
}

fn bounded_regex(body: &str, ignore_case: bool) -> Result<Regex, String> {
    // The flag is written into the pattern, so the sets built from `Regex::as_str` keep it.
    let pattern = if ignore_case {
        format!("(?i){body}")
    } else {
        body.to_string()
    };
    RegexBuilder::new(&pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("bad regex: {e}"))
}

/// One table of a `keep` or `block` list: every key must match.
#[derive(Debug, Clone)]
pub struct Condition {
    /// `{ title = "/广告/", author = "某某" }`, for messages.
    pub written: String,
    /// Each key's slot in its field's sets.
    slots: Vec<(Field, usize)>,
    /// Matches entries at most this many days old.
    pub max_age_days: Option<f64>,
}

/// What one field's text matched at one level: a flag per slot.
#[derive(Debug, Clone, Default)]
pub struct Matched(Vec<bool>);

impl Matched {
    fn has(&self, slot: usize) -> bool {
        self.0.get(slot).copied().unwrap_or(false)
    }

    /// Records that the pattern in `slot` matched.
    pub fn set(&mut self, slot: usize) {
        if self.0.len() <= slot {
            self.0.resize(slot + 1, false);
        }
        self.0[slot] = true;
    }
}

impl Condition {
    /// Whether it looks at a text (else only at the entry's age).
    pub fn reads_text(&self) -> bool {
        !self.slots.is_empty()
    }

    /// Whether the condition holds, given what each field matched (indexed as `Field::ALL`)
    /// and the entry's age in days.
    pub fn holds(&self, matched: &[Matched; 5], age_days: f64) -> bool {
        self.slots
            .iter()
            .all(|&(field, slot)| matched[field as usize].has(slot))
            && self.max_age_days.map_or(true, |max| age_days <= max)
    }
}

/// Which text a rewrite changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteField {
    Title,
    /// Each run of the content's (and summary's) text; the markup stays.
    Content,
}

#[derive(Debug, Clone)]
pub struct Rewrite {
    pub field: RewriteField,
    pub pattern: Regex,
    /// `$1`, `${name}`: the regex crate's replacement syntax.
    pub replace: String,
}

/// One level's rules, compiled.
#[derive(Debug, Clone)]
pub struct Rules {
    pub level: Level,
    pub keep: Vec<Condition>,
    pub block: Vec<Condition>,
    pub rewrite: Vec<Rewrite>,
    /// Removed from content, with every element inside.
    pub remove: Vec<Sel>,
    /// Each field's patterns (indexed as `Field::ALL`), slot `i` the `i`th written.
    patterns: [Vec<Pattern>; 5],
}

impl Rules {
    pub fn is_empty(&self) -> bool {
        self.keep.is_empty()
            && self.block.is_empty()
            && self.rewrite.is_empty()
            && self.remove.is_empty()
    }

    /// Whether any condition at this level looks at `field`.
    pub fn looks_at(&self, field: Field) -> bool {
        !self.patterns[field as usize].is_empty()
    }

    /// The patterns of `field`'s conditions, by slot.
    pub fn patterns(&self, field: Field) -> &[Pattern] {
        &self.patterns[field as usize]
    }
}

/// Why a level's rules were refused: the key (`block`, `rewrite`…) and what is wrong.
pub(super) struct RuleProblem {
    pub(super) key: &'static str,
    pub(super) message: String,
}

fn problem(key: &'static str, message: String) -> RuleProblem {
    RuleProblem { key, message }
}

/// Checks and compiles one level; `sel` reads a CSS selector the way every other key does.
pub(super) fn compile(
    level: Level,
    raw: &RawRules,
    sel: &dyn Fn(&str) -> Result<Sel, String>,
) -> Result<Rules, RuleProblem> {
    for (key, n) in [
        ("keep", raw.keep.len()),
        ("block", raw.block.len()),
        ("rewrite", raw.rewrite.len()),
        ("remove", raw.remove.len()),
    ] {
        if n > MAX_RULES_PER_LIST {
            return Err(problem(
                key,
                format!("{n} rules; at most {MAX_RULES_PER_LIST} in one list"),
            ));
        }
    }
    // Every pattern of every condition, by field, in slot order.
    let mut by_field: [Vec<Pattern>; 5] = Default::default();
    let mut conditions = |list: &[RawCondition], key: &'static str| {
        list.iter()
            .enumerate()
            .map(|(i, c)| {
                condition(c, &mut by_field)
                    .map_err(|m| problem(key, format!("rule #{}: {m}", i + 1)))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let keep = conditions(&raw.keep, "keep")?;
    let block = conditions(&raw.block, "block")?;
    let rewrite = raw
        .rewrite
        .iter()
        .enumerate()
        .map(|(i, r)| rewrite(r).map_err(|m| problem("rewrite", format!("rule #{}: {m}", i + 1))))
        .collect::<Result<Vec<_>, _>>()?;
    let remove = raw
        .remove
        .iter()
        .map(|s| sel(s).map_err(|m| problem("remove", m)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Rules {
        level,
        keep,
        block,
        rewrite,
        remove,
        patterns: by_field,
    })
}

fn condition(c: &RawCondition, by_field: &mut [Vec<Pattern>; 5]) -> Result<Condition, String> {
    let values = [&c.title, &c.content, &c.author, &c.category, &c.link];
    let mut slots = Vec::new();
    let mut written = Vec::new();
    for (field, value) in Field::ALL.into_iter().zip(values) {
        let Some(text) = value else { continue };
        let pattern =
            Pattern::parse(text).map_err(|m| format!("{} = {text:?}: {m}", field.key()))?;
        written.push(format!("{} = {text:?}", field.key()));
        let list = &mut by_field[field as usize];
        slots.push((field, list.len()));
        list.push(pattern);
    }
    let max_age_days = match &c.max_age_days {
        None => None,
        Some(v) => {
            let days = v
                .as_float()
                .or_else(|| v.as_integer().map(|i| i as f64))
                .filter(|d| d.is_finite() && *d > 0.0)
                .ok_or_else(|| format!("max_age_days = {v}: must be a number of days above 0"))?;
            written.push(format!("max_age_days = {v}"));
            Some(days)
        }
    };
    if written.is_empty() {
        return Err("an empty table; a condition needs title, content, author, category, link or max_age_days".into());
    }
    Ok(Condition {
        written: format!("{{ {} }}", written.join(", ")),
        slots,
        max_age_days,
    })
}

fn rewrite(r: &RawRewrite) -> Result<Rewrite, String> {
    let field = match r.field.as_str() {
        "title" => RewriteField::Title,
        "content" => RewriteField::Content,
        other => {
            return Err(format!(
                "field = {other:?}: a rewrite changes \"title\" or \"content\""
            ))
        }
    };
    if r.pattern.chars().count() > MAX_PATTERN_CHARS {
        return Err(format!(
            "pattern: longer than {MAX_PATTERN_CHARS} characters"
        ));
    }
    // A rewrite's pattern is always a regex; the slashes of a condition's are allowed too.
    let (body, ignore_case) = regex_body(&r.pattern).unwrap_or((&r.pattern, false));
    if body.is_empty() {
        return Err("pattern: empty".into());
    }
    let pattern =
        bounded_regex(body, ignore_case).map_err(|m| format!("pattern = {:?}: {m}", r.pattern))?;
    Ok(Rewrite {
        field,
        pattern,
        replace: r.replace.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_fold_case_and_width_regexes_match_as_written() {
        let p = Pattern::parse("ＡＩ").unwrap();
        assert!(p.is_match("New AI chips") && p.is_match("ai") && p.is_match("ＡＩ芯片"));
        let r = Pattern::parse("/^【广告】/").unwrap();
        assert!(r.is_match("【广告】理财") && !r.is_match("新闻【广告】"));
        let i = Pattern::parse("/sponsored/i").unwrap();
        assert!(i.is_match("SPONSORED post"));
        assert!(Pattern::parse("/(/").unwrap_err().contains("bad regex"));
        assert!(Pattern::parse("  ").is_err());
        assert!(
            Pattern::parse("/").unwrap().is_match("a/b"),
            "a lone slash is a literal"
        );
        let huge = format!("/{}/", "(a|b)".repeat(250));
        assert!(Pattern::parse(&huge).is_err(), "over the length bound");
        assert!(Pattern::parse("/(?:[a-z]{1,100}){1,100}/")
            .unwrap_err()
            .contains("bad regex"));
    }

    fn load(text: &str) -> Result<super::super::Config, String> {
        super::super::Config::from_toml(std::path::Path::new("/etc/t.toml"), text)
            .map_err(|e| e.to_string())
    }

    const SOURCE: &str = "[[sources]]\nid = \"cs\"\nname = \"CS\"\nurl = \"https://example.com/f\"\ncategory = \"金融\"\n";

    #[test]
    fn the_three_levels_load_and_errors_name_the_level_the_key_and_the_rule() {
        let text = format!(
            "[rules]\nblock = [{{ title = \"/广告|推广/\" }}, {{ author = \"某某\", category = \"公告\" }}]\n\
             keep = [{{ content = \"碳中和\" }}]\n\
             rewrite = [{{ field = \"title\", pattern = \"^【[^】]*】\", replace = \"\" }}]\n\
             remove = [\".share\", \"img[width='1']\"]\n\
             [categories.\"金融\".rules]\nkeep = [{{ max_age_days = 7 }}, {{ title = \"ＡＩ\" }}]\n\
             {SOURCE}[sources.rules]\nblock = [{{ link = \"/\\\\/ads\\\\//\" }}]\n"
        );
        let c = load(&text).unwrap();
        let global = c.rules.global.as_ref().unwrap();
        assert_eq!(
            (
                global.block.len(),
                global.keep.len(),
                global.rewrite.len(),
                global.remove.len()
            ),
            (2, 1, 1, 2)
        );
        assert_eq!(
            global.block[1].written,
            "{ author = \"某某\", category = \"公告\" }"
        );
        assert_eq!(c.rules.categories["金融"].keep[0].max_age_days, Some(7.0));
        assert_eq!(
            c.sources[0].rules.as_ref().unwrap().level,
            Level::Source("cs".into())
        );

        let bad = format!(
            "{SOURCE}[sources.rules]\nblock = [{{ title = \"ok\" }}, {{ title = \"/[/\" }}]\n"
        );
        let e = load(&bad).unwrap_err();
        assert!(
            e.contains("source \"cs\"")
                && e.contains("`rules.block`")
                && e.contains("rule #2")
                && e.contains("bad regex"),
            "{e}"
        );
        assert!(e.contains("| block = "), "the line is shown: {e}");
        let e = load(&format!("[rules]\nkeep = [{{ titel = \"x\" }}]\n{SOURCE}")).unwrap_err();
        assert!(e.contains("titel"), "{e}");
        let e = load(&format!("[rules]\nkeep = [{{}}]\n{SOURCE}")).unwrap_err();
        assert!(e.contains("`keep`") && e.contains("empty table"), "{e}");
        let e = load(&format!("[categories.\"金融\".rules]\nrewrite = [{{ field = \"author\", pattern = \"x\" }}]\n{SOURCE}")).unwrap_err();
        assert!(
            e.contains("[categories.\"金融\".rules]") && e.contains("`rewrite`"),
            "{e}"
        );
        let e = load(&format!("[rules]\nremove = [\"p >> \"]\n{SOURCE}")).unwrap_err();
        assert!(
            e.contains("`remove`") && e.contains("bad CSS selector"),
            "{e}"
        );
        let e = load(&format!(
            "[rules]\nblock = [{{ max_age_days = -1 }}]\n{SOURCE}"
        ))
        .unwrap_err();
        assert!(e.contains("max_age_days"), "{e}");
        assert!(load(&format!("[rules]\n{SOURCE}"))
            .unwrap()
            .rules
            .global
            .is_none());
    }

    #[test]
    fn a_literal_ignores_case_and_width_both_ways() {
        let p = Pattern::parse("Tesla 碳中和, 50%").unwrap();
        for text in [
            "TESLA 碳中和, 50%",
            "ｔｅｓｌａ　碳中和，　５０％",
            "news: tesla 碳中和, 50% up",
        ] {
            assert!(p.is_match(text), "{text}");
        }
        assert!(!p.is_match("Tesla 碳中和 50%"));
        let special = Pattern::parse("a.b[c]-^$\\").unwrap();
        assert!(special.is_match("A.B[C]-^$\\") && !special.is_match("axb[c]-^$\\"));
    }
}
