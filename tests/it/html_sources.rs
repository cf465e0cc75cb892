//! Page sources (`kind = "html"`) end to end: the real binary scrapes the miniature of 中证网
//! in `tests/fixtures/cs.com.cn/` (same paths as the real site, served on 127.0.0.1 as plain
//! `text/html`), stores what it finds, and serves it back; `check` dry-runs a source.
//!
//! What each list item must become is the table in `tests/it/common/cs.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveDateTime, SecondsFormat, TimeDelta};
use serde_json::Value;

use crate::common::cs::{self, Bytes, Channel, DateFrom, Doc, CHANNELS, GSXW, GSYJ, HG, JSBD};
use crate::common::served::{self, unix, FORMATS};
use crate::common::*;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

fn start_site() -> FixtureServer {
    FixtureServer::start_site(&cs::site_dir())
}

/// A config with `channels` on `site`. cs-jsbd and cs-gsyj name their zone; the others take
/// it from `[defaults]`.
fn channels_config(
    dir: &Path,
    listen: std::net::SocketAddr,
    site: &FixtureServer,
    channels: &[Channel],
) -> PathBuf {
    let mut text = cs::config_head(listen, "Asia/Shanghai");
    for c in channels {
        let tz = matches!(c.id, "cs-jsbd" | "cs-gsyj").then_some("Asia/Shanghai");
        text.push_str(&cs::html_source_toml(
            c.id,
            c.name,
            &site.url(c.path),
            tz,
            cs::CS_TABLES,
        ));
    }
    write_config_text(dir, &text)
}

/// Runs `fetch` (all sources), asserts exit 0, and returns the parsed lines and stdout.
fn fetch_all_ok(config: &Path, label: &str) -> (HashMap<String, FetchStatus>, String) {
    let (code, stdout, stderr) = run_fetch(config, &[]);
    assert_eq!(
        code, 0,
        "{label}: exit code\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (parse_fetch_output(&stdout), stdout)
}

/// The first fetch of `channels`: one `ok` line each, nothing updated, every list item counted
/// once per channel, and each document new exactly once across channels (a document listed by
/// two channels is new for one and a duplicate for the other, whichever runs first).
fn assert_first_fetch(lines: &HashMap<String, FetchStatus>, stdout: &str, channels: &[Channel]) {
    let ids: BTreeSet<&str> = lines.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = channels.iter().map(|c| c.id).collect();
    assert_eq!(ids, want, "one line per channel\n{stdout}");
    let mut total_new = 0;
    for c in channels {
        match &lines[c.id] {
            FetchStatus::Ok {
                new,
                updated,
                unchanged,
            } => {
                assert_eq!(
                    *updated, 0,
                    "{}: nothing can be updated yet\n{stdout}",
                    c.id
                );
                assert_eq!(
                    (new + unchanged) as usize,
                    c.listings.len(),
                    "{}: new + unchanged should count its {} list items (no decoys)\n{stdout}",
                    c.id,
                    c.listings.len()
                );
                total_new += new;
            }
            other => panic!("{}: expected an ok line, got {other:?}\n{stdout}", c.id),
        }
    }
    assert_eq!(
        total_new as usize,
        cs::docs_of(channels).len(),
        "each document should be new once across channels (same docid = one entry)\n{stdout}"
    );
}

/// Fixture site + config + one good fetch + daemon.
struct Scraped {
    // Field order is drop order: daemon first.
    serve: ServeGuard,
    site: FixtureServer,
    _dir: tempfile::TempDir,
}

impl Scraped {
    fn start(channels: &[Channel]) -> Scraped {
        let site = start_site();
        let dir = tempfile::tempdir().expect("temp folder");
        let listen = free_addr();
        let config = channels_config(&dir.path().join("conf"), listen, &site, channels);
        let (lines, stdout) = fetch_all_ok(&config, "first fetch");
        assert_first_fetch(&lines, &stdout, channels);
        let mut serve = spawn_serve(&config, listen);
        serve.wait_healthz();
        Scraped {
            serve,
            site,
            _dir: dir,
        }
    }

    /// GET `path` from the daemon: 200, and the body (never holding U+FFFD).
    fn body(&self, path: &str) -> String {
        let resp = http_get(&self.serve.url(path));
        assert_eq!(
            resp.status,
            200,
            "GET {path}: status (body {:?})\n{}",
            resp.body,
            self.serve.logs()
        );
        assert!(
            !resp.body.contains('\u{FFFD}'),
            "GET {path}: U+FFFD in the served feed (a page was decoded with the wrong charset)\n{}",
            resp.body
        );
        resp.body
    }

    /// The items of a served JSON Feed.
    fn json_items(&self, path: &str) -> Vec<Value> {
        let body = self.body(path);
        let doc: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}\n{body}"));
        doc["items"]
            .as_array()
            .unwrap_or_else(|| panic!("GET {path}: no items array\n{body}"))
            .clone()
    }

    /// Absolute URL of a site path on the fixture server.
    fn abs(&self, path: &str) -> String {
        self.site.url(path)
    }
}

fn category_path(ext: &str) -> String {
    format!("/feeds/{}.{ext}", pct("金融"))
}

fn str_of<'a>(item: &'a Value, key: &str) -> Option<&'a str> {
    item.get(key).and_then(Value::as_str)
}

/// Summary and body of a JSON Feed item, concatenated.
fn item_html(item: &Value) -> String {
    ["summary", "content_html", "content_text"]
        .iter()
        .filter_map(|k| str_of(item, k))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The one item titled `title`; panics if there are none or several.
fn item_titled<'a>(items: &'a [Value], title: &str, what: &str) -> &'a Value {
    let found: Vec<&Value> = items
        .iter()
        .filter(|i| str_of(i, "title") == Some(title))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{what}: expected exactly one item titled {title:?}; titles: {:?}",
        items
            .iter()
            .map(|i| str_of(i, "title").unwrap_or_default())
            .collect::<Vec<_>>()
    );
    found[0]
}

/// `_tributary.sources` of a JSON Feed item as id → url.
fn item_sources(item: &Value, what: &str) -> BTreeMap<String, String> {
    let sources = item["_tributary"]["sources"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: item without _tributary.sources: {item}"));
    let mut out = BTreeMap::new();
    for s in sources {
        let id = s["id"].as_str().unwrap_or_default().to_string();
        let url = s["url"].as_str().unwrap_or_default().to_string();
        assert!(
            out.insert(id.clone(), url).is_none(),
            "{what}: source {id} listed twice: {item}"
        );
    }
    out
}

/// The expected title list of `docs`.
fn titles(docs: &[&Doc]) -> Vec<&'static str> {
    docs.iter().map(|d| d.title).collect()
}

