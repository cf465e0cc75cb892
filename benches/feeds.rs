//! Uncached feed reads on a large store: how long the store takes to answer a feed (a source's,
//! a category's, a tag's, everything) and a search, as the server asks it on a cache miss.
//!
//! Run: `cargo bench --bench feeds [-- ENTRIES [SOURCES [READERS]]]` (default 300000 entries
//! over 2000 sources, 4 reader threads). The store is filled with near-duplicate detection
//! off (this is about reads); one source, `quiet`, published its few entries long ago and
//! nothing since, the case where walking the newest entries to find a source's is slowest.
//! The console's home page is timed the same way (its reads and its render, as `GET /` does).
//! Each case is read `ROUNDS` times, newest 50 entries, and its p50 and p99 printed: first on
//! an idle store, then while a writer keeps storing new entries and `READERS` threads read at
//! once (a daemon fetching while readers poll).

#[path = "support/entries.rs"]
mod entries;
#[path = "support/rng.rs"]
mod rng;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use entries::{entry, text};
use rng::Rng;
use tributary::config::Config;
use tributary::dedupe::Thresholds;
use tributary::model::{Entry, FeedQuery, Scope};
use tributary::store::Store;

const ROUNDS: usize = 200;
const PER_CALL: usize = 25;
const CATEGORIES: usize = 20;
const TAGS: usize = 50;

fn config(dir: &std::path::Path, sources: usize) -> Config {
    let mut text = String::from(
        "[[sources]]\nid = \"quiet\"\nname = \"Quiet\"\nurl = \"https://quiet.example/feed\"\ncategory = \"c0\"\n",
    );
    for i in 0..sources {
        text.push_str(&format!(
            "[[sources]]\nid = \"s{i}\"\nname = \"S{i}\"\nurl = \"https://h{}.example/{i}\"\n\
             category = \"c{}\"\ntags = [\"t{}\"]\n",
            i % 64,
            i % CATEGORIES,
            i % TAGS
        ));
    }
    Config::from_toml(&dir.join("bench.toml"), &text).expect("bench config")
}

/// English words sprinkled into `mixed_text`, so a search for a Latin word has something to
/// find: each is in about one entry in seven.
const WORDS: [&str; 20] = [
    "market",
    "report",
    "shares",
    "growth",
    "energy",
    "policy",
    "profit",
    "kubernetes",
    "trade",
    "bank",
    "carbon",
    "export",
    "index",
    "yield",
    "bond",
    "chip",
    "credit",
    "fund",
    "steel",
    "oil",
];

/// Chinese text with an English word every 50 characters, as financial news names companies,
/// products and tickers.
fn mixed_text(rng: &mut Rng, chars: usize) -> String {
    let mut s = text(rng, chars.min(50));
    let mut left = chars.saturating_sub(50);
    while left > 0 {
        s.push(' ');
        s.push_str(WORDS[rng.below(WORDS.len())]);
        s.push(' ');
        let run = left.min(50);
        s.push_str(&text(rng, run));
        left -= run;
    }
    s
}

fn batch(rng: &mut Rng, source: &str, id: &mut u64, at: chrono::DateTime<Utc>) -> Vec<Entry> {
    (0..PER_CALL)
        .map(|_| {
            *id += 1;
            let published = at - chrono::Duration::seconds(rng.below(3600) as i64);
            entry(source, *id, text(rng, 16), mixed_text(rng, 200), published)
        })
        .collect()
}

struct Case {
    name: &'static str,
    scope: Scope,
    text: Option<&'static str>,
    /// The console's home page instead: every category's counts and newest entries, read and
    /// rendered as `GET /` does.
    home: bool,
}

fn cases(sources: usize) -> Vec<Case> {
    let mut c = vec![
        Case {
            name: "source (one of many)",
            scope: Scope::Source(format!("s{}", sources / 2)),
            text: None,
            home: false,
        },
        Case {
            name: "source, quiet for a year",
            scope: Scope::Source("quiet".into()),
            text: None,
            home: false,
        },
        Case {
            name: "category",
            scope: Scope::Category("c3".into()),
            text: None,
            home: false,
        },
        Case {
            name: "tag",
            scope: Scope::Tag("t7".into()),
            text: None,
            home: false,
        },
        Case {
            name: "all",
            scope: Scope::All,
            text: None,
            home: false,
        },
    ];
    for (name, text) in [
        ("search, common pair", "万元"),
        ("search, one character", "一"),
        ("search, rare pair", "丁七"),
        ("search, absent pair", "央行"),
        ("search, English word", "market"),
        ("search, absent word", "zzzqqq"),
    ] {
        c.push(Case {
            name,
            scope: Scope::All,
            text: Some(text),
            home: false,
        });
    }
    c.push(Case {
        name: "console home page (`/`)",
        scope: Scope::All,
        text: None,
        home: true,
    });
    c
}

