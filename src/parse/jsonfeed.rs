//! JSON Feed 1.0 and 1.1 to a [`ParsedFeed`].
//!
//! Read leniently, like the XML dialects: a field of the wrong JSON type is skipped, an item
//! that is not an object is skipped, and a feed whose `version` is `"1.1"` rather than the
//! version URL is still a JSON Feed.

use serde_json::Value;

use super::{DateText, ParseError, ParsedFeed, ParsedItem, Text};

/// Whether a JSON document is a JSON Feed: an object with an `items` list and a version that
/// names JSON Feed (or is a bare `1`, `1.0`, `1.1`).
fn is_json_feed(doc: &serde_json::Map<String, Value>) -> bool {
    let version = doc.get("version").and_then(Value::as_str).unwrap_or("");
    let named = version.contains("jsonfeed.org/version") || matches!(version, "1" | "1.0" | "1.1");
    named && doc.get("items").is_some_and(Value::is_array)
}

pub fn parse(bytes: &[u8], max_items: usize) -> Result<ParsedFeed, ParseError> {
    let doc: Value = serde_json::from_slice(&repair_surrogates(bytes))
        .map_err(|e| ParseError::Json(e.to_string()))?;
    let Some(doc) = doc.as_object().filter(|d| is_json_feed(d)) else {
        return Err(ParseError::NotAFeed);
    };
    let list = doc
        .get("items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let feed_authors = authors(doc);
    let mut warnings = Vec::new();
    let mut items: Vec<ParsedItem> = Vec::with_capacity(list.len());
    let mut skipped = 0;
    for value in list {
        match value.as_object() {
            Some(item) => items.push(item_of(item, &feed_authors)),
            None => skipped += 1,
        }
    }
    if skipped > 0 {
        warnings.push(format!(
            "{skipped} items are not JSON objects and were skipped"
        ));
    }
    let total = items.len();
    if super::keep_newest(&mut items, max_items, super::sort_date) {
        warnings.push(super::dropped_warning(total, max_items));
    }
    Ok(ParsedFeed {
        title: string(doc, "title"),
        items,
        warnings,
        ttl: None,
    })
}

/// `bytes` with every escaped surrogate that is not half of a pair (`"\ud800"`, which
/// JavaScript writes and serde_json refuses) replaced by U+FFFD: one bad character in one
/// title must not cost the whole feed.
fn repair_surrogates(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let unit_at = |at: usize| -> Option<u16> {
        if bytes.get(at) != Some(&b'\\') || bytes.get(at + 1) != Some(&b'u') {
            return None;
        }
        let hex = std::str::from_utf8(bytes.get(at + 2..at + 6)?).ok()?;
        u16::from_str_radix(hex, 16).ok()
    };
    let is_high = |u: u16| (0xd800..0xdc00).contains(&u);
    let is_low = |u: u16| (0xdc00..0xe000).contains(&u);
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < bytes.len() {
        let len = match (bytes[i], unit_at(i)) {
            (b'\\', Some(u)) if is_high(u) && unit_at(i + 6).is_some_and(is_low) => 12,
            (b'\\', Some(u)) if is_high(u) || is_low(u) => {
                let o = out.get_or_insert_with(|| bytes[..i].to_vec());
                o.extend_from_slice(b"\\ufffd");
                i += 6;
                continue;
            }
            (b'\\', Some(_)) => 6,
            // Any other escape is copied whole, so `\\ud800` stays the text it is.
            (b'\\', None) => 2,
            _ => 1,
        };
        let end = (i + len).min(bytes.len());
        if let Some(o) = out.as_mut() {
            o.extend_from_slice(&bytes[i..end]);
        }
        i = end;
    }
    match out {
        Some(o) => std::borrow::Cow::Owned(o),
        None => std::borrow::Cow::Borrowed(bytes),
    }
}

fn string(obj: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key)? {
        Value::String(s) => Some(s.trim().to_string()),
        // Ids written as numbers are still ids.
        Value::Number(n) if key == "id" => Some(n.to_string()),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

/// 1.1's `authors` list, else 1.0's `author` object; names, else the author's URL.
fn authors(obj: &serde_json::Map<String, Value>) -> Vec<String> {
    let one = |a: &Value| {
        let a = a.as_object()?;
        string(a, "name").or_else(|| string(a, "url"))
    };
    match obj.get("authors").and_then(Value::as_array) {
        Some(list) => list.iter().filter_map(one).collect(),
        None => obj.get("author").and_then(one).into_iter().collect(),
    }
}

fn item_of(item: &serde_json::Map<String, Value>, feed_authors: &[String]) -> ParsedItem {
    let date = |key: &'static str| string(item, key).map(|text| DateText { field: key, text });
    let content = string(item, "content_html")
        .map(|body| Text { body, html: true })
        .or_else(|| string(item, "content_text").map(|body| Text { body, html: false }));
    let mut authors = authors(item);
    if authors.is_empty() {
        // 1.1: an item without authors has the feed's.
        authors = feed_authors.to_vec();
    }
    ParsedItem {
        id: string(item, "id"),
        title: string(item, "title").map(|body| Text { body, html: false }),
        links: ["url", "external_url"]
            .iter()
            .filter_map(|k| string(item, k))
            .collect(),
        summary: string(item, "summary").map(|body| Text { body, html: false }),
        content,
        authors,
        published_text: date("date_published"),
        updated_text: date("date_modified"),
        categories: item
            .get("tags")
            .and_then(Value::as_array)
            .map(|tags| {
                tags.iter()
                    .filter_map(Value::as_str)
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_authors_and_odd_fields() {
        let doc = br#"{"version":"1.1","title":"j","authors":[{"name":"Feed Author"}],
            "items":[{"id":1,"url":"https://x/1","content_html":"<p>hi</p>","tags":["a",3],
                      "date_published":"2026-03-02T08:00:00Z","title":7},
                     "junk",
                     {"id":"2","content_text":"plain","author":{"name":"Old"},
                      "authors":[{"name":"New"}]}]}"#;
        let feed = parse(doc, usize::MAX).unwrap();
        assert_eq!(feed.items.len(), 2);
        let first = &feed.items[0];
        assert_eq!(first.id.as_deref(), Some("1"));
        assert_eq!(first.title, None);
        assert_eq!(first.categories, ["a"]);
        assert_eq!(first.authors, ["Feed Author"]);
        assert_eq!(
            first.published_text.as_ref().unwrap().field,
            "date_published"
        );
        assert_eq!(feed.items[1].authors, ["New"]);
        assert_eq!(feed.warnings.len(), 1);
        assert!(matches!(
            parse(br#"{"items":[]}"#, 10),
            Err(ParseError::NotAFeed)
        ));
    }

    #[test]
    fn lone_surrogate_escapes_cost_a_character_not_the_feed() {
        let doc = br#"{"version":"1.1","items":[{"id":"1",
            "title":"a\ud800b\udc00c\\ud800 \ud83d\ude00"}]}"#;
        let feed = parse(doc, 10).unwrap();
        assert_eq!(
            feed.items[0].title.as_ref().unwrap().body,
            "a\u{fffd}b\u{fffd}c\\ud800 \u{1f600}"
        );
    }
}
