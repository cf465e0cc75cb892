//! Parsed items to [`Entry`]: the one shape every later stage sees.
//!
//! Titles become plain text with entities decoded; links become absolute; HTML is sanitized
//! with ammonia (an allow-list, so new attack vectors are closed by default) and its relative
//! URLs are resolved against the entry's page; dates are UTC. Identity keys are computed here
//! so that the store only compares strings.

use std::collections::HashSet;
use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use regex::Regex;
use url::Url;

use crate::dates;
use crate::model::{DateSource, Entry, MAX_URL_BYTES};
use crate::parse::{ParsedItem, Text};
use crate::text::{
    clean_text, html_to_text, plain_text, plain_to_html, sanitize_html, sanitized_text, xml_text,
};

/// What normalize needs to know about the source and the moment.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub source_id: &'a str,
    /// The URL the list or feed was fetched from, after redirects.
    pub base: &'a Url,
    /// Zone of dates written without one.
    pub timezone: Tz,
    /// The config named that zone (it is not the UTC fallback).
    pub timezone_named: bool,
    /// Formats for such dates (chrono strftime), tried in order.
    pub date_formats: &'a [String],
    /// Pulls the site's document id out of a link.
    pub id_pattern: Option<&'a Regex>,
    /// The source has article rules: an item without its article still needs one.
    pub wants_article: bool,
    /// First-seen time; also the reference for "in the future".
    pub now: DateTime<Utc>,
    /// The source's near-duplicate settings (for the candidate keys).
    pub dedupe: &'a crate::config::Thresholds,
}

/// Dates further ahead than this are a site's mistake, not news from tomorrow.
const FUTURE_TOLERANCE: chrono::Duration = chrono::Duration::days(1);

/// Whether a date is too early to be an entry's: the Unix epoch or before. A zero timestamp is
/// how many systems write "no date", and years 0 and below (which an offset can make of
/// `0000-01-01T00:00:00+05:00`) cannot be written in RSS at all.
fn before_epoch(date: &DateTime<Utc>) -> bool {
    date.timestamp() <= 0
}

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

/// Normalizes one item.
pub fn normalize(ctx: &Context<'_>, item: ParsedItem) -> Entry {
    let link = item_link(ctx, &item);
    let page = link
        .as_deref()
        .and_then(|l| Url::parse(l).ok())
        .unwrap_or_else(|| ctx.base.clone());
    let summary = item.summary.as_ref().and_then(|t| sanitize_text(t, &page));
    let feed_content = item.content.as_ref().and_then(|t| sanitize_text(t, &page));
    let article_content = item.article.as_ref().and_then(|a| {
        let html = sanitize_html(&a.content, &page);
        (!sanitized_text(&html).is_empty()).then_some(html)
    });
    let content = article_content.or_else(|| feed_content.clone());

    let title = title_of(&item);
    let mut seen = HashSet::new();
    let categories = item
        .categories
        .iter()
        .map(|c| plain_text(&clean_text(c)))
        .filter(|c| !c.is_empty() && seen.insert(c.clone()))
        .collect();
    let mut authors: Vec<String> = item
        .authors
        .iter()
        .map(|a| plain_text(a))
        .filter(|a| !a.is_empty())
        .collect();
    if let Some(author) = item.article.as_ref().and_then(|a| a.author.as_deref()) {
        let author = plain_text(&clean_text(author));
        if !author.is_empty() && !authors.contains(&author) {
            authors.insert(0, author);
        }
    }

    let dated = pick_date(ctx, &item, link.as_deref());
    let date_rank = date_rank(ctx, &dated);
    let Dated {
        at: published,
        source: date_source,
        format: date_format,
        ..
    } = dated;
    let updated = updated_date(ctx, &item)
        .filter(|u| *u <= ctx.now + FUTURE_TOLERANCE && !before_epoch(u))
        .or(published);
    let keys = identity(
        ctx,
        &item,
        link.as_deref(),
        &title,
        &sanitized_body_text(&item, summary.as_deref(), feed_content.as_deref()),
    );
    let body_text = content
        .as_deref()
        .or(summary.as_deref())
        .map(sanitized_text)
        .unwrap_or_default();
    let (fingerprint, candidate_keys, figures) =
        crate::dedupe::prepare(&title, &body_text, ctx.dedupe);
    // The version covers what the list or feed says, not what an article page added: an entry
    // re-read from its list without fetching the article again is not an edit.
    let version = hash_hex(&[
        &title,
        link.as_deref().unwrap_or(""),
        summary.as_deref().unwrap_or(""),
        feed_content.as_deref().unwrap_or(""),
        &item.authors.join("\u{1f}"),
    ]);

    Entry {
        guid: item.id.as_deref().map(|g| xml_text(g).trim().to_string()),
        link,
        title,
        summary,
        content,
        authors,
        published,
        updated,
        date_source,
        date_format,
        date_rank,
        categories,
        keys,
        version,
        article_pending: ctx.wants_article && item.article.is_none(),
        figures,
        fingerprint,
        candidate_keys,
    }
}

