//! The same stories give the same merged feeds whatever order they arrive in.
//!
//! Three feeds are made of the labeled pairs of `tests/fixtures/dedupe/pairs.jsonl` (every
//! pair's first side in one, its second side in one of the other two), and fetched into a fresh
//! store in ten orders: the feeds one after another in a shuffled order, each feed's items
//! shuffled too. The merged category feed must be the same bytes every time, in RSS and Atom,
//! and in JSON Feed but for `_tributary.entry_id`, which is the store's own row id and says
//! nothing about the story.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::common::*;
use tributary::model::{FeedQuery, Scope};
use tributary::publish::{self, FeedInfo, Format};

const RUNS: u64 = 10;
const FEEDS: [&str; 3] = ["first", "second", "third"];

/// One item of a feed: (title, text, link, published as RFC 3339).
type Item = (String, String, String, String);

fn labeled_items() -> HashMap<&'static str, Vec<Item>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dedupe/pairs.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("reading the labeled pairs");
    let mut feeds: HashMap<&'static str, Vec<Item>> = HashMap::new();
    // Pairs reuse a text with several partners: a link is one item, with the words it first
    // had, listed once by each feed that carries it.
    let mut by_link: HashMap<String, Item> = HashMap::new();
    for (n, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        for (side, feed) in [("a", FEEDS[0]), ("b", FEEDS[1 + n % 2])] {
            let s = |k: &str| v[side][k].as_str().unwrap_or_default().to_string();
            let item = by_link
                .entry(s("link"))
                .or_insert_with(|| (s("title"), s("text"), s("link"), s("published")))
                .clone();
            let list = feeds.entry(feed).or_default();
            if !list.iter().any(|i| i.2 == item.2) {
                list.push(item);
            }
        }
    }
    feeds
}

fn rss(items: &[Item]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><rss version=\"2.0\"><channel><title>t</title>",
    );
    for (title, text, link, published) in items {
        let date = chrono::DateTime::parse_from_rfc3339(published)
            .expect("an RFC 3339 date")
            .to_rfc2822();
        let esc = |s: &str| html_escape::encode_text(s).into_owned();
        let _ = write!(
            out,
            "<item><title>{}</title><link>{}</link><description>{}</description>\
             <pubDate>{date}</pubDate></item>",
            esc(title),
            esc(link),
            esc(text)
        );
    }
    out.push_str("</channel></rss>");
    out
}

/// A small deterministic shuffle (xorshift), so a failing order can be replayed by its seed.
fn shuffle<T>(items: &mut [T], seed: &mut u64) {
    for i in (1..items.len()).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        items.swap(i, (*seed % (i as u64 + 1)) as usize);
    }
}

/// The merged feed of the category in the three formats, after fetching in `seed`'s order.
fn merged_after(
    seed: u64,
    feeds: &HashMap<&'static str, Vec<Item>>,
    fixtures: &FixtureServer,
) -> [String; 3] {
    let mut seed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut order = FEEDS.to_vec();
    shuffle(&mut order, &mut seed);
    for id in FEEDS {
        let mut items = feeds[id].clone();
        shuffle(&mut items, &mut seed);
        fixtures.set(&format!("/{id}.xml"), rss(&items));
    }
    let dir = tempfile::tempdir().expect("a temp folder");
    let sources: Vec<Source> = FEEDS
        .iter()
        .map(|id| Source::new(id, id, &fixtures.url(&format!("/{id}.xml")), "金融"))
        .collect();
    let config = write_config(dir.path(), free_addr(), &sources);
    for id in &order {
        let (code, out, err) = run_fetch(&config, &[id]);
        assert_eq!(code, 0, "seed {seed}: fetch {id}:\n{out}{err}");
    }
    let store = open_store(&tributary::config::Config::load(&config).expect("the config"));
    let entries = store
        .entries(
            &Scope::Category("金融".into()),
            &FeedQuery {
                limit: 10_000,
                ..Default::default()
            },
        )
        .expect("the merged feed");
    let info = FeedInfo {
        built: chrono::Utc::now(),
        title: "金融".into(),
        description: String::new(),
        id: "urn:test".into(),
        self_url: "http://127.0.0.1/feeds/金融.atom".into(),
        home_url: "http://127.0.0.1/".into(),
        next_url: None,
        hub: None,
    };
    let mut json: serde_json::Value =
        serde_json::from_str(&publish::render(Format::Json, &info, &entries)).expect("JSON");
    for item in json["items"].as_array_mut().into_iter().flatten() {
        item["_tributary"]
            .as_object_mut()
            .map(|o| o.remove("entry_id"));
    }
    [
        publish::render(Format::Rss, &info, &entries),
        publish::render(Format::Atom, &info, &entries),
        serde_json::to_string_pretty(&json).expect("JSON"),
    ]
}

#[test]
fn any_fetch_order_gives_the_same_merged_feeds() {
    let feeds = labeled_items();
    // One server for every run: the sources' URLs are part of the feeds.
    let fixtures = FixtureServer::start_with_files(HashMap::new());
    let first = merged_after(0, &feeds, &fixtures);
    let items = first[2].matches("\"date_published\"").count();
    assert!(items > 100, "only {items} merged items");
    for seed in 1..RUNS {
        let other = merged_after(seed, &feeds, &fixtures);
        for (format, (a, b)) in ["RSS", "Atom", "JSON Feed"]
            .iter()
            .zip(first.iter().zip(&other))
        {
            if a != b {
                // One element a line, to show where they part.
                let (a, b) = (a.replace("><", ">\n<"), b.replace("><", ">\n<"));
                let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
                let at = la
                    .iter()
                    .zip(&lb)
                    .position(|(x, y)| x != y)
                    .unwrap_or(la.len().min(lb.len()));
                let show = |l: &[&str]| l[at.saturating_sub(3)..(at + 3).min(l.len())].join("\n");
                panic!(
                    "{format}: order {seed} gives another merged feed than order 0; first \
                     difference at line {at}:\n--- order 0\n{}\n--- order {seed}\n{}",
                    show(&la),
                    show(&lb)
                );
            }
        }
    }
}
