//! What rules cost a render: a 50-entry feed read and rendered (as the server does on a cache
//! miss: `server::page` through the rules, then `publish::render`) with no rule configured,
//! and with 100 rules in the scope of every source: 40 global, 40 of its category, 20 of its
//! own (block conditions on title, text, author, category and link, literals and regexes, and
//! rewrites of titles and text), none of which matches, so all render the same entries; the
//! same 100 with none on the text (which every judged entry's text is then not scanned for);
//! and the first with one `remove` selector, which makes every entry's HTML parsed and
//! re-serialized. A book remembers what each body matched, so the configs with text rules are
//! also timed on the first render after a load, with nothing remembered.
//!
//! Run: `cargo bench --bench rules [-- ENTRIES [ROUNDS]]` (default 20000 entries over 20
//! sources, 300 rounds). The configs take turns round by round, so a noisy neighbour costs
//! each the same; the medians and p99s are printed with the overhead over no rules.

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
use tributary::model::{FeedQuery, Scope};
use tributary::publish::{self, FeedInfo, Format};
use tributary::rules::{Book, Subscription};
use tributary::server::Showing;
use tributary::store::Store;

const SOURCES: usize = 20;

fn sources_toml(own_rules: &str) -> String {
    (0..SOURCES)
        .map(|i| {
            format!(
                "[[sources]]\nid = \"s{i}\"\nname = \"S{i}\"\nurl = \"https://h{i}.example/f\"\ncategory = \"c{}\"\n{own_rules}\n",
                i % 2
            )
        })
        .collect()
}

/// `n` block conditions cycling through every key and form, none of which the generated text
/// holds (Latin words and a character range the generator never draws).
fn conditions(prefix: &str, n: usize, keys: &[&str]) -> String {
    let list: Vec<String> = (0..n)
        .map(|i| {
            let key = keys[i % keys.len()];
            if i % 2 == 0 {
                format!("{{ {key} = \"{prefix}absent{i}\" }}")
            } else {
                format!("{{ {key} = \"/{prefix}[ぁ-ゖ]{{2}}{i}|^zz{i}$/\" }}")
            }
        })
        .collect();
    format!("block = [{}]", list.join(", "))
}

fn rewrites(n: usize, titles_only: bool) -> String {
    let list: Vec<String> = (0..n)
        .map(|i| {
            let field = if i % 2 == 0 || titles_only {
                "title"
            } else {
                "content"
            };
            format!("{{ field = \"{field}\", pattern = \"^【nothing{i}】\", replace = \"\" }}")
        })
        .collect();
    format!("rewrite = [{}]", list.join(", "))
}

/// Which rules a config has.
#[derive(Clone, Copy, PartialEq)]
enum Rules {
    None,
    /// 100, on every field.
    All,
    /// 100, none on the text: titles, authors, categories, links.
    NoText,
    /// 100 on every field and a `remove` selector.
    AllAndRemove,
}

fn config(dir: &std::path::Path, rules: Rules) -> Config {
    let keys: &[&str] = match rules {
        Rules::NoText => &["title", "author", "category", "link"],
        _ => &["title", "content", "author", "category", "link"],
    };
    let mut text = String::new();
    if rules != Rules::None {
        text.push_str(&format!("[rules]\n{}\n", conditions("g", 40, keys)));
        for c in 0..2 {
            text.push_str(&format!(
                "[categories.\"c{c}\".rules]\n{}\n",
                conditions("c", 40, keys)
            ));
        }
    }
    let own = match rules {
        Rules::None => String::new(),
        Rules::All | Rules::NoText => format!(
            "[sources.rules]\n{}\n{}\n",
            conditions("s", 10, keys),
            rewrites(10, rules == Rules::NoText)
        ),
        Rules::AllAndRemove => format!(
            "[sources.rules]\n{}\n{}\nremove = [\".share\"]\n",
            conditions("s", 10, keys),
            rewrites(9, false)
        ),
    };
    text.push_str(&sources_toml(&own));
    Config::from_toml(&dir.join("bench.toml"), &text).expect("bench config")
}

