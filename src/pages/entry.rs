//! `/entries/{id}`: one stored entry as readers get it, the sources that carry it and, for a
//! merged story, why its members were merged; and `/search`: results as a page.

use maud::html;

use super::{
    document, entry_list, sanitized, search_box, subscribe, time, title_or_untitled, Site,
};
use crate::model::{Scope, StoredEntry};
use crate::store::ClusterMember;

/// The cluster an entry is in, as `dedupe --explain` prints it.
pub struct Cluster<'a> {
    pub id: i64,
    pub members: &'a [ClusterMember],
}

/// `rules`: what the rules say of the entry at each of its sources (source id, verdict), when
/// any rule is configured.
pub fn entry_page(
    site: &Site<'_>,
    e: &StoredEntry,
    cluster: Option<Cluster<'_>>,
    rules: &[(String, String)],
) -> String {
    let title = title_or_untitled(&e.title);
    let body = html! {
        article {
            h1 { (title) }
            p.meta {
                "Published " (time(e.published))
                @if e.updated != e.published { " · updated " (time(e.updated)) }
                @if !e.authors.is_empty() { " · " (e.authors.join(", ")) }
                @if let Some(link) = &e.link {
                    " · " a href=(link) rel="noreferrer" { "original" }
                }
            }
            @if !e.categories.is_empty() {
                p.meta { "Categories: " (e.categories.join(", ")) }
            }
            @match (&e.content, &e.summary) {
                (Some(html), _) | (None, Some(html)) => article.content { (sanitized(html)) },
                (None, None) => p.muted { "No text." },
            }
        }
        section.card {
            h2 { "Sources" }
            ul.entries {
                @for s in &e.sources {
                    li {
                        a href=(site.page_of(&Scope::Source(s.source_id.clone()))) { (s.source_name) }
                        span.meta {
                            " (" (s.source_id) ")"
                            @if let Some(link) = &s.link {
                                " · " a href=(link) rel="noreferrer" { (link) }
                            }
                            @if let Some(guid) = &s.guid { " · guid " code { (guid) } }
                        }
                    }
                }
            }
        }
        @if !rules.is_empty() {
            section.card {
                h2 { "Rules" }
                ul.entries {
                    @for (source, verdict) in rules {
                        li { code { (source) } ": " (verdict) }
                    }
                }
            }
        }
        @if let Some(cluster) = cluster {
            (cluster_section(site, e.id, &cluster))
        }
    };
    document(site, "entry", title, body)
}

/// Why the members of a merged story were merged: the member each matched, the rule and the
/// score; the one merged feeds show is marked.
fn cluster_section(site: &Site<'_>, shown: i64, cluster: &Cluster<'_>) -> maud::Markup {
    let members = cluster.members;
    html! {
        section.card {
            h2 { "Merged story" }
            @if members.len() <= 1 {
                p.muted {
                    "This entry is not merged with any other."
                    @if let Some(m) = members.first().filter(|m| m.sources.len() > 1) {
                        " It is one entry for " (m.sources.len()) " sources (" (m.sources.join(", ")) "): the same "
                        (m.shared_keys.first().map_or("identity", String::as_str)) "."
                    }
                }
            } @else {
                p.meta { "Cluster " (cluster.id) ": " (members.len()) " members. Merged feeds show the one marked ★." }
                div.table-wrap {
                    table {
                        thead { tr { th { "" } th { "entry" } th { "published" } th { "sources" } th { "title" } th { "why" } } }
                        tbody {
                            @for m in members {
                                tr {
                                    td { @if m.canonical { "★" } }
                                    td.num {
                                        @if m.entry_id == shown { (m.entry_id) }
                                        @else { a href=(site.entry(m.entry_id)) { (m.entry_id) } }
                                    }
                                    td { (time(m.published)) }
                                    td { (m.sources.join(", ")) }
                                    td { (title_or_untitled(&m.title)) }
                                    td {
                                        @match &m.merged {
                                            Some((matched, rule, score)) => { (rule) " " (format!("{score:.2}")) " with entry " (matched) },
                                            None => "first in cluster",
                                        }
                                        @if m.sources.len() > 1 {
                                            br; "one entry for " (m.sources.len()) " sources: the same "
                                            (m.shared_keys.first().map_or("identity", String::as_str))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn search_page(site: &Site<'_>, q: &str, results: &[StoredEntry]) -> String {
    let body = html! {
        h1 { "Search" }
        (search_box(site, q))
        @if !q.is_empty() {
            p.meta {
                (results.len()) " entries match " q { (q) } ", newest first. As a feed: "
                (subscribe(site, &Scope::All, Some(q)))
            }
            @if results.is_empty() {
                p.muted { "Nothing matches. Every word must occur; Chinese is matched as written." }
            } @else {
                (entry_list(site, results))
            }
        }
    };
    let title = if q.is_empty() {
        "Search".to_string()
    } else {
        format!("Search: {q}")
    };
    document(site, "search", &title, body)
}
