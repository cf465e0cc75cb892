//! Stored entries to feed documents: RSS 2.0 (rss crate), Atom 1.0 (atom_syndication) and
//! JSON Feed 1.1 (serde).
//!
//! Rendering is a pure function of the entries and the [`FeedInfo`]: no clock is read, so the
//! same entries give the same bytes and a content-derived ETag stays stable between polls.

use std::collections::BTreeMap;

use atom_syndication as atom;
use chrono::{DateTime, Utc};
use serde::Serialize;
use url::Url;

use crate::model::StoredEntry;

/// The three output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rss,
    Atom,
    Json,
}

impl Format {
    /// From a file extension: "rss", "atom", "json".
    pub fn from_extension(ext: &str) -> Option<Format> {
        match ext {
            "rss" | "xml" => Some(Format::Rss),
            "atom" => Some(Format::Atom),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// The file extension feeds in this format are served under.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Rss => "rss",
            Format::Atom => "atom",
            Format::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Rss => "application/rss+xml; charset=utf-8",
            Format::Atom => "application/atom+xml; charset=utf-8",
            Format::Json => "application/feed+json; charset=utf-8",
        }
    }
}

/// What a feed says about itself.
#[derive(Debug, Clone)]
pub struct FeedInfo {
    pub title: String,
    pub description: String,
    /// Stable across hosts and restarts: the Atom feed id.
    pub id: String,
    /// The URL this document is served at.
    pub self_url: String,
    /// A human page for the feed (the server's root).
    pub home_url: String,
    /// The next (older) page, when there may be one (RFC 5005 paging).
    pub next_url: Option<String>,
    /// The WebSub hub that pushes this feed's updates.
    pub hub: Option<String>,
    /// When the document is rendered: Atom's required `updated` of a feed with no entries (no
    /// date is claimed from nothing).
    pub built: DateTime<Utc>,
}

/// Renders `entries` (newest first) as one document.
pub fn render(format: Format, info: &FeedInfo, entries: &[StoredEntry]) -> String {
    match format {
        Format::Rss => rss(info, entries),
        Format::Atom => atom(info, entries),
        Format::Json => json(info, entries),
    }
}

/// The newest change among `entries`: the feed's `updated` and the HTTP Last-Modified; None
/// for a feed with no entries.
pub fn last_updated(entries: &[StoredEntry]) -> Option<DateTime<Utc>> {
    entries.iter().map(|e| e.updated.max(e.published)).max()
}

/// The entry's id in every output. Re-published entries keep the original id where it is a
/// URI (RFC 4287 §4.2.11) that no reader could run as script, then the link, then an id of
/// ours.
pub fn entry_id(e: &StoredEntry) -> String {
    let original = e.sources.first().and_then(|s| s.guid.as_deref());
    if let Some(guid) = original
        .filter(|g| Url::parse(g).is_ok() && !g.contains(char::is_whitespace) && !runs_script(g))
    {
        return guid.to_string();
    }
    match &e.link {
        Some(link) => link.clone(),
        None => format!("tag:tributary,2026:entry/{}", e.id),
    }
}

/// Whether a URI would run script or open a document of its own if a reader followed it (some
/// take an id for the entry's link): `javascript:`, `vbscript:`, `data:`, also wrapped
/// (`feed:javascript:…`).
fn runs_script(uri: &str) -> bool {
    let uri = uri.to_ascii_lowercase();
    let inner = uri.strip_prefix("feed:").unwrap_or(&uri);
    ["javascript:", "vbscript:", "livescript:", "data:"]
        .iter()
        .any(|scheme| inner.starts_with(scheme))
}

/// The HTML a reader shows: the full content, else the summary, then a line naming the other
/// sources that carried the story.
fn body(e: &StoredEntry) -> Option<String> {
    let main = e.content.as_deref().or(e.summary.as_deref());
    let also = also_reported_by(e);
    match (main, also) {
        (Some(m), Some(a)) => Some(format!("{m}\n{a}")),
        (Some(m), None) => Some(m.to_string()),
        (None, a) => a,
    }
}

/// How many other sources "Also reported by" names before "and N more".
const ALSO_REPORTED_SHOWN: usize = 5;

/// `<p>Also reported by: <a>Source B</a>, <a>Source C</a></p>`, or None for a single source:
/// the sources other than the first (the one whose feed this is, or the story's own), at most
/// [`ALSO_REPORTED_SHOWN`] of them, then how many more.
fn also_reported_by(e: &StoredEntry) -> Option<String> {
    let others = e.sources.get(1..).unwrap_or_default();
    let named: Vec<String> = others
        .iter()
        .take(ALSO_REPORTED_SHOWN)
        .map(|s| {
            let name = html_escape::encode_text(&s.source_name);
            match &s.link {
                Some(link) => format!(
                    "<a href=\"{}\">{name}</a>",
                    html_escape::encode_double_quoted_attribute(link)
                ),
                None => name.into_owned(),
            }
        })
        .collect();
    if named.is_empty() {
        return None;
    }
    let more = others.len() - named.len();
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    Some(format!(
        "<p>Also reported by: {}{tail}</p>",
        named.join(", ")
    ))
}

