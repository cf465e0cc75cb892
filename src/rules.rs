//! Rules on the way out: which stored entries a feed shows, and in what words.
//!
//! Every entry stays stored; rules are applied each time a feed or page is rendered, so a rule
//! changed or removed takes effect on the next render with no refetch. A source's words are
//! judged by the rules in its scope: `[rules]`, its category's, its own. Block wins over
//! keep; where a keep rule is in scope, only what matches one is shown. A story is one: when
//! any source's copy of it (any member of its near-duplicate cluster) is blocked, no source
//! shows it, unless a keep rule of that source's own `[sources.rules]` matches its words.
//! Conditions see what the source wrote; rewrites and `remove` change what is shown.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::{
    Config, Field, Level, Matched, Pattern, RewriteField, Rules, SourceConfig, REGEX_SIZE_LIMIT,
};
use crate::model::{Copy, Scope, StoredEntry};
use crate::text;

mod memo;

use memo::Memo;

/// The rules of every configured source, indexed once per config.
pub struct Book {
    /// The scope of a source that left the config: the global rules.
    global: Arc<Scoped>,
    /// Empty when no rule is configured anywhere.
    sources: HashMap<String, SourceRules>,
    /// What each copy's fields matched, per scope (`Scoped::id`).
    copies: Memo<CopyHits>,
}

/// What one copy's fields matched at each level of its scope, and whether its title and its
/// summary and content have anything for the scope's rewrites.
struct CopyHits {
    levels: Vec<[Matched; 5]>,
    any: bool,
    title_rewrites: bool,
    body_rewrites: [bool; 2],
}

struct SourceRules {
    source: Arc<SourceConfig>,
    scoped: Arc<Scoped>,
}

/// The rules in one source's scope: its levels (global, category, own: those that have
/// rules, in that order) and, per field, every pattern of every level in one `RegexSet`, so
/// a text is scanned once whatever the number of rules and levels (and the rewrites' patterns
/// in a set per field, so a text none finds its pattern in is scanned once). Sources with the
/// same levels (a category's, without rules of their own) share one.
#[derive(Default)]
struct Scoped {
    /// Its number in the book, which keys what its copies matched.
    id: usize,
    levels: Vec<Arc<Rules>>,
    fields: [FieldMatcher; 5],
    title_rewrites: RewriteSet,
    body_rewrites: RewriteSet,
    /// A keep or block condition on age alone: it holds with no text matched.
    age_only: bool,
    /// A keep rule at any level.
    keeps: bool,
}

/// A field's patterns across a scope's levels.
#[derive(Default)]
enum FieldMatcher {
    #[default]
    None,
    /// `owners[i]`: the level and slot of the set's `i`th pattern.
    Set {
        set: regex::RegexSet,
        owners: Vec<(usize, usize)>,
    },
}

impl Scoped {
    fn new(id: usize, levels: Vec<Arc<Rules>>) -> Scoped {
        let mut fields: [FieldMatcher; 5] = Default::default();
        for field in Field::ALL {
            let mut patterns = Vec::new();
            let mut owners = Vec::new();
            for (l, rules) in levels.iter().enumerate() {
                for (slot, p) in rules.patterns(field).iter().enumerate() {
                    patterns.push(p.regex().as_str());
                    owners.push((l, slot));
                }
            }
            if let Some(set) = one_set(&patterns) {
                fields[field as usize] = FieldMatcher::Set { set, owners };
            }
        }
        let rewrites = |field| {
            let patterns: Vec<&str> = levels
                .iter()
                .flat_map(|r| &r.rewrite)
                .filter(|w| w.field == field)
                .map(|w| w.pattern.as_str())
                .collect();
            RewriteSet {
                any: !patterns.is_empty(),
                set: one_set(&patterns),
            }
        };
        let conditions = || levels.iter().flat_map(|r| r.keep.iter().chain(&r.block));
        Scoped {
            id,
            title_rewrites: rewrites(RewriteField::Title),
            body_rewrites: rewrites(RewriteField::Content),
            age_only: conditions().any(|c| !c.reads_text()),
            keeps: levels.iter().any(|r| !r.keep.is_empty()),
            fields,
            levels,
        }
    }

