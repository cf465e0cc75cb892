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

/// The rules of every configured source, indexed once per config.
pub struct Book {
    /// The scope of a source that left the config: the global rules.
    global: Arc<Scoped>,
    /// Empty when no rule is configured anywhere.
    sources: HashMap<String, SourceRules>,
}

struct SourceRules {
    source: Arc<SourceConfig>,
    scoped: Arc<Scoped>,
}

/// The rules in one source's scope: its levels (global, category, own: those that have
/// rules, in that order) and, per field, every pattern of every level in one `RegexSet`, so
/// a text is scanned once whatever the number of rules and levels. Sources with the same
/// levels (a category's, without rules of their own) share one.
#[derive(Default)]
struct Scoped {
    levels: Vec<Arc<Rules>>,
    fields: [FieldMatcher; 5],
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
    fn new(levels: Vec<Arc<Rules>>) -> Scoped {
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
            if patterns.is_empty() {
                continue;
            }
            // Each pattern compiled within the limit at load; the set may take all of theirs.
            let set = regex::RegexSetBuilder::new(&patterns)
                .size_limit(REGEX_SIZE_LIMIT * patterns.len())
                .build();
            match set {
                Ok(set) => fields[field as usize] = FieldMatcher::Set { set, owners },
                Err(e) => {
                    // Not expected within those limits; the patterns then go unmatched, said.
                    tracing::error!(error = %e, "rules: a field's patterns do not fit one set");
                }
            }
        }
        Scoped { levels, fields }
    }

    /// Adds what `text` (one value of `field`) matches to `matched` (per level).
    fn match_field(&self, field: Field, text: &str, matched: &mut [[Matched; 5]]) {
        let FieldMatcher::Set { set, owners } = &self.fields[field as usize] else {
            return;
        };
        // Most texts match nothing: one forward scan says so, and only a text that matches
        // something pays for finding every pattern it matches.
        if !set.is_match(text) {
            return;
        }
        for i in set.matches(text).iter() {
            let (level, slot) = owners[i];
            matched[level][field as usize].set(slot);
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
                let scoped = scoped
                    .entry(key)
                    .or_insert_with(|| Arc::new(Scoped::new(levels)))
                    .clone();
                let rules = SourceRules {
                    source: s.clone(),
                    scoped,
                };
                sources.insert(s.id.clone(), rules);
            }
        }
        let global = Arc::new(Scoped::new(global.into_iter().collect()));
        Book { global, sources }
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
        if self.is_empty() || e.copies.is_empty() {
            let source = e.sources.first().map(|s| s.source_id.clone());
            return Verdict::Shown { source, keep: None };
        }
        let mut story_block = None;
        let mut first_relevant = None;
        let mut shown = None;
        for c in &e.copies {
            let verdict = judge_copy(self.scoped(&c.source_id), c, now);
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
                        return Verdict::Shown {
                            source: Some(c.source_id.clone()),
                            keep,
                        };
                    }
                    shown.get_or_insert((c, keep));
                }
                other => {
                    first_relevant.get_or_insert(other);
                }
            }
        }
        match (story_block, shown, first_relevant) {
            (Some((rule, c)), Some(_), _) => Verdict::StoryBlocked {
                rule,
                entry: c.entry_id,
                source: c.source_id.clone(),
            },
            (None, Some((c, keep)), _) => Verdict::Shown {
                source: Some(c.source_id.clone()),
                keep,
            },
            (_, None, Some(CopyVerdict::Blocked(rule))) => Verdict::Blocked(rule),
            (_, None, Some(_)) => Verdict::NotKept,
            // No copy in view (its sources left the config since the read): as stored.
            (_, None, None) => Verdict::Shown {
                source: e.sources.first().map(|s| s.source_id.clone()),
                keep: None,
            },
        }
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
            let Verdict::Shown { source, .. } = self.judge(view, &e, now) else {
                return None;
            };
            if let Some(source) = source {
                self.rewrite(&mut e, &source);
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
            } => self.rewrite(&mut e.clone(), source),
            _ => Vec::new(),
        };
        Judgement {
            verdict,
            changed_by,
        }
    }

    /// Puts `source`'s words on `e` (a merged feed shows the words of the first source that
    /// keeps the story), then applies that source's rewrites and removals; returns the rules
    /// that changed something.
    fn rewrite(&self, e: &mut StoredEntry, source: &str) -> Vec<RuleRef> {
        if let Some(c) = e
            .copies
            .iter()
            .find(|c| c.entry_id == e.id && c.source_id == source)
        {
            e.title.clone_from(&c.title);
            e.link.clone_from(&c.link);
            e.summary.clone_from(&c.summary);
            e.content.clone_from(&c.content);
            e.authors.clone_from(&c.authors);
        }
        let levels = &self.scoped(source).levels;
        let mut changed = Vec::new();
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
        let body_edits = levels.iter().any(|r| {
            !r.remove.is_empty() || r.rewrite.iter().any(|w| w.field == RewriteField::Content)
        });
        if body_edits {
            for html in [&mut e.summary, &mut e.content].into_iter().flatten() {
                edit_body(levels, html, &mut changed);
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
    // Nothing to remove and no rewrite finds its pattern in the text: no parse.
    if removes.is_empty() {
        let text = text::visible_text(html);
        if !rewrites
            .iter()
            .any(|(r, i)| r.rewrite[*i].pattern.is_match(&text))
        {
            return;
        }
    }
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

/// One copy judged by the rules of its source's scope at `now`.
fn judge_copy(scoped: &Scoped, c: &Copy, now: DateTime<Utc>) -> CopyVerdict {
    let levels = &scoped.levels;
    if levels.is_empty() {
        return CopyVerdict::Kept(None);
    }
    let matched = matches(scoped, c);
    let age_days = (now - c.published).num_seconds() as f64 / 86_400.0;
    for (rules, m) in levels.iter().zip(&matched) {
        if let Some(i) = rules.block.iter().position(|k| k.holds(m, age_days)) {
            let written = rules.block[i].written.clone();
            return CopyVerdict::Blocked(rule_ref(rules, "block", i, written));
        }
    }
    if levels.iter().all(|r| r.keep.is_empty()) {
        return CopyVerdict::Kept(None);
    }
    for (rules, m) in levels.iter().zip(&matched) {
        if let Some(i) = rules.keep.iter().position(|k| k.holds(m, age_days)) {
            let written = rules.keep[i].written.clone();
            return CopyVerdict::Kept(Some(rule_ref(rules, "keep", i, written)));
        }
    }
    CopyVerdict::NotKept
}

/// What each field of `c` matched at each level of the scope; a field no level looks at is
/// not read.
fn matches(scoped: &Scoped, c: &Copy) -> Vec<[Matched; 5]> {
    let mut out: Vec<[Matched; 5]> = vec![Default::default(); scoped.levels.len()];
    for field in Field::ALL {
        if matches!(scoped.fields[field as usize], FieldMatcher::None) {
            continue;
        }
        let body;
        let values: Vec<&str> = match field {
            Field::Title => vec![c.title.as_str()],
            Field::Content => {
                let html = c.content.as_deref().or(c.summary.as_deref()).unwrap_or("");
                body = text::visible_text(html);
                vec![&*body]
            }
            Field::Author => c.authors.iter().map(String::as_str).collect(),
            Field::Category => c.categories.iter().map(String::as_str).collect(),
            Field::Link => c.link.as_deref().into_iter().collect(),
        };
        for value in values {
            scoped.match_field(field, value, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests;
