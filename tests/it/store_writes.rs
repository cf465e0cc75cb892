//! What the store writes beside the entries, and reads back:
//!
//! - near-duplicate candidates are looked up in memory (`dedupe::index`), from the stored keys
//!   of the days needed. Memory must never change a decision: a story stored by another
//!   process, or before a restart, is still found;
//! - each candidate's figures are kept in memory too, and turn most candidates down before
//!   their text is read: an edit that changes the figures is judged on the new ones;
//! - a search finds the newest matches whether its terms are rare (looked up in the search
//!   index first), common (checked entry by entry, newest first) or shorter than a trigram;
//! - the search index (its own file, kept by its own thread) takes an edit's old text out:
//!   searches find the new words only, and the index, once caught up, holds each entry with
//!   its text as it is now.

use chrono::{DateTime, TimeZone, Utc};
use tributary::config::Config;
use tributary::model::{Cursor, Entry, FeedQuery, Scope};
use tributary::parse::{ParsedItem, Text};
use tributary::refresh;
use tributary::store::{Store, UpsertCounts};

const BODY: &str = "The city council approved the new riverside park plan on Tuesday after a \
    long public hearing. The plan adds walking paths, a playground and a small boat launch \
    along the east bank, and replaces the old parking lot with gardens. Residents who spoke \
    at the hearing mostly supported the design, though several asked for more lighting and \
    for the boat launch to open in spring rather than in the autumn.";

fn config(dir: &std::path::Path) -> Config {
    let mut text = String::new();
    for id in ["first", "second", "third"] {
        text.push_str(&format!(
            "[[sources]]\nid = \"{id}\"\nname = \"{id}\"\nurl = \"http://127.0.0.1:9/{id}.xml\"\n\
             category = \"local\"\n"
        ));
    }
    Config::from_toml(&dir.join("t.toml"), &text).expect("config")
}

/// One item of `source`'s feed, read and normalized as a fetch would.
fn item(config: &Config, source: &str, title: &str, body: &str) -> Vec<Entry> {
    let source = config.source(source).expect("source");
    let url = source.url.clone();
    let rss = format!(
        "<rss version=\"2.0\"><channel><title>{id}</title><link>http://example.org/</link>\
         <item><title>{title}</title><link>http://example.org/{id}/park</link>\
         <guid>{id}-park</guid><pubDate>Tue, 03 Nov 2026 09:00:00 GMT</pubDate>\
         <description>{body}</description></item></channel></rss>",
        id = source.id
    );
    let (feed, _) = refresh::read_document(source, &url, None, rss.into_bytes()).expect("feed");
    refresh::normalize_items(source, &url, feed.items, now())
}

/// When every fetch of these tests happens.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 3, 12, 0, 0)
        .single()
        .expect("date")
}

/// A scratch folder (kept while the test runs), its database path and the sources.
fn setup() -> (tempfile::TempDir, std::path::PathBuf, Config) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("t.db");
    let config = config(dir.path());
    (dir, path, config)
}

fn store(config: &Config, path: &std::path::Path) -> Store {
    let store = Store::open(path).expect("store");
    store.sync_sources(&config.sources).expect("sources");
    store
}

/// Stores `entries` as one fetch of `source`.
fn write(store: &Store, config: &Config, source: &str, entries: &[Entry]) -> UpsertCounts {
    let thresholds = &config.source(source).expect("source").dedupe;
    store
        .upsert_entries(source, entries, thresholds, now())
        .expect("stored")
}

/// Stores one new entry; whether it joined another's story.
fn put(store: &Store, config: &Config, source: &str, entries: Vec<Entry>) -> usize {
    let counts = write(store, config, source, &entries);
    assert_eq!(counts.new, 1, "{source}: a new entry {counts:?}");
    counts.merged
}

/// The second source's story under another headline (an edit of it).
fn retitled(config: &Config, title: &str) -> Vec<Entry> {
    item(config, "second", title, BODY)
}

/// The story, as the second source tells it.
fn story(config: &Config) -> Vec<Entry> {
    retitled(config, "Council approves riverside park plan")
}

