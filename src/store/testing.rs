//! Shared fixtures of the store's unit tests: a store in a scratch folder with the sources of a
//! small config, and entries built the way normalize builds them (identity keys, version,
//! fingerprint, candidate keys and figures), without a feed to parse.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::{Store, UpsertCounts};
use crate::config::Thresholds;
use crate::config::{Config, SourceConfig};
use crate::dedupe;
use crate::model::{DateSource, Entry};

/// A story long enough to be compared on its text.
pub(super) const BODY: &str = "The city council approved the new riverside park plan on \
    Tuesday after a long public hearing. The plan adds walking paths, a playground and a small \
    boat launch along the east bank, and replaces the old parking lot with gardens. Residents \
    who spoke at the hearing mostly supported the design, though several asked for more \
    lighting and for the boat launch to open in spring rather than in the autumn.";

/// Another story, sharing nothing with [`BODY`].
pub(super) const OTHER: &str = "The central library will stay open until eight on Saturdays \
    and Sundays from next month, after a survey showed most visitors come at weekends. The \
    reading rooms and the children's floor keep their usual hours on weekdays.";

/// A store and the folder holding it (removed when dropped).
pub(super) struct Scratch {
    _dir: tempfile::TempDir,
    pub(super) path: std::path::PathBuf,
    pub(super) store: Store,
}

/// Sources `first`, `second` and `third` of category `local` (`third` tagged `city`), as
/// `sources` reads them from a config.
pub(super) fn sources(extra: &str) -> Vec<std::sync::Arc<SourceConfig>> {
    let mut text = String::new();
    for id in ["first", "second", "third"] {
        let tags = if id == "third" { "[\"city\"]" } else { "[]" };
        text.push_str(&format!(
            "[[sources]]\nid = \"{id}\"\nname = \"The {id}\"\n\
             url = \"http://127.0.0.1:9/{id}.xml\"\ncategory = \"local\"\ntags = {tags}\n"
        ));
    }
    text.push_str(extra);
    Config::from_toml(std::path::Path::new("t.toml"), &text)
        .expect("config")
        .sources
}

/// The same on a scratch PostgreSQL database (`pg::testing`), with no folder: `path` names
/// nothing.
pub(super) fn scratch_pg() -> Scratch {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("none");
    let store = Store::open_pg(&super::pg::testing::database(), 2).expect("store");
    store.sync_sources(&sources("")).expect("sources");
    Scratch {
        _dir: dir,
        path,
        store,
    }
}

/// A fresh store of each backend, SQLite first.
pub(super) fn both() -> [Scratch; 2] {
    [scratch(), scratch_pg()]
}

/// A fresh store with [`sources`] synced.
pub(super) fn scratch() -> Scratch {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("t.db");
    let store = Store::open(&path).expect("store");
    store.sync_sources(&sources("")).expect("sources");
    Scratch {
        _dir: dir,
        path,
        store,
    }
}

impl Scratch {
    /// The store closed (its search index drained) and opened again, as a restart would.
    pub(super) fn reopen(self) -> Scratch {
        self.reopen_with(|| {})
    }

    /// The store closed, `between` run, and the store opened again.
    pub(super) fn reopen_with(self, between: impl FnOnce()) -> Scratch {
        let Scratch { _dir, path, store } = self;
        drop(store);
        between();
        let store = Store::open(&path).expect("store reopened");
        Scratch { _dir, path, store }
    }
}

/// When the tests' fetches happen (and their entries are published).
pub(super) fn at(hours: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 3, 12, 0, 0)
        .single()
        .expect("date")
        + Duration::hours(hours)
}

/// Item `slug` of `source`: its guid, its link, and the text as given.
pub(super) fn entry(source: &str, slug: &str, title: &str, body: &str) -> Entry {
    let guid = format!("{source}-{slug}");
    let link = format!("http://example.org/{source}/{slug}");
    let (fingerprint, candidate_keys, figures) =
        dedupe::prepare(title, body, &Thresholds::default());
    Entry {
        keys: vec![
            format!("guid:{source}:{guid}"),
            format!("link:example.org/{source}/{slug}"),
        ],
        guid: Some(guid),
        link: Some(link),
        title: title.to_string(),
        summary: None,
        content: Some(format!("<p>{body}</p>")),
        authors: Vec::new(),
        published: Some(at(0)),
        updated: None,
        date_source: DateSource::Feed,
        date_format: None,
        date_rank: 2,
        categories: Vec::new(),
        version: blake3::hash(format!("{title}\n{body}").as_bytes())
            .to_hex()
            .to_string(),
        article_pending: false,
        fingerprint,
        candidate_keys,
        figures,
    }
}

/// Stores `entries` as one fetch of `source` at [`at`]`(0)`.
pub(super) fn put(store: &Store, source: &str, entries: &[Entry]) -> UpsertCounts {
    store
        .upsert_entries(source, entries, &Thresholds::default(), at(0))
        .expect("stored")
}

/// The first ten entries of `scope`'s feed.
pub(super) fn feed(store: &Store, scope: crate::model::Scope) -> Vec<crate::model::StoredEntry> {
    let q = crate::model::FeedQuery {
        limit: 10,
        ..Default::default()
    };
    store.entries(&scope, &q).expect("feed")
}

/// The titles a search of the merged feed finds (first ten), sorted.
pub(super) fn search_titles(store: &Store, text: &str) -> Vec<String> {
    let q = crate::model::FeedQuery {
        limit: 10,
        text: Some(text.into()),
        ..Default::default()
    };
    let mut titles: Vec<String> = store
        .entries(&crate::model::Scope::All, &q)
        .expect("search")
        .into_iter()
        .map(|e| e.title)
        .collect();
    titles.sort();
    titles
}
