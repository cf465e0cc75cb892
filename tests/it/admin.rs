//! Sources added, removed, enabled and disabled without editing TOML: `tributary add` (the
//! feed a page names, refused when there is none or it is already configured), `remove`,
//! `enable`, `disable`; the same over the admin API and the console's form, token and
//! same-origin only; and a running daemon that picks each change up without a restart.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::common::*;

const TOKEN: &str = "a-long-admin-token-0123456789";

fn run(config: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = tributary_command(config);
    cmd.args(args);
    run_bounded(cmd, FETCH_DEADLINE)
}

/// A page naming the tech feed, a page naming none, and the feed itself.
fn site(fixtures: &FixtureServer) {
    fixtures.set(
        "/blog/index.html",
        format!(
            "<!doctype html><html><head><title>Blog</title>\
             <link rel=\"alternate\" type=\"application/atom+xml\" href=\"{TECH_FILE}\"></head>\
             <body>posts</body></html>"
        ),
    );
    fixtures.set(
        "/plain.html",
        "<!doctype html><title>x</title><p>no feed here</p>",
    );
    fixtures.set_content_type("/blog/index.html", "text/html; charset=utf-8");
    fixtures.set_content_type("/plain.html", "text/html; charset=utf-8");
}

#[test]
fn add_finds_the_feed_a_page_names_and_refuses_what_it_cannot_add() {
    let fixtures = FixtureServer::start();
    site(&fixtures);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        free_addr(),
        &[Source::fixture(&fixtures, CS_ID)],
    );
    let before = fs::read(&config).unwrap();

    // A page without a feed: said so, nothing changed.
    let (code, _, err) = run(&config, &["add", &fixtures.url("/plain.html")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("names no feed"), "{err}");
    assert_eq!(fs::read(&config).unwrap(), before, "config untouched");

    // A page that names its feed: the feed is added, named by its title.
    let (code, out, err) = run(
        &config,
        &[
            "add",
            &fixtures.url("/blog/index.html"),
            "--category",
            "tech",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&fixtures.url(TECH_FILE)), "{out}");
    let text = fs::read_to_string(&config).unwrap();
    assert!(
        text.starts_with(std::str::from_utf8(&before).unwrap()),
        "appended, not rewritten"
    );
    let loaded = tributary::config::Config::load(&config).expect("still loads");
    let added = loaded
        .sources
        .iter()
        .find(|s| s.url.as_str() == fixtures.url(TECH_FILE))
        .expect("added");
    assert_eq!(added.name, TECH_NAME);
    assert_eq!(added.category, "tech");

    // The same feed again, by its page or its URL: refused with the id that has it.
    for url in [fixtures.url("/blog/index.html"), fixtures.url(CS_FILE)] {
        let (code, _, err) = run(&config, &["add", &url]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("already configured as source"), "{err}");
    }
    let (code, _, err) = run(&config, &["add", "example.com/feed.xml"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("did you mean `https://example.com/feed.xml`?"),
        "{err}"
    );

    // disable, enable, remove edit the file in place.
    let id = added.id.clone();
    assert_eq!(run(&config, &["disable", &id]).0, 0);
    assert!(
        !tributary::config::Config::load(&config)
            .unwrap()
            .source(&id)
            .unwrap()
            .enabled
    );
    assert_eq!(run(&config, &["enable", &id]).0, 0);
    assert!(
        tributary::config::Config::load(&config)
            .unwrap()
            .source(&id)
            .unwrap()
            .enabled
    );
    assert_eq!(run(&config, &["remove", &id]).0, 0);
    assert!(tributary::config::Config::load(&config)
        .unwrap()
        .source(&id)
        .is_none());
    let (code, _, err) = run(&config, &["remove", &id]);
    assert_eq!(code, 1);
    assert!(err.contains("no source"), "{err}");
}

#[test]
fn the_daemon_picks_up_edits_and_the_console_writes_with_the_token_only() {
    let fixtures = FixtureServer::start();
    site(&fixtures);
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let config = write_config(dir.path(), listen, &[Source::fixture(&fixtures, CS_ID)]);
    with_admin_token(&config, TOKEN);
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    let form = serve.url("/sources");
    let urlencoded = [("content-type", "application/x-www-form-urlencoded")];
    let add = format!(
        "action=add&category=tech&url={}",
        pct(&fixtures.url("/blog/index.html"))
    );

    // No token, a wrong one, or a post from another site: refused, nothing written.
    let before = fs::read(&config).unwrap();
    assert_eq!(http_send("POST", &form, &urlencoded, &add).status, 401);
    assert_eq!(
        http_send("POST", &form, &urlencoded, &format!("{add}&token=wrong")).status,
        401
    );
    let cross = [urlencoded[0], ("origin", "http://evil.example")];
    let r = http_send("POST", &form, &cross, &format!("{add}&token={TOKEN}"));
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(fs::read(&config).unwrap(), before);

    // With the token: added, and fetched without a restart.
    let r = http_send("POST", &form, &urlencoded, &format!("{add}&token={TOKEN}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("added"), "{}", r.body);
    let id = tributary::config::Config::load(&config)
        .unwrap()
        .sources
        .iter()
        .find(|s| s.url.as_str() == fixtures.url(TECH_FILE))
        .expect("in the config")
        .id
        .clone();
    let fetched = serve.until(Duration::from_secs(20), || {
        let all = api_sources(&serve);
        let s = all.iter().find(|s| s["id"] == id.as_str())?;
        (s["last_status"] == "ok").then(|| s["entry_count"].as_u64())
    });
    assert_eq!(
        fetched,
        Some(Some(3)),
        "the added source is fetched: {}",
        serve.logs()
    );
    let page = http_get(&serve.url(&format!("/sources/{id}")));
    assert!(page.body.contains("healthy"), "{}", page.body);

    // The API disables it; a `tributary enable` from the shell turns it back on.
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    let r = http_send(
        "POST",
        &serve.url(&format!("/api/sources/{id}/disable")),
        &auth,
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let gone = serve.until(Duration::from_secs(20), || {
        let r = http_post_with(&serve.url(&format!("/api/sources/{id}/refresh")), &auth);
        (r.status == 409).then_some(())
    });
    assert!(
        gone.is_some(),
        "a disabled source is not scheduled: {}",
        serve.logs()
    );
    assert_eq!(run(&config, &["enable", &id]).0, 0);
    let back = serve.until(Duration::from_secs(20), || {
        let r = http_post_with(&serve.url(&format!("/api/sources/{id}/refresh")), &auth);
        (r.status == 202).then_some(())
    });
    assert!(
        back.is_some(),
        "enabled from the shell, scheduled again: {}",
        serve.logs()
    );
    let r = http_send(
        "DELETE",
        &serve.url(&format!("/api/sources/{id}")),
        &[("authorization", "Bearer wrong")],
        "",
    );
    assert_eq!(r.status, 401);
    let r = http_send(
        "DELETE",
        &serve.url(&format!("/api/sources/{id}")),
        &auth,
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(tributary::config::Config::load(&config)
        .unwrap()
        .source(&id)
        .is_none());
}

/// `fetch` prints a source's line when it is done, not when the slowest is: here the slow one
/// never answers before the command is killed, and the fast one's line has already come.
#[test]
fn fetch_prints_each_line_as_its_source_finishes() {
    use std::io::BufRead;
    let fixtures = FixtureServer::start();
    fixtures.set_delay(CAIXIN_FILE, Duration::from_secs(600));
    let dir = tempfile::tempdir().unwrap();
    let sources = [
        Source::fixture(&fixtures, CAIXIN_ID),
        Source::fixture(&fixtures, CS_ID),
    ];
    let config = write_config(dir.path(), free_addr(), &sources);
    let mut cmd = tributary_command(&config);
    cmd.arg("fetch")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("spawn fetch");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a line").expect("UTF-8");
    assert!(first.starts_with(&format!("{CS_ID}: ok new=")), "{first}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the slow source is still being fetched"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // Nothing to fetch is said, not silence.
    let empty = write_config(&dir.path().join("empty"), free_addr(), &[]);
    let (code, out, err) = run_fetch(&empty, &[]);
    assert_eq!((code, out.as_str()), (0, ""));
    assert!(err.contains("nothing to fetch"), "{err}");
}

/// `tributary backup PATH` while the daemon serves: a checked copy that opens as a store with
/// every entry (its search index rebuilt), and never over an existing file.
#[test]
fn a_backup_of_a_live_store_opens_with_every_entry() {
    let fixtures = FixtureServer::start();
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let sources = [
        Source::fixture(&fixtures, CS_ID),
        Source::fixture(&fixtures, TECH_ID),
    ];
    let config = write_config(dir.path(), listen, &sources);
    if backups_are_pg_dumps(&config) {
        return;
    }
    assert_eq!(run_fetch(&config, &[]).0, 0);
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    let copy = dir.path().join("copy.db");
    let (code, out, err) = run(&config, &["backup", copy.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("backed up 7 entries of 2 sources to "),
        "{out}"
    );
    let (code, _, err) = run(&config, &["backup", copy.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("already exists"), "{err}");
    drop(serve);

    // The copy, as the store of another config: the same sources, entries and search.
    let restored = dir.path().join("restored");
    let other = write_config(&restored, free_addr(), &sources);
    let text = fs::read_to_string(&other).unwrap();
    let text = text.replace(
        "path = \"tributary.db\"",
        &format!("path = {:?}", copy.display().to_string()),
    );
    fs::write(&other, text).unwrap();
    let (code, out, _) = run(&other, &["sources", "--wide"]);
    assert_eq!(code, 0);
    let counts: Vec<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .nth(6)
        })
        .collect();
    assert_eq!(counts, ["4", "3"], "{out}");
    let (code, found, _) = run(&other, &["search", "汇率"]);
    assert_eq!(code, 0);
    assert!(found.contains("人民币汇率中间价上调"), "{found}");
}