fn read(store: &Store, case: &Case) -> (Duration, usize) {
    let q = FeedQuery {
        limit: 50,
        text: case.text.map(str::to_string),
        ..Default::default()
    };
    // No rules: this is about the store's reads.
    let no_rules = tributary::rules::Book::new(
        &Config::from_toml(std::path::Path::new("none.toml"), "").expect("empty config"),
    );
    let started = Instant::now();
    if case.home {
        let cards = tributary::server::home_cards(store, &no_rules).expect("home");
        let base = url::Url::parse("http://127.0.0.1:8080/").expect("a URL");
        let site = tributary::pages::Site {
            base: &base,
            admin: false,
        };
        let page = tributary::pages::home(&site, &cards);
        let shown = cards.iter().map(|c| c.newest.len()).sum::<usize>();
        std::hint::black_box(page);
        return (started.elapsed(), shown);
    }
    let n = store.entries(&case.scope, &q).expect("feed").len();
    (started.elapsed(), n)
}

fn percentiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p99 = (times.len() * 99).div_ceil(100).saturating_sub(1);
    (ms(times[times.len() / 2]), ms(times[p99]))
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let total = args.first().copied().unwrap_or(300_000);
    let sources = args.get(1).copied().unwrap_or(2_000);
    let readers = args.get(2).copied().unwrap_or(4);
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("bench.db")).expect("store");
    store
        .sync_sources(&config(dir.path(), sources).sources)
        .expect("sources");
    let off = Thresholds {
        enabled: false,
        ..Thresholds::default()
    };
    let now = Utc
        .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .expect("a date");
    let mut rng = Rng(7);
    let mut id = 0u64;
    let fill_started = Instant::now();
    let year_ago = now - chrono::Duration::days(365);
    store
        .upsert_entries(
            "quiet",
            &batch(&mut rng, "quiet", &mut id, year_ago),
            &off,
            year_ago,
        )
        .expect("fill");
    let calls = total / PER_CALL;
    for call in 0..calls {
        let source = format!("s{}", call % sources);
        let at = now - chrono::Duration::seconds((90 * 86_400 * (calls - call) / calls) as i64);
        let entries = batch(&mut rng, &source, &mut id, at);
        store
            .upsert_entries(&source, &entries, &off, at)
            .expect("fill");
    }
    let filled = fill_started.elapsed();
    store.wait_for_search_index().expect("search index");
    println!(
        "{id} entries over {} sources, filled in {:.1} s; the search index caught up {:.1} s later\n",
        sources + 1,
        filled.as_secs_f64(),
        (fill_started.elapsed() - filled).as_secs_f64()
    );
    let cases = cases(sources);
    println!("| case | entries | idle p50 ms | idle p99 ms | busy p50 ms | busy p99 ms |");
    println!("|---|---|---|---|---|---|");
    for case in &cases {
        let mut idle = Vec::with_capacity(ROUNDS);
        let mut found = 0;
        for _ in 0..ROUNDS {
            let (t, n) = read(&store, case);
            idle.push(t);
            found = n;
        }
        let busy = busy_reads(&store, case, readers, &mut id, &off, now, sources);
        let (i50, i99) = percentiles(idle);
        let (b50, b99) = percentiles(busy);
        println!(
            "| {} | {found} | {i50:.2} | {i99:.2} | {b50:.2} | {b99:.2} |",
            case.name
        );
    }
}

/// `ROUNDS` reads of `case` spread over `readers` threads while another thread stores new
/// entries; each read's time.
fn busy_reads(
    store: &Store,
    case: &Case,
    readers: usize,
    id: &mut u64,
    off: &Thresholds,
    now: chrono::DateTime<Utc>,
    sources: usize,
) -> Vec<Duration> {
    let stop = AtomicBool::new(false);
    let mut next_id = *id;
    let times = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut rng = Rng(next_id);
            let mut call = 0;
            while !stop.load(Ordering::Relaxed) {
                let source = format!("s{}", call % sources);
                let entries = batch(&mut rng, &source, &mut next_id, now);
                store
                    .upsert_entries(&source, &entries, off, now)
                    .expect("write");
                call += 1;
            }
        });
        let per_reader = ROUNDS.div_ceil(readers.max(1));
        let handles: Vec<_> = (0..readers.max(1))
            .map(|_| {
                scope.spawn(move || {
                    (0..per_reader)
                        .map(|_| read(store, case).0)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let times: Vec<Duration> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("reader"))
            .collect();
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("writer");
        times
    });
    *id = next_id;
    times
}
