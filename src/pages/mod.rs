//! The operator's console as HTML: the home page (categories, their newest entries and
//! subscribe links), search results, a category's or tag's page, the sources table, one
//! source's page and one entry's page.
//!
//! Pages are rendered with maud from plain structs the server fills: nothing here reads the
//! store, the clock or the request. maud escapes every value put into a page; the only markup
//! passed through as it is is an entry's content, which normalize already sanitized. No page
//! has a script or an inline style, so the Content-Security-Policy can forbid both.

use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use url::Url;

use crate::feed_urls;
use crate::model::{Scope, StoredEntry};
use crate::publish::Format;

mod entry;
mod home;
mod sources;

pub use entry::{entry_page, search_page, Cluster};
pub use home::{home, scope_page, CategoryCard, ScopePage};
pub use sources::{source_page, sources_page, verdict, Flash, SourcePage, Verdict};

/// The stylesheet, served at [`STYLESHEET_PATH`].
pub const STYLESHEET: &str = include_str!("console.css");
pub const STYLESHEET_PATH: &str = "console.css";

/// Every page's policy: its own stylesheet and forms only; images in entries from anywhere
/// (they are the article's own), nothing else.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; \
     img-src 'self' https: http: data:; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// What every page is rendered against: where the console lives, and what the layout shows.
pub struct Site<'a> {
    /// The base URL pages and feeds are linked under (`[server] public_url`, or the Host).
    pub base: &'a Url,
    /// Whether write actions are on (`[server] admin_token` is set): the forms are shown.
    pub admin: bool,
}

impl Site<'_> {
    /// An absolute link to `path` (no leading slash) under the base.
    pub fn link(&self, path: &str) -> String {
        self.base
            .join(path)
            .map(|u| u.to_string())
            .unwrap_or_else(|_| format!("/{path}"))
    }

    fn feed(&self, scope: &Scope, format: Format) -> String {
        feed_urls::url(self.base, scope, format).to_string()
    }

    fn page_of(&self, scope: &Scope) -> String {
        feed_urls::page_url(self.base, scope).to_string()
    }

    fn entry(&self, id: i64) -> String {
        feed_urls::entry_page_url(self.base, id).to_string()
    }
}

/// A whole document of `kind` (`home`, `scope`, `search`, `sources`, `source`, `entry`, named
/// on its body for tests and user styles).
fn document(site: &Site<'_>, kind: &str, title: &str, body: Markup) -> String {
    let page = html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · tributary" }
                link rel="stylesheet" href=(site.link(STYLESHEET_PATH));
                link rel="alternate" type=(Format::Atom.content_type()) title="All sources (Atom)"
                    href=(site.feed(&Scope::All, Format::Atom));
            }
            body data-page=(kind) {
                header.top {
                    a.brand href=(site.link("")) { "tributary" }
                    nav {
                        a href=(site.link("")) { "Feeds" }
                        a href=(site.link("sources")) { "Sources" }
                        a href=(site.link("opml")) { "OPML" }
                    }
                    (search_box(site, ""))
                }
                main { (body) }
            }
        }
    };
    page.into_string()
}

fn search_box(site: &Site<'_>, q: &str) -> Markup {
    html! {
        form.search role="search" method="get" action=(site.link("search")) {
            input type="search" name="q" value=(q) placeholder="Search entries (中文 too)"
                aria-label="Search entries";
            button type="submit" { "Search" }
        }
    }
}

/// The three subscribe links of a scope's feed (plus `query`, e.g. a search, when given).
fn subscribe(site: &Site<'_>, scope: &Scope, query: Option<&str>) -> Markup {
    let with_query = |mut url: String| {
        if let Some(q) = query {
            url.push_str("?q=");
            url.extend(url::form_urlencoded::byte_serialize(q.as_bytes()));
        }
        url
    };
    html! {
        span.subscribe {
            @for (format, label) in [(Format::Atom, "Atom"), (Format::Rss, "RSS"), (Format::Json, "JSON Feed")] {
                a href=(with_query(site.feed(scope, format))) type=(format.content_type()) { (label) }
            }
        }
    }
}

/// A list of entries: title (to its page), date, sources, and the original link.
fn entry_list(site: &Site<'_>, entries: &[StoredEntry]) -> Markup {
    html! {
        ul.entries {
            @for e in entries {
                li {
                    a href=(site.entry(e.id)) { (title_or_untitled(&e.title)) }
                    div.meta {
                        (time(e.published))
                        " · "
                        (source_names(e))
                        @if let Some(link) = &e.link {
                            " · " a href=(link) rel="noreferrer" { "original" }
                        }
                    }
                }
            }
        }
    }
}

fn source_names(e: &StoredEntry) -> String {
    e.sources
        .iter()
        .map(|s| s.source_name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn title_or_untitled(title: &str) -> &str {
    if title.trim().is_empty() {
        "(untitled)"
    } else {
        title
    }
}

/// A UTC instant, machine-readable too.
fn time(t: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
            (t.format("%Y-%m-%d %H:%M UTC"))
        }
    }
}

fn optional_time(t: Option<DateTime<Utc>>) -> Markup {
    match t {
        Some(t) => time(t),
        None => html! { span.muted { "—" } },
    }
}

/// Sanitized HTML from the store (normalize ran it through `text::sanitize_html`).
fn sanitized(html: &str) -> PreEscaped<&str> {
    PreEscaped(html)
}