/// The item's absolute link, if it has a usable one.
pub fn item_link(ctx: &Context<'_>, item: &ParsedItem) -> Option<String> {
    let based;
    let base = if item.base.is_empty() {
        ctx.base
    } else {
        based = item
            .base
            .iter()
            .fold(ctx.base.clone(), |url, b| url.join(b).unwrap_or(url));
        &based
    };
    item.links.iter().find_map(|href| absolute(base, href))
}

/// The identity keys of an item (see [`identity_keys`]); computable before its article is
/// fetched, so the store can say whether the item is new.
pub fn keys_for(ctx: &Context<'_>, item: &ParsedItem) -> Vec<String> {
    let link = item_link(ctx, item);
    identity(
        ctx,
        item,
        link.as_deref(),
        &title_of(item),
        &body_text(item),
    )
}

/// [`keys_for`] from the item's link, title and body text, when they are already at hand.
fn identity(
    ctx: &Context<'_>,
    item: &ParsedItem,
    link: Option<&str>,
    title: &str,
    body: &str,
) -> Vec<String> {
    let mut keys = identity_keys(ctx.source_id, item.id.as_deref(), link, title, body);
    if let Some(doc) = link.and_then(|l| document_key(l, ctx.id_pattern)) {
        // The site's own document id is as strong as a guid, and holds across channels.
        keys.insert(usize::from(item.id.is_some()), doc);
    }
    keys
}

/// `doc:<host>:<id>` from a link and the source's id pattern (group 1, else the whole match).
fn document_key(link: &str, pattern: Option<&Regex>) -> Option<String> {
    let pattern = pattern?;
    let url = Url::parse(link).ok()?;
    let caps = pattern
        .captures(url.path())
        .or_else(|| pattern.captures(link))?;
    let id = caps.get(1).or_else(|| caps.get(0))?.as_str();
    Some(format!(
        "doc:{}:{id}",
        url.host_str()?.trim_start_matches("www.")
    ))
}

/// The text of a piece of the feed, whether it was written as HTML or as plain text.
fn text_of(t: &Text) -> String {
    if t.html {
        html_to_text(&t.body)
    } else {
        clean_text(&t.body)
    }
}

/// The item's body as plain text: its content, else its summary.
fn body_text(item: &ParsedItem) -> String {
    item.content
        .as_ref()
        .or(item.summary.as_ref())
        .map(text_of)
        .unwrap_or_default()
}

