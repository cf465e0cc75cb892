//! `/sources`: every source with its state and a health verdict, and the forms that add,
//! remove, enable, disable or refresh one; `/sources/{id}`: one source's state, config and
//! recent entries.
//!
//! The forms post the admin token with each action (a password field; no cookie, so no
//! session a third-party page could ride on), to the same origin only.

use maud::{html, Markup};

use super::{document, entry_list, optional_time, subscribe, title_or_untitled, Site};
use crate::health::Seen;
use crate::model::{Scope, SourceStatus, StoredEntry};

/// How a source is doing, in one word and a class the stylesheet colours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub word: &'static str,
    /// `ok`, `warn` or `bad`.
    pub level: &'static str,
}

/// Failures in a row after which a source counts as failing rather than having failed once.
const FAILING_AFTER: u32 = 3;

pub fn verdict(s: &SourceStatus) -> Verdict {
    let v = |word, level| Verdict { word, level };
    if !s.active {
        return v("not configured", "warn");
    }
    if s.disabled_reason.is_some() {
        return v("gone", "bad");
    }
    if s.drift.is_some() {
        return v("drifting", "bad");
    }
    match (s.last_status.as_deref(), s.consecutive_failures) {
        (None, _) => v("not fetched yet", "warn"),
        (_, n) if n >= FAILING_AFTER => v("failing", "bad"),
        (_, n) if n > 0 => v("failed last time", "warn"),
        _ => v("healthy", "ok"),
    }
}

/// What is wrong with a source, in words: gone, drifting, or its last error.
fn problem(s: &SourceStatus) -> &str {
    s.disabled_reason
        .as_deref()
        .or(s.drift.as_deref())
        .or(s.last_error.as_deref())
        .unwrap_or("")
}

fn verdict_cell(s: &SourceStatus) -> Markup {
    let v = verdict(s);
    html! { span class=(format!("verdict {}", v.level)) { (v.word) } }
}

/// A message shown above the table after a form was posted.
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

pub fn sources_page(site: &Site<'_>, all: &[SourceStatus], flash: Option<&Flash>) -> String {
    let failing = all.iter().filter(|s| verdict(s).level == "bad").count();
    let body = html! {
        h1 { "Sources" }
        (flash_box(flash))
        p.meta { (all.len()) " sources, " (failing) " failing. As JSON: " a href=(site.link("api/sources")) { "/api/sources" } }
        div.table-wrap {
            table {
                thead {
                    tr {
                        th { "source" } th { "category" } th { "health" } th { "last fetch" }
                        th { "next run" } th.num { "failures" } th.num { "entries" } th { "last error" }
                    }
                }
                tbody {
                    @for s in all {
                        tr {
                            td {
                                a href=(site.page_of(&Scope::Source(s.id.clone()))) { (s.name) }
                                br; span.meta { (s.id) }
                            }
                            td { (s.category) }
                            td { (verdict_cell(s)) }
                            td { (optional_time(s.last_fetch_at)) }
                            td { (optional_time(s.next_run)) }
                            td.num { (s.consecutive_failures) }
                            td.num { (s.entry_count) }
                            td.error { (problem(s)) }
                        }
                    }
                }
            }
        }
        @if site.admin {
            (add_form(site))
            (manage_form(site, all.iter().map(|s| s.id.as_str()), None))
        } @else {
            p.muted { "Set " code { "[server] admin_token" } " to add and manage sources here." }
        }
    };
    document(site, "sources", "Sources", body)
}

fn flash_box(flash: Option<&Flash>) -> Markup {
    html! {
        @if let Some(f) = flash {
            p class=(if f.ok { "flash" } else { "flash bad" }) role="status" { (f.text) }
        }
    }
}

fn token_field() -> Markup {
    html! {
        label { "Admin token " input type="password" name="token" required autocomplete="current-password"; }
    }
}

fn add_form(site: &Site<'_>) -> Markup {
    html! {
        section.card {
            h2 { "Add a source" }
            form.admin method="post" action=(site.link("sources")) {
                input type="hidden" name="action" value="add";
                label { "Feed or page URL " input type="url" name="url" required placeholder="https://example.com/feed.xml"; }
                label { "Category " input type="text" name="category" placeholder="news"; }
                label { "Id " input type="text" name="id" pattern="[a-z0-9-]+" placeholder="(from the name)"; }
                (token_field())
                button type="submit" { "Add" }
            }
        }
    }
}

