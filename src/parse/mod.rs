//! Documents to a [`ParsedFeed`]: feeds with feed-rs, list pages with CSS selectors
//! ([`html`]), JSON lists with dot paths ([`json`]), and article pages ([`article`]).
//!
//! Parsing only extracts: text stays as written (dates included, as text where the page gives
//! no zone), links may be relative. Cleaning, resolving and dating are normalize's job.
//!
//! feed-rs gets UTF-8 bytes from decode, whose XML declaration says UTF-8. Its habit of
//! inventing ids for entries that have none is switched off; identity is decided by normalize
//! and the store, from keys we can explain.

pub mod article;
pub mod html;
pub mod json;
pub mod legacy;

use chrono::{DateTime, Utc};
use feed_rs::parser::{ParseErrorKind, ParseFeedError};

pub use article::ArticleParts;

/// A feed as parsed, before any cleaning.
#[derive(Debug, Clone, Default)]
pub struct ParsedFeed {
    pub title: Option<String>,
    pub items: Vec<ParsedItem>,
    /// Things a person writing selectors should hear about (`tributary check` prints them).
    pub warnings: Vec<String>,
    /// The feed's own refresh hint (RSS `<ttl>`, in minutes there).
    pub ttl: Option<std::time::Duration>,
}

/// One entry as the feed wrote it.
#[derive(Debug, Clone, Default)]
pub struct ParsedItem {
    /// RSS guid, Atom id, JSON Feed id; None when the feed gave none.
    pub id: Option<String>,
    pub title: Option<Text>,
    /// Link targets, the entry's own (alternate) link first; possibly relative.
    pub links: Vec<String>,
    pub summary: Option<Text>,
    pub content: Option<Text>,
    pub authors: Vec<String>,
    pub published: Option<DateTime<Utc>>,
    pub updated: Option<DateTime<Utc>>,
    /// A date as a page wrote it, zone-less as often as not: normalize reads it in the
    /// source's zone. Used when `published` is None.
    pub date_text: Option<String>,
    pub categories: Vec<String>,
    /// What the entry's own page added, when it was fetched.
    pub article: Option<ArticleParts>,
}

/// A piece of text and whether it is HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub body: String,
    pub html: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("not a feed: no RSS, Atom or JSON Feed root element")]
    NotAFeed,
    #[error("malformed feed: {0}")]
    Malformed(String),
    #[error("selector {selector:?} ({key}) matched nothing")]
    NothingMatched { key: &'static str, selector: String },
    #[error("none of the {count} items matched by {selector:?} (html.item) has a link")]
    NoLinks { count: usize, selector: String },
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("JSON path {path:?} ({key}) {problem}")]
    JsonPath {
        key: &'static str,
        path: String,
        problem: &'static str,
    },
}

/// Parses RSS 0.9x/1.0/2.0, Atom 0.3/1.0 or JSON Feed 1.0/1.1.
pub fn parse(bytes: &[u8]) -> Result<ParsedFeed, ParseError> {
    // An empty id marks "the feed gave none"; feed-rs never produces an empty id of its own.
    let parser = feed_rs::parser::Builder::new()
        .id_generator(|_, _, _| String::new())
        .build();
    let feed = parser
        .parse(&*legacy::upgrade(bytes))
        .map_err(|e| match e {
            ParseFeedError::ParseError(ParseErrorKind::NoFeedRoot) => ParseError::NotAFeed,
            other => ParseError::Malformed(other.to_string()),
        })?;
    let items = feed
        .entries
        .into_iter()
        .map(|e| {
            let mut links: Vec<(bool, String)> = e
                .links
                .into_iter()
                .filter(|l| !l.href.trim().is_empty())
                .map(|l| {
                    let own = matches!(l.rel.as_deref(), None | Some("alternate"));
                    (own, l.href.trim().to_string())
                })
                .collect();
            // Stable sort: the entry's own links first, in document order.
            links.sort_by_key(|(own, _)| !own);
            ParsedItem {
                id: Some(e.id.trim().to_string()).filter(|id| !id.is_empty()),
                title: e.title.map(text),
                links: links.into_iter().map(|(_, href)| href).collect(),
                summary: e.summary.map(text),
                content: e.content.and_then(|c| {
                    let html = c.content_type.to_string().contains("html");
                    c.body.map(|body| Text { body, html })
                }),
                authors: e
                    .authors
                    .into_iter()
                    .map(|p| p.name.trim().to_string())
                    .filter(|n| !n.is_empty())
                    .collect(),
                published: e.published,
                updated: e.updated,
                date_text: None,
                article: None,
                categories: e
                    .categories
                    .into_iter()
                    .map(|c| c.label.unwrap_or(c.term).trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect(),
            }
        })
        .collect();
    Ok(ParsedFeed {
        title: feed.title.map(|t| t.content),
        items,
        warnings: Vec::new(),
        ttl: feed
            .ttl
            .map(|minutes| std::time::Duration::from_secs(u64::from(minutes) * 60)),
    })
}

fn text(t: feed_rs::model::Text) -> Text {
    Text {
        html: t.content_type.to_string().contains("html"),
        body: t.content,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_without_guid_gets_no_invented_id() {
        let xml = br#"<rss version="2.0"><channel><title>t</title>
            <item><title>a</title><link>http://x/1</link></item>
            <item><title>b</title><guid>g-2</guid></item></channel></rss>"#;
        let feed = parse(xml).unwrap();
        assert_eq!(feed.items[0].id, None);
        assert_eq!(feed.items[1].id.as_deref(), Some("g-2"));
        assert_eq!(feed.items[0].links, vec!["http://x/1"]);
    }

    #[test]
    fn json_feed_items() {
        let json = br#"{"version":"https://jsonfeed.org/version/1.1","title":"j",
            "items":[{"id":"1","url":"https://x/1","content_html":"<p>hi</p>","tags":["a"]}]}"#;
        let feed = parse(json).unwrap();
        let item = &feed.items[0];
        assert_eq!(item.id.as_deref(), Some("1"));
        assert_eq!(item.content.as_ref().map(|c| c.html), Some(true));
        assert_eq!(item.categories, vec!["a"]);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(matches!(parse(b"hello"), Err(ParseError::NotAFeed)));
        let e = parse(b"<rss version=\"2.0\"><channel><title>t</title><item>").unwrap_err();
        assert!(e.to_string().starts_with("malformed feed"), "{e}");
    }
}