/// [`body_text`] from the feed's content and summary as [`sanitize_text`] left them, without
/// parsing the HTML again: both read the same parse of it, and the sanitizer drops the text
/// of no element that `html_to_text` keeps (script and style go in both), so the text is the
/// same. Plain text is read as `body_text` reads it.
fn sanitized_body_text(
    item: &ParsedItem,
    summary: Option<&str>,
    feed_content: Option<&str>,
) -> String {
    let (raw, clean) = match (&item.content, &item.summary) {
        (Some(content), _) => (content, feed_content),
        (None, Some(summary_text)) => (summary_text, summary),
        (None, None) => return String::new(),
    };
    if raw.html {
        // None: nothing but markup and white space was left, so no text either.
        clean.map(sanitized_text).unwrap_or_default()
    } else {
        clean_text(&raw.body)
    }
}

fn title_of(item: &ParsedItem) -> String {
    let title = item
        .title
        .as_ref()
        .map(text_of)
        .map(|t| plain_text(&t))
        .unwrap_or_default();
    if !title.is_empty() {
        return title;
    }
    // RSS allows an item with only a description; readers show its opening words.
    plain_text(&body_text(item)).chars().take(80).collect()
}

/// An entry's date, where it came from, and how it was read.
struct Dated {
    at: Option<DateTime<Utc>>,
    source: DateSource,
    /// The element and format, for text dates (`pubDate, RFC 822`).
    format: Option<String>,
    /// The text named its zone, or the date was an instant already.
    zoned: bool,
}

/// The entry's date, in order of trust: the article page, the feed's or list page's own
/// date, a date in the URL, else none (the store uses the first-seen time). A date more than a
/// day ahead is dropped in favour of first-seen (recorded as clamped); one at or before the
/// Unix epoch is dropped as if it were missing.
fn pick_date(ctx: &Context<'_>, item: &ParsedItem, link: Option<&str>) -> Dated {
    let read = |text: &str, source, field: Option<&str>| {
        let r = dates::read_with(text, ctx.date_formats, ctx.timezone)?;
        let format = match field {
            Some(f) => format!("{f}, {}", r.format),
            None => r.format.to_string(),
        };
        Some((r.at, source, Some(format), r.zoned))
    };
    let article = item
        .article
        .as_ref()
        .and_then(|a| a.date_text.as_deref())
        .and_then(|t| read(t, DateSource::ArticlePage, None));
    let instant = item
        .published
        .or(item.updated)
        .map(|d| (d, DateSource::Feed, None, true));
    let feed = [&item.published_text, &item.updated_text]
        .into_iter()
        .flatten()
        .filter_map(|d| read(&d.text, DateSource::Feed, Some(d.field)));
    let listed = item
        .date_text
        .as_deref()
        .and_then(|t| read(t, DateSource::ListPage, None));
    let in_url = link
        .and_then(|l| url_date(l, ctx.timezone))
        .map(|d| (d, DateSource::Url, None, false));
    let candidates = article
        .into_iter()
        .chain(instant)
        .chain(feed)
        .chain(listed)
        .chain(in_url);
    let mut clamped = false;
    for (date, source, format, zoned) in candidates {
        if before_epoch(&date) {
            continue;
        }
        if date > ctx.now + FUTURE_TOLERANCE {
            clamped = true;
            continue;
        }
        return Dated {
            at: Some(date),
            source,
            format,
            zoned,
        };
    }
    Dated {
        at: clamped.then_some(ctx.now),
        source: if clamped {
            DateSource::FutureClamped
        } else {
            DateSource::FirstSeen
        },
        format: None,
        zoned: false,
    }
}

/// How surely a date was read, so that of two sources carrying one document the surer date
/// wins (the store keeps the highest): 4 for a date that named its zone, 3 for a zone-less one
/// read in a zone the config names, 2 for one read in the UTC fallback, 1 for a day in the URL,
/// 0 for none. (A page saying 18:59 means Beijing time to the source configured for it, and
/// 18:59 UTC to one that was not told.)
fn date_rank(ctx: &Context<'_>, d: &Dated) -> u8 {
    match d.source {
        DateSource::ArticlePage | DateSource::Feed | DateSource::ListPage => {
            if d.zoned {
                4
            } else if ctx.timezone_named {
                3
            } else {
                2
            }
        }
        DateSource::Url => 1,
        DateSource::FirstSeen | DateSource::FutureClamped => 0,
    }
}

