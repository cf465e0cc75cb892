//! End-to-end tests of the `tributary` binary: `fetch` against an in-process fixture server,
//! then `serve`, read back over HTTP in RSS, Atom and JSON Feed.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::time::Duration;

use crate::common::served::{self, unix, Format, Served, FORMATS};
use crate::common::*;

// ---------------------------------------------------------------------------------------------
// Assertion helpers
// ---------------------------------------------------------------------------------------------

/// Asserts a served feed holds exactly `expected`, in that order (newest first), each with
/// its link, published instant, source name and categories.
fn assert_entries(what: &str, format: Format, got: &[Served], expected: &[Expected]) {
    let got_titles: Vec<&str> = got.iter().map(|s| s.title.as_str()).collect();
    let want_titles: Vec<&str> = expected.iter().map(|e| e.title).collect();
    assert_eq!(
        got_titles, want_titles,
        "{what}: entries (titles, in order) differ from the fixtures, newest first"
    );
    for (s, e) in got.iter().zip(expected) {
        assert_eq!(s.link, e.link, "{what}: link of {:?}", e.title);
        assert_eq!(
            s.published,
            Some(unix(e.published)),
            "{what}: published date of {:?} (expected {} UTC)",
            e.title,
            e.published
        );
        let name = source_name(e.source);
        assert_eq!(
            s.source_name.as_deref(),
            Some(name),
            "{what}: source name of {:?}",
            e.title
        );
        for cat in e.categories {
            assert!(
                s.categories.iter().any(|c| c == cat),
                "{what}: entry {:?} lacks category {cat:?} (has {:?})",
                e.title,
                s.categories
            );
        }
        match format {
            Format::Rss => {
                let url = s.source_url.as_deref().unwrap_or_default();
                assert!(
                    url.starts_with("http://") || url.starts_with("https://"),
                    "{what}: <source url> of {:?} is not an absolute URL: {url:?}",
                    e.title
                );
            }
            Format::Json => {
                let ext = s.tributary_ext.as_ref().unwrap_or_else(|| {
                    panic!("{what}: item {:?} has no _tributary extension", e.title)
                });
                let sources = ext
                    .get("sources")
                    .and_then(|v| v.as_array())
                    .unwrap_or_else(|| panic!("{what}: _tributary.sources missing: {ext}"));
                assert_eq!(
                    sources.len(),
                    1,
                    "{what}: {:?} comes from one source: {ext}",
                    e.title
                );
                let src = &sources[0];
                assert_eq!(src["id"], e.source, "{what}: _tributary source id");
                assert_eq!(src["name"], name, "{what}: _tributary source name");
                assert_eq!(src["url"], e.link, "{what}: _tributary source url");
            }
            Format::Atom => {}
        }
    }
}

/// GETs `path` on the stack, asserts 200 and the format's Content-Type, and parses it.
fn get_feed(stack: &Stack, path: &str, format: Format) -> Vec<Served> {
    let resp = stack.get(path);
    assert_eq!(
        resp.status,
        200,
        "GET {path}: status (body: {})\n{}",
        resp.body,
        stack.serve.logs()
    );
    let ct = resp.header("content-type").unwrap_or_default();
    assert!(
        ct.starts_with(format.content_type()) && ct.to_lowercase().contains("charset=utf-8"),
        "GET {path}: Content-Type {ct:?}, expected \"{}; charset=utf-8\"",
        format.content_type()
    );
    served::parse(format, &resp.body)
}

