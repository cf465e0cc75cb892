//! Real feed readers against what `tributary serve` publishes: newsboat (headless reload into
//! its SQLite cache) and Python's feedparser for RSS and Atom, and the JSON Feed 1.1 required
//! fields for JSON.
//!
//! The readers are required: when one is missing these tests fail and say how to install it
//! (`bash .ci/run` does), they never skip.

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use serde_json::Value;

const READER_DEADLINE: Duration = Duration::from_secs(60);

/// The served feeds the readers are pointed at, with the entries each must hold.
fn reader_feeds(format_ext: &str) -> Vec<(String, Vec<Expected>)> {
    vec![
        (
            format!("/feeds/{}.{format_ext}", pct(FINANCE)),
            expected_in_category(FINANCE),
        ),
        (
            format!("/feeds/{TECH}.{format_ext}"),
            expected_in_category(TECH),
        ),
        (
            format!("/feeds/all.{format_ext}"),
            ALL_NEWEST_FIRST.to_vec(),
        ),
    ]
}

fn expected_pairs(expected: &[Expected]) -> BTreeSet<(String, String)> {
    expected
        .iter()
        .map(|e| (e.title.to_string(), e.link.to_string()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// newsboat
// ---------------------------------------------------------------------------------------------

/// newsboat, headless, with an empty config and one cache per feed, reloads each served RSS
/// and Atom feed; its cache then holds every entry, once, with its title and link.
#[test]
fn newsboat_reads_every_entry_of_the_rss_and_atom_feeds() {
    require_newsboat();
    let stack = Stack::start();
    let work = stack.dir.path().join("newsboat");
    fs::create_dir_all(&work).expect("creating the newsboat folder");
    let conf = work.join("config");
    fs::write(&conf, "").expect("writing an empty newsboat config");

    let mut feeds = reader_feeds("rss");
    feeds.extend(reader_feeds("atom"));
    for (n, (path, expected)) in feeds.iter().enumerate() {
        let url = stack.serve.url(path);
        let urls = work.join(format!("urls-{n}"));
        let cache = work.join(format!("cache-{n}.db"));
        fs::write(&urls, format!("{url}\n")).expect("writing the newsboat urls file");

        let (rows, stdout, stderr) = newsboat_reload(&url, &urls, &cache, &conf, &work);
        let context = format!(
            "newsboat reload of {url}\nnewsboat stdout:\n{stdout}\nnewsboat stderr:\n{stderr}\n{}",
            stack.serve.logs()
        );
        assert_eq!(
            rows.len(),
            expected.len(),
            "{context}\nnewsboat stored {} items, expected {}: {rows:#?}",
            rows.len(),
            expected.len()
        );
        for (_, _, feedurl) in &rows {
            assert_eq!(feedurl, &url, "{context}\nitem stored under another feed");
        }
        let got: BTreeSet<(String, String)> = rows
            .iter()
            .map(|(title, link, _)| (title.clone(), link.clone()))
            .collect();
        assert_eq!(
            got,
            expected_pairs(expected),
            "{context}\nnewsboat's (title, link) pairs differ from the fixtures"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// feedparser
// ---------------------------------------------------------------------------------------------

/// `/usr/bin/python3` if it has feedparser (Debian's python3-feedparser installs there), else
/// `python3` on PATH if that has it; panics with install instructions otherwise.
fn python_with_feedparser() -> String {
    python_with("feedparser", "python3-feedparser")
}

/// Fetches the URL with feedparser itself (so the HTTP headers count too) and prints a JSON
/// summary.
const FEEDPARSER_SCRIPT: &str = r#"
import json, sys, urllib.request
import feedparser
d = feedparser.parse(sys.argv[1], handlers=[urllib.request.ProxyHandler({})])
print(json.dumps({
    "bozo": int(bool(d.get("bozo", 0))),
    "bozo_exception": repr(d.get("bozo_exception", "")),
    "status": d.get("status"),
    "version": d.get("version", ""),
    "encoding": d.get("encoding", ""),
    "entries": [
        {"title": e.get("title", ""), "link": e.get("link", ""), "id": e.get("id", "")}
        for e in d.entries
    ],
}))
"#;

/// feedparser reads the served RSS and Atom feeds with `bozo == 0`, the right version, and
/// every entry's title and link.
#[test]
fn feedparser_parses_rss_and_atom_without_bozo() {
    let python = python_with_feedparser();
    let stack = Stack::start();
    for (ext, version) in [("rss", "rss20"), ("atom", "atom10")] {
        for (path, expected) in reader_feeds(ext) {
            let url = stack.serve.url(&path);
            let mut cmd = Command::new(&python);
            cmd.args(["-c", FEEDPARSER_SCRIPT, &url]);
            let (code, stdout, stderr) = run_bounded(cmd, READER_DEADLINE);
            assert_eq!(
                code, 0,
                "feedparser on {url}: exit code\nstdout:\n{stdout}\nstderr:\n{stderr}"
            );
            let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
                panic!("feedparser script output is not JSON ({e}): {stdout}\n{stderr}")
            });
            assert_eq!(
                report["bozo"], 0,
                "feedparser on {url}: bozo set: {}",
                report["bozo_exception"]
            );
            assert_eq!(report["status"], 200, "feedparser on {url}: HTTP status");
            assert_eq!(report["version"], version, "feedparser on {url}: version");
            let entries = report["entries"]
                .as_array()
                .expect("entries array in the report");
            assert_eq!(
                entries.len(),
                expected.len(),
                "feedparser on {url}: entry count\n{report:#}"
            );
            let got: BTreeSet<(String, String)> = entries
                .iter()
                .map(|e| {
                    (
                        e["title"].as_str().unwrap_or_default().to_string(),
                        e["link"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            assert_eq!(
                got,
                expected_pairs(&expected),
                "feedparser on {url}: (title, link) pairs"
            );
            let ids: BTreeSet<&str> = entries.iter().filter_map(|e| e["id"].as_str()).collect();
            assert_eq!(
                ids.len(),
                expected.len(),
                "feedparser on {url}: entry ids missing or not unique\n{report:#}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON Feed 1.1
// ---------------------------------------------------------------------------------------------

fn check_optional_string(obj: &Value, key: &str, what: &str) {
    if let Some(v) = obj.get(key) {
        assert!(v.is_string(), "{what}: `{key}` must be a string, got {v}");
    }
}

/// Checks a document against JSON Feed 1.1's required fields, and the types of the optional
/// ones the tributary contract uses.
fn check_json_feed_1_1(doc: &Value, what: &str, expected: &[Expected]) {
    assert_eq!(
        doc["version"], "https://jsonfeed.org/version/1.1",
        "{what}: version"
    );
    let title = doc["title"].as_str().unwrap_or_default();
    assert!(
        !title.trim().is_empty(),
        "{what}: `title` is required: {doc}"
    );
    for key in ["home_page_url", "feed_url", "description", "language"] {
        check_optional_string(doc, key, what);
    }
    let items = doc["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: `items` array is required"));
    assert_eq!(items.len(), expected.len(), "{what}: item count");
    let mut ids = BTreeSet::new();
    for item in items {
        let id = item["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: item without a string `id`: {item}"));
        assert!(!id.is_empty(), "{what}: empty item id: {item}");
        assert!(ids.insert(id.to_string()), "{what}: duplicate item id {id}");
        let has_content = ["content_html", "content_text"]
            .iter()
            .any(|k| item.get(*k).is_some_and(Value::is_string));
        assert!(
            has_content,
            "{what}: item {id} has neither content_html nor content_text: {item}"
        );
        for key in ["url", "title", "summary", "date_published", "date_modified"] {
            check_optional_string(item, key, what);
        }
        for key in ["date_published", "date_modified"] {
            if let Some(d) = item.get(key).and_then(Value::as_str) {
                assert!(
                    chrono::DateTime::parse_from_rfc3339(d).is_ok(),
                    "{what}: item {id}: {key} {d:?} is not RFC 3339"
                );
            }
        }
        if let Some(authors) = item.get("authors") {
            let authors = authors
                .as_array()
                .unwrap_or_else(|| panic!("{what}: item {id}: `authors` must be an array"));
            for a in authors {
                assert!(
                    ["name", "url", "avatar"]
                        .iter()
                        .any(|k| a.get(*k).is_some_and(Value::is_string)),
                    "{what}: item {id}: an author needs name, url or avatar: {a}"
                );
            }
        }
        if let Some(tags) = item.get("tags") {
            assert!(
                tags.as_array()
                    .is_some_and(|t| t.iter().all(Value::is_string)),
                "{what}: item {id}: `tags` must be an array of strings: {tags}"
            );
        }
    }
    let got: BTreeSet<(String, String)> = items
        .iter()
        .map(|i| {
            (
                i["title"].as_str().unwrap_or_default().to_string(),
                i["url"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(got, expected_pairs(expected), "{what}: (title, url) pairs");
}

/// The served JSON feeds carry JSON Feed 1.1's required fields.
#[test]
fn json_feed_has_the_required_fields_of_1_1() {
    let stack = Stack::start();
    for (path, expected) in reader_feeds("json") {
        let resp = stack.get(&path);
        assert_eq!(resp.status, 200, "GET {path}\n{}", stack.serve.logs());
        let doc: Value = serde_json::from_str(&resp.body)
            .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {}", resp.body));
        check_json_feed_1_1(&doc, &format!("GET {path}"), &expected);
    }
}
