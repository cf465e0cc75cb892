//! A store that lives for years, through the binary: `keep_days` prunes what sources no longer
//! list (from every feed and the search index) and keeps what they still do, a pruned item
//! listed again does not come back; `backup` during an ingest gives a checked copy that
//! `restore` puts back, refused while the store is open; a backup killed midway leaves the live
//! store whole and nothing under the backup's name.

use std::fs;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;

use crate::common::*;

fn run(config: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = tributary_command(config);
    cmd.args(args);
    run_bounded(cmd, FETCH_DEADLINE)
}

/// An RSS 2.0 feed of `(guid, title, days old)` items.
fn rss(items: &[(&str, &str, i64)]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel>\
         <title>Harbour news</title><link>http://example.org/</link><description>d</description>",
    );
    for (guid, title, days) in items {
        let date = (Utc::now() - chrono::Duration::days(*days)).to_rfc2822();
        out.push_str(&format!(
            "<item><guid isPermaLink=\"false\">{guid}</guid><title>{title}</title>\
             <link>http://example.org/{guid}</link><pubDate>{date}</pubDate>\
             <description>{title}: the full story, told at length for the readers.</description>\
             </item>"
        ));
    }
    out.push_str("</channel></rss>");
    out
}

/// The titles of the JSON Feed at `url`.
fn titles(url: &str) -> Vec<String> {
    let r = http_get(url);
    assert_eq!(r.status, 200, "{url}");
    let doc: serde_json::Value = serde_json::from_str(&r.body).expect("JSON Feed");
    let mut titles: Vec<String> = doc["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["title"].as_str().unwrap_or_default().to_string())
        .collect();
    titles.sort();
    titles
}

const OLD: (&str, &str, i64) = ("old", "Ferry timetable for the winter", 30);
const YOUNG: (&str, &str, i64) = ("young", "Museum opens late on Fridays", 2);
const EVERGREEN: (&str, &str, i64) = ("faq", "How to renew a harbour permit", 400);

#[test]
fn keep_days_prunes_what_sources_no_longer_list_and_nothing_comes_back() {
    let fixtures = FixtureServer::start();
    fixtures.set("/harbour.xml", rss(&[OLD, YOUNG, EVERGREEN]));
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let source = Source::new("harbour", "Harbour", &fixtures.url("/harbour.xml"), "news");
    let text = config_text(listen, "tributary.db", &[source]).replacen(
        "[defaults]\n",
        "[defaults]\nkeep_days = 10\n",
        1,
    );
    let config = write_config_text(dir.path(), &text);
    assert_eq!(run_fetch(&config, &[]).0, 0);
    // The next list has moved on from the old item; the evergreen one is still there.
    fixtures.set("/harbour.xml", rss(&[YOUNG, EVERGREEN]));
    assert_eq!(run_fetch(&config, &[]).0, 0);

    let (code, out, err) = run(&config, &["prune", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("harbour        1 entry  (keep_days 10, keep_entries forever)"),
        "{out}"
    );
    assert!(out.contains("1 entries would go (dry run"), "{out}");
    let (code, found, _) = run(&config, &["search", "ferry"]);
    assert_eq!(code, 0, "a dry run took nothing: {found}");

    let (code, out, err) = run(&config, &["prune"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pruned 1 entries in 1 batches"), "{out}");
    let (code, found, _) = run(&config, &["search", "ferry"]);
    assert_eq!(code, 1, "out of the search index: {found}");

    // Listed again (a list that comes and goes): not stored as new.
    fixtures.set("/harbour.xml", rss(&[OLD, YOUNG, EVERGREEN]));
    let (code, out, _) = run_fetch(&config, &[]);
    assert_eq!(code, 0);
    assert!(out.contains("new=0"), "{out}");

    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    let expected = [EVERGREEN.1, YOUNG.1];
    for path in [
        "/feeds/all.json",
        "/feeds/news.json",
        "/sources/harbour.json",
    ] {
        assert_eq!(
            titles(&format!("http://{listen}{path}")),
            expected,
            "{path}"
        );
    }
}

/// A feed of `n` items with a few hundred bytes of their own text each: a store big enough
/// that a backup takes a while.
fn big_feed(source: &str, n: usize) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel>\
         <title>Big</title><link>http://example.org/</link><description>d</description>",
    );
    let date = Utc::now().to_rfc2822();
    for i in 0..n {
        let words: String = (0..60)
            .map(|w| format!("w{}x{} ", (i * 7919 + w * 104_729) % 100_003, w))
            .collect();
        out.push_str(&format!(
            "<item><guid isPermaLink=\"false\">{source}-{i}</guid><title>{source} item {i}</title>\
             <link>http://example.org/{source}/{i}</link><pubDate>{date}</pubDate>\
             <description>{words}</description></item>"
        ));
    }
    out.push_str("</channel></rss>");
    out
}

/// A config for `sources` big feeds on `fixtures`, dedupe off (the items share no story).
fn big_config(
    dir: &Path,
    fixtures: &FixtureServer,
    sources: usize,
    items: usize,
) -> std::path::PathBuf {
    let list: Vec<Source> = (0..sources)
        .map(|i| {
            let id = format!("big{i}");
            fixtures.set(&format!("/{id}.xml"), big_feed(&id, items));
            Source::new(&id, &id, &fixtures.url(&format!("/{id}.xml")), "bulk")
        })
        .collect();
    let text = config_text(free_addr(), "tributary.db", &list).replacen(
        "[defaults]\n",
        "[defaults]\nmax_items = 5000\n",
        1,
    ) + "\n[dedupe]\nenabled = false\n";
    write_config_text(dir, &text)
}

fn entry_count(store: &Path) -> i64 {
    let conn = rusqlite::Connection::open(store).unwrap();
    conn.query_row("SELECT COUNT(*) FROM entries", [], |r| r.get(0))
        .unwrap()
}

fn integrity(store: &Path) -> String {
    let conn = rusqlite::Connection::open(store).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// A backup taken while a fetch stores entries is whole and checked; restored (the daemon
/// stopped), the store serves what a store opened from the copy serves.
#[test]
fn a_backup_taken_during_an_ingest_restores_to_the_same_feeds() {
    let fixtures = FixtureServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = big_config(&dir.path().join("live"), &fixtures, 12, 400);
    if backups_are_pg_dumps(&config) {
        return;
    }
    let store = dir.path().join("live/tributary.db");
    assert_eq!(run_fetch(&config, &["big0"]).0, 0);
    let mut ingest = tributary_command(&config);
    ingest
        .arg("fetch")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut ingest = ingest.spawn().expect("fetch");
    let copy = dir.path().join("copy.db");
    let (code, out, err) = run(&config, &["backup", copy.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("backed up "), "{out}");
    assert_eq!(
        wait_timeout(&mut ingest, FETCH_DEADLINE).map(|s| s.code()),
        Some(Some(0))
    );
    assert_eq!(integrity(&copy), "ok");
    let in_copy = entry_count(&copy);
    assert!(in_copy >= 400, "{in_copy}");

    // What a store opened from the copy serves, at a fixed public address so links agree.
    let public = "[server]\npublic_url = \"http://feeds.example.org/\"\n";
    let served = |config: &Path| -> Vec<String> {
        let text = fs::read_to_string(config)
            .unwrap()
            .replacen("[server]\n", public, 1);
        fs::write(config, &text).unwrap();
        let listen = listen_of(config);
        let mut serve = spawn_serve(config, listen);
        serve.wait_healthz();
        ["/feeds/all.atom", "/feeds/bulk.json", "/sources/big0.rss"]
            .iter()
            .map(|p| http_get(&format!("http://{listen}{p}?limit=500")).body)
            .collect()
    };
    let reference = dir.path().join("reference");
    let ref_config = write_config_text(
        &reference,
        &fs::read_to_string(&config).unwrap().replace(
            "path = \"tributary.db\"",
            &format!(
                "path = {:?}",
                reference.join("copy.db").display().to_string()
            ),
        ),
    );
    fs::copy(&copy, reference.join("copy.db")).unwrap();
    let expected = served(&ref_config);

    // Refused while the store is open.
    {
        let mut serve = spawn_serve(&config, listen_of(&config));
        serve.wait_healthz();
        let (code, _, err) = run(&config, &["restore", copy.to_str().unwrap()]);
        assert_eq!(code, 2);
        assert!(err.contains("is open"), "{err}");
    }
    assert!(
        entry_count(&store) > in_copy,
        "the ingest went on after the copy"
    );
    let (code, out, err) = run(&config, &["restore", copy.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("restored {in_copy} entries of 12 sources")),
        "{out}"
    );
    assert!(out.contains("tributary.db.before-restore"), "{out}");
    assert_eq!(entry_count(&store), in_copy);
    assert_eq!(served(&config), expected);
    let (code, found, _) = run(&config, &["search", "big0 item 17"]);
    assert_eq!(code, 0, "the search index was built again: {found}");

    // Not a store, or damaged: refused, the store untouched.
    let junk = dir.path().join("junk.db");
    fs::write(&junk, b"not a database at all, just some bytes").unwrap();
    let (code, _, err) = run(&config, &["restore", junk.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("not an SQLite database"), "{err}");
    assert_eq!(entry_count(&store), in_copy);
}

/// The listen address a config written by `config_text` names.
fn listen_of(config: &Path) -> std::net::SocketAddr {
    fs::read_to_string(config)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("listen = "))
        .and_then(|v| v.trim_matches('"').parse().ok())
        .expect("listen")
}

/// SIGKILL while the copy is being written: the live store is whole, and nothing carries the
/// backup's name; the next backup to that name succeeds.
#[test]
fn a_backup_killed_midway_leaves_no_copy_and_the_store_whole() {
    let fixtures = FixtureServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = big_config(&dir.path().join("live"), &fixtures, 4, 1000);
    if backups_are_pg_dumps(&config) {
        return;
    }
    let store = dir.path().join("live/tributary.db");
    assert_eq!(run_fetch(&config, &[]).0, 0);
    let before = entry_count(&store);
    let copy = dir.path().join("nightly.db");
    let partial = dir.path().join(".nightly.db.partial");
    let mut backup = tributary_command(&config);
    backup
        .args(["backup", copy.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = backup.spawn().expect("backup");
    // The copy is being written once its file exists: killed then.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !partial.exists() {
        assert!(std::time::Instant::now() < deadline, "no copy started");
        std::thread::yield_now();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!copy.exists(), "nothing under the backup's name");
    assert_eq!(integrity(&store), "ok");
    assert_eq!(entry_count(&store), before);
    let (code, out, err) = run(&config, &["backup", copy.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(integrity(&copy), "ok");
    assert_eq!(entry_count(&copy), before);
}

/// The daemon prunes on its own: its first pass comes two minutes after the start, on a clock
/// the test controls (tokio's, paused), with the limits of the running config.
#[test]
fn the_daemon_prunes_on_its_own_two_minutes_after_it_starts() {
    let fixtures = FixtureServer::start();
    fixtures.set("/harbour.xml", rss(&[OLD, YOUNG]));
    let dir = tempfile::tempdir().unwrap();
    let source = Source::new("harbour", "Harbour", &fixtures.url("/harbour.xml"), "news");
    let text = config_text(free_addr(), "tributary.db", &[source]).replacen(
        "[defaults]\n",
        "[defaults]\nkeep_days = 10\n",
        1,
    );
    let config = write_config_text(dir.path(), &text);
    assert_eq!(run_fetch(&config, &[]).0, 0);
    fixtures.set("/harbour.xml", rss(&[YOUNG]));
    assert_eq!(run_fetch(&config, &[]).0, 0);
    // Not fetched by the daemon: only its clock moves the pass.
    fs::write(
        &config,
        text.replace("kind = \"feed\"\n", "kind = \"feed\"\nenabled = false\n"),
    )
    .unwrap();
    let path = config;
    let config = tributary::config::Config::load(&path).unwrap();
    let store = std::sync::Arc::new(open_store(&config));
    store.sync_sources(&config.sources).unwrap();
    // The source is disabled, so no feed shows its entries: the table says what is stored.
    let titles = || -> Vec<String> {
        store_rows(&path, "SELECT title FROM entries ORDER BY title")
            .into_iter()
            .map(|mut row| row.remove(0))
            .collect()
    };
    assert_eq!(titles(), [OLD.1, YOUNG.1]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let daemon = std::sync::Arc::new(tributary::daemon::Daemon::new(config, store.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let started = tokio::time::Instant::now();
        let running = tokio::spawn({
            let daemon = daemon.clone();
            async move { daemon.run(listener).await }
        });
        let first = tributary::daemon::PRUNE_FIRST;
        tokio::time::sleep(first - Duration::from_secs(1)).await;
        assert_eq!(titles(), [OLD.1, YOUNG.1], "not before its time");
        // The pass runs on the blocking pool: the paused clock moves a second at a time while
        // it does (each sleep ends at once when nothing else is due).
        while titles().len() > 1 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert_eq!(titles(), [YOUNG.1]);
        // The first pass, not the next one an hour later.
        assert!(started.elapsed() < first + tributary::daemon::PRUNE_EVERY);
        daemon.stop();
        running.await.unwrap().unwrap();
    });
}
