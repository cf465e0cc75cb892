//! Documents to a [`ParsedFeed`]: XML feeds ([`feed`], on a lenient tree of their own,
//! [`tree`]), JSON Feed ([`jsonfeed`]), list pages with CSS selectors ([`html`]), JSON lists
//! with dot paths ([`json`]), and article pages ([`article`]).
//!
//! Parsing only extracts: text stays as written (dates included, with the element each came
//! from), links may be relative. Cleaning, resolving and dating are normalize's job. No id is
//! invented for an entry that has none: identity is decided by normalize and the store, from
//! keys we can explain.
//!
//! Feeds are read by our own code rather than feed-rs: feed-rs rejects a whole document for one
//! unknown content type, reads RSS `<author>` as an address named "author", drops RSS 0.90's
//! items, keeps no date it cannot parse and no date text to read in the source's zone, and
//! does not say whether a guid is a permalink. Every one of those lost entries or fields that
//! readers keep.

pub mod article;
pub mod feed;
pub mod html;
pub mod json;
pub mod jsonfeed;
pub mod tree;

use chrono::{DateTime, Utc};

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
    /// The `xml:base` values the links are relative to, outermost first (each relative to the
    /// one before, the first to the document's address).
    pub base: Vec<String>,
    pub summary: Option<Text>,
    pub content: Option<Text>,
    pub authors: Vec<String>,
    /// An instant the source gave as such (a JSON list's epoch seconds).
    pub published: Option<DateTime<Utc>>,
    pub updated: Option<DateTime<Utc>>,
    /// A feed's publication date as written (`pubDate`, `published`, `dc:date`…), read by
    /// normalize in the source's zone.
    pub published_text: Option<DateText>,
    /// A feed's last-modified date as written (`updated`, `dcterms:modified`…).
    pub updated_text: Option<DateText>,
    /// A date as a page wrote it, zone-less as often as not: normalize reads it in the
    /// source's zone. Used when `published` is None.
    pub date_text: Option<String>,
    pub categories: Vec<String>,
    /// What the entry's own page added, when it was fetched.
    pub article: Option<ArticleParts>,
}

/// A date as the document wrote it, and the element or key it was in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateText {
    pub field: &'static str,
    pub text: String,
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
    #[error("not a feed: the body is empty")]
    Empty,
    /// A web page where a feed was expected; `feed` is the absolute URL of the feed the page
    /// names in a `<link rel="alternate">`, if it names one.
    #[error("not a feed: an HTML page; {}", match feed {
        Some(url) => format!("its feed is at {url} (set url to it)"),
        None => "it names no feed (no <link rel=\"alternate\"> of a feed type)".to_string(),
    })]
    HtmlPage { feed: Option<String> },
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
    parse_newest(bytes, usize::MAX)
}

/// [`parse`], keeping only the `max_items` newest entries ([`keep_newest`]); a warning says
/// how many there were.
pub fn parse_newest(bytes: &[u8], max_items: usize) -> Result<ParsedFeed, ParseError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    let body = &bytes[start..];
    let body = body
        .strip_prefix(b"\xef\xbb\xbf".as_slice())
        .unwrap_or(body);
    if body.first() == Some(&b'{') {
        return jsonfeed::parse(body, max_items);
    }
    feed::parse(&String::from_utf8_lossy(bytes), max_items)
}

/// The date an item is ordered by when a fetch keeps only the newest: its instant, else its
/// feed dates read as UTC (close enough to choose by; normalize reads them in the source's
/// zone).
pub fn sort_date(item: &ParsedItem) -> Option<DateTime<Utc>> {
    let read = |d: &Option<DateText>| {
        d.as_ref()
            .and_then(|d| crate::dates::read(&d.text, chrono_tz::Tz::UTC))
            .map(|r| r.at)
    };
    item.published
        .or(item.updated)
        .or_else(|| read(&item.published_text))
        .or_else(|| read(&item.updated_text))
}

