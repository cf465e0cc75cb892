//! Looking at what a source gives without changing anything: `check` (a dry run of one
//! source's fetch, with what its rules would say of each item) and `rules test` (what the
//! rules do to its newest stored entries).

use std::process::ExitCode;

use anyhow::Context;

use super::emit;
use crate::config::{Config, SourceConfig};
use crate::fetch::{Fetcher, Limits};
use crate::model::{Copy, Entry, EntrySource, FeedQuery, Scope, StoredEntry};
use crate::refresh;
use crate::rules::{Book, Verdict, View};
use crate::store::{PageRead, Store};

pub(super) async fn check(
    config: &Config,
    id: &str,
    url: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let source = config
        .source(id)
        .with_context(|| format!("no source {id:?} in {}", config.path.display()))?;
    let url = url
        .map(|u| url::Url::parse(u).with_context(|| format!("--url {u:?}")))
        .transpose()?;
    let fetcher = Fetcher::new(&config.fetch, Limits::new(&config.fetch))?;
    let mut out = String::new();
    let report = match refresh::check_source(&fetcher, source, url.as_ref()).await {
        Ok(report) => report,
        Err(e) => {
            let shown = url.as_ref().unwrap_or(&source.url);
            outln!(out, "{id}: error: {e} ({shown})");
            emit(&out)?;
            return Ok(ExitCode::from(1));
        }
    };
    outln!(
        out,
        "{id}: {} items from {} ({}, from {}){}",
        report.entries.len(),
        report.url,
        report.encoding,
        report.provenance,
        if source.article.is_some() {
            format!("; {} article pages read", report.articles_read)
        } else {
            String::new()
        }
    );
    let tz = source.timezone;
    let book = Book::new(config);
    for e in &report.entries {
        outln!(out);
        outln!(out, "title: {}", e.title);
        outln!(out, "link: {}", e.link.as_deref().unwrap_or("-"));
        match e.published {
            Some(d) => outln!(
                out,
                "date: {} ({} {}, from {}{})",
                d.format("%Y-%m-%dT%H:%M:%SZ"),
                d.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
                tz.name(),
                e.date_source.as_str(),
                e.date_format
                    .as_deref()
                    .map(|f| format!(": {f}"))
                    .unwrap_or_default()
            ),
            None => outln!(out, "date: - (first seen when stored)"),
        }
        outln!(
            out,
            "author: {}",
            e.authors.first().map_or("-", String::as_str)
        );
        let text = e
            .content
            .as_deref()
            .or(e.summary.as_deref())
            .map(crate::text::html_to_text)
            .unwrap_or_default();
        let preview: String = text.chars().take(80).collect();
        outln!(
            out,
            "content: {}",
            if preview.is_empty() { "-" } else { &preview }
        );
        if !book.is_empty() {
            outln!(out, "rules: {}", verdict_alone(&book, source, e));
        }
    }
    if !report.warnings.is_empty() {
        outln!(out);
    }
    for w in &report.warnings {
        outln!(out, "warning: {w}");
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// What `source`'s rules say of one item it has not stored yet: its own words alone (a
/// stored copy elsewhere could still block its story; `rules test` sees those).
fn verdict_alone(book: &Book, source: &SourceConfig, e: &Entry) -> String {
    let now = chrono::Utc::now();
    let copy = Copy {
        entry_id: 0,
        source_id: source.id.clone(),
        title: e.title.clone(),
        link: e.link.clone(),
        summary: e.summary.clone(),
        content: e.content.clone(),
        authors: e.authors.clone(),
        categories: e.categories.clone(),
        published: e.published.unwrap_or(now),
    };
    let stored = StoredEntry {
        id: 0,
        cursor: crate::model::Cursor {
            published: 0,
            key: 0,
            id: 0,
        },
        title: copy.title.clone(),
        link: copy.link.clone(),
        summary: copy.summary.clone(),
        content: copy.content.clone(),
        authors: copy.authors.clone(),
        categories: copy.categories.clone(),
        published: copy.published,
        updated: copy.published,
        sources: vec![EntrySource {
            source_id: source.id.clone(),
            source_name: source.name.clone(),
            source_url: source.url.to_string(),
            guid: e.guid.clone(),
            link: e.link.clone(),
        }],
        copies: vec![copy],
    };
    let scope = Scope::Source(source.id.clone());
    let view = View {
        scope: &scope,
        source: None,
        tag: None,
    };
    book.explain(&view, &stored, now).to_string()
}

/// `tributary rules test ID`: the source's newest `limit` stored entries, each with what its
/// feed does with it under the rules in its scope, and the rule that decided.
pub(super) fn rules_test(
    config: &Config,
    store: &Store,
    id: &str,
    limit: usize,
) -> anyhow::Result<ExitCode> {
    let source = config
        .source(id)
        .with_context(|| format!("no source {id:?} in {}", config.path.display()))?;
    let book = Book::new(config);
    let scope = Scope::Source(id.to_string());
    let q = FeedQuery {
        limit: limit.max(1),
        ..Default::default()
    };
    let read = PageRead {
        scope: &scope,
        q: &q,
        copies: true,
    };
    let entries = store.page(&read, &mut Some)?.entries;
    let view = View {
        scope: &scope,
        source: None,
        tag: None,
    };
    let levels: Vec<String> = config
        .rules
        .global
        .iter()
        .chain(config.rules.categories.get(&source.category))
        .chain(&source.rules)
        .map(|r| r.level.to_string())
        .collect();
    let mut out = String::new();
    outln!(
        out,
        "{id}: its {} newest entries under {}",
        entries.len(),
        if levels.is_empty() {
            "no rules of its own (a block on another source's copy of a story still applies)"
                .to_string()
        } else {
            levels.join(", ")
        }
    );
    let now = chrono::Utc::now();
    let (mut kept, mut changed) = (0, 0);
    for e in &entries {
        let j = book.explain(&view, e, now);
        let word = match (&j.verdict, j.changed_by.is_empty()) {
            (Verdict::Shown { .. }, true) => "kept",
            (Verdict::Shown { .. }, false) => "rewritten",
            _ => "dropped",
        };
        kept += usize::from(matches!(j.verdict, Verdict::Shown { .. }));
        changed += usize::from(!j.changed_by.is_empty());
        outln!(out);
        outln!(
            out,
            "{word:<9} {} {}  {}",
            e.id,
            e.published.format("%Y-%m-%d %H:%M"),
            e.title
        );
        outln!(out, "          {j}");
    }
    outln!(out);
    outln!(
        out,
        "{kept} kept ({changed} rewritten), {} dropped",
        entries.len() - kept
    );
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}
