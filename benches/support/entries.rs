//! Generated entries for the store benchmarks: Chinese text of a given length with amounts in
//! it, and an entry built from it as normalizing would build it.

use chrono::{DateTime, Utc};
use tributary::dedupe::{self, Thresholds};
use tributary::model::{DateSource, Entry};
use tributary::normalize;

use crate::rng::Rng;

/// Text of `chars` CJK characters drawn from 2,500 common ones (skewed towards the first
/// few hundred, as real text is), with an amount every so often.
pub fn text(rng: &mut Rng, chars: usize) -> String {
    let mut s = String::new();
    for i in 0..chars {
        let r = rng.below(2_500);
        let skewed = r * r / 2_500;
        s.push(char::from_u32(0x4e00 + skewed as u32).unwrap_or('中'));
        if i % 40 == 39 {
            s.push_str(&format!("{}万元。", rng.below(100_000)));
        }
    }
    s
}

pub fn entry(
    source: &str,
    id: u64,
    title: String,
    body: String,
    published: DateTime<Utc>,
) -> Entry {
    let link = format!("https://bench.example/{id}.html");
    let fingerprint = dedupe::fingerprint(&title, &body);
    let keys = normalize::identity_keys(source, Some(&id.to_string()), Some(&link), &title, &body);
    Entry {
        guid: Some(id.to_string()),
        link: Some(link),
        candidate_keys: dedupe::candidate_keys(&fingerprint, &Thresholds::default()),
        figures: dedupe::Figures::of(&fingerprint),
        fingerprint,
        title,
        summary: None,
        content: Some(format!("<p>{body}</p>")),
        authors: Vec::new(),
        published: Some(published),
        updated: Some(published),
        date_source: DateSource::Feed,
        date_format: None,
        date_rank: 4,
        categories: Vec::new(),
        keys,
        version: id.to_string(),
        article_pending: false,
    }
}
