//! What a newcomer meets in the first hour, through the binary: one row per mistake (a config
//! or a command), with the exact message or behaviour they get, and `config check` giving the
//! same answer for every config that does not load. README's "Common mistakes" is this table.

use crate::common::*;

/// A config of `[storage]` in a temp folder plus `rest`.
fn config_with(dir: &std::path::Path, rest: &str) -> std::path::PathBuf {
    write_config_text(dir, &format!("[storage]\npath = \"t.db\"\n{rest}"))
}

const PAGE_SOURCE: &str = "[[sources]]\nid = \"a\"\nname = \"A\"\nurl = \"https://a.example/list\"\n\
                           category = \"c\"\nkind = \"html\"\n[sources.html]\ntitle = \"a\"\nlink = \"a\"\n";

/// A feed source `a` with `extra` keys.
fn source_with(extra: &str) -> String {
    format!("[[sources]]\nid = \"a\"\nname = \"A\"\nurl = \"https://a.example/feed\"\ncategory = \"c\"\n{extra}")
}

struct Row {
    what: &'static str,
    config: String,
    args: &'static [&'static str],
    code: i32,
    /// On stderr, exactly (a substring when the message names a temp path).
    said: &'static str,
}

#[test]
fn each_first_hour_mistake_gets_its_answer() {
    let rows = [
        Row {
            what: "a bad CSS selector",
            config: format!("{PAGE_SOURCE}item = \"ul >> li\"\n"),
            args: &["sources"],
            code: 2,
            said: "source \"a\": `html.item`: bad CSS selector \"ul >> li\": a combinator (`>`, `+`, `~` or a space) with nothing after it",
        },
        Row {
            what: "a bad value shows the file's own line, a caret under the key",
            config: format!("{PAGE_SOURCE}item = \"ul >> li\"\n"),
            args: &["sources"],
            code: 2,
            said: "with nothing after it\n   |\n12 | item = \"ul >> li\"\n   | ^^^^\n",
        },
        Row {
            what: "a URL without a scheme",
            config: "[[sources]]\nid = \"a\"\nname = \"A\"\nurl = \"example.com/feed.xml\"\ncategory = \"c\"\n".into(),
            args: &["sources"],
            code: 2,
            said: "source \"a\": `url`: `example.com/feed.xml` has no scheme; did you mean `https://example.com/feed.xml`?",
        },
        Row {
            what: "a schedule that never fires",
            config: source_with("schedule = \"0 0 31 2 *\"\n"),
            args: &["sources"],
            code: 2,
            said: "source \"a\": `schedule`: bad cron expression \"0 0 31 2 *\": it never fires (no date matches it)",
        },
        Row {
            what: "a step larger than its field",
            config: source_with("schedule = \"*/61 * * * *\"\n"),
            args: &["sources"],
            code: 2,
            said: "source \"a\": `schedule`: bad cron expression \"*/61 * * * *\": minutes: a step of 61 (minutes are 0–59)",
        },
        Row {
            what: "an interval in days",
            config: source_with("schedule = \"every 1d\"\n"),
            args: &["sources"],
            code: 0,
            said: "",
        },
        Row {
            what: "an interval in weeks",
            config: source_with("schedule = \"every 2w\"\n"),
            args: &["sources"],
            code: 0,
            said: "",
        },
        Row {
            what: "listen on localhost",
            config: "[server]\nlisten = \"localhost:8099\"\n".into(),
            args: &["sources"],
            code: 0,
            said: "",
        },
        Row {
            what: "listen on a host name",
            config: "[server]\nlisten = \"example.com:80\"\n".into(),
            args: &["sources"],
            code: 2,
            said: "`listen`: \"example.com:80\" is not an address:port (an IP address, `localhost:PORT`, or `0.0.0.0:PORT` for every interface)",
        },
        Row {
            what: "a typo'd key in a source",
            config: source_with("schedul = \"every 5m\"\n"),
            args: &["sources"],
            code: 2,
            said: "in source \"a\": TOML parse error at line 8, column 1\n  |\n8 | schedul = \"every 5m\"\n  | ^^^^^^^\nunknown field `schedul`, expected one of",
        },
        Row {
            what: "a typo'd key suggests the key",
            config: source_with("schedul = \"every 5m\"\n"),
            args: &["sources"],
            code: 2,
            said: "\ndid you mean `schedule`?\n",
        },
        Row {
            what: "a config with no sources",
            config: String::new(),
            args: &["fetch"],
            code: 0,
            said: "has no enabled sources",
        },
    ];
    let mut wrong = Vec::new();
    // `--help` says what the exit statuses mean.
    let dir = tempfile::tempdir().unwrap();
    let mut help = tributary_command(&config_with(dir.path(), ""));
    help.arg("--help");
    let (code, out, _) = run_bounded(help, FETCH_DEADLINE);
    if code != 0 || !out.contains("Exit status: 0 success; 1 the command ran but found a problem") {
        wrong.push(format!("--help: exit {code}:\n{out}"));
    }
    // A missing config: the path once, and how to start.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.toml");
    let (code, _, err) = run_bounded(
        {
            let mut c = tributary_command(&missing);
            c.arg("sources");
            c
        },
        FETCH_DEADLINE,
    );
    let said = format!(
        "tributary: {}: no such file; name the config with --config FILE or $TRIBUTARY_CONFIG \
         (a checkout ships config/tributary.toml to start from)\n",
        missing.display()
    );
    if (code, err.as_str()) != (2, said.as_str()) {
        wrong.push(format!("a missing config: exit {code}, said {err:?}"));
    }
    // A database that is not SQLite: the path and one cause, once; the file untouched.
    let junk: Vec<u8> = (0..8192u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(dir.path().join("t.db"), &junk).unwrap();
    let config = config_with(dir.path(), "");
    let (code, _, err) = run_bounded(
        {
            let mut c = tributary_command(&config);
            c.arg("sources");
            c
        },
        FETCH_DEADLINE,
    );
    let db = dir.path().join("t.db");
    let said = format!(
        "tributary: [storage] path = {}: not an SQLite database (another file, encrypted, or \
         damaged); it was not changed\n",
        db.display()
    );
    if (code, err.as_str()) != (2, said.as_str()) || std::fs::read(&db).unwrap() != junk {
        wrong.push(format!(
            "a database that is not SQLite: exit {code}, said {err:?}"
        ));
    }
    for row in &rows {
        let dir = tempfile::tempdir().unwrap();
        let config = config_with(dir.path(), &row.config);
        let mut cmd = tributary_command(&config);
        cmd.args(row.args);
        let (code, _, err) = run_bounded(cmd, FETCH_DEADLINE);
        if code != row.code || !err.contains(row.said) {
            wrong.push(format!("{}: exit {code}, said {err:?}", row.what));
        }
        // `config check` refuses every bad config with the same words.
        if row.code == 2 && row.args == ["sources"] {
            let mut check = tributary_command(&config);
            check.args(["config", "check"]);
            let (code, _, err) = run_bounded(check, FETCH_DEADLINE);
            if code != 2 || !err.contains(row.said) {
                wrong.push(format!(
                    "config check, {}: exit {code}, said {err:?}",
                    row.what
                ));
            }
        }
    }
    // On the shipped config it prints the summary.
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tributary.toml");
    let mut check = tributary_command(&shipped);
    check.args(["config", "check", "--source", "cs-hg"]);
    let (code, out, err) = run_bounded(check, FETCH_DEADLINE);
    let summary = [
        "tributary.toml: ok: ",
        " sources (",
        "  金融: ",
        "cs-hg: schedule ",
        "; next runs ",
    ];
    if code != 0 || summary.iter().any(|s| !out.contains(s)) {
        wrong.push(format!(
            "config check on the shipped config: exit {code}:\n{out}{err}"
        ));
    }

    // An empty feed claims no date: no Unix epoch in the document, no Last-Modified.
    let fixtures = FixtureServer::start();
    fixtures.set(
        "/empty.xml",
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>E</title></channel></rss>",
    );
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let config = write_config(
        dir.path(),
        listen,
        &[Source::new("e", "E", &fixtures.url("/empty.xml"), "c")],
    );
    run_fetch(&config, &[]);
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    for ext in ["atom", "rss", "json"] {
        let r = http_get(&serve.url(&format!("/sources/e.{ext}")));
        assert_eq!(r.status, 200);
        if r.body.contains("1970") || r.header("last-modified").is_some() {
            wrong.push(format!(
                "an empty feed (.{ext}) claims a date: {:?} {}",
                r.header("last-modified"),
                r.body
            ));
        }
    }

    // `sources` fits a terminal: a line too long ends in `…`; `--wide` shows it whole.
    let dir = tempfile::tempdir().unwrap();
    let name = format!("Long {}", "名".repeat(80));
    let config = write_config(
        dir.path(),
        free_addr(),
        &[Source::new(
            "long",
            &name,
            &fixtures.url(STATUS_500_PATH),
            "c",
        )],
    );
    run_fetch(&config, &[]);
    let list = |wide: bool| {
        let mut c = tributary_command(&config);
        c.arg("sources").env_remove("COLUMNS");
        if wide {
            c.arg("--wide");
        }
        run_bounded(c, FETCH_DEADLINE).1
    };
    let cut = list(false);
    let widest = cut.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    if widest > 120 || !cut.contains('…') {
        wrong.push(format!("sources is {widest} wide:\n{cut}"));
    }
    if !list(true).contains("HTTP 500") || list(true).contains('…') {
        wrong.push(format!("sources --wide cut the status:\n{}", list(true)));
    }

    // `dedupe --explain` on an entry two sources carry (the same item): it names both and
    // the key that made them one entry.
    let dir = tempfile::tempdir().unwrap();
    let twice = [
        Source::new("one", "One", &fixtures.url("/twice/a.xml"), "c"),
        Source::new("two", "Two", &fixtures.url("/twice/b.xml"), "c"),
    ];
    let item =
        "<item><title>央行开展逆回购操作</title><link>https://news.example.cn/a/1.html</link>\
                <pubDate>Mon, 02 Mar 2026 08:00:00 +0800</pubDate></item>";
    for path in ["/twice/a.xml", "/twice/b.xml"] {
        fixtures.set(
            path,
            format!("<rss version=\"2.0\"><channel><title>T</title>{item}</channel></rss>"),
        );
    }
    let config = write_config(dir.path(), free_addr(), &twice);
    run_fetch(&config, &[]);
    let mut search = tributary_command(&config);
    search.args(["search", "逆回购"]);
    let (_, found, _) = run_bounded(search, FETCH_DEADLINE);
    let id = found
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let mut explain = tributary_command(&config);
    explain.args(["dedupe", "--explain", &id]);
    let (code, out, _) = run_bounded(explain, FETCH_DEADLINE);
    if code != 0
        || !out.contains(
            "one entry carried by 2 sources (one, two): the same key link:news.example.cn/a/1.html",
        )
    {
        wrong.push(format!("dedupe --explain {id}: exit {code}:\n{out}"));
    }

    // A schedule shortened in the config takes effect at the next reload, not after the run
    // planned with the old one.
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let slow = [Source::fixture(&fixtures, CS_ID).schedule("every 6h")];
    let config = write_config(dir.path(), listen, &slow);
    fixtures.set(CS_FILE, fixture_bytes(CS_FILE));
    run_fetch(&config, &[]);
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    let fast = [Source::fixture(&fixtures, CS_ID).schedule("every 1s")];
    std::fs::write(&config, config_text(listen, "tributary.db", &fast)).unwrap();
    let fetched = serve.until(std::time::Duration::from_secs(20), || {
        (serve.lines_with(&["fetched", CS_ID]) > 0).then_some(())
    });
    if fetched.is_none() {
        wrong.push(format!(
            "a shortened schedule waited for the old one:\n{}",
            serve.logs()
        ));
    }

    // A daily cron source whose run failed is retried within minutes, not the next day.
    let dir = tempfile::tempdir().unwrap();
    let daily = [
        Source::new("daily", "Daily", &fixtures.url(STATUS_500_PATH), "c").schedule("0 7 * * *"),
    ];
    let config = write_config(dir.path(), free_addr(), &daily);
    run_fetch(&config, &[]);
    let mut list = tributary_command(&config);
    list.args(["sources", "--wide"]);
    let (_, out, _) = run_bounded(list, FETCH_DEADLINE);
    let times: Vec<chrono::NaiveDateTime> = out
        .lines()
        .find(|l| l.starts_with("daily "))
        .map(|l| {
            l.split("  ")
                .filter_map(|cell| {
                    chrono::NaiveDateTime::parse_from_str(cell.trim(), "%Y-%m-%d %H:%M:%S UTC").ok()
                })
                .collect()
        })
        .unwrap_or_default();
    let retry = (times.len() == 2).then(|| (times[1] - times[0]).num_seconds());
    if retry != Some(300) {
        wrong.push(format!(
            "a failed daily cron source is retried after {retry:?} s:\n{out}"
        ));
    }

    // `/api/sources` after a `tributary fetch` shows the run the daemon waits for.
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let config = write_config(dir.path(), listen, &[Source::fixture(&fixtures, CS_ID)]);
    run_fetch(&config, &[]);
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    let all = api_sources(&serve);
    let next = time_of(&source_in(&all, CS_ID)["next_run"]);
    let last = time_of(&source_in(&all, CS_ID)["last_fetch"]);
    if !matches!((next, last), (Some(n), Some(l)) if n > l) {
        wrong.push(format!(
            "/api/sources after fetch: next_run {next:?}, last_fetch {last:?}"
        ));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
