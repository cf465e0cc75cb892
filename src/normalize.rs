//! Parsed items to [`Entry`]: the one shape every later stage sees.
//!
//! Titles become plain text with entities decoded; links become absolute; HTML is sanitized
//! with ammonia (an allow-list, so new attack vectors are closed by default) and its relative
//! URLs are resolved against the entry's page; dates are UTC. Identity keys are computed here
//! so that the store only compares strings.

use std::collections::HashSet;
use std::sync::OnceLock;

use url::Url;

use crate::model::Entry;
use crate::parse::{ParsedItem, Text};

/// Query parameters that only track the reader; they never change which page a link shows.
/// Most of the list follows Miniflux's urlcleaner; `spm` is the Alibaba-family tracker common on
/// Chinese sites.
const TRACKING_PARAMS: &[&str] = &[
    "fbclid",
    "gclid",
    "dclid",
    "gbraid",
    "wbraid",
    "msclkid",
    "yclid",
    "twclid",
    "igshid",
    "mc_cid",
    "mc_eid",
    "_hsenc",
    "_hsmi",
    "mkt_tok",
    "_openstat",
    "spm",
];

/// Below this many characters of body text, a content hash says too little to identify an
/// entry across sources ("快讯" with no body is not one story).
const MIN_HASHED_TEXT: usize = 40;

/// Normalizes one item of `source_id`'s feed. `base` is the URL the feed was fetched from,
/// after redirects.
pub fn normalize(source_id: &str, base: &Url, item: ParsedItem) -> Entry {
    let link = item.links.iter().find_map(|href| absolute(base, href));
    let page = link
        .as_deref()
        .and_then(|l| Url::parse(l).ok())
        .unwrap_or_else(|| base.clone());
    let summary = item.summary.as_ref().and_then(|t| sanitize_text(t, &page));
    let content = item.content.as_ref().and_then(|t| sanitize_text(t, &page));
    let body_text = content
        .as_deref()
        .or(summary.as_deref())
        .map(html_to_text)
        .unwrap_or_default();

    let mut title = item
        .title
        .as_ref()
        .map(|t| {
            if t.html {
                html_to_text(&t.body)
            } else {
                clean_text(&t.body)
            }
        })
        .unwrap_or_default();
    if title.is_empty() {
        // RSS allows an item with only a description; readers show its opening words.
        title = body_text.chars().take(80).collect();
    }

    let mut seen = HashSet::new();
    let categories = item
        .categories
        .iter()
        .map(|c| clean_text(c))
        .filter(|c| !c.is_empty() && seen.insert(c.clone()))
        .collect();

    let published = item.published.or(item.updated);
    let updated = item.updated.or(published);
    let guid = item.id.clone();
    let keys = identity_keys(
        source_id,
        guid.as_deref(),
        link.as_deref(),
        &title,
        &body_text,
    );
    let version = hash_hex(&[
        &title,
        link.as_deref().unwrap_or(""),
        summary.as_deref().unwrap_or(""),
        content.as_deref().unwrap_or(""),
        &item.authors.join("\u{1f}"),
    ]);

    Entry {
        guid,
        link,
        title,
        summary,
        content,
        authors: item.authors,
        published,
        updated,
        categories,
        keys,
        version,
    }
}

/// The keys that identify an entry, strongest first: the source's guid (scoped to the source,
/// since guids like "1" are only unique within one feed), the canonical link (global: the same
/// page from two sources is one story), then a hash of the text (global when the text is long
/// enough to mean something; scoped to the source otherwise, as a last resort for items with no
/// guid and no link).
pub fn identity_keys(
    source_id: &str,
    guid: Option<&str>,
    link: Option<&str>,
    title: &str,
    body_text: &str,
) -> Vec<String> {
    let mut keys = Vec::with_capacity(3);
    if let Some(guid) = guid {
        keys.push(format!("guid:{source_id}:{guid}"));
    }
    if let Some(link) = link.and_then(|l| Url::parse(l).ok()) {
        keys.push(format!("link:{}", canonical_link(&link)));
    }
    let text = format!("{}\n{}", squash(title), squash(body_text));
    let hash = hash_hex(&[&text]);
    if body_text.chars().filter(|c| !c.is_whitespace()).count() >= MIN_HASHED_TEXT {
        keys.push(format!("hash:{hash}"));
    } else if keys.is_empty() {
        keys.push(format!("hash:{source_id}:{hash}"));
    }
    keys
}

/// A link in the form used to compare links: no scheme (http and https copies are the same
/// page), no fragment, no tracking parameters, the remaining parameters sorted.
pub fn canonical_link(url: &Url) -> String {
    let mut url = url.clone();
    url.set_fragment(None);
    let mut params: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            !k.starts_with("utm_") && !TRACKING_PARAMS.contains(&k.as_str())
        })
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    params.sort();
    if params.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(params);
    }
    let text = url.as_str();
    text.split_once("://")
        .map_or(text, |(_, rest)| rest)
        .to_string()
}