    /// Whether any pattern looks at a copy's words (else only ages and `remove` apply).
    fn reads_words(&self) -> bool {
        self.fields.iter().any(|f| !matches!(f, FieldMatcher::None))
            || self.title_rewrites.any
            || self.body_rewrites.any
    }

    /// Whether a rewrite of content finds its pattern in the text of `html` (not read when
    /// there is none).
    fn body_rewrites_in(&self, html: &str) -> bool {
        self.body_rewrites.any && self.body_rewrites.may_match(&text::visible_text(html))
    }

    /// Adds what `text` (one value of `field`) matches to `matched` (per level); whether it
    /// matched anything.
    fn match_field(&self, field: Field, text: &str, matched: &mut [[Matched; 5]]) -> bool {
        let FieldMatcher::Set { set, owners } = &self.fields[field as usize] else {
            return false;
        };
        // Most texts match nothing: one forward scan says so, and only a text that matches
        // something pays for finding every pattern it matches.
        if !set.is_match(text) {
            return false;
        }
        for i in set.matches(text).iter() {
            let (level, slot) = owners[i];
            matched[level][field as usize].set(slot);
        }
        true
    }
}

/// One field's rewrite patterns in one set, to tell the texts none of them finds anything in.
#[derive(Default)]
struct RewriteSet {
    any: bool,
    /// None when there are none, or when they did not fit one set (then every text is tried).
    set: Option<regex::RegexSet>,
}

impl RewriteSet {
    fn may_match(&self, text: &str) -> bool {
        self.any && self.set.as_ref().map_or(true, |set| set.is_match(text))
    }
}

/// The patterns in one `RegexSet`; None when there are none.
fn one_set(patterns: &[&str]) -> Option<regex::RegexSet> {
    if patterns.is_empty() {
        return None;
    }
    // Each pattern compiled within the limit at load; the set may take all of theirs.
    let set = regex::RegexSetBuilder::new(patterns)
        .size_limit(REGEX_SIZE_LIMIT * patterns.len())
        .build();
    match set {
        Ok(set) => Some(set),
        Err(e) => {
            // Not expected within those limits; the patterns then go unmatched, said.
            tracing::error!(error = %e, "rules: a field's patterns do not fit one set");
            None
        }
    }
}

/// Which feed an entry is judged for: its scope and the query's narrowing.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub scope: &'a Scope,
    pub source: Option<&'a str>,
    pub tag: Option<&'a str>,
}

/// A subscriber's own narrowing (`?filter=`, `?filterout=`): on the title and text shown.
#[derive(Debug, Clone, Default)]
pub struct Subscription {
    pub filter: Option<Pattern>,
    pub filterout: Option<Pattern>,
}

impl Subscription {
    pub fn is_empty(&self) -> bool {
        self.filter.is_none() && self.filterout.is_none()
    }

    fn lets_through(&self, e: &StoredEntry) -> bool {
        if self.is_empty() {
            return true;
        }
        let body = e.content.as_deref().or(e.summary.as_deref()).unwrap_or("");
        let text = format!("{}\n{}", e.title, text::visible_text(body));
        self.filter.as_ref().map_or(true, |p| p.is_match(&text))
            && !self.filterout.as_ref().is_some_and(|p| p.is_match(&text))
    }
}

/// One rule, by where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRef {
    pub level: Level,
    /// "keep", "block", "rewrite" or "remove".
    pub list: &'static str,
    pub index: usize,
    /// The rule as written.
    pub written: String,
}

impl std::fmt::Display for RuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} #{} of {}: {}",
            self.list,
            self.index + 1,
            self.level,
            self.written
        )
    }
}

/// What the rules say of an entry in a view.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Shown in the words of `source`; `keep` is the keep rule it matched, if one was in scope.
    Shown {
        source: Option<String>,
        keep: Option<RuleRef>,
    },
    /// Its own words matched a block rule.
    Blocked(RuleRef),
    /// Another copy of the story (the entry `entry` at `source`) matched a block rule.
    StoryBlocked {
        rule: RuleRef,
        entry: i64,
        source: String,
    },
    /// Keep rules are in scope and it matched none.
    NotKept,
}

