//! List pages read with CSS selectors (`kind = "html"`).

use scraper::{ElementRef, Html, Selector};

use super::{ParseError, ParsedFeed, ParsedItem, Text};
use crate::config::HtmlRules;

/// Feed types a page's `<link rel="alternate">` may name (RSS, Atom, RSS 1.0, JSON Feed).
const FEED_TYPES: &[&str] = &[
    "application/rss+xml",
    "application/atom+xml",
    "application/rdf+xml",
    "application/feed+json",
];

/// The `href` of the first `<link rel="alternate">` of a feed type in a page (feed
/// autodiscovery), as written: it may be relative.
pub fn feed_link(page: &str) -> Option<String> {
    static LINKS: std::sync::OnceLock<Selector> = std::sync::OnceLock::new();
    let links = LINKS.get_or_init(|| Selector::parse("link[href]").expect("static selector"));
    let doc = Html::parse_document(page);
    let found = doc.select(links).find(|link| {
        let attr = |name| link.value().attr(name).unwrap_or("").to_ascii_lowercase();
        let media_type = attr("type");
        attr("rel")
            .split_ascii_whitespace()
            .any(|r| r == "alternate")
            && FEED_TYPES.contains(&media_type.split(';').next().unwrap_or("").trim())
    });
    found
        .and_then(|link| link.value().attr("href"))
        .map(|href| href.trim().to_string())
        .filter(|href| !href.is_empty())
}

/// Reads the entries of a list page. An item selector that matches nothing is an error (the
/// site changed its template), and so is a page whose items all lack links.
pub fn parse_list(page: &str, rules: &HtmlRules) -> Result<ParsedFeed, ParseError> {
    let doc = Html::parse_document(page);
    let elements: Vec<ElementRef> = doc.select(&rules.item.selector).collect();
    if elements.is_empty() {
        return Err(ParseError::NothingMatched {
            key: rules.item.key,
            selector: rules.item.text.clone(),
        });
    }
    let mut items = Vec::with_capacity(elements.len());
    let mut warnings = Vec::new();
    let mut without_link = 0;
    let mut without_date = 0;
    for el in &elements {
        let link_el = link_element(el, rules.link.as_ref().map(|s| &s.selector));
        let Some(href) = link_el.and_then(|a| a.attr("href")).map(str::trim) else {
            without_link += 1;
            continue;
        };
        if href.is_empty() || href.starts_with('#') || href.starts_with("javascript:") {
            without_link += 1;
            continue;
        }
        let title = match &rules.title {
            Some(sel) => first_text(el, &sel.selector),
            None => link_el.map(|a| element_text(&a)),
        }
        .filter(|t| !t.is_empty());
        let date_text = rules
            .date
            .as_ref()
            .and_then(|sel| first_date(el, &sel.selector));
        if rules.date.is_some() && date_text.is_none() {
            without_date += 1;
        }
        let summary = rules.summary.as_ref().and_then(|sel| {
            el.select(&sel.selector)
                .next()
                .filter(|s| !element_text(s).is_empty())
                .map(|s| Text {
                    body: s.inner_html(),
                    html: true,
                })
        });
        items.push(ParsedItem {
            title: title.map(|body| Text { body, html: false }),
            links: vec![href.to_string()],
            summary,
            date_text,
            ..Default::default()
        });
    }
    if items.is_empty() {
        return Err(ParseError::NoLinks {
            count: elements.len(),
            selector: rules.item.text.clone(),
        });
    }
    if without_link > 0 {
        warnings.push(format!(
            "{without_link} of {} items matched by {:?} have no link and were skipped",
            elements.len(),
            rules.item.text
        ));
    }
    if let (Some(sel), true) = (&rules.date, without_date > 0) {
        warnings.push(format!(
            "{without_date} items have no date under {:?} (html.date)",
            sel.text
        ));
    }
    let title = Selector::parse("title")
        .ok()
        .and_then(|t| doc.select(&t).next().map(|t| element_text(&t)))
        .filter(|t| !t.is_empty());
    Ok(ParsedFeed {
        title,
        items,
        warnings,
        ttl: None,
    })
}

/// The item's link: the configured selector's first match, else the item itself when it is a
/// link, else its first link.
fn link_element<'a>(item: &ElementRef<'a>, selector: Option<&Selector>) -> Option<ElementRef<'a>> {
    if let Some(found) = selector.and_then(|s| item.select(s).find(|a| a.attr("href").is_some())) {
        return Some(found);
    }
    if item.value().name() == "a" && item.attr("href").is_some() {
        return Some(*item);
    }
    let any = Selector::parse("a[href]").ok()?;
    item.select(&any).next()
}

/// Text of the first match.
pub(crate) fn first_text(el: &ElementRef, selector: &Selector) -> Option<String> {
    el.select(selector).next().map(|e| element_text(&e))
}

/// A date from the first match: its machine-readable `datetime` attribute (`<time>`) or
/// `content` attribute (`<meta property="article:published_time">`) when it has one, else its
/// text.
pub(crate) fn first_date(el: &ElementRef, selector: &Selector) -> Option<String> {
    let found = el.select(selector).next()?;
    found
        .attr("datetime")
        .or_else(|| found.attr("content"))
        .map(str::to_string)
        .or_else(|| Some(element_text(&found)))
        .filter(|t| !t.is_empty())
}

/// An element's text with whitespace collapsed (U+3000 ideographic spaces included).
pub(crate) fn element_text(el: &ElementRef) -> String {
    el.text()
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_links_are_discovered() {
        let page = r#"<!DOCTYPE html><html><head>
            <link rel="alternate" type="application/json" href="/wp-json/wp/v2/pages/2">
            <link rel="stylesheet" type="text/css" href="/s.css">
            <link rel="Alternate" type="application/RSS+xml; charset=utf-8" href=" /feed/ ">
            <link rel="alternate" type="application/atom+xml" href="/atom.xml">
            </head><body></body></html>"#;
        assert_eq!(feed_link(page).as_deref(), Some("/feed/"));
        assert_eq!(
            feed_link("<html><head><title>x</title></head></html>"),
            None
        );
        let json = r#"<link rel="alternate" type="application/feed+json" href="feed.json">"#;
        assert_eq!(feed_link(json).as_deref(), Some("feed.json"));
    }
}