/// The item's last-modified date, when the feed gave one that reads.
fn updated_date(ctx: &Context<'_>, item: &ParsedItem) -> Option<DateTime<Utc>> {
    item.updated.or_else(|| {
        let d = item.updated_text.as_ref()?;
        dates::read_with(&d.text, ctx.date_formats, ctx.timezone).map(|r| r.at)
    })
}

/// The date in links like `.../202012/t20201201_6116434.html` (midnight, source zone).
fn url_date(link: &str, tz: Tz) -> Option<DateTime<Utc>> {
    static DATE_IN_URL: OnceLock<Option<Regex>> = OnceLock::new();
    let re = DATE_IN_URL
        .get_or_init(|| Regex::new(r"[/_t](20\d{2})(\d{2})(\d{2})[_/.]").ok())
        .as_ref()?;
    let caps = re.captures(link)?;
    let (y, m, d) = (
        caps[1].parse().ok()?,
        caps[2].parse().ok()?,
        caps[3].parse().ok()?,
    );
    let naive = NaiveDate::from_ymd_opt(y, m, d)?.and_hms_opt(0, 0, 0)?;
    Some(
        tz.from_local_datetime(&naive)
            .earliest()?
            .with_timezone(&Utc),
    )
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

fn tracking(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.starts_with("utm_") || TRACKING_PARAMS.contains(&k.as_str())
}

/// Fragments that say how a reader arrived or where to scroll, never which item a link is:
/// campaign tags placed after `#` (`#xtor=RSS-1`, AT Internet's, common on French news sites;
/// `#utm_source=…`; `#ref=rss`), and the anchors blog engines append to a post's own link
/// (WordPress's `#more-123` and `#respond`, `#comments`, `#disqus_thread`). Any other fragment
/// is part of the link's identity: `page.html#age` and `page.html#agent` are two items.
fn noise_fragment(fragment: &str) -> bool {
    let f = fragment.to_ascii_lowercase();
    f.is_empty()
        || ["xtor=", "utm_", "ref=", "at_medium=", "more-"]
            .iter()
            .any(|p| f.starts_with(p))
        || matches!(
            f.as_str(),
            "more" | "respond" | "comments" | "comment" | "disqus_thread" | "rss" | "top"
        )
}

/// A published link without what only tracks its reader: tracking parameters (utm_*,
/// [`TRACKING_PARAMS`]) and noise fragments ([`noise_fragment`]) are removed; everything else
/// stays as the publisher wrote it. A copy republished with `?utm_source=…` and the original
/// are then one link, whichever is stored first.
pub fn clean_link(url: &mut Url) {
    if url.fragment().is_some_and(noise_fragment) {
        url.set_fragment(None);
    }
    if url.query().is_none() {
        return;
    }
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !tracking(k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let all = url.query_pairs().count();
    if kept.len() == all {
        return;
    }
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
}

/// A link in the form used to compare links: no scheme (http and https copies are the same
/// page), no tracking parameters or noise fragment, the remaining parameters sorted.
pub fn canonical_link(url: &Url) -> String {
    let mut url = url.clone();
    clean_link(&mut url);
    let mut params: Vec<(String, String)> = url
        .query_pairs()
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

/// Resolves `href` against `base` and drops what only tracks the reader ([`clean_link`]);
/// None when it is not a usable http(s) link.
pub fn absolute(base: &Url, href: &str) -> Option<String> {
    if href.len() > MAX_URL_BYTES {
        return None;
    }
    let mut url = base.join(href.trim()).ok()?;
    clean_link(&mut url);
    (matches!(url.scheme(), "http" | "https") && url.as_str().len() <= MAX_URL_BYTES)
        .then(|| url.to_string())
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
mod tests;