/// A verdict and the rewrites (and removals) that changed the words shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub changed_by: Vec<RuleRef>,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Shown { keep: Some(k), .. } => write!(f, "kept by {k}"),
            Verdict::Shown { keep: None, .. } => write!(f, "kept"),
            Verdict::Blocked(rule) => write!(f, "dropped by {rule}"),
            Verdict::StoryBlocked {
                rule,
                entry,
                source,
            } => write!(
                f,
                "dropped: its story is blocked at source {source:?} (entry {entry}) by {rule}"
            ),
            Verdict::NotKept => write!(f, "dropped: matches no keep rule in its scope"),
        }
    }
}

impl std::fmt::Display for Judgement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.verdict)?;
        for rule in &self.changed_by {
            write!(f, "; changed by {rule}")?;
        }
        Ok(())
    }
}

/// One copy judged by its source's rules alone.
enum CopyVerdict {
    Kept(Option<RuleRef>),
    Blocked(RuleRef),
    NotKept,
}

impl Book {
    pub fn new(config: &Config) -> Book {
        let global = config.rules.global.clone();
        let any = global.is_some()
            || !config.rules.categories.is_empty()
            || config.sources.iter().any(|s| s.rules.is_some());
        let mut scoped: HashMap<Vec<*const Rules>, Arc<Scoped>> = HashMap::new();
        let mut sources = HashMap::new();
        if any {
            for s in &config.sources {
                let levels: Vec<Arc<Rules>> = global
                    .iter()
                    .chain(config.rules.categories.get(&s.category))
                    .chain(&s.rules)
                    .cloned()
                    .collect();
                let key = levels.iter().map(Arc::as_ptr).collect();
                // 0 is the global scope's number.
                let id = scoped.len() + 1;
                let scoped = scoped
                    .entry(key)
                    .or_insert_with(|| Arc::new(Scoped::new(id, levels)))
                    .clone();
                let rules = SourceRules {
                    source: s.clone(),
                    scoped,
                };
                sources.insert(s.id.clone(), rules);
            }
        }
        let global = Arc::new(Scoped::new(0, global.into_iter().collect()));
        Book {
            global,
            sources,
            copies: Memo::default(),
        }
    }

