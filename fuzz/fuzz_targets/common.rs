//! What both targets share: the input format, the fixed normalize context, and the pipeline
//! after parsing (normalize, dedupe), with the invariants the README promises checked.

// Each target uses part of it.
#![allow(dead_code)]

use std::sync::LazyLock;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use regex::Regex;
use tributary::dedupe::{self, Thresholds};
use tributary::model::Entry;
use tributary::normalize::{self, Context};
use tributary::parse::ParsedItem;
use url::Url;

/// An input is a body, optionally preceded by one line `CT:<Content-Type header value>\n`.
/// Any file (a feed, a page) is a valid input as it is: it is the body, with no header.
pub fn split_content_type(data: &[u8]) -> (Option<String>, &[u8]) {
    if let Some(rest) = data.strip_prefix(b"CT:") {
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let value = String::from_utf8_lossy(&rest[..end]).into_owned();
        (Some(value), rest.get(end + 1..).unwrap_or_default())
    } else {
        (None, data)
    }
}

pub struct Fixed {
    pub base: Url,
    pub timezone: Tz,
    pub date_formats: Vec<String>,
    pub id_pattern: Regex,
    pub now: DateTime<Utc>,
    pub thresholds: Thresholds,
}

/// The context of a 中证网 channel: relative links resolve against the channel's folder, naive
/// dates are Beijing time.
pub static FIXED: LazyLock<Fixed> = LazyLock::new(|| Fixed {
    base: Url::parse("https://www.cs.com.cn/xwzx/hg/").unwrap(),
    timezone: chrono_tz::Asia::Shanghai,
    date_formats: vec!["%Y-%m-%d %H:%M".to_string()],
    id_pattern: Regex::new(r"t\d{8}_(\d+)\.html").unwrap(),
    now: Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap(),
    thresholds: Thresholds::default(),
});

/// Normalizes every item as refresh does, then fingerprints, keys and compares consecutive
/// entries as the store does.
pub fn normalize_all(ctx: &Context<'_>, items: Vec<ParsedItem>) {
    let t = &FIXED.thresholds;
    let mut previous: Option<Entry> = None;
    for item in items {
        let keys = normalize::keys_for(ctx, &item);
        let entry = normalize::normalize(ctx, item);
        check_entry(ctx, &entry, &keys);

        let fp = dedupe::fingerprint(&entry.title, entry.content.as_deref().unwrap_or(""));
        assert!(fp.body.chars().count() <= dedupe::MAX_BODY_CHARS);
        let _ = dedupe::candidate_keys(&entry.fingerprint, t);
        let _ = dedupe::candidate_keys(&fp, t);
        if let Some(prev) = &previous {
            let _ = dedupe::compare(&prev.fingerprint, &entry.fingerprint, t);
            let _ = dedupe::compare(&entry.fingerprint, &prev.fingerprint, t);
        }
        let _ = dedupe::compare(&fp, &entry.fingerprint, t);
        previous = Some(entry);
    }
}

/// What every entry must satisfy, whatever the input (README / ARCHITECTURE invariants).
fn check_entry(ctx: &Context<'_>, entry: &Entry, keys: &[String]) {
    // Every entry has an identity.
    assert!(!entry.keys.is_empty(), "no identity key");
    assert!(!keys.is_empty(), "keys_for gave no key");
    // Links are absolute http(s).
    if let Some(link) = &entry.link {
        let url = Url::parse(link).expect("entry link is not a URL");
        assert!(matches!(url.scheme(), "http" | "https"), "link {link}");
    }
    // A date more than a day ahead counts as missing.
    let limit = ctx.now + chrono::Duration::days(1);
    assert!(
        entry.published.is_none_or(|d| d <= limit),
        "published in the future"
    );
    assert!(
        entry.updated.is_none_or(|d| d <= limit),
        "updated in the future"
    );
    // Republished HTML is sanitized.
    for html in [&entry.summary, &entry.content].into_iter().flatten() {
        assert!(
            !html.to_ascii_lowercase().contains("<script"),
            "script survived sanitizing: {html}"
        );
    }
}
