//! Reading what `tributary serve` publishes back into one shape, whatever the format.
//!
//! RSS and Atom go through `feed_rs::parser::parse` (titles, links, dates, categories, HTML) and
//! through the `rss` / `atom_syndication` crates for the `<source>` element, which feed-rs does
//! not model. JSON Feed is read with serde_json as plain JSON, so nothing is forgiven.

use serde_json::Value;

/// The three output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rss,
    Atom,
    Json,
}

pub const FORMATS: [Format; 3] = [Format::Rss, Format::Atom, Format::Json];

impl Format {
    pub fn ext(self) -> &'static str {
        match self {
            Format::Rss => "rss",
            Format::Atom => "atom",
            Format::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Rss => "application/rss+xml",
            Format::Atom => "application/atom+xml",
            Format::Json => "application/feed+json",
        }
    }
}

/// One served entry, normalised across formats.
#[derive(Debug, Clone)]
pub struct Served {
    pub title: String,
    pub link: String,
    /// Unix seconds of the published date (Atom: `published`, else `updated`).
    pub published: Option<i64>,
    /// Source name: RSS `<source>` text, Atom `<source><title>`, JSON `authors[0].name`.
    pub source_name: Option<String>,
    /// RSS `<source url>`; None elsewhere.
    pub source_url: Option<String>,
    /// RSS `<category>`, Atom `<category term>`, JSON `tags`.
    pub categories: Vec<String>,
    /// Every HTML/text body the entry carries (summary and content), concatenated.
    pub html: String,
    /// JSON only: the `_tributary` extension object.
    pub tributary_ext: Option<Value>,
}

/// Parses a served body of `format`; panics with the body if it does not parse.
pub fn parse(format: Format, body: &str) -> Vec<Served> {
    match format {
        Format::Rss => parse_rss(body),
        Format::Atom => parse_atom(body),
        Format::Json => parse_json(body),
    }
}

fn feed_rs_entries(body: &str, what: &str) -> Vec<feed_rs::model::Entry> {
    feed_rs::parser::parse(body.as_bytes())
        .unwrap_or_else(|e| panic!("feed-rs cannot parse the served {what}: {e}\n{body}"))
        .entries
}

fn common_fields(e: &feed_rs::model::Entry) -> Served {
    let mut html = String::new();
    if let Some(summary) = &e.summary {
        html.push_str(&summary.content);
        html.push('\n');
    }
    if let Some(body) = e.content.as_ref().and_then(|c| c.body.as_ref()) {
        html.push_str(body);
    }
    Served {
        title: e
            .title
            .as_ref()
            .map(|t| t.content.clone())
            .unwrap_or_default(),
        link: e.links.first().map(|l| l.href.clone()).unwrap_or_default(),
        published: e.published.or(e.updated).map(|d| d.timestamp()),
        source_name: None,
        source_url: None,
        categories: e.categories.iter().map(|c| c.term.clone()).collect(),
        html,
        tributary_ext: None,
    }
}

fn parse_rss(body: &str) -> Vec<Served> {
    let entries = feed_rs_entries(body, "RSS");
    let channel = rss::Channel::read_from(body.as_bytes())
        .unwrap_or_else(|e| panic!("the rss crate cannot parse the served RSS: {e}\n{body}"));
    assert_eq!(
        entries.len(),
        channel.items().len(),
        "feed-rs and the rss crate disagree on the item count\n{body}"
    );
    entries
        .iter()
        .zip(channel.items())
        .map(|(e, item)| {
            let mut s = common_fields(e);
            s.source_name = item
                .source()
                .and_then(|src| src.title())
                .map(|t| t.trim().to_string());
            s.source_url = item.source().map(|src| src.url().to_string());
            s
        })
        .collect()
}

fn parse_atom(body: &str) -> Vec<Served> {
    let entries = feed_rs_entries(body, "Atom");
    let feed = atom_syndication::Feed::read_from(body.as_bytes()).unwrap_or_else(|e| {
        panic!("the atom_syndication crate cannot parse the served Atom: {e}\n{body}")
    });
    assert_eq!(
        entries.len(),
        feed.entries().len(),
        "feed-rs and atom_syndication disagree on the entry count\n{body}"
    );
    entries
        .iter()
        .zip(feed.entries())
        .map(|(e, entry)| {
            let mut s = common_fields(e);
            s.source_name = entry
                .source()
                .map(|src| src.title().value.trim().to_string());
            s
        })
        .collect()
}

fn parse_json(body: &str) -> Vec<Served> {
    let doc: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("the served JSON Feed is not JSON: {e}\n{body}"));
    let items = doc
        .get("items")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("the served JSON Feed has no items array\n{body}"));
    items
        .iter()
        .map(|item| {
            let str_of = |key: &str| item.get(key).and_then(Value::as_str).map(str::to_string);
            let published = str_of("date_published").map(|d| {
                chrono::DateTime::parse_from_rfc3339(&d)
                    .unwrap_or_else(|e| panic!("date_published {d:?} is not RFC 3339: {e}"))
                    .timestamp()
            });
            let mut html = String::new();
            for key in ["summary", "content_html", "content_text"] {
                if let Some(text) = str_of(key) {
                    html.push_str(&text);
                    html.push('\n');
                }
            }
            Served {
                title: str_of("title").unwrap_or_default(),
                link: str_of("url").unwrap_or_default(),
                published,
                // JSON Feed has no source element: the extension names the sources.
                source_name: item
                    .pointer("/_tributary/sources/0/name")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                source_url: None,
                categories: item
                    .get("tags")
                    .and_then(Value::as_array)
                    .map(|tags| {
                        tags.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
                html,
                tributary_ext: item.get("_tributary").cloned(),
            }
        })
        .collect()
}

/// Unix seconds of an RFC 3339 instant.
pub fn unix(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("bad expected date {rfc3339:?}: {e}"))
        .timestamp()
}