    /// No rule anywhere: every entry is shown as stored, and no copies need reading.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    fn scoped(&self, source: &str) -> &Scoped {
        match self.sources.get(source) {
            Some(s) => &s.scoped,
            // A source that left the config: the global rules still apply to its words.
            None => &self.global,
        }
    }

    fn in_view(&self, source: &str, view: &View<'_>) -> bool {
        let Some(s) = self.sources.get(source).map(|s| &s.source) else {
            return false;
        };
        let in_scope = match view.scope {
            Scope::All => true,
            Scope::Category(c) => &s.category == c,
            Scope::Source(id) => &s.id == id,
            Scope::Tag(t) => s.tags.contains(t),
        };
        in_scope
            && view.source.map_or(true, |id| s.id == id)
            && view.tag.map_or(true, |t| s.tags.iter().any(|x| x == t))
    }

    /// The verdict on `e` (read with its copies) in `view` at `now`.
    pub fn judge(&self, view: &View<'_>, e: &StoredEntry, now: DateTime<Utc>) -> Verdict {
        self.verdict(view, e, now).0
    }

    /// The verdict, and what the copy whose words are shown matched.
    fn verdict(
        &self,
        view: &View<'_>,
        e: &StoredEntry,
        now: DateTime<Utc>,
    ) -> (Verdict, Option<Arc<CopyHits>>) {
        if self.is_empty() || e.copies.is_empty() {
            let source = e.sources.first().map(|s| s.source_id.clone());
            return (Verdict::Shown { source, keep: None }, None);
        }
        let mut story_block = None;
        let mut first_relevant = None;
        let mut shown = None;
        for c in &e.copies {
            let (verdict, hits) = self.judge_copy(self.scoped(&c.source_id), c, now);
            if let CopyVerdict::Blocked(rule) = &verdict {
                story_block.get_or_insert_with(|| (rule.clone(), c));
            }
            if c.entry_id != e.id || !self.in_view(&c.source_id, view) {
                continue;
            }
            match verdict {
                CopyVerdict::Kept(keep) => {
                    let own = keep
                        .as_ref()
                        .is_some_and(|k| matches!(k.level, Level::Source(_)));
                    // A keep rule of the source's own overrides a block on the story.
                    if own {
                        let source = Some(c.source_id.clone());
                        return (Verdict::Shown { source, keep }, hits);
                    }
                    shown.get_or_insert((c, keep, hits));
                }
                other => {
                    first_relevant.get_or_insert(other);
                }
            }
        }
        let verdict = match (story_block, shown, first_relevant) {
            (Some((rule, c)), Some(_), _) => Verdict::StoryBlocked {
                rule,
                entry: c.entry_id,
                source: c.source_id.clone(),
            },
            (None, Some((c, keep, hits)), _) => {
                let source = Some(c.source_id.clone());
                return (Verdict::Shown { source, keep }, hits);
            }
            (_, None, Some(CopyVerdict::Blocked(rule))) => Verdict::Blocked(rule),
            (_, None, Some(_)) => Verdict::NotKept,
            // No copy in view (its sources left the config since the read): as stored.
            (_, None, None) => Verdict::Shown {
                source: e.sources.first().map(|s| s.source_id.clone()),
                keep: None,
            },
        };
        (verdict, None)
    }

    /// `e` as `view` shows it, or None when the rules or the subscription leave it out.
    pub fn show(
        &self,
        view: &View<'_>,
        subscription: &Subscription,
        mut e: StoredEntry,
        now: DateTime<Utc>,
    ) -> Option<StoredEntry> {
        if !self.is_empty() {
            let (Verdict::Shown { source, .. }, hits) = self.verdict(view, &e, now) else {
                return None;
            };
            if let Some(source) = source {
                self.rewrite(&mut e, &source, hits.as_deref());
            }
            e.copies = Vec::new();
        }
        subscription.lets_through(&e).then_some(e)
    }

    /// The verdict on `e` and what its rewrites changed: what `tributary rules test` prints.
    pub fn explain(&self, view: &View<'_>, e: &StoredEntry, now: DateTime<Utc>) -> Judgement {
        let verdict = self.judge(view, e, now);
        let changed_by = match &verdict {
            Verdict::Shown {
                source: Some(source),
                ..
            } => self.rewrite(&mut e.clone(), source, None),
            _ => Vec::new(),
        };
        Judgement {
            verdict,
            changed_by,
        }
    }

    /// Puts `source`'s words on `e` (a merged feed shows the words of the first source that
    /// keeps the story), then applies that source's rewrites and removals; returns the rules
    /// that changed something. `hits`: what that copy matched, when it was judged.
    fn rewrite(&self, e: &mut StoredEntry, source: &str, hits: Option<&CopyHits>) -> Vec<RuleRef> {
        // The copies are not shown: their words are moved, not copied.
        if let Some(c) = e
            .copies
            .iter_mut()
            .find(|c| c.entry_id == e.id && c.source_id == source)
        {
            e.title = std::mem::take(&mut c.title);
            e.link = c.link.take();
            e.summary = c.summary.take();
            e.content = c.content.take();
            e.authors = std::mem::take(&mut c.authors);
        }
        let scoped = self.scoped(source);
        let levels = &scoped.levels;
        let mut changed = Vec::new();
        let title = hits.map_or_else(
            || scoped.title_rewrites.may_match(&e.title),
            |h| h.title_rewrites,
        );
        if title {
            for rules in levels {
                for (i, r) in rules.rewrite.iter().enumerate() {
                    if r.field == RewriteField::Title {
                        let new = r.pattern.replace_all(&e.title, r.replace.as_str());
                        if new != e.title {
                            e.title = new.trim().to_string();
                            changed.push(rule_ref(rules, "rewrite", i, written_rewrite(r)));
                        }
                    }
                }
            }
        }
        let removes = levels.iter().any(|r| !r.remove.is_empty());
        if removes || scoped.body_rewrites.any {
            for (k, body) in [&mut e.summary, &mut e.content].into_iter().enumerate() {
                let Some(html) = body else {
                    continue;
                };
                // Nothing to remove and no rewrite finds its pattern in the text: no parse.
                let found =
                    hits.map_or_else(|| scoped.body_rewrites_in(html), |h| h.body_rewrites[k]);
                if removes || found {
                    edit_body(levels, html, &mut changed);
                }
            }
        }
        changed.dedup();
        changed
    }
}

