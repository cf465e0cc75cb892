//! `tributary migrate`: an SQLite store copied into PostgreSQL and back serves the same feeds
//! and search results at each step, with every table's rows counted again; a target that
//! already holds a store is refused and left as it was. Runs on PostgreSQL whichever backend
//! the suite runs on (`$TRIBUTARY_POSTGRES_URL`).

use std::path::{Path, PathBuf};

use crate::common::*;

const PUBLIC: &str = "http://feeds.example.org/";
const PAGES: [&str; 5] = [
    "/feeds/all.atom",
    "/feeds/all.json",
    "/feeds/all.rss?q=%E9%99%8D%E5%87%86",
    "/sources/cs-kuaixun.rss",
    "/sources/tech-blog.atom",
];

/// A config on the store the test chose, with the fixtures' sources and a fixed public URL.
fn config(dir: &Path, fixtures: &FixtureServer) -> PathBuf {
    let sources = [
        Source::fixture(fixtures, CS_ID),
        Source::fixture(fixtures, TECH_ID),
        Source::fixture(fixtures, CAIXIN_ID),
    ];
    let text = config_text(free_addr(), "tributary.db", &sources).replacen(
        "[server]\n",
        &format!("[server]\npublic_url = \"{PUBLIC}\"\n"),
        1,
    );
    write_config_text(dir, &text)
}

fn listen_of(config: &Path) -> std::net::SocketAddr {
    tributary::config::Config::load(config)
        .expect("the config")
        .server
        .listen
}

fn served(config: &Path) -> Vec<String> {
    let mut serve = spawn_serve(config, listen_of(config));
    serve.wait_healthz();
    serve.bodies(&PAGES)
}

fn migrate(config: &Path, from: &str, to: &str) -> (i32, String, String) {
    let mut cmd = tributary_command(config);
    cmd.args(["migrate", "--from", from, "--to", to]);
    run_bounded(cmd, FETCH_DEADLINE)
}

#[test]
fn a_store_copied_into_postgresql_and_back_serves_the_same_feeds() {
    let fixtures = FixtureServer::start();
    let dir = tempfile::tempdir().expect("a temp folder");
    use_sqlite();
    let first = config(&dir.path().join("sqlite"), &fixtures);
    let (code, out, err) = run_fetch(&first, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let expected = served(&first);
    assert!(expected[2].contains("<item>"), "the search finds the story");
    let file = dir.path().join("sqlite/tributary.db");

    let database = pg_database();
    let (code, out, err) = migrate(&first, file.to_str().expect("UTF-8"), &database);
    assert_eq!(code, 0, "{out}{err}");
    let entries = store_count(&first, "SELECT COUNT(*) FROM entries");
    assert!(
        out.starts_with(&format!("copied {entries} entries of 3 sources from ")),
        "{out}"
    );
    assert!(out.contains("entry_sources"), "{out}");
    eprintln!("{out}");
    use_pg_database(Some(database.clone()));
    let on_pg = config(&dir.path().join("postgres"), &fixtures);
    assert_eq!(served(&on_pg), expected, "served from PostgreSQL");
    // The sources' state came too: a fetch now is all 304s.
    let (code, out, _) = run_fetch(&on_pg, &[]);
    assert_eq!(code, 0);
    assert_eq!(out.matches("not modified").count(), 3, "{out}");

    // Into a store that holds one: refused, nothing changed.
    let (code, out, err) = migrate(&first, &database, file.to_str().expect("UTF-8"));
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.contains("the target store is not empty"), "{err}");
    assert_eq!(store_count(&first, "SELECT COUNT(*) FROM entries"), entries);

    // A mistyped store to copy: said, not a new empty one copied.
    let missing = dir.path().join("no/such.db");
    let (code, _, err) = migrate(&first, missing.to_str().expect("UTF-8"), &database);
    assert_eq!(code, 2);
    assert!(err.contains("no such store"), "{err}");
    assert!(!missing.exists());

    // And back into a new SQLite file.
    let back = dir.path().join("back/tributary.db");
    let (code, out, err) = migrate(&first, &database, back.to_str().expect("UTF-8"));
    assert_eq!(code, 0, "{out}{err}");
    use_sqlite();
    let again = config(&dir.path().join("back"), &fixtures);
    assert_eq!(served(&again), expected, "served from the SQLite copy");
    let (code, found, _) = run_fetch(&again, &[]);
    assert_eq!(code, 0, "{found}");
    let mut search = tributary_command(&again);
    search.args(["search", "降准"]);
    let (code, found, err) = run_bounded(search, FETCH_DEADLINE);
    assert_eq!(code, 0, "{err}");
    assert!(!found.trim().is_empty(), "the copy back finds the story");
}