/// The third source's version: another title, one more sentence.
fn copy(config: &Config) -> Vec<Entry> {
    item(
        config,
        "third",
        "Riverside park plan approved by council",
        &format!("{BODY} Work is expected to start next year."),
    )
}

fn unrelated(config: &Config) -> Vec<Entry> {
    item(
        config,
        "first",
        "Library extends weekend hours",
        "The central library will stay open until eight on Saturdays and Sundays from next \
         month, after a survey showed most visitors come at weekends. The reading rooms and \
         the children's floor keep their usual hours on weekdays.",
    )
}

#[test]
fn a_story_another_process_stored_is_found() {
    let (_dir, path, config) = setup();
    let daemon = store(&config, &path);
    let other = store(&config, &path);
    // The daemon holds the day in memory once it has placed something in it...
    assert_eq!(put(&daemon, &config, "first", unrelated(&config)), 0);
    // ... then another process (a one-off `tributary fetch`) stores the story ...
    let story = story(&config);
    assert_eq!(put(&other, &config, "second", story), 0);
    // ... and the daemon's copy of it joins that entry.
    let copy = copy(&config);
    assert_eq!(
        put(&daemon, &config, "third", copy),
        1,
        "merged with the other's entry"
    );
}

#[test]
fn a_story_stored_before_a_restart_is_found() {
    let (_dir, path, config) = setup();
    {
        let before = store(&config, &path);
        let story = story(&config);
        assert_eq!(put(&before, &config, "second", story), 0);
    }
    let after = store(&config, &path);
    let copy = copy(&config);
    assert_eq!(put(&after, &config, "third", copy), 1);
}

/// The story at a cost of `amount`, as `source` tells it: the figure in the title and body.
fn costed(config: &Config, source: &str, title: &str, amount: &str) -> Vec<Entry> {
    item(
        config,
        source,
        &title.replace("AMOUNT", amount),
        &format!("{BODY} The plan costs {amount} million dollars."),
    )
}

#[test]
fn an_edit_that_changes_the_figures_is_judged_on_the_new_ones() {
    let (_dir, path, config) = setup();
    let copy = |source, amount| {
        costed(
            &config,
            source,
            "Riverside park plan of $AMOUNT million approved",
            amount,
        )
    };
    {
        let store = store(&config, &path);
        let first = "Council approves $AMOUNT million riverside park plan";
        assert_eq!(
            put(
                &store,
                &config,
                "second",
                costed(&config, "second", first, "4.2")
            ),
            0
        );
        let counts = write(
            &store,
            &config,
            "second",
            &costed(&config, "second", first, "5.1"),
        );
        assert_eq!(counts.updated, 1, "the figure was corrected");
        assert_eq!(
            put(&store, &config, "third", copy("third", "4.2")),
            0,
            "the old figure"
        );
        assert_eq!(
            put(&store, &config, "first", copy("first", "5.1")),
            1,
            "the new figure"
        );
    }
    // The same, from what the store kept, after a restart.
    let store = store(&config, &path);
    let again = costed(
        &config,
        "third",
        "Park plan: $AMOUNT million approved",
        "5.1",
    );
    let counts = write(&store, &config, "third", &again);
    assert_eq!(counts.updated, 1);
    assert_eq!(counts.merged, 1, "joins the corrected story");
}

/// The search index, once it has caught up, holds each entry once, with its text as it is now.
fn search_index_is_sound(store: &Store, path: &std::path::Path) {
    store
        .wait_for_search_index()
        .expect("the search index caught up");
    tributary::store::verify_search_index(path).expect("the search index matches the text");
}

/// The entries a search finds.
fn search(store: &Store, term: &str) -> Vec<i64> {
    let q = FeedQuery {
        limit: 100,
        text: Some(term.into()),
        ..Default::default()
    };
    store
        .entries(&Scope::All, &q)
        .expect("search")
        .into_iter()
        .map(|e| e.id)
        .collect()
}