fn render(store: &Store, book: &Book, scope: &Scope) -> usize {
    let q = FeedQuery {
        limit: 50,
        ..Default::default()
    };
    let now = Utc::now();
    let showing = Showing {
        scope,
        q: &q,
        subscription: &Subscription::default(),
        book,
        now,
    };
    let page = tributary::server::page(store, &showing).expect("page");
    let info = FeedInfo {
        title: "bench".into(),
        description: "bench".into(),
        id: "tag:bench".into(),
        self_url: "http://127.0.0.1/feeds/all.rss".into(),
        home_url: "http://127.0.0.1/".into(),
        next_url: None,
        hub: None,
        built: now,
    };
    let body = publish::render(Format::Rss, &info, &page.entries);
    std::hint::black_box(body);
    page.entries.len()
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
    let total = args.first().copied().unwrap_or(20_000);
    let rounds = args.get(1).copied().unwrap_or(300);
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("bench.db")).expect("store");
    // A book remembers what each copy matched: the first render after a config load finds
    // nothing remembered. It is timed in a pass of its own, each book built afresh (untimed)
    // before each render, beside a no-rules render of its own: rebuilding books between the
    // renders of the other pass would time their caches' refilling too.
    let passes = [
        (
            false,
            vec![
                ("no rules", Rules::None),
                ("100 rules", Rules::All),
                ("100 rules, none on the text", Rules::NoText),
                ("100 rules + remove", Rules::AllAndRemove),
            ],
        ),
        (
            true,
            vec![
                ("no rules", Rules::None),
                ("100 rules, first render", Rules::All),
                ("100 rules + remove, first render", Rules::AllAndRemove),
            ],
        ),
    ];
    store
        .sync_sources(&config(dir.path(), Rules::None).sources)
        .expect("sources");
    let off = Thresholds {
        enabled: false,
        ..Thresholds::default()
    };
    let start = Utc
        .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .expect("a date");
    let mut rng = Rng(11);
    for call in 0..total / 50 {
        let source = format!("s{}", call % SOURCES);
        let at = start + chrono::Duration::seconds(call as i64 * 60);
        let batch: Vec<_> = (0..50)
            .map(|k| {
                let id = (call * 50 + k) as u64;
                let mut e = entry(&source, id, text(&mut rng, 16), text(&mut rng, 800), at);
                e.authors = vec![format!("作者{}", id % 7)];
                e.categories = vec!["要闻".into()];
                e
            })
            .collect();
        store
            .upsert_entries(&source, &batch, &off, at)
            .expect("fill");
    }
    println!("{total} entries over {SOURCES} sources; {rounds} rounds each, interleaved\n");
    println!("| feed (50 entries, RSS) | rules | p50 ms | p99 ms | p50 over no rules |");
    println!("|---|---|---|---|---|");
    for (name, scope) in [
        ("all", Scope::All),
        ("category", Scope::Category("c0".into())),
        ("source", Scope::Source("s3".into())),
    ] {
        for (fresh, configs) in &passes {
            let mut books: Vec<Pass> = configs
                .iter()
                .map(|&(label, rules)| {
                    let config = config(dir.path(), rules);
                    let book = Book::new(&config);
                    let fresh = *fresh && rules != Rules::None;
                    Pass {
                        label,
                        config,
                        fresh,
                        book,
                        times: Vec::with_capacity(rounds),
                        shown: 0,
                    }
                })
                .collect();
            for _ in 0..rounds {
                for pass in books.iter_mut() {
                    if pass.fresh {
                        pass.book = Book::new(&pass.config);
                    }
                    let started = Instant::now();
                    pass.shown = render(&store, &pass.book, &scope);
                    pass.times.push(started.elapsed());
                }
            }
            assert!(
                books.iter().all(|p| p.shown == books[0].shown),
                "every config shows the same entries"
            );
            let base = percentiles(books[0].times.clone()).0;
            for pass in &books[usize::from(*fresh)..] {
                let (p50, p99) = percentiles(pass.times.clone());
                println!(
                    "| {name} | {} | {p50:.2} | {p99:.2} | {:+.1}% |",
                    pass.label,
                    (p50 / base - 1.0) * 100.0
                );
            }
        }
    }
}

/// One config's renders in a pass.
struct Pass {
    label: &'static str,
    config: Config,
    /// Built afresh before each render.
    fresh: bool,
    book: Book,
    times: Vec<Duration>,
    shown: usize,
}