/// The entry's own authors. An entry whose feed named none has none here either: the source
/// is named where it belongs (RSS `<source>`, Atom `<source>`, `_tributary.sources`), and
/// Atom's feed-level author covers the rest (RFC 4287 §4.1.1).
fn authors(e: &StoredEntry) -> Vec<String> {
    e.authors.clone()
}

fn rss(info: &FeedInfo, entries: &[StoredEntry]) -> String {
    let items = entries
        .iter()
        .map(|e| {
            let id = entry_id(e);
            let permalink = e.link.as_deref() == Some(id.as_str()) && id.starts_with("http");
            rss::Item {
                title: Some(e.title.clone()),
                link: e.link.clone(),
                description: e.summary.clone().or_else(|| body(e)),
                content: e.content.as_ref().and(body(e)),
                guid: Some(rss::Guid {
                    value: id,
                    permalink,
                }),
                pub_date: Some(rfc822(e.published)),
                categories: e
                    .categories
                    .iter()
                    .map(|c| rss::Category {
                        name: c.clone(),
                        domain: None,
                    })
                    .collect(),
                source: e.sources.first().map(|s| rss::Source {
                    url: s.source_url.clone(),
                    title: Some(s.source_name.clone()),
                }),
                dublin_core_ext: Some(rss::extension::dublincore::DublinCoreExtension {
                    creators: authors(e),
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect();
    let channel = rss::Channel {
        title: info.title.clone(),
        link: info.home_url.clone(),
        description: info.description.clone(),
        last_build_date: last_updated(entries).map(rfc822),
        generator: Some("tributary".into()),
        atom_ext: Some(rss::extension::atom::AtomExtension {
            links: std::iter::once(atom::Link {
                href: info.self_url.clone(),
                rel: "self".into(),
                mime_type: Some("application/rss+xml".into()),
                ..Default::default()
            })
            .chain(extra_links(info))
            .collect(),
        }),
        namespaces: BTreeMap::from([
            ("atom".into(), "http://www.w3.org/2005/Atom".into()),
            ("dc".into(), "http://purl.org/dc/elements/1.1/".into()),
            (
                "content".into(),
                "http://purl.org/rss/1.0/modules/content/".into(),
            ),
        ]),
        items,
        ..Default::default()
    };
    channel.to_string()
}

/// The `next` page (RFC 5005) and the WebSub `hub`, as Atom links (RSS carries them as
/// `atom:link`).
fn extra_links(info: &FeedInfo) -> Vec<atom::Link> {
    let mut links = Vec::new();
    if let Some(next) = &info.next_url {
        links.push(atom::Link {
            href: next.clone(),
            rel: "next".into(),
            ..Default::default()
        });
    }
    if let Some(hub) = &info.hub {
        links.push(atom::Link {
            href: hub.clone(),
            rel: "hub".into(),
            ..Default::default()
        });
    }
    links
}

/// RFC 822 with a four-digit year and GMT, the form every validator accepts.
fn rfc822(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// One stored entry as an Atom entry: its links (the page, then each other source as `via`),
/// content, first source and people.
fn atom_entry(e: &StoredEntry) -> atom::Entry {
    let mut links = Vec::new();
    if let Some(link) = &e.link {
        links.push(atom::Link {
            href: link.clone(),
            rel: "alternate".into(),
            mime_type: Some("text/html".into()),
            ..Default::default()
        });
    }
    // RFC 4287 §4.2.7.2: "via" names where the entry's information came from.
    for other in e.sources.iter().skip(1).take(ALSO_REPORTED_SHOWN) {
        links.push(atom::Link {
            href: other
                .link
                .clone()
                .unwrap_or_else(|| other.source_url.clone()),
            rel: "via".into(),
            title: Some(other.source_name.clone()),
            ..Default::default()
        });
    }
    let content = body(e).map(|html| atom::Content {
        value: Some(html),
        content_type: Some("html".into()),
        ..Default::default()
    });
    // An entry with neither content nor link must still say something (RFC 4287
    // §4.1.1.1): its title.
    let content = content.or_else(|| {
        e.link.is_none().then(|| atom::Content {
            value: Some(html_escape::encode_text(&e.title).into_owned()),
            content_type: Some("html".into()),
            ..Default::default()
        })
    });
    let source = e.sources.first().map(|s| atom::Source {
        title: atom::Text::plain(s.source_name.clone()),
        id: s.source_url.clone(),
        updated: e.updated.fixed_offset(),
        links: vec![atom::Link {
            href: s.source_url.clone(),
            rel: "self".into(),
            ..Default::default()
        }],
        ..Default::default()
    });
    atom::Entry {
        id: entry_id(e),
        title: atom::Text::plain(e.title.clone()),
        updated: e.updated.fixed_offset(),
        published: Some(e.published.fixed_offset()),
        authors: authors(e)
            .into_iter()
            .map(|name| atom::Person {
                name,
                ..Default::default()
            })
            .collect(),
        categories: e
            .categories
            .iter()
            .map(|c| atom::Category {
                term: c.clone(),
                ..Default::default()
            })
            .collect(),
        summary: e
            .content
            .as_ref()
            .and(e.summary.as_ref())
            .map(|s| atom::Text::html(s.clone())),
        links,
        content,
        source,
        ..Default::default()
    }
}

fn atom(info: &FeedInfo, entries: &[StoredEntry]) -> String {
    let updated = last_updated(entries).unwrap_or(info.built).fixed_offset();
    let atom_entries = entries.iter().map(atom_entry).collect();
    let feed = atom::Feed {
        title: atom::Text::plain(info.title.clone()),
        id: info.id.clone(),
        updated,
        authors: vec![atom::Person {
            name: "tributary".into(),
            ..Default::default()
        }],
        subtitle: Some(atom::Text::plain(info.description.clone())),
        generator: Some(atom::Generator {
            value: "tributary".into(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            ..Default::default()
        }),
        links: vec![
            atom::Link {
                href: info.self_url.clone(),
                rel: "self".into(),
                mime_type: Some("application/atom+xml".into()),
                ..Default::default()
            },
            atom::Link {
                href: info.home_url.clone(),
                rel: "alternate".into(),
                mime_type: Some("text/html".into()),
                ..Default::default()
            },
        ]
        .into_iter()
        .chain(extra_links(info))
        .collect(),
        entries: atom_entries,
        ..Default::default()
    };
    feed.to_string()
}

#[derive(Serialize)]
struct JsonFeed<'a> {
    version: &'static str,
    title: &'a str,
    description: &'a str,
    home_page_url: &'a str,
    feed_url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hubs: Vec<JsonHub<'a>>,
    items: Vec<JsonItem>,
}

#[derive(Serialize)]
struct JsonHub<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
}

#[derive(Serialize)]
struct JsonItem {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    title: String,
    content_html: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<String>,
    date_published: String,
    date_modified: String,
    /// 1.1: "one or more" when present, so absent when the entry names no author.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<JsonAuthor>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    /// JSON Feed extension (§ "Extensions"): every source that carried the entry.
    _tributary: JsonExtension,
}

#[derive(Serialize)]
struct JsonAuthor {
    name: String,
}

#[derive(Serialize)]
struct JsonExtension {
    about: &'static str,
    /// The store's id, for `tributary dedupe --explain`.
    entry_id: i64,
    sources: Vec<JsonSource>,
}

#[derive(Serialize)]
struct JsonSource {
    id: String,
    name: String,
    feed_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

fn json(info: &FeedInfo, entries: &[StoredEntry]) -> String {
    let items = entries
        .iter()
        .map(|e| JsonItem {
            id: entry_id(e),
            url: e.link.clone(),
            title: e.title.clone(),
            content_html: body(e)
                .unwrap_or_else(|| html_escape::encode_text(&e.title).into_owned()),
            summary: e
                .content
                .as_ref()
                .and(e.summary.as_deref())
                // Plain text (JSON Feed §items): some readers show it as HTML all the same.
                .map(|s| crate::text::plain_text(&crate::text::html_to_text(s))),
            date_published: e.published.to_rfc3339(),
            date_modified: e.updated.to_rfc3339(),
            authors: authors(e)
                .into_iter()
                .map(|name| JsonAuthor { name })
                .collect(),
            tags: e.categories.clone(),
            _tributary: JsonExtension {
                about: "https://github.com/tributary-aggregator/tributary#json-feed-extension",
                entry_id: e.id,
                sources: e
                    .sources
                    .iter()
                    .map(|s| JsonSource {
                        id: s.source_id.clone(),
                        name: s.source_name.clone(),
                        feed_url: s.source_url.clone(),
                        url: s.link.clone(),
                    })
                    .collect(),
            },
        })
        .collect();
    let feed = JsonFeed {
        version: "https://jsonfeed.org/version/1.1",
        title: &info.title,
        description: &info.description,
        home_page_url: &info.home_url,
        feed_url: &info.self_url,
        next_url: info.next_url.as_deref(),
        hubs: info
            .hub
            .as_deref()
            .map(|url| JsonHub {
                kind: "WebSub",
                url,
            })
            .into_iter()
            .collect(),
        items,
    };
    // Serializing plain structs of strings cannot fail.
    serde_json::to_string_pretty(&feed).unwrap_or_default()
}