#[test]
fn edits_leave_search_with_the_new_words_only() {
    let (_dir, path, config) = setup();
    let store = store(&config, &path);
    // New and edited within one write: the entry is not indexed yet when it is edited.
    let mut twice = story(&config);
    twice.extend(retitled(&config, "Council delays riverside park plan"));
    let counts = write(&store, &config, "second", &twice);
    assert_eq!((counts.new, counts.updated), (1, 1));
    search_index_is_sound(&store, &path);
    assert_eq!(search(&store, "council approves"), Vec::<i64>::new());
    let ids = search(&store, "council delays");
    assert_eq!(ids.len(), 1);

    // Edited again later: the indexed text is taken out first.
    let again = retitled(&config, "Council rejects riverside park plan");
    let counts = write(&store, &config, "second", &again);
    assert_eq!(counts.updated, 1);
    search_index_is_sound(&store, &path);
    assert_eq!(search(&store, "council delays"), Vec::<i64>::new());
    assert_eq!(search(&store, "council rejects"), ids);
    assert_eq!(
        search(&store, "boat launch"),
        ids,
        "the body is searched too"
    );
}

/// `count` entries of the first source, a minute apart, the last the newest. Entry `i`'s
/// title states its number (so no two are one story); its text says "commonplace" when `i` is
/// even and "rarity" when `i` is a multiple of 1000.
fn bulletins(config: &Config, count: usize) -> Vec<Entry> {
    let source = config.source("first").expect("source");
    let items = (0..count)
        .map(|i| {
            let text = |body: String| Text { body, html: false };
            let mut body = format!("Notice number {i} from the council.");
            if i % 2 == 0 {
                body.push_str(" A commonplace remark.");
            }
            if i % 1000 == 0 {
                body.push_str(" A rarity.");
            }
            // Two-character words, found by the trigrams they begin: one in the middle of a
            // text, one that ends it.
            if i % 1000 == 250 {
                body.insert_str(0, "茅台 ");
            }
            if i % 1000 == 500 {
                body.push_str(" 央行");
            }
            ParsedItem {
                id: Some(format!("n{i}")),
                title: Some(text(format!("Bulletin {i}"))),
                links: vec![format!("http://example.org/n/{i}")],
                content: Some(text(body)),
                published: Some(now() - chrono::Duration::minutes((count - i) as i64)),
                ..Default::default()
            }
        })
        .collect();
    refresh::normalize_items(source, &source.url, items, now())
}

#[test]
fn searches_find_the_newest_matches_of_rare_common_and_short_terms() {
    const COUNT: usize = 12_000;
    let (_dir, path, config) = setup();
    let store = store(&config, &path);
    let counts = write(&store, &config, "first", &bulletins(&config, COUNT));
    assert_eq!((counts.new, counts.merged), (COUNT, 0));
    // Titles of the page, and the cursor for the next.
    let page = |text: &str, before: Option<Cursor>| {
        let q = FeedQuery {
            limit: 5,
            before,
            text: Some(text.to_string()),
            ..FeedQuery::default()
        };
        let found = store.entries(&Scope::All, &q).expect("search");
        let titles: Vec<String> = found.iter().map(|e| e.title.clone()).collect();
        (titles, found.last().map(|e| e.cursor))
    };
    let want = |matches: &dyn Fn(usize) -> bool, skip: usize| -> Vec<String> {
        (0..COUNT)
            .rev()
            .filter(|i| matches(*i))
            .skip(skip)
            .take(5)
            .map(|i| format!("Bulletin {i}"))
            .collect()
    };
    let cases: [(&str, &dyn Fn(usize) -> bool); 9] = [
        // 12 entries: looked up in the index.
        ("rarity", &|i| i % 1000 == 0),
        ("茅台", &|i| i % 1000 == 250),
        ("央行", &|i| i % 1000 == 500),
        ("央行 rarity", &|_| false),
        // 6,000 entries: more than a rare term's, checked newest first.
        ("commonplace", &|i| i % 2 == 0),
        ("COMMONPLACE rarity", &|i| i % 1000 == 0),
        // Shorter than a trigram: the index cannot narrow it.
        ("no", &|_| true),
        ("11", &|i| i.to_string().contains("11")),
        ("zzzqqq", &|_| false),
    ];
    for (text, matches) in cases {
        let (first, cursor) = page(text, None);
        assert_eq!(first, want(matches, 0), "{text}");
        let (second, _) = page(text, cursor);
        assert_eq!(second, want(matches, 5), "{text}, second page");
    }
}