/// Applies the levels' content rewrites and removals to one HTML text.
fn edit_body(levels: &[Arc<Rules>], html: &mut String, changed: &mut Vec<RuleRef>) {
    let removes: Vec<(&Rules, usize, &scraper::Selector)> = levels
        .iter()
        .flat_map(|r| {
            r.remove
                .iter()
                .enumerate()
                .map(move |(i, s)| (&**r, i, &s.selector))
        })
        .collect();
    let rewrites: Vec<(&Rules, usize)> = levels
        .iter()
        .flat_map(|r| {
            (0..r.rewrite.len())
                .filter(|&i| r.rewrite[i].field == RewriteField::Content)
                .map(move |i| (&**r, i))
        })
        .collect();
    let selectors: Vec<&scraper::Selector> = removes.iter().map(|(_, _, s)| *s).collect();
    let mut hits = Vec::new();
    let mut run = |t: &str| {
        let mut out: Option<String> = None;
        for (n, (r, i)) in rewrites.iter().enumerate() {
            let w = &r.rewrite[*i];
            let current = out.as_deref().unwrap_or(t);
            if let std::borrow::Cow::Owned(new) = w.pattern.replace_all(current, w.replace.as_str())
            {
                if new != current {
                    hits.push(n);
                    out = Some(new);
                }
            }
        }
        out
    };
    let edited = text::edit_html(
        html,
        text::Edit {
            remove: &selectors,
            text: &mut run,
        },
    );
    for i in edited.removed {
        let (r, k, _) = removes[i];
        changed.push(rule_ref(r, "remove", k, format!("{:?}", r.remove[k].text)));
    }
    hits.sort_unstable();
    hits.dedup();
    for n in hits {
        let (r, i) = rewrites[n];
        changed.push(rule_ref(r, "rewrite", i, written_rewrite(&r.rewrite[i])));
    }
    *html = edited.html;
}

fn rule_ref(rules: &Rules, list: &'static str, index: usize, written: String) -> RuleRef {
    RuleRef {
        level: rules.level.clone(),
        list,
        index,
        written,
    }
}

fn written_rewrite(r: &crate::config::Rewrite) -> String {
    let field = match r.field {
        RewriteField::Title => "title",
        RewriteField::Content => "content",
    };
    format!(
        "{{ field = {field:?}, pattern = {:?}, replace = {:?} }}",
        r.pattern.as_str(),
        r.replace
    )
}

impl Book {
    /// One copy judged by the rules of its source's scope at `now`.
    fn judge_copy(
        &self,
        scoped: &Scoped,
        c: &Copy,
        now: DateTime<Utc>,
    ) -> (CopyVerdict, Option<Arc<CopyHits>>) {
        if scoped.levels.is_empty() {
            return (CopyVerdict::Kept(None), None);
        }
        let matched = self.matches(scoped, c);
        let verdict = copy_verdict(scoped, &matched, (now - c.published).num_seconds());
        (verdict, Some(matched))
    }

