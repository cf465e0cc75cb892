//! The store looks near-duplicate candidates up in memory (`dedupe::index`), loading the
//! stored keys of the days it needs. Memory must never change a decision: a story stored by
//! another process, or before a restart, is still found.

use chrono::{TimeZone, Utc};
use tributary::config::Config;
use tributary::model::Entry;
use tributary::refresh;
use tributary::store::Store;

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
    let now = Utc
        .with_ymd_and_hms(2026, 11, 3, 12, 0, 0)
        .single()
        .expect("date");
    let (feed, _) = refresh::read_document(source, &url, None, rss.into_bytes()).expect("feed");
    refresh::normalize_items(source, &url, feed.items, now)
}

fn store(config: &Config, path: &std::path::Path) -> Store {
    let store = Store::open(path).expect("store");
    store.sync_sources(&config.sources).expect("sources");
    store
}

fn put(store: &Store, config: &Config, source: &str, entries: Vec<Entry>) -> usize {
    let thresholds = &config.source(source).expect("source").dedupe;
    let now = Utc
        .with_ymd_and_hms(2026, 11, 3, 12, 0, 0)
        .single()
        .expect("date");
    let counts = store
        .upsert_entries(source, &entries, thresholds, now)
        .expect("stored");
    assert_eq!(counts.new, 1, "{source}: a new entry");
    counts.merged
}

/// The story, as the second source tells it.
fn story(config: &Config) -> Vec<Entry> {
    item(
        config,
        "second",
        "Council approves riverside park plan",
        BODY,
    )
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
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("t.db");
    let config = config(dir.path());
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
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("t.db");
    let config = config(dir.path());
    {
        let before = store(&config, &path);
        let story = story(&config);
        assert_eq!(put(&before, &config, "second", story), 0);
    }
    let after = store(&config, &path);
    let copy = copy(&config);
    assert_eq!(put(&after, &config, "third", copy), 1);
}