/// Every `href="…"` / `src="…"` value in `html`.
fn url_attributes(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\"", "href='", "src='"] {
        let quote = attr.chars().last().expect("attr ends with a quote");
        let mut rest = html;
        while let Some(at) = rest.find(attr) {
            let after = &rest[at + attr.len()..];
            let end = after.find(quote).unwrap_or(after.len());
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// `check` output
// ---------------------------------------------------------------------------------------------

/// One item as `check` prints it.
#[derive(Debug, Default, Clone)]
struct CheckItem {
    title: String,
    link: String,
    date: String,
    author: Option<String>,
    content: String,
}

/// Splits `check`'s stdout into items: each starts at a `title: ` line; `link:`, `date:`,
/// `author:` and `content:` lines belong to the item above them; other lines (warnings,
/// headers) are ignored.
fn parse_check(stdout: &str) -> Vec<CheckItem> {
    let mut items: Vec<CheckItem> = Vec::new();
    for line in stdout.lines() {
        let line = line.trim();
        if let Some(title) = line.strip_prefix("title: ") {
            items.push(CheckItem {
                title: title.trim().to_string(),
                ..CheckItem::default()
            });
            continue;
        }
        let Some(item) = items.last_mut() else {
            continue;
        };
        if let Some(v) = line.strip_prefix("link: ") {
            item.link = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("date: ") {
            item.date = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("author: ") {
            item.author = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("content: ") {
            item.content = v.trim().to_string();
        }
    }
    items
}

/// `tributary --config CONFIG check ID [--url URL]` → (exit code, stdout, stderr).
fn run_check(config: &Path, id: &str, url: Option<&str>) -> (i32, String, String) {
    let mut cmd = tributary_command(config);
    cmd.arg("check").arg(id);
    if let Some(url) = url {
        cmd.arg("--url").arg(url);
    }
    run_bounded(cmd, FETCH_DEADLINE)
}

/// `check` printed exactly the channel's list items (no decoys), each with the title, absolute
/// link, UTC date with its local form and provenance, reporter and the opening of the body.
fn assert_check_lists_channel(what: &str, stdout: &str, site: &FixtureServer, c: &Channel) {
    assert!(
        !stdout.contains('\u{FFFD}'),
        "{what}: U+FFFD in check output:\n{stdout}"
    );
    let items = parse_check(stdout);
    let mut got: Vec<&str> = items.iter().map(|i| i.title.as_str()).collect();
    let mut want: Vec<&str> = c.listings.iter().map(|l| cs::doc(l.doc).title).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(
        got, want,
        "{what}: the titles check printed are not the channel's list items\n{stdout}"
    );
    for l in c.listings {
        let d = cs::doc(l.doc);
        let item = items
            .iter()
            .find(|i| i.title == d.title)
            .expect("title present");
        assert_eq!(
            item.link,
            site.url(l.page),
            "{what}: link of {}\n{stdout}",
            d.key
        );
        assert!(
            item.date.starts_with(d.published),
            "{what}: date of {} ({:?}) should be {} (from {:?} Beijing time)\n{stdout}",
            d.key,
            item.date,
            d.published,
            d.local
        );
        assert!(
            item.date.contains(d.local),
            "{what}: date of {} should show the page's own {:?}: {:?}\n{stdout}",
            d.key,
            d.local,
            item.date
        );
        let from = format!("from {}", d.date_from.words());
        assert!(
            item.date.contains(&from),
            "{what}: date of {} should say {from:?}: {:?}\n{stdout}",
            d.key,
            item.date
        );
        match d.author {
            Some(a) => assert_eq!(
                item.author.as_deref(),
                Some(a),
                "{what}: author of {} is the first em of div.artc_info\n{stdout}",
                d.key
            ),
            None => assert!(
                !matches!(item.author.as_deref(), Some(a) if a.contains(cs::SITE_EM)),
                "{what}: {} has no reporter; the outlet is not an author: {:?}",
                d.key,
                item.author
            ),
        }
        assert!(
            item.content.contains(d.lead),
            "{what}: content of {} should open with {:?} (style/script stripped first): {:?}\n{stdout}",
            d.key,
            d.lead,
            item.content
        );
        for banned in cs::NOT_CONTENT {
            assert!(
                !item.content.contains(banned),
                "{what}: content of {} carries {banned:?}: {:?}",
                d.key,
                item.content
            );
        }
    }
}

/// Entries in the database beside `config` (0 when there is no database or no table yet).
fn stored_entries(config: &Path) -> i64 {
    let db = config.with_file_name("tributary.db");
    if !db.exists() {
        return 0;
    }
    let conn = rusqlite::Connection::open(&db).expect("opening the database");
    conn.query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// The fixtures themselves
// ---------------------------------------------------------------------------------------------

fn sel(s: &str) -> scraper::Selector {
    scraper::Selector::parse(s).unwrap_or_else(|e| panic!("selector {s:?}: {e:?}"))
}

fn text_of(el: scraper::ElementRef<'_>) -> String {
    el.text().collect::<String>().trim().to_string()
}

/// Decodes a fixture page as its bytes really are, checking they are what the table says
/// (GBK pages are not valid UTF-8), that the `<meta>` declares the table's label and nothing
/// else, and where that `<meta>` sits.
fn decode_page(page: &cs::Page) -> String {
    let raw = cs::site_bytes(page.path);
    let text = match page.bytes {
        Bytes::Utf8 => String::from_utf8(raw.clone())
            .unwrap_or_else(|e| panic!("{} should be UTF-8: {e}", page.path)),
        Bytes::Gbk => {
            assert!(
                std::str::from_utf8(&raw).is_err(),
                "{} should be GBK bytes, not UTF-8",
                page.path
            );
            encoding_rs::GBK
                .decode_without_bom_handling_and_without_replacement(&raw)
                .unwrap_or_else(|| panic!("{} is not valid GBK", page.path))
                .into_owned()
        }
    };
    let head_end = text
        .find("</head>")
        .unwrap_or_else(|| panic!("{} has no </head>", page.path));
    let head = &text[..head_end];
    assert_eq!(
        head.matches("charset=").count(),
        1,
        "{}: one charset declaration expected",
        page.path
    );
    assert!(
        head.contains(&format!("charset={}\"", page.label))
            || head.contains(&format!("charset=\"{}\"", page.label)),
        "{}: the meta should declare charset {}",
        page.path,
        page.label
    );
    let at = raw
        .windows(8)
        .position(|w| w == b"charset=")
        .expect("charset= in the bytes");
    assert_eq!(
        at > 1024,
        page.late_meta,
        "{}: charset declaration at byte {at}",
        page.path
    );
    text
}

/// UTC RFC 3339 of a naive Beijing time.
fn beijing_to_utc(naive: NaiveDateTime) -> String {
    (naive - TimeDelta::hours(8))
        .and_utc()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The table in `tests/it/common/cs.rs` says what the files say: list items (count, order,
/// hrefs, titles, dates, summaries) under the contract's selectors, decoys that a looser
/// selector would catch, articles (encoding, label, reporter/outlet, time, body with its style
/// block and text), dates consistent with the Beijing→UTC rule, the old template, the sina
/// roll JSON.
#[test]
fn fixture_site_matches_the_expected_table() {
    let root = url::Url::parse("http://127.0.0.1/").expect("base URL");
    let mut all_text = String::new();

    // Lists.
    for c in CHANNELS {
        let text = decode_page(&c.list);
        let html = scraper::Html::parse_document(&text);
        let items: Vec<_> = html.select(&sel("ul.ch_type3_list > li")).collect();
        assert_eq!(items.len(), c.listings.len(), "{}: list items", c.list.path);
        let channel_url = root.join(c.path).expect("channel URL");
        for (li, l) in items.iter().zip(c.listings) {
            let d = cs::doc(l.doc);
            let a = li.select(&sel("a")).next().expect("a in li");
            assert_eq!(a.value().attr("href"), Some(l.href), "{}: href", c.id);
            assert_eq!(
                channel_url.join(l.href).expect("join").path(),
                l.page,
                "{}: {} resolves against {}",
                c.id,
                l.href,
                c.path
            );
            assert!(
                d.pages.iter().any(|p| p.path == l.page),
                "{}: {} is not a page of {}",
                c.id,
                l.page,
                d.key
            );
            let h3 = li.select(&sel("h3")).next().expect("h3 in li");
            assert_eq!(text_of(h3), d.title, "{}: title of {}", c.id, d.key);
            let em = li.select(&sel("em")).next().map(text_of);
            assert_eq!(em.as_deref(), l.em, "{}: em of {}", c.id, d.key);
            let span = li.select(&sel("span")).next().map(text_of);
            assert_eq!(
                span.as_deref(),
                Some(l.summary),
                "{}: span of {}",
                c.id,
                d.key
            );
        }
        let loose = html.select(&sel("li h3")).count();
        assert!(
            loose > c.listings.len() + 3,
            "{}: the sidebar decoys should catch a loose `li h3` ({loose})",
            c.id
        );
        all_text.push_str(&text);
    }
    let jsbd = decode_page(&JSBD.list);
    assert!(
        jsbd.contains("simpleLoadMore") && jsbd.contains("ch_type3_list some-list"),
        "中证快讯 keeps its load-more list"
    );
    // Old template.
    let old = decode_page(&cs::OLD_TEMPLATE);
    let html = scraper::Html::parse_document(&old);
    assert_eq!(html.select(&sel("ul.ch_type3_list > li")).count(), 0);
    let old_titles: Vec<String> = html.select(&sel("ul.list-lm li a")).map(text_of).collect();
    assert_eq!(old_titles, cs::OLD_TEMPLATE_TITLES);

    // Articles.
    let mut instants = BTreeSet::new();
    for d in cs::DOCS {
        for p in d.pages {
            let what = format!("{} {}", d.key, p.path);
            assert!(
                p.path.ends_with(&format!("_{}.html", d.doc_id)),
                "{what}: docid"
            );
            let text = decode_page(p);
            let html = scraper::Html::parse_document(&text);
            let section = html
                .select(&sel("article.cont_article > section"))
                .next()
                .unwrap_or_else(|| panic!("{what}: no article.cont_article > section"));
            assert!(
                section.select(&sel("style")).next().is_some(),
                "{what}: section without the TRS style block"
            );
            assert!(
                section.inner_html().contains("<p>\u{3000}\u{3000}"),
                "{what}: paragraphs open with two U+3000"
            );
            let paras: Vec<String> = section.select(&sel("p")).map(text_of).collect();
            let body = paras.join("\n");
            let opening: String = body.chars().take(60).collect();
            assert!(opening.contains(d.lead), "{what}: lead {:?}", d.lead);
            assert!(
                paras
                    .iter()
                    .rev()
                    .find(|p| !p.is_empty())
                    .is_some_and(|p| p.contains(d.phrase)),
                "{what}: phrase {:?} ends the body",
                d.phrase
            );
            for banned in cs::NOT_CONTENT {
                assert!(!body.contains(banned), "{what}: body text has {banned:?}");
            }
            let ems: Vec<String> = html.select(&sel("div.artc_info em")).map(text_of).collect();
            match d.author {
                Some(a) => assert_eq!(ems, [a, cs::SITE_EM], "{what}: artc_info ems"),
                None => assert!(ems.is_empty(), "{what}: no artc_info expected"),
            }
            let time = html.select(&sel("div.artc_info time")).next().map(text_of);
            let want_time = (d.date_from == DateFrom::ArticlePage).then_some(d.local);
            assert_eq!(time.as_deref(), want_time, "{what}: artc_info time");
            if d.date_from != DateFrom::ArticlePage {
                assert!(
                    html.select(&sel("time")).next().is_some(),
                    "{what}: a related-articles <time> should tempt a loose selector"
                );
            }
            let footer = html
                .select(&sel("article.cont_article > footer"))
                .next()
                .map(text_of)
                .unwrap_or_default();
            assert!(footer.contains("中证网声明"), "{what}: 声明 footer");
            let base = root.join(p.path).expect("page URL");
            let resolved: BTreeSet<String> = section
                .select(&sel("[href], [src]"))
                .filter_map(|e| e.value().attr("href").or(e.value().attr("src")))
                .map(|v| base.join(v).expect("join").path().to_string())
                .collect();
            for a in d.absolute {
                assert!(
                    resolved.contains(*a),
                    "{what}: no relative URL resolving to {a} ({resolved:?})"
                );
            }
            assert!(
                url_attributes(&section.inner_html())
                    .iter()
                    .all(|v| !v.starts_with("http")),
                "{what}: body URLs should all be relative"
            );
            all_text.push_str(&text);
        }
        // The date rule.
        let utc = match d.date_from {
            DateFrom::ArticlePage | DateFrom::ListPage => beijing_to_utc(
                NaiveDateTime::parse_from_str(d.local, "%Y-%m-%d %H:%M").expect("local time"),
            ),
            DateFrom::Url => {
                let day = NaiveDate::parse_from_str(d.local, "%Y-%m-%d").expect("local date");
                let stamp = format!("/t{}_", day.format("%Y%m%d"));
                assert!(
                    d.pages.iter().all(|p| p.path.contains(&stamp)),
                    "{}: URL date",
                    d.key
                );
                beijing_to_utc(day.and_hms_opt(0, 0, 0).expect("midnight"))
            }
        };
        assert_eq!(utc, d.published, "{}: published vs page date", d.key);
        let ems: Vec<Option<&str>> = cs::listed_by(&CHANNELS, d.key)
            .iter()
            .map(|(_, l)| l.em)
            .collect();
        assert!(!ems.is_empty(), "{} is listed by no channel", d.key);
        match d.date_from {
            DateFrom::ListPage => assert!(ems.iter().all(|e| *e == Some(d.local)), "{}", d.key),
            DateFrom::Url => assert!(ems.iter().all(Option::is_none), "{}", d.key),
            DateFrom::ArticlePage => {}
        }
        assert!(
            instants.insert(unix(d.published)),
            "{}: published instants must be distinct so newest-first has one answer",
            d.key
        );
    }
    // The article-over-list rule is exercised: one list date differs from its article's.
    assert!(cs::DOCS.iter().any(|d| {
        d.date_from == DateFrom::ArticlePage
            && cs::listed_by(&CHANNELS, d.key)
                .iter()
                .any(|(_, l)| l.em != Some(d.local))
    }));
    for needle in cs::DECOY_TITLES.iter().chain(cs::NOT_CONTENT) {
        assert!(
            all_text.contains(needle),
            "no fixture page carries {needle:?}"
        );
    }
    // Two URLs, one docid.
    assert!(cs::DOCS
        .iter()
        .any(|d| d.pages.len() == 2 && d.pages[0].bytes != d.pages[1].bytes));

    // The sina roll JSON.
    let roll: Value = serde_json::from_slice(
        &fs::read(cs::sina_roll_file()).expect("reading the sina roll fixture"),
    )
    .expect("sina roll fixture is JSON");
    let data = roll["result"]["data"].as_array().expect("result.data");
    assert_eq!(data.len(), cs::SINA_ROLL.len());
    for (row, (title, url, ctime, utc)) in data.iter().zip(cs::SINA_ROLL) {
        assert_eq!(row["title"], *title);
        assert_eq!(row["url"], *url);
        assert_eq!(row["ctime"], *ctime);
        assert_eq!(ctime.parse::<i64>().expect("epoch"), unix(utc));
        for key in ["intro", "media_name", "mtime", "intime"] {
            assert!(row.get(key).is_some(), "sina row lacks {key}");
        }
    }
}

/// The fixture server plays the site: folder URLs serve their index.html, pages go out as
/// `text/html` with no charset (GBK bytes intact), a path can be made to fail and recover.
#[test]
fn fixture_site_is_served_like_the_real_one() {
    let site = start_site();
    for c in CHANNELS {
        for path in [c.path, c.list.path] {
            let (status, headers, body) = http_get_bytes(&site.url(path));
            assert_eq!(status, 200, "GET {path}");
            assert_eq!(
                headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default(),
                "text/html",
                "GET {path}: Content-Type without charset"
            );
            assert_eq!(body, cs::site_bytes(c.list.path), "GET {path}: body");
        }
    }
    site.fail_with(GSYJ.path, 500);
    assert_eq!(http_get_bytes(&site.url(GSYJ.path)).0, 500);
    assert_eq!(http_get_bytes(&site.url(GSYJ.list.path)).0, 200);
    site.recover(GSYJ.path);
    assert_eq!(http_get_bytes(&site.url(GSYJ.path)).0, 200);
    assert_eq!(
        http_get_bytes(&site.url("/sp/202011/t20201130_6116010.html")).0,
        404,
        "decoy links lead nowhere"
    );
    assert_eq!(site.hits(GSYJ.path).len(), 3);
    assert!(site.all_hits().len() >= 11);
}

// ---------------------------------------------------------------------------------------------
// fetch + serve
// ---------------------------------------------------------------------------------------------

/// GBK pages (meta gbk / gb2312, with GBK-only characters) and UTF-8 pages labelled gb2312
/// all give the exact titles, in every format, newest first by the UTC dates, never U+FFFD.
#[test]
fn gbk_and_mislabelled_utf8_channels_give_exact_titles_in_every_format() {
    let s = Scraped::start(&CHANNELS);
    let want = cs::docs_newest_first();
    for format in FORMATS {
        let path = category_path(format.ext());
        let got = served::parse(format, &s.body(&path));
        let got_titles: Vec<&str> = got.iter().map(|e| e.title.as_str()).collect();
        assert_eq!(
            got_titles,
            titles(&want),
            "GET {path}: titles, newest first (a mojibake title or a wrong date shows here)"
        );
        for (e, d) in got.iter().zip(&want) {
            let links: Vec<String> = d.pages.iter().map(|p| s.abs(p.path)).collect();
            assert!(
                links.contains(&e.link),
                "GET {path}: link of {} is {:?}, expected one of {links:?}",
                d.key,
                e.link
            );
            assert_eq!(
                e.published,
                Some(unix(d.published)),
                "GET {path}: published of {} (page says {} Beijing time, from {})",
                d.key,
                d.local,
                d.date_from.words()
            );
        }
    }
    for c in CHANNELS {
        let path = format!("/sources/{}.json", c.id);
        let items = s.json_items(&path);
        let got: Vec<&str> = items.iter().filter_map(|i| str_of(i, "title")).collect();
        assert_eq!(got, titles(&cs::docs_of(&[c])), "GET {path}: titles");
    }
}

/// Each entry carries its article's full text (the last paragraph is there) without the TRS
/// style block, scripts, the share bar, the pager, the 声明 footer or the related list; its
/// author is the reporter (first em), else the source name.
#[test]
fn entries_carry_the_full_article_text_and_the_reporter() {
    let s = Scraped::start(&CHANNELS);
    let items = s.json_items(&category_path("json"));
    for d in cs::DOCS {
        let what = format!("{} {:?}", d.key, d.title);
        let item = item_titled(&items, d.title, "category JSON Feed");
        let html = item_html(item);
        for needle in [d.lead, d.phrase] {
            assert!(
                html.contains(needle),
                "{what}: the body lacks {needle:?} (full article text expected): {html:?}"
            );
        }
        for banned in cs::NOT_CONTENT {
            assert!(
                !html.contains(banned),
                "{what}: the body carries {banned:?}, which is not the article: {html:?}"
            );
        }
        let author = item["authors"][0]["name"].as_str().unwrap_or_default();
        match d.author {
            Some(a) => assert_eq!(author, a, "{what}: authors[0].name is the reporter"),
            None => {
                // No reporter: no author is claimed; the source is named as the source.
                assert_eq!(item.get("authors"), None, "{what}: no reporter, no authors");
                let names: Vec<&str> = cs::listed_by(&CHANNELS, d.key)
                    .iter()
                    .map(|(c, _)| c.name)
                    .collect();
                let source = item["_tributary"]["sources"][0]["name"].as_str();
                assert!(
                    source.is_some_and(|s| names.contains(&s)),
                    "{what}: the source named is one of {names:?}, got {source:?}"
                );
            }
        }
    }
}

/// Naive page times are Beijing time: 18:59 on the page is 10:59Z. The article page's time
/// wins over the list's, the list's is used when the article has none, and the URL's date
/// (midnight Beijing) when neither page has one.
#[test]
fn naive_beijing_times_are_stored_as_utc_with_the_documented_fallbacks() {
    let s = Scraped::start(&CHANNELS);
    let items = s.json_items(&category_path("json"));
    for d in cs::DOCS {
        let item = item_titled(&items, d.title, "category JSON Feed");
        let published = str_of(item, "date_published")
            .unwrap_or_else(|| panic!("{}: no date_published: {item}", d.key));
        assert_eq!(
            unix(published),
            unix(d.published),
            "{}: date_published {published}, expected {} ({} Beijing time from the {})",
            d.key,
            d.published,
            d.local,
            d.date_from.words()
        );
    }
    let d1 = item_titled(&items, cs::doc("D1").title, "category JSON Feed");
    assert_eq!(
        unix(str_of(d1, "date_published").unwrap_or_default()),
        unix("2020-12-01T10:59:00Z"),
        "2020-12-01 18:59 on the page is 2020-12-01T10:59:00Z"
    );
}

/// A docid carried by two channels under two URLs is one entry naming both sources (each with
/// its own link); the same holds for one URL listed by two channels. The category feed lists
/// each once, in every format; each source's own feed has it.
#[test]
fn one_document_in_two_channels_is_one_entry_with_both_sources() {
    let s = Scraped::start(&CHANNELS);
    let items = s.json_items(&category_path("json"));
    for d in cs::DOCS {
        let item = item_titled(&items, d.title, "category JSON Feed");
        let got = item_sources(item, d.key);
        let want: BTreeMap<String, String> = cs::listed_by(&CHANNELS, d.key)
            .iter()
            .map(|(c, l)| (c.id.to_string(), s.abs(l.page)))
            .collect();
        assert_eq!(
            got, want,
            "{}: _tributary.sources (id → that channel's link)",
            d.key
        );
    }
    let shared = cs::doc("D3");
    assert_eq!(cs::listed_by(&CHANNELS, "D3").len(), 2);
    for format in FORMATS {
        let path = category_path(format.ext());
        let got = served::parse(format, &s.body(&path));
        let n = got.iter().filter(|e| e.title == shared.title).count();
        assert_eq!(n, 1, "GET {path}: {:?} listed {n} times", shared.title);
    }
    for c in [JSBD, GSXW] {
        let path = format!("/sources/{}.json", c.id);
        item_titled(&s.json_items(&path), shared.title, &path);
    }
}

/// Sidebar, ranking, related-article and footer lists are never entries; only the listed
/// article pages are requested (no decoy link, no image); the old template's items never
/// appear.
#[test]
fn decoys_are_never_picked_and_only_listed_articles_are_fetched() {
    let s = Scraped::start(&CHANNELS);
    let mut allowed: BTreeSet<String> = CHANNELS.iter().map(|c| c.path.to_string()).collect();
    allowed.insert("/robots.txt".into());
    for d in cs::DOCS {
        allowed.extend(d.pages.iter().map(|p| p.path.to_string()));
    }
    let requested: BTreeSet<String> = s.site.all_hits().into_iter().map(|h| h.path).collect();
    let strays: Vec<&String> = requested.difference(&allowed).collect();
    assert!(
        strays.is_empty(),
        "requests outside the lists and their articles: {strays:?}"
    );
    for d in cs::DOCS {
        assert!(
            d.pages.iter().any(|p| requested.contains(p.path)),
            "{}: its article page was never fetched",
            d.key
        );
    }
    for path in [
        category_path("json"),
        category_path("rss"),
        category_path("atom"),
        "/feeds/all.json".to_string(),
    ] {
        let body = s.body(&path);
        for decoy in cs::DECOY_TITLES.iter().chain(cs::OLD_TEMPLATE_TITLES) {
            assert!(
                !body.contains(decoy),
                "GET {path}: decoy {decoy:?} was picked up"
            );
        }
    }
    let items = s.json_items("/feeds/all.json");
    assert_eq!(items.len(), cs::DOCS.len(), "/feeds/all.json: entry count");
}

/// Relative `src` / `href` in article bodies are resolved against the article page: every URL
/// attribute served is absolute, and the expected ones are there.
#[test]
fn relative_links_and_images_in_articles_become_absolute() {
    let s = Scraped::start(&CHANNELS);
    let items = s.json_items(&category_path("json"));
    for d in cs::DOCS {
        let item = item_titled(&items, d.title, "category JSON Feed");
        let html = item_html(item);
        for value in url_attributes(&html) {
            assert!(
                value.starts_with("http://") || value.starts_with("https://"),
                "{}: relative URL {value:?} left in {html:?}",
                d.key
            );
        }
        for path in d.absolute {
            let want = s.abs(path);
            assert!(
                url_attributes(&html).contains(&want),
                "{}: expected {want} (resolved against the article page) in {html:?}",
                d.key
            );
        }
    }
}

/// A second fetch of unchanged pages (the server ignoring If-None-Match, so every list is
/// parsed again) adds nothing, updates nothing, and fetches no article page again.
#[test]
fn a_second_fetch_adds_nothing_and_fetches_no_article_again() {
    let site = start_site();
    let dir = tempfile::tempdir().expect("temp folder");
    let listen = free_addr();
    let config = channels_config(&dir.path().join("conf"), listen, &site, &CHANNELS);
    let (lines, stdout) = fetch_all_ok(&config, "first fetch");
    assert_first_fetch(&lines, &stdout, &CHANNELS);
    let article_hits = || {
        site.all_hits()
            .iter()
            .filter(|h| h.path.contains("/t2020"))
            .count()
    };
    let before = article_hits();
    assert!(before >= cs::DOCS.len(), "first fetch reads the articles");

    site.set_conditional(false);
    let (lines, stdout) = fetch_all_ok(&config, "second fetch");
    for c in CHANNELS {
        assert_eq!(
            lines[c.id],
            FetchStatus::Ok {
                new: 0,
                updated: 0,
                unchanged: c.listings.len() as u64
            },
            "second fetch of unchanged pages, {}\n{stdout}",
            c.id
        );
    }
    assert_eq!(
        article_hits(),
        before,
        "the second fetch requested article pages again (only new entries need them): {:?}",
        site.all_hits()
            .iter()
            .filter(|h| h.path.contains("/t2020"))
            .map(|h| &h.path)
            .collect::<Vec<_>>()
    );

    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    let resp = http_get(&serve.url(&category_path("json")));
    assert_eq!(resp.status, 200, "{}", serve.logs());
    let got = served::parse(served::Format::Json, &resp.body);
    let got_titles: Vec<&str> = got.iter().map(|e| e.title.as_str()).collect();
    assert_eq!(got_titles, titles(&cs::docs_newest_first()));
}

// ---------------------------------------------------------------------------------------------
// check
// ---------------------------------------------------------------------------------------------

/// The cs-* sources of the shipped `config/tributary.toml`, as TOML tables.
fn shipped_cs_sources() -> Vec<toml::Table> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tributary.toml");
    let text = fs::read_to_string(&path).expect("reading the shipped config");
    let doc: toml::Table = text.parse().expect("the shipped config is TOML");
    doc["sources"]
        .as_array()
        .expect("sources array")
        .iter()
        .filter_map(|s| s.as_table())
        .filter(|s| {
            s.get("id")
                .and_then(|v| v.as_str())
                .is_some_and(|id| id.starts_with("cs-"))
        })
        .cloned()
        .collect()
}

/// `check` on each 中证网 channel as shipped (its own selectors; enabled, private addresses
/// allowed, and pointed at the fixture site either in the config or with `--url`) prints each
/// list item with title, absolute link, UTC date with provenance, reporter and the opening of
/// the body, exits 0, and stores nothing.
#[test]
fn check_prints_every_item_of_each_shipped_channel() {
    let site = start_site();
    let dir = tempfile::tempdir().expect("temp folder");
    let shipped = shipped_cs_sources();
    let shipped_ids: BTreeSet<&str> = shipped
        .iter()
        .filter_map(|s| s.get("id").and_then(|v| v.as_str()))
        .collect();
    for c in CHANNELS {
        assert!(
            shipped_ids.contains(c.id),
            "the shipped config lacks {}",
            c.id
        );
    }
    // cs-jsbd and cs-hg point at the fixtures in the config; the others keep the real URL
    // and get the fixture URL from --url.
    let in_config = ["cs-jsbd", "cs-hg"];
    let mut sources = Vec::new();
    for mut s in shipped {
        let id = s["id"].as_str().expect("id").to_string();
        let Some(c) = CHANNELS.iter().find(|c| c.id == id) else {
            continue;
        };
        s.remove("enabled");
        s.insert("allow_private".into(), toml::Value::Boolean(true));
        if in_config.contains(&c.id) {
            s.insert("url".into(), toml::Value::String(site.url(c.path)));
        }
        sources.push(toml::Value::Table(s));
    }
    let mut table = toml::Table::new();
    table.insert("sources".into(), toml::Value::Array(sources));
    let text = format!(
        "{}\n{}",
        cs::config_head(free_addr(), "Asia/Shanghai"),
        toml::to_string(&table).expect("serializing sources")
    );
    let config = write_config_text(&dir.path().join("conf"), &text);

    for c in CHANNELS {
        let url = site.url(c.path);
        let flag = (!in_config.contains(&c.id)).then_some(url.as_str());
        let (code, stdout, stderr) = run_check(&config, c.id, flag);
        let what = format!(
            "check {}{}",
            c.id,
            if flag.is_some() { " --url" } else { "" }
        );
        assert_eq!(
            code, 0,
            "{what}: exit code\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert_check_lists_channel(&what, &stdout, &site, &c);
    }
    assert_eq!(
        stored_entries(&config),
        0,
        "check is a dry run: nothing stored"
    );
}

/// The same 中证快讯 list as GBK bytes (as shipped in 2020) and re-encoded as UTF-8 while still
/// saying `charset=gbk` (as served since 2024): `check` prints the same items either way.
#[test]
fn the_same_list_in_gbk_and_in_utf8_labelled_gbk_reads_the_same() {
    let site = start_site();
    let dir = tempfile::tempdir().expect("temp folder");
    let mut text = cs::config_head(free_addr(), "Asia/Shanghai");
    text.push_str(&cs::html_source_toml(
        JSBD.id,
        JSBD.name,
        &site.url(JSBD.path),
        None,
        cs::CS_TABLES,
    ));
    let config = write_config_text(&dir.path().join("conf"), &text);
    let (code, gbk_out, stderr) = run_check(&config, JSBD.id, None);
    assert_eq!(code, 0, "check on the GBK page\n{gbk_out}\n{stderr}");
    assert_check_lists_channel("check on the GBK page", &gbk_out, &site, &JSBD);

    let raw = cs::site_bytes(JSBD.list.path);
    let (utf8, _, had_errors) = encoding_rs::GBK.decode(&raw);
    assert!(!had_errors);
    assert!(utf8.contains("charset=gbk"), "the label stays gbk");
    site.set(JSBD.path, utf8.as_bytes().to_vec());
    let (code, utf8_out, stderr) = run_check(&config, JSBD.id, None);
    assert_eq!(code, 0, "check on the UTF-8 page\n{utf8_out}\n{stderr}");
    assert_check_lists_channel(
        "check on the UTF-8 page labelled gbk",
        &utf8_out,
        &site,
        &JSBD,
    );
    let items = |out: &str| -> Vec<(String, String, String)> {
        parse_check(out)
            .into_iter()
            .map(|i| (i.title, i.link, i.date))
            .collect()
    };
    assert_eq!(
        items(&gbk_out),
        items(&utf8_out),
        "the same list in two encodings"
    );
}

/// A naive date is read in the source's `timezone`, else in `[defaults] timezone`.
#[test]
fn check_reads_naive_dates_in_the_source_timezone_else_the_default() {
    let site = start_site();
    let dir = tempfile::tempdir().expect("temp folder");
    let mut text = cs::config_head(free_addr(), "UTC");
    text.push_str(&cs::html_source_toml(
        HG.id,
        HG.name,
        &site.url(HG.path),
        Some("Asia/Shanghai"),
        cs::CS_TABLES,
    ));
    text.push_str(&cs::html_source_toml(
        GSXW.id,
        GSXW.name,
        &site.url(GSXW.path),
        None,
        cs::CS_TABLES,
    ));
    let config = write_config_text(&dir.path().join("conf"), &text);
    for (c, key, want) in [
        (HG, "D6", "2020-12-01T07:30:00Z"),
        (GSXW, "D8", "2020-12-01T14:20:00Z"),
    ] {
        let (code, stdout, stderr) = run_check(&config, c.id, None);
        assert_eq!(
            code, 0,
            "check {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            c.id
        );
        let items = parse_check(&stdout);
        let d = cs::doc(key);
        let item = items
            .iter()
            .find(|i| i.title == d.title)
            .unwrap_or_else(|| panic!("check {}: no item {:?}\n{stdout}", c.id, d.title));
        assert!(
            item.date.starts_with(want),
            "check {}: {} on the page should be {want} ({}): {:?}",
            c.id,
            d.local,
            if c.id == HG.id {
                "the source's Asia/Shanghai"
            } else {
                "the default UTC"
            },
            item.date
        );
    }
}

/// `check --url` on the 2020 template (whose lists are `ul.list-lm`): exit 1, and the error
/// names the source, the item selector and the URL; nothing else is fetched.
#[test]
fn check_on_an_old_template_page_fails_naming_the_source_and_the_selector() {
    let site = start_site();
    let dir = tempfile::tempdir().expect("temp folder");
    let mut text = cs::config_head(free_addr(), "Asia/Shanghai");
    text.push_str(&cs::html_source_toml(
        GSYJ.id,
        GSYJ.name,
        &site.url(GSYJ.path),
        None,
        cs::CS_TABLES,
    ));
    let config = write_config_text(&dir.path().join("conf"), &text);
    let old_url = site.url(cs::OLD_TEMPLATE_PATH);
    let (code, stdout, stderr) = run_check(&config, GSYJ.id, Some(&old_url));
    let all = format!("{stdout}\n{stderr}");
    assert_eq!(
        code, 1,
        "check on the old template: exit code\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for needle in [GSYJ.id, "ul.ch_type3_list > li", old_url.as_str()] {
        assert!(
            all.contains(needle),
            "the error should name {needle:?}:\n{all}"
        );
    }
    assert!(
        parse_check(&stdout).is_empty(),
        "no items from the old template:\n{stdout}"
    );
    let requested: Vec<String> = site
        .all_hits()
        .into_iter()
        .map(|h| h.path)
        .filter(|p| p != "/robots.txt")
        .collect();
    assert_eq!(
        requested,
        [cs::OLD_TEMPLATE_PATH],
        "only the --url page should be requested"
    );
    assert_eq!(stored_entries(&config), 0);
}

/// Items that match but carry no link (`a` without `href`): `check` exits 1 naming the source.
#[test]
fn check_fails_when_items_have_no_links() {
    let site = start_site();
    let page = String::from_utf8(cs::site_bytes(GSXW.list.path)).expect("UTF-8 page");
    // Only the channel's own list loses its hrefs; the sidebars keep theirs.
    let start = page
        .find("<ul class=\"ch_type3_list\">")
        .expect("the channel list");
    let end = start + page[start..].find("</ul>").expect("end of the list");
    let unlinked = format!(
        "{}{}{}",
        &page[..start],
        page[start..end].replace("<a href=", "<a data-x="),
        &page[end..]
    );
    assert_eq!(
        unlinked.matches("data-x=").count(),
        GSXW.listings.len(),
        "every list item lost its href"
    );
    let path = "/gppd/zqxw/";
    site.set(path, unlinked);
    let dir = tempfile::tempdir().expect("temp folder");
    let mut text = cs::config_head(free_addr(), "Asia/Shanghai");
    text.push_str(&cs::html_source_toml(
        "cs-zqxw",
        "中证网·债市研究",
        &site.url(path),
        None,
        cs::CS_TABLES,
    ));
    let config = write_config_text(&dir.path().join("conf"), &text);
    let (code, stdout, stderr) = run_check(&config, "cs-zqxw", None);
    assert_eq!(
        code, 1,
        "check with linkless items: exit code\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        format!("{stdout}\n{stderr}").contains("cs-zqxw"),
        "the error should name the source:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------

/// A channel on the old template and, on the next fetch, a channel answering 500: each gives
/// one `error:` line naming its cause (the selector and URL; HTTP 500), `fetch` exits 1, the
/// other channels are stored, and the failed channel's earlier entries stay served.
#[test]
fn a_broken_channel_reports_one_error_and_the_others_are_stored() {
    let site = start_site();
    let dir = tempfile::tempdir().expect("temp folder");
    let listen = free_addr();
    let good = [HG, GSXW, GSYJ];
    let old_id = "cs-hyzx";
    let old_url = site.url(cs::OLD_TEMPLATE_PATH);
    let mut text = cs::config_head(listen, "Asia/Shanghai");
    for c in good {
        text.push_str(&cs::html_source_toml(
            c.id,
            c.name,
            &site.url(c.path),
            None,
            cs::CS_TABLES,
        ));
    }
    text.push_str(&cs::html_source_toml(
        old_id,
        "中证网·行业资讯",
        &old_url,
        None,
        cs::CS_TABLES,
    ));
    let config = write_config_text(&dir.path().join("conf"), &text);

    // 1. The old-template channel fails; the others are stored.
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(
        code, 1,
        "fetch with a broken channel: exit code\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let lines = parse_fetch_output(&stdout);
    assert_eq!(lines.len(), 4, "one line per channel\n{stdout}");
    for c in good {
        assert_eq!(
            lines[c.id],
            FetchStatus::Ok {
                new: c.listings.len() as u64,
                updated: 0,
                unchanged: 0
            },
            "{}\n{stdout}",
            c.id
        );
    }
    match &lines[old_id] {
        FetchStatus::Error(cause) => {
            for needle in ["ul.ch_type3_list > li", old_url.as_str()] {
                assert!(
                    cause.contains(needle),
                    "{old_id}: the error should name {needle:?}: {cause:?}"
                );
            }
        }
        other => panic!("{old_id}: expected an error line, got {other:?}\n{stdout}"),
    }
    assert!(
        site.all_hits()
            .iter()
            .all(|h| !h.path.starts_with("/cj/hyzx/2020")),
        "nothing of the broken channel should be followed"
    );

    // 2. Next fetch, A股市场 answers 500.
    site.fail_with(GSYJ.path, 500);
    let (code, stdout, stderr) = run_fetch(&config, &[]);
    assert_eq!(
        code, 1,
        "fetch with a 500: exit code\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let lines = parse_fetch_output(&stdout);
    assert_eq!(lines.len(), 4, "one line per channel\n{stdout}");
    match &lines[GSYJ.id] {
        FetchStatus::Error(cause) => {
            let url = site.url(GSYJ.path);
            assert!(
                cause.contains("500") && cause.contains(&url),
                "{}: the error should name HTTP 500 and {url}: {cause:?}",
                GSYJ.id
            );
        }
        other => panic!(
            "{}: expected an error line, got {other:?}\n{stdout}",
            GSYJ.id
        ),
    }
    for c in [HG, GSXW] {
        assert!(
            matches!(
                lines[c.id],
                FetchStatus::Ok {
                    new: 0,
                    updated: 0,
                    ..
                } | FetchStatus::NotModified
            ),
            "{}: unchanged page: {:?}",
            c.id,
            lines[c.id]
        );
    }

    // 3. Everything stored so far is served, the 500 channel's entries included.
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    let get_titles = |path: &str| -> Vec<String> {
        let resp = http_get(&serve.url(path));
        assert_eq!(resp.status, 200, "GET {path}\n{}", serve.logs());
        served::parse(served::Format::Json, &resp.body)
            .into_iter()
            .map(|e| e.title)
            .collect()
    };
    assert_eq!(
        get_titles(&category_path("json")),
        titles(&cs::docs_of(&good)),
        "the category feed after the failures"
    );
    assert_eq!(
        get_titles(&format!("/sources/{}.json", GSYJ.id)),
        titles(&cs::docs_of(&[GSYJ])),
        "the failed channel keeps its entries"
    );
}

// ---------------------------------------------------------------------------------------------
// JSON list sources
// ---------------------------------------------------------------------------------------------

/// A 新浪财经 roll API answer read with dot paths: each row is an entry with its title, link,
/// `ctime` (epoch seconds) as the published instant, `media_name` as the author and `intro` as
/// the summary.
#[test]
fn sina_roll_json_source_gives_titles_links_dates_and_media() {
    let site = start_site();
    let api = "/api/roll/get";
    site.set(
        api,
        fs::read(cs::sina_roll_file()).expect("reading the sina roll fixture"),
    );
    site.set_content_type(api, "application/json;charset=UTF-8");
    let dir = tempfile::tempdir().expect("temp folder");
    let listen = free_addr();
    let mut text = cs::config_head(listen, "Asia/Shanghai");
    text.push_str(&format!(
        "\n[[sources]]\nid = \"sina-roll\"\nname = \"新浪财经·国内滚动\"\n\
         url = \"{}?pageid=155&lid=1686&num=50&page=1\"\ncategory = \"金融\"\nkind = \"json\"\n\
         timezone = \"Asia/Shanghai\"\nallow_private = true\n[sources.json]\n\
         items = \"result.data\"\ntitle = \"title\"\nlink = \"url\"\ndate = \"ctime\"\n\
         summary = \"intro\"\nauthor = \"media_name\"\n",
        site.url(api)
    ));
    let config = write_config_text(&dir.path().join("conf"), &text);
    let (lines, stdout) = fetch_all_ok(&config, "fetch sina-roll");
    assert_eq!(
        lines["sina-roll"],
        FetchStatus::Ok {
            new: cs::SINA_ROLL.len() as u64,
            updated: 0,
            unchanged: 0
        },
        "{stdout}"
    );
    let mut serve = spawn_serve(&config, listen);
    serve.wait_healthz();
    let resp = http_get(&serve.url("/sources/sina-roll.json"));
    assert_eq!(resp.status, 200, "{}", serve.logs());
    let doc: Value = serde_json::from_str(&resp.body).expect("JSON Feed");
    let items = doc["items"].as_array().expect("items").clone();
    let roll: Value =
        serde_json::from_slice(&fs::read(cs::sina_roll_file()).expect("sina fixture"))
            .expect("sina fixture JSON");
    let rows = roll["result"]["data"].as_array().expect("rows").clone();
    let mut want: Vec<_> = cs::SINA_ROLL.iter().zip(&rows).collect();
    want.sort_by_key(|((_, _, _, utc), _)| std::cmp::Reverse(unix(utc)));
    let got: Vec<&str> = items.iter().filter_map(|i| str_of(i, "title")).collect();
    let want_titles: Vec<&str> = want.iter().map(|((t, ..), _)| *t).collect();
    assert_eq!(got, want_titles, "titles, newest first by ctime");
    for ((title, url, _, utc), row) in want {
        let item = item_titled(&items, title, "sina JSON Feed");
        assert_eq!(str_of(item, "url"), Some(*url), "{title}: url");
        assert_eq!(
            str_of(item, "date_published").map(unix),
            Some(unix(utc)),
            "{title}: date_published from ctime"
        );
        assert_eq!(
            item["authors"][0]["name"], row["media_name"],
            "{title}: author is media_name"
        );
        let intro = row["intro"].as_str().expect("intro");
        assert!(
            item_html(item).contains(intro),
            "{title}: the intro is the summary: {item}"
        );
    }
    assert!(
        site.all_hits().iter().all(|h| h.path == api),
        "only the API is requested: {:?}",
        site.all_hits()
    );
}
