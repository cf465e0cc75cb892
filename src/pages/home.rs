//! `/`: every category with its counts, newest entries and subscribe links; and the page of
//! one category or tag (`/feeds/{name}`, `/tags/{name}`), its entries a page at a time.

use maud::html;

use super::{document, entry_list, subscribe, Site};
use crate::model::{Scope, StoredEntry};

/// One category on the home page.
pub struct CategoryCard {
    pub name: String,
    /// Entries its sources carry (an entry two of them carry counts once per source).
    pub entries: u64,
    pub sources: usize,
    pub newest: Vec<StoredEntry>,
}

pub fn home(site: &Site<'_>, categories: &[CategoryCard]) -> String {
    let total: u64 = categories.iter().map(|c| c.entries).sum();
    let sources: usize = categories.iter().map(|c| c.sources).sum();
    let body = html! {
        h1 { "Feeds" }
        p.muted {
            (categories.len()) " categories, " (sources) " sources, " (total) " stored entries. "
            "Subscribe to a category, or to "
            a href=(site.link("opml")) { "all of them as OPML" } "."
        }
        section.card {
            h2 { a href=(site.page_of(&Scope::All)) { "All sources" } }
            p { (subscribe(site, &Scope::All, None)) }
        }
        @if categories.is_empty() {
            p { "No sources yet: add one to the config (" code { "[[sources]]" } ") or with "
                code { "tributary add URL" } "." }
        }
        @for c in categories {
            @let scope = Scope::Category(c.name.clone());
            section.card id=(format!("category-{}", c.name)) {
                h2 { a href=(site.page_of(&scope)) { (c.name) } }
                p.meta {
                    (c.entries) " entries from " (c.sources) " source"
                    @if c.sources != 1 { "s" }
                    " · " (subscribe(site, &scope, None))
                }
                @if c.newest.is_empty() {
                    p.muted { "Nothing stored yet." }
                } @else {
                    (entry_list(site, &c.newest))
                }
            }
        }
    };
    document(site, "home", "Feeds", body)
}

/// A category's, a tag's or every source's page.
pub struct ScopePage<'a> {
    pub scope: &'a Scope,
    pub title: &'a str,
    pub entries: &'a [StoredEntry],
    /// The link to the next (older) page, when there may be one.
    pub older: Option<String>,
}

pub fn scope_page(site: &Site<'_>, page: &ScopePage<'_>) -> String {
    let kind = match page.scope {
        Scope::All => "Every source",
        Scope::Category(_) => "Category",
        Scope::Tag(_) => "Tag",
        Scope::Source(_) => "Source",
    };
    let body = html! {
        h1 { (page.title) }
        p.meta { (kind) " · " (subscribe(site, page.scope, None)) }
        @if page.entries.is_empty() {
            p.muted { "Nothing stored yet." }
        } @else {
            (entry_list(site, page.entries))
        }
        @if let Some(older) = &page.older {
            p { a href=(older) rel="next" { "Older entries" } }
        }
    };
    document(site, "scope", page.title, body)
}