fn finance_path(format: Format) -> String {
    format!("/feeds/{}.{}", pct(FINANCE), format.ext())
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// The fixture files say what the `Expected` table says (so a failure elsewhere is the
/// binary's), and the malformed one really is malformed.
#[test]
fn fixtures_are_what_the_tests_expect() {
    for (file, source) in [
        (CS_FILE, CS_ID),
        (CAIXIN_FILE, CAIXIN_ID),
        (TECH_FILE, TECH_ID),
    ] {
        let feed = feed_rs::parser::parse(fixture_bytes(file).as_slice())
            .unwrap_or_else(|e| panic!("fixture {file} does not parse: {e}"));
        let mut want = expected_for(&[source]);
        let mut got: Vec<_> = feed.entries.iter().collect();
        got.sort_by_key(|e| std::cmp::Reverse(e.published));
        want.sort_by_key(|e| std::cmp::Reverse(unix(e.published)));
        assert_eq!(got.len(), want.len(), "entry count of {file}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.id, w.guid, "{file}: id");
            assert_eq!(
                g.title.as_ref().map(|t| t.content.as_str()),
                Some(w.title),
                "{file}: title"
            );
            assert_eq!(g.links[0].href, w.link, "{file}: link");
            assert_eq!(
                g.published.map(|d| d.timestamp()),
                Some(unix(w.published)),
                "{file}: published of {}",
                w.title
            );
            let cats: Vec<&str> = g.categories.iter().map(|c| c.term.as_str()).collect();
            assert_eq!(cats, w.categories, "{file}: categories of {}", w.title);
        }
    }
    // All published instants are distinct, so "newest first" has one right answer.
    let instants: BTreeSet<i64> = ALL_NEWEST_FIRST.iter().map(|e| unix(e.published)).collect();
    assert_eq!(instants.len(), ALL_NEWEST_FIRST.len());
    assert!(ALL_NEWEST_FIRST
        .windows(2)
        .all(|w| unix(w[0].published) > unix(w[1].published)));
    // The dirty item carries what the sanitizer must remove.
    let rss = String::from_utf8(fixture_bytes(CS_FILE)).expect("RSS fixture is UTF-8");
    for needle in ["<script>", "onclick=", "href=\"/sylm/", "src=\"/sylm/"] {
        assert!(rss.contains(needle), "RSS fixture lacks {needle}");
    }
    assert!(
        feed_rs::parser::parse(fixture_bytes(MALFORMED_FILE).as_slice()).is_err(),
        "malformed.xml should not parse"
    );
}

// ---------------------------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------------------------

/// The 金融 feed merges the RSS and JSON sources, newest first, in all three formats, with the
/// category requested percent-encoded (upper- and lower-case hex); `tech` has only the Atom one.
#[test]
fn category_feeds_merge_sources_newest_first_in_every_format() {
    let stack = Stack::start();
    for format in FORMATS {
        let path = finance_path(format);
        let got = get_feed(&stack, &path, format);
        assert_entries(&path, format, &got, &expected_in_category(FINANCE));

        let lower = path.to_lowercase();
        let got = get_feed(&stack, &lower, format);
        assert_entries(&lower, format, &got, &expected_in_category(FINANCE));

        let path = format!("/feeds/{TECH}.{}", format.ext());
        let got = get_feed(&stack, &path, format);
        assert_entries(&path, format, &got, &expected_in_category(TECH));
    }
}

/// `/feeds/all.*` has every entry of every source once, newest first; `/sources/{id}.*` only
/// that source's; `?limit=N` keeps the N newest.
#[test]
fn all_feed_has_everything_and_source_feeds_only_their_own() {
    let stack = Stack::start();
    for format in FORMATS {
        let path = format!("/feeds/all.{}", format.ext());
        let got = get_feed(&stack, &path, format);
        assert_entries(&path, format, &got, ALL_NEWEST_FIRST);

        for source in [CS_ID, CAIXIN_ID, TECH_ID] {
            let path = format!("/sources/{source}.{}", format.ext());
            let got = get_feed(&stack, &path, format);
            assert_entries(&path, format, &got, &expected_for(&[source]));
        }

        let path = format!("/feeds/all.{}?limit=2", format.ext());
        let got = get_feed(&stack, &path, format);
        assert_entries(&path, format, &got, &ALL_NEWEST_FIRST[..2]);

        let path = format!("{}?limit=3", finance_path(format));
        let got = get_feed(&stack, &path, format);
        assert_entries(&path, format, &got, &expected_in_category(FINANCE)[..3]);
    }
}

/// An unknown category is a plain-text 404, for ASCII and percent-encoded names alike.
#[test]
fn unknown_category_is_404_plain_text() {
    let stack = Stack::start();
    for path in [
        "/feeds/no-such-category.rss".to_string(),
        "/feeds/no-such-category.atom".to_string(),
        format!("/feeds/{}.json", pct("体育")),
    ] {
        let resp = stack.get(&path);
        assert_eq!(resp.status, 404, "GET {path}: body {:?}", resp.body);
        let ct = resp.header("content-type").unwrap_or_default();
        assert!(
            ct.starts_with("text/plain"),
            "GET {path}: 404 Content-Type {ct:?}, expected text/plain"
        );
    }
}

/// Every served feed has an ETag derived from its content; sending it back in
/// `If-None-Match` gives 304 with no body, a different tag gives the feed again.
#[test]
fn etag_and_if_none_match_give_304() {
    let stack = Stack::start();
    let mut paths: Vec<String> = FORMATS.iter().map(|f| finance_path(*f)).collect();
    paths.extend(FORMATS.iter().map(|f| format!("/feeds/all.{}", f.ext())));
    paths.push(format!("/sources/{TECH_ID}.atom"));
    let mut tags = BTreeMap::new();
    for path in &paths {
        let first = stack.get(path);
        assert_eq!(first.status, 200, "GET {path}");
        let etag = first
            .header("etag")
            .unwrap_or_else(|| panic!("GET {path}: no ETag header"));
        let again = stack.get(path);
        assert_eq!(
            again.header("etag").as_deref(),
            Some(etag.as_str()),
            "GET {path} twice: the ETag changed although the content did not"
        );
        assert_eq!(again.body, first.body, "GET {path} twice: body changed");

        let cached = http_get_with(&stack.serve.url(path), &[("If-None-Match", &etag)]);
        assert_eq!(
            cached.status, 304,
            "GET {path} with If-None-Match: {etag}: status"
        );
        assert!(cached.body.is_empty(), "GET {path}: 304 with a body");

        let stale = http_get_with(
            &stack.serve.url(path),
            &[("If-None-Match", "\"not-the-right-tag\"")],
        );
        assert_eq!(
            stale.status, 200,
            "GET {path} with a non-matching If-None-Match"
        );
        assert_eq!(stale.body, first.body, "GET {path}: body with a stale tag");
        tags.insert(path.clone(), etag);
    }
    let distinct: BTreeSet<&String> = tags.values().collect();
    assert_eq!(
        distinct.len(),
        tags.len(),
        "different feeds share an ETag: {tags:#?}"
    );
}

/// The RSS item whose description has a `<script>`, an `onclick` and root-relative href/src
/// comes out clean and absolute in every format.
#[test]
fn html_is_sanitized_and_relative_urls_made_absolute() {
    let stack = Stack::start();
    let dirty = ALL_NEWEST_FIRST
        .iter()
        .find(|e| e.guid == DIRTY_GUID)
        .expect("dirty fixture entry");
    for format in FORMATS {
        for path in [
            finance_path(format),
            format!("/sources/{CS_ID}.{}", format.ext()),
        ] {
            let got = get_feed(&stack, &path, format);
            let entry = got
                .iter()
                .find(|s| s.link == dirty.link)
                .unwrap_or_else(|| panic!("GET {path}: no entry with link {}", dirty.link));
            let html = &entry.html;
            assert!(
                html.contains("监管新规全文"),
                "GET {path}: the description's text is gone: {html:?}"
            );
            for banned in ["<script", "xss-canary", "onclick", "steal()"] {
                assert!(
                    !html.to_lowercase().contains(banned),
                    "GET {path}: {banned:?} survived sanitizing: {html:?}"
                );
            }
            for abs in [DIRTY_ABS_HREF, DIRTY_ABS_SRC] {
                assert!(
                    html.contains(abs),
                    "GET {path}: expected {abs} (resolved against the item link) in {html:?}"
                );
            }
            for rel in ["href=\"/", "src=\"/", "href='/", "src='/"] {
                assert!(
                    !html.contains(rel),
                    "GET {path}: a relative URL ({rel}) is left in {html:?}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Refetching
// ---------------------------------------------------------------------------------------------

/// First fetch stores everything; a conditional refetch is `not modified`; an unconditional
/// refetch stores nothing new; a changed title under the same guid is one update, and the
/// served feeds show the new title once and the old one nowhere.
#[test]
fn refetch_never_duplicates_and_a_changed_title_updates_in_place() {
    let fixtures = FixtureServer::start();
    let dir = tempfile::tempdir().expect("temp folder");
    let listen = free_addr();
    let sources = [
        Source::fixture(&fixtures, CS_ID),
        Source::fixture(&fixtures, CAIXIN_ID),
        Source::fixture(&fixtures, TECH_ID),
    ];
    let config = write_config(&dir.path().join("conf"), listen, &sources);
    let ok = |new, updated, unchanged| FetchStatus::Ok {
        new,
        updated,
        unchanged,
    };
    let fetch = |label: &str| {
        let (code, stdout, stderr) = run_fetch(&config, &[]);
        assert_eq!(
            code, 0,
            "{label}: exit code\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        let lines = parse_fetch_output(&stdout);
        assert_eq!(
            lines.len(),
            3,
            "{label}: one line per source expected\n{stdout}"
        );
        (lines, stdout)
    };

    // 1. First fetch: everything is new.
    let (lines, stdout) = fetch("first fetch");
    assert_eq!(lines[CS_ID], ok(4, 0, 0), "first fetch, {CS_ID}\n{stdout}");
    assert_eq!(
        lines[CAIXIN_ID],
        ok(3, 0, 0),
        "first fetch, {CAIXIN_ID}\n{stdout}"
    );
    assert_eq!(
        lines[TECH_ID],
        ok(3, 0, 0),
        "first fetch, {TECH_ID}\n{stdout}"
    );

    // 2. Second fetch: the fetcher sends the stored ETag, the server answers 304.
    let (lines, stdout) = fetch("second fetch");
    for id in [CS_ID, CAIXIN_ID, TECH_ID] {
        assert_eq!(
            lines[id],
            FetchStatus::NotModified,
            "second fetch, {id}\n{stdout}"
        );
    }
    let last = fixtures
        .hits(CS_FILE)
        .pop()
        .expect("the RSS fixture was requested");
    assert_eq!(
        last.if_none_match.as_deref(),
        Some(etag_of(&fixtures.get(CS_FILE)).as_str()),
        "second fetch should send the ETag of the first response in If-None-Match"
    );

    // 3. Same bodies, but the server ignores If-None-Match: nothing new, nothing updated.
    fixtures.set_conditional(false);
    let (lines, stdout) = fetch("unconditional refetch");
    assert_eq!(
        lines[CS_ID],
        ok(0, 0, 4),
        "unconditional refetch, {CS_ID}\n{stdout}"
    );
    assert_eq!(
        lines[CAIXIN_ID],
        ok(0, 0, 3),
        "unconditional refetch, {CAIXIN_ID}\n{stdout}"
    );
    assert_eq!(
        lines[TECH_ID],
        ok(0, 0, 3),
        "unconditional refetch, {TECH_ID}\n{stdout}"
    );
    fixtures.set_conditional(true);

    // 4. One title changes under the same guid.
    let original = String::from_utf8(fixtures.get(CS_FILE)).expect("RSS fixture is UTF-8");
    assert_eq!(original.matches(R2_OLD_TITLE).count(), 1);
    fixtures.set(CS_FILE, original.replace(R2_OLD_TITLE, R2_NEW_TITLE));
    let (lines, stdout) = fetch("fetch after title change");
    assert_eq!(
        lines[CS_ID],
        ok(0, 1, 3),
        "fetch after title change, {CS_ID}\n{stdout}"
    );
    assert_eq!(lines[CAIXIN_ID], FetchStatus::NotModified, "{stdout}");
    assert_eq!(lines[TECH_ID], FetchStatus::NotModified, "{stdout}");

    // 5. The new body's ETag is the one remembered now.
    let (lines, stdout) = fetch("fetch after the update");
    assert_eq!(
        lines[CS_ID],
        FetchStatus::NotModified,
        "the ETag of the changed body should be stored\n{stdout}"
    );

    // 6. Served: the new title once, the old one nowhere, nothing twice.
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    let with_new_title = |list: Vec<Expected>| -> Vec<Expected> {
        list.into_iter()
            .map(|mut e| {
                if e.guid == R2_GUID {
                    e.title = R2_NEW_TITLE;
                }
                e
            })
            .collect()
    };
    for format in FORMATS {
        for (path, expected) in [
            (
                finance_path(format),
                with_new_title(expected_in_category(FINANCE)),
            ),
            (
                format!("/feeds/all.{}", format.ext()),
                with_new_title(ALL_NEWEST_FIRST.to_vec()),
            ),
        ] {
            let resp = http_get(&serve.url(&path));
            assert_eq!(resp.status, 200, "GET {path}\n{}", serve.logs());
            assert!(
                !resp.body.contains(R2_OLD_TITLE),
                "GET {path}: the old title is still served"
            );
            let got = served::parse(format, &resp.body);
            let new_count = got.iter().filter(|s| s.title == R2_NEW_TITLE).count();
            assert_eq!(new_count, 1, "GET {path}: entries titled {R2_NEW_TITLE:?}");
            let titles: Vec<&str> = got.iter().map(|s| s.title.as_str()).collect();
            let want: Vec<&str> = expected.iter().map(|e| e.title).collect();
            assert_eq!(titles, want, "GET {path}: entries after refetches");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------

/// Malformed XML, HTTP 500 and a refused connection each give one `error:` line with a cause;
/// the good source is still stored and served; a disabled source is not fetched at all.
#[test]
fn broken_sources_each_report_one_error_and_good_ones_are_served() {
    let fixtures = FixtureServer::start();
    let dir = tempfile::tempdir().expect("temp folder");
    let listen = free_addr();
    let refused_url = format!("http://127.0.0.1:{}/feed.xml", free_port());
    let sources = [
        Source::fixture(&fixtures, TECH_ID),
        Source::new(
            "broken-xml",
            "Broken XML",
            &fixtures.url(MALFORMED_FILE),
            TECH,
        ),
        Source::new(
            "broken-500",
            "Always 500",
            &fixtures.url(STATUS_500_PATH),
            TECH,
        ),
        Source::new("broken-refused", "Nobody home", &refused_url, TECH),
        Source::new("dormant", "Disabled", &fixtures.url("/dormant.xml"), TECH).enabled(false),
    ];
    let config = write_config(&dir.path().join("conf"), listen, &sources);

    // Fetching only the good source succeeds and prints only its line.
    let (code, stdout, stderr) = run_fetch(&config, &[TECH_ID]);
    assert_eq!(
        code, 0,
        "fetch {TECH_ID}: exit code\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let lines = parse_fetch_output(&stdout);
    assert_eq!(
        lines.keys().collect::<Vec<_>>(),
        [TECH_ID],
        "fetch {TECH_ID}: lines\n{stdout}"
    );
    assert_eq!(
        lines[TECH_ID],
        FetchStatus::Ok {
            new: 3,
            updated: 0,
            unchanged: 0
        }
    );

    // Fetching everything: exit 1, one line per enabled source.
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(
        code, 1,
        "fetch with broken sources: exit code\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let lines = parse_fetch_output(&stdout);
    let ids: BTreeSet<&str> = lines.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        BTreeSet::from([TECH_ID, "broken-xml", "broken-500", "broken-refused"]),
        "one line per enabled source\n{stdout}"
    );
    assert!(
        matches!(
            lines[TECH_ID],
            FetchStatus::Ok { new: 0, .. } | FetchStatus::NotModified
        ),
        "the good source still fetches fine: {:?}",
        lines[TECH_ID]
    );
    let cause = |id: &str| -> String {
        match &lines[id] {
            FetchStatus::Error(cause) => cause.clone(),
            other => panic!("{id} should have an error: line, got {other:?}\n{stdout}"),
        }
    };
    let c500 = cause("broken-500");
    assert!(
        c500.contains("500"),
        "broken-500 cause should name HTTP 500: {c500:?}"
    );
    let refused = cause("broken-refused");
    assert!(
        refused.to_lowercase().contains("refused"),
        "broken-refused cause should say the connection was refused: {refused:?}"
    );
    let malformed = cause("broken-xml");
    assert!(
        ["malformed", "xml", "parse", "syntax"]
            .iter()
            .any(|w| malformed.to_lowercase().contains(w)),
        "broken-xml cause should say the feed/XML is malformed: {malformed:?}"
    );
    assert!(
        fixtures.hits("/dormant.xml").is_empty(),
        "a disabled source was fetched"
    );

    // The good source's entries are served.
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    for format in FORMATS {
        for path in [
            format!("/feeds/{TECH}.{}", format.ext()),
            format!("/sources/{TECH_ID}.{}", format.ext()),
        ] {
            let resp = http_get(&serve.url(&path));
            assert_eq!(resp.status, 200, "GET {path}\n{}", serve.logs());
            let got = served::parse(format, &resp.body);
            assert_entries(&path, format, &got, &expected_for(&[TECH_ID]));
        }
    }
    assert!(
        serve.is_running(),
        "serve died with broken sources configured\n{}",
        serve.logs()
    );
}

/// Whether `word` occurs in `text` as a whole word (so "id" in "invalid" does not count).
fn names_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .any(|w| w == word)
}

fn bad_config_sources(fixtures: &FixtureServer) -> String {
    format!(
        "[server]\nlisten = \"{listen}\"\n\n[storage]\npath = \"tributary.db\"\n\n\
         [defaults]\nschedule = \"every 15m\"\n\n\
         [[sources]]\nid = \"good-one\"\nname = \"Good\"\nurl = \"{good}\"\ncategory = \"tech\"\n",
        listen = free_addr(),
        good = fixtures.url(TECH_FILE),
    )
}

/// Two sources with the same id: exit 2, stderr names the key `id` and the source id, and
/// nothing is fetched.
#[test]
fn duplicate_source_id_is_a_fatal_config_error() {
    let fixtures = FixtureServer::start();
    let dir = tempfile::tempdir().expect("temp folder");
    let mut text = bad_config_sources(&fixtures);
    for n in 1..=2 {
        text.push_str(&format!(
            "\n[[sources]]\nid = \"dup-source\"\nname = \"Dup {n}\"\nurl = \"{}\"\ncategory = \"tech\"\n",
            fixtures.url(&format!("/dup-{n}.xml"))
        ));
    }
    let config = write_config_text(&dir.path().join("conf"), &text);
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(
        code, 2,
        "duplicate id: exit code\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("dup-source"),
        "stderr should name the duplicated id: {stderr:?}"
    );
    assert!(
        names_word(&stderr, "id"),
        "stderr should name the key `id`: {stderr:?}"
    );
    assert!(
        stdout.trim().is_empty(),
        "no source lines on a fatal config error: {stdout:?}"
    );
    assert!(
        fixtures.hits(TECH_FILE).is_empty()
            && fixtures.hits("/dup-1.xml").is_empty()
            && fixtures.hits("/dup-2.xml").is_empty(),
        "sources were fetched although the config is invalid"
    );
}

/// An unparseable schedule: `fetch` exits 2 naming the key and the source; `serve` refuses to
/// start.
#[test]
fn bad_schedule_is_a_fatal_config_error() {
    let fixtures = FixtureServer::start();
    let dir = tempfile::tempdir().expect("temp folder");
    let mut text = bad_config_sources(&fixtures);
    text.push_str(&format!(
        "\n[[sources]]\nid = \"odd-schedule\"\nname = \"Odd\"\nurl = \"{}\"\ncategory = \"tech\"\nschedule = \"every banana\"\n",
        fixtures.url(CS_FILE)
    ));
    let config = write_config_text(&dir.path().join("conf"), &text);
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(
        code, 2,
        "bad schedule: exit code\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        names_word(&stderr, "schedule") && stderr.contains("odd-schedule"),
        "stderr should name the key `schedule` and the source `odd-schedule`: {stderr:?}"
    );
    assert!(
        fixtures.hits(TECH_FILE).is_empty() && fixtures.hits(CS_FILE).is_empty(),
        "sources were fetched although the config is invalid"
    );

    let mut cmd = tributary_command(&config);
    cmd.arg("serve");
    let (code, _stdout, stderr) = run_bounded(cmd, Duration::from_secs(30));
    assert_ne!(code, 0, "serve with a bad schedule should exit non-zero");
    assert!(
        stderr.contains("odd-schedule"),
        "serve's stderr should name the source: {stderr:?}"
    );
}

/// `[storage] path = "data/tributary.db"` lands beside the config, whatever the working
/// directory.
#[test]
fn relative_storage_path_resolves_against_the_config_folder() {
    if sqlite_only("where SQLite's file lands; a PostgreSQL store has no path") {
        return;
    }
    let fixtures = FixtureServer::start();
    let dir = tempfile::tempdir().expect("temp folder");
    let conf_dir = dir.path().join("etc");
    let text = config_text(
        free_addr(),
        "data/tributary.db",
        &[Source::fixture(&fixtures, TECH_ID)],
    );
    let config = write_config_text(&conf_dir, &text);
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(
        code, 0,
        "fetch: exit code\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let db = conf_dir.join("data/tributary.db");
    assert!(
        db.is_file(),
        "expected the database at {} (relative to the config's folder); the folder holds {:?}",
        db.display(),
        fs::read_dir(&conf_dir)
            .map(|rd| rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .collect::<Vec<_>>())
            .unwrap_or_default()
    );
    let conn = rusqlite::Connection::open(&db).expect("opening the database");
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .expect("reading sqlite_master");
    assert!(tables > 0, "the database has no tables");
    let cwd = dir.path().join("elsewhere-cwd");
    assert!(
        !cwd.join("data").exists() && !cwd.join("tributary.db").exists(),
        "storage was created relative to the working directory"
    );
}

/// The harness's parser of `fetch` lines accepts exactly the documented shapes (so the
/// other tests' line checks mean what they say).
#[test]
fn fetch_lines_have_the_documented_shape() {
    assert_eq!(
        common::parse_fetch_line("a-b: ok new=3 updated=1 unchanged=0 (12 ms)"),
        (
            "a-b".to_string(),
            FetchStatus::Ok {
                new: 3,
                updated: 1,
                unchanged: 0
            }
        )
    );
    assert_eq!(
        common::parse_fetch_line("x: not modified (0 ms)"),
        ("x".to_string(), FetchStatus::NotModified)
    );
    assert_eq!(
        common::parse_fetch_line("x: error: HTTP 500 Internal Server Error"),
        (
            "x".to_string(),
            FetchStatus::Error("HTTP 500 Internal Server Error".into())
        )
    );
    for bad in ["x: ok new=1 (3 ms)", "x: fine", "x: not modified"] {
        assert!(
            std::panic::catch_unwind(|| common::parse_fetch_line(bad)).is_err(),
            "{bad:?} should be rejected"
        );
    }
}

/// The fixture server itself: feed Content-Types, a strong ETag, 304 on a match, a body that
/// can be swapped (with a new ETag), and the 500 route.
#[test]
fn fixture_server_behaves_like_a_publisher() {
    let fixtures = FixtureServer::start();
    for (path, ct) in [
        (CS_FILE, "application/rss+xml"),
        (TECH_FILE, "application/atom+xml"),
        (CAIXIN_FILE, "application/feed+json"),
    ] {
        let resp = http_get(&fixtures.url(path));
        assert_eq!(resp.status, 200, "GET {path}");
        assert!(resp
            .header("content-type")
            .unwrap_or_default()
            .starts_with(ct));
        let etag = resp.header("etag").expect("fixture ETag");
        assert!(etag.starts_with('"'), "strong ETag expected: {etag}");
        let cached = http_get_with(&fixtures.url(path), &[("If-None-Match", &etag)]);
        assert_eq!(cached.status, 304, "GET {path} with its ETag");
    }
    let before = http_get(&fixtures.url(CS_FILE)).header("etag");
    fixtures.set(CS_FILE, "changed");
    let after = http_get(&fixtures.url(CS_FILE));
    assert_eq!(after.body, "changed");
    assert_ne!(after.header("etag"), before, "ETag must follow the body");
    fixtures.set_conditional(false);
    let etag = after.header("etag").expect("ETag");
    let forced = http_get_with(&fixtures.url(CS_FILE), &[("If-None-Match", &etag)]);
    assert_eq!(forced.status, 200, "conditional GET disabled");
    assert_eq!(http_get(&fixtures.url(STATUS_500_PATH)).status, 500);
    assert_eq!(fixtures.hits(STATUS_500_PATH).len(), 1);
}

/// Two items of one feed with their own guids are two entries even when their links are the
/// same page (fragment links, podcast items linking to the show's home page).
#[test]
fn items_with_distinct_guids_sharing_a_link_stay_apart() {
    let server = FixtureServer::start();
    let feed = r#"<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>
        <title>t</title><link>http://example.com/</link><description>d</description>
        <item><title>First post</title><link>http://example.com/2024/01/01.html#a1</link><guid isPermaLink="false">a1</guid></item>
        <item><title>Second post</title><link>http://example.com/2024/01/01.html#a2</link><guid isPermaLink="false">a2</guid></item>
        <item><title>Episode 3</title><link>http://example.com/</link><guid isPermaLink="false">ep3</guid></item>
        <item><title>Episode 4</title><link>http://example.com/</link><guid isPermaLink="false">ep4</guid></item>
        </channel></rss>"#;
    server.set("/shared-links.xml", feed);
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = free_addr();
    let config = write_config(
        dir.path(),
        listen,
        &[Source::new(
            "links",
            "Links",
            &server.url("/shared-links.xml"),
            "tech",
        )],
    );
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("new=4 updated=0"), "{stdout}");
    server.set_conditional(false);
    let (_, stdout, _) = run_fetch(&config, &[]);
    assert!(
        stdout.contains("new=0 updated=0 unchanged=4"),
        "a refetch: {stdout}"
    );
}