    /// What each field of `c` matched at each level of the scope (remembered: the words of a
    /// copy change only when its source changes them).
    fn matches(&self, scoped: &Scoped, c: &Copy) -> Arc<CopyHits> {
        if !scoped.reads_words() {
            // Nothing to look for (rules on age, or `remove` alone): nothing to remember.
            return Arc::new(scan_copy(scoped, c));
        }
        let lists = [&c.authors, &c.categories];
        // The lists' lengths, and which bodies there are: an empty body is not a missing one.
        let present = |b: &Option<String>| if b.is_some() { "+" } else { "-" };
        let counts = [
            lists[0].len().to_string(),
            lists[1].len().to_string(),
            format!("{}{}", present(&c.summary), present(&c.content)),
        ];
        let summary = c.summary.as_deref().unwrap_or("");
        let content = c.content.as_deref().unwrap_or("");
        let texts = [
            c.title.as_str(),
            c.link.as_deref().unwrap_or(""),
            summary,
            content,
        ]
        .into_iter()
        .chain(counts.iter().map(String::as_str))
        .chain(lists.into_iter().flatten().map(String::as_str));
        self.copies
            .get(self.copies.key(scoped.id, texts), || scan_copy(scoped, c))
    }
}

/// The verdict of a copy's scope on what it matched, at its age.
fn copy_verdict(scoped: &Scoped, matched: &CopyHits, age_seconds: i64) -> CopyVerdict {
    let levels = &scoped.levels;
    // Every condition but one on age alone needs a text matched.
    if !matched.any && !scoped.age_only {
        return match scoped.keeps {
            true => CopyVerdict::NotKept,
            false => CopyVerdict::Kept(None),
        };
    }
    let age_days = age_seconds as f64 / 86_400.0;
    for (rules, m) in levels.iter().zip(&matched.levels) {
        if let Some(i) = rules.block.iter().position(|k| k.holds(m, age_days)) {
            let written = rules.block[i].written.clone();
            return CopyVerdict::Blocked(rule_ref(rules, "block", i, written));
        }
    }
    if !scoped.keeps {
        return CopyVerdict::Kept(None);
    }
    for (rules, m) in levels.iter().zip(&matched.levels) {
        if let Some(i) = rules.keep.iter().position(|k| k.holds(m, age_days)) {
            let written = rules.keep[i].written.clone();
            return CopyVerdict::Kept(Some(rule_ref(rules, "keep", i, written)));
        }
    }
    CopyVerdict::NotKept
}

/// What each field of `c` matches at each level of the scope; a field no level looks at is
/// not read, and the body's text (its content, else its summary) is read out of its HTML once
/// for the conditions and the rewrites.
fn scan_copy(scoped: &Scoped, c: &Copy) -> CopyHits {
    let body = c.content.as_deref().or(c.summary.as_deref());
    let reads_body = !matches!(scoped.fields[Field::Content as usize], FieldMatcher::None);
    let body_text = body.filter(|_| reads_body).map(text::visible_text);
    let mut levels: Vec<[Matched; 5]> = vec![Default::default(); scoped.levels.len()];
    let mut any = false;
    for field in Field::ALL {
        if matches!(scoped.fields[field as usize], FieldMatcher::None) {
            continue;
        }
        let values: Vec<&str> = match field {
            Field::Title => vec![c.title.as_str()],
            Field::Content => vec![body_text.as_deref().unwrap_or("")],
            Field::Author => c.authors.iter().map(String::as_str).collect(),
            Field::Category => c.categories.iter().map(String::as_str).collect(),
            Field::Link => c.link.as_deref().into_iter().collect(),
        };
        for value in values {
            any |= scoped.match_field(field, value, &mut levels);
        }
    }
    let body_rewrites = [&c.summary, &c.content].map(|html| {
        let Some(html) = html.as_deref() else {
            return false;
        };
        match &body_text {
            // The text the conditions read: not read out again.
            Some(text) if body.is_some_and(|b| std::ptr::eq(b, html)) => {
                scoped.body_rewrites.may_match(text)
            }
            _ => scoped.body_rewrites_in(html),
        }
    });
    CopyHits {
        levels,
        any,
        title_rewrites: scoped.title_rewrites.may_match(&c.title),
        body_rewrites,
    }
}

#[cfg(test)]
mod tests;