/// Refresh, enable, disable or remove: one form, the source picked from a list (or fixed, on
/// a source's own page).
fn manage_form<'a>(
    site: &Site<'_>,
    ids: impl Iterator<Item = &'a str>,
    fixed: Option<&str>,
) -> Markup {
    html! {
        section.card {
            h2 { "Manage" }
            form.admin method="post" action=(site.link("sources")) {
                @if let Some(id) = fixed {
                    input type="hidden" name="id" value=(id);
                } @else {
                    label { "Source " select name="id" required { option value="" { "choose…" } @for id in ids { option value=(id) { (id) } } } }
                }
                (token_field())
                @for (action, label) in [("refresh", "Fetch now"), ("enable", "Enable"), ("disable", "Disable"), ("remove", "Remove")] {
                    button type="submit" name="action" value=(action) { (label) }
                }
            }
        }
    }
}

/// One source's page.
pub struct SourcePage<'a> {
    pub status: &'a SourceStatus,
    /// Its feed or page URL.
    pub url: Option<&'a str>,
    /// Its `[[sources]]` table as the config file has it.
    pub config: Option<&'a str>,
    pub entries: &'a [StoredEntry],
    /// What its last fetch that read a document saw.
    pub seen: Option<&'a Seen>,
}

fn seen_section(seen: &Seen) -> Markup {
    html! {
        h2 { "What the last fetch saw" }
        p.meta {
            (seen.items) " items; without a date: " (seen.missing_date)
            ", without a link: " (seen.missing_link) ", without text: " (seen.missing_text)
        }
        @if !seen.sample.is_empty() {
            div.table-wrap {
                table {
                    thead { tr { th { "title" } th { "date" } th { "date from" } } }
                    tbody {
                        @for item in &seen.sample {
                            tr {
                                td {
                                    @match &item.link {
                                        Some(link) => a href=(link) rel="noreferrer" { (title_or_untitled(&item.title)) },
                                        None => (title_or_untitled(&item.title)),
                                    }
                                }
                                td { (optional_time(item.published.and_then(|t| chrono::DateTime::from_timestamp(t, 0)))) }
                                td { (item.date_from) }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn source_page(site: &Site<'_>, page: &SourcePage<'_>, flash: Option<&Flash>) -> String {
    let s = page.status;
    let scope = Scope::Source(s.id.clone());
    let body = html! {
        h1 { (s.name) }
        (flash_box(flash))
        p.meta { (s.id) " · " (s.category) " · " (subscribe(site, &scope, None)) }
        section.card {
            dl.facts {
                dt { "health" } dd { (verdict_cell(s)) }
                @if let Some(url) = page.url { dt { "URL" } dd { a href=(url) rel="noreferrer" { (url) } } }
                dt { "last fetch" } dd { (optional_time(s.last_fetch_at)) " " (s.last_status.as_deref().unwrap_or("")) }
                dt { "next run" } dd { (optional_time(s.next_run)) }
                dt { "failures in a row" } dd { (s.consecutive_failures) }
                @if let Some(why) = &s.drift {
                    dt { "drift" } dd.error { (why) " — check the source's selectors with " code { "tributary check " (s.id) } }
                }
                @if let Some(e) = s.disabled_reason.as_deref().or(s.last_error.as_deref()) {
                    dt { "last error" } dd.error { (e) }
                }
                dt { "entries" } dd { (s.entry_count) }
            }
        }
        @if let Some(seen) = page.seen { (seen_section(seen)) }
        h2 { "Recent entries" }
        @if page.entries.is_empty() { p.muted { "Nothing stored yet." } } @else { (entry_list(site, page.entries)) }
        @if let Some(config) = page.config {
            h2 { "Config" }
            pre { code { (config) } }
        }
        @if site.admin && s.active {
            (manage_form(site, std::iter::empty(), Some(&s.id)))
        }
    };
    document(site, "source", &s.name, body)
}
