//! Per-entry cost of ingesting (identity keys + near-duplicate placement + insert) into stores
//! of 10 k, 100 k and 1 M entries. The cost should stay flat as the store grows: candidate
//! lookup goes through an index restricted to the category and the time window.
//!
//! Run: `cargo bench --bench dedupe_ingest` (add `-- 10000 100000` to choose sizes). Prints,
//! per store size, the median of several timed batches of new entries, a fifth of which are
//! near-duplicates of recent entries from another source: the whole ingest per entry, and the
//! part spent placing it in a cluster (candidate lookup and comparison).
//!
//! The history is filled with near-duplicate detection off except for its last few days (its
//! keys would have been pruned by now anyway), which keeps a 1 M fill to minutes.
//!
//! `--days D` spreads the history over D days instead of a year: with `--days 3` every stored
//! entry is inside the dedupe window, as at a large deployment (100 k sources publishing a
//! few items a day each hold hundreds of thousands of entries in the window), and all of it is
//! filled with detection on.

#[path = "support/entries.rs"]
mod entries;
#[path = "support/rng.rs"]
mod rng;

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use entries::{entry, text};
use rng::Rng;
use tributary::config::Config;
use tributary::dedupe::Thresholds;
use tributary::model::Entry;
use tributary::store::Store;

const BATCH: usize = 2_000;
const RUNS: usize = 5;
const FILL_BATCH: usize = 5_000;

fn config(dir: &std::path::Path) -> Config {
    let text = r#"
        [[sources]]
        id = "bench-a"
        name = "A"
        url = "https://a.example/feed"
        category = "bench"
        [[sources]]
        id = "bench-b"
        name = "B"
        url = "https://b.example/feed"
        category = "bench"
    "#;
    Config::from_toml(&dir.join("bench.toml"), text).expect("bench config")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let days: i64 = args
        .iter()
        .position(|a| a == "--days")
        .and_then(|i| args.get(i + 1))
        .and_then(|d| d.parse().ok())
        .unwrap_or(365);
    let sizes: Vec<usize> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || args[i - 1] != "--days")
        .filter_map(|(_, a)| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000, 1_000_000]
    } else {
        sizes
    };
    let t = Thresholds::default();
    let now = Utc
        .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .expect("a date");
    println!(
        "µs per new entry, {RUNS} batches of {BATCH}, history over {days} days\n\
         store size | ingest median | min | max | dedupe median | min | max | fill time"
    );
    for size in sizes {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("bench.db")).expect("store");
        store
            .sync_sources(&config(dir.path()).sources)
            .expect("sources");
        let mut rng = Rng(size as u64);
        // Fill: a year of history, each batch stored at its own time (as a daemon would have).
        let fill_started = Instant::now();
        let mut id = 0u64;
        let mut recent = Vec::new();
        while (id as usize) < size {
            let n = FILL_BATCH.min(size - id as usize);
            let at = now
                - chrono::Duration::seconds(
                    (days * 86_400) * (size as i64 - id as i64) / size as i64,
                );
            let batch: Vec<Entry> = (0..n)
                .map(|_| {
                    id += 1;
                    let published = at - chrono::Duration::seconds(rng.below(3600) as i64);
                    entry(
                        "bench",
                        id,
                        text(&mut rng, 16),
                        text(&mut rng, 300),
                        published,
                    )
                })
                .collect();
            if size - (id as usize) < 2 * FILL_BATCH {
                recent.extend(batch.iter().map(|e| (e.title.clone(), e.content.clone())));
            }
            let recent_days = days <= 4 || (size - id as usize) <= 4 * FILL_BATCH;
            let fill_t = Thresholds {
                enabled: recent_days,
                ..t.clone()
            };
            store
                .upsert_entries("bench-a", &batch, &fill_t, at)
                .expect("fill");
        }
        let fill = fill_started.elapsed();
        // Timed: batches of new entries from the other source, a fifth of them near-copies of
        // recent entries.
        let mut per_entry = Vec::new();
        let mut dedupe_per_entry = Vec::new();
        for run in 0..RUNS {
            let batch: Vec<Entry> = (0..BATCH)
                .map(|i| {
                    id += 1;
                    let published = now + chrono::Duration::seconds((run * BATCH + i) as i64);
                    if i % 5 == 0 && !recent.is_empty() {
                        let (title, content) = &recent[rng.below(recent.len())];
                        let body = content
                            .clone()
                            .unwrap_or_default()
                            .replace("<p>", "")
                            .replace("</p>", "");
                        entry(
                            "bench",
                            id,
                            title.clone(),
                            format!("（来源：B）{body}"),
                            published,
                        )
                    } else {
                        entry(
                            "bench",
                            id,
                            text(&mut rng, 16),
                            text(&mut rng, 300),
                            published,
                        )
                    }
                })
                .collect();
            let started = Instant::now();
            let counts = store
                .upsert_entries("bench-b", &batch, &t, now)
                .expect("ingest");
            per_entry.push(started.elapsed() / BATCH as u32);
            dedupe_per_entry.push(counts.dedupe_time / BATCH as u32);
        }
        per_entry.sort();
        dedupe_per_entry.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "{size:>10} | {:>8.1} | {:>8.1} | {:>8.1} | {:>8.1} | {:>8.1} | {:>8.1} | {:.1} s",
            us(per_entry[RUNS / 2]),
            us(per_entry[0]),
            us(per_entry[RUNS - 1]),
            us(dedupe_per_entry[RUNS / 2]),
            us(dedupe_per_entry[0]),
            us(dedupe_per_entry[RUNS - 1]),
            fill.as_secs_f64()
        );
    }
}
