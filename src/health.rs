//! How a source is doing: what one fetch saw of it (`Seen`: items, and how many lacked a date,
//! a link or text), the shape its fetches usually have (`Shape`, a moving average), and the
//! drift verdict from the two: a scraped page whose selectors suddenly match nothing, or whose
//! items lack dates, links or text far more often than they used to. Selector drift is how a
//! scraped source dies silently (the site changes its template; every fetch "succeeds" with
//! nothing or with junk), so it is named on the console, in `/api/sources`, the metrics and
//! `/healthz`.
//!
//! Pure: the store keeps `Shape` and the verdict on the source's row and calls [`assess`]
//! when it records a fetch.

use serde::{Deserialize, Serialize};

use crate::model::{DateSource, Entry};

/// Items of a fetch kept to show on the source's page.
pub const SAMPLE_ITEMS: usize = 20;

/// A missing rate this high, and this much above the usual one, is drift.
const DRIFT_RATE: f64 = 0.5;
const DRIFT_JUMP: f64 = 0.4;
/// Weight of the newest fetch in the moving average.
const ALPHA: f64 = 0.3;

/// What one fetch saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    /// Read with selectors (a list page or JSON list), where drift is looked for.
    pub scraped: bool,
    pub items: u32,
    pub missing_date: u32,
    pub missing_link: u32,
    pub missing_text: u32,
    /// The first [`SAMPLE_ITEMS`] items: title, date, where the date came from, link.
    pub sample: Vec<SeenItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeenItem {
    pub title: String,
    /// Unix seconds, UTC.
    pub published: Option<i64>,
    /// `DateSource::as_str`, with the element and format when the date was text.
    pub date_from: String,
    pub link: Option<String>,
}

impl Seen {
    /// What a fetch that stored `entries` saw.
    pub fn of(entries: &[Entry], scraped: bool) -> Seen {
        let count = |f: &dyn Fn(&Entry) -> bool| entries.iter().filter(|e| f(e)).count() as u32;
        let no_text = |e: &Entry| {
            let empty = |t: &Option<String>| t.as_deref().map_or(true, |t| t.trim().is_empty());
            empty(&e.content) && empty(&e.summary)
        };
        Seen {
            scraped,
            items: entries.len() as u32,
            missing_date: count(&|e| {
                matches!(
                    e.date_source,
                    DateSource::FirstSeen | DateSource::FutureClamped
                )
            }),
            missing_link: count(&|e| e.link.is_none()),
            missing_text: count(&no_text),
            sample: entries
                .iter()
                .take(SAMPLE_ITEMS)
                .map(|e| SeenItem {
                    title: e.title.clone(),
                    published: e.published.map(|t| t.timestamp()),
                    date_from: match &e.date_format {
                        Some(f) => format!("{}: {f}", e.date_source.as_str()),
                        None => e.date_source.as_str().to_string(),
                    },
                    link: e.link.clone(),
                })
                .collect(),
        }
    }

    /// A scraped page whose item selector matched nothing.
    pub fn nothing_matched() -> Seen {
        Seen {
            scraped: true,
            ..Seen::default()
        }
    }
}

/// The usual shape of a source's fetches: moving averages of its item count and of the
/// share of items lacking a date, a link, text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    /// Fetches averaged so far.
    pub fetches: u32,
    pub items: f64,
    pub missing_date: f64,
    pub missing_link: f64,
    pub missing_text: f64,
}

fn rate(part: u32, items: u32) -> f64 {
    if items == 0 {
        0.0
    } else {
        f64::from(part) / f64::from(items)
    }
}

/// The drift verdict of a fetch that saw `seen`, against the source's usual `shape`, and the
/// shape to keep. A drifting fetch does not change the shape: a broken template must not
/// become the new normal.
pub fn assess(shape: &Shape, seen: &Seen) -> (Shape, Option<String>) {
    let drift = if seen.scraped && shape.fetches > 0 {
        drift(shape, seen)
    } else {
        None
    };
    if drift.is_some() || seen.items == 0 {
        return (shape.clone(), drift);
    }
    let rates = [
        rate(seen.missing_date, seen.items),
        rate(seen.missing_link, seen.items),
        rate(seen.missing_text, seen.items),
    ];
    let blend = |old: f64, new: f64| match shape.fetches {
        0 => new,
        _ => old + ALPHA * (new - old),
    };
    let next = Shape {
        fetches: shape.fetches.saturating_add(1),
        items: blend(shape.items, f64::from(seen.items)),
        missing_date: blend(shape.missing_date, rates[0]),
        missing_link: blend(shape.missing_link, rates[1]),
        missing_text: blend(shape.missing_text, rates[2]),
    };
    (next, None)
}

fn drift(shape: &Shape, seen: &Seen) -> Option<String> {
    if seen.items == 0 {
        return Some(format!(
            "the page's selectors matched no items (its fetches usually find {:.0})",
            shape.items.max(1.0)
        ));
    }
    [
        ("date", seen.missing_date, shape.missing_date),
        ("link", seen.missing_link, shape.missing_link),
        ("text", seen.missing_text, shape.missing_text),
    ]
    .into_iter()
    .find(|&(_, missing, usual)| {
        let now = rate(missing, seen.items);
        now >= DRIFT_RATE && now >= usual + DRIFT_JUMP
    })
    .map(|(what, missing, usual)| {
        format!(
            "{missing} of {} items have no {what} (usually {:.0}%)",
            seen.items,
            usual * 100.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(items: u32, missing_date: u32) -> Seen {
        Seen {
            scraped: true,
            items,
            missing_date,
            ..Seen::default()
        }
    }

    #[test]
    fn a_page_that_suddenly_matches_nothing_drifts_at_once() {
        let (shape, drift) = assess(&Shape::default(), &seen(20, 0));
        assert_eq!(drift, None);
        assert_eq!(shape.fetches, 1);
        let (kept, drift) = assess(&shape, &Seen::nothing_matched());
        assert!(drift
            .unwrap()
            .contains("matched no items (its fetches usually find 20)"));
        assert_eq!(kept, shape, "a drifting fetch teaches nothing");
        // Fixed: the verdict clears with the next good fetch.
        assert_eq!(assess(&kept, &seen(19, 0)).1, None);
    }

    #[test]
    fn missing_dates_far_above_the_sources_own_rate_drift() {
        let mut shape = Shape::default();
        for _ in 0..5 {
            shape = assess(&shape, &seen(20, 2)).0;
        }
        // 10% usually; 15 of 20 now.
        let drift = assess(&shape, &seen(20, 15)).1.expect("drift");
        assert_eq!(drift, "15 of 20 items have no date (usually 10%)");
        // A source that never has dates is not drifting when it has none.
        let mut dateless = Shape::default();
        for _ in 0..3 {
            dateless = assess(&dateless, &seen(20, 20)).0;
        }
        assert_eq!(assess(&dateless, &seen(20, 20)).1, None);
        // Feeds are not judged by this: an empty feed is just empty.
        let feed = Seen {
            scraped: false,
            ..Seen::default()
        };
        assert_eq!(assess(&shape, &feed).1, None);
    }
}