/// Keeps at most `max` of `items` (`[defaults] max_items`): the newest by `date`, undated ones
/// after dated ones, ties in document order. The kept items stay in document order. Returns
/// whether any were dropped.
pub fn keep_newest<T>(
    items: &mut Vec<T>,
    max: usize,
    date: impl Fn(&T) -> Option<DateTime<Utc>>,
) -> bool {
    let total = items.len();
    if total <= max {
        return false;
    }
    let mut order: Vec<usize> = (0..total).collect();
    // Stable: equal dates (and all undated items) keep their document order.
    order.sort_by_key(|&i| std::cmp::Reverse(date(&items[i])));
    let mut keep = vec![false; total];
    for &i in &order[..max] {
        keep[i] = true;
    }
    let mut index = 0;
    items.retain(|_| {
        index += 1;
        keep[index - 1]
    });
    items.shrink_to_fit();
    true
}

/// The warning of a fetch whose items were cut by [`keep_newest`].
pub fn dropped_warning(total: usize, max: usize) -> String {
    format!("the feed has {total} items; only the newest {max} were read ([defaults] max_items)")
}

/// Whether a document that is not a feed is a web page: its Content-Type says HTML, or it opens
/// like one (a doctype or `<html>` near the start).
pub fn looks_like_html(bytes: &[u8], content_type: Option<&str>) -> bool {
    let html_type = content_type.is_some_and(|t| {
        let t = t.trim_start().to_ascii_lowercase();
        t.starts_with("text/html") || t.starts_with("application/xhtml+xml")
    });
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).to_ascii_lowercase();
    html_type || head.contains("<!doctype html") || head.contains("<html")
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
    fn only_the_newest_items_are_kept_in_document_order() {
        let at = |h: u32| {
            chrono::NaiveDate::from_ymd_opt(2024, 1, 1)
                .and_then(|d| d.and_hms_opt(h, 0, 0))
                .map(|d| d.and_utc())
        };
        let mut items = vec![
            ("undated", None),
            ("h1", at(1)),
            ("h5", at(5)),
            ("h3", at(3)),
            ("h4", at(4)),
        ];
        assert!(keep_newest(&mut items, 3, |i| i.1));
        let ids: Vec<_> = items.iter().map(|i| i.0).collect();
        assert_eq!(ids, ["h5", "h3", "h4"]);
        // Undated items (list pages): the first ones in the document.
        let mut page = vec![0, 1, 2, 3, 4];
        assert!(keep_newest(&mut page, 2, |_| None));
        assert_eq!(page, [0, 1]);
        let mut small = vec![0];
        assert!(!keep_newest(&mut small, 2, |_| None));

        let xml = br#"<rss version="2.0"><channel><title>t</title>
            <item><guid>old</guid><pubDate>Mon, 01 Jan 2024 00:00:00 GMT</pubDate></item>
            <item><guid>new</guid><pubDate>Wed, 03 Jan 2024 00:00:00 GMT</pubDate></item>
            <item><guid>mid</guid><pubDate>Tue, 02 Jan 2024 00:00:00 GMT</pubDate></item>
            </channel></rss>"#;
        let feed = parse_newest(xml, 2).unwrap();
        let ids: Vec<_> = feed.items.iter().filter_map(|i| i.id.as_deref()).collect();
        assert_eq!(ids, ["new", "mid"]);
        assert_eq!(feed.warnings, [dropped_warning(3, 2)]);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(matches!(parse(b"hello"), Err(ParseError::NotAFeed)));
        assert!(matches!(parse(b""), Err(ParseError::Empty)));
        assert!(matches!(parse(b" \r\n"), Err(ParseError::Empty)));
        let page = ParseError::HtmlPage {
            feed: Some("https://x.example/feed.xml".into()),
        };
        assert_eq!(
            page.to_string(),
            "not a feed: an HTML page; its feed is at https://x.example/feed.xml (set url to it)"
        );
        assert!(looks_like_html(b"\n<!DOCTYPE html><p>", None));
        assert!(looks_like_html(b"<p>hi", Some("text/html; charset=utf-8")));
        assert!(!looks_like_html(b"<rss>", Some("application/rss+xml")));
        let e = parse(b"<rss version=\"2.0\"><channel><title>t</title><item>").unwrap_err();
        assert!(e.to_string().starts_with("malformed feed"), "{e}");
    }
}