/// Resolves `href` against `base`; None when it is not a usable http(s) link.
pub fn absolute(base: &Url, href: &str) -> Option<String> {
    let url = base.join(href.trim()).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| url.to_string())
}

/// Sanitized HTML for `text`, or None when nothing is left.
fn sanitize_text(text: &Text, page: &Url) -> Option<String> {
    let html = if text.html {
        sanitize_html(&text.body, page)
    } else {
        plain_to_html(&text.body)
    };
    let trimmed = html.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// Sanitizes untrusted HTML for republishing. Allowed: ammonia's default tags and attributes
/// (no script, style, iframe, form, on* handlers; only http, https and mailto URLs). Relative
/// URLs are resolved against `page`, because a reader showing the entry has no other base.
pub fn sanitize_html(html: &str, page: &Url) -> String {
    ammonia::Builder::default()
        .url_relative(ammonia::UrlRelative::RewriteWithBase(page.clone()))
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .link_rel(Some("noopener noreferrer"))
        .clean(html)
        .to_string()
}

fn plain_to_html(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    text.split("\n\n")
        .map(|p| format!("<p>{}</p>", html_escape::encode_text(p.trim())))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text of an HTML fragment, entities decoded and whitespace collapsed.
pub fn html_to_text(html: &str) -> String {
    static STRIP: OnceLock<ammonia::Builder<'static>> = OnceLock::new();
    let strip = STRIP.get_or_init(|| {
        let mut b = ammonia::Builder::empty();
        b.clean_content_tags(["script", "style"].into_iter().collect());
        b
    });
    clean_text(&strip.clean(html).to_string())
}

/// Plain text with entities decoded (titles are often escaped twice) and whitespace collapsed.
pub fn clean_text(text: &str) -> String {
    let decoded = html_escape::decode_html_entities(text);
    let decoded = if decoded.contains('&') {
        html_escape::decode_html_entities(&decoded).into_owned()
    } else {
        decoded.into_owned()
    };
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn squash(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

fn hash_hex(parts: &[&str]) -> String {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(&[0]);
    }
    h.finalize().to_hex()[..32].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://www.cs.com.cn/xwzx/hg/").unwrap()
    }

    #[test]
    fn canonical_links_ignore_tracking_and_order() {
        let a = Url::parse("https://Example.com:443/a?b=2&utm_source=rss&a=1#top").unwrap();
        let b = Url::parse("http://example.com/a?a=1&b=2&fbclid=x").unwrap();
        assert_eq!(canonical_link(&a), canonical_link(&b));
        assert_eq!(canonical_link(&a), "example.com/a?a=1&b=2");
        let c = Url::parse("https://example.com/a?a=2").unwrap();
        assert_ne!(canonical_link(&a), canonical_link(&c));
    }

    #[test]
    fn hostile_html_is_removed_and_links_made_absolute() {
        let html = r#"<p onclick="steal()">正文<script>alert(1)</script><a href="javascript:alert(1)">x</a>
            <a href="./202011/t20201201_1.html">相对</a><img src="../img/a.png"><iframe src="https://evil"></iframe>
            <style>p{}</style></p>"#;
        let out = sanitize_html(html, &base());
        for bad in [
            "script",
            "onclick",
            "javascript:",
            "iframe",
            "style",
            "alert",
        ] {
            assert!(!out.contains(bad), "{bad} survived: {out}");
        }
        assert!(
            out.contains("https://www.cs.com.cn/xwzx/hg/202011/t20201201_1.html"),
            "{out}"
        );
        assert!(
            out.contains("https://www.cs.com.cn/xwzx/img/a.png"),
            "{out}"
        );
    }

    #[test]
    fn titles_are_plain_text() {
        assert_eq!(clean_text("  A &amp;amp; B\n  C "), "A & B C");
        assert_eq!(html_to_text("<b>央行</b> &lt;降准&gt;"), "央行 <降准>");
    }

    #[test]
    fn keys_layer_guid_link_hash() {
        let long = "x".repeat(MIN_HASHED_TEXT);
        let keys = identity_keys(
            "s",
            Some("g1"),
            Some("https://a/1?utm_medium=x"),
            "t",
            &long,
        );
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[0], "guid:s:g1");
        assert_eq!(keys[1], "link:a/1");
        assert!(keys[2].starts_with("hash:"));
        // Short text alone is only trusted within the source.
        let keys = identity_keys("s", None, None, "快讯", "");
        assert_eq!(keys.len(), 1);
        assert!(keys[0].starts_with("hash:s:"));
    }

    #[test]
    fn entry_without_title_uses_its_text() {
        let item = ParsedItem {
            summary: Some(Text {
                body: "<p>Only a description</p>".into(),
                html: true,
            }),
            links: vec!["/p/1".into()],
            ..Default::default()
        };
        let e = normalize("s", &base(), item);
        assert_eq!(e.title, "Only a description");
        assert_eq!(e.link.as_deref(), Some("https://www.cs.com.cn/p/1"));
    }
}
